/* nonoproxy-run: build the command's environment from the caller's and the proxy's variables. */
#include "childenv.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ENV_SCHEME     "env://"
#define ENV_SCHEME_LEN (sizeof(ENV_SCHEME) - 1)

const char *
cli_env_ref_name(const char *ref)
{
    if (ref == NULL || strncasecmp(ref, ENV_SCHEME, ENV_SCHEME_LEN) != 0 ||
        ref[ENV_SCHEME_LEN] == '\0') {
        return NULL;
    }
    return ref + ENV_SCHEME_LEN;
}

size_t
cli_env_collect_removals(const struct cli_routes *routes, const char **names, size_t cap)
{
    size_t n = 0;
    size_t i = 0;
    const char *name = NULL;

    if (cap > 0) {
        names[n++] = CLI_EXTERNAL_PROXY_ENV;
    }
    for (i = 0; i < routes->len && n < cap; i++) {
        name = cli_env_ref_name(routes->items[i].credential);
        if (name != NULL) {
            names[n++] = name;
        }
    }
    return n;
}

/* Returns the length of the name of entry e ("NAME=value" or a bare "NAME"). */
static size_t
entry_name_len(const char *e)
{
    const char *eq = strchr(e, '=');

    return eq != NULL ? (size_t)(eq - e) : strlen(e);
}

/* Returns true when name (len bytes) is exactly s. */
static bool
name_is(const char *name, size_t len, const char *s)
{
    return strlen(s) == len && memcmp(name, s, len) == 0;
}

const char *
cli_env_value(char *const *envp, const char *name)
{
    size_t len = strlen(name);
    size_t i = 0;

    for (i = 0; envp != NULL && envp[i] != NULL; i++) {
        if (strncmp(envp[i], name, len) == 0 && envp[i][len] == '=') {
            return envp[i] + len + 1;
        }
    }
    return NULL;
}

/* Returns true when a source sets name (len bytes) at position (src, idx) or after it. */
static bool
set_from(const struct cli_env_plan *plan, size_t src, size_t idx, const char *name, size_t len)
{
    size_t s = 0;
    size_t i = 0;

    for (s = src; s < plan->n_sources; s++) {
        for (i = s == src ? idx : 0; i < plan->sources[s].n; i++) {
            if (name_is(name, len, plan->sources[s].vars[i].name)) {
                return true;
            }
        }
    }
    return false;
}

/* Returns true when base entry e is to be kept: not removed, not replaced by a source. */
static bool
keep_inherited(const struct cli_env_plan *plan, const char *e)
{
    size_t len = entry_name_len(e);
    size_t i = 0;

    for (i = 0; i < plan->n_remove; i++) {
        if (name_is(e, len, plan->remove[i])) {
            return false;
        }
    }
    return !set_from(plan, 0, 0, e, len);
}

/* Returns a malloc'd "name=value", or NULL. */
static char *
make_entry(const struct nonoproxy_env_var *v)
{
    size_t nl = strlen(v->name);
    size_t vl = strlen(v->value);
    char *s = NULL;

    if (nl > SIZE_MAX - 2 - vl) {
        return NULL;
    }
    s = malloc(nl + vl + 2);
    if (s == NULL) {
        return NULL;
    }
    memcpy(s, v->name, nl);
    s[nl] = '=';
    memcpy(s + nl + 1, v->value, vl + 1);
    return s;
}

/* Returns the number of slots out needs (entries + terminator), or 0 on overflow. */
static size_t
slots_needed(const struct cli_env_plan *plan)
{
    size_t total = 1;
    size_t i = 0;

    while (plan->base != NULL && plan->base[i] != NULL) {
        i++;
    }
    total += i;
    for (i = 0; i < plan->n_sources; i++) {
        if (plan->sources[i].n > SIZE_MAX / sizeof(char *) - total) {
            return 0;
        }
        total += plan->sources[i].n;
    }
    return total;
}

bool
cli_env_build(const struct cli_env_plan *plan, struct cli_env *out)
{
    size_t slots = slots_needed(plan);
    size_t s = 0;
    size_t i = 0;
    const struct nonoproxy_env_var *v = NULL;
    char *entry = NULL;

    memset(out, 0, sizeof(*out));
    out->envp = slots != 0 ? calloc(slots, sizeof(char *)) : NULL;
    if (out->envp == NULL) {
        return false;
    }
    for (i = 0; plan->base != NULL && plan->base[i] != NULL; i++) {
        if (keep_inherited(plan, plan->base[i])) {
            out->envp[out->len++] = plan->base[i];
        }
    }
    out->owned_from = out->len;
    for (s = 0; s < plan->n_sources; s++) {
        for (i = 0; i < plan->sources[s].n; i++) {
            v = &plan->sources[s].vars[i];
            if (set_from(plan, s, i + 1, v->name, strlen(v->name))) {
                continue; /* a later source sets it: the last one wins */
            }
            entry = make_entry(v);
            if (entry == NULL) {
                return false;
            }
            out->envp[out->len++] = entry;
        }
    }
    return true;
}

void
cli_env_free(struct cli_env *env)
{
    size_t i = 0;

    if (env->envp != NULL) {
        for (i = env->owned_from; i < env->len; i++) {
            explicit_bzero(env->envp[i], strlen(env->envp[i]));
            free(env->envp[i]);
        }
        free(env->envp);
    }
    memset(env, 0, sizeof(*env));
}

/* Returns true when name is a shell variable name. */
static bool
shell_name(const char *name)
{
    size_t i = 0;

    if (name == NULL || name[0] == '\0' || (name[0] >= '0' && name[0] <= '9')) {
        return false;
    }
    for (i = 0; name[i] != '\0'; i++) {
        char c = name[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_')) {
            return false;
        }
    }
    return true;
}

size_t
cli_export_line(char *dst, size_t cap, const char *name, const char *value)
{
    size_t used = 0;
    size_t nlen = name != NULL ? strlen(name) : 0;
    size_t i = 0;
    int w = 0;

    if (!shell_name(name) || cap < nlen + sizeof("export ='") + 2) {
        return 0;
    }
    w = snprintf(dst, cap, "export %s='", name);
    if (w < 0 || (size_t)w != nlen + 9) {
        return 0;
    }
    used = (size_t)w;
    for (i = 0; value != NULL && value[i] != '\0'; i++) {
        const char *piece = value[i] == '\'' ? "'\\''" : NULL;
        size_t plen = piece != NULL ? 4 : 1;

        if (plen > cap - used - 3) { /* room for "'\n" and the NUL */
            return 0;
        }
        if (piece != NULL) {
            memcpy(dst + used, piece, plen + 1);
        } else {
            dst[used] = value[i];
        }
        used += plen;
    }
    memcpy(dst + used, "'\n", 3); /* with the NUL */
    return used + 2;
}
