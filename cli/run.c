/* nonoproxy-run: proxy lifecycle, the command's environment and process, signal forwarding. */
#include "run.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nonoproxy/nonoproxy.h>

#include "ask.h"
#include "childenv.h"
#include "sandbox.h"
#include "serve.h"
#include "sink.h"

#define PROG "nonoproxy-run"

/* Signals forwarded to the command. */
static const int FORWARDED[] = {SIGINT, SIGTERM, SIGHUP};

/* Signal state set before the proxy's threads exist, and what the child gets back. */
struct cli_signals {
    sigset_t wait_set;         /* forwarded signals + SIGCHLD: blocked everywhere, sigwaited */
    sigset_t old_mask;         /* the mask nonoproxy-run was started with */
    struct sigaction old_pipe; /* SIGPIPE and SIGCHLD dispositions it was started with */
    struct sigaction old_chld;
};

/* Prints "nonoproxy-run: WHAT: <strerror(e)>" to stderr. */
static void
print_errno(const char *what, int e)
{
    char ebuf[128];

    (void)fprintf(stderr, PROG ": %s: %s\n", what, strerror_r(e, ebuf, sizeof(ebuf)));
}

/* Blocks the forwarded signals and SIGCHLD in the calling (main) thread before any proxy
 * thread exists, so that every thread inherits the mask and only wait_child() receives them.
 * A forwarded signal that the caller left ignored (nohup) stays ignored and is not forwarded.
 * Also ignores SIGPIPE (a closed stderr must not kill us and orphan the command) and makes
 * sure SIGCHLD is not ignored (an ignored SIGCHLD would reap the command behind our back).
 * With tty (--ask) SIGTTIN and SIGTTOU are blocked too: a question asked while we are not in
 * the terminal's foreground then fails with EIO instead of stopping the whole proxy. */
static bool
block_signals(struct cli_signals *sig, bool tty)
{
    sigset_t job;

    struct sigaction act;
    struct sigaction cur;
    size_t i = 0;
    int rc = 0;

    memset(&act, 0, sizeof(act));
    (void)sigemptyset(&act.sa_mask);
    (void)sigemptyset(&sig->wait_set);
    (void)sigaddset(&sig->wait_set, SIGCHLD);
    for (i = 0; i < sizeof(FORWARDED) / sizeof(FORWARDED[0]); i++) {
        if (sigaction(FORWARDED[i], NULL, &cur) == 0 && cur.sa_handler == SIG_IGN) {
            continue;
        }
        (void)sigaddset(&sig->wait_set, FORWARDED[i]);
    }
    rc = pthread_sigmask(SIG_BLOCK, &sig->wait_set, &sig->old_mask);
    if (rc == 0 && tty) {
        (void)sigemptyset(&job);
        (void)sigaddset(&job, SIGTTIN);
        (void)sigaddset(&job, SIGTTOU);
        rc = pthread_sigmask(SIG_BLOCK, &job, NULL); /* the child gets old_mask back */
    }
    if (rc != 0) {
        print_errno("pthread_sigmask", rc);
        return false;
    }
    act.sa_handler = SIG_IGN;
    if (sigaction(SIGPIPE, &act, &sig->old_pipe) != 0) {
        print_errno("sigaction", errno);
        return false;
    }
    act.sa_handler = SIG_DFL;
    if (sigaction(SIGCHLD, &act, &sig->old_chld) != 0) {
        print_errno("sigaction", errno);
        return false;
    }
    return true;
}

/* Returns the diag's message, or the error's description when the diag is empty. */
static const char *
diag_text(struct nonoproxy_diag *diag, enum nonoproxy_err rc)
{
    diag->message[sizeof(diag->message) - 1] = '\0';
    return diag->message[0] != '\0' ? diag->message : nonoproxy_strerror(rc);
}

