/* nonoproxy — audit events. */
#ifndef NONOPROXY_AUDIT_H
#define NONOPROXY_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "export.h"

/** Which path of the proxy made the decision. JSON: "connect", "forward", "reverse", "external". */
enum nonoproxy_audit_mode {
    NONOPROXY_MODE_CONNECT = 0,
    NONOPROXY_MODE_FORWARD = 1,
    NONOPROXY_MODE_REVERSE = 2,
    NONOPROXY_MODE_EXTERNAL = 3,
};

/** JSON: "allow", "deny". */
enum nonoproxy_audit_decision {
    NONOPROXY_DECISION_ALLOW = 0,
    NONOPROXY_DECISION_DENY = 1,
};

/** What the event reports. JSON field "event": "decision" (the allow or deny of a request or
 * tunnel) or "close" (a tunnel or connection ended; carries bytes and duration). */
enum nonoproxy_audit_kind {
    NONOPROXY_EVENT_DECISION = 0,
    NONOPROXY_EVENT_CLOSE = 1,
};

/** JSON: null, "proxy_authorization", "phantom_header", "phantom_path", "phantom_query". */
enum nonoproxy_auth_mechanism {
    NONOPROXY_AUTH_MECH_NONE = 0,
    NONOPROXY_AUTH_MECH_PROXY_AUTHORIZATION = 1,
    NONOPROXY_AUTH_MECH_PHANTOM_HEADER = 2,
    NONOPROXY_AUTH_MECH_PHANTOM_PATH = 3,
    NONOPROXY_AUTH_MECH_PHANTOM_QUERY = 4,
};

/** JSON: null, "succeeded", "failed". */
enum nonoproxy_auth_outcome {
    NONOPROXY_AUTH_OUTCOME_NONE = 0,
    NONOPROXY_AUTH_OUTCOME_SUCCEEDED = 1,
    NONOPROXY_AUTH_OUTCOME_FAILED = 2,
};

/** A boolean that may be absent (JSON null). */
enum nonoproxy_tristate {
    NONOPROXY_TRI_UNSET = 0,
    NONOPROXY_TRI_FALSE = 1,
    NONOPROXY_TRI_TRUE = 2,
};

/**
 * How a route puts the real credential into the upstream request (SPEC §6.3-6.4): the
 * inject_mode of a route, and the injection_mode of an audit event. JSON: null, "header",
 * "url_path", "query_param", "basic_auth".
 */
enum nonoproxy_inject_mode {
    NONOPROXY_INJECT_NONE = 0,        /**< audit: no injection (JSON null); in a route
                                           configuration: the default, HEADER */
    NONOPROXY_INJECT_HEADER = 1,      /**< header inject_header = credential_format(secret) */
    NONOPROXY_INJECT_URL_PATH = 2,    /**< the secret where {} stands in path_replacement */
    NONOPROXY_INJECT_QUERY_PARAM = 3, /**< query parameter query_param_name = secret */
    NONOPROXY_INJECT_BASIC_AUTH = 4,  /**< header inject_header = Basic base64(secret) */
};

/** Why a request was denied. Append only. JSON: null or the snake_case name after
 * NONOPROXY_DENIAL_, e.g. "host_denied". */
enum nonoproxy_denial_category {
    NONOPROXY_DENIAL_NONE = 0,
    NONOPROXY_DENIAL_AUTHENTICATION_FAILED = 1,
    NONOPROXY_DENIAL_HOST_DENIED = 2,
    NONOPROXY_DENIAL_UPSTREAM_CONNECT_FAILED = 3,
    NONOPROXY_DENIAL_CONNECT_BYPASSES_L7 = 4,
    NONOPROXY_DENIAL_EXTERNAL_PROXY_REJECTED = 5,
    NONOPROXY_DENIAL_MANAGED_CREDENTIAL_UNAVAILABLE = 6,
    NONOPROXY_DENIAL_CONNECTION_LIMIT = 7,
    NONOPROXY_DENIAL_SELF_REQUEST = 8,
    NONOPROXY_DENIAL_MALFORMED_REQUEST = 9,    /**< 400, 414, 431 */
    NONOPROXY_DENIAL_REQUEST_TIMEOUT = 10,     /**< 408: head not complete in time */
    NONOPROXY_DENIAL_UNSUPPORTED_REQUEST = 11, /**< e.g. GET https://… or a path with no route */
    NONOPROXY_DENIAL_ROUTE_NOT_FOUND = 12,
    NONOPROXY_DENIAL_UPSTREAM_TIMEOUT = 13,
    NONOPROXY_DENIAL_ENDPOINT_POLICY = 14, /**< 403: no endpoint rule of the route matches */
    NONOPROXY_DENIAL_RATE_LIMITED = 15,    /**< 429: the route's rate limit */
};

