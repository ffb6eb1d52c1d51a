/* A single-threaded poll() server on 127.0.0.1 port 0 for load tests: it holds up to
 * LOOPSRV_MAX connections with one thread, so hundreds of tunnels or thousands of requests
 * add no thread and leave no descriptor behind once their peers close. */
#ifndef NP_TEST_LOOPSRV_H
#define NP_TEST_LOOPSRV_H

#include <stdint.h>

#define LOOPSRV_MAX 1024

enum loopsrv_kind {
    LOOPSRV_ECHO,   /* echo every byte; half-close back on EOF */
    LOOPSRV_ORIGIN, /* per request head: 200 with body "ok" and Connection: close, then close */
    LOOPSRV_STALL,  /* per request head: 200 head with Content-Length 100, 7 body bytes, stall */
    LOOPSRV_RESET,  /* as STALL, then reset the connection (SO_LINGER 0) */
};

struct loopsrv;

struct loopsrv *loopsrv_start(enum loopsrv_kind kind);
uint16_t loopsrv_port(const struct loopsrv *s);
/* Connections accepted so far, and connections open right now. */
unsigned loopsrv_accepted(const struct loopsrv *s);
unsigned loopsrv_open(const struct loopsrv *s);
void loopsrv_stop(struct loopsrv *s);

#endif
