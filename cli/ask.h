/* nonoproxy-run --ask: the decide callback that asks the user on the terminal (SPEC §13). */
#ifndef NONOPROXY_CLI_ASK_H
#define NONOPROXY_CLI_ASK_H

#include <stdbool.h>
#include <stddef.h>

#include <nonoproxy/config.h>

/** The terminal the questions go to; opaque. */
struct cli_ask;

/**
 * Open the controlling terminal (/dev/tty, never stdin: the command owns that) for --ask. On
 * failure returns NULL with err set to one line such as "--ask: no terminal (/dev/tty): No
 * such device or address". The descriptor is close-on-exec: the command never inherits it.
 */
struct cli_ask *cli_ask_open(char *err, size_t err_len);

/**
 * The nonoproxy_decide_fn of --ask (userdata: the struct cli_ask *). Asks one question at a
 * time (a mutex serialises the connection threads) on the terminal:
 *   allow HOST:PORT (METHOD)? [y]es once / [a]lways / [N]o
 * and reads one line within q->timeout_ms (0 = no limit) counted from the call: y or yes
 * allows once, a or always for the session, anything else, end of file, an error or the
 * deadline denies. What was decided is written on the terminal. Input typed before the
 * question is discarded. Echo and line editing are on while it reads and the terminal's
 * previous modes are restored before it returns. [any thread]
 */
enum nonoproxy_decide_answer cli_ask_decide(void *userdata, const struct nonoproxy_decide_query *q);

/** Make every pending and later question answer "deny" at once (before the proxy is shut down,
 * so that no connection thread keeps it waiting). [any thread] */
void cli_ask_cancel(struct cli_ask *ask);

/** Close the terminal and free ask (after the proxy is freed). NULL-safe. */
void cli_ask_close(struct cli_ask *ask);

#endif /* NONOPROXY_CLI_ASK_H */
