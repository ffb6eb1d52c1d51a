/* In-process tests of the tunnel relay (issue 12, item 1): on Linux a tunnel is spliced
 * through its worker's pipe pair; the buffer relay is the fallback (forced here through
 * lib/pump.h's test hook np_pump_splice_disable). Both must give the same bytes in the same
 * order, the early bytes first, exact counts in the close event, half-close each way and the
 * idle timeout. The pipe pair is reused by the worker's next tunnel, and must never carry one
 * tunnel's bytes into the next (a cross-tenant leak): a tunnel that ends with bytes stuck in
 * a pipe gets its pipes closed, and the next one new pipes.
 *
 * The data is a pattern of period 251 (byte k of a stream is k % 251, offset by a per-stream
 * seed), so that a lost, doubled or foreign byte shows as a mismatch at its position. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "pump.h"
#include "session.h"

#define PERIOD   251u
#define CHUNK    ((size_t)64 * 1024)
#define BIG      ((uint64_t)64 * 1024 * 1024)
#define NEARLY   20 /* early bytes: sent with the CONNECT head */
#define EVENT_MS 20000

static unsigned char pattern[PERIOD + CHUNK];

static void
pattern_init(void)
{
    size_t i;

    for (i = 0; i < sizeof(pattern); i++) {
        pattern[i] = (unsigned char)(i % PERIOD);
    }
}

/* The pattern bytes of a stream with seed s from its position pos on. */
static const unsigned char *
pattern_at(unsigned s, uint64_t pos)
{
    return pattern + (size_t)((pos + s) % PERIOD);
}

/* One end of a stream: sends n pattern bytes (seed s) from position from, then half-closes
 * when shut. */
struct sender {
    int fd;
    unsigned seed;
    uint64_t from;
    uint64_t n;
    bool shut;
    uint64_t sent; /* out */
};

static void *
send_main(void *arg)
{
    struct sender *s = arg;
    uint64_t pos = s->from;

    while (pos < s->from + s->n) {
        size_t k = (size_t)(s->from + s->n - pos < CHUNK ? s->from + s->n - pos : CHUNK);
        ssize_t r = send(s->fd, pattern_at(s->seed, pos), k, MSG_NOSIGNAL);

        if (r <= 0) {
            break;
        }
        pos += (uint64_t)r;
    }
    s->sent = pos - s->from;
    if (s->shut) {
        (void)shutdown(s->fd, SHUT_WR);
    }
    return NULL;
}

/* Read to end of stream, checking every byte against the pattern of seed s. Returns the byte
 * count, or UINT64_MAX at the first wrong byte. */
static uint64_t
recv_check(int fd, unsigned seed)
{
    static _Thread_local unsigned char buf[CHUNK];
    uint64_t pos = 0;
    ssize_t r;

    while ((r = recv(fd, buf, sizeof(buf), 0)) > 0) {
        if (memcmp(buf, pattern_at(seed, pos), (size_t)r) != 0) {
            return UINT64_MAX;
        }
        pos += (uint64_t)r;
    }
    return pos;
}

/* A one-connection origin on 127.0.0.1: accepts, then runs fn on the connection. */
struct origin {
    int lfd;
    uint16_t port;
    pthread_t t;
    void (*fn)(struct origin *o, int fd);
    uint64_t got;      /* bytes read and found right */
    uint64_t send_n;   /* bytes to send (seed 2) */
    uint64_t late_n;   /* sent after reading end of stream (half-close test) */
    uint64_t inq;      /* stuck test: bytes unread when it reset */
    int hold_ms;       /* stuck test: how long the stream must have stalled */
    const char *reply; /* leak test: what it answers */
};

