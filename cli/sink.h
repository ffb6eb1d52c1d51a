/* nonoproxy-run: where the proxy's log lines and audit events go (stderr, --audit-log, summary). */
#ifndef NONOPROXY_CLI_SINK_H
#define NONOPROXY_CLI_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <nonoproxy/nonoproxy.h>

#include "args.h"

/** Distinct (decision, mode, target, port, denial category) rows the summary keeps; further
 * destinations are counted in an "other destinations" row. */
#define CLI_SUMMARY_MAX_DESTS 256

/** Receives the callbacks of one proxy. The callbacks are thread-safe (one mutex). */
struct cli_sink;

/**
 * Create the sink for a: open --audit-log (O_APPEND|O_CREAT|O_CLOEXEC, mode 0600; "-" = stderr).
 * \return the sink, or NULL with err set (one line, no program name) on failure.
 */
/* Writes all of buf to fd, retrying on EINTR and short writes; false with errno set (EIO
 * when write returns 0). Used for every whole write of the CLI (audit lines, the summary,
 * the --serve export lines, --ask questions). */
bool cli_write_all(int fd, const char *buf, size_t len);

struct cli_sink *cli_sink_create(const struct cli_args *a, char *err, size_t err_len);

/** Point cfg's log and audit callbacks at s; the log level follows -q/-v. s must outlive the
 * proxy started from cfg (until nonoproxy_shutdown() has returned). */
void cli_sink_install(struct cli_sink *s, const struct cli_args *a, struct nonoproxy_config *cfg);

/** Record one audit event: count it for the summary and append it to the audit log.
 * This is the audit callback; exposed for tests. [any thread] */
void cli_sink_audit(void *userdata, const struct nonoproxy_audit_event *ev);

/** Print the allowed/denied summary to out. Call after nonoproxy_shutdown(). */
void cli_sink_print_summary(struct cli_sink *s, FILE *out);

/** Close the audit log and free s. NULL-safe. */
void cli_sink_destroy(struct cli_sink *s);

#endif /* NONOPROXY_CLI_SINK_H */
