/* nonoproxy-run: log lines to stderr, audit events to --audit-log and to the exit summary. */
#include "sink.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A log line longer than this is cut (with "..."). */
#define LOG_LINE_MAX 1024

/* One summary row: how many decisions of one kind went to one destination. */
struct cli_dest {
    enum nonoproxy_audit_decision decision;
    enum nonoproxy_audit_mode mode;
    enum nonoproxy_denial_category category;
    bool has_port;
    uint16_t port;
    uint64_t count;
    char target[NONOPROXY_AUDIT_TARGET_LEN];
};

struct cli_sink {
    pthread_mutex_t lock; /* guards everything below, and every write to the fds */
    int audit_fd;         /* -1 = no audit log */
    bool audit_fd_owned;  /* false for stderr */
    enum nonoproxy_log_level max_level;
    uint64_t audit_write_errors;
    uint64_t allowed;
    uint64_t denied;
    uint64_t other_allowed; /* decisions that did not fit in dests */
    uint64_t other_denied;
    size_t n_dests;
    struct cli_dest dests[CLI_SUMMARY_MAX_DESTS];
    char json[NONOPROXY_AUDIT_JSON_MAX + 1]; /* one line + '\n'; here, not on a thread's stack */
};

bool
cli_write_all(int fd, const char *buf, size_t len)
{
    ssize_t n = 0;

    while (len > 0) {
        n = write(fd, buf, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            if (n == 0) {
                errno = EIO;
            }
            return false;
        }
        buf += n;
        len -= (size_t)n;
    }
    return true;
}

/* Opens --audit-log: "-" is stderr; a file is appended to, created 0600, never inherited. */
static bool
open_audit_log(struct cli_sink *s, const char *path, char *err, size_t err_len)
{
    char shown[128];
    char ebuf[128];

    if (strcmp(path, "-") == 0) {
        s->audit_fd = STDERR_FILENO;
        return true;
    }
    s->audit_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
    if (s->audit_fd < 0) {
        int e = errno;

        cli_printable(shown, sizeof(shown), path);
        (void)snprintf(err, err_len, "--audit-log: %s: %s", shown,
                       strerror_r(e, ebuf, sizeof(ebuf)));
        return false;
    }
    s->audit_fd_owned = true;
    return true;
}

struct cli_sink *
cli_sink_create(const struct cli_args *a, char *err, size_t err_len)
{
    struct cli_sink *s = calloc(1, sizeof(*s));

    if (s == NULL) {
        (void)snprintf(err, err_len, "out of memory");
        goto fail;
    }
    s->audit_fd = -1;
    if (pthread_mutex_init(&s->lock, NULL) != 0) {
        (void)snprintf(err, err_len, "cannot create a mutex");
        free(s);
        s = NULL;
        goto fail;
    }
    if (a->audit_log != NULL && !open_audit_log(s, a->audit_log, err, err_len)) {
        goto fail;
    }
    return s;
fail:
    cli_sink_destroy(s);
    return NULL;
}

/* The log callback: "nonoproxy: <line>" to stderr, one write() per line. [any thread] */
static void
log_line(void *userdata, enum nonoproxy_log_level level, const char *line)
{
    struct cli_sink *s = userdata;
    static const char prefix[] = "nonoproxy: ";
    char buf[LOG_LINE_MAX];
    size_t len = sizeof(prefix) - 1;

    if (level > s->max_level) {
        return;
    }
    memcpy(buf, prefix, len);
    cli_printable(buf + len, sizeof(buf) - len - 1, line); /* one line, nothing for a terminal */
    len += strlen(buf + len);
    buf[len++] = '\n';
    (void)pthread_mutex_lock(&s->lock);
    (void)cli_write_all(STDERR_FILENO, buf, len);
    (void)pthread_mutex_unlock(&s->lock);
}

/* Returns true when row d counts events like ev. */
static bool
dest_matches(const struct cli_dest *d, const struct nonoproxy_audit_event *ev)
{
    return d->decision == ev->decision && d->mode == ev->mode &&
           d->category == ev->denial_category && d->has_port == ev->has_port &&
           (!d->has_port || d->port == ev->port) && strcmp(d->target, ev->target) == 0;
}

/* Counts decision ev in its summary row (created if there is room). Lock held. */
static void
count_decision(struct cli_sink *s, const struct nonoproxy_audit_event *ev)
{
    struct cli_dest *d = NULL;
    bool allow = ev->decision == NONOPROXY_DECISION_ALLOW;
    size_t i = 0;

    if (allow) {
        s->allowed++;
    } else {
        s->denied++;
    }
    for (i = 0; i < s->n_dests; i++) {
        if (dest_matches(&s->dests[i], ev)) {
            s->dests[i].count++;
            return;
        }
    }
    if (s->n_dests == CLI_SUMMARY_MAX_DESTS) {
        if (allow) {
            s->other_allowed++;
        } else {
            s->other_denied++;
        }
        return;
    }
    d = &s->dests[s->n_dests++];
    d->decision = ev->decision;
    d->mode = ev->mode;
    d->category = allow ? NONOPROXY_DENIAL_NONE : ev->denial_category;
    d->has_port = ev->has_port;
    d->port = ev->has_port ? ev->port : 0;
    d->count = 1;
    cli_printable(d->target, sizeof(d->target), ev->target);
}

