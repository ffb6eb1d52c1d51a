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

/* The child's environment: the caller's variables, then the proxy's (owned; hold the token). */
struct cli_env {
    char **envp;       /* NULL-terminated; NULL until built */
    size_t owned_from; /* envp[owned_from .. len) were allocated here */
    size_t len;
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
 * sure SIGCHLD is not ignored (an ignored SIGCHLD would reap the command behind our back). */
static bool
block_signals(struct cli_signals *sig)
{
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
}

/* Builds the configuration from a and starts the proxy into *out; on failure prints the
 * one-line reason and returns false. */
static bool
start_proxy(const struct cli_args *a, struct cli_sink *sink, struct nonoproxy_proxy **out)
{
    struct nonoproxy_config cfg;
    struct nonoproxy_diag diag;
    enum nonoproxy_err rc = NONOPROXY_ERR_INVALID_ARG;
    char shown[256];
    bool ok = false;
    size_t i = 0;

    nonoproxy_config_init(&cfg);
    memset(&diag, 0, sizeof(diag));
    for (i = 0; i < a->allow.len; i++) {
        rc = nonoproxy_config_allow_host(&cfg, a->allow.items[i], &diag);
        if (rc != NONOPROXY_OK) {
            cli_printable(shown, sizeof(shown), a->allow.items[i]);
            (void)fprintf(stderr, PROG ": --allow '%s': %s\n", shown, diag_text(&diag, rc));
            cli_args_usage_hint(stderr);
            goto out;
        }
    }
    apply_scalars(a, &cfg);
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

/* Returns true when the environ entry e ("NAME=value") sets one of the n variables. */
static bool
env_overridden(const char *e, const struct nonoproxy_env_var *vars, size_t n)
{
    const char *eq = strchr(e, '=');
    size_t name_len = eq != NULL ? (size_t)(eq - e) : strlen(e);
    size_t i = 0;

    for (i = 0; i < n; i++) {
        if (strlen(vars[i].name) == name_len && memcmp(vars[i].name, e, name_len) == 0) {
            return true;
        }
    }
    return false;
}

/* Wipes the variables added here (they hold the session token) and frees env. Idempotent. */
static void
free_env(struct cli_env *env)
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

/* Builds the child's environment into env: environ without the n proxy variables, then those
 * as "NAME=value". False on allocation failure (env is then safe to free_env()). */
static bool
build_env(const struct nonoproxy_env_var *vars, size_t n, struct cli_env *env)
{
    size_t n_environ = 0;
    size_t i = 0;

    while (environ != NULL && environ[n_environ] != NULL) {
        n_environ++;
    }
    if (n_environ > SIZE_MAX / sizeof(char *) - n - 1) {
        return false;
    }
    env->envp = calloc(n_environ + n + 1, sizeof(char *));
    if (env->envp == NULL) {
        return false;
    }
    for (i = 0; i < n_environ; i++) {
        if (!env_overridden(environ[i], vars, n)) {
            env->envp[env->len++] = environ[i];
        }
    }
    env->owned_from = env->len;
    for (i = 0; i < n; i++) {
        size_t nl = strlen(vars[i].name);
        size_t vl = strlen(vars[i].value);
        char *s = malloc(nl + vl + 2);

        if (s == NULL) {
            return false;
        }
        memcpy(s, vars[i].name, nl);
        s[nl] = '=';
        memcpy(s + nl + 1, vars[i].value, vl + 1);
        env->envp[env->len++] = s;
    }
    return true;
}

/* Fetches the proxy's variables and builds the child's environment; prints why on failure. */
static bool
proxy_env(const struct nonoproxy_proxy *p, struct cli_env *env)
{
    const struct nonoproxy_env_var *vars = NULL;
    size_t n = 0;
    enum nonoproxy_err rc = nonoproxy_env_vars(p, &vars, &n);

    if (rc != NONOPROXY_OK) {
        (void)fprintf(stderr, PROG ": proxy environment: %s\n", nonoproxy_strerror(rc));
        return false;
    }
    if (!build_env(vars, n, env)) {
        (void)fprintf(stderr, PROG ": out of memory\n");
        return false;
    }
    return true;
}

/* Runs in the forked child: restores the signal state nonoproxy-run was started with and
 * execs the command; on failure sends errno through err_fd. Async-signal-safe calls only,
 * since the parent has threads. Never returns. */
static void
child_exec(char **command, char **envp, const struct cli_signals *sig, int err_fd)
{
    int e = 0;

    (void)sigaction(SIGPIPE, &sig->old_pipe, NULL);
    (void)sigaction(SIGCHLD, &sig->old_chld, NULL);
    (void)pthread_sigmask(SIG_SETMASK, &sig->old_mask, NULL);
    /* The child has a single thread; execvpe allocates nothing (glibc searches PATH on the
     * stack), so it is safe between fork and exec. */
    (void)execvpe(command[0], command, envp);
    e = errno;
    if (write(err_fd, &e, sizeof(e)) < 0) {
        e = 0; /* the parent then sees EOF and reports our exit status */
    }
    _exit(CLI_EXIT_NOT_FOUND);
}

/* Prints why exec failed and returns the matching exit status (127 not found, else 126). */
static int
report_exec_error(const char *command, int e)
{
    char shown[256];

    cli_printable(shown, sizeof(shown), command);
    if (e == ENOENT) {
        (void)fprintf(stderr, PROG ": %s: not found\n", shown);
        return CLI_EXIT_NOT_FOUND;
    }
    print_errno(shown, e);
    return CLI_EXIT_CANNOT_INVOKE;
}

/* Forks and execs the command. True once exec succeeded, with *pid set; false with *status
 * set (message printed, child reaped) when it could not be started. The exec result comes
 * back through an O_CLOEXEC pipe: EOF means exec succeeded. */
static bool
spawn_child(char **command, char **envp, const struct cli_signals *sig, pid_t *pid, int *status)
{
    int fds[2] = {-1, -1};
    int e = 0;
    int st = 0;
    ssize_t n = 0;
    pid_t child = -1;
    bool ok = false;

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
        child_exec(command, envp, sig, fds[1]);
    }
    (void)close(fds[1]);
    fds[1] = -1;
    do {
        n = read(fds[0], &e, sizeof(e));
    } while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof(e)) {
        *pid = child; /* EOF: exec succeeded (any other result: wait for its status) */
        ok = true;
        goto out;
    }
    while (waitpid(child, &st, 0) < 0 && errno == EINTR) {
    }
    *status = report_exec_error(command[0], e);
out:
    if (fds[0] >= 0) {
        (void)close(fds[0]);
    }
    if (fds[1] >= 0) {
        (void)close(fds[1]);
    }
    return ok;
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

int
cli_run(const struct cli_args *a)
{
    struct cli_signals sig;
    struct cli_env env = {NULL, 0, 0};
    struct cli_sink *sink = NULL;
    struct nonoproxy_proxy *proxy = NULL;
    char err[CLI_ERR_LEN];
    pid_t child = -1;
    int status = CLI_EXIT_FAILURE;
    bool spawned = false;

    sink = cli_sink_create(a, err, sizeof(err));
    if (sink == NULL) {
        (void)fprintf(stderr, PROG ": %s\n", err);
        goto out;
    }
    if (!block_signals(&sig) || !start_proxy(a, sink, &proxy)) {
        goto out;
    }
    if (a->verbose > 0) {
        print_listening(a, proxy);
    }
    if (!proxy_env(proxy, &env)) {
        goto out;
    }
    spawned = spawn_child(a->command, env.envp, &sig, &child, &status);
    free_env(&env); /* the token lives on only in the child's environment */
    if (!spawned) {
        goto out;
    }
    status = wait_child(child, &sig);
    nonoproxy_shutdown(proxy);
    if (!a->quiet) {
        cli_sink_print_summary(sink, stderr);
    }
out:
    free_env(&env);
    nonoproxy_free(proxy); /* shuts down first if needed; the port is closed before we exit */
    cli_sink_destroy(sink);
    return status;
}
