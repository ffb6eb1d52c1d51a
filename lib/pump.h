/* Bidirectional relay between two connected sockets (L2), with half-close propagation, an
 * idle timeout and the proxy's stop descriptor. On Linux the bytes move with splice(2)
 * through a pipe per direction and never enter the process; where splice is refused the
 * relay falls back to a buffer per direction. */
#ifndef NP_PUMP_H
#define NP_PUMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum np_pump_end {
    NP_PUMP_DONE = 0, /* both directions reached end of stream and were flushed */
    NP_PUMP_IDLE,     /* nothing happened either way for idle_ms */
    NP_PUMP_STOPPED,  /* proxy shutdown */
    NP_PUMP_ERROR,    /* a socket error on either side, or no buffer for the fallback */
};

/* The pipe pair of the spliced relay. It belongs to a worker and serves its tunnels one after
 * the other; it is empty whenever no tunnel runs (np_pump_run closes a pipe a tunnel left
 * bytes in, so that they never reach the next tunnel). A zeroed struct holds no pipe. */
struct np_pipes {
    int ab[2]; /* read end, write end: client → upstream */
    int ba[2]; /* upstream → client */
    bool open; /* the four descriptors are valid */
};

/* Open p's pipes when they are not open. False when splice is unavailable (not Linux,
 * disabled by np_pump_splice_disable) or a pipe cannot be made (e.g. descriptor limit):
 * the caller then relays with buffers. */
bool np_pipes_ready(struct np_pipes *p);

/* Close p's pipes (idempotent); a zeroed or closed struct is left closed. */
void np_pipes_close(struct np_pipes *p);

/* Force the buffer relay in every proxy of the process (true), or allow splice again. */
/* test hook */
void np_pump_splice_disable(bool off);

/* Make every pipe creation fail with EMFILE, as at the descriptor limit (true), or not. */
/* test hook */
void np_pump_pipe_fail(bool fail);

struct np_pump {
    int a;                  /* client side */
    int b;                  /* upstream side */
    int stop_fd;            /* -1 = none */
    bool nonblocking;       /* a and b are O_NONBLOCK already (the listener accepts with
                               SOCK_NONBLOCK; np_net_connect_any's sockets are) */
    uint32_t idle_ms;       /* 0 = no idle timeout */
    struct np_pipes *pipes; /* NULL, or open: splice through them */
    char *buf_ab;           /* a → b buffer, or NULL until the buffer relay needs one */
    char *buf_ba;           /* b → a buffer, likewise */
    size_t buf_cap;         /* capacity of each buffer */
    /* Called when a direction needs its buffer (no pipes, or splice refused) and buf_ab or
     * buf_ba is NULL: fills both or returns false (the relay then ends with an error). */
    bool (*want_bufs)(struct np_pump *p);
    void *arg; /* for want_bufs and on_quiet */
    /* Called once, on the pump's thread, when no byte has moved either way for quiet_ms (and
     * the idle timeout has not run out): an idle tunnel gives back memory. NULL = never. */
    void (*on_quiet)(struct np_pump *p);
    uint32_t quiet_ms;
    uint64_t bytes_ab; /* out: bytes written to b */
    uint64_t bytes_ba; /* out: bytes written to a */
};

/* Relay until both directions are finished: when one side ends its stream, the other side's
 * write half is shut down and the opposite direction goes on. Does not close the sockets; with
 * pipes it makes both sockets non-blocking. Bytes are counted when written to the other side. */
enum np_pump_end np_pump_run(struct np_pump *p);

#endif /* NP_PUMP_H */