/* Copies the scalar options that were given into cfg; the others keep the library's defaults. */
static void
apply_scalars(const struct cli_args *a, struct nonoproxy_config *cfg)
{
    if (a->bind_addr != NULL) {
        cfg->bind_addr = a->bind_addr;
    }
    if (a->port.set) {
        cfg->bind_port = (uint16_t)a->port.value; /* parser caps it at 65535 */
    }
    if (a->max_connections.set) {
        cfg->max_connections = (unsigned)a->max_connections.value; /* capped at UINT_MAX */
    }
    if (a->header_timeout_ms.set) {
        cfg->header_timeout_ms = (uint32_t)a->header_timeout_ms.value; /* <= 86400000 */
    }
    if (a->idle_timeout_ms.set) {
        cfg->idle_timeout_ms = (uint32_t)a->idle_timeout_ms.value;
    }
    if (a->connect_timeout_ms.set) {
        cfg->connect_timeout_ms = (uint32_t)a->connect_timeout_ms.value;
    }
    if (a->audit_capacity.set) {
        cfg->audit_capacity = (size_t)a->audit_capacity.value; /* loader caps it at 2^32-1 */
    }
    if (a->require_auth.set) {
        cfg->require_auth = a->require_auth.value;
    }
    if (a->strict.set) {
        cfg->strict_allowlist = a->strict.value;
    }
    if (a->ask_timeout_ms.set) {
        cfg->decide_timeout_ms = (uint32_t)a->ask_timeout_ms.value; /* <= 86400000 */
    }
}

/* Returns the library's inject mode for m; UNSET gives the library default dflt. */
static enum nonoproxy_inject_mode
inject_mode_of(enum cli_inject m, enum nonoproxy_inject_mode dflt)
{
    switch (m) {
    case CLI_INJECT_UNSET:
        return dflt;
    case CLI_INJECT_HEADER:
        return NONOPROXY_INJECT_HEADER;
    case CLI_INJECT_URL_PATH:
        return NONOPROXY_INJECT_URL_PATH;
    case CLI_INJECT_QUERY_PARAM:
        return NONOPROXY_INJECT_QUERY_PARAM;
    case CLI_INJECT_BASIC_AUTH:
        return NONOPROXY_INJECT_BASIC_AUTH;
    }
    return dflt;
}

/* Sets *dst to v when the key was given (NULL keeps the library's default). */
static void
set_if_given(const char **dst, const char *v)
{
    if (v != NULL) {
        *dst = v;
    }
}

/* Copies the policy keys of cr into r: endpoint rules (borrowed; add_route copies them), the
 * rate limit (parsers cap every number below UINT32_MAX) and the client certificate. */
static void
set_route_policy(const struct cli_route *cr, struct nonoproxy_route_config *r)
{
    r->endpoint_rules = cr->rules;
    r->n_endpoint_rules = cr->n_rules;
    if (cr->rpm.set) {
        r->rate_limit_per_minute = (uint32_t)cr->rpm.value;
    }
    if (cr->burst.set) {
        r->rate_limit_burst = (uint32_t)cr->burst.value;
    }
    if (cr->max_delay_ms.set) {
        r->rate_limit_max_delay_ms = (uint32_t)cr->max_delay_ms.value;
    }
    set_if_given(&r->tls_client_cert, cr->client_cert);
    set_if_given(&r->tls_client_key, cr->client_key);
}

/* One item of a list option, for messages: the first n_file items came from the --config
 * file, where the list's key is file_key; the others from option. */
struct list_item {
    size_t n_file;
    size_t index;
    const char *file_key;
    const char *option;
    const char *value;
};

/* Writes to dst where an item came from: "FILE: KEY[i] 'VALUE'" for an item of the --config
 * file, else "OPTION 'VALUE'" (value made printable; never a password). */
static void
item_origin(const struct cli_args *a, const struct list_item *it, char *dst, size_t cap)
{
    char shown_file[200];
    char shown[128];

    cli_printable(shown, sizeof(shown), it->value);
    if (it->index < it->n_file) {
        cli_printable(shown_file, sizeof(shown_file), a->config != NULL ? a->config : "");
        (void)snprintf(dst, cap, "%s: %s[%zu] '%s'", shown_file, it->file_key, it->index, shown);
    } else {
        (void)snprintf(dst, cap, "%s '%s'", it->option, shown);
    }
}

/* Adds the --route options (after the --config file's routes) to cfg (the library copies
 * them; it validates them at start); on failure prints why and returns false. */
