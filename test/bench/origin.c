/* Benchmark origin server: see origin.h. */
#include "origin.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ORIGIN_HEAD_CAP 8192
#define ORIGIN_STACK    ((size_t)256 * 1024)

struct origin_worker {
    _Alignas(64) _Atomic uint64_t sink_bytes; /* one cache line per worker */
    _Atomic uint64_t errors;
    struct origin *o;
    pthread_t thread;
    char *buf; /* BENCH_IO_CHUNK bytes */
    bool started;
};

struct origin {
    int listen_fd;
    uint16_t port;
    atomic_bool stopping;
    unsigned nthreads;
    struct origin_worker *w;
    char response[256];
    size_t response_len;
};

void
bench_sock_setup(int fd)
{
    int one = 1;
    struct timeval tv = {BENCH_SOCK_TIMEOUT_S, 0};

    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* Send all of buf. Returns 0 or -1. */
int
bench_send_all(int fd, const char *buf, size_t len)
{
    size_t off = 0;
    ssize_t r;

    while (off < len) {
        r = send(fd, buf + off, len - off, MSG_NOSIGNAL);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return -1;
        }
        off += (size_t)r;
    }
    return 0;
}

/* An event stream: the head, then (a second write) the first event, then wait until the client
 * goes away (bounded by the socket timeout). The body is delimited by the end of the stream. */
static void
serve_sse(struct origin_worker *w, int fd)
{
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                               "Cache-Control: no-cache\r\nConnection: close\r\n\r\n";
    static const char event[] = "data: first\n\n";
    ssize_t r;

    if (bench_send_all(fd, head, sizeof(head) - 1) != 0 ||
        bench_send_all(fd, event, sizeof(event) - 1) != 0) {
        atomic_fetch_add_explicit(&w->errors, 1, memory_order_relaxed);
        return;
    }
    do {
        r = recv(fd, w->buf, ORIGIN_HEAD_CAP, 0);
    } while (r > 0 || (r < 0 && errno == EINTR));
}

/* Read the rest of a "GET" head (have bytes already in buf), answer, return. */
static void
serve_get(struct origin_worker *w, int fd, size_t have)
{
    struct origin *o = w->o;
    ssize_t r;

    while (memmem(w->buf, have, "\r\n\r\n", 4) == NULL) {
        if (have >= ORIGIN_HEAD_CAP) {
            atomic_fetch_add_explicit(&w->errors, 1, memory_order_relaxed);
            return;
        }
        r = recv(fd, w->buf + have, ORIGIN_HEAD_CAP - have, 0);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            atomic_fetch_add_explicit(&w->errors, 1, memory_order_relaxed);
            return;
        }
        have += (size_t)r;
    }
    if (memcmp(w->buf, "GET /sse/", 9) == 0) {
        serve_sse(w, fd);
    } else if (bench_send_all(fd, o->response, o->response_len) != 0) {
        atomic_fetch_add_explicit(&w->errors, 1, memory_order_relaxed);
    }
}

/* Send BENCH_IO_CHUNK blocks until the peer goes away (or stops reading for the timeout). */
static void
serve_source(struct origin_worker *w, int fd)
{
    ssize_t r;

    for (;;) {
        r = send(fd, w->buf, BENCH_IO_CHUNK, MSG_NOSIGNAL);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return;
        }
    }
}

/* Count received bytes until end of stream. */
static void
serve_sink(struct origin_worker *w, int fd, size_t extra)
{
    ssize_t r;

    atomic_fetch_add_explicit(&w->sink_bytes, extra, memory_order_relaxed);
    for (;;) {
        r = recv(fd, w->buf, BENCH_IO_CHUNK, 0);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return;
        }
        atomic_fetch_add_explicit(&w->sink_bytes, (uint64_t)r, memory_order_relaxed);
    }
}

/* Read the first four bytes of a connection and serve the role they name. */
static void
serve(struct origin_worker *w, int fd)
{
    size_t have = 0;
    ssize_t r;

    while (have < 4) {
        r = recv(fd, w->buf + have, ORIGIN_HEAD_CAP - have, 0);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return; /* a client that gave up before its first bytes */
        }
        have += (size_t)r;
    }
    if (memcmp(w->buf, "GET ", 4) == 0) {
        serve_get(w, fd, have);
    } else if (memcmp(w->buf, "SRC\n", 4) == 0) {
        serve_source(w, fd);
    } else if (memcmp(w->buf, "SNK\n", 4) == 0) {
        serve_sink(w, fd, have - 4);
    } else {
        atomic_fetch_add_explicit(&w->errors, 1, memory_order_relaxed);
    }
}