void
cli_sink_audit(void *userdata, const struct nonoproxy_audit_event *ev)
{
    struct cli_sink *s = userdata;
    size_t len = 0;

    (void)pthread_mutex_lock(&s->lock);
    if (ev->kind == NONOPROXY_EVENT_DECISION) {
        count_decision(s, ev);
    }
    if (s->audit_fd >= 0) {
        len = nonoproxy_audit_event_to_json(ev, s->json, sizeof(s->json) - 1);
        if (len >= sizeof(s->json) - 1) {
            len = strlen(s->json); /* cannot happen: the buffer holds NONOPROXY_AUDIT_JSON_MAX */
        }
        s->json[len++] = '\n';
        if (!cli_write_all(s->audit_fd, s->json, len)) {
            s->audit_write_errors++;
        }
    }
    (void)pthread_mutex_unlock(&s->lock);
}

void
cli_sink_install(struct cli_sink *s, const struct cli_args *a, struct nonoproxy_config *cfg)
{
    if (a->verbose >= 2) {
        s->max_level = NONOPROXY_LOG_DEBUG;
    } else if (a->verbose == 1) {
        s->max_level = NONOPROXY_LOG_INFO;
    } else {
        s->max_level = NONOPROXY_LOG_WARN;
    }
    if (a->quiet && a->verbose == 0) {
        cfg->log_cb = NULL; /* -q: not even warnings */
        cfg->log_userdata = NULL;
    } else {
        cfg->log_cb = log_line;
        cfg->log_userdata = s;
        cfg->log_level = s->max_level;
    }
    cfg->audit_cb = cli_sink_audit;
    cfg->audit_userdata = s;
}

/* Prints one summary row: "  allow  connect  example.com:443  x3 (category)". */
static void
print_dest(const struct cli_dest *d, FILE *out)
{
    const char *cat = nonoproxy_denial_category_name(d->category);
    bool v6 = strchr(d->target, ':') != NULL;
    char where[NONOPROXY_AUDIT_TARGET_LEN + 16];

    if (d->has_port) {
        (void)snprintf(where, sizeof(where), "%s%s%s:%u", v6 ? "[" : "", d->target, v6 ? "]" : "",
                       (unsigned)d->port);
    } else {
        (void)snprintf(where, sizeof(where), "%s", d->target[0] != '\0' ? d->target : "-");
    }
    (void)fprintf(out, "  %-5s  %-7s  %s  x%llu%s%s%s\n",
                  d->decision == NONOPROXY_DECISION_ALLOW ? "allow" : "deny",
                  nonoproxy_audit_mode_name(d->mode), where, (unsigned long long)d->count,
                  cat[0] != '\0' ? " (" : "", cat, cat[0] != '\0' ? ")" : "");
}

void
cli_sink_print_summary(struct cli_sink *s, FILE *out)
{
    size_t i = 0;

    (void)pthread_mutex_lock(&s->lock);
    (void)fprintf(out, "nonoproxy-run: %llu allowed, %llu denied\n", (unsigned long long)s->allowed,
                  (unsigned long long)s->denied);
    for (i = 0; i < s->n_dests; i++) { /* allowed rows first, then denied */
        if (s->dests[i].decision == NONOPROXY_DECISION_ALLOW) {
            print_dest(&s->dests[i], out);
        }
    }
    if (s->other_allowed > 0) {
        (void)fprintf(out, "  allow  (other destinations)  x%llu\n",
                      (unsigned long long)s->other_allowed);
    }
    for (i = 0; i < s->n_dests; i++) {
        if (s->dests[i].decision != NONOPROXY_DECISION_ALLOW) {
            print_dest(&s->dests[i], out);
        }
    }
    if (s->other_denied > 0) {
        (void)fprintf(out, "  deny   (other destinations)  x%llu\n",
                      (unsigned long long)s->other_denied);
    }
    if (s->audit_write_errors > 0) {
        (void)fprintf(out, "nonoproxy-run: warning: %llu audit log writes failed\n",
                      (unsigned long long)s->audit_write_errors);
    }
    (void)pthread_mutex_unlock(&s->lock);
}

void
cli_sink_destroy(struct cli_sink *s)
{
    if (s == NULL) {
        return;
    }
    if (s->audit_fd_owned) {
        (void)close(s->audit_fd);
    }
    (void)pthread_mutex_destroy(&s->lock);
    free(s);
}
