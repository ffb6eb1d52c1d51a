/* nonoproxy-run --ask: one question at a time on /dev/tty, with a deadline (SPEC §13). */
#include "ask.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "sink.h"

#define PROG          "nonoproxy-run"
/* Longest answer kept ("always" and a little slack); a longer line is a "no". */
#define ANSWER_CAP    16
/* A question that waited behind others and has less than this left is not shown: a prompt
 * the user cannot answer in time only scrolls the terminal. */
#define ASK_MIN_MS    2000
#define ASK_QUEUED_MS 50 /* a question that got the lock later than this waited for another */
/* Room for one question: the host (at most 253 bytes, printable) and the method. */
#define PROMPT_CAP    512

struct cli_ask {
    int fd;             /* /dev/tty, O_RDWR | O_CLOEXEC */
    int cancel[2];      /* a byte in cancel[1] wakes every waiting question */
    atomic_bool closed; /* cli_ask_cancel() was called */
    pthread_mutex_t lock;
};

/* How one question ended. */
enum ask_end {
    ASK_LINE,      /* a line was read */
    ASK_TIMEOUT,   /* the deadline passed */
    ASK_CANCELLED, /* cli_ask_cancel() */
    ASK_EOF,       /* end of file (^D) or an error on the terminal */
};

struct cli_ask *
cli_ask_open(char *err, size_t err_len)
{
    struct cli_ask *ask = calloc(1, sizeof(*ask));
    char ebuf[128];
    int e = 0;

    if (ask == NULL) {
        (void)snprintf(err, err_len, "--ask: out of memory");
        return NULL;
    }
    ask->fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
    if (ask->fd < 0) {
        e = errno;
        (void)snprintf(err, err_len, "--ask: no terminal (/dev/tty): %s",
                       strerror_r(e, ebuf, sizeof(ebuf)));
        free(ask);
        return NULL;
    }
    if (pipe2(ask->cancel, O_CLOEXEC | O_NONBLOCK) != 0) {
        e = errno;
        (void)snprintf(err, err_len, "--ask: pipe2: %s", strerror_r(e, ebuf, sizeof(ebuf)));
        (void)close(ask->fd);
        free(ask);
        return NULL;
    }
    atomic_init(&ask->closed, false);
    (void)pthread_mutex_init(&ask->lock, NULL);
    return ask;
}

void
cli_ask_cancel(struct cli_ask *ask)
{
    ssize_t n = 0;

    if (ask == NULL || atomic_exchange(&ask->closed, true)) {
        return;
    }
    n = write(ask->cancel[1], "x", 1); /* never read: every poll sees it from now on */
    (void)n;
}

void
cli_ask_close(struct cli_ask *ask)
{
    if (ask == NULL) {
        return;
    }
    (void)close(ask->fd);
    (void)close(ask->cancel[0]);
    (void)close(ask->cancel[1]);
    (void)pthread_mutex_destroy(&ask->lock);
    free(ask);
}

/* Returns CLOCK_MONOTONIC in milliseconds. */
static uint64_t
now_ms(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Writes all of text to fd (the terminal); errors are ignored (the answer decides). */
static void
tty_write(int fd, const char *text)
{
    (void)cli_write_all(fd, text, strlen(text));
}

/* Returns the poll timeout until deadline (0 = none: -1, wait), at least 0. */
static int
poll_timeout(uint64_t deadline)
{
    uint64_t now = 0;

    if (deadline == 0) {
        return -1;
    }
    now = now_ms();
    if (now >= deadline) {
        return 0;
    }
    return deadline - now > INT32_MAX ? INT32_MAX : (int)(deadline - now);
}

/* Appends the n bytes of chunk to the line in buf (*len bytes, cap > 0), dropping what does
 * not fit; returns true when chunk holds the end of the line (then buf is NUL-terminated). */
static bool
take_chunk(char *buf, size_t cap, size_t *len, const char *chunk, size_t n)
{
    size_t i = 0;

    for (i = 0; i < n; i++) {
        if (chunk[i] == '\n' || chunk[i] == '\r') {
            buf[*len] = '\0';
            return true;
        }
        if (*len < cap - 1) {
            buf[(*len)++] = chunk[i];
        }
    }
    buf[*len] = '\0';
    return false;
}

/* Reads one line from the terminal into buf (cap > 0; a longer line is cut, and marked by a
 * full buffer) until deadline (0 = none) or a cancellation. */
static enum ask_end
read_line(const struct cli_ask *ask, uint64_t deadline, char *buf, size_t cap)
{
    struct pollfd pfd[2] = {{ask->fd, POLLIN, 0}, {ask->cancel[0], POLLIN, 0}};
    char chunk[64];
    size_t len = 0;
    ssize_t n = 0;
    int rc = 0;

    buf[0] = '\0';
    for (;;) {
        rc = poll(pfd, 2, poll_timeout(deadline));
        if (rc < 0 && errno == EINTR) {
            continue;
        }
        if (rc < 0 || (pfd[0].revents & (POLLERR | POLLHUP | POLLNVAL)) != 0) {
            return ASK_EOF;
        }
        if (pfd[1].revents != 0) {
            return ASK_CANCELLED;
        }
        if (rc == 0) {
            return ASK_TIMEOUT;
        }
        n = read(ask->fd, chunk, sizeof(chunk));
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
            continue;
        }
        if (n <= 0) {
            return ASK_EOF;
        }
        if (take_chunk(buf, cap, &len, chunk, (size_t)n)) {
            return ASK_LINE;
        }
    }
}