/* Accept and serve connections until the origin stops. */
static void *
origin_main(void *arg)
{
    struct origin_worker *w = arg;
    struct origin *o = w->o;
    struct timespec pause = {0, 1000000L};
    int fd;

    (void)pthread_setname_np(pthread_self(), "bench-origin"); /* tells perf samples apart */
    for (;;) {
        fd = accept4(o->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (atomic_load(&o->stopping)) {
                break;
            }
            if (errno != EINTR && errno != ECONNABORTED) {
                nanosleep(&pause, NULL); /* EMFILE and the like: do not spin */
            }
            continue;
        }
        bench_sock_setup(fd);
        serve(w, fd);
        (void)close(fd);
    }
    return NULL;
}

/* Bind the listening socket on 127.0.0.1:0 and learn its port. Returns 0 or -1. */
static int
origin_listen(struct origin *o)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    int one = 1;

    o->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (o->listen_fd < 0) {
        return -1;
    }
    (void)setsockopt(o->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(o->listen_fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
        listen(o->listen_fd, 4096) != 0 ||
        getsockname(o->listen_fd, (struct sockaddr *)&sin, &len) != 0) {
        return -1;
    }
    o->port = ntohs(sin.sin_port);
    return 0;
}

/* Build the fixed ~100-byte answer to "GET". */
static void
origin_make_response(struct origin *o)
{
    static const char body[] = "nonoproxy bench origin: ok\n";
    int n = snprintf(o->response, sizeof(o->response),
                     "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s",
                     sizeof(body) - 1, body);

    o->response_len = n > 0 ? (size_t)n : 0;
}

struct origin *
origin_start(unsigned nthreads)
{
    struct origin *o = calloc(1, sizeof(*o));
    pthread_attr_t attr;
    unsigned i;

    if (o == NULL) {
        return NULL;
    }
    o->listen_fd = -1;
    atomic_init(&o->stopping, false);
    origin_make_response(o);
    o->nthreads = nthreads;
    o->w = calloc(nthreads, sizeof(*o->w));
    if (o->w == NULL || origin_listen(o) != 0) {
        perror("origin: listen");
        origin_stop(o);
        return NULL;
    }
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, ORIGIN_STACK);
    for (i = 0; i < nthreads; i++) {
        struct origin_worker *w = &o->w[i];
        w->o = o;
        atomic_init(&w->sink_bytes, 0);
        atomic_init(&w->errors, 0);
        w->buf = malloc(BENCH_IO_CHUNK);
        if (w->buf != NULL) {
            memset(w->buf, 'x', BENCH_IO_CHUNK);
        }
        if (w->buf == NULL || pthread_create(&w->thread, &attr, origin_main, w) != 0) {
            fprintf(stderr, "origin: cannot start thread %u\n", i);
            pthread_attr_destroy(&attr);
            origin_stop(o);
            return NULL;
        }
        w->started = true;
    }
    pthread_attr_destroy(&attr);
    return o;
}

uint16_t
origin_port(const struct origin *o)
{
    return o->port;
}

uint64_t
origin_sink_bytes(struct origin *o)
{
    uint64_t sum = 0;
    unsigned i;

    for (i = 0; i < o->nthreads; i++) {
        sum += atomic_load_explicit(&o->w[i].sink_bytes, memory_order_relaxed);
    }
    return sum;
}

uint64_t
origin_errors(struct origin *o)
{
    uint64_t sum = 0;
    unsigned i;

    for (i = 0; i < o->nthreads; i++) {
        sum += atomic_load_explicit(&o->w[i].errors, memory_order_relaxed);
    }
    return sum;
}

void
origin_stop(struct origin *o)
{
    unsigned i;

    if (o == NULL) {
        return;
    }
    atomic_store(&o->stopping, true);
    if (o->listen_fd >= 0) {
        (void)shutdown(o->listen_fd, SHUT_RDWR); /* wakes every thread blocked in accept() */
    }
    for (i = 0; o->w != NULL && i < o->nthreads; i++) {
        if (o->w[i].started) {
            pthread_join(o->w[i].thread, NULL);
        }
        free(o->w[i].buf);
    }
    if (o->listen_fd >= 0) {
        (void)close(o->listen_fd);
    }
    free(o->w);
    free(o);
}
