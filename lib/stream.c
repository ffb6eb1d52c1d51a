/* Plain-socket streams (L2). */
#include "stream.h"

static enum np_io
plain_recv(struct np_stream *s, void *buf, size_t cap, size_t *got, uint64_t deadline)
{
    return np_net_recv(s->fd, buf, cap, got, (struct np_until){s->stop_fd, deadline});
}

static enum np_io
plain_send_all(struct np_stream *s, const void *buf, size_t len, uint64_t deadline)
{
    return np_net_send_all(s->fd, buf, len, s->stop_fd, deadline);
}

static enum np_io
plain_sendv_all(struct np_stream *s, struct iovec *iov, size_t n, uint64_t deadline)
{
    return np_net_sendv_all(s->fd, iov, n, s->stop_fd, deadline);
}

static bool
plain_pending(const struct np_stream *s)
{
    (void)s;
    return false;
}

static const struct np_stream_ops plain_ops = {
    .recv = plain_recv,
    .send_all = plain_send_all,
    .pending = plain_pending,
    .sendv_all = plain_sendv_all,
};

void
np_stream_init_plain(struct np_stream *s, int fd, int stop_fd)
{
    s->ops = &plain_ops;
    s->fd = fd;
    s->stop_fd = stop_fd;
    s->impl = NULL;
}

enum np_io
np_stream_sendv_all(struct np_stream *s, struct iovec *iov, size_t n, uint64_t deadline)
{
    size_t i;

    if (s->ops->sendv_all != NULL) {
        return s->ops->sendv_all(s, iov, n, deadline);
    }
    for (i = 0; i < n; i++) {
        enum np_io io = iov[i].iov_len > 0
                            ? s->ops->send_all(s, iov[i].iov_base, iov[i].iov_len, deadline)
                            : NP_IO_OK;

        if (io != NP_IO_OK) {
            return io;
        }
    }
    return NP_IO_OK;
}
