/* Bidirectional relay (L2). One pipe (spliced relay) or one buffer (fallback) per direction: a
 * direction reads only when its pipe or buffer is empty and writes what is pending, so memory
 * stays bounded and back-pressure propagates. A byte is counted when it reaches the other side.
 *
 * splice(2) from a socket into a pipe and from the pipe into the other socket moves page
 * references, not bytes: the tunnel's data never enters the process. Sockets are made
 * non-blocking for it (splice honours the socket's O_NONBLOCK, not SPLICE_F_NONBLOCK), and the
 * thread blocks SIGPIPE once (splice into a socket has no MSG_NOSIGNAL). */
#include "pump.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NP_SPLICE_LEN      ((size_t)1024 * 1024) /* asked per splice into a pipe; the pipe bounds it */
#define NP_PUMP_BURST      8                     /* read/write rounds per direction between polls */
#define NP_PUMP_MORE       ((size_t)16 * 1024) /* a read this large suggests more is waiting */
/* A direction that has moved NP_PIPE_GROW_AFTER bytes is bulk: its pipe grows to NP_PIPE_BULK
 * (16 times fewer splices than the 64 KiB default; the most an unprivileged process may ask)
 * and shrinks back when the tunnel ends, so that idle workers hold no large pipe: pipe pages
 * count against the user's pipe-user-pages-soft limit. */
#define NP_PIPE_GROW_AFTER ((uint64_t)1024 * 1024)
#define NP_PIPE_BULK       (1024 * 1024)
#define NP_PIPE_DEFAULT    (64 * 1024)

static atomic_bool splice_off; /* test hook: np_pump_splice_disable */
static atomic_bool pipe_fail;  /* test hook: np_pump_pipe_fail */

void
np_pump_splice_disable(bool off)
{
    atomic_store_explicit(&splice_off, off, memory_order_relaxed);
}

void
np_pump_pipe_fail(bool fail)
{
    atomic_store_explicit(&pipe_fail, fail, memory_order_relaxed);
}

bool
np_pipes_ready(struct np_pipes *p)
{
#ifdef __linux__
    if (atomic_load_explicit(&splice_off, memory_order_relaxed)) {
        return false;
    }
    if (p->open) {
        return true;
    }
    if (atomic_load_explicit(&pipe_fail, memory_order_relaxed)) {
        errno = EMFILE;
        return false;
    }
    if (pipe2(p->ab, O_CLOEXEC | O_NONBLOCK) != 0) {
        return false;
    }
    if (pipe2(p->ba, O_CLOEXEC | O_NONBLOCK) != 0) {
        (void)close(p->ab[0]);
        (void)close(p->ab[1]);
        return false;
    }
    p->open = true;
    return true;
#else
    (void)p;
    return false;
#endif
}

void
np_pipes_close(struct np_pipes *p)
{
    if (p != NULL && p->open) {
        (void)close(p->ab[0]);
        (void)close(p->ab[1]);
        (void)close(p->ba[0]);
        (void)close(p->ba[1]);
        p->open = false;
    }
}

struct dir {
    struct np_pump *p;
    int from;
    int to;
    int pr;     /* pipe read end, -1 = buffer relay */
    int pw;     /* pipe write end */
    char **buf; /* &p->buf_ab or &p->buf_ba */
    size_t len; /* pending bytes: in the pipe, or in the buffer */
    size_t off; /* buffer relay: already written of them */
    size_t got; /* bytes of the last read */
    bool eof;   /* from reached end of stream */
    bool done;  /* eof and flushed; to's write half shut down */
    bool grown; /* its pipe was grown to NP_PIPE_BULK */
    uint64_t *count;
};

/* A direction falls back to its buffer: splice refused, or no pipes. */
static int
dir_use_buffer(struct dir *d)
{
    d->pr = -1;
    d->pw = -1;
    if (*d->buf == NULL && (d->p->want_bufs == NULL || !d->p->want_bufs(d->p) || *d->buf == NULL)) {
        return -1;
    }
    return 0;
}