static bool
add_routes(const struct cli_args *a, struct nonoproxy_config *cfg)
{
    struct nonoproxy_route_config r;
    const struct cli_route *cr = NULL;
    enum nonoproxy_err rc = NONOPROXY_OK;
    char shown[400];
    size_t i = 0;

    for (i = 0; i < a->routes.len; i++) {
        cr = &a->routes.items[i];
        nonoproxy_route_config_init(&r, cr->prefix, cr->upstream);
        r.inject_mode = inject_mode_of(cr->inject, r.inject_mode);
        set_if_given(&r.credential_key, cr->credential);
        set_if_given(&r.inject_header, cr->header);
        set_if_given(&r.credential_format, cr->format);
        set_if_given(&r.path_pattern, cr->path_pattern);
        set_if_given(&r.path_replacement, cr->path_replacement);
        set_if_given(&r.query_param_name, cr->query_param);
        set_if_given(&r.env_var, cr->env_var);
        set_if_given(&r.tls_ca, cr->tls_ca);
        set_route_policy(cr, &r);
        rc = nonoproxy_config_add_route(cfg, &r);
        if (rc != NONOPROXY_OK) {
            struct list_item it = {a->routes.n_file, i, "routes", "--route", cr->prefix};

            item_origin(a, &it, shown, sizeof(shown));
            (void)fprintf(stderr, PROG ": %s: %s\n", shown, nonoproxy_strerror(rc));
            return false;
        }
    }
    return true;
}

/* Returns the external proxy's address: --external-proxy, else a non-empty
 * NONOPROXY_EXTERNAL_PROXY of our environment, else the --config file's external_proxy.address,
 * else NULL. source (cap bytes) receives where it came from. */
static const char *
external_address(const struct cli_args *a, char *source, size_t cap)
{
    const char *addr = a->external_proxy;
    char shown[200];

    (void)snprintf(source, cap, "--external-proxy");
    if (addr == NULL) {
        (void)snprintf(source, cap, "%s", CLI_EXTERNAL_PROXY_ENV);
        addr = cli_env_value(environ, CLI_EXTERNAL_PROXY_ENV);
        if (addr != NULL && addr[0] == '\0') {
            addr = NULL; /* set but empty = not set, as for the *_PROXY variables */
        }
    }
    if (addr == NULL && a->file_external_proxy != NULL) {
        cli_printable(shown, sizeof(shown), a->config != NULL ? a->config : "");
        (void)snprintf(source, cap, "%s: external_proxy.address", shown);
        addr = a->file_external_proxy;
    }
    return addr;
}

/* Copies the external proxy's address and the bypass hosts (the --config file's, then
 * --bypass) into cfg (the library validates and copies them), then blanks the userinfo of
 * --external-proxy's value in argv, which /proc/<pid>/cmdline shows to every user, and of the
 * file's address in memory. On failure prints why (never the address: it may hold a password)
 * and returns false. */
static bool
add_external(const struct cli_args *a, struct nonoproxy_config *cfg)
{
    struct nonoproxy_diag diag;
    enum nonoproxy_err rc = NONOPROXY_OK;
    char source[256];
    const char *addr = external_address(a, source, sizeof(source));
    char shown[400];
    size_t i = 0;

    memset(&diag, 0, sizeof(diag));
    if (addr != NULL) {
        rc = nonoproxy_config_set_external_proxy(cfg, addr, &diag);
    }
    if (a->external_proxy != NULL) {
        (void)cli_blank_userinfo(a->external_proxy); /* copied (or refused): hide it now */
    }
    if (a->file_external_proxy != NULL) {
        (void)cli_blank_userinfo(a->file_external_proxy);
    }
    if (rc != NONOPROXY_OK) {
        (void)fprintf(stderr, PROG ": %s: %s\n", source, diag_text(&diag, rc));
        if (a->external_proxy != NULL) {
            cli_args_usage_hint(stderr);
        }
        return false;
    }
    for (i = 0; i < a->bypass.len; i++) {
        rc = nonoproxy_config_add_bypass_host(cfg, a->bypass.items[i], &diag);
        if (rc != NONOPROXY_OK) {
            struct list_item it = {a->bypass.n_file, i, "external_proxy.bypass_hosts", "--bypass",
                                   a->bypass.items[i]};

            item_origin(a, &it, shown, sizeof(shown));
            (void)fprintf(stderr, PROG ": %s: %s\n", shown, diag_text(&diag, rc));
            if (i >= a->bypass.n_file) {
                cli_args_usage_hint(stderr);
            }
            return false;
        }
    }
    return true;
}

