/* A single-threaded poll() server for load tests (see loopsrv.h). */
#include "loopsrv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define HEAD_CAP 4096

struct lconn {
    int fd;
    size_t len; /* bytes of the request head seen so far */
    int done;   /* the answer was sent (STALL: waiting for the peer to go) */
    char head[HEAD_CAP];
};

struct loopsrv {
    enum loopsrv_kind kind;
    int fd;
    uint16_t port;
    int stop_pipe[2];
    pthread_t thread;
    atomic_uint accepted;
    atomic_uint open;
    struct lconn *c[LOOPSRV_MAX];
    struct pollfd pf[LOOPSRV_MAX + 2];
    size_t idx[LOOPSRV_MAX]; /* pf[2 + k] is connection idx[k] */
};

static void
lconn_close(struct loopsrv *s, size_t i, int reset)
{
    if (reset) {
        struct linger lg = {1, 0};
        (void)setsockopt(s->c[i]->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    close(s->c[i]->fd);
    free(s->c[i]);
    s->c[i] = NULL;
    atomic_fetch_sub(&s->open, 1);
}

static void
send_all(int fd, const char *p, size_t n)
{
    struct pollfd pf = {fd, POLLOUT, 0};
    int tries = 0;

    while (n > 0 && tries < 100) {
        ssize_t r = send(fd, p, n, MSG_NOSIGNAL);
        if (r > 0) {
            p += r;
            n -= (size_t)r;
        } else if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            (void)poll(&pf, 1, 100);
            tries++;
        } else {
            return;
        }
    }
}

/* An answer for a complete head; returns whether the connection is to be closed. */
static int
answer(struct loopsrv *s, size_t i)
{
    static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
    static const char part[] = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial";
    int fd = s->c[i]->fd;

    if (s->kind == LOOPSRV_ORIGIN) {
        send_all(fd, ok, sizeof(ok) - 1);
        lconn_close(s, i, 0);
        return 1;
    }
    send_all(fd, part, sizeof(part) - 1);
    if (s->kind == LOOPSRV_RESET) {
        lconn_close(s, i, 1);
        return 1;
    }
    s->c[i]->done = 1;
    return 0;
}

static void
on_readable(struct loopsrv *s, size_t i)
{
    struct lconn *c = s->c[i];
    char buf[4096];
    ssize_t r = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);

    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        return;
    }
    if (r <= 0) {
        if (s->kind == LOOPSRV_ECHO && r == 0) {
            (void)shutdown(c->fd, SHUT_WR);
        }
        lconn_close(s, i, 0);
        return;
    }
    if (s->kind == LOOPSRV_ECHO) {
        send_all(c->fd, buf, (size_t)r);
        return;
    }
    if (c->done) {
        return; /* STALL: discard */
    }
    if (c->len + (size_t)r >= HEAD_CAP) {
        lconn_close(s, i, 0);
        return;
    }
    memcpy(c->head + c->len, buf, (size_t)r);
    c->len += (size_t)r;
    c->head[c->len] = '\0';
    if (strstr(c->head, "\r\n\r\n") != NULL) {
        (void)answer(s, i);
    }
}

static void
on_accept(struct loopsrv *s)
{
    int fd = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    size_t i;

    if (fd < 0) {
        return;
    }
    atomic_fetch_add(&s->accepted, 1);
    for (i = 0; i < LOOPSRV_MAX; i++) {
        if (s->c[i] == NULL) {
            s->c[i] = calloc(1, sizeof(struct lconn));
            if (s->c[i] == NULL) {
                break;
            }
            s->c[i]->fd = fd;
            atomic_fetch_add(&s->open, 1);
            return;
        }
    }
    close(fd);
}

static void *
loop_main(void *arg)
{
    struct loopsrv *s = arg;
    size_t *idx = s->idx;

    for (;;) {
        nfds_t n = 2;
        size_t i;

        s->pf[0] = (struct pollfd){s->stop_pipe[0], POLLIN, 0};
        s->pf[1] = (struct pollfd){s->fd, POLLIN, 0};
        for (i = 0; i < LOOPSRV_MAX; i++) {
            if (s->c[i] != NULL) {
                idx[n - 2] = i;
                s->pf[n++] = (struct pollfd){s->c[i]->fd, POLLIN, 0};
            }
        }
        if (poll(s->pf, n, 1000) < 0) {
            continue;
        }
        if (s->pf[0].revents != 0) {
            break;
        }
        for (i = 2; i < n; i++) {
            if (s->pf[i].revents != 0 && s->c[idx[i - 2]] != NULL) {
                on_readable(s, idx[i - 2]);
            }
        }
        if (s->pf[1].revents != 0) {
            on_accept(s);
        }
    }
    for (size_t i = 0; i < LOOPSRV_MAX; i++) {
        if (s->c[i] != NULL) {
            lconn_close(s, i, 0);
        }
    }
    return NULL;
}

struct loopsrv *
loopsrv_start(enum loopsrv_kind kind)
{
    struct loopsrv *s = calloc(1, sizeof(*s));
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);

    if (s == NULL) {
        return NULL;
    }
    s->kind = kind;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->fd < 0 || bind(s->fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
        listen(s->fd, 1024) != 0 || getsockname(s->fd, (struct sockaddr *)&sin, &len) != 0 ||
        pipe2(s->stop_pipe, O_CLOEXEC) != 0) {
        if (s->fd >= 0) {
            close(s->fd);
        }
        free(s);
        return NULL;
    }
    s->port = ntohs(sin.sin_port);
    if (pthread_create(&s->thread, NULL, loop_main, s) != 0) {
        close(s->fd);
        close(s->stop_pipe[0]);
        close(s->stop_pipe[1]);
        free(s);
        return NULL;
    }
    return s;
}

uint16_t
loopsrv_port(const struct loopsrv *s)
{
    return s->port;
}

unsigned
loopsrv_accepted(const struct loopsrv *s)
{
    return atomic_load(&s->accepted);
}

unsigned
loopsrv_open(const struct loopsrv *s)
{
    return atomic_load(&s->open);
}

void
loopsrv_stop(struct loopsrv *s)
{
    if (s == NULL) {
        return;
    }
    (void)write(s->stop_pipe[1], "x", 1);
    pthread_join(s->thread, NULL);
    close(s->fd);
    close(s->stop_pipe[0]);
    close(s->stop_pipe[1]);
    free(s);
}
