/* The child's proxy environment (L1). */
#include "env.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"

void
np_env_url_host(const struct sockaddr_storage *ss, char *out, size_t cap)
{
    char a[INET6_ADDRSTRLEN];

    if (ss->ss_family == AF_INET6) {
        struct in6_addr addr = ((const struct sockaddr_in6 *)ss)->sin6_addr;
        if (IN6_IS_ADDR_UNSPECIFIED(&addr)) {
            addr = in6addr_loopback;
        }
        (void)inet_ntop(AF_INET6, &addr, a, sizeof(a));
        (void)snprintf(out, cap, "[%s]", a);
    } else {
        struct in_addr addr = ((const struct sockaddr_in *)ss)->sin_addr;
        if (addr.s_addr == htonl(INADDR_ANY)) {
            addr.s_addr = htonl(INADDR_LOOPBACK);
        }
        (void)inet_ntop(AF_INET, &addr, a, sizeof(a));
        (void)snprintf(out, cap, "%s", a);
    }
}

int
np_env_build(struct np_env *env, const struct sockaddr_storage *bound, const char *token)
{
    char host[INET6_ADDRSTRLEN + 2];
    char url[256];
    uint16_t port;
    int n;

    memset(env, 0, sizeof(*env));
    port = ntohs(bound->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)bound)->sin6_port
                                              : ((const struct sockaddr_in *)bound)->sin_port);
    np_env_url_host(bound, host, sizeof(host));
    n = snprintf(url, sizeof(url), "http://nono:%s@%s:%u", token, host, (unsigned)port);
    if (n < 0 || (size_t)n >= sizeof(url)) {
        return -1;
    }
    env->proxy_url = np_strdup(url);
    np_secure_zero(url, sizeof(url));
    env->token = np_strdup(token);
    if (env->proxy_url == NULL || env->token == NULL) {
        np_env_free(env);
        return -1;
    }
    env->vars[0] = (struct nonoproxy_env_var){"HTTP_PROXY", env->proxy_url};
    env->vars[1] = (struct nonoproxy_env_var){"HTTPS_PROXY", env->proxy_url};
    env->vars[2] = (struct nonoproxy_env_var){"http_proxy", env->proxy_url};
    env->vars[3] = (struct nonoproxy_env_var){"https_proxy", env->proxy_url};
    env->vars[4] = (struct nonoproxy_env_var){"NO_PROXY", "localhost,127.0.0.1,::1"};
    env->vars[5] = (struct nonoproxy_env_var){"no_proxy", "localhost,127.0.0.1,::1"};
    env->vars[6] = (struct nonoproxy_env_var){"NONO_PROXY_TOKEN", env->token};
    env->vars[7] = (struct nonoproxy_env_var){"NODE_USE_ENV_PROXY", "1"};
    return 0;
}

void
np_env_free(struct np_env *env)
{
    if (env == NULL) {
        return;
    }
    np_free_secret(env->proxy_url);
    np_free_secret(env->token);
    memset(env, 0, sizeof(*env));
}