/* The function that adds one entry of a host list to a config. */
typedef enum nonoproxy_err host_add_fn(struct nonoproxy_config *cfg, const char *host,
                                       struct nonoproxy_diag *diag);

/* A host list and where its items come from, for messages. */
struct host_list {
    const struct cli_list *list;
    const char *file_key;
    const char *option;
    host_add_fn *add;
};

/* Adds every item of hl to cfg (the library validates and copies them); on failure prints the
 * item's origin and the reason and returns false. */
static bool
add_hosts(const struct cli_args *a, const struct host_list *hl, struct nonoproxy_config *cfg)
{
    struct nonoproxy_diag diag;
    enum nonoproxy_err rc = NONOPROXY_OK;
    char shown[400];
    size_t i = 0;

    memset(&diag, 0, sizeof(diag));
    for (i = 0; i < hl->list->len; i++) {
        rc = hl->add(cfg, hl->list->items[i], &diag);
        if (rc != NONOPROXY_OK) {
            struct list_item it = {hl->list->n_file, i, hl->file_key, hl->option,
                                   hl->list->items[i]};

            item_origin(a, &it, shown, sizeof(shown));
            (void)fprintf(stderr, PROG ": %s: %s\n", shown, diag_text(&diag, rc));
            if (i >= hl->list->n_file) {
                cli_args_usage_hint(stderr);
            }
            return false;
        }
    }
    return true;
}

/* Builds the configuration from a and starts the proxy into *out, with ask (NULL without
 * --ask) as the decide callback; on failure prints the one-line reason and returns false. */
static bool
start_proxy(const struct cli_args *a, struct cli_sink *sink, struct cli_ask *ask,
            struct nonoproxy_proxy **out)
{
    const struct host_list allow = {&a->allow, "allowed_hosts", "--allow",
                                    nonoproxy_config_allow_host};
    const struct host_list deny = {&a->deny, "denied_hosts", "--deny", nonoproxy_config_deny_host};
    struct nonoproxy_config cfg;
    struct nonoproxy_diag diag;
    enum nonoproxy_err rc = NONOPROXY_ERR_INVALID_ARG;
    bool ok = false;

    nonoproxy_config_init(&cfg);
    memset(&diag, 0, sizeof(diag));
    if (!add_external(a, &cfg)) {
        goto out; /* first: the password leaves argv as early as possible */
    }
    if (!add_hosts(a, &deny, &cfg) || !add_hosts(a, &allow, &cfg) || !add_routes(a, &cfg)) {
        goto out;
    }
    if (a->ca_file != NULL) {
        cfg.ca_file = a->ca_file;
    }
    apply_scalars(a, &cfg);
    if (ask != NULL) {
        nonoproxy_config_set_decide(&cfg, cli_ask_decide, ask);
    }
    cli_sink_install(sink, a, &cfg);
    rc = nonoproxy_start(&cfg, out, &diag);
    if (rc != NONOPROXY_OK) {
        (void)fprintf(stderr, PROG ": %s\n", diag_text(&diag, rc));
        goto out;
    }
    ok = true;
out:
    nonoproxy_config_free(&cfg);
    return ok;
}

/* Prints "nonoproxy-run: listening on ADDR:PORT" (never an environment value). */
static void
print_listening(const struct cli_args *a, const struct nonoproxy_proxy *p)
{
    const char *addr = a->bind_addr != NULL ? a->bind_addr : "127.0.0.1";
    bool v6 = strchr(addr, ':') != NULL;
    char shown[128];

    cli_printable(shown, sizeof(shown), addr);
    (void)fprintf(stderr, PROG ": listening on %s%s%s:%u\n", v6 ? "[" : "", shown, v6 ? "]" : "",
                  (unsigned)nonoproxy_port(p));
}

