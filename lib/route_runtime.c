/* Reverse-proxy routes at run time (L3). */
#include "route_runtime.h"

#include "route_env.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "credential.h"
#include "diag.h"
#include "env.h"
#include "net.h"

/* Record one start diagnostic for route r. Returns 0 or -1 (no memory). */
static int
runtime_diag(struct np_route_runtime *g, const struct np_route *r, const char *code,
             const char *detail)
{
    struct nonoproxy_diagnostic *grown;
    char key[160];
    char line[512];
    size_t klen;
    char *route;
    char *msg;

    /* detail starts with the quoted reference ("'env://X': ..."); it is named once here. */
    np_copy_printable(key, sizeof(key), r->credential_key, strlen(r->credential_key));
    klen = strlen(key);
    if (detail[0] == '\'' && strncmp(detail + 1, key, klen) == 0 &&
        strncmp(detail + 1 + klen, "': ", 3) == 0) {
        detail += klen + 4;
    }
    (void)snprintf(line, sizeof(line), "route '%s': credential '%s' %s (%s)", r->prefix, key,
                   strcmp(code, "credential_not_found") == 0 ? "not found" : "unavailable", detail);
    grown = np_realloc(g->diags, (g->n_diags + 1) * sizeof(*grown));
    if (grown == NULL) {
        return -1;
    }
    g->diags = grown;
    route = np_strdup(r->prefix);
    msg = np_strdup(line);
    if (route == NULL || msg == NULL) {
        np_free(route);
        np_free(msg);
        return -1;
    }
    g->diags[g->n_diags++] = (struct nonoproxy_diagnostic){code, route, msg};
    return 0;
}

/* Load the credential of route i (if it has one) into it. */
static enum nonoproxy_err
route_load_credential(struct np_route_runtime *g, const struct np_settings *s, struct np_route *r,
                      size_t i, struct nonoproxy_diag *diag)
{
    const struct np_cred_request q = {r->credential_key, s->credential_cb, s->credential_userdata};
    char detail[256] = "";
    enum np_cred_status st;

    if (r->credential_key == NULL) {
        return NONOPROXY_OK;
    }
    st = np_cred_load(&q, &r->secret, &r->secret_len, detail, sizeof(detail));
    if (st == NP_CRED_LOADED) {
        if (np_route_prepare_injection(r) != 0) {
            np_diag_set(diag, NONOPROXY_ERR_NOMEM, ENOMEM, "routes[%zu] '%s': out of memory", i,
                        r->prefix);
            return NONOPROXY_ERR_NOMEM;
        }
        np_log(s, NONOPROXY_LOG_INFO, "route '%s': credential loaded", r->prefix);
        return NONOPROXY_OK;
    }
    if (st == NP_CRED_NOMEM) {
        np_diag_set(diag, NONOPROXY_ERR_NOMEM, ENOMEM, "routes[%zu] '%s': out of memory", i,
                    r->prefix);
        return NONOPROXY_ERR_NOMEM;
    }
    if (runtime_diag(g, r,
                     st == NP_CRED_NOT_FOUND ? "credential_not_found" : "credential_unavailable",
                     detail) != 0) {
        np_diag_set(diag, NONOPROXY_ERR_NOMEM, ENOMEM, "routes[%zu] '%s': out of memory", i,
                    r->prefix);
        return NONOPROXY_ERR_NOMEM;
    }
    /* INFO, not WARN: the embedder reads nonoproxy_diagnostics() and decides how loud to be
     * (the CLI refuses to start); the route answers 503 meanwhile. */
    np_log(s, NONOPROXY_LOG_INFO, "%s; the route answers 503", g->diags[g->n_diags - 1].message);
    return NONOPROXY_OK;
}

/* The addresses of a route's upstream host h as ranges (hostrange.h): every loopback address
 * for "localhost", the address itself for a literal; none for another name. Returns how many
 * were written to r (at most 2). */
static size_t
upstream_ranges(const char *h, struct np_range r[2])
{
    char text[NP_HOST_BUF + 8];
    struct sockaddr_storage ss;

    if (strcmp(h, "localhost") == 0) {
        return np_range_parse("127.0.0.0/8", 11, &r[0]) == NULL &&
                       np_range_parse("::1/128", 7, &r[1]) == NULL
                   ? 2
                   : 0;
    }
    if (!np_host_parse_ip(h, &ss)) {
        return 0;
    }
    (void)snprintf(text, sizeof(text), "%s/%d", h, ss.ss_family == AF_INET ? 32 : 128);
    return np_range_parse(text, strlen(text), &r[0]) == NULL ? 1 : 0;
}

enum nonoproxy_err
np_route_runtime_new(struct np_settings *s, struct np_route_runtime **out,
                     struct nonoproxy_diag *diag)
{
    struct np_route_runtime *g = np_calloc(1, sizeof(*g));
    enum nonoproxy_err rc = NONOPROXY_ERR_NOMEM;
    char why[384];
    size_t i;

