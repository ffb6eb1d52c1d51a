/* Credential sources (SPEC §7), L2: loading from the embedder's callback, the environment, a
 * file or the Secret Service (libsecret); the reference syntax is credential_ref.c's.
 *
 * Every secret passes through one heap scratch buffer of SCRATCH_CAP bytes that is wiped and
 * freed on every path; the caller receives an exact-size np_malloc'd copy. Diagnostics name
 * the reference (never secret) and the reason, never a byte of the value.
 *
 * libsecret (and with it GLib, GObject, GIO) is not linked: it is dlopen'ed the first time a
 * keyring lookup runs, and every function used is looked up with dlsym; its headers are used
 * for the types only. A process without a keyring credential never maps it. Once loaded it
 * stays loaded for the life of the process (GLib keeps threads and state that cannot be
 * unloaded); a load that failed is tried again at the next lookup.
 *
 * The keyring lookup runs libsecret's asynchronous calls on a private GMainContext that is
 * iterated here, with a GCancellable cancelled by a timer on that context: the whole lookup
 * (D-Bus connection, session, search, unlock prompt, secret transfer) is bounded by
 * NP_CRED_KEYRING_TIMEOUT_MS. A fresh (non-shared) SecretService proxy is used and released,
 * so no libsecret singleton keeps dispatching signals into the private context afterwards. */
#include "credential.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef NONOPROXY_HAVE_LIBSECRET
#include <dlfcn.h>
#include <libsecret/secret.h>
#endif

#include "alloc.h"
#include "common.h"
#include "credential_ref.h"

/* Upper bound of one keyring lookup, prompts included (the D-Bus default call timeout is
 * 25 s per call; a lookup makes several). Overridable at build time for tests. */
#ifndef NP_CRED_KEYRING_TIMEOUT_MS
#define NP_CRED_KEYRING_TIMEOUT_MS 30000u
#endif

/* A file may hold the secret plus "\r\n"; one byte more proves it too long. */
#define SCRATCH_CAP ((size_t)NONOPROXY_SECRET_MAX + 3)

#define REASON_MAX 320

static const char DEFAULT_SERVICE[] = "nono";

/* One load in progress: the reference, the scratch buffer and the diagnostic sink. */
struct cred_load {
    const char *key;
    char *buf; /* SCRATCH_CAP bytes; wiped by np_cred_load */
    size_t n;  /* bytes of the secret in buf */
    char *detail;
    size_t detail_cap;
};

static void
fail(struct cred_load *l, const char *reason)
{
    np_cred_quote_reason(l->detail, l->detail_cap, l->key, reason);
}

/* Record "<what>: <strerror(err)>" as the reason. */
static void
fail_errno(struct cred_load *l, const char *what, int err)
{
    char reason[REASON_MAX];

    (void)snprintf(reason, sizeof(reason), "%s: %s", what, NP_ERRSTR(err));
    fail(l, reason);
}

/* Ask the embedder's resolver about l->key. *pass is set (and NOT_FOUND returned) when it
 * declines; a FOUND without bytes or with more than the cap is refused. */
static enum np_cred_status
load_callback(struct cred_load *l, nonoproxy_credential_fn *cb, void *userdata, bool *pass)
{
    enum nonoproxy_credential_result r;
    size_t n = 0;

    *pass = false;
    r = cb(userdata, l->key, l->buf, NONOPROXY_SECRET_MAX, &n);
    switch (r) {
    case NONOPROXY_CREDENTIAL_FOUND:
        if (n > NONOPROXY_SECRET_MAX) {
            fail(l, "the resolver callback returned more than NONOPROXY_SECRET_MAX bytes");
            return NP_CRED_UNAVAILABLE;
        }
        if (n == 0) {
            fail(l, "the resolver callback returned an empty secret");
            return NP_CRED_UNAVAILABLE;
        }
        l->n = n;
        return NP_CRED_LOADED;
    case NONOPROXY_CREDENTIAL_NOT_FOUND:
        fail(l, "not found by the resolver callback");
        return NP_CRED_NOT_FOUND;
    case NONOPROXY_CREDENTIAL_PASS:
        *pass = true;
        return NP_CRED_NOT_FOUND;
    }
    fail(l, "the resolver callback returned an unknown result");
    return NP_CRED_UNAVAILABLE;
}

/* Copy the variable named by an env:// reference. Unset or empty ⇒ NOT_FOUND. secure_getenv
 * reads the environment once, at start, on the starting thread (credential.h). */