/* Prints "nonoproxy-run: external proxy HOST:PORT (from SOURCE), N bypass hosts" when one is
 * configured: HOST:PORT only, never the userinfo. */
static void
print_external(const struct cli_args *a)
{
    char source[256];
    const char *addr = external_address(a, source, sizeof(source));
    char shown[256];

    if (addr == NULL) {
        return;
    }
    cli_printable(shown, sizeof(shown), cli_proxy_hostport(addr));
    (void)fprintf(stderr, PROG ": external proxy %s (from %s), %zu bypass host%s\n", shown, source,
                  a->bypass.len, a->bypass.len == 1 ? "" : "s");
}

/* Returns true for the diagnostics of a route whose credential could not be loaded. */
static bool
credential_missing(const struct nonoproxy_diagnostic *d)
{
    return d->code != NULL && (strcmp(d->code, "credential_not_found") == 0 ||
                               strcmp(d->code, "credential_unavailable") == 0);
}

/* Prints the start-time diagnostics: a missing credential is an error unless
 * --allow-missing-credentials (one line per route; returns false), anything else a warning
 * (not with -q). The messages name routes and references, never a secret. */
static bool
report_diagnostics(const struct cli_args *a, const struct nonoproxy_proxy *p)
{
    const struct nonoproxy_diagnostic *list = NULL;
    size_t n = 0;
    size_t i = 0;
    char msg[512];
    bool ok = true;

    if (nonoproxy_diagnostics(p, &list, &n) != NONOPROXY_OK) {
        n = 0;
    }
    for (i = 0; i < n; i++) {
        cli_printable(msg, sizeof(msg), list[i].message != NULL ? list[i].message : "");
        if (credential_missing(&list[i]) && !a->allow_missing_credentials) {
            (void)fprintf(stderr,
                          PROG ": %s; use --allow-missing-credentials to start anyway (the "
                               "route then answers 503)\n",
                          msg);
            ok = false;
        } else if (!a->quiet) {
            (void)fprintf(stderr, PROG ": warning: %s; the route answers 503\n", msg);
        }
    }
    return ok;
}

/* Builds the child's environment (SPEC §11): environ minus NONOPROXY_EXTERNAL_PROXY, minus the
 * variables named by env:// credentials and minus those the proxy sets, plus nonoproxy_env_vars()
 * and nonoproxy_credential_env_vars(). Prints why on failure. */
static bool
proxy_env(const struct cli_args *a, const struct nonoproxy_proxy *p, struct cli_env *env)
{
    struct cli_env_source src[2];
    struct cli_env_plan plan;
    const char **removals = NULL;
    enum nonoproxy_err rc = NONOPROXY_OK;
    bool ok = false;

    memset(src, 0, sizeof(src));
    memset(&plan, 0, sizeof(plan));
    rc = nonoproxy_env_vars(p, &src[0].vars, &src[0].n);
    if (rc == NONOPROXY_OK) {
        rc = nonoproxy_credential_env_vars(p, &src[1].vars, &src[1].n);
    }
    if (rc != NONOPROXY_OK) {
        (void)fprintf(stderr, PROG ": proxy environment: %s\n", nonoproxy_strerror(rc));
        goto out;
    }
    removals = calloc(a->routes.len + CLI_ENV_FIXED_REMOVALS, sizeof(*removals));
    if (removals == NULL) {
        (void)fprintf(stderr, PROG ": out of memory\n");
        goto out;
    }
    plan.base = environ;
    plan.remove = removals;
    plan.n_remove =
        cli_env_collect_removals(&a->routes, removals, a->routes.len + CLI_ENV_FIXED_REMOVALS);
    plan.sources = src;
    plan.n_sources = sizeof(src) / sizeof(src[0]);
    if (!cli_env_build(&plan, env)) {
        (void)fprintf(stderr, PROG ": out of memory\n");
        goto out;
    }
    ok = true;
out:
    free(removals);
    return ok;
}

