/* nonoproxy-run: start the proxy, run the command under it, forward signals, report. */
#ifndef NONOPROXY_CLI_RUN_H
#define NONOPROXY_CLI_RUN_H

#include "args.h"

/**
 * Start the proxy configured by a, report its start-time diagnostics (a route credential that
 * was not loaded stops here with CLI_EXIT_FAILURE unless --allow-missing-credentials), run
 * a->command with the proxy's variables added to its environment and the env:// credential
 * variables removed from it, forward SIGINT/SIGTERM/SIGHUP to it until it ends, then stop the
 * proxy and print the summary (unless -q).
 * \return the exit status for nonoproxy-run: the command's status, 128+N if signal N killed
 *         it, else CLI_EXIT_FAILURE, CLI_EXIT_CANNOT_INVOKE or CLI_EXIT_NOT_FOUND (the message
 *         is already printed).
 * Call from the main thread, before any other thread exists.
 */
int cli_run(const struct cli_args *a);

#endif /* NONOPROXY_CLI_RUN_H */
