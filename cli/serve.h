/* nonoproxy-run --serve: hand the environment to processes started elsewhere (SPEC §13). */
#ifndef NONOPROXY_CLI_SERVE_H
#define NONOPROXY_CLI_SERVE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include <nonoproxy/proxy.h>

#include "args.h"

/**
 * The --serve mode once the proxy p runs: write the environment of nonoproxy_env_vars() and
 * nonoproxy_credential_env_vars() as export lines to stdout (then closed: a reader sees end of
 * file) or, with --env-file, to a new file created with mode 0600 (O_EXCL | O_NOFOLLOW: an
 * existing file or a symlink is refused; it is emptied and removed at exit if it is still the
 * file created), then wait for a signal of stop_set (SIGINT, SIGTERM, SIGHUP; already blocked
 * in every thread). The token is only in those lines, never on a command line.
 * \return 0 after a signal, else CLI_EXIT_FAILURE (the message is printed).
 */
int cli_serve(const struct cli_args *a, const struct nonoproxy_proxy *p, const sigset_t *stop_set);

#endif /* NONOPROXY_CLI_SERVE_H */
