/* Bidirectional relay between two connected sockets (L2), with half-close propagation, an
 * idle timeout and the proxy's stop descriptor. */
#ifndef NP_PUMP_H
#define NP_PUMP_H

#include <stddef.h>
#include <stdint.h>

enum np_pump_end {
    NP_PUMP_DONE = 0, /* both directions reached end of stream and were flushed */
    NP_PUMP_IDLE,     /* no byte either way for idle_ms */
    NP_PUMP_STOPPED,  /* proxy shutdown */
    NP_PUMP_ERROR,    /* a socket error on either side */
};

struct np_pump {
    int a;             /* client side */
    int b;             /* upstream side */
    int stop_fd;       /* -1 = none */
    uint32_t idle_ms;  /* 0 = no idle timeout */
    char *buf_ab;      /* a → b buffer */
    char *buf_ba;      /* b → a buffer */
    size_t buf_cap;    /* capacity of each buffer */
    uint64_t bytes_ab; /* out: bytes written to b */
    uint64_t bytes_ba; /* out: bytes written to a */
};

/* Relay until both directions are finished: when one side ends its stream, the other side's
 * write half is shut down and the opposite direction goes on. Does not close the sockets. */
enum np_pump_end np_pump_run(struct np_pump *p);

#endif /* NP_PUMP_H */
