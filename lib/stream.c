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
};

void
np_stream_init_plain(struct np_stream *s, int fd, int stop_fd)
{
    s->ops = &plain_ops;
    s->fd = fd;
    s->stop_fd = stop_fd;
    s->impl = NULL;
}
