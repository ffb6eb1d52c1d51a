/* libFuzzer target: nonoproxy-run's command line (SPEC §11): the input split on NUL bytes into
 * argv[1..] (argv[0] is the program name), parsed by cli_args_parse and freed.
 * Properties: an error always says why, in one line; a run has a command (none with --serve);
 * nothing leaks. getopt_long keeps global state: optind is reset to 0 before every call
 * (cli_args_parse does it too). */
#include <getopt.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_INPUT 4096
#define MAX_ARGS  64

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text;
    char *argv[MAX_ARGS + 2];
    char prog[] = "nonoproxy-run";
    int argc = 1;
    size_t i;
    size_t start = 0;
    struct cli_args a;
    char err[CLI_ERR_LEN];
    enum cli_action act;

    if (size > MAX_INPUT) {
        return -1;
    }
    text = malloc(size + 1);
    if (text == NULL) {
        abort();
    }
    if (size > 0) {
        memcpy(text, data, size);
    }
    text[size] = '\0';
    argv[0] = prog;
    for (i = 0; i <= size && argc <= MAX_ARGS; i++) {
        if (text[i] == '\0') {
            if (i < size || i > start) {
                argv[argc++] = text + start;
            }
            start = i + 1;
        }
    }
    argv[argc] = NULL;

    memset(&a, 0, sizeof(a));
    err[0] = '\0';
    optind = 0;
    act = cli_args_parse(&a, argc, argv, err, sizeof(err));
    switch (act) {
    case CLI_ACTION_ERROR:
        if (err[0] == '\0' || strchr(err, '\n') != NULL) {
            abort();
        }
        break;
    case CLI_ACTION_RUN:
        /* A run has a command, except --serve, which has none (issue 14). */
        if (a.serve ? a.command != NULL
                    : (a.command == NULL || a.command_argc <= 0 || a.command[0] == NULL)) {
            abort();
        }
        break;
    case CLI_ACTION_HELP:
    case CLI_ACTION_VERSION:
        break;
    default:
        abort();
    }
    cli_args_free(&a);
    free(text);
    return 0;
}
