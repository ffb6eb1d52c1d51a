/* The public proxy API (L4): start, port, env, drain, shutdown, free. */
#include <nonoproxy/proxy.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "alloc.h"
#include "audit.h"
#include "decide.h"
#include "diag.h"
#include "env.h"
#include "listener.h"
#include "net.h"
#include "route_runtime.h"
#include "session.h"
#include "settings.h"
#include "token.h"

struct nonoproxy_proxy {
    struct np_settings *s;
    struct np_ctx ctx;
    struct np_audit_ring *ring;
    struct np_listener *listener;
    struct np_env env;
    struct np_route_runtime *routes;
    char token[NP_TOKEN_HEX_LEN + 1];
    int stop_fd;
    uint16_t port;
    pthread_mutex_t shut_mu;
    bool shut; /* under shut_mu */
};

/* Release everything start may have created; listener already stopped. */
static void
proxy_release(struct nonoproxy_proxy *p)
{
    np_env_free(&p->env);
    np_route_runtime_free(p->routes);
    np_audit_ring_free(p->ring);
    np_settings_free(p->s);
    np_net_close(p->stop_fd);
    np_secure_zero(p->token, sizeof(p->token));
    pthread_mutex_destroy(&p->shut_mu);
    np_free(p);
}

/* Bind the listener and remember the bound address in ctx.self. */
static enum nonoproxy_err
proxy_bind(struct nonoproxy_proxy *p, int *fd, struct nonoproxy_diag *diag)
{
    char a[64];
    struct sockaddr_storage ss = p->s->bind_ss;

    if (np_net_listen(&ss, 512, fd) != 0) {
        int e = errno;
        np_diag_set(diag, NONOPROXY_ERR_IO, e,
                    "bind_addr/bind_port: cannot listen on %s port %u: %s",
                    np_sockaddr_ntop(&p->s->bind_ss, a, sizeof(a)),
                    (unsigned)np_sockaddr_port(&p->s->bind_ss), NP_ERRSTR(e));
        return NONOPROXY_ERR_IO;
    }
    p->ctx.self = ss;
    p->port = np_sockaddr_port(&ss);
    return NONOPROXY_OK;
}

/* Everything but the threads: settings, token, ring, stop descriptor, env. */
static enum nonoproxy_err
proxy_prepare(struct nonoproxy_proxy *p, const struct nonoproxy_config *cfg,
              struct nonoproxy_diag *diag)
{
    enum nonoproxy_err rc = np_settings_new(cfg, &p->s, diag);

    if (rc != NONOPROXY_OK) {
        return rc;
    }
    if (p->s->resolver.fn == NULL) {
        p->s->resolver.fn = np_net_resolve;
    }
    rc = np_route_runtime_new(p->s, &p->routes, diag);
    if (rc != NONOPROXY_OK) {
        return rc;
    }
    if (p->s->decider != NULL &&
        np_decider_set_start_diags(p->s->decider, p->routes->diags, p->routes->n_diags) != 0) {
        np_diag_set(diag, NONOPROXY_ERR_NOMEM, ENOMEM, "decide_cb: out of memory");
        return NONOPROXY_ERR_NOMEM;
    }
    if (np_token_generate(p->token) != 0) {
        np_diag_set(diag, NONOPROXY_ERR_RNG, errno, "session token: getrandom failed");
        return NONOPROXY_ERR_RNG;
    }
    if (np_audit_ring_new(p->s->audit_capacity, &p->ring) != 0) {
        np_diag_set(diag, NONOPROXY_ERR_NOMEM, ENOMEM, "audit_capacity: cannot allocate %zu events",
                    p->s->audit_capacity);
        return NONOPROXY_ERR_NOMEM;
    }
    p->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (p->stop_fd < 0) {
        np_diag_set(diag, NONOPROXY_ERR_IO, errno, "eventfd: %s", NP_ERRSTR(errno));
        return NONOPROXY_ERR_IO;
    }
    p->ctx.s = p->s;
    p->ctx.ring = p->ring;
    p->ctx.token = p->token;
    p->ctx.stop_fd = p->stop_fd;
    p->ctx.routes = p->routes;
    return NONOPROXY_OK;
}

enum nonoproxy_err
nonoproxy_start(const struct nonoproxy_config *cfg, struct nonoproxy_proxy **out,
                struct nonoproxy_diag *diag)
{
    struct nonoproxy_proxy *p;
    enum nonoproxy_err rc;
    int fd = -1;

