/* The child's proxy environment (SPEC §7), L1. */
#ifndef NP_ENV_H
#define NP_ENV_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <nonoproxy/proxy.h>

#define NP_ENV_COUNT 8

/* The proxy variables, rendered once at start. Values hold the token: wiped at free. */
struct np_env {
    struct nonoproxy_env_var vars[NP_ENV_COUNT];
    char *proxy_url; /* http://nono:<token>@<host>:<port> */
    char *token;     /* copy of the session token */
};

/* Render the variables for a proxy bound at bound (the host the child must use: an
 * unspecified address becomes loopback; IPv6 bracketed). Returns 0 or -1 (no memory). */
int np_env_build(struct np_env *env, const struct sockaddr_storage *bound, const char *token);

/* The host part of a URL the child uses to reach the proxy: the bound address, loopback for
 * an unspecified one, IPv6 in brackets. cap ≥ INET6_ADDRSTRLEN + 2. */
void np_env_url_host(const struct sockaddr_storage *ss, char *out, size_t cap);

/* Wipe and free. NULL-safe, idempotent. */
void np_env_free(struct np_env *env);

#endif /* NP_ENV_H */