static void *
origin_main(void *arg)
{
    struct origin *o = arg;
    int fd = accept(o->lfd, NULL, NULL);

    if (fd >= 0) {
        struct timeval tv = {30, 0};

        (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        o->fn(o, fd);
        close(fd);
    }
    return NULL;
}

static void
origin_start(struct origin *o, void (*fn)(struct origin *o, int fd))
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);

    o->fn = fn;
    o->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(o->lfd >= 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(o->lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(o->lfd, 4), 0);
    assert_int_equal(getsockname(o->lfd, (struct sockaddr *)&sin, &len), 0);
    o->port = ntohs(sin.sin_port);
    assert_int_equal(pthread_create(&o->t, NULL, origin_main, o), 0);
}

static void
origin_join(struct origin *o)
{
    pthread_join(o->t, NULL);
    close(o->lfd);
}

/* Bulk both ways: send send_n bytes (seed 2) while reading the client's stream (seed 1). */
static void
origin_bulk(struct origin *o, int fd)
{
    struct sender s = {fd, 2, 0, o->send_n, true, 0};
    pthread_t t;

    assert_int_equal(pthread_create(&t, NULL, send_main, &s), 0);
    o->got = recv_check(fd, 1);
    pthread_join(t, NULL);
}

/* Half-close from the client first: read its stream to the end, then still send late_n. */
static void
origin_late(struct origin *o, int fd)
{
    struct sender s = {fd, 2, 0, o->late_n, true, 0};

    o->got = recv_check(fd, 1);
    send_main(&s);
}

/* Half-close from the origin first: send send_n and shut down, then read the client's stream. */
static void
origin_first(struct origin *o, int fd)
{
    struct sender s = {fd, 2, 0, o->send_n, true, 0};

    send_main(&s);
    o->got = recv_check(fd, 1);
}

/* Read nothing and send as much as the client does not read, until both directions have
 * stalled (bytes then sit in the proxy's pipes), then reset. */
