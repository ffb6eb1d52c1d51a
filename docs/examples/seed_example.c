/*
 * seed_example.c: the seed document's Python example, written against the C API line by line.
 *
 *   config = ProxyConfig(
 *       allowed_hosts=["api.openai.com", "*.anthropic.com"],
 *       routes=[RouteConfig(prefix="/openai", upstream="https://api.openai.com",
 *                           credential_key="openai-key")],
 *   )
 *   proxy = start_proxy(config)
 *   env = list(proxy.env_vars().items()) + list(proxy.credential_env_vars().items())
 *   result = sandboxed_exec(caps, ["python", "agent.py"], env=env)
 *   for event in proxy.drain_audit_events():
 *       print(f"[{event['decision']}] {event['mode']} -> {event['target']}")
 *   proxy.shutdown()
 *
 * Usage: seed_example [UPSTREAM [COMMAND [ARG...]]]
 *   UPSTREAM  the route's upstream; default https://api.openai.com, as in the seed
 *   COMMAND   the child; default `python agent.py`, as in the seed
 * The child gets OPENAI_BASE_URL (the route on the proxy) and OPENAI_KEY (the phantom: the
 * session token, never the real key), besides HTTP_PROXY and the other proxy variables. Exit
 * status: the child's (128+N when killed by signal N); 125 for this program's own errors, 126
 * or 127 when the child cannot be started, as nonoproxy-run does.
 *
 * Where the C differs from the seed, a comment starting with "Differs:" says how and why.
 *
 * Build: cc -std=c11 seed_example.c $(pkg-config --cflags --libs --static nonoproxy), or see
 * CMakeLists.txt here. Run against a local upstream (plain http:// is allowed to loopback only):
 *   OPENAI_API_KEY=sk-... ./seed_example http://127.0.0.1:8080 \
 *       sh -c 'curl -s "$OPENAI_BASE_URL/v1/models" -H "Authorization: Bearer $OPENAI_KEY"'
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <nonoproxy/nonoproxy.h>

/* The credential this example reads when the OS keyring does not hold "openai-key". */
#define REAL_KEY_VAR   "OPENAI_API_KEY"
#define EVENT_BATCH    64
#define EXIT_OWN_ERROR 125

extern char **environ;

/*
 * Answer the library's question for the secret of credential_key (asked once, in
 * nonoproxy_start(), on the thread that calls it). userdata is the value of REAL_KEY_VAR, read
 * before the proxy started, or NULL.
 * Differs: the seed's "openai-key" is an entry of the OS keyring. So that this example also runs
 * where there is none (CI), the key comes from this program's REAL_KEY_VAR when it is set; when
 * it is not, the callback passes and the library looks "openai-key" up in the keyring (service
 * "nono"), exactly as the seed does.
 */
static enum nonoproxy_credential_result
resolve_credential(void *userdata, const char *credential_key, char *buf, size_t cap, size_t *len)
{
    const char *secret = userdata;
    size_t n;

    if (strcmp(credential_key, "openai-key") != 0 || secret == NULL || secret[0] == '\0') {
        return NONOPROXY_CREDENTIAL_PASS;
    }
    n = strlen(secret);
    if (n > cap) {
        return NONOPROXY_CREDENTIAL_NOT_FOUND;
    }
    memcpy(buf, secret, n); /* a length, not a string: the library reads *len bytes */
    *len = n;
    return NONOPROXY_CREDENTIAL_FOUND;
}

/* Whether the entry "NAME=value" of environ is named name (len bytes) or is set in vars[0..n). */
static bool
env_entry_named(const char *entry, const struct nonoproxy_env_var *vars, size_t n, const char *name)
{
    size_t len = strcspn(entry, "=");

    if (strlen(name) == len && memcmp(entry, name, len) == 0) {
        return true;
    }
    for (size_t i = 0; i < n; i++) {
        if (strlen(vars[i].name) == len && memcmp(entry, vars[i].name, len) == 0) {
            return true;
        }
    }
    return false;
}

