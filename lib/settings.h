/* The frozen settings of a running proxy (SPEC §1.1), L1: nonoproxy_start validates a
 * struct nonoproxy_config and freezes it into an immutable struct np_settings that every
 * thread reads without locks. */
#ifndef NP_SETTINGS_H
#define NP_SETTINGS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <nonoproxy/config.h>

#include "hostfilter.h"

struct np_route;
struct np_external;

struct np_settings {
    struct sockaddr_storage bind_ss; /* port = bind_port (0 before bind) */
    unsigned max_connections;
    bool require_auth;
    size_t audit_capacity;
    char *ca_file;

    uint32_t header_timeout_ms;
    uint32_t connect_timeout_ms;
    uint32_t tls_timeout_ms;
    uint32_t idle_timeout_ms;
    uint32_t response_timeout_ms;

    nonoproxy_log_fn *log_cb;
    void *log_userdata;
    enum nonoproxy_log_level log_level;
    nonoproxy_audit_fn *audit_cb;
    void *audit_userdata;
    struct np_resolver resolver;

    struct np_hostfilter *allow; /* compiled allowed_hosts */
    struct np_hostfilter *deny;  /* compiled denied_hosts */
    bool strict_allowlist;
    struct np_decider *decider;   /* the decide callback's state (grants, pending asks); NULL */
    struct np_host_policy policy; /* CONNECT and forward: every list and the callback */
    struct np_host_policy route_policy; /* route upstreams: denied_hosts only */

    struct np_route *routes; /* validated routes (route_config.c); secrets set at start */
    size_t n_routes;
    nonoproxy_credential_fn *credential_cb;
    void *credential_userdata;

    struct np_external *ext; /* external proxy and bypass list; NULL = direct */
};

/* Validate cfg (SPEC §1.1) and build frozen settings. On error *out is untouched and diag
 * (may be NULL) names the field and value. */
enum nonoproxy_err np_settings_new(const struct nonoproxy_config *cfg, struct np_settings **out,
                                   struct nonoproxy_diag *diag);
void np_settings_free(struct np_settings *s); /* NULL-safe */

/* Give one formatted line to the embedder's log callback, if any, at level. Never pass a
 * secret: the line leaves the library. */
void np_log(const struct np_settings *s, enum nonoproxy_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Parse an IPv4 or IPv6 literal (IPv6 optionally in brackets) with port into ss.
 * Returns 0 or -1. */
int np_parse_ip_literal(const char *text, uint16_t port, struct sockaddr_storage *ss);

#endif /* NP_SETTINGS_H */