static void
origin_stuck(struct origin *o, int fd)
{
    struct linger lg = {1, 0};
    int n = 0;

    (void)send(fd, pattern, CHUNK, MSG_NOSIGNAL); /* blocking: fills what it can */
    for (;;) {
        struct pollfd pf = {fd, POLLOUT, 0};
        int inq = 0;
        int before;

        (void)ioctl(fd, FIONREAD, &before);
        if (poll(&pf, 1, o->hold_ms) == 1) {
            (void)send(fd, pattern, CHUNK, MSG_NOSIGNAL | MSG_DONTWAIT);
            continue;
        }
        (void)ioctl(fd, FIONREAD, &inq);
        if (inq == before && inq > 0 && ++n >= 2) {
            o->inq = (uint64_t)inq;
            break;
        }
    }
    (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

/* Read what the client sends up to its half-close, answer reply, close. */
static void
origin_reply(struct origin *o, int fd)
{
    char buf[4096];
    ssize_t r;

    while ((r = recv(fd, buf, sizeof(buf), 0)) > 0) {
        if (memchr(buf, 'A', (size_t)r) != NULL || (size_t)r + o->got > 64) {
            o->got = UINT64_MAX; /* a byte of the stuck tunnel, or more than was sent */
            return;
        }
        o->got += (uint64_t)r;
    }
    (void)send_str(fd, o->reply);
}

static struct nonoproxy_proxy *
start_proxy(uint32_t idle_ms, unsigned max_conn)
{
    struct nonoproxy_config cfg;
    struct nonoproxy_proxy *p = NULL;
    struct nonoproxy_diag diag;

    nonoproxy_config_init(&cfg);
    assert_int_equal(nonoproxy_config_allow_host(&cfg, "127.0.0.1", NULL), NONOPROXY_OK);
    cfg.idle_timeout_ms = idle_ms;
    cfg.max_connections = max_conn;
    memset(&diag, 0, sizeof(diag));
    if (nonoproxy_start(&cfg, &p, &diag) != NONOPROXY_OK) {
        fail_msg("nonoproxy_start: %s", diag.message);
    }
    nonoproxy_config_free(&cfg);
    return p;
}

/* Open a tunnel, sending early[0..n) in the same segment as the CONNECT head; the
 * answer head is read byte by byte so that no tunnel byte is taken with it. Retries a 503
 * (the one worker not yet back in the pool). Returns the fd. */
static int
tunnel(const struct nonoproxy_proxy *p, uint16_t port, const void *early, size_t early_n)
{
    uint64_t until = now_ms() + EVENT_MS;

    for (;;) {
        char req[512];
        char head[512];
        size_t n = 0;
        int len;
        int fd = tcp_connect(nonoproxy_port(p));

        assert_true(fd >= 0);
        len = snprintf(req, sizeof(req),
                       "CONNECT 127.0.0.1:%u HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                       "Proxy-Authorization: Bearer %s\r\n\r\n",
                       (unsigned)port, (unsigned)port, proxy_token(p));
        assert_true(len > 0 && (size_t)len + early_n <= sizeof(req));
        if (early_n > 0) {
            memcpy(req + len, early, early_n);
        }
        assert_int_equal(send_all(fd, req, (size_t)len + early_n), 0);
        while (n < sizeof(head) - 1 && recv(fd, head + n, 1, 0) == 1) {
            n++;
            head[n] = '\0';
            if (n >= 4 && memcmp(head + n - 4, "\r\n\r\n", 4) == 0) {
                break;
            }
        }
        if (n > 12 && strncmp(head, "HTTP/1.1 200", 12) == 0) {
            return fd;
        }
        close(fd);
        if (n < 12 || strncmp(head, "HTTP/1.1 503", 12) != 0 || now_ms() > until) {
            fail_msg("CONNECT answered: %s", head);
        }
        usleep(20000);
    }
}

/* Wait for the next close event in the ring. */
static struct nonoproxy_audit_event
close_event(struct nonoproxy_proxy *p)
{
    struct nonoproxy_audit_event ev;
    uint64_t until = now_ms() + EVENT_MS;

    while (now_ms() < until) {
        while (nonoproxy_drain_audit_events(p, &ev, 1, NULL) == 1) {
            if (ev.kind == NONOPROXY_EVENT_CLOSE) {
                return ev;
            }
        }
        usleep(5000);
    }
    fail_msg("no close event");
    return ev;
}

/* Descriptors of this process that are pipes, and the sum of their inode numbers. */
static int
count_pipes(unsigned long *inodes)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    *inodes = 0;
    while ((e = readdir(d)) != NULL) {
        char path[300];
        struct stat st;

        snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
        if (e->d_name[0] != '.' && stat(path, &st) == 0 && S_ISFIFO(st.st_mode)) {
            n++;
            *inodes += (unsigned long)st.st_ino;
        }
    }
    closedir(d);
    return n;
}

/* 64 MiB each way at once, the early bytes first: every byte right, exact counts. */
static void
bulk_both_ways(bool splice)
{
    struct nonoproxy_proxy *p;
    struct origin o;
    struct sender s;
    struct nonoproxy_audit_event ev;
    unsigned long ino;
    pthread_t t;
    uint64_t down;
    int pipes0;
    int fd;

    np_pump_splice_disable(!splice);
    pipes0 = count_pipes(&ino);
    p = start_proxy(0, 0);
    memset(&o, 0, sizeof(o));
    o.send_n = BIG;
    origin_start(&o, origin_bulk);
    /* The early bytes are the stream's first bytes: the pattern from position 0, seed 1. */
    fd = tunnel(p, o.port, pattern_at(1, 0), NEARLY);
    s = (struct sender){fd, 1, NEARLY, BIG - NEARLY, true, 0};
    assert_int_equal(pthread_create(&t, NULL, send_main, &s), 0);
    down = recv_check(fd, 2);
    pthread_join(t, NULL);
    origin_join(&o);
    close(fd);
    ev = close_event(p);
    assert_int_equal(s.sent, BIG - NEARLY);
    assert_int_equal(o.got, BIG);
    assert_int_equal(down, BIG);
    assert_int_equal(ev.bytes_up, BIG);
    assert_int_equal(ev.bytes_down, BIG);
    assert_string_equal(ev.reason, "");
    assert_int_equal(count_pipes(&ino) - pipes0, splice ? 4 : 0);
    nonoproxy_free(p);
    np_pump_splice_disable(false);
}

static void
bulk_spliced(void **state)
{
    (void)state;
    bulk_both_ways(true);
}

static void
bulk_fallback(void **state)
{
    (void)state;
    bulk_both_ways(false);
}

/* Half-close each way: the side that ends first still receives what the other sends after. */
static void
half_close_each_way(void **state)
{
    struct nonoproxy_proxy *p = start_proxy(0, 0);
    struct nonoproxy_audit_event ev;
    struct origin o;
    struct sender s;
    uint64_t down;
    int fd;

    (void)state;
    /* Client first: it sends 3 MiB and shuts down; the origin reads to the end, then sends. */
    memset(&o, 0, sizeof(o));
    o.late_n = 5u << 20;
    origin_start(&o, origin_late);
    fd = tunnel(p, o.port, NULL, 0);
    s = (struct sender){fd, 1, 0, 3u << 20, true, 0};
    send_main(&s);
    down = recv_check(fd, 2);
    origin_join(&o);
    close(fd);
    ev = close_event(p);
    assert_int_equal(o.got, 3u << 20);
    assert_int_equal(down, 5u << 20);
    assert_int_equal(ev.bytes_up, 3u << 20);
    assert_int_equal(ev.bytes_down, 5u << 20);
    assert_string_equal(ev.reason, "");
    /* Origin first: it sends 2 MiB and shuts down; the client reads to the end, then sends. */
    memset(&o, 0, sizeof(o));
    o.send_n = 2u << 20;
    origin_start(&o, origin_first);
    fd = tunnel(p, o.port, NULL, 0);
    down = recv_check(fd, 2);
    s = (struct sender){fd, 1, 0, 7u << 20, true, 0};
    send_main(&s);
    origin_join(&o);
    close(fd);
    ev = close_event(p);
    assert_int_equal(down, 2u << 20);
    assert_int_equal(o.got, 7u << 20);
    assert_int_equal(ev.bytes_up, 7u << 20);
    assert_int_equal(ev.bytes_down, 2u << 20);
    assert_string_equal(ev.reason, "");
    nonoproxy_free(p);
}

/* A tunnel with no byte either way for idle_timeout_ms is closed, counts exact. */
static void
idle_timeout(void **state)
{
    struct nonoproxy_proxy *p = start_proxy(300, 0);
    struct nonoproxy_audit_event ev;
    struct origin o;
    char buf[16];
    int fd;

    (void)state;
    memset(&o, 0, sizeof(o));
    origin_start(&o, origin_late); /* reads until the proxy closes, sends nothing after */
    fd = tunnel(p, o.port, pattern_at(1, 0), 4);
    ev = close_event(p);
    assert_string_equal(ev.reason, "idle timeout");
    assert_int_equal(ev.bytes_up, 4);
    assert_int_equal(ev.bytes_down, 0);
    assert_int_equal(recv(fd, buf, sizeof(buf), 0), 0);
    close(fd);
    origin_join(&o);
    assert_int_equal(o.got, 4);
    nonoproxy_free(p);
}

/* A tunnel that has been quiet gives its worker's request buffer and idle stack pages back
 * (issue 12, item 4); the tunnel, and the worker's next connections, must not notice: bytes
 * still flow both ways, the counts stay exact, and a new tunnel on the same worker (whose
 * request buffer was given back) parses its head. */
static void
quiet_tunnel_gives_memory_back(void **state)
{
    struct nonoproxy_proxy *p = start_proxy(0, 1);
    unsigned long trims0 = np_session_trims();
    uint64_t until = now_ms() + EVENT_MS;
    struct nonoproxy_audit_event ev;
    struct origin o;
    struct sender s;
    pthread_t t;
    uint64_t down;
    int round;
    int fd;

    (void)state;
    for (round = 0; round < 2; round++) {
        memset(&o, 0, sizeof(o));
        o.send_n = 4u << 20;
        origin_start(&o, origin_bulk);
        fd = tunnel(p, o.port, pattern_at(1, 0), NEARLY);
        while (np_session_trims() == trims0 + (unsigned long)round && now_ms() < until) {
            struct pollfd pf = {fd, POLLIN, 0};

            (void)poll(&pf, 1, 20); /* wait for the proxy's quiet timer, bounded */
        }
        assert_int_equal(np_session_trims(), trims0 + (unsigned long)round + 1);
        s = (struct sender){fd, 1, NEARLY, (3u << 20) - NEARLY, true, 0};
        assert_int_equal(pthread_create(&t, NULL, send_main, &s), 0);
        down = recv_check(fd, 2);
        pthread_join(t, NULL);
        origin_join(&o);
        close(fd);
        ev = close_event(p);
        assert_int_equal(o.got, 3u << 20);
        assert_int_equal(down, 4u << 20);
        assert_int_equal(ev.bytes_up, 3u << 20);
        assert_int_equal(ev.bytes_down, 4u << 20);
        assert_string_equal(ev.reason, "");
    }
    nonoproxy_free(p);
}

/* One short exchange over a new tunnel on the proxy's one worker: the origin must receive
 * exactly what this client sent and the client exactly the origin's answer. */
static void
clean_exchange(struct nonoproxy_proxy *p, const char *ask, const char *answer)
{
    struct nonoproxy_audit_event ev;
    struct origin o;
    char buf[256];
    size_t n = 0;
    ssize_t r;
    int fd;

    memset(&o, 0, sizeof(o));
    o.reply = answer;
    origin_start(&o, origin_reply);
    fd = tunnel(p, o.port, NULL, 0);
    assert_int_equal(send_str(fd, ask), 0);
    (void)shutdown(fd, SHUT_WR);
    while (n < sizeof(buf) - 1 && (r = recv(fd, buf + n, sizeof(buf) - 1 - n, 0)) > 0) {
        n += (size_t)r;
    }
    buf[n] = '\0';
    origin_join(&o);
    close(fd);
    ev = close_event(p);
    assert_int_equal(o.got, strlen(ask));
    assert_string_equal(buf, answer);
    assert_int_equal(ev.bytes_up, strlen(ask));
    assert_int_equal(ev.bytes_down, strlen(answer));
}

/* Clean exchanges until both workers of a max_connections 1 proxy (the one serving and the
 * one waiting in accept4) have their pipe pair: 8 pipes more than pipes0. The kernel wakes
 * the waiting workers in turn, so this takes two; bounded in count. Returns the inode sum. */
static unsigned long
both_workers_have_pipes(struct nonoproxy_proxy *p, int pipes0)
{
    unsigned long ino = 0;
    int i;

    for (i = 0; i < 20 && count_pipes(&ino) - pipes0 < 8; i++) {
        clean_exchange(p, "warm", "up");
    }
    assert_int_equal(count_pipes(&ino) - pipes0, 8);
    return ino;
}

/* Both directions stall with bytes in the pipes (the client neither reads nor stops sending
 * 'A's, the origin neither reads nor stops sending), then the origin resets. The close event
 * counts only bytes that left the pipes; the worker's next tunnel gets new, empty pipes and
 * sees none of those bytes; a tunnel that ends cleanly leaves its pipes to the next one.
 * max_connections 1 gives two workers (one serving, one in accept4); pipes are counted over
 * both, whichever serves a tunnel. */
static void
stuck_pipes_never_leak(void **state)
{
    struct nonoproxy_proxy *p = start_proxy(0, 1); /* two workers, one busy at a time */
    struct nonoproxy_audit_event ev;
    unsigned long ino_first;
    unsigned long ino;
    int pipes0 = count_pipes(&ino);
    struct origin o;
    static char as[CHUNK];
    uint64_t sent = 0;
    int fd;

    (void)state;
    memset(as, 'A', sizeof(as));
    ino_first = both_workers_have_pipes(p, pipes0);
    clean_exchange(p, "first", "one");
    clean_exchange(p, "second", "two");
    assert_int_equal(count_pipes(&ino) - pipes0, 8);
    assert_int_equal(ino, ino_first); /* reused, by both workers */

    memset(&o, 0, sizeof(o));
    o.hold_ms = 300;
    origin_start(&o, origin_stuck);
    fd = tunnel(p, o.port, NULL, 0);
    for (;;) {
        struct pollfd pf = {fd, POLLOUT, 0};
        ssize_t r;

        if (poll(&pf, 1, 100) == 1) {
            r = send(fd, as, sizeof(as), MSG_NOSIGNAL | MSG_DONTWAIT);
            if (r > 0) {
                sent += (uint64_t)r;
                continue;
            }
            if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
                break; /* reset by the proxy */
            }
        }
        if (pf.revents & (POLLERR | POLLHUP)) {
            break;
        }
        {
            char c;

            if (recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0) {
                break; /* the proxy ended the tunnel */
            }
        }
    }
    origin_join(&o);
    ev = close_event(p);
    close(fd);
    assert_string_equal(ev.reason, "connection reset");
    /* What left the pipe went into the origin's socket, where it was unread when reset (the
     * proxy's send queue may hold more); never more than was sent, nor all of it. */
    assert_true(ev.bytes_up >= o.inq);
    assert_true(ev.bytes_up < sent);
    /* The stuck worker closed its pipes; its next tunnel makes new ones. */
    ino = both_workers_have_pipes(p, pipes0);
    assert_true(ino != ino_first);
    clean_exchange(p, "third", "three"); /* each worker once more: exact, nothing left over */
    clean_exchange(p, "fourth", "four");
    nonoproxy_free(p);
}