/* Capacities of the fixed string fields, including the terminating NUL. Longer values are
 * truncated and end in "...". */
#define NONOPROXY_AUDIT_TARGET_LEN 260
#define NONOPROXY_AUDIT_METHOD_LEN 24
#define NONOPROXY_AUDIT_PATH_LEN   512
#define NONOPROXY_AUDIT_REASON_LEN 256
#define NONOPROXY_AUDIT_ROUTE_LEN  64

/** One audit event. A plain value: copy it freely, it owns no memory. Empty strings and the
 * *_NONE / UNSET values serialise as JSON null. Never holds a header value, a body, the session
 * token, a phantom (replaced by "[REDACTED]") or a credential. */
struct nonoproxy_audit_event {
    uint64_t timestamp_unix_ms;               /**< wall clock */
    enum nonoproxy_audit_kind kind;           /**< "event" */
    enum nonoproxy_audit_mode mode;           /**< "mode" */
    enum nonoproxy_audit_decision decision;   /**< "decision" */
    char target[NONOPROXY_AUDIT_TARGET_LEN];  /**< host; for reverse: the upstream host */
    bool has_port;                            /**< false: "port" is null */
    uint16_t port;                            /**< "port" */
    char method[NONOPROXY_AUDIT_METHOD_LEN];  /**< "method" */
    char path[NONOPROXY_AUDIT_PATH_LEN];      /**< "path", phantoms redacted */
    uint16_t status;                          /**< "status": HTTP status, 0 = null */
    char reason[NONOPROXY_AUDIT_REASON_LEN];  /**< "reason" */
    char route_id[NONOPROXY_AUDIT_ROUTE_LEN]; /**< "route_id" */
    enum nonoproxy_auth_mechanism auth_mechanism;
    enum nonoproxy_auth_outcome auth_outcome;
    enum nonoproxy_tristate managed_credential_active;
    enum nonoproxy_inject_mode injection_mode;
    enum nonoproxy_denial_category denial_category;
    uint64_t bytes_up;    /**< close events: client → upstream */
    uint64_t bytes_down;  /**< close events: upstream → client */
    uint64_t duration_ms; /**< close events: lifetime of the tunnel */
};

/** An output buffer of this size always holds the JSON of one event. */
#define NONOPROXY_AUDIT_JSON_MAX 8192

/** Called for every event as it is recorded, in addition to the ring. Runs on connection
 * threads, concurrently: it must be thread-safe and must not block for long. */
typedef void nonoproxy_audit_fn(void *userdata, const struct nonoproxy_audit_event *ev);

/**
 * Serialise ev as one JSON object on one line (no newline), with every field present.
 * \return the length of the full JSON text (excluding the NUL), like snprintf: when it is
 *         >= cap the output was truncated. buf is always NUL-terminated when cap > 0.
 * Thread-safety: [any thread]
 */
NONOPROXY_API size_t nonoproxy_audit_event_to_json(const struct nonoproxy_audit_event *ev,
                                                   char *buf, size_t cap);

/** Static snake_case names used in the JSON (never NULL; "" for the *_NONE values). [any thread] */
NONOPROXY_API const char *nonoproxy_audit_mode_name(enum nonoproxy_audit_mode mode);
NONOPROXY_API const char *nonoproxy_denial_category_name(enum nonoproxy_denial_category cat);
NONOPROXY_API const char *nonoproxy_audit_kind_name(enum nonoproxy_audit_kind kind);
NONOPROXY_API const char *nonoproxy_audit_decision_name(enum nonoproxy_audit_decision d);
NONOPROXY_API const char *nonoproxy_auth_mechanism_name(enum nonoproxy_auth_mechanism m);
NONOPROXY_API const char *nonoproxy_auth_outcome_name(enum nonoproxy_auth_outcome o);
NONOPROXY_API const char *nonoproxy_inject_mode_name(enum nonoproxy_inject_mode m);

#endif /* NONOPROXY_AUDIT_H */
