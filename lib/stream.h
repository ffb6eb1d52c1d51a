/* Byte streams (L2): one interface over a plain socket or a TLS connection, so that body
 * relaying and upstream I/O do not care which it is. Every call is bounded by a deadline
 * (np_now_ms based, 0 = never) and by the proxy's stop descriptor. */
#ifndef NP_STREAM_H
#define NP_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net.h"

struct np_stream;

struct np_stream_ops {
    /* Receive at most cap bytes; *got > 0 on NP_IO_OK. */
    enum np_io (*recv)(struct np_stream *s, void *buf, size_t cap, size_t *got, uint64_t deadline);
    /* Send all len bytes. */
    enum np_io (*send_all)(struct np_stream *s, const void *buf, size_t len, uint64_t deadline);
    /* Whether bytes are already buffered inside the stream (a poll() on fd would miss them). */
    bool (*pending)(const struct np_stream *s);
    /* Send the n (<= NP_NET_IOV_MAX) pieces of iov as one stream (iov is consumed); NULL =
     * one send_all per piece. */
    enum np_io (*sendv_all)(struct np_stream *s, struct iovec *iov, size_t n, uint64_t deadline);
};

struct np_stream {
    const struct np_stream_ops *ops;
    int fd;      /* the socket underneath (not owned by the stream) */
    int stop_fd; /* readable once the proxy shuts down; -1 = none */
    void *impl;  /* NULL for plain sockets; struct np_tls * for TLS */
};

/* Plain socket stream over fd. */
void np_stream_init_plain(struct np_stream *s, int fd, int stop_fd);

static inline enum np_io
np_stream_recv(struct np_stream *s, void *buf, size_t cap, size_t *got, uint64_t deadline)
{
    return s->ops->recv(s, buf, cap, got, deadline);
}

static inline enum np_io
np_stream_send_all(struct np_stream *s, const void *buf, size_t len, uint64_t deadline)
{
    return s->ops->send_all(s, buf, len, deadline);
}

/* Send the pieces iov[0..n) in order: one system call for a plain socket with room. */
enum np_io np_stream_sendv_all(struct np_stream *s, struct iovec *iov, size_t n, uint64_t deadline);

static inline bool
np_stream_pending(const struct np_stream *s)
{
    return s->ops->pending(s);
}

#endif /* NP_STREAM_H */