/* No pipe can be made (the descriptor limit, simulated by the test hook np_pump_pipe_fail:
 * a real limit would race with the origin's accept): the tunnel falls back to the buffer
 * relay instead of failing, exact both ways; once pipes can be made the next tunnel splices. */
static void
no_pipe_falls_back(void **state)
{
    struct nonoproxy_proxy *p = start_proxy(0, 1);
    struct nonoproxy_audit_event ev;
    unsigned long ino;
    struct origin o;
    struct sender s;
    uint64_t down;
    int pipes0 = count_pipes(&ino);
    int fd;

    (void)state;
    memset(&o, 0, sizeof(o));
    o.send_n = 3u << 20;
    origin_start(&o, origin_bulk);
    np_pump_pipe_fail(true);
    fd = tunnel(p, o.port, NULL, 0);
    s = (struct sender){fd, 1, 0, 5u << 20, true, 0};
    send_main(&s);
    down = recv_check(fd, 2);
    origin_join(&o);
    close(fd);
    ev = close_event(p);
    np_pump_pipe_fail(false);
    assert_int_equal(count_pipes(&ino) - pipes0, 0);
    assert_int_equal(o.got, 5u << 20);
    assert_int_equal(down, 3u << 20);
    assert_int_equal(ev.bytes_up, 5u << 20);
    assert_int_equal(ev.bytes_down, 3u << 20);
    assert_string_equal(ev.reason, "");
    clean_exchange(p, "spliced again", "yes");
    assert_int_equal(count_pipes(&ino) - pipes0, 4);
    nonoproxy_free(p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bulk_spliced),
        cmocka_unit_test(bulk_fallback),
        cmocka_unit_test(half_close_each_way),
        cmocka_unit_test(idle_timeout),
        cmocka_unit_test(stuck_pipes_never_leak),
        cmocka_unit_test(no_pipe_falls_back),
        cmocka_unit_test(quiet_tunnel_gives_memory_back),
    };

    pattern_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
