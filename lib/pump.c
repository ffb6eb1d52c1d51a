/* Bidirectional relay (L2). One buffer per direction: a direction reads only when its buffer
 * is empty and writes what is pending, so memory stays bounded and back-pressure propagates. */
#include "pump.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "common.h"

struct dir {
    int from;
    int to;
    char *buf;
    size_t len; /* pending bytes */
    size_t off; /* already written of them */
    bool eof;   /* from reached end of stream */
    bool done;  /* eof and flushed; to's write half shut down */
    uint64_t *count;
};

/* Read into d's empty buffer. Returns -1 on error, 1 on progress, 0 when nothing happened. */
static int
dir_read(struct dir *d, size_t cap)
{
    ssize_t r = recv(d->from, d->buf, cap, MSG_DONTWAIT);

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
    ssize_t r = send(d->to, d->buf + d->off, d->len - d->off, MSG_DONTWAIT | MSG_NOSIGNAL);

    if (r > 0) {
        d->off += (size_t)r;
        *d->count += (uint64_t)r;
        if (d->off == d->len) {
            d->len = 0;
            d->off = 0;
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

/* Serve the readiness poll reported for one direction. Returns -1 on error, else progress. */
static int
dir_step(struct dir *d, short from_rev, short to_rev, size_t cap)
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
        r = dir_read(d, cap);
        if (r < 0) {
            return -1;
        }
        prog |= r;
        if (r > 0 && d->len > 0) {
            r = dir_write(d); /* opportunistic: usually completes at once */
            if (r < 0) {
                return -1;
            }
        }
    }
    dir_finish(d);
    return prog;
}

static int
poll_ms(uint64_t deadline)
{
    uint64_t now;

    if (deadline == 0) {
        return -1;
    }
    now = np_now_ms();
    return now >= deadline ? 0 : (int)(deadline - now);
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

enum np_pump_end
np_pump_run(struct np_pump *p)
{
    struct dir ab = {p->a, p->b, p->buf_ab, 0, 0, false, false, &p->bytes_ab};
    struct dir ba = {p->b, p->a, p->buf_ba, 0, 0, false, false, &p->bytes_ba};
    struct pollfd pf[3];
    uint64_t deadline = np_deadline(p->idle_ms);
    nfds_t n;
    int r;
    int r2;

    while (!(ab.done && ba.done)) {
        n = pump_poll_set(p, &ab, &ba, pf);
        r = poll(pf, n, poll_ms(deadline));
        if (r < 0 && errno != EINTR) {
            return NP_PUMP_ERROR;
        }
        if (n == 3 && pf[2].revents != 0) {
            return NP_PUMP_STOPPED;
        }
        if (r == 0 && deadline != 0 && np_now_ms() >= deadline) {
            return NP_PUMP_IDLE;
        }
        if (r <= 0) {
            continue;
        }
        r = dir_step(&ab, pf[0].revents, pf[1].revents, p->buf_cap);
        r2 = r < 0 ? -1 : dir_step(&ba, pf[1].revents, pf[0].revents, p->buf_cap);
        if (r2 < 0) {
            return NP_PUMP_ERROR;
        }
        if ((r | r2) != 0) {
            deadline = np_deadline(p->idle_ms);
        }
    }
    return NP_PUMP_DONE;
}
