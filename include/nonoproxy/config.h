/* nonoproxy — proxy configuration (SPEC §1). */
#ifndef NONOPROXY_CONFIG_H
#define NONOPROXY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "audit.h"
#include "error.h"
#include "export.h"

/** Severity of a log line given to the log callback. */
enum nonoproxy_log_level {
    NONOPROXY_LOG_ERROR = 0,
    NONOPROXY_LOG_WARN = 1,
    NONOPROXY_LOG_INFO = 2,
    NONOPROXY_LOG_DEBUG = 3,
};

/** Receives the library's log lines (one line, no newline, never a secret). Runs on any of the
 * proxy's threads, concurrently: it must be thread-safe. Without it the library prints nothing. */
typedef void nonoproxy_log_fn(void *userdata, enum nonoproxy_log_level level, const char *line);

/** Where a resolver writes its answer. */
struct nonoproxy_addrs {
    struct sockaddr_storage *addrs; /**< room for max addresses */
    size_t max;
    size_t count; /**< out: the addresses written (0 = "no address") */
};

/**
 * Resolves host (a normalised name, never an IP literal and never a denied name) for port into
 * at most out->max socket addresses, written to out->addrs, their number to out->count.
 * \return 0 on success (a count of 0 means "no address"), non-zero on failure.
 * Runs on connection threads, concurrently. The default uses getaddrinfo().
 */
typedef int nonoproxy_resolve_fn(void *userdata, const char *host, uint16_t port,
                                 struct nonoproxy_addrs *out);

/**
 * One endpoint rule of a route (SPEC §13): a request is let through when its method equals
 * method (exactly, case-sensitive) or method is "*", and its path after the route prefix,
 * normalised as the route normalises it, matches path: a glob where `*` matches within one
 * segment and `**` (a whole segment) any number of segments. Both strings are borrowed and
 * copied by nonoproxy_config_add_route(); validated by nonoproxy_start().
 */
struct nonoproxy_endpoint_rule {
    const char *method; /**< "GET", "POST", ... or "*" */
    const char *path;   /**< "/v1/models", or a glob; starts with a slash */
};

/**
 * One reverse-proxy credential route (SPEC §1, §6): requests to
 * http://127.0.0.1:<port>/<prefix>/<rest> go to <upstream>/<rest> with the real credential.
 * Caller-owned; every string is borrowed and copied by nonoproxy_config_add_route(). NULL
 * strings mean "not set" (the defaults of SPEC §1). Validation happens in nonoproxy_start().
 */
struct nonoproxy_route_config {
    const char *prefix;         /**< one path segment; "/openai" and "openai/" allowed */
    const char *upstream;       /**< https://host[:port][/base]; http:// only to loopback */
    const char *credential_key; /**< env://VAR, file:///path, keyring://svc/acct, or a
                                     keyring account of service "nono"; NULL = none */
    enum nonoproxy_inject_mode inject_mode; /**< HEADER */
    const char *inject_header;              /**< "Authorization" */
    const char *credential_format;          /**< NULL = "Bearer {}" for Authorization, else "{}" */
    const char *path_pattern;     /**< URL_PATH: incoming pattern with one {}, e.g. "/bot{}/" */
    const char *path_replacement; /**< URL_PATH: outgoing pattern; NULL = path_pattern */
    const char *query_param_name; /**< QUERY_PARAM: parameter name */
    const char *env_var;          /**< phantom variable name; NULL = derived (SPEC §7) */
    const char *tls_ca;           /**< extra PEM roots for this upstream only; NULL */

    /* Policy (SPEC §13), all off by default. */
    const struct nonoproxy_endpoint_rule *endpoint_rules; /**< borrowed array of
                                     n_endpoint_rules, deep-copied by add_route; once a route
                                     has rules, a request matching none gets 403 */
    size_t n_endpoint_rules;
    uint32_t rate_limit_per_minute;   /**< token refill per minute; 0 = no rate limit */
    uint32_t rate_limit_burst;        /**< bucket capacity; 0 = 5 (the reference's default) */
    uint32_t rate_limit_max_delay_ms; /**< how long a request may wait for a token before
                                           429; 0 (default) = answer 429 at once */
    const char *tls_client_cert;      /**< PEM client certificate (chain) for mutual TLS; NULL */
    const char *tls_client_key;       /**< PEM private key for tls_client_cert; both or neither.
                                           The key is wiped from memory at free, never logged. */
};

/** What a credential resolver callback found. */
enum nonoproxy_credential_result {
    NONOPROXY_CREDENTIAL_FOUND = 0,     /**< the secret is in buf, its length in *len */
    NONOPROXY_CREDENTIAL_NOT_FOUND = 1, /**< definitely absent: the route answers 503 */
    NONOPROXY_CREDENTIAL_PASS = 2,      /**< not mine: use the built-in sources */
};

/** Largest secret a route can hold, in bytes. */
#define NONOPROXY_SECRET_MAX 8192