/* Append "name=value" (a new allocation) to envp, which has room for it. Returns 0 or -1. */
static int
env_append(char **envp, size_t *used, const char *name, const char *value)
{
    size_t nlen = strlen(name);
    size_t vlen = strlen(value);
    char *entry = malloc(nlen + vlen + 2);

    if (entry == NULL) {
        return -1;
    }
    memcpy(entry, name, nlen);
    entry[nlen] = '=';
    memcpy(entry + nlen + 1, value, vlen + 1);
    envp[(*used)++] = entry;
    envp[*used] = NULL;
    return 0;
}

/* Free a NULL-terminated environment made by child_env(). NULL-safe. */
static void
env_free(char **envp)
{
    for (size_t i = 0; envp != NULL && envp[i] != NULL; i++) {
        free(envp[i]);
    }
    free(envp);
}

/*
 * Build the child's environment: env_vars() then credential_env_vars() (the seed's `env`), added
 * to this program's environment, whose entries of the same names they replace.
 * Differs: REAL_KEY_VAR, the real key's source, is left out, so the child never sees the key
 * (nonoproxy-run does the same for env:// credentials). Returns the array, or NULL.
 */
static char **
child_env(const struct nonoproxy_proxy *p)
{
    const struct nonoproxy_env_var *proxy_vars = NULL;
    const struct nonoproxy_env_var *cred_vars = NULL;
    size_t n_proxy = 0;
    size_t n_cred = 0;
    size_t n_env = 0;
    size_t used = 0;
    char **envp = NULL;

    if (nonoproxy_env_vars(p, &proxy_vars, &n_proxy) != NONOPROXY_OK ||
        nonoproxy_credential_env_vars(p, &cred_vars, &n_cred) != NONOPROXY_OK) {
        return NULL;
    }
    while (environ[n_env] != NULL) {
        n_env++;
    }
    envp = calloc(n_env + n_proxy + n_cred + 1, sizeof(*envp));
    if (envp == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < n_env; i++) {
        const char *e = environ[i];
        size_t len = strcspn(e, "=");

        if (env_entry_named(e, proxy_vars, n_proxy, REAL_KEY_VAR) ||
            env_entry_named(e, cred_vars, n_cred, REAL_KEY_VAR) || e[len] != '=') {
            continue;
        }
        envp[used] = strdup(e);
        if (envp[used] == NULL) {
            goto fail;
        }
        used++;
    }
    for (size_t i = 0; i < n_proxy; i++) {
        if (env_append(envp, &used, proxy_vars[i].name, proxy_vars[i].value) != 0) {
            goto fail;
        }
    }
    for (size_t i = 0; i < n_cred; i++) {
        if (env_append(envp, &used, cred_vars[i].name, cred_vars[i].value) != 0) {
            goto fail;
        }
    }
    return envp;
fail:
    env_free(envp);
    return NULL;
}

/*
 * Run argv with envp and wait for it. Returns its exit status, 128+N when signal N killed it,
 * 127 (not found) or 126 (cannot run) when it did not start, EXIT_OWN_ERROR when waiting failed.
 * Differs: the seed's sandboxed_exec(caps, ...) also confines the child with nono's sandbox
 * capabilities; sandboxing is not part of this library (nonoproxy-run --sandbox adds Landlock).
 */
static int
run_child(char *const *argv, char *const *envp)
{
    pid_t pid;
    int wstatus = 0;
    int err = posix_spawnp(&pid, argv[0], NULL, NULL, argv, envp);

    if (err != 0) {
        (void)fputs("seed_example: ", stderr);
        errno = err;
        perror(argv[0]);
        return err == ENOENT ? 127 : 126;
    }
    while (waitpid(pid, &wstatus, 0) < 0) {
        if (errno != EINTR) {
            return EXIT_OWN_ERROR;
        }
    }
    if (WIFSIGNALED(wstatus)) {
        return 128 + WTERMSIG(wstatus);
    }
    return WEXITSTATUS(wstatus);
}

/* Print the start-time findings (e.g. a credential not found) as the library recorded them. */
static void
print_diagnostics(const struct nonoproxy_proxy *p)
{
    const struct nonoproxy_diagnostic *list = NULL;
    size_t n = 0;

    if (nonoproxy_diagnostics(p, &list, &n) != NONOPROXY_OK) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        (void)fprintf(stderr, "seed_example: %s: %s\n", list[i].code, list[i].message);
    }
}