static enum np_cred_status
load_env(struct cred_load *l)
{
    const char *name = np_cred_ref_body(l->key, NP_CRED_ENV);
    const char *value = secure_getenv(name); // NOLINT(concurrency-mt-unsafe): start, one thread
    size_t n;

    if (value == NULL || value[0] == '\0') {
        fail(l, "the environment variable is unset or empty");
        return NP_CRED_NOT_FOUND;
    }
    n = strnlen(value, NONOPROXY_SECRET_MAX + 1);
    if (n > NONOPROXY_SECRET_MAX) {
        fail(l, "the secret is longer than NONOPROXY_SECRET_MAX (8192) bytes");
        return NP_CRED_UNAVAILABLE;
    }
    memcpy(l->buf, value, n);
    l->n = n;
    return NP_CRED_LOADED;
}

/* Read fd to its end or until cap bytes are in buf; *n is the count. Returns 0 or -1 (errno). */
static int
read_upto(int fd, char *buf, size_t cap, size_t *n)
{
    size_t got = 0;

    while (got < cap) {
        ssize_t r = read(fd, buf + got, cap - got);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            *n = got;
            return -1;
        }
        if (r == 0) {
            break;
        }
        got += (size_t)r;
    }
    *n = got;
    return 0;
}

/* Read a file:// secret. Symlinks are followed (Kubernetes mounts secrets through them) but
 * the target must be a regular file; O_NONBLOCK keeps a FIFO from blocking the open. Missing
 * ⇒ NOT_FOUND; unreadable, not regular or too long ⇒ UNAVAILABLE; one trailing "\n" or
 * "\r\n" is stripped and what remains must not be empty (else NOT_FOUND). */
static enum np_cred_status
load_file(struct cred_load *l)
{
    enum np_cred_status st = NP_CRED_UNAVAILABLE;
    const char *path = np_cred_ref_body(l->key, NP_CRED_FILE);
    struct stat sb;
    size_t n = 0;
    int fd;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        int err = errno;
        st = (err == ENOENT || err == ENOTDIR) ? NP_CRED_NOT_FOUND : NP_CRED_UNAVAILABLE;
        fail_errno(l, "cannot open the file", err);
        goto out;
    }
    if (fstat(fd, &sb) != 0) {
        fail_errno(l, "cannot stat the file", errno);
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        fail(l, "not a regular file");
        goto out;
    }
    if (read_upto(fd, l->buf, SCRATCH_CAP, &n) != 0) {
        fail_errno(l, "cannot read the file", errno);
        goto out;
    }
    if (n == SCRATCH_CAP) {
        fail(l, "the secret is longer than NONOPROXY_SECRET_MAX (8192) bytes");
        goto out;
    }
    if (n >= 2 && l->buf[n - 2] == '\r' && l->buf[n - 1] == '\n') {
        n -= 2;
    } else if (n >= 1 && l->buf[n - 1] == '\n') {
        n -= 1;
    }
    if (n == 0) {
        fail(l, "the file is empty");
        st = NP_CRED_NOT_FOUND;
        goto out;
    }
    l->n = n;
    st = NP_CRED_LOADED;
out:
    if (fd >= 0) {
        (void)close(fd);
    }
    return st;
}

#ifdef NONOPROXY_HAVE_LIBSECRET

