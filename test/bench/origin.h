/* Benchmark origin server on 127.0.0.1:0: a fixed pool of threads blocked in accept(), each
 * serving one connection at a time. The first bytes of a connection pick its role:
 *   "GET ..."  read the request head, answer a ~100-byte HTTP response, close (setup rate);
 *              "GET /sse/..." answers an event stream instead: head, one event, then waits
 *              for the client to close (time to first byte through a streaming proxy);
 *   "SRC\n"    send bytes as fast as possible until the peer goes away (download);
 *   "SNK\n"    read and count bytes until end of stream (upload).
 * Every socket carries a send and receive timeout, so nothing blocks for ever. */
#ifndef NP_BENCH_ORIGIN_H
#define NP_BENCH_ORIGIN_H

#include <stddef.h>
#include <stdint.h>

/* Bytes of every read and write of the origin and the clients. */
#define BENCH_IO_CHUNK ((size_t)256 * 1024)

/* Seconds of SO_RCVTIMEO / SO_SNDTIMEO on every benchmark socket. */
#define BENCH_SOCK_TIMEOUT_S 5

struct origin;

/* Start the origin with nthreads serving threads. NULL on failure (message on stderr). */
struct origin *origin_start(unsigned nthreads);

uint16_t origin_port(const struct origin *o);

/* Total bytes received by "SNK" connections so far (sum over the threads). */
uint64_t origin_sink_bytes(struct origin *o);

/* Connections that ended in an unexpected way (bad first bytes, head too large). */
uint64_t origin_errors(struct origin *o);

/* Stop accepting, wait for the serving threads, close everything. NULL-safe. */
void origin_stop(struct origin *o);

/* Set TCP_NODELAY and the benchmark's send/receive timeouts on fd. */
void bench_sock_setup(int fd);

/* Send all of buf[0..len) on a blocking socket (EINTR retried). Returns 0 or -1. */
int bench_send_all(int fd, const char *buf, size_t len);

#endif /* NP_BENCH_ORIGIN_H */