/* Wipe, in place, the values of the variables the child must not see (env:// credentials,
 * NONOPROXY_EXTERNAL_PROXY) in our own environment, once the proxy has loaded them. The
 * strings live in the block /proc/<pid>/environ shows, which a child running as the same
 * user could otherwise read; unsetenv() would only drop the pointers. */
static void
scrub_own_environ(const struct cli_args *a)
{
    const char **names = calloc(a->routes.len + CLI_ENV_FIXED_REMOVALS, sizeof(*names));
    size_t n;
    size_t i;
    char **e;

    if (names == NULL) {
        return;
    }
    n = cli_env_collect_removals(&a->routes, names, a->routes.len + CLI_ENV_FIXED_REMOVALS);
    for (e = environ; e != NULL && *e != NULL; e++) {
        for (i = 0; i < n; i++) {
            size_t len = strlen(names[i]);
            if (strncmp(*e, names[i], len) == 0 && (*e)[len] == '=') {
                explicit_bzero(*e + len + 1, strlen(*e + len + 1));
            }
        }
    }
    free(names);
}

/* The step of the child that failed, as reported through the error pipe. */
enum child_step {
    CHILD_STEP_EXEC = 1,    /* execvpe() failed */
    CHILD_STEP_SANDBOX = 2, /* cli_sandbox_apply() failed: the command was not run */
};

/* What the child writes to the error pipe before it exits (one write, below PIPE_BUF). */
struct child_error {
    int step; /* enum child_step */
    int err;  /* errno value */
};

/* How the command is started. */
struct child_plan {
    char **command;
    char **envp;
    const struct cli_signals *sig;
    bool confine;        /* apply the Landlock sandbox before exec */
    uint16_t proxy_port; /* the one TCP port a confined command may connect to */
};

/* Sends ce through err_fd and exits with status: the parent reads ce, or (if the write
 * failed) sees EOF and then reports this exit status. */
static _Noreturn void
child_fail(int err_fd, const struct child_error *ce, int status)
{
    ssize_t n = write(err_fd, ce, sizeof(*ce));

    (void)n;
    _exit(status);
}

/* Runs in the forked child: restores the signal state nonoproxy-run was started with, confines
 * the process when the plan says so (never execs unconfined then), and execs the command; on
 * failure sends the step and errno through err_fd. Async-signal-safe calls only, since the
 * parent has threads. Never returns. */
static void
child_exec(const struct child_plan *plan, int err_fd)
{
    struct child_error ce = {CHILD_STEP_SANDBOX, 0};
    int rc = 0;

    (void)sigaction(SIGPIPE, &plan->sig->old_pipe, NULL);
    (void)sigaction(SIGCHLD, &plan->sig->old_chld, NULL);
    (void)pthread_sigmask(SIG_SETMASK, &plan->sig->old_mask, NULL);
    if (plan->confine) {
        rc = cli_sandbox_apply(plan->proxy_port);
        if (rc != 0) {
            ce.err = rc < 0 ? -rc : EINVAL;
            child_fail(err_fd, &ce, CLI_EXIT_FAILURE);
        }
    }
    /* The child has a single thread; execvpe allocates nothing (glibc searches PATH on the
     * stack), so it is safe between fork and exec. */
    (void)execvpe(plan->command[0], plan->command, plan->envp);
    ce.step = CHILD_STEP_EXEC;
    ce.err = errno;
    child_fail(err_fd, &ce, CLI_EXIT_NOT_FOUND);
}

/* Prints why the child could not run the command and returns the matching exit status: 125
 * when it could not be confined, 127 when the command is not found, else 126. */
static int
report_child_error(const char *command, const struct child_error *ce)
{
    char shown[256];
    char ebuf[128];

    cli_printable(shown, sizeof(shown), command);
    if (ce->step == CHILD_STEP_SANDBOX) {
        (void)fprintf(stderr,
                      PROG ": --sandbox: Landlock confinement failed (%s); %s not started\n",
                      strerror_r(ce->err, ebuf, sizeof(ebuf)), shown);
        return CLI_EXIT_FAILURE;
    }
    if (ce->err == ENOENT) {
        (void)fprintf(stderr, PROG ": %s: not found\n", shown);
        return CLI_EXIT_NOT_FOUND;
    }
    print_errno(shown, ce->err);
    return CLI_EXIT_CANNOT_INVOKE;
}

