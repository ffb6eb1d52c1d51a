/* nonoproxy-run: the command's environment (SPEC §11). Pure: reads no global, runs no process. */
#ifndef NONOPROXY_CLI_CHILDENV_H
#define NONOPROXY_CLI_CHILDENV_H

#include <stdbool.h>
#include <stddef.h>

#include <nonoproxy/proxy.h>

#include "args.h"

/** One list of variables to add, e.g. nonoproxy_env_vars() or nonoproxy_credential_env_vars(). */
struct cli_env_source {
    const struct nonoproxy_env_var *vars;
    size_t n;
};

/** What the command's environment is made of. */
struct cli_env_plan {
    char *const *base;         /**< inherited "NAME=value" entries, NULL-terminated;
                                    NULL = none */
    const char *const *remove; /**< names dropped from base (exact match) */
    size_t n_remove;
    const struct cli_env_source *sources; /**< added after base, in order */
    size_t n_sources;
};

/** A built environment for execve(). */
struct cli_env {
    char **envp;       /**< NULL-terminated; NULL until built */
    size_t owned_from; /**< envp[owned_from .. len) were allocated here (they hold the token) */
    size_t len;
};

/**
 * Return the variable name of an env:// credential reference, pointing into ref: "env://NAME"
 * gives "NAME" (the scheme is matched case-insensitively so that no spelling the library might
 * accept slips through). NULL for any other reference, an empty name, or NULL.
 */
const char *cli_env_ref_name(const char *ref);

/** How many names cli_env_collect_removals() writes besides those of the routes. */
#define CLI_ENV_FIXED_REMOVALS 1

/**
 * Write to names (capacity cap, at least routes->len + CLI_ENV_FIXED_REMOVALS) the names of the
 * variables COMMAND must not inherit: first CLI_EXTERNAL_PROXY_ENV (always, whether or not it
 * was used: it may hold the external proxy's password), then the variable names of the env://
 * credentials of routes, in route order, pointing into the routes' strings.
 * \return how many were written.
 */
size_t cli_env_collect_removals(const struct cli_routes *routes, const char **names, size_t cap);

/**
 * Return the value of variable name in envp ("NAME=value" entries, NULL-terminated; NULL = no
 * entry), pointing into the first matching entry; NULL when absent. The match is exact. Pure
 * lookup for run.c, which passes environ (getenv() is not thread-safe and the tests need a
 * fixed environment).
 */
const char *cli_env_value(char *const *envp, const char *name);

/**
 * Build out from plan: the base entries whose name is neither in plan->remove nor set by a
 * source, in their order; then each source's variables in order as owned "NAME=value" strings.
 * When a name occurs more than once among the sources, only its last occurrence is kept.
 * An entry of base without '=' is named by all of it.
 * \return false on allocation failure; out is then safe to pass to cli_env_free().
 */
bool cli_env_build(const struct cli_env_plan *plan, struct cli_env *out);

/** Wipe the owned strings (they hold the session token), free them and reset env.
 * Idempotent; env may be zeroed. */
void cli_env_free(struct cli_env *env);

/**
 * Write one shell line "export NAME='value'\n" into dst (cap bytes): the value in single quotes,
 * each ' in it written as '\''. NAME must be a shell name ([A-Za-z_][A-Za-z0-9_]*).
 * \return the length written, or 0 when NAME is not a shell name or the line does not fit.
 */
size_t cli_export_line(char *dst, size_t cap, const char *name, const char *value);

#endif /* NONOPROXY_CLI_CHILDENV_H */