/*
 * for event in proxy.drain_audit_events(): print(f"[{decision}] {mode} -> {target}")
 * Differs: the C events also report when a tunnel or connection closed (kind CLOSE, with byte
 * counts); the seed has no such events, so only decisions are printed. Returns 0, or -1 when
 * memory is short.
 */
static int
print_audit_events(struct nonoproxy_proxy *p)
{
    struct nonoproxy_audit_event *events = calloc(EVENT_BATCH, sizeof(*events));
    size_t got;

    if (events == NULL) {
        return -1;
    }
    do {
        got = nonoproxy_drain_audit_events(p, events, EVENT_BATCH, NULL);
        for (size_t i = 0; i < got; i++) {
            const struct nonoproxy_audit_event *event = &events[i];

            if (event->kind != NONOPROXY_EVENT_DECISION) {
                continue;
            }
            (void)printf("[%s] %s -> %s\n",
                         event->decision == NONOPROXY_DECISION_ALLOW ? "allow" : "deny",
                         nonoproxy_audit_mode_name(event->mode), event->target);
        }
    } while (got == EVENT_BATCH);
    free(events);
    return 0;
}

int
main(int argc, char **argv)
{
    static char python[] = "python";
    static char agent[] = "agent.py";
    char *const default_command[] = {python, agent, NULL};
    const char *upstream = argc > 1 ? argv[1] : "https://api.openai.com";
    char *const *command = argc > 2 ? argv + 2 : default_command;
    struct nonoproxy_config config;
    struct nonoproxy_route_config route;
    struct nonoproxy_proxy *proxy = NULL;
    struct nonoproxy_diag diag;
    char **env = NULL;
    int result = EXIT_OWN_ERROR;

    /* config = ProxyConfig(allowed_hosts=[...], routes=[RouteConfig(...)]) */
    nonoproxy_config_init(&config);
    if (nonoproxy_config_allow_host(&config, "api.openai.com", &diag) != NONOPROXY_OK ||
        nonoproxy_config_allow_host(&config, "*.anthropic.com", &diag) != NONOPROXY_OK) {
        (void)fprintf(stderr, "seed_example: %s\n", diag.message);
        goto out;
    }
    /* Differs: the upstream can be given on the command line, so that CI runs this example
     * against a local server (routes do not consult allowed_hosts, so it needs no entry). */
    nonoproxy_route_config_init(&route, "/openai", upstream);
    route.credential_key = "openai-key";
    if (nonoproxy_config_add_route(&config, &route) != NONOPROXY_OK) {
        (void)fprintf(stderr, "seed_example: cannot add the route\n");
        goto out;
    }
    /* Differs: see resolve_credential(). The variable is read here, before any thread runs. */
    config.credential_cb = resolve_credential;
    config.credential_userdata = getenv(REAL_KEY_VAR);

    /* proxy = start_proxy(config) */
    if (nonoproxy_start(&config, &proxy, &diag) != NONOPROXY_OK) {
        (void)fprintf(stderr, "seed_example: %s\n", diag.message);
        goto out;
    }
    nonoproxy_config_free(&config); /* the proxy keeps its own copy */
    print_diagnostics(proxy);

    /* env = list(proxy.env_vars().items()) + list(proxy.credential_env_vars().items()) */
    env = child_env(proxy);
    if (env == NULL) {
        (void)fprintf(stderr, "seed_example: cannot build the child's environment\n");
        goto out;
    }

    /* result = sandboxed_exec(caps, ["python", "agent.py"], env=env) */
    result = run_child(command, env);

    /* Differs: proxy.shutdown() comes before the drain. It joins the connection threads, so the
     * events of requests that were still finishing when the child exited are in the ring too;
     * the ring stays readable until nonoproxy_free(). */
    nonoproxy_shutdown(proxy);

    /* for event in proxy.drain_audit_events(): print(...) */
    if (print_audit_events(proxy) != 0 && result == 0) {
        result = EXIT_OWN_ERROR;
    }
out:
    env_free(env);
    nonoproxy_free(proxy);          /* NULL-safe */
    nonoproxy_config_free(&config); /* idempotent: a freed config is an empty one */
    return result;
}