    *out = NULL;
    if (g == NULL || np_hostfilter_new(NULL, 0, &g->any) != 0 ||
        (s->n_routes > 0 && (g->rt = np_calloc(s->n_routes, sizeof(*g->rt))) == NULL)) {
        np_diag_set(diag, rc, ENOMEM, "routes: out of memory");
        goto out;
    }
    for (i = 0; i < s->n_routes; i++) {
        struct np_route *r = &s->routes[i];
        struct np_route_rt *rt = &g->rt[i];
        struct np_tls_roots roots = {NULL, s->ca_file, r->tls_ca};

        rt->r = r;
        rt->n_up = upstream_ranges(r->host, rt->up);
        g->n = i + 1;
        rc = route_load_credential(g, s, r, i, diag);
        if (rc != NONOPROXY_OK) {
            goto out;
        }
        if (r->tls && np_tls_conf_new(&roots, &rt->tls, why, sizeof(why)) != 0) {
            np_diag_set(diag, NONOPROXY_ERR_TLS, 0, "routes[%zu] '%s': tls: %s", i, r->prefix, why);
            rc = NONOPROXY_ERR_TLS;
            goto out;
        }
        if (r->tls_client_cert != NULL &&
            np_tls_conf_set_client_cert(rt->tls, r->tls_client_cert, r->tls_client_key, why,
                                        sizeof(why)) != 0) {
            np_diag_set(diag, NONOPROXY_ERR_TLS, 0, "routes[%zu] '%s': %s", i, r->prefix, why);
            rc = NONOPROXY_ERR_TLS;
            goto out;
        }
        np_ratelimit_init(&rt->rate, r->rate_rpm, r->rate_burst, r->rate_max_delay_ms);
        if (np_upool_new(NP_UPOOL_MAX_IDLE, NP_UPOOL_IDLE_MS, &rt->pool) != 0) {
            np_diag_set(diag, NONOPROXY_ERR_NOMEM, ENOMEM, "routes: out of memory");
            rc = NONOPROXY_ERR_NOMEM;
            goto out;
        }
    }
    *out = g;
    g = NULL;
    rc = NONOPROXY_OK;
out:
    np_route_runtime_free(g);
    return rc;
}

/* Append name=value (copies) to g->env. */
static int
runtime_env_add(struct np_route_runtime *g, const char *name, const char *value)
{
    char *n = np_strdup(name);
    char *v = np_strdup(value);

    if (n == NULL || v == NULL) {
        np_free(n);
        np_free_secret(v);
        return -1;
    }
    g->env[g->n_env++] = (struct nonoproxy_env_var){n, v};
    return 0;
}

int
np_route_runtime_env(struct np_route_runtime *g, const struct sockaddr_storage *bound,
                     const char *token)
{
    char host[INET6_ADDRSTRLEN + 2];
    char name[NONOPROXY_AUDIT_ROUTE_LEN + 256];
    char url[NONOPROXY_AUDIT_ROUTE_LEN + 256];
    size_t i;

    if (g->n == 0) {
        return 0;
    }
    g->env = np_calloc(2 * g->n, sizeof(*g->env));
    if (g->env == NULL) {
        return -1;
    }
    np_env_url_host(bound, host, sizeof(host));
    for (i = 0; i < g->n; i++) {
        const struct np_route *r = g->rt[i].r;
        int n = snprintf(url, sizeof(url), "http://%s:%u/%s", host,
                         (unsigned)np_sockaddr_port(bound), r->prefix);

        if (n < 0 || (size_t)n >= sizeof(url) ||
            np_route_base_url_name(r, name, sizeof(name)) == 0 ||
            runtime_env_add(g, name, url) != 0) {
            return -1;
        }
        if (r->secret != NULL && np_route_phantom_name(r, name, sizeof(name)) != 0 &&
            runtime_env_add(g, name, token) != 0) {
            return -1;
        }
    }
    return 0;
}

const struct np_route_rt *
np_route_runtime_find_upstream(const struct np_route_runtime *g, const char *host, uint16_t port)
{
    size_t i;

    for (i = 0; g != NULL && i < g->n; i++) {
        if (g->rt[i].r->port == port && strcmp(g->rt[i].r->host, host) == 0) {
            return &g->rt[i];
        }
    }
    return NULL;
}

/* Whether one of the addresses a lies in one of the ranges r[0..n). */
static bool
any_in(const struct np_addrlist *a, const struct np_range *r, size_t n)
{
    size_t i;
    size_t k;

    for (i = 0; i < a->n; i++) {
        for (k = 0; k < n; k++) {
            /* An IPv4 range also holds the IPv4-mapped IPv6 spelling of its addresses. */
            if (np_range_contains(&r[k], (const struct sockaddr *)&a->addr[i], false)) {
                return true;
            }
        }
    }
    return false;
}

const struct np_route_rt *
np_route_runtime_find_upstream_addr(const struct np_route_runtime *g, const struct np_addrlist *a,
                                    uint16_t port)
{
    size_t i;

    for (i = 0; g != NULL && a != NULL && i < g->n; i++) {
        if (g->rt[i].r->port == port && any_in(a, g->rt[i].up, g->rt[i].n_up)) {
            return &g->rt[i];
        }
    }
    return NULL;
}

void
np_route_runtime_close_idle(struct np_route_runtime *g)
{
    size_t i;

    for (i = 0; g != NULL && i < g->n; i++) {
        np_upool_close_idle(g->rt[i].pool);
    }
}

void
np_route_runtime_free(struct np_route_runtime *g)
{
    size_t i;

    if (g == NULL) {
        return;
    }
    for (i = 0; g->rt != NULL && i < g->n; i++) { /* n counts the filled slots of rt */
        np_upool_free(g->rt[i].pool);
        np_tls_conf_free(g->rt[i].tls);
    }
    for (i = 0; i < g->n_env; i++) {
        np_free((void *)(uintptr_t)g->env[i].name);
        np_free_secret((char *)(uintptr_t)g->env[i].value);
    }
    for (i = 0; i < g->n_diags; i++) {
        np_free((void *)(uintptr_t)g->diags[i].route);
        np_free((void *)(uintptr_t)g->diags[i].message);
    }
    np_free(g->diags);
    np_free(g->env);
    np_free(g->rt);
    np_hostfilter_free(g->any);
    np_free(g);
}
