/* The child's variable names for routes (SPEC §7): see route_env.h. */
#include "route_env.h"

#include <stdint.h>
#include <string.h>

#include "common.h"

/* Names a credential variable may never take (compared ignoring case); DYLD_* separately. */
static const char *const refused_env_names[] = {
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "LD_AUDIT",
    "BASH_ENV",
    "ENV",
    "IFS",
    "CDPATH",
    "PROMPT_COMMAND",
    "NODE_OPTIONS",
    "NODE_PATH",
    "PYTHONSTARTUP",
    "PYTHONPATH",
    "PERL5OPT",
    "PERL5LIB",
    "RUBYOPT",
    "RUBYLIB",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "DOTNET_STARTUP_HOOKS",
    "GOFLAGS",
    "PATH",
    "HOME",
    "SHELL",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "NONO_PROXY_TOKEN",
    "NODE_USE_ENV_PROXY",
};

bool
np_route_env_name_valid(const char *name, size_t len)
{
    size_t i;

    if (len == 0 || (name[0] >= '0' && name[0] <= '9')) {
        return false;
    }
    for (i = 0; i < len; i++) {
        if (!np_ascii_is_alnum(name[i]) && name[i] != '_') {
            return false;
        }
    }
    return true;
}

size_t
np_route_env_style(const char *s, size_t len, const char *suffix, char *out, size_t cap)
{
    size_t slen = strlen(suffix);
    size_t i;

    if (out == NULL || len > SIZE_MAX - slen - 1 || cap < len + slen + 1) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        char ch = '_';

        if (np_ascii_is_alnum(s[i])) {
            ch = np_ascii_upper(s[i]);
        }
        out[i] = ch;
    }
    memcpy(out + len, suffix, slen);
    out[len + slen] = '\0';
    return len + slen;
}

/* Whether name[0..len) is a refused variable name (ignoring case), or starts with DYLD_. */
bool
np_route_env_name_refused(const char *name, size_t len)
{
    size_t i;

    if (name == NULL) {
        return true;
    }
    if (len >= 5 && np_ascii_ieq(name, 5, "DYLD_", 5)) {
        return true;
    }
    for (i = 0; i < NP_ARRAY_LEN(refused_env_names); i++) {
        const char *n = refused_env_names[i];

        if (np_ascii_ieq(name, len, n, strlen(n))) {
            return true;
        }
    }
    return false;
}
