/* Upstream TLS clients over mbedTLS 2.28 (SPEC §6.5), L2.
 *
 * A struct np_tls_conf is built once per route at start: trust roots (the system bundle plus
 * the proxy's ca_file plus the route's tls_ca), verification always required, X25519 offered
 * first, a CTR-DRBG seeded from the OS, and a slot for the last session so that new
 * connections resume instead of doing a full handshake. After np_tls_conf_new() returns it is
 * shared by every connection thread: the ssl config and CA chain are read-only; the DRBG and
 * the session slot are locked (Debian builds mbedTLS with MBEDTLS_THREADING_C; the session
 * slot has its own mutex).
 *
 * A struct np_tls is one client connection on a connected, non-blocking TCP socket. Every
 * wait polls the socket and the stop descriptor with a deadline, so nothing blocks forever. */
#ifndef NP_TLS_H
#define NP_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net.h"
#include "stream.h"

struct np_tls_conf;
struct np_tls;

/* Default system trust bundle (Debian ca-certificates). */
#define NP_TLS_SYSTEM_BUNDLE "/etc/ssl/certs/ca-certificates.crt"

/* The trust roots of a client config: files of PEM certificates, each may be NULL. */
struct np_tls_roots {
    const char *system_bundle; /* NULL = NP_TLS_SYSTEM_BUNDLE */
    const char *ca_file;       /* the proxy's */
    const char *tls_ca;        /* the route's */
};

/* Build a client config trusting roots->system_bundle (a missing system bundle is not an error
 * when an extra file is given) plus ca_file and tls_ca. Returns 0, or -1 with a one-line reason
 * in why (naming the file that failed). */
int np_tls_conf_new(const struct np_tls_roots *roots, struct np_tls_conf **out, char *why,
                    size_t why_cap);
void np_tls_conf_free(struct np_tls_conf *c); /* NULL-safe */

/* The client certificate of mutual TLS: the PEM certificate (chain) in cert_path and its
 * unencrypted PEM private key in key_path (at most 1 MiB). The key is parsed here, once;
 * every buffer that held its bytes is wiped, and np_tls_conf_free frees (and wipes) the parsed
 * key. Call after np_tls_conf_new and before c is shared. Returns 0, or -1 with why starting
 * with the field ("tls_client_key: ...") and naming the file, never quoting key bytes. */
int np_tls_conf_set_client_cert(struct np_tls_conf *c, const char *cert_path, const char *key_path,
                                char *why, size_t why_cap);

/* Handshake on d->fd (connected, non-blocking; not owned) with SNI and certificate verification
 * for d->host (a DNS name, or an IP literal: then its iPAddress SAN is checked). Offers the
 * conf's saved session; saves the new one after success. On NP_IO_OK *out is ready. On
 * failure *out is NULL and why holds a one-line reason (e.g. "certificate verification
 * failed: ..."); NP_IO_ERR covers TLS and verification failures, NP_IO_TIMEOUT the deadline. */
struct np_tls_dial {
    int fd;
    const char *host;
    struct np_until until; /* the stop descriptor and the handshake's deadline */
};
enum np_io np_tls_connect(struct np_tls_conf *c, const struct np_tls_dial *d, struct np_tls **out,
                          char *why, size_t why_cap);

/* Whether the handshake resumed a saved session (the tests' view of the session slot). */
/* test hook */
bool np_tls_resumed(const struct np_tls *t);

/* References held on the shared parse of the bundle file path (0: not parsed now). */
/* test hook */
unsigned np_tls_shared_bundle_refs(const char *path);

/* A stream over t (ops recv/send_all/pending use mbedTLS; a close_notify reads as EOF). */
void np_tls_stream(struct np_tls *t, struct np_stream *s);

/* Send close_notify without waiting, free everything; fd is not closed. NULL-safe. */
void np_tls_free(struct np_tls *t);

#endif /* NP_TLS_H */
