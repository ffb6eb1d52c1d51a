/* The reverse-proxy routes at run time (SPEC §6, §7), L3: credentials loaded once at start,
 * one TLS client config and one keep-alive pool per route, the child's per-route variables
 * and the start diagnostics. Built by nonoproxy_start before the listener runs; after that
 * only the pools change (they lock themselves). */
#ifndef NP_ROUTE_RUNTIME_H
#define NP_ROUTE_RUNTIME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <nonoproxy/proxy.h>

#include "hostfilter.h"
#include "hostrange.h"
#include "ratelimit.h"
#include "route_build.h"
#include "settings.h"
#include "tls.h"
#include "upool.h"

#define NP_UPOOL_MAX_IDLE 64    /* idle upstream connections kept per route */
#define NP_UPOOL_IDLE_MS  55000 /* under the usual 60 s server keep-alive timeouts */

struct np_route_rt {
    const struct np_route *r;
    struct np_tls_conf *tls;  /* NULL for http:// upstreams; holds the client certificate */
    struct np_upool *pool;    /* this route's connections only (one client certificate) */
    struct np_ratelimit rate; /* used when r->rate_rpm > 0; shared by the connection threads */
    struct np_range up[2];    /* the upstream's addresses when it is a literal or localhost */
    size_t n_up;              /* (np_route_runtime_find_upstream_addr); 0 for another name */
};

struct np_route_runtime {
    struct np_route_rt *rt;
    size_t n;
    struct np_hostfilter *any;     /* empty allowlist: the hard deny list only */
    struct nonoproxy_env_var *env; /* credential_env_vars(); strings owned */
    size_t n_env;
    struct nonoproxy_diagnostic *diags; /* strings owned */
    size_t n_diags;
};

/* Load every route's credential into s->routes (not-found ones become diagnostics; the route
 * stays and answers 503), build the TLS configs (with the client certificate of mutual TLS),
 * pools and rate limits. On error *out is NULL and diag names the route and field. Call
 * before the settings are shared with other threads. */
enum nonoproxy_err np_route_runtime_new(struct np_settings *s, struct np_route_runtime **out,
                                        struct nonoproxy_diag *diag);

/* Render the per-route variables for a proxy bound at bound with this token. 0 or -1. */
int np_route_runtime_env(struct np_route_runtime *g, const struct sockaddr_storage *bound,
                         const char *token);

/* The route whose upstream is at one of the checked addresses a (their ports are not read;
 * port is compared), or NULL:
 * a route whose upstream host is an IP literal has that address (an IPv4-mapped IPv6 address
 * is its IPv4 address), and one named "localhost" every loopback address. The same
 * destination under another spelling (a name, [::ffff:127.0.0.1]) is then still the route's
 * upstream. Upstreams named otherwise are matched by name only (np_route_runtime_find_upstream).
 */
const struct np_route_rt *np_route_runtime_find_upstream_addr(const struct np_route_runtime *g,
                                                              const struct np_addrlist *a,
                                                              uint16_t port);

/* The route whose upstream is host:port (normalised host), or NULL. */
const struct np_route_rt *np_route_runtime_find_upstream(const struct np_route_runtime *g,
                                                         const char *host, uint16_t port);

/* Close every pooled idle upstream connection (shutdown, after the workers are joined). */
void np_route_runtime_close_idle(struct np_route_runtime *g);

/* Free everything (wiping the env values). NULL-safe. Only after every thread is joined. */
void np_route_runtime_free(struct np_route_runtime *g);

#endif /* NP_ROUTE_RUNTIME_H */