/* The library looked up, and every function of it (or of the GLib it brings) used here. */
#define KR_SONAME "libsecret-1.so.0"
#define KR_FUNCS(X)                                                                                \
    X(gpointer, g_object_ref, (gpointer))                                                          \
    X(void, g_object_unref, (gpointer))                                                            \
    X(GCancellable *, g_cancellable_new, (void))                                                   \
    X(void, g_cancellable_cancel, (GCancellable *))                                                \
    X(GMainContext *, g_main_context_new, (void))                                                  \
    X(gboolean, g_main_context_iteration, (GMainContext *, gboolean))                              \
    X(void, g_main_context_push_thread_default, (GMainContext *))                                  \
    X(void, g_main_context_pop_thread_default, (GMainContext *))                                   \
    X(void, g_main_context_unref, (GMainContext *))                                                \
    X(GSource *, g_timeout_source_new, (guint))                                                    \
    X(void, g_source_set_callback, (GSource *, GSourceFunc, gpointer, GDestroyNotify))             \
    X(guint, g_source_attach, (GSource *, GMainContext *))                                         \
    X(void, g_source_destroy, (GSource *))                                                         \
    X(void, g_source_unref, (GSource *))                                                           \
    X(void, g_error_free, (GError *))                                                              \
    X(void, g_list_free_full, (GList *, GDestroyNotify))                                           \
    X(void, g_hash_table_unref, (GHashTable *))                                                    \
    X(GType, secret_service_get_type, (void))                                                      \
    X(void, secret_service_open,                                                                   \
      (GType, const gchar *, SecretServiceFlags, GCancellable *, GAsyncReadyCallback, gpointer))   \
    X(SecretService *, secret_service_open_finish, (GAsyncResult *, GError **))                    \
    X(GHashTable *, secret_attributes_build, (const SecretSchema *, ...))                          \
    X(void, secret_service_search,                                                                 \
      (SecretService *, const SecretSchema *, GHashTable *, SecretSearchFlags, GCancellable *,     \
       GAsyncReadyCallback, gpointer))                                                             \
    X(GList *, secret_service_search_finish, (SecretService *, GAsyncResult *, GError **))         \
    X(gboolean, secret_item_get_locked, (SecretItem *))                                            \
    X(SecretValue *, secret_item_get_secret, (SecretItem *))                                       \
    X(const gchar *, secret_value_get, (SecretValue *, gsize *))                                   \
    X(void, secret_value_unref, (gpointer))

