/* nonoproxy-run: run a command behind a filtering proxy (SPEC §11). */
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>

#include <nonoproxy/nonoproxy.h>

#include "args.h"
#include "config_file.h"
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

/* Adds the --config file, if any, to the parsed command line and runs the command; returns
 * nonoproxy-run's exit status. A file that cannot be read or holds a bad key is an error of
 * nonoproxy-run itself (125), reported in one line naming the file and the key path. */
static int
run_with_config(struct cli_args *a)
{
    struct cli_file_config file;
    char err[CLI_ERR_LEN];
    int status = CLI_EXIT_FAILURE;

    memset(&file, 0, sizeof(file));
    if (a->config != NULL) {
        if (!cli_config_load(a->config, &file, err, sizeof(err)) ||
            !cli_config_merge(a, &file, err, sizeof(err))) {
            (void)fprintf(stderr, "nonoproxy-run: %s\n", err);
            goto out;
        }
    }
    status = cli_run(a);
out:
    cli_config_free(&file); /* wipes the file's strings, the external proxy's password too */
    return status;
}

int
main(int argc, char **argv)
{
    struct cli_args args;
    char err[CLI_ERR_LEN];
    int status = CLI_EXIT_FAILURE;

    /* Not dumpable: no core file with secrets, and /proc/<pid>/environ, mem and the like
     * become root's, so a child running as the same user can neither read them nor ptrace
     * this process. The child gets a dumpable process back when it execs. */
    (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    switch (cli_args_parse(&args, argc, argv, err, sizeof(err))) {
    case CLI_ACTION_RUN:
        status = run_with_config(&args);
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