    if (out == NULL) {
        np_diag_set(diag, NONOPROXY_ERR_INVALID_ARG, 0, "nonoproxy_start: out is NULL");
        return NONOPROXY_ERR_INVALID_ARG;
    }
    p = np_calloc(1, sizeof(*p));
    if (p == NULL || pthread_mutex_init(&p->shut_mu, NULL) != 0) {
        np_free(p);
        np_diag_set(diag, NONOPROXY_ERR_NOMEM, ENOMEM, "nonoproxy_start: out of memory");
        return NONOPROXY_ERR_NOMEM;
    }
    p->stop_fd = -1;
    rc = proxy_prepare(p, cfg, diag);
    if (rc == NONOPROXY_OK) {
        rc = proxy_bind(p, &fd, diag);
    }
    if (rc == NONOPROXY_OK && (np_env_build(&p->env, &p->ctx.self, p->token) != 0 ||
                               np_route_runtime_env(p->routes, &p->ctx.self, p->token) != 0)) {
        np_diag_set(diag, NONOPROXY_ERR_NOMEM, ENOMEM, "env_vars: out of memory");
        rc = NONOPROXY_ERR_NOMEM;
    }
    if (rc == NONOPROXY_OK && np_listener_start(&p->ctx, fd, &p->listener) != 0) {
        rc = errno == ENOMEM ? NONOPROXY_ERR_NOMEM : NONOPROXY_ERR_IO;
        np_diag_set(diag, rc, errno, "cannot start the listener threads: %s", NP_ERRSTR(errno));
    }
    if (rc != NONOPROXY_OK) {
        np_net_close(fd);
        proxy_release(p);
        return rc;
    }
    np_log(p->s, NONOPROXY_LOG_INFO, "listening on port %u", (unsigned)p->port);
    *out = p;
    return NONOPROXY_OK;
}

uint16_t
nonoproxy_port(const struct nonoproxy_proxy *p)
{
    return p == NULL ? 0 : p->port;
}

enum nonoproxy_err
nonoproxy_env_vars(const struct nonoproxy_proxy *p, const struct nonoproxy_env_var **vars,
                   size_t *n)
{
    if (p == NULL || vars == NULL || n == NULL) {
        return NONOPROXY_ERR_INVALID_ARG;
    }
    *vars = p->env.vars;
    *n = NP_ENV_COUNT;
    return NONOPROXY_OK;
}

enum nonoproxy_err
nonoproxy_credential_env_vars(const struct nonoproxy_proxy *p,
                              const struct nonoproxy_env_var **vars, size_t *n)
{
    if (p == NULL || vars == NULL || n == NULL) {
        return NONOPROXY_ERR_INVALID_ARG;
    }
    *vars = p->routes->env;
    *n = p->routes->n_env;
    return NONOPROXY_OK;
}

enum nonoproxy_err
nonoproxy_diagnostics(const struct nonoproxy_proxy *p, const struct nonoproxy_diagnostic **list,
                      size_t *n)
{
    if (p == NULL || list == NULL || n == NULL) {
        return NONOPROXY_ERR_INVALID_ARG;
    }
    if (p->s->decider != NULL) {
        /* The start-time diagnostics, then the session grants as they are added. */
        np_decider_diagnostics(p->s->decider, list, n);
        return NONOPROXY_OK;
    }
    *list = p->routes->diags;
    *n = p->routes->n_diags;
    return NONOPROXY_OK;
}

size_t
nonoproxy_drain_audit_events(struct nonoproxy_proxy *p, struct nonoproxy_audit_event *out,
                             size_t max, uint64_t *dropped)
{
    if (dropped != NULL) {
        *dropped = 0;
    }
    if (p == NULL || out == NULL) {
        return 0;
    }
    return np_audit_ring_drain(p->ring, out, max, dropped);
}

void
nonoproxy_shutdown(struct nonoproxy_proxy *p)
{
    uint64_t one = 1;

    if (p == NULL) {
        return;
    }
    pthread_mutex_lock(&p->shut_mu);
    if (!p->shut) {
        /* The stop descriptor stays readable: every wait in every thread returns. Threads
         * waiting for another's decide callback are woken and deny; a callback that is running
         * is waited for (it was given its deadline). */
        (void)write(p->stop_fd, &one, sizeof(one));
        np_decider_stop(p->s->decider);
        np_listener_stop(p->listener);
        p->listener = NULL;
        np_route_runtime_close_idle(
            p->routes); /* every worker is joined: no connection is in use */
        p->shut = true;
    }
    pthread_mutex_unlock(&p->shut_mu);
}

void
nonoproxy_free(struct nonoproxy_proxy *p)
{
    if (p == NULL) {
        return;
    }
    nonoproxy_shutdown(p);
    proxy_release(p);
}