/**
 * Asked first for every route's credential_key, once, inside nonoproxy_start() on the calling
 * thread. Writes at most cap (NONOPROXY_SECRET_MAX) bytes to buf; the library copies them and
 * wipes buf. Must not log the secret.
 */
typedef enum nonoproxy_credential_result nonoproxy_credential_fn(void *userdata,
                                                                 const char *credential_key,
                                                                 char *buf, size_t cap,
                                                                 size_t *len);

/** The answer of a decide callback. */
enum nonoproxy_decide_answer {
    NONOPROXY_DECIDE_DENY = 0,          /**< 403 host_denied */
    NONOPROXY_DECIDE_ALLOW_ONCE = 1,    /**< this request or tunnel only */
    NONOPROXY_DECIDE_ALLOW_SESSION = 2, /**< remembered until nonoproxy_free(): the host:port
                                             is not asked again (a diagnostic "host_granted"
                                             and the audit reason record the grant) */
};

/** What a decide callback is asked about. Every pointer is valid during the call only. */
struct nonoproxy_decide_query {
    const char *host;               /**< normalised host (IPv6 without brackets) */
    uint16_t port;                  /**< destination port */
    enum nonoproxy_audit_mode mode; /**< CONNECT, FORWARD or EXTERNAL */
    const char *method;             /**< "CONNECT", or the forward request's method */
    uint32_t timeout_ms;            /**< time left to answer; a later answer counts as deny;
                                         0 = no deadline (decide_timeout_ms 0) */
};

/**
 * Asked about a destination that is neither denied (hard deny list, denied_hosts) nor allowed
 * by an allowlist entry (SPEC §13), on the connection's thread, once the name's addresses are
 * resolved and checked (a name resolving into denied_hosts, the hard deny list or the proxy
 * itself is refused without asking; one that does not resolve gets 502 without asking, except
 * through the external proxy). Asks for
 * the same host:port that arrive while one is pending wait for its answer instead of asking
 * again. Runs on connection threads: asks for different destinations may run concurrently, so
 * it must be thread-safe. It should answer within q->timeout_ms (decide_timeout_ms); an answer
 * that comes later is taken as deny. It must not call back into the same proxy.
 */
typedef enum nonoproxy_decide_answer nonoproxy_decide_fn(void *userdata,
                                                         const struct nonoproxy_decide_query *q);

/** Opaque: the lists a struct nonoproxy_config owns. */
struct nonoproxy_config_lists;

/**
 * Proxy configuration. Caller-allocated; set it up with nonoproxy_config_init(), change scalar
 * fields directly, add list entries (allowed hosts, routes, the external proxy and its bypass
 * list) only through the nonoproxy_config_* functions, release it with nonoproxy_config_free().
 * nonoproxy_start() copies everything it needs, so the config may be freed as soon as it
 * returns.
 *
 * String scalars (bind_addr, ca_file) are borrowed: they must stay valid until nonoproxy_start()
 * returns. The lists are owned by the config and private.
 *
 * Thread-safety: [one thread per object]
 */
struct nonoproxy_config {
    const char *bind_addr;    /**< IPv4 or IPv6 literal; default "127.0.0.1" */
    uint16_t bind_port;       /**< 0 = OS-assigned (default) */
    unsigned max_connections; /**< concurrent client connections; 256; 0 = unlimited */
    bool require_auth;        /**< CONNECT and absolute-form need Proxy-Authorization; true */
    size_t audit_capacity;    /**< audit ring size in events; 4096; 0 = no ring */
    const char *ca_file;      /**< extra PEM roots for upstream TLS; NULL */

    /* Timeouts in milliseconds; 0 disables one. */
    uint32_t header_timeout_ms;   /**< complete request head; 30000 */
    uint32_t connect_timeout_ms;  /**< upstream TCP connect, per address; 10000 */
    uint32_t tls_timeout_ms;      /**< upstream TLS handshake; 10000 */
    uint32_t idle_timeout_ms;     /**< tunnel with no byte either way; 600000 */
    uint32_t response_timeout_ms; /**< forward/reverse response idle; 300000 */

    nonoproxy_log_fn *log_cb; /**< NULL = no logging */
    void *log_userdata;
    enum nonoproxy_log_level log_level; /**< lines above this level are not produced; INFO */

    nonoproxy_audit_fn *audit_cb; /**< NULL = ring only */
    void *audit_userdata;

    nonoproxy_resolve_fn *resolver; /**< NULL = getaddrinfo() */
    void *resolver_userdata;

    nonoproxy_credential_fn *credential_cb; /**< NULL = built-in sources only (SPEC §7) */
    void *credential_userdata;

    /* Policy beyond the host (SPEC §13). */
    bool strict_allowlist;          /**< an empty allowlist denies every host; false */
    uint32_t decide_timeout_ms;     /**< how long a decide callback may take; 30000; 0 = no limit */
    nonoproxy_decide_fn *decide_cb; /**< set with nonoproxy_config_set_decide(); NULL */
    void *decide_userdata;

