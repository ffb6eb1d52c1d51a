/* nonoproxy-run: run a command behind a filtering proxy (SPEC §11). */
#include <stdio.h>

#include <nonoproxy/nonoproxy.h>

#include "args.h"
#include "run.h"

/* Flushes stdout after --help or --version; a failed write (e.g. to /dev/full) is an error. */
static int
finish_stdout(void)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        (void)fprintf(stderr, "nonoproxy-run: cannot write to stdout\n");
        return CLI_EXIT_FAILURE;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    struct cli_args args;
    char err[CLI_ERR_LEN];
    int status = CLI_EXIT_FAILURE;

    switch (cli_args_parse(&args, argc, argv, err, sizeof(err))) {
    case CLI_ACTION_RUN:
        status = cli_run(&args);
        break;
    case CLI_ACTION_HELP:
        cli_args_usage(stdout);
        status = finish_stdout();
        break;
    case CLI_ACTION_VERSION:
        (void)printf("nonoproxy-run %s\n", nonoproxy_version());
        status = finish_stdout();
        break;
    case CLI_ACTION_ERROR:
        (void)fprintf(stderr, "nonoproxy-run: %s\n", err);
        cli_args_usage_hint(stderr);
        status = CLI_EXIT_FAILURE;
        break;
    }
    cli_args_free(&args);
    return status;
}
