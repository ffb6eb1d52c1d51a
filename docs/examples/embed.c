/*
 * embed.c: embed nonoproxy in a program. Starts the proxy, sends one HTTP request through an
 * authenticated CONNECT tunnel to a small origin on 127.0.0.1, shuts the proxy down and prints
 * its audit events as JSON lines. Exits 0 when every step did what it should, 1 otherwise.
 *
 * Build against an installed nonoproxy (it is a static archive, hence --static):
 *   cc -std=c11 embed.c $(pkg-config --cflags --libs --static nonoproxy) -o embed
 * or with CMake: find_package(nonoproxy) and link nonoproxy::nonoproxy (see CMakeLists.txt here).
 * Only 127.0.0.1 is used; nothing leaves the machine.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <nonoproxy/nonoproxy.h>

#define ORIGIN_BODY   "hello from the origin\n"
#define IO_TIMEOUT_MS 10000
#define HEAD_MAX      4096
#define EVENT_BATCH   64

/* The origin: one listening socket on 127.0.0.1, served by one thread for one request. */
struct origin {
    int listen_fd;
    uint16_t port;
    bool served; /* written by the origin thread, read after pthread_join */
};

/* Give fd a receive and a send timeout of IO_TIMEOUT_MS, so that no call below blocks forever. */
static int
set_timeouts(int fd)
{
    struct timeval tv = {.tv_sec = IO_TIMEOUT_MS / 1000, .tv_usec = 0};

    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0) {
        return -1;
    }
    return 0;
}

/* Send all len bytes of buf on fd. Returns 0, or -1 on error. */
static int
send_all(int fd, const char *buf, size_t len)
{
    size_t off = 0;

    while (off < len) {
        ssize_t n = send(fd, buf + off, len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        off += (size_t)n;
    }
    return 0;
}

/* Read from fd into buf (NUL-terminated, at most cap - 1 bytes) until the bytes read end a
 * request or response head ("\r\n\r\n"), or, with to_eof, until the peer closes. Returns the
 * number of bytes read, or -1 on error, timeout or a full buffer before the end. */
static ssize_t
recv_until(int fd, char *buf, size_t cap, bool to_eof)
{
    size_t used = 0;

    buf[0] = '\0';
    while (used < cap - 1) {
        ssize_t n = recv(fd, buf + used, cap - 1 - used, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -1;
        }
        if (n == 0) {
            return to_eof ? (ssize_t)used : -1;
        }
        used += (size_t)n;
        buf[used] = '\0';
        if (!to_eof && strstr(buf, "\r\n\r\n") != NULL) {
            return (ssize_t)used;
        }
    }
    return -1;
}

/* Open a TCP socket on 127.0.0.1 (port 0 = any free port) and, when listening is false,
 * connect it to port instead. Returns the socket, or -1. */
static int
loopback_socket(uint16_t port, bool listening)
{
    struct sockaddr_in sin;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        return -1;
    }
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (listening) {
        if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(fd, 4) != 0) {
            goto fail;
        }
    } else if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 || set_timeouts(fd) != 0) {
        goto fail;
    }
    return fd;
fail:
    (void)close(fd);
    return -1;
}

/* Origin thread: accept one connection (waiting at most IO_TIMEOUT_MS), read a GET head and
 * answer 200 with ORIGIN_BODY, then close. Sets o->served when the answer was sent. */
static void *
origin_main(void *arg)
{
    struct origin *o = arg;
    struct pollfd pfd = {.fd = o->listen_fd, .events = POLLIN, .revents = 0};
    char head[HEAD_MAX];
    char resp[256];
    int fd = -1;
    int len;

    if (poll(&pfd, 1, IO_TIMEOUT_MS) != 1) {
        goto out;
    }
    fd = accept(o->listen_fd, NULL, NULL);
    if (fd < 0 || set_timeouts(fd) != 0 || recv_until(fd, head, sizeof(head), false) < 0) {
        goto out;
    }
    if (strncmp(head, "GET /hello HTTP/1.1\r\n", 21) != 0) {
        goto out;
    }
    len = snprintf(resp, sizeof(resp),
                   "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                   "Connection: close\r\n\r\n%s",
                   strlen(ORIGIN_BODY), ORIGIN_BODY);
    if (len < 0 || (size_t)len >= sizeof(resp) || send_all(fd, resp, (size_t)len) != 0) {
        goto out;
    }
    o->served = true;
out:
    if (fd >= 0) {
        (void)close(fd);
    }
    return NULL;
}

