/* In-process integration fixtures: a TCP echo server on 127.0.0.1:0 and small blocking client
 * helpers, all bounded in time. Used by the test_*.c integration tests. */
#ifndef NP_TEST_HARNESS_H
#define NP_TEST_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include <nonoproxy/nonoproxy.h>

struct echo_server;

/* Start an echo server on 127.0.0.1 port 0 (one thread per connection; a connection that
 * reads EOF half-closes back). Returns NULL on failure. */
struct echo_server *echo_start(void);
uint16_t echo_port(const struct echo_server *e);
/* Number of connections accepted so far. */
unsigned echo_accepted(struct echo_server *e);
void echo_stop(struct echo_server *e);

/* Connect to 127.0.0.1:port with a 10 s timeout on every later read (SO_RCVTIMEO). -1 on
 * failure. */
int tcp_connect(uint16_t port);

/* Send all len bytes of buf (MSG_NOSIGNAL). 0 or -1. */
int send_all(int fd, const void *buf, size_t len);

/* Send all of s. 0 or -1. */
int send_str(int fd, const char *s);

/* Read until "\r\n\r\n" (or EOF/timeout) into buf (NUL-terminated). Returns the HTTP status
 * of the first line, or -1. */
int read_head(int fd, char *buf, size_t cap);

/* The proxy's session token (from NONO_PROXY_TOKEN). */
const char *proxy_token(const struct nonoproxy_proxy *p);

/* Open a tunnel through the proxy to 127.0.0.1:target_port with valid credentials; returns
 * the fd after a 200, or -1 (the status in *status when non-NULL). */
int open_tunnel(const struct nonoproxy_proxy *p, const char *host, uint16_t target_port,
                int *status);

/* Milliseconds of CLOCK_MONOTONIC. */
uint64_t now_ms(void);

/* A port on 127.0.0.1 where nothing listens (bound, then closed); 0 on failure. */
uint16_t closed_port(void);

/* Count of open file descriptors and threads of this process (from /proc/self). */
int count_fds(void);
int count_threads(void);

/* Wait (bounded, ~10 s) until count_threads() == n; returns the last count. */
int wait_threads(int n);

#endif