static ssize_t
move_in(struct dir *d)
{
#ifdef __linux__
    ssize_t r;

    if (d->pr >= 0) {
        r = splice(d->from, NULL, d->pw, NULL, NP_SPLICE_LEN, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (r >= 0 || (errno != EINVAL && errno != ENOSYS)) {
            return r;
        }
        /* This socket cannot be spliced; the pipe is empty (a read needs len == 0). */
        if (dir_use_buffer(d) != 0) {
            errno = ENOMEM;
            return -1;
        }
    }
#endif
    return recv(d->from, *d->buf, d->p->buf_cap, MSG_DONTWAIT);
}

static ssize_t
move_out(struct dir *d)
{
#ifdef __linux__
    if (d->pr >= 0) {
        return splice(d->pr, NULL, d->to, NULL, d->len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    }
#endif
    return send(d->to, *d->buf + d->off, d->len - d->off, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* Grow a bulk direction's pipe once (a failure, e.g. over the user's limit, is ignored). */
static void
pipe_grow(struct dir *d)
{
#ifdef __linux__
    if (!d->grown && *d->count >= NP_PIPE_GROW_AFTER) {
        d->grown = true;
        (void)fcntl(d->pw, F_SETPIPE_SZ, NP_PIPE_BULK);
    }
#else
    (void)d;
#endif
}

/* Shrink a grown pipe back to the default once it is empty again. */
static void
pipe_shrink(const struct dir *d)
{
#ifdef __linux__
    if (d->grown && d->pr >= 0 && d->len == 0) {
        (void)fcntl(d->pw, F_SETPIPE_SZ, NP_PIPE_DEFAULT);
    }
#else
    (void)d;
#endif
}

/* Read into d's empty pipe or buffer. Returns -1 on error, 1 on progress, 0 when nothing
 * happened. */
static int
dir_read(struct dir *d)
{
    ssize_t r = move_in(d);

    d->got = r > 0 ? (size_t)r : 0;
    if (r > 0) {
        d->len = (size_t)r;
        d->off = 0;
        return 1;
    }
    if (r == 0) {
        d->eof = true;
        return 1;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        return 0;
    }
    return -1;
}

/* Write d's pending bytes. Returns -1 on error, 1 on progress, 0 when nothing happened. */
static int
dir_write(struct dir *d)
{
    ssize_t r = move_out(d);

    if (r > 0) {
        *d->count += (uint64_t)r;
        if (d->pr >= 0) {
            d->len -= (size_t)r;
            pipe_grow(d);
        } else {
            d->off += (size_t)r;
            if (d->off == d->len) {
                d->len = 0;
                d->off = 0;
            }
        }
        return 1;
    }
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        return 0;
    }
    return -1;
}

/* After end of stream with nothing pending, pass the half-close on. */
static void
dir_finish(struct dir *d)
{
    if (d->eof && d->len == 0 && !d->done) {
        (void)shutdown(d->to, SHUT_WR);
        d->done = true;
    }
}

/* Poll events wanted on d->from (read side) and d->to (write side). */
static short
want_read(const struct dir *d)
{
    return (!d->eof && d->len == 0) ? POLLIN : 0;
}

static short
want_write(const struct dir *d)
{
    return d->len > 0 ? POLLOUT : 0;
}

/* Read and write in turn while each write empties what the read brought and the reads are
 * large (a bulk transfer): a few rounds without a poll between them. */
static int
dir_burst(struct dir *d)
{
    int prog = 0;
    int r;
    int i;

    for (i = 0; i < NP_PUMP_BURST; i++) {
        r = dir_read(d);
        if (r < 0) {
            return -1;
        }
        prog |= r;
        if (d->len == 0) {
            break; /* nothing more to read now, or end of stream */
        }
        if (dir_write(d) < 0) {
            return -1;
        }
        if (d->len > 0 || d->got < NP_PUMP_MORE) {
            break;
        }
    }
    return prog;
}

/* Serve the readiness poll reported for one direction. Returns -1 on error, else progress. */
static int
dir_step(struct dir *d, short from_rev, short to_rev)
{
    int prog = 0;
    int r;

    if (d->len > 0 && (to_rev & (POLLOUT | POLLERR | POLLHUP)) != 0) {
        r = dir_write(d);
        if (r < 0) {
            return -1;
        }
        prog |= r;
    }
    if (!d->eof && d->len == 0 && (from_rev & (POLLIN | POLLERR | POLLHUP)) != 0) {
        r = dir_burst(d);
        if (r < 0) {
            return -1;
        }
        prog |= r;
    }
    dir_finish(d);
    return prog;
}

/* Fill the poll set for one turn: a side with nothing wanted is left out (fd -1), since its
 * POLLHUP would spin the loop. Returns the set's size. */
static nfds_t
pump_poll_set(const struct np_pump *p, const struct dir *ab, const struct dir *ba,
              struct pollfd *pf)
{
    pf[0].events = (short)(want_read(ab) | want_write(ba));
    pf[0].fd = pf[0].events != 0 ? p->a : -1;
    pf[1].events = (short)(want_read(ba) | want_write(ab));
    pf[1].fd = pf[1].events != 0 ? p->b : -1;
    pf[0].revents = 0;
    pf[1].revents = 0;
    pf[2] = (struct pollfd){p->stop_fd, POLLIN, 0};
    return p->stop_fd >= 0 ? 3 : 2;
}

/* The poll timeout of the next turn: quiet_ms while on_quiet is still due, else what is
 * left of the idle timeout (idle_ms, minus quiet_ms right after on_quiet ran). */
static int
pump_timeout(const struct np_pump *p, bool quiet_due, bool after_quiet)
{
    int idle = p->idle_ms == 0 ? -1 : p->idle_ms > INT_MAX ? INT_MAX : (int)p->idle_ms;

    if (quiet_due) {
        return (int)p->quiet_ms;
    }
    return after_quiet && idle > 0 ? idle - (int)p->quiet_ms : idle;
}

static enum np_pump_end
pump_loop(struct np_pump *p, struct dir *ab, struct dir *ba)
{
    struct pollfd pf[3];
    /* The idle timer restarts at every wake-up: a poll that sees nothing for idle_ms is the
     * idle timeout, and no clock is read per turn. */
    bool quiet_due = p->on_quiet != NULL && p->quiet_ms > 0 && p->quiet_ms < INT_MAX &&
                     (p->idle_ms == 0 || p->quiet_ms < p->idle_ms);
    int timeout = pump_timeout(p, quiet_due, false);
    nfds_t n;
    int r;

    while (!(ab->done && ba->done)) {
        n = pump_poll_set(p, ab, ba, pf);
        r = poll(pf, n, timeout);
        if (r < 0 && errno != EINTR) {
            return NP_PUMP_ERROR;
        }
        if (n == 3 && pf[2].revents != 0) {
            return NP_PUMP_STOPPED;
        }
        if (r == 0 && !quiet_due) {
            return NP_PUMP_IDLE;
        }
        if (r == 0) {
            quiet_due = false;
            p->on_quiet(p);
            timeout = pump_timeout(p, false, true);
            continue;
        }
        if (r < 0) {
            continue;
        }
        if (dir_step(ab, pf[0].revents, pf[1].revents) < 0 ||
            dir_step(ba, pf[1].revents, pf[0].revents) < 0) {
            return NP_PUMP_ERROR;
        }
        timeout = pump_timeout(p, quiet_due, false);
    }
    return NP_PUMP_DONE;
}

/* Make the sockets non-blocking and keep SIGPIPE off this thread (once per thread: the mask
 * stays). A SIGPIPE raised by a splice into a reset socket then stays pending on the thread
 * and is discarded by cleanup_sigpipe. */
static void
prepare_splice(const struct np_pump *p)
{
    static _Thread_local bool masked;
    sigset_t set;
    int one = 1;

    if (!p->nonblocking) {
        (void)ioctl(p->a, FIONBIO, &one);
        (void)ioctl(p->b, FIONBIO, &one);
    }
    if (!masked) {
        sigemptyset(&set);
        sigaddset(&set, SIGPIPE);
        masked = pthread_sigmask(SIG_BLOCK, &set, NULL) == 0;
    }
}

/* Discard a SIGPIPE a splice raised on this thread (only after an error). */
static void
cleanup_sigpipe(void)
{
    sigset_t set;
    const struct timespec zero = {0, 0};

    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    while (sigtimedwait(&set, NULL, &zero) == SIGPIPE) {
    }
}

enum np_pump_end
np_pump_run(struct np_pump *p)
{
    bool spliced = p->pipes != NULL && p->pipes->open;
    struct dir ab = {p, p->a, p->b, -1, -1, &p->buf_ab, 0, 0, 0, false, false, false, &p->bytes_ab};
    struct dir ba = {p, p->b, p->a, -1, -1, &p->buf_ba, 0, 0, 0, false, false, false, &p->bytes_ba};
    enum np_pump_end end;

    if (spliced) {
        ab.pr = p->pipes->ab[0];
        ab.pw = p->pipes->ab[1];
        ba.pr = p->pipes->ba[0];
        ba.pw = p->pipes->ba[1];
        prepare_splice(p);
    } else if (dir_use_buffer(&ab) != 0 || dir_use_buffer(&ba) != 0) {
        return NP_PUMP_ERROR;
    }
    end = pump_loop(p, &ab, &ba);
    if (spliced && end != NP_PUMP_DONE) {
        cleanup_sigpipe();
    }
    /* Bytes left in a pipe belong to this tunnel: never let the next one read them. */
    if ((ab.pr >= 0 && ab.len > 0) || (ba.pr >= 0 && ba.len > 0)) {
        np_pipes_close(p->pipes);
    } else {
        pipe_shrink(&ab);
        pipe_shrink(&ba);
    }
    return end;
}
