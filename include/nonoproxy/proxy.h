/* nonoproxy — the running proxy (SPEC §10, §12). */
#ifndef NONOPROXY_PROXY_H
#define NONOPROXY_PROXY_H

#include <stddef.h>
#include <stdint.h>

#include "audit.h"
#include "config.h"
#include "error.h"
#include "export.h"

/** A running proxy. Opaque; created by nonoproxy_start(), destroyed by nonoproxy_free(). */
struct nonoproxy_proxy;

/** One environment variable for the sandboxed child. Strings owned by the proxy. */
struct nonoproxy_env_var {
    const char *name;
    const char *value;
};

/**
 * Validate cfg, bind the listening socket, generate the session token and start the accept
 * thread. Nothing is started on failure.
 * \param cfg   read only; may be freed as soon as this returns.
 * \param out   receives the proxy on success; untouched on failure.
 * \param diag  may be NULL; on failure receives one line naming the field and the value.
 * Route credentials are loaded here, on the calling thread (the credential callback and a
 * keyring lookup run now); one that is not found is not an error (nonoproxy_diagnostics).
 * \return NONOPROXY_OK or the error: INVALID_ARG (configuration), CREDENTIAL (malformed or
 * unsupported credential reference), TLS (unusable trust file), IO (bind), RNG, NOMEM.
 * Thread-safety: [any thread]
 */
NONOPROXY_API enum nonoproxy_err nonoproxy_start(const struct nonoproxy_config *cfg,
                                                 struct nonoproxy_proxy **out,
                                                 struct nonoproxy_diag *diag);

/** The port the proxy listens on (the OS-assigned one when bind_port was 0).
 * Thread-safety: [any thread] */
NONOPROXY_API uint16_t nonoproxy_port(const struct nonoproxy_proxy *p);

/**
 * The variables that point a child at the proxy (SPEC §7): HTTP_PROXY, HTTPS_PROXY, http_proxy,
 * https_proxy, NO_PROXY, no_proxy, NONO_PROXY_TOKEN, NODE_USE_ENV_PROXY. They contain the session
 * token: give them only to the child's environment, never to a log or a command line.
 * \param vars receives an array owned by p, valid until nonoproxy_free(p).
 * \param n    receives its length.
 * Thread-safety: [any thread]
 */
NONOPROXY_API enum nonoproxy_err nonoproxy_env_vars(const struct nonoproxy_proxy *p,
                                                    const struct nonoproxy_env_var **vars,
                                                    size_t *n);

/**
 * Per-route variables for the child (SPEC §7): <PREFIX>_BASE_URL for every route, and the
 * phantom variable (value = the session token, never the real secret) for routes whose
 * credential was loaded. Same ownership and threading as nonoproxy_env_vars().
 */
NONOPROXY_API enum nonoproxy_err
nonoproxy_credential_env_vars(const struct nonoproxy_proxy *p,
                              const struct nonoproxy_env_var **vars, size_t *n);

/** A finding that did not stop the proxy (SPEC §1.1, §13): a credential not found at start, or
 * a destination the decide callback granted for the session. */
struct nonoproxy_diagnostic {
    const char *code;    /**< "credential_not_found", "credential_unavailable" or
                              "host_granted" */
    const char *route;   /**< the route prefix; "" for "host_granted" */
    const char *message; /**< one line naming the route and reference (never a secret), or
                              "host <host>:<port> granted for the session by the decide callback" */
};

/**
 * The diagnostics recorded by nonoproxy_start(), in route order, then one "host_granted" entry
 * per session grant of the decide callback, in the order granted (the list grows while the
 * proxy runs: a later call may return a larger n; the first entries never change). Owned by p,
 * valid until nonoproxy_free().
 * \return NONOPROXY_OK, or NONOPROXY_ERR_INVALID_ARG when an argument is NULL (as
 *         nonoproxy_env_vars()).
 * Thread-safety: [any thread]
 */
NONOPROXY_API enum nonoproxy_err nonoproxy_diagnostics(const struct nonoproxy_proxy *p,
                                                       const struct nonoproxy_diagnostic **list,
                                                       size_t *n);

/**
 * Move up to max events, oldest first, from the audit ring into out (caller-owned).
 * \param dropped may be NULL; receives the number of events overwritten since the last drain.
 * \return the number of events written; further events stay in the ring.
 * Thread-safety: [any thread], also while connections are served.
 */
NONOPROXY_API size_t nonoproxy_drain_audit_events(struct nonoproxy_proxy *p,
                                                  struct nonoproxy_audit_event *out, size_t max,
                                                  uint64_t *dropped);

/**
 * Stop accepting, close idle and active connections, join every thread. Returns within a
 * bounded time (well under 2 s). Idempotent. The audit ring stays readable.
 * Thread-safety: [any thread], but not from inside a callback of the same proxy.
 */
NONOPROXY_API void nonoproxy_shutdown(struct nonoproxy_proxy *p);

/** Shut down if needed, then release everything, wiping the session token. NULL-safe.
 * Thread-safety: [one thread per object]: no other call on p may run or follow. */
NONOPROXY_API void nonoproxy_free(struct nonoproxy_proxy *p);

#endif /* NONOPROXY_PROXY_H */