/* Forks and execs the command. True once exec succeeded, with *pid set; false with *status
 * set (message printed, child reaped) when it could not be started. The result comes back
 * through an O_CLOEXEC pipe: EOF means exec succeeded. */
static bool
spawn_child(const struct child_plan *plan, pid_t *pid, int *status)
{
    struct child_error ce;
    int fds[2] = {-1, -1};
    int st = 0;
    ssize_t n = 0;
    pid_t child = -1;
    bool ok = false;

    memset(&ce, 0, sizeof(ce));
    *status = CLI_EXIT_FAILURE;
    if (pipe2(fds, O_CLOEXEC) != 0) {
        print_errno("pipe2", errno);
        goto out;
    }
    child = fork();
    if (child < 0) {
        print_errno("fork", errno);
        goto out;
    }
    if (child == 0) {
        child_exec(plan, fds[1]);
    }
    (void)close(fds[1]);
    fds[1] = -1;
    do {
        n = read(fds[0], &ce, sizeof(ce));
    } while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof(ce)) {
        *pid = child; /* EOF: exec succeeded (any other result: wait for its status) */
        ok = true;
        goto out;
    }
    while (waitpid(child, &st, 0) < 0 && errno == EINTR) {
    }
    *status = report_child_error(plan->command[0], &ce);
out:
    if (fds[0] >= 0) {
        (void)close(fds[0]);
    }
    if (fds[1] >= 0) {
        (void)close(fds[1]);
    }
    return ok;
}

/* Decides, before anything starts, whether the command runs confined (--sandbox, SPEC §11):
 * off never; on and auto when cli_sandbox_probe() says Landlock ABI >= 4 is there. Otherwise
 * on is an error (message printed, false) and auto prints one notice (unless -q) and runs the
 * command unconfined. */
static bool
sandbox_decide(const struct cli_args *a, bool *confine)
{
    char why[256];
    char shown[256];
    int rc = 0;

    *confine = false;
    if (a->sandbox == CLI_SANDBOX_OFF || a->serve) {
        return true; /* --serve runs no COMMAND (the parser refuses --sandbox on with it) */
    }
    why[0] = '\0';
    rc = cli_sandbox_probe(why, sizeof(why));
    if (rc == 1) {
        *confine = true;
        return true;
    }
    cli_printable(shown, sizeof(shown), why[0] != '\0' ? why : "the probe failed");
    if (a->sandbox == CLI_SANDBOX_ON) {
        (void)fprintf(stderr,
                      PROG ": --sandbox on: Landlock network rules unavailable (%s); COMMAND "
                           "not started\n",
                      shown);
        return false;
    }
    if (!a->quiet) {
        (void)fprintf(stderr,
                      PROG ": notice: Landlock network rules unavailable (%s); the child is not "
                           "confined\n",
                      shown);
    }
    return true;
}

/* Forwards signal info->si_signo to the child, except a ^C from the terminal: the kernel
 * (si_code SI_KERNEL) sends that SIGINT to the whole foreground process group, child included,
 * and forwarding it would deliver it twice. A terminal hangup SIGHUP may reach only the
 * session leader, so it is always forwarded. */
static void
forward_signal(pid_t child, const siginfo_t *info)
{
    if (info->si_signo == SIGINT && info->si_code == SI_KERNEL && getpgid(child) == getpgrp()) {
        return;
    }
    (void)kill(child, info->si_signo);
}

/* Converts a waitpid() status into nonoproxy-run's exit status (128+N for signal N). */
static int
exit_status_of(int st)
{
    if (WIFEXITED(st)) {
        return WEXITSTATUS(st);
    }
    if (WIFSIGNALED(st)) {
        return 128 + WTERMSIG(st);
    }
    return CLI_EXIT_FAILURE;
}

/* Waits for the child, forwarding the signals of sig->wait_set to it, and returns its exit
 * status. waitpid(WNOHANG) runs before each wait, so an earlier SIGCHLD is never missed. */