/* Returns the decision for one answer line: y/yes once, a/always for the session (any case,
 * surrounding blanks ignored), anything else deny. */
static enum nonoproxy_decide_answer
parse_answer(char *line)
{
    char *end = NULL;

    while (*line == ' ' || *line == '\t') {
        line++;
    }
    end = line + strlen(line);
    while (end > line && (end[-1] == ' ' || end[-1] == '\t')) {
        *--end = '\0';
    }
    if (strcasecmp(line, "y") == 0 || strcasecmp(line, "yes") == 0) {
        return NONOPROXY_DECIDE_ALLOW_ONCE;
    }
    if (strcasecmp(line, "a") == 0 || strcasecmp(line, "always") == 0) {
        return NONOPROXY_DECIDE_ALLOW_SESSION;
    }
    return NONOPROXY_DECIDE_DENY;
}

/* Writes the question for q into buf: "allow HOST:PORT (METHOD)? ...", IPv6 in brackets, both
 * strings made printable (the host is normalised already; the method is the client's). */
static void
format_question(const struct nonoproxy_decide_query *q, char *buf, size_t cap)
{
    char host[300];
    char method[32];
    bool v6 = q->host != NULL && strchr(q->host, ':') != NULL;

    cli_printable(host, sizeof(host), q->host != NULL ? q->host : "?");
    cli_printable(method, sizeof(method), q->method != NULL ? q->method : "?");
    (void)snprintf(buf, cap, "\n" PROG ": allow %s%s%s:%u (%s)? [y]es once / [a]lways / [N]o ",
                   v6 ? "[" : "", host, v6 ? "]" : "", (unsigned)q->port, method);
}

/* Puts the terminal into line mode with echo for the question (the command may have left it
 * raw); *saved receives the modes to restore. False when fd's modes cannot be read. */
static bool
line_mode(int fd, struct termios *saved)
{
    struct termios t;

    if (tcgetattr(fd, saved) != 0) {
        return false;
    }
    t = *saved;
    t.c_lflag |= (tcflag_t)(ICANON | ECHO | ECHOE | ECHOK | ISIG);
    t.c_iflag |= (tcflag_t)ICRNL;
    t.c_oflag |= (tcflag_t)(OPOST | ONLCR);
    (void)tcsetattr(fd, TCSANOW, &t);
    return true;
}

/* Writes what was decided, after the line the user typed (or after the question). */
static void
tell(int fd, enum ask_end end, enum nonoproxy_decide_answer a, uint32_t timeout_ms)
{
    char msg[128];

    if (end == ASK_TIMEOUT) {
        (void)snprintf(msg, sizeof(msg), "\n" PROG ": no answer within %u s: denied\n",
                       (unsigned)((timeout_ms + 999u) / 1000u));
    } else if (end != ASK_LINE) {
        (void)snprintf(msg, sizeof(msg), "\n" PROG ": denied\n");
    } else if (a == NONOPROXY_DECIDE_ALLOW_ONCE) {
        (void)snprintf(msg, sizeof(msg), PROG ": allowed once\n");
    } else if (a == NONOPROXY_DECIDE_ALLOW_SESSION) {
        (void)snprintf(msg, sizeof(msg), PROG ": allowed until " PROG " exits\n");
    } else {
        (void)snprintf(msg, sizeof(msg), PROG ": denied\n");
    }
    tty_write(fd, msg);
}

enum nonoproxy_decide_answer
cli_ask_decide(void *userdata, const struct nonoproxy_decide_query *q)
{
    struct cli_ask *ask = userdata;
    enum nonoproxy_decide_answer answer = NONOPROXY_DECIDE_DENY;
    uint64_t deadline = q->timeout_ms > 0 ? now_ms() + q->timeout_ms : 0;
    char question[PROMPT_CAP];
    char line[ANSWER_CAP];
    struct termios saved;
    bool restore = false;
    enum ask_end end = ASK_CANCELLED;
    uint64_t shown_ms;
    uint64_t asked = now_ms();

    (void)pthread_mutex_lock(&ask->lock); /* one question at a time */
    if (atomic_load(&ask->closed)) {
        goto out; /* shutting down */
    }
    if (deadline != 0 && now_ms() > asked + ASK_QUEUED_MS && now_ms() + ASK_MIN_MS > deadline) {
        /* Its time ran out while another question was open: say so in one line. */
        format_question(q, question, sizeof(question));
        question[strcspn(question, "?")] = '\0';
        tty_write(ask->fd, question);
        tty_write(ask->fd, ": not asked (timed out behind another question): denied\n");
        goto out;
    }
    shown_ms = deadline != 0 ? deadline - now_ms() : 0;
    if (tcgetpgrp(ask->fd) != getpgrp()) {
        tty_write(ask->fd, "\n" PROG ": --ask: not in the terminal's foreground: denied\n");
        goto out;
    }
    format_question(q, question, sizeof(question));
    restore = line_mode(ask->fd, &saved);
    (void)tcflush(ask->fd, TCIFLUSH); /* type-ahead never answers a question it did not see */
    tty_write(ask->fd, question);
    end = read_line(ask, deadline, line, sizeof(line));
    if (end == ASK_LINE && strlen(line) < sizeof(line) - 1) {
        answer = parse_answer(line);
    }
    tell(ask->fd, end, answer, (uint32_t)shown_ms);
    if (restore) {
        (void)tcsetattr(ask->fd, TCSANOW, &saved);
    }
out:
    (void)pthread_mutex_unlock(&ask->lock);
    return answer;
}