/* Receives the library's log lines; it may be called from any proxy thread at once. */
static void
log_line(void *userdata, enum nonoproxy_log_level level, const char *line)
{
    (void)userdata;
    (void)fprintf(stderr, "embed: nonoproxy[%d]: %s\n", (int)level, line);
}

/* Find the value of the variable name in vars[0..n), or NULL. */
static const char *
env_value(const struct nonoproxy_env_var *vars, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(vars[i].name, name) == 0) {
            return vars[i].value;
        }
    }
    return NULL;
}

/* Connect to the proxy on proxy_port, open a tunnel to 127.0.0.1:origin_port with the session
 * token in Proxy-Authorization, send GET /hello through it and check the origin's answer.
 * Returns 0 on success, -1 with a message on stderr otherwise. */
static int
request_through_tunnel(uint16_t proxy_port, uint16_t origin_port, const char *token)
{
    char buf[HEAD_MAX];
    int fd = loopback_socket(proxy_port, false);
    int rc = -1;
    int len;

    if (fd < 0) {
        perror("embed: cannot connect to the proxy");
        goto out;
    }
    len = snprintf(buf, sizeof(buf),
                   "CONNECT 127.0.0.1:%u HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                   "Proxy-Authorization: Bearer %s\r\n\r\n",
                   (unsigned)origin_port, (unsigned)origin_port, token);
    if (len < 0 || (size_t)len >= sizeof(buf) || send_all(fd, buf, (size_t)len) != 0 ||
        recv_until(fd, buf, sizeof(buf), false) < 0) {
        (void)fprintf(stderr, "embed: CONNECT: no answer from the proxy\n");
        goto out;
    }
    /* The origin sends nothing before our request, so these bytes are the proxy's head only. */
    if (strncmp(buf, "HTTP/1.1 200 ", 13) != 0) {
        (void)fprintf(stderr, "embed: CONNECT refused: %.*s\n", (int)strcspn(buf, "\r"), buf);
        goto out;
    }
    len = snprintf(buf, sizeof(buf),
                   "GET /hello HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nConnection: close\r\n\r\n",
                   (unsigned)origin_port);
    if (len < 0 || (size_t)len >= sizeof(buf) || send_all(fd, buf, (size_t)len) != 0 ||
        recv_until(fd, buf, sizeof(buf), true) < 0) {
        (void)fprintf(stderr, "embed: no answer through the tunnel\n");
        goto out;
    }
    if (strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) != 0 ||
        strstr(buf, "\r\n\r\n" ORIGIN_BODY) == NULL) {
        (void)fprintf(stderr, "embed: unexpected answer through the tunnel: %s\n", buf);
        goto out;
    }
    (void)printf("embed: through the tunnel: %s", ORIGIN_BODY);
    rc = 0;
out:
    if (fd >= 0) {
        (void)close(fd);
    }
    return rc;
}

/* Drain every audit event of p, print each as one JSON line and check that the tunnel to
 * 127.0.0.1:origin_port was allowed and closed with bytes both ways. Returns 0 or -1. */
