/* The child's variable names for routes (SPEC §7), L1: <PREFIX>_BASE_URL, the phantom
 * variable, and the names a credential variable may never take. */
#ifndef NP_ROUTE_ENV_H
#define NP_ROUTE_ENV_H

#include <stdbool.h>
#include <stddef.h>

/* Whether name (case-insensitive) may not be used as an environment variable set from or
 * for credentials: LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT, DYLD_*, BASH_ENV, ENV, IFS, CDPATH,
 * PROMPT_COMMAND, NODE_OPTIONS, NODE_PATH, PYTHONSTARTUP, PYTHONPATH, PERL5OPT, PERL5LIB,
 * RUBYOPT, RUBYLIB, JAVA_TOOL_OPTIONS, _JAVA_OPTIONS, DOTNET_STARTUP_HOOKS, GOFLAGS, PATH,
 * HOME, SHELL, and the proxy's own variables (HTTP_PROXY, HTTPS_PROXY, NO_PROXY, lower-case
 * forms, NONO_PROXY_TOKEN, NODE_USE_ENV_PROXY). */
bool np_route_env_name_refused(const char *name, size_t len);

/* Whether name[0..len) is [A-Za-z_][A-Za-z0-9_]*. */
bool np_route_env_name_valid(const char *name, size_t len);

/* Write UPPER(s[0..len)) with every non-alphanumeric byte as '_' followed by suffix into out
 * (capacity cap), NUL-terminated. Returns the length, or 0 when it does not fit. */
size_t np_route_env_style(const char *s, size_t len, const char *suffix, char *out, size_t cap);

#endif /* NP_ROUTE_ENV_H */
