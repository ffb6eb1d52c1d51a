/* Sockets (L2). */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

socklen_t
np_sockaddr_len(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET6 ? (socklen_t)sizeof(struct sockaddr_in6)
                                     : (socklen_t)sizeof(struct sockaddr_in);
}

uint16_t
np_sockaddr_port(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET6) {
        return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    }
    return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

void
np_sockaddr_set_port(struct sockaddr_storage *ss, uint16_t port)
{
    if (ss->ss_family == AF_INET6) {
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
    } else {
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
    }
}

const char *
np_sockaddr_ntop(const struct sockaddr_storage *ss, char *buf, size_t cap)
{
    const void *a = ss->ss_family == AF_INET6
                        ? (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr
                        : (const void *)&((const struct sockaddr_in *)ss)->sin_addr;

    if (inet_ntop(ss->ss_family, a, buf, (socklen_t)cap) == NULL) {
        (void)snprintf(buf, cap, "?");
    }
    return buf;
}

void
np_net_nodelay(int fd)
{
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

void
np_net_close(int fd)
{
    if (fd >= 0) {
        (void)close(fd);
    }
}

int
np_net_listen(struct sockaddr_storage *ss, int backlog, int *fd)
{
    int s = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    socklen_t len = np_sockaddr_len(ss);
    int e;

    if (s < 0) {
        return -1;
    }
    (void)setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    np_net_nodelay(s); /* inherited by every accepted socket */
    if (ss->ss_family == AF_INET6) {
        (void)setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    if (bind(s, (const struct sockaddr *)ss, len) != 0 || listen(s, backlog) != 0 ||
        getsockname(s, (struct sockaddr *)ss, &len) != 0) {
        e = errno;
        (void)close(s);
        errno = e;
        return -1;
    }
    *fd = s;
    return 0;
}

/* Milliseconds left until deadline for poll(): -1 for none, 0 when passed. */
static int
poll_timeout(uint64_t deadline)
{
    uint64_t now;

    if (deadline == 0) {
        return -1;
    }
    now = np_now_ms();
    if (now >= deadline) {
        return 0;
    }
    if (deadline - now > 60000) {
        return 60000; /* re-check periodically; the caller's loop re-waits */
    }
    return (int)(deadline - now);
}

/* The client socket a worker relays an answer to (np_net_watch_peer), or -1. */
static _Thread_local int watched_peer = -1;

void
np_net_watch_peer(int fd)
{
    watched_peer = fd;
}

enum np_io
np_net_wait(int fd, short events, int stop_fd, uint64_t deadline)
{
    struct pollfd p[3];
    nfds_t n = 1;
    nfds_t stop_at = 0; /* index of stop_fd in p, 0 = not polled */
    nfds_t peer_at = 0; /* index of the watched peer in p, 0 = not polled */
    int r;

    p[0] = (struct pollfd){fd, events, 0};
    if (stop_fd >= 0) {
        stop_at = n;
        p[n++] = (struct pollfd){stop_fd, POLLIN, 0};
    }
    if (watched_peer >= 0 && watched_peer != fd && (events & POLLIN) != 0) {
        peer_at = n;
        p[n++] = (struct pollfd){watched_peer, POLLRDHUP, 0};
    }
    for (;;) {
        r = poll(p, n, poll_timeout(deadline));
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return NP_IO_ERR;
        }
        if (stop_at != 0 && p[stop_at].revents != 0) {
            return NP_IO_STOPPED;
        }
        if (p[0].revents != 0) {
            return NP_IO_OK;
        }
        if (peer_at != 0 && (p[peer_at].revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0) {
            errno = ECONNABORTED; /* the client left while we waited for bytes for it */
            return NP_IO_ERR;
        }
        if (deadline != 0 && np_now_ms() >= deadline) {
            return NP_IO_TIMEOUT;
        }
    }
}

enum np_io
np_net_recv(int fd, void *buf, size_t cap, size_t *got, struct np_until u)
{
    ssize_t r;
    enum np_io w;

    *got = 0;
    for (;;) {
        r = recv(fd, buf, cap, MSG_DONTWAIT);
        if (r > 0) {
            *got = (size_t)r;
            return NP_IO_OK;
        }
        if (r == 0) {
            return NP_IO_EOF;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            return NP_IO_ERR;
        }
        w = np_net_wait(fd, POLLIN, u.stop_fd, u.deadline);
        if (w != NP_IO_OK) {
            return w;
        }
    }
}

enum np_io
np_net_send_all(int fd, const void *buf, size_t len, int stop_fd, uint64_t deadline)
{
    const char *p = buf;
    ssize_t r;
    enum np_io w;

    while (len > 0) {
        r = send(fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (r > 0) {
            p += r;
            len -= (size_t)r;
            continue;
        }
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            return NP_IO_ERR;
        }
        w = np_net_wait(fd, POLLOUT, stop_fd, deadline);
        if (w != NP_IO_OK) {
            return w;
        }
    }
    return NP_IO_OK;
}

/* Drop the first sent bytes from iov[*first..n). */
static void
iov_advance(struct iovec *iov, size_t n, size_t *first, size_t sent)
{
    while (*first < n && sent >= iov[*first].iov_len) {
        sent -= iov[*first].iov_len;
        (*first)++;
    }
    if (*first < n) {
        iov[*first].iov_base = (char *)iov[*first].iov_base + sent;
        iov[*first].iov_len -= sent;
    }
}

enum np_io
np_net_sendv_all(int fd, struct iovec *iov, size_t n, int stop_fd, uint64_t deadline)
{
    size_t first = 0;
    ssize_t r;
    enum np_io w;

    iov_advance(iov, n, &first, 0); /* skip empty pieces */
    while (first < n) {
        struct msghdr m;

        memset(&m, 0, sizeof(m));
        m.msg_iov = iov + first;
        m.msg_iovlen = n - first;
        r = sendmsg(fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (r >= 0) {
            iov_advance(iov, n, &first, (size_t)r);
            continue;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            return NP_IO_ERR;
        }
        w = np_net_wait(fd, POLLOUT, stop_fd, deadline);
        if (w != NP_IO_OK) {
            return w;
        }
    }
    return NP_IO_OK;
}

/* Wait for a non-blocking connect on s to finish; returns the errno of the attempt or 0. */
static int
connect_finish(int s, uint32_t timeout_ms, int stop_fd, enum np_io *io)
{
    int soerr = 0;
    socklen_t sl = sizeof(soerr);

    struct pollfd p[2] = {{s, POLLOUT, 0}, {stop_fd, POLLIN, 0}};
    uint64_t deadline = np_deadline(timeout_ms);
    int r;

    for (;;) {
        r = poll(p, stop_fd >= 0 ? 2 : 1, poll_timeout(deadline));
        if (r < 0 && errno != EINTR) {
            *io = NP_IO_ERR;
            return errno;
        }
        if (stop_fd >= 0 && p[1].revents != 0) {
            *io = NP_IO_STOPPED;
            return ECANCELED;
        }
        if (r > 0 && p[0].revents != 0) {
            break;
        }
        if (deadline != 0 && np_now_ms() >= deadline) {
            *io = NP_IO_TIMEOUT;
            return ETIMEDOUT;
        }
    }
    *io = NP_IO_OK;
    if (p[0].revents == POLLOUT) {
        return 0; /* writable without error or hang-up: connected */
    }
    if (getsockopt(s, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0) {
        soerr = errno;
    }
    if (soerr != 0) {
        *io = NP_IO_ERR;
    }
    return soerr;
}

enum np_io
np_net_connect(const struct sockaddr_storage *ss, struct np_dial_limits lim, int *fd, int *err)
{
    enum np_io io = NP_IO_ERR;
    int s = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

    *err = 0;
    if (s < 0) {
        *err = errno;
        return NP_IO_ERR;
    }
    if (connect(s, (const struct sockaddr *)ss, np_sockaddr_len(ss)) != 0) {
        if (errno != EINPROGRESS && errno != EINTR) {
            *err = errno;
            goto out;
        }
        *err = connect_finish(s, lim.timeout_ms, lim.stop_fd, &io);
        if (*err != 0) {
            goto out;
        }
    }
    np_net_nodelay(s);
    *fd = s;
    s = -1;
    io = NP_IO_OK;
out:
    np_net_close(s);
    return io;
}

enum np_io
np_net_connect_any(const struct sockaddr_storage *addrs, size_t n, struct np_dial_limits lim,
                   int *fd, int *err)
{
    bool timed_out = false;
    size_t i;

    *err = EHOSTUNREACH; /* no address at all */
    for (i = 0; i < n; i++) {
        enum np_io io = np_net_connect(&addrs[i], lim, fd, err);

        if (io == NP_IO_OK || io == NP_IO_STOPPED) {
            return io;
        }
        /* The kernel's own SYN timeout (ETIMEDOUT from SO_ERROR) counts as one too. */
        timed_out = timed_out || io == NP_IO_TIMEOUT || *err == ETIMEDOUT;
    }
    return timed_out ? NP_IO_TIMEOUT : NP_IO_ERR;
}

int
np_net_resolve(void *userdata, const char *host, uint16_t port, struct nonoproxy_addrs *out)
{
    struct addrinfo hints;
    struct addrinfo *res = NULL;
    struct addrinfo *ai;
    char service[8];
    size_t n = 0;

    NP_UNUSED(userdata);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    (void)snprintf(service, sizeof(service), "%u", (unsigned)port);
    out->count = 0;
    if (getaddrinfo(host, service, &hints, &res) != 0) {
        return -1;
    }
    for (ai = res; ai != NULL && n < out->max; ai = ai->ai_next) {
        if ((ai->ai_family == AF_INET || ai->ai_family == AF_INET6) &&
            ai->ai_addrlen <= sizeof(out->addrs[n])) {
            memset(&out->addrs[n], 0, sizeof(out->addrs[n]));
            memcpy(&out->addrs[n], ai->ai_addr, ai->ai_addrlen);
            n++;
        }
    }
    freeaddrinfo(res);
    out->count = n;
    return 0;
}