static int
drain_and_check(struct nonoproxy_proxy *p, uint16_t origin_port)
{
    struct nonoproxy_audit_event *ev = calloc(EVENT_BATCH, sizeof(*ev));
    char *json = malloc(NONOPROXY_AUDIT_JSON_MAX);
    bool allowed = false;
    bool closed = false;
    uint64_t dropped = 0;
    size_t got;
    int rc = -1;

    if (ev == NULL || json == NULL) {
        goto out;
    }
    do {
        got = nonoproxy_drain_audit_events(p, ev, EVENT_BATCH, &dropped);
        for (size_t i = 0; i < got; i++) {
            const struct nonoproxy_audit_event *e = &ev[i];
            bool tunnel = e->mode == NONOPROXY_MODE_CONNECT &&
                          strcmp(e->target, "127.0.0.1") == 0 && e->has_port &&
                          e->port == origin_port;

            (void)nonoproxy_audit_event_to_json(e, json, NONOPROXY_AUDIT_JSON_MAX);
            (void)printf("%s\n", json);
            if (tunnel && e->kind == NONOPROXY_EVENT_DECISION &&
                e->decision == NONOPROXY_DECISION_ALLOW) {
                allowed = true;
            }
            if (tunnel && e->kind == NONOPROXY_EVENT_CLOSE && e->bytes_up > 0 &&
                e->bytes_down > 0) {
                closed = true;
            }
        }
    } while (got == EVENT_BATCH);
    if (!allowed || !closed || dropped != 0) {
        (void)fprintf(stderr, "embed: audit: allow event %s, close event %s, %llu dropped\n",
                      allowed ? "found" : "missing", closed ? "found" : "missing",
                      (unsigned long long)dropped);
        goto out;
    }
    rc = 0;
out:
    free(json);
    free(ev);
    return rc;
}

int
main(void)
{
    struct nonoproxy_config cfg;
    struct nonoproxy_diag diag;
    struct nonoproxy_proxy *p = NULL;
    struct origin origin = {.listen_fd = -1, .port = 0, .served = false};
    struct sockaddr_in sin;
    socklen_t sin_len = sizeof(sin);
    const struct nonoproxy_env_var *vars = NULL;
    const char *token = NULL;
    pthread_t origin_thread;
    bool origin_started = false;
    size_t n = 0;
    int status = 1;

    (void)printf("embed: nonoproxy %s\n", nonoproxy_version());

    /* The origin: 127.0.0.1 on a free port, one request. */
    origin.listen_fd = loopback_socket(0, true);
    if (origin.listen_fd < 0 ||
        getsockname(origin.listen_fd, (struct sockaddr *)&sin, &sin_len) != 0) {
        perror("embed: cannot listen on 127.0.0.1");
        goto out;
    }
    origin.port = ntohs(sin.sin_port);
    if (pthread_create(&origin_thread, NULL, origin_main, &origin) != 0) {
        goto out;
    }
    origin_started = true;

    /* The proxy: allow only 127.0.0.1, any port; everything else keeps its default. */
    nonoproxy_config_init(&cfg);
    cfg.log_cb = log_line;
    cfg.log_level = NONOPROXY_LOG_WARN;
    if (nonoproxy_config_allow_host(&cfg, "127.0.0.1", &diag) != NONOPROXY_OK ||
        nonoproxy_start(&cfg, &p, &diag) != NONOPROXY_OK) {
        (void)fprintf(stderr, "embed: %s: %s\n", nonoproxy_strerror(diag.code), diag.message);
        nonoproxy_config_free(&cfg);
        goto out;
    }
    nonoproxy_config_free(&cfg); /* the proxy keeps its own copy */
    (void)printf("embed: proxy on 127.0.0.1:%u, origin on 127.0.0.1:%u\n",
                 (unsigned)nonoproxy_port(p), (unsigned)origin.port);

    /* A child would get these variables; here the token goes into Proxy-Authorization. */
    if (nonoproxy_env_vars(p, &vars, &n) != NONOPROXY_OK) {
        goto out;
    }
    token = env_value(vars, n, "NONO_PROXY_TOKEN");
    if (token == NULL || request_through_tunnel(nonoproxy_port(p), origin.port, token) != 0) {
        goto out;
    }

    /* Shut down first: it joins the connection threads, so every event is in the ring, which
     * stays readable until nonoproxy_free(). */
    nonoproxy_shutdown(p);
    if (drain_and_check(p, origin.port) != 0) {
        goto out;
    }
    status = 0;
out:
    nonoproxy_free(p); /* NULL-safe; shuts down first when needed */
    if (origin_started) {
        (void)pthread_join(origin_thread, NULL);
        if (status == 0 && !origin.served) {
            (void)fprintf(stderr, "embed: the origin did not serve the request\n");
            status = 1;
        }
    }
    if (origin.listen_fd >= 0) {
        (void)close(origin.listen_fd);
    }
    (void)printf("embed: %s\n", status == 0 ? "ok" : "FAILED");
    return status;
}