    /** Private: the allowlist, the routes, the external proxy (whose address may hold a
     * password) and its bypass list, filled only by the nonoproxy_config_* functions and
     * freed by nonoproxy_config_free(). Opaque; NULL until the first entry is added. */
    struct nonoproxy_config_lists *lists;
};

/** Set every field to its default (SPEC §1). Cannot fail; allocates nothing.
 * Thread-safety: [one thread per object] */
NONOPROXY_API void nonoproxy_config_init(struct nonoproxy_config *cfg);

/**
 * Append one allowlist entry: `host`, `*.domain`, `host:port`, `*.domain:port`, an IPv4 or IPv6
 * literal, `[v6]:port`, or an address range `10.0.0.0/8`, `fd00::/8` (a destination is allowed
 * by a range only when every address it resolved to is in it; a range overlapping the hard
 * deny list is refused by nonoproxy_start()). The entry is validated and copied; on error the
 * config is unchanged and diag (may be NULL) names the value. \return NONOPROXY_OK,
 * NONOPROXY_ERR_INVALID_ARG (malformed: empty, bare `*`, `*foo` without the dot, control
 * characters, spaces, `@`, `/`, `\`, bad port) or NONOPROXY_ERR_NOMEM. Thread-safety: [one thread
 * per object]
 */
NONOPROXY_API enum nonoproxy_err nonoproxy_config_allow_host(struct nonoproxy_config *cfg,
                                                             const char *host,
                                                             struct nonoproxy_diag *diag);

/**
 * Append one denied_hosts entry (SPEC §13), checked after the hard deny list and before the
 * allowlist on every path: `host`, `*.domain`, `host:port`, an IPv4 or IPv6 literal, or an
 * address range `10.9.0.0/16`, `fd00::/8` (a host is denied when any address it resolves to
 * falls in a range; names on the list never reach the resolver). Validated and copied.
 * \return NONOPROXY_OK, NONOPROXY_ERR_INVALID_ARG (diag names the value) or NONOPROXY_ERR_NOMEM.
 * Thread-safety: [one thread per object]
 */
NONOPROXY_API enum nonoproxy_err nonoproxy_config_deny_host(struct nonoproxy_config *cfg,
                                                            const char *host,
                                                            struct nonoproxy_diag *diag);

/**
 * Set the decide callback (NULL clears it) asked about destinations that no list decides
 * (SPEC §13): with one set, an empty allowlist no longer allows every host; each unknown
 * host:port is asked about instead. userdata is passed back unchanged and must outlive the
 * proxy. [one thread per object]
 */
NONOPROXY_API void nonoproxy_config_set_decide(struct nonoproxy_config *cfg,
                                               nonoproxy_decide_fn *fn, void *userdata);

/**
 * Fill r with the defaults of SPEC §1 for a route from prefix to upstream (both borrowed).
 * Cannot fail; allocates nothing. [one thread per object]
 */
NONOPROXY_API void nonoproxy_route_config_init(struct nonoproxy_route_config *r, const char *prefix,
                                               const char *upstream);

/**
 * Append a deep copy of r to cfg->routes. Validation (SPEC §1.1) happens in nonoproxy_start(),
 * which names the route and the field.
 * \return NONOPROXY_OK, NONOPROXY_ERR_INVALID_ARG (NULL cfg, r, prefix or upstream) or
 * NONOPROXY_ERR_NOMEM (cfg unchanged). [one thread per object]
 */
NONOPROXY_API enum nonoproxy_err nonoproxy_config_add_route(struct nonoproxy_config *cfg,
                                                            const struct nonoproxy_route_config *r);

/**
 * Send every allowed destination through an enterprise proxy (SPEC §8): address is
 * "host:port" or "user:password@host:port" (IPv6 in brackets; the port is required). The
 * local allowlist and deny list still apply first. NULL clears it. The password never appears
 * in a diag, a log line or an audit event.
 * \return NONOPROXY_OK, NONOPROXY_ERR_INVALID_ARG (diag names the field, never the password)
 * or NONOPROXY_ERR_NOMEM. [one thread per object]
 */
NONOPROXY_API enum nonoproxy_err nonoproxy_config_set_external_proxy(struct nonoproxy_config *cfg,
                                                                     const char *address,
                                                                     struct nonoproxy_diag *diag);

/**
 * Add a host that bypasses the external proxy (exact, or "*.domain" for its subdomains; the
 * same syntax as allowlist entries). Copies and validates.
 * \return NONOPROXY_OK, NONOPROXY_ERR_INVALID_ARG or NONOPROXY_ERR_NOMEM. [one thread per object]
 */
NONOPROXY_API enum nonoproxy_err nonoproxy_config_add_bypass_host(struct nonoproxy_config *cfg,
                                                                  const char *host,
                                                                  struct nonoproxy_diag *diag);

/** Release the owned lists and re-initialise cfg. NULL-safe. [one thread per object] */
NONOPROXY_API void nonoproxy_config_free(struct nonoproxy_config *cfg);

#endif /* NONOPROXY_CONFIG_H */
