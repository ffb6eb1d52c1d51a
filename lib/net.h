/* Sockets (L2): creating, connecting, waiting, resolving. (The relay in pump.c and the
 * listener's accept/refuse paths call recv/send/poll directly on sockets made here.) Every
 * descriptor is close-on-exec; every wait also watches the proxy's stop descriptor, so shutdown
 * interrupts any wait; sends never raise SIGPIPE. Reads and writes use MSG_DONTWAIT after
 * poll(), so no call can block past its deadline whatever the socket's mode. */
#ifndef NP_NET_H
#define NP_NET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <nonoproxy/config.h>

enum np_io {
    NP_IO_OK = 0,
    NP_IO_EOF,     /* orderly end of stream */
    NP_IO_TIMEOUT, /* the deadline passed */
    NP_IO_STOPPED, /* the stop descriptor became readable: the proxy is shutting down */
    NP_IO_ERR,     /* socket error; errno set */
};

/* Length of the sockaddr in ss according to its family. */
socklen_t np_sockaddr_len(const struct sockaddr_storage *ss);
uint16_t np_sockaddr_port(const struct sockaddr_storage *ss);
void np_sockaddr_set_port(struct sockaddr_storage *ss, uint16_t port);
/* "1.2.3.4" / "::1" without port into buf (capacity cap, ≥ INET6_ADDRSTRLEN). */
const char *np_sockaddr_ntop(const struct sockaddr_storage *ss, char *buf, size_t cap);

/* Create, bind and listen (SOCK_CLOEXEC, SO_REUSEADDR, IPV6_V6ONLY for v6). On success *fd
 * and ss's port (the bound one) are set. Returns 0 or -1 with errno. */
int np_net_listen(struct sockaddr_storage *ss, int backlog, int *fd);

/* Wait until fd has events (POLLIN / POLLOUT) or the deadline (np_now_ms based; 0 = never)
 * passes or stop_fd (-1 = none) becomes readable. POLLHUP/POLLERR count as ready. */
enum np_io np_net_wait(int fd, short events, int stop_fd, uint64_t deadline);

/* While fd >= 0, every np_net_wait for input on another descriptor on this thread also ends,
 * with NP_IO_ERR and errno ECONNABORTED, when fd's peer has closed or reset it (POLLRDHUP,
 * POLLHUP, POLLERR): a worker relaying a streamed answer to a client that left stops waiting
 * for the upstream's next bytes. -1 ends the watch. Per thread. */
void np_net_watch_peer(int fd);

/* Where a wait ends: at the deadline (np_now_ms based; 0 = never), or when stop_fd (-1 =
 * none) becomes readable. */
struct np_until {
    int stop_fd;
    uint64_t deadline;
};

/* Receive at most cap bytes into buf (waits as np_net_wait until u). *got > 0 on NP_IO_OK. */
enum np_io np_net_recv(int fd, void *buf, size_t cap, size_t *got, struct np_until u);

/* Send all len bytes. */
enum np_io np_net_send_all(int fd, const void *buf, size_t len, int stop_fd, uint64_t deadline);

/* Send the n (at most NP_NET_IOV_MAX) pieces iov[] as one stream, in as few system calls as
 * the socket takes them (one sendmsg when it has room): a head and the first body bytes leave
 * in one segment instead of two. iov[] is consumed (advanced over what was sent). */
#define NP_NET_IOV_MAX 4
enum np_io np_net_sendv_all(int fd, struct iovec *iov, size_t n, int stop_fd, uint64_t deadline);

/* How long one connect may take (0 = no limit of its own) and what abandons it. */
struct np_dial_limits {
    uint32_t timeout_ms;
    int stop_fd;
};

/* Connect a TCP socket to ss within lim. On success *fd is a connected, close-on-exec socket
 * with TCP_NODELAY (left non-blocking: every use goes through poll). On failure *err holds
 * errno (ETIMEDOUT, ...). */
enum np_io np_net_connect(const struct sockaddr_storage *ss, struct np_dial_limits lim, int *fd,
                          int *err);

/* Connect to addrs[0..n) in turn, each within lim, until one answers: the one connect loop of
 * every path (SPEC §3). Returns NP_IO_OK with *fd; NP_IO_STOPPED at shutdown; NP_IO_TIMEOUT
 * when no address connected and at least one timed out (⇒ 504 upstream_timeout); NP_IO_ERR
 * when every address refused or was unreachable, or n is 0 (⇒ 502 upstream_connect_failed).
 * *err holds the errno of the last failed attempt. */
enum np_io np_net_connect_any(const struct sockaddr_storage *addrs, size_t n,
                              struct np_dial_limits lim, int *fd, int *err);

/* TCP_NODELAY on. */
void np_net_nodelay(int fd);

/* Close fd if it is not -1 (errors ignored: the descriptor is gone either way). */
void np_net_close(int fd);

/* The default resolver (getaddrinfo, SOCK_STREAM, AF_UNSPEC); matches nonoproxy_resolve_fn. */
int np_net_resolve(void *userdata, const char *host, uint16_t port, struct nonoproxy_addrs *out);

#endif /* NP_NET_H */
