/* In-process integration fixtures. */
#include "harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_ECHO_CONNS 64

struct echo_server {
    int fd;
    uint16_t port;
    int stop_pipe[2];
    pthread_t thread;
    atomic_uint accepted;
    pthread_mutex_t mu;
    pthread_t conn_threads[MAX_ECHO_CONNS];
    int conn_fds[MAX_ECHO_CONNS];
    int n_conns;
};

struct echo_conn {
    struct echo_server *e;
    int fd;
};

static void *
echo_conn_main(void *arg)
{
    struct echo_conn *c = arg;
    char buf[4096];
    struct pollfd pf[2];

    for (;;) {
        pf[0] = (struct pollfd){c->fd, POLLIN, 0};
        pf[1] = (struct pollfd){c->e->stop_pipe[0], POLLIN, 0};
        if (poll(pf, 2, 30000) <= 0 || pf[1].revents != 0) {
            break;
        }
        ssize_t r = recv(c->fd, buf, sizeof(buf), 0);
        if (r <= 0) {
            (void)shutdown(c->fd, SHUT_WR);
            break;
        }
        if (send(c->fd, buf, (size_t)r, MSG_NOSIGNAL) != r) {
            break;
        }
    }
    free(c);
    return NULL;
}

static void *
echo_main(void *arg)
{
    struct echo_server *e = arg;
    struct pollfd pf[2];

    for (;;) {
        pf[0] = (struct pollfd){e->fd, POLLIN, 0};
        pf[1] = (struct pollfd){e->stop_pipe[0], POLLIN, 0};
        if (poll(pf, 2, -1) < 0 || pf[1].revents != 0) {
            break;
        }
        int fd = accept4(e->fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            continue;
        }
        atomic_fetch_add(&e->accepted, 1);
        pthread_mutex_lock(&e->mu);
        if (e->n_conns == MAX_ECHO_CONNS) {
            pthread_mutex_unlock(&e->mu);
            close(fd);
            continue;
        }
        struct echo_conn *c = malloc(sizeof(*c));
        c->e = e;
        c->fd = fd;
        e->conn_fds[e->n_conns] = fd;
        if (pthread_create(&e->conn_threads[e->n_conns], NULL, echo_conn_main, c) == 0) {
            e->n_conns++;
        } else {
            free(c);
            close(fd);
        }
        pthread_mutex_unlock(&e->mu);
    }
    return NULL;
}

struct echo_server *
echo_start(void)
{
    struct echo_server *e = calloc(1, sizeof(*e));
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    e->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (e->fd < 0 || bind(e->fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
        listen(e->fd, 128) != 0 || getsockname(e->fd, (struct sockaddr *)&sin, &len) != 0 ||
        pipe2(e->stop_pipe, O_CLOEXEC) != 0) {
        free(e);
        return NULL;
    }
    e->port = ntohs(sin.sin_port);
    pthread_mutex_init(&e->mu, NULL);
    pthread_create(&e->thread, NULL, echo_main, e);
    return e;
}

uint16_t
echo_port(const struct echo_server *e)
{
    return e->port;
}

unsigned
echo_accepted(struct echo_server *e)
{
    return atomic_load(&e->accepted);
}

void
echo_stop(struct echo_server *e)
{
    int i;

    if (e == NULL) {
        return;
    }
    (void)write(e->stop_pipe[1], "x", 1);
    pthread_join(e->thread, NULL);
    for (i = 0; i < e->n_conns; i++) {
        pthread_join(e->conn_threads[i], NULL);
        close(e->conn_fds[i]);
    }
    close(e->fd);
    close(e->stop_pipe[0]);
    close(e->stop_pipe[1]);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

int
tcp_connect(uint16_t port)
{
    struct sockaddr_in sin;
    struct timeval tv = {10, 0};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons(port);
    if (fd < 0) {
        return -1;
    }
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int
send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t r = send(fd, p, len, MSG_NOSIGNAL);
        if (r <= 0) {
            return -1;
        }
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

int
send_str(int fd, const char *s)
{
    return send_all(fd, s, strlen(s));
}

int
read_head(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    int status = -1;

    buf[0] = '\0';
    /* One byte at a time: the head must not swallow tunnel bytes that follow it. */
    while (len + 1 < cap) {
        ssize_t r = recv(fd, buf + len, 1, 0);
        if (r <= 0) {
            break;
        }
        len++;
        buf[len] = '\0';
        if (len >= 4 && memcmp(buf + len - 4, "\r\n\r\n", 4) == 0) {
            break;
        }
    }
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1) {
        return -1;
    }
    return status;
}

const char *
proxy_token(const struct nonoproxy_proxy *p)
{
    const struct nonoproxy_env_var *v;
    size_t n;
    size_t i;

    if (nonoproxy_env_vars(p, &v, &n) != NONOPROXY_OK) {
        return "";
    }
    for (i = 0; i < n; i++) {
        if (strcmp(v[i].name, "NONO_PROXY_TOKEN") == 0) {
            return v[i].value;
        }
    }
    return "";
}

int
open_tunnel(const struct nonoproxy_proxy *p, const char *host, uint16_t target_port, int *status)
{
    char req[512];
    char head[2048];
    int fd = tcp_connect(nonoproxy_port(p));
    int st;

    if (status != NULL) {
        *status = -1;
    }
    if (fd < 0) {
        return -1;
    }
    snprintf(req, sizeof(req),
             "CONNECT %s:%u HTTP/1.1\r\nHost: %s:%u\r\nProxy-Authorization: Bearer %s\r\n\r\n",
             host, target_port, host, target_port, proxy_token(p));
    if (send_str(fd, req) != 0) {
        close(fd);
        return -1;
    }
    st = read_head(fd, head, sizeof(head));
    if (status != NULL) {
        *status = st;
    }
    if (st != 200) {
        close(fd);
        return -1;
    }
    return fd;
}

static int
count_dir(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *de;
    int n = 0;

    if (d == NULL) {
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] != '.') {
            n++;
        }
    }
    closedir(d);
    return n - (strcmp(path, "/proc/self/fd") == 0 ? 1 : 0); /* the DIR's own fd */
}

int
count_fds(void)
{
    return count_dir("/proc/self/fd");
}

int
count_threads(void)
{
    return count_dir("/proc/self/task");
}

int
wait_threads(int n)
{
    int i;
    int c = count_threads();
    struct timespec ts = {0, 10 * 1000 * 1000};

    for (i = 0; i < 1000 && c != n; i++) {
        nanosleep(&ts, NULL);
        c = count_threads();
    }
    return c;
}

uint64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint16_t
closed_port(void)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    uint16_t port = 0;

    if (fd < 0) {
        return 0;
    }
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sin, &len) == 0) {
        port = ntohs(sin.sin_port);
    }
    close(fd);
    return port;
}