static int
wait_child(pid_t child, const struct cli_signals *sig)
{
    siginfo_t info;
    pid_t r = 0;
    int st = 0;

    for (;;) {
        r = waitpid(child, &st, WNOHANG);
        if (r == child) {
            return exit_status_of(st);
        }
        if (r < 0 && errno != EINTR) {
            print_errno("waitpid", errno);
            return CLI_EXIT_FAILURE;
        }
        memset(&info, 0, sizeof(info));
        if (sigwaitinfo(&sig->wait_set, &info) < 0) {
            continue; /* EINTR (e.g. after SIGCONT) */
        }
        if (info.si_signo != SIGCHLD) {
            forward_signal(child, &info);
        }
    }
}

/* Prints what -v shows before COMMAND starts: the address, the external proxy, the sandbox. */
static void
print_verbose(const struct cli_args *a, const struct nonoproxy_proxy *p, bool confine)
{
    print_listening(a, p);
    print_external(a);
    if (confine) {
        (void)fprintf(stderr,
                      PROG ": sandbox: COMMAND may connect only to TCP port %u and bind no "
                           "TCP port\n",
                      (unsigned)nonoproxy_port(p));
    }
}

/* Runs COMMAND under the proxy p: its environment, the fork and exec, the wait with signal
 * forwarding. True once it ran, with *status its exit status; false with *status set (and the
 * message printed) when it could not be started. */
static bool
run_command(const struct cli_args *a, const struct nonoproxy_proxy *p,
            const struct cli_signals *sig, bool confine, int *status)
{
    struct child_plan plan = {NULL, NULL, NULL, confine, 0};
    struct cli_env env = {NULL, 0, 0};
    pid_t child = -1;
    bool spawned = false;

    *status = CLI_EXIT_FAILURE;
    if (!proxy_env(a, p, &env)) {
        return false;
    }
    scrub_own_environ(a);
    plan.command = a->command;
    plan.envp = env.envp;
    plan.sig = sig;
    plan.proxy_port = nonoproxy_port(p);
    spawned = spawn_child(&plan, &child, status);
    cli_env_free(&env); /* the token lives on only in the child's environment */
    if (spawned) {
        *status = wait_child(child, sig);
    }
    return spawned;
}

int
cli_run(const struct cli_args *a)
{
    struct cli_signals sig;
    struct cli_sink *sink = NULL;
    struct cli_ask *ask = NULL;
    struct nonoproxy_proxy *proxy = NULL;
    char err[CLI_ERR_LEN];
    int status = CLI_EXIT_FAILURE;
    bool confine = false;
    bool served = false;

    if (!sandbox_decide(a, &confine)) {
        goto out; /* --sandbox on without Landlock: nothing started, no file created */
    }
    if (a->ask) {
        ask = cli_ask_open(err, sizeof(err)); /* first: without a terminal nothing starts */
        if (ask == NULL) {
            (void)fprintf(stderr, PROG ": %s\n", err);
            goto out;
        }
    }
    sink = cli_sink_create(a, err, sizeof(err));
    if (sink == NULL) {
        (void)fprintf(stderr, PROG ": %s\n", err);
        goto out;
    }
    if (!block_signals(&sig, a->ask) || !start_proxy(a, sink, ask, &proxy)) {
        goto out;
    }
    if (!report_diagnostics(a, proxy)) {
        goto out; /* nonoproxy_free() below shuts the proxy down */
    }
    if (a->verbose > 0) {
        print_verbose(a, proxy, confine);
    }
    if (a->serve) {
        status = cli_serve(a, proxy, &sig.wait_set);
        served = status == 0;
    } else {
        served = run_command(a, proxy, &sig, confine, &status);
    }
    cli_ask_cancel(ask); /* no connection thread waits for an answer any more */
    nonoproxy_shutdown(proxy);
    if (served && !a->quiet) {
        cli_sink_print_summary(sink, stderr);
    }
out:
    cli_ask_cancel(ask);
    nonoproxy_free(proxy); /* shuts down first if needed; the port is closed before we exit */
    cli_ask_close(ask);
    cli_sink_destroy(sink);
    return status;
}
