/* Public configuration API, validation at start, frozen settings (L1). */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "common.h"
#include "external.h"

void
nonoproxy_config_init(struct nonoproxy_config *cfg)
{
    if (cfg == NULL) {
        return;
    }
    memset(cfg, 0, sizeof(*cfg));
    cfg->bind_addr = "127.0.0.1";
    cfg->bind_port = 0;
    cfg->max_connections = 256;
    cfg->require_auth = true;
    cfg->audit_capacity = 4096;
    cfg->header_timeout_ms = 30000;
    cfg->connect_timeout_ms = 10000;
    cfg->tls_timeout_ms = 10000;
    cfg->idle_timeout_ms = 600000;
    cfg->response_timeout_ms = 300000;
    cfg->log_level = NONOPROXY_LOG_INFO;
}

void
np_diag_set(struct nonoproxy_diag *diag, enum nonoproxy_err code, int sys_errno, const char *fmt,
            ...)
{
    va_list ap;

    if (diag == NULL) {
        return;
    }
    diag->code = code;
    diag->sys_errno = sys_errno;
    va_start(ap, fmt);
    (void)vsnprintf(diag->message, sizeof(diag->message), fmt, ap);
    va_end(ap);
}

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

/* Append a copy of s to the owned string list *list of length *len. */
static enum nonoproxy_err
strlist_append(char ***list, size_t *len, const char *s)
{
    char *copy = np_strdup(s);
    char **grown;

    if (copy == NULL) {
        return NONOPROXY_ERR_NOMEM;
    }
    grown = np_realloc(*list, (*len + 1) * sizeof(**list));
    if (grown == NULL) {
        np_free(copy);
        return NONOPROXY_ERR_NOMEM;
    }
    grown[*len] = copy;
    *list = grown;
    (*len)++;
    return NONOPROXY_OK;
}

static void
strlist_free(char **list, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        np_free(list[i]);
    }
    np_free(list);
}

enum nonoproxy_err
nonoproxy_config_allow_host(struct nonoproxy_config *cfg, const char *host,
                            struct nonoproxy_diag *diag)
{
    char norm[NP_HOST_BUF + 16];
    char why[128];
    char shown[96];
    enum nonoproxy_err rc;

    if (cfg == NULL || host == NULL) {
        np_diag_set(diag, NONOPROXY_ERR_INVALID_ARG, 0, "allowed_hosts: NULL entry");
        return NONOPROXY_ERR_INVALID_ARG;
    }
    if (np_host_entry_normalize(host, norm, sizeof(norm), why, sizeof(why)) != 0) {
        np_copy_printable(shown, sizeof(shown), host, strlen(host));
        np_diag_set(diag, NONOPROXY_ERR_INVALID_ARG, 0, "allowed_hosts: invalid entry '%s': %s",
                    shown, why);
        return NONOPROXY_ERR_INVALID_ARG;
    }
    rc = strlist_append(&cfg->allowed_hosts, &cfg->allowed_hosts_len, norm);
    if (rc != NONOPROXY_OK) {
        np_diag_set(diag, rc, ENOMEM, "allowed_hosts: out of memory");
    }
    return rc;
}

void
nonoproxy_config_free(struct nonoproxy_config *cfg)
{
    if (cfg == NULL) {
        return;
    }
    strlist_free(cfg->allowed_hosts, cfg->allowed_hosts_len);
    np_config_routes_free(cfg);
    np_config_external_free(cfg);
    nonoproxy_config_init(cfg);
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

/* Re-validate every allowlist entry (the list may have been filled by hand) and compile it. */
static enum nonoproxy_err
settings_allowlist(struct np_settings *s, const struct nonoproxy_config *cfg,
                   struct nonoproxy_diag *diag)
{
    char norm[NP_HOST_BUF + 16];
    char why[128];
    char shown[96];
    size_t i;

    for (i = 0; i < cfg->allowed_hosts_len; i++) {
        const char *e = cfg->allowed_hosts[i];
        if (e == NULL || np_host_entry_normalize(e, norm, sizeof(norm), why, sizeof(why)) != 0) {
            np_copy_printable(shown, sizeof(shown), e == NULL ? "" : e, e == NULL ? 0 : strlen(e));
            np_diag_set(diag, NONOPROXY_ERR_INVALID_ARG, 0,
                        "allowed_hosts[%zu]: invalid entry '%s': %s", i, shown,
                        e == NULL ? "NULL" : why);
            return NONOPROXY_ERR_INVALID_ARG;
        }
    }
    if (np_hostfilter_new((const char *const *)cfg->allowed_hosts, cfg->allowed_hosts_len,
                          &s->allow) != 0) {
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
    rc = settings_allowlist(s, cfg, diag);
    if (rc != NONOPROXY_OK) {
        goto out;
    }
    s->credential_cb = cfg->credential_cb;
    s->credential_userdata = cfg->credential_userdata;
    rc = np_settings_routes(s, cfg, diag);
    if (rc != NONOPROXY_OK) {
        goto out;
    }
    rc = np_external_new(cfg, &s->ext, diag);
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
    np_settings_routes_free(s);
    np_external_free(s->ext);
    np_free(s->ca_file);
    np_free(s);
}
