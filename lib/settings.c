/* The frozen settings of a running proxy (SPEC §1.1): see settings.h. */
#include "settings.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "common.h"
#include "config.h"
#include "config_external.h"
#include "diag.h"
#include "route_config.h"

void
np_log(const struct np_settings *s, enum nonoproxy_log_level level, const char *fmt, ...)
{
    char line[512];
    va_list ap;

    if (s == NULL || s->log_cb == NULL || level > s->log_level) {
        return;
    }
    va_start(ap, fmt);
    (void)vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    s->log_cb(s->log_userdata, level, line);
}

int
np_parse_ip_literal(const char *text, uint16_t port, struct sockaddr_storage *ss)
{
    char buf[INET6_ADDRSTRLEN + 4];
    size_t len = strlen(text);
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

    memset(ss, 0, sizeof(*ss));
    if (len >= 2 && text[0] == '[' && text[len - 1] == ']') {
        text++;
        len -= 2;
    }
    if (len == 0 || len >= sizeof(buf)) {
        return -1;
    }
    memcpy(buf, text, len);
    buf[len] = '\0';
    if (inet_pton(AF_INET, buf, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        return 0;
    }
    if (inet_pton(AF_INET6, buf, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        return 0;
    }
    return -1;
}

/* Copy the scalar fields that need no validation. */
static void
settings_copy_scalars(struct np_settings *s, const struct nonoproxy_config *cfg)
{
    s->max_connections = cfg->max_connections;
    s->require_auth = cfg->require_auth;
    s->audit_capacity = cfg->audit_capacity;
    s->header_timeout_ms = cfg->header_timeout_ms;
    s->connect_timeout_ms = cfg->connect_timeout_ms;
    s->tls_timeout_ms = cfg->tls_timeout_ms;
    s->idle_timeout_ms = cfg->idle_timeout_ms;
    s->response_timeout_ms = cfg->response_timeout_ms;
    s->log_cb = cfg->log_cb;
    s->log_userdata = cfg->log_userdata;
    s->log_level = cfg->log_level;
    s->audit_cb = cfg->audit_cb;
    s->audit_userdata = cfg->audit_userdata;
}

/* Validate and copy the optional ca_file: it must be readable now. */
static enum nonoproxy_err
settings_ca_file(struct np_settings *s, const char *path, struct nonoproxy_diag *diag)
{
    FILE *f;
    char shown[160];

    if (path == NULL) {
        return NONOPROXY_OK;
    }
    np_copy_printable(shown, sizeof(shown), path, strlen(path));
    f = fopen(path, "re");
    if (f == NULL) {
        int e = errno;
        np_diag_set(diag, NONOPROXY_ERR_INVALID_ARG, e, "ca_file: cannot read '%s': %s", shown,
                    NP_ERRSTR(e));
        return NONOPROXY_ERR_INVALID_ARG;
    }
    (void)fclose(f);
    s->ca_file = np_strdup(path);
    if (s->ca_file == NULL) {
        np_diag_set(diag, NONOPROXY_ERR_NOMEM, ENOMEM, "ca_file: out of memory");
        return NONOPROXY_ERR_NOMEM;
    }
    return NONOPROXY_OK;
}

/* Compile the allowlist (its entries were validated as they were added). */
static enum nonoproxy_err
settings_allowlist(struct np_settings *s, const struct nonoproxy_config_lists *l,
                   struct nonoproxy_diag *diag)
{
    if (np_hostfilter_new((const char *const *)l->allowed_hosts, l->n_allowed, &s->allow) != 0) {
        np_diag_set(diag, NONOPROXY_ERR_NOMEM, ENOMEM, "allowed_hosts: out of memory");
        return NONOPROXY_ERR_NOMEM;
    }
    return NONOPROXY_OK;
}

enum nonoproxy_err
np_settings_new(const struct nonoproxy_config *cfg, struct np_settings **out,
                struct nonoproxy_diag *diag)
{
    enum nonoproxy_err rc = NONOPROXY_ERR_INVALID_ARG;
    const struct nonoproxy_config_lists *l = np_config_lists(cfg);
    struct np_route_input routes;
    struct np_settings *s = NULL;
    char shown[96];

    if (cfg == NULL || out == NULL) {
        np_diag_set(diag, rc, 0, "config: NULL argument");
        return rc;
    }
    s = np_calloc(1, sizeof(*s));
    if (s == NULL) {
        np_diag_set(diag, NONOPROXY_ERR_NOMEM, ENOMEM, "config: out of memory");
        return NONOPROXY_ERR_NOMEM;
    }
    settings_copy_scalars(s, cfg);
    if (cfg->bind_addr == NULL ||
        np_parse_ip_literal(cfg->bind_addr, cfg->bind_port, &s->bind_ss) != 0) {
        const char *b = cfg->bind_addr == NULL ? "(null)" : cfg->bind_addr;
        np_copy_printable(shown, sizeof(shown), b, strlen(b));
        np_diag_set(diag, rc, 0, "bind_addr: '%s' is not an IPv4 or IPv6 address", shown);
        goto out;
    }
    rc = settings_ca_file(s, cfg->ca_file, diag);
    if (rc != NONOPROXY_OK) {
        goto out;
    }
    rc = settings_allowlist(s, l, diag);
    if (rc != NONOPROXY_OK) {
        goto out;
    }
    s->credential_cb = cfg->credential_cb;
    s->credential_userdata = cfg->credential_userdata;
    routes.cfgs = l->routes;
    routes.n = l->n_routes;
    routes.has_callback = cfg->credential_cb != NULL;
    rc = np_routes_validate(&routes, &s->routes, &s->n_routes, diag);
    if (rc != NONOPROXY_OK) {
        goto out;
    }
    rc = np_external_new(l->external_proxy, (const char *const *)l->bypass_hosts, l->n_bypass,
                         &s->ext, diag);
    if (rc != NONOPROXY_OK) {
        goto out;
    }
    s->resolver.fn = cfg->resolver;
    s->resolver.userdata = cfg->resolver_userdata;
    *out = s;
    s = NULL;
out:
    np_settings_free(s);
    return rc;
}

void
np_settings_free(struct np_settings *s)
{
    if (s == NULL) {
        return;
    }
    np_hostfilter_free(s->allow);
    np_routes_free(s->routes, s->n_routes);
    np_external_free(s->ext);
    np_free(s->ca_file);
    np_free(s);
}