/* The functions, as dlsym found them; written once under kr_lock, read-only afterwards. */
struct kr_api {
#define KR_MEMBER(ret, name, args)                                                                 \
    ret(*p_##name) args; // NOLINT(bugprone-macro-parentheses): a type
    KR_FUNCS(KR_MEMBER)
#undef KR_MEMBER
};

/* Call libsecret/GLib function f through the table (never a direct, linked call). */
#define KR(f) (kr_api.p_##f)

static pthread_mutex_t kr_lock = PTHREAD_MUTEX_INITIALIZER;
static bool kr_loaded;               /* under kr_lock */
static const char *kr_soname = NULL; /* under kr_lock; NULL = KR_SONAME (test hook) */
static struct kr_api kr_api;         /* filled under kr_lock before kr_loaded is set */

bool
np_cred_set_keyring_soname(const char *soname)
{
    bool loaded;

    (void)pthread_mutex_lock(&kr_lock);
    loaded = kr_loaded;
    kr_soname = soname;
    (void)pthread_mutex_unlock(&kr_lock);
    return !loaded;
}

/* Where each function goes in struct kr_api, by name. */
static const struct {
    const char *name;
    size_t offset;
} KR_SYMS[] = {
#define KR_SYM(ret, name, args) {#name, offsetof(struct kr_api, p_##name)},
    KR_FUNCS(KR_SYM)
#undef KR_SYM
};

/* Look every function up in h into api. Returns NULL, or the name of the one missing. */
static const char *
kr_resolve(void *h, struct kr_api *api)
{
    size_t i;

    for (i = 0; i < NP_ARRAY_LEN(KR_SYMS); i++) {
        void *sym = dlsym(h, KR_SYMS[i].name);

        if (sym == NULL) {
            return KR_SYMS[i].name;
        }
        memcpy((char *)api + KR_SYMS[i].offset, &sym, sizeof(sym)); /* a function pointer */
    }
    return NULL;
}

/* Load libsecret on first use (a failed load is tried again next time). Returns 0, or -1
 * with the reason ("keyring unavailable: libsecret-1.so.0 not found ...") in l's detail. */
static int
kr_load(struct cred_load *l)
{
    char reason[REASON_MAX];
    const char *soname;
    const char *missing = NULL;
    struct kr_api api;
    void *h;
    int rc = 0;

    (void)pthread_mutex_lock(&kr_lock);
    if (!kr_loaded) {
        soname = kr_soname != NULL ? kr_soname : KR_SONAME;
        h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
        if (h != NULL) {
            missing = kr_resolve(h, &api);
        }
        if (h == NULL) {
            (void)snprintf(reason, sizeof(reason),
                           "keyring unavailable: %s not found (install libsecret-1-0)", soname);
            rc = -1;
        } else if (missing != NULL) {
            (void)snprintf(reason, sizeof(reason), "keyring unavailable: %s has no %s", soname,
                           missing);
            (void)dlclose(h);
            rc = -1;
        } else {
            kr_api = api; /* h stays open for the life of the process */
            kr_loaded = true;
        }
    }
    (void)pthread_mutex_unlock(&kr_lock);
    if (rc != 0) {
        fail(l, reason);
    }
    return rc;
}

/* The schema nono tools and `secret-tool store service S username U` agree on; the schema
 * name is not matched, so entries written under any schema with these attributes are found. */
static const SecretSchema KEYRING_SCHEMA = {
    .name = "org.freedesktop.Secret.Generic",
    .flags = SECRET_SCHEMA_DONT_MATCH_NAME,
    .attributes =
        {
            {"service", SECRET_SCHEMA_ATTRIBUTE_STRING},
            {"username", SECRET_SCHEMA_ATTRIBUTE_STRING},
            {NULL, SECRET_SCHEMA_ATTRIBUTE_STRING},
        },
};

/* One asynchronous libsecret call being waited for on a private main context. */
struct kr_wait {
    GMainContext *ctx;
    GCancellable *cancel;
    GAsyncResult *result; /* set (with a reference) by kr_on_done */
    bool timed_out;
};

/* Keep the result of the finished call for the waiting loop. */
static void
kr_on_done(GObject *source, GAsyncResult *res, gpointer data)
{
    struct kr_wait *w = data;

    NP_UNUSED(source);
    w->result = KR(g_object_ref)(res);
}

/* g_clear_object and g_clear_error, through the table: unref *p when set, then NULL it. */
static void
kr_clear_object(gpointer *p)
{
    if (*p != NULL) {
        KR(g_object_unref)(*p);
        *p = NULL;
    }
}

static void
kr_clear_error(GError **e)
{
    if (*e != NULL) {
        KR(g_error_free)(*e);
        *e = NULL;
    }
}

/* Cancel whatever call is pending once the lookup's time is up. */
static gboolean
kr_on_timeout(gpointer data)
{
    struct kr_wait *w = data;

    w->timed_out = true;
    KR(g_cancellable_cancel)(w->cancel);
    return G_SOURCE_REMOVE;
}

/* Iterate the private context until the pending call has finished. A cancelled GDBus call
 * finishes promptly with G_IO_ERROR_CANCELLED, so this returns soon after the timer fires. */
static void
kr_wait_result(struct kr_wait *w)
{
    while (w->result == NULL) {
        (void)KR(g_main_context_iteration)(w->ctx, TRUE);
    }
}

/* Record why the lookup failed: the timeout, or the GError's message (D-Bus, session or
 * prompt errors; they never hold the secret). */
static void
kr_fail(struct cred_load *l, const struct kr_wait *w, const GError *error)
{
    char reason[REASON_MAX];
    const char *text = (error != NULL && error->message != NULL) ? error->message : "unknown";

    if (w->timed_out) {
        (void)snprintf(reason, sizeof(reason), "keyring lookup timed out after %u ms",
                       (unsigned)NP_CRED_KEYRING_TIMEOUT_MS);
    } else {
        char msg[REASON_MAX / 2];
        np_copy_printable(msg, sizeof(msg), text, strlen(text));
        (void)snprintf(reason, sizeof(reason), "keyring unavailable: %s", msg);
    }
    fail(l, reason);
}

/* Take the secret of the first (unlocked first) item of a search into l->buf. */
static enum np_cred_status
kr_take_secret(struct cred_load *l, GList *items, const char *service, const char *account)
{
    enum np_cred_status st = NP_CRED_UNAVAILABLE;
    char reason[REASON_MAX];
    SecretValue *value = NULL;
    const gchar *bytes;
    gsize n = 0;

    if (items == NULL) {
        (void)snprintf(reason, sizeof(reason), "no keyring entry with service '%s' username '%s'",
                       service, account);
        fail(l, reason);
        st = NP_CRED_NOT_FOUND;
        goto out;
    }
    if (KR(secret_item_get_locked)(items->data)) {
        fail(l, "the keyring entry is locked");
        goto out;
    }
    value = KR(secret_item_get_secret)(items->data);
    if (value == NULL) {
        fail(l, "the keyring entry's secret could not be read");
        goto out;
    }
    bytes = KR(secret_value_get)(value, &n);
    if (n == 0) {
        fail(l, "the keyring entry is empty");
        st = NP_CRED_NOT_FOUND;
    } else if (n > NONOPROXY_SECRET_MAX) {
        fail(l, "the secret is longer than NONOPROXY_SECRET_MAX (8192) bytes");
    } else {
        memcpy(l->buf, bytes, n);
        l->n = n;
        st = NP_CRED_LOADED;
    }
out:
    if (value != NULL) {
        KR(secret_value_unref)(value); /* libsecret keeps secrets in memory it wipes on free */
    }
    return st;
}

/* Open a private (non-shared) Secret Service proxy with a session; NULL with the reason in
 * l's detail on failure. */
static SecretService *
kr_open(struct cred_load *l, struct kr_wait *w)
{
    SecretService *svc;
    GError *error = NULL;

    KR(secret_service_open)
    (KR(secret_service_get_type)(), NULL, SECRET_SERVICE_OPEN_SESSION, w->cancel, kr_on_done, w);
    kr_wait_result(w);
    svc = KR(secret_service_open_finish)(w->result, &error);
    kr_clear_object((gpointer *)&w->result);
    if (svc == NULL) {
        kr_fail(l, w, error);
    }
    kr_clear_error(&error);
    return svc;
}

/* Search a private Secret Service for service/account (unlocking, which may prompt, and
 * loading the secret), all bounded by the timer on w's context. */
static enum np_cred_status
kr_search(struct cred_load *l, struct kr_wait *w, const char *service, const char *account)
{
    enum np_cred_status st = NP_CRED_UNAVAILABLE;
    SecretService *svc;
    GHashTable *attrs = NULL;
    GList *items = NULL;
    GError *error = NULL;

    svc = kr_open(l, w);
    if (svc == NULL) {
        goto out;
    }
    attrs =
        KR(secret_attributes_build)(&KEYRING_SCHEMA, "service", service, "username", account, NULL);
    if (attrs == NULL) {
        fail(l, "keyring attributes could not be built");
        goto out;
    }
    KR(secret_service_search)
    (svc, &KEYRING_SCHEMA, attrs, SECRET_SEARCH_UNLOCK | SECRET_SEARCH_LOAD_SECRETS, w->cancel,
     kr_on_done, w);
    kr_wait_result(w);
    items = KR(secret_service_search_finish)(svc, w->result, &error);
    kr_clear_object((gpointer *)&w->result);
    if (error != NULL) {
        kr_fail(l, w, error);
        goto out;
    }
    st = kr_take_secret(l, items, service, account);
    if (st == NP_CRED_UNAVAILABLE && w->timed_out) {
        kr_fail(l, w, NULL); /* the search itself ignores a cancelled unlock or load */
    }
out:
    if (items != NULL) {
        KR(g_list_free_full)(items, KR(g_object_unref));
    }
    if (attrs != NULL) {
        KR(g_hash_table_unref)(attrs);
    }
    kr_clear_object((gpointer *)&svc);
    kr_clear_error(&error);
    return st;
}

/* Look service/account up in the Secret Service. No entry ⇒ NOT_FOUND; no D-Bus session,
 * no service, a locked entry, a timeout ⇒ UNAVAILABLE. The private context is pushed as
 * thread-default for the calls and drained of the finalisers' notifications before popping. */
static enum np_cred_status
keyring_lookup(struct cred_load *l, const char *service, const char *account)
{
    enum np_cred_status st;
    struct kr_wait w = {NULL, NULL, NULL, false};
    GSource *timer;
    int spins;

    if (kr_load(l) != 0) {
        return NP_CRED_UNAVAILABLE;
    }
    w.ctx = KR(g_main_context_new)();
    KR(g_main_context_push_thread_default)(w.ctx);
    w.cancel = KR(g_cancellable_new)();
    timer = KR(g_timeout_source_new)(NP_CRED_KEYRING_TIMEOUT_MS);
    KR(g_source_set_callback)(timer, kr_on_timeout, &w, NULL);
    (void)KR(g_source_attach)(timer, w.ctx);

    st = kr_search(l, &w, service, account);

    KR(g_source_destroy)(timer);
    KR(g_source_unref)(timer);
    KR(g_object_unref)(w.cancel);
    for (spins = 0; spins < 100 && KR(g_main_context_iteration)(w.ctx, FALSE); spins++) {
        /* dispatch the idle notifications queued by the proxies' finalisers */
    }
    KR(g_main_context_pop_thread_default)(w.ctx);
    KR(g_main_context_unref)(w.ctx);
    return st;
}

#else /* !NONOPROXY_HAVE_LIBSECRET */

bool
np_cred_set_keyring_soname(const char *soname)
{
    NP_UNUSED(soname);
    return true;
}

static enum np_cred_status
keyring_lookup(struct cred_load *l, const char *service, const char *account)
{
    NP_UNUSED(service);
    NP_UNUSED(account);
    fail(l, "built without keyring support");
    return NP_CRED_UNAVAILABLE;
}

#endif /* NONOPROXY_HAVE_LIBSECRET */

/* Record "out of memory" in the detail; returns NP_CRED_NOMEM. */
static enum np_cred_status
fail_nomem(struct cred_load *l)
{
    fail(l, "out of memory");
    return NP_CRED_NOMEM;
}

/* Split a keyring reference into service and account (a bare name uses service "nono") and
 * look it up; the service is copied to be NUL-terminated, the account is the key's tail. */
static enum np_cred_status
load_keyring(struct cred_load *l)
{
    enum np_cred_status st = NP_CRED_UNAVAILABLE;
    const char *rest;
    const char *slash;
    char *service = NULL;

    rest = np_cred_ref_body(l->key, NP_CRED_KEYRING);
    if (rest == l->key) {
        return keyring_lookup(l, DEFAULT_SERVICE, l->key); /* a bare name */
    }
    slash = strchr(rest, '/'); /* present: checked by np_cred_ref_check */
    service = np_strndup(rest, (size_t)(slash - rest));
    if (service == NULL) {
        st = fail_nomem(l);
        goto out;
    }
    st = keyring_lookup(l, service, slash + 1);
out:
    np_free(service);
    return st;
}

/* Refuse a loaded secret that could split or truncate an upstream header. */
static enum np_cred_status
check_content(struct cred_load *l)
{
    if (l->n > NONOPROXY_SECRET_MAX) {
        fail(l, "the secret is longer than NONOPROXY_SECRET_MAX (8192) bytes");
        return NP_CRED_UNAVAILABLE;
    }
    size_t i;

    for (i = 0; i < l->n; i++) {
        unsigned char c = (unsigned char)l->buf[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            fail(l, "the secret contains a control character (it could split or corrupt an "
                    "upstream header)");
            return NP_CRED_UNAVAILABLE;
        }
    }
    return NP_CRED_LOADED;
}

/* Load the secret for key: the callback first, then the reference's own source; see
 * credential.h. The scratch buffer is wiped whatever happens. */
enum np_cred_status
np_cred_load(const struct np_cred_request *q, char **secret, size_t *len, char *detail,
             size_t detail_cap)
{
    const char *key = q->key;
    nonoproxy_credential_fn *cb = q->cb;
    enum np_cred_status st = NP_CRED_UNAVAILABLE;
    enum np_cred_scheme scheme = NP_CRED_KEYRING;
    struct cred_load l = {key, NULL, 0, detail, detail_cap};
    bool custom = np_cred_ref_is_custom(key);
    bool pass = true;

    *secret = NULL;
    *len = 0;
    if (custom) {
        if (cb == NULL) {
            (void)np_cred_ref_check(key, &scheme, detail, detail_cap); /* the reason */
            goto out;
        }
    } else if (np_cred_ref_check(key, &scheme, detail, detail_cap) != 0) {
        goto out; /* the reason is in detail; on success it is "" */
    }
    l.buf = np_malloc(SCRATCH_CAP);
    if (l.buf == NULL) {
        st = fail_nomem(&l);
        goto out;
    }
    if (cb != NULL) {
        st = load_callback(&l, cb, q->userdata, &pass);
    }
    if (pass && custom) {
        fail(&l, "unsupported credential scheme, and the credential callback did not resolve it");
        st = NP_CRED_UNAVAILABLE;
    } else if (pass) {
        switch (scheme) {
        case NP_CRED_ENV:
            st = load_env(&l);
            break;
        case NP_CRED_FILE:
            st = load_file(&l);
            break;
        case NP_CRED_KEYRING:
            st = load_keyring(&l);
            break;
        }
    }
    if (st == NP_CRED_LOADED) {
        st = check_content(&l);
    }
    if (st == NP_CRED_LOADED) {
        *secret = np_strndup(l.buf, l.n);
        if (*secret == NULL) {
            st = fail_nomem(&l);
            goto out;
        }
        *len = l.n;
        if (detail != NULL && detail_cap > 0) {
            detail[0] = '\0';
        }
    }
out:
    if (l.buf != NULL) {
        np_secure_zero(l.buf, SCRATCH_CAP);
        np_free(l.buf);
    }
    return st;
}
