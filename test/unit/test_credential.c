/* Unit tests for lib/credential.h: reference syntax, env://, file://, the resolver callback,
 * and the keyring. The keyring rows that need a Secret Service run only under
 * test/unit/keyring_session.sh (NONOPROXY_KEYRING_TEST=1, then =locked); otherwise they skip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "common.h"
#include "credential.h"

#define ENV_VAR   "NP_TEST_CRED_ENV"
#define DETAIL_SZ 512

/* Secrets stored by keyring_session.sh. */
#define KEYRING_BARE_SECRET    "np-keyring-secret-1"
#define KEYRING_SERVICE_SECRET "np-keyring-secret-2 with space"

static char g_dir[64]; /* per-run scratch directory for file:// rows */

/* The environment is only touched from the test's one thread. */
static void
set_env(const char *name, const char *value)
{
    assert_int_equal(setenv(name, value, 1), 0); // NOLINT(concurrency-mt-unsafe): one thread
}

static void
unset_env(const char *name)
{
    assert_int_equal(unsetenv(name), 0); // NOLINT(concurrency-mt-unsafe): one thread
}

static const char *
get_env(const char *name)
{
    return getenv(name); // NOLINT(concurrency-mt-unsafe): one thread
}

static int
group_setup(void **state)
{
    (void)state;
    (void)snprintf(g_dir, sizeof(g_dir), "/tmp/np-cred-XXXXXX");
    return mkdtemp(g_dir) == NULL ? -1 : 0;
}

static int
group_teardown(void **state)
{
    (void)state;
    return rmdir(g_dir);
}

/* Assert that detail does not hold value (nor its first 6 bytes, when it has that many). */
static void
assert_no_secret(const char *detail, const char *value, size_t len)
{
    char head[7];
    size_t n = len < 6 ? len : 6;

    if (len == 0) {
        return;
    }
    memcpy(head, value, n);
    head[n] = '\0';
    assert_null(strstr(detail, head));
}

/* ---- np_cred_ref_check ------------------------------------------------------------------ */

struct ref_row {
    const char *rule;
    const char *key;
    int rc;
    enum np_cred_scheme scheme; /* when rc == 0 */
    const char *why_has;        /* when rc == -1 */
};

static const struct ref_row REF_ROWS[] = {
    {"env_name_ok", "env://OPENAI_KEY", 0, NP_CRED_ENV, NULL},
    {"env_name_digits_lowercase_ok", "env://key_2", 0, NP_CRED_ENV, NULL},
    {"env_loader_name_refused", "env://LD_PRELOAD", -1, 0, "refused"},
    {"env_refused_case_insensitive", "env://path", -1, 0, "refused"},
    {"env_dyld_prefix_refused", "env://DYLD_INSERT_LIBRARIES", -1, 0, "refused"},
    {"env_dash_refused", "env://A-B", -1, 0, "[A-Za-z0-9_]+"},
    {"env_equals_refused", "env://A=B", -1, 0, "[A-Za-z0-9_]+"},
    {"env_empty_name", "env://", -1, 0, "empty"},
    {"file_absolute_ok", "file:///abs", 0, NP_CRED_FILE, NULL},
    {"file_nested_ok", "file:///run/secrets/openai.key", 0, NP_CRED_FILE, NULL},
    {"file_relative_refused", "file://rel", -1, 0, "absolute"},
    {"file_empty_refused", "file://", -1, 0, "absolute"},
    {"file_dotdot_refused", "file:///a/../b", -1, 0, "'..'"},
    {"file_semicolon_refused", "file:///a;b", -1, 0, "refused character"},
    {"file_pipe_refused", "file:///a|b", -1, 0, "refused character"},
    {"file_dollar_refused", "file:///a$b", -1, 0, "refused character"},
    {"file_backtick_refused", "file:///a`b", -1, 0, "refused character"},
    {"file_ampersand_refused", "file:///a&b", -1, 0, "refused character"},
    {"file_redirect_refused", "file:///a>b", -1, 0, "refused character"},
    {"file_lf_refused", "file:///a\nb", -1, 0, "refused character"},
    {"file_cr_refused", "file:///a\rb", -1, 0, "refused character"},
    {"keyring_pair_ok", "keyring://svc/acct", 0, NP_CRED_KEYRING, NULL},
    {"keyring_account_with_slash_ok", "keyring://svc/a/b", 0, NP_CRED_KEYRING, NULL},
    {"keyring_without_account", "keyring://svc", -1, 0, "keyring://service/account"},
    {"keyring_empty_service", "keyring:///acct", -1, 0, "service is empty"},
    {"keyring_empty_account", "keyring://svc/", -1, 0, "account is empty"},
    {"keyring_control_byte", "keyring://svc/a\tb", -1, 0, "printable"},
    {"keyring_non_ascii", "keyring://svc/caf\xc3\xa9", -1, 0, "printable"},
    {"bare_name_ok", "openai-key", 0, NP_CRED_KEYRING, NULL},
    {"bare_name_with_space_ok", "my key", 0, NP_CRED_KEYRING, NULL},
    {"bare_name_with_slash", "a/b", -1, 0, "must not contain '/'"},
    {"bare_name_control_byte", "a\x01z", -1, 0, "printable"},
    {"empty_reference", "", -1, 0, "empty"},
    {"onepassword_unsupported", "op://v/i/f", -1, 0, "unsupported"},
    {"bitwarden_unsupported", "bw://x", -1, 0, "unsupported"},
    {"https_unsupported", "https://x", -1, 0, "unsupported"},
    {"uppercase_scheme_unsupported", "ENV://OPENAI_KEY", -1, 0, "unsupported"},
    {"empty_scheme_unsupported", "://x", -1, 0, "unsupported"},
};

static bool
all_printable(const char *s)
{
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e) {
            return false;
        }
    }
    return true;
}

static void
ref_check_rows(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < NP_ARRAY_LEN(REF_ROWS); i++) {
        const struct ref_row *row = &REF_ROWS[i];
        enum np_cred_scheme scheme = (enum np_cred_scheme)99;
        char why[256];
        int rc;

        memset(why, 'X', sizeof(why));
        print_message("  row %s\n", row->rule);
        rc = np_cred_ref_check(row->key, &scheme, why, sizeof(why));
        assert_int_equal(rc, row->rc);
        if (rc == 0) {
            assert_int_equal(scheme, row->scheme);
            assert_string_equal(why, "");
            continue;
        }
        assert_int_equal(scheme, 99); /* untouched on error */
        assert_non_null(strstr(why, row->why_has));
        assert_null(strchr(why, '\n'));
        if (all_printable(row->key)) {
            char quoted[128];
            (void)snprintf(quoted, sizeof(quoted), "'%s': ", row->key);
            assert_non_null(strstr(why, quoted)); /* the reason quotes the reference */
        }
    }
}

static void
ref_check_null_and_small_buffers(void **state)
{
    char why[8];

    (void)state;
    assert_int_equal(np_cred_ref_check(NULL, NULL, why, sizeof(why)), -1);
    assert_int_equal(np_cred_ref_check("env://OK", NULL, NULL, 0), 0);
    assert_int_equal(np_cred_ref_check("op://a/b", NULL, NULL, 0), -1);
    assert_int_equal(np_cred_ref_check("op://a/b", NULL, why, sizeof(why)), -1);
    assert_int_equal(strlen(why), sizeof(why) - 1); /* truncated, terminated */
}

/* ---- np_cred_ref_body -------------------------------------------------------------------- */

struct body_row {
    const char *rule;
    const char *key;
    enum np_cred_scheme scheme;
    size_t skip; /* the body starts this many bytes into key */
};

static const struct body_row BODY_ROWS[] = {
    {"env_reference_gives_name", "env://OPENAI_KEY", NP_CRED_ENV, 6},
    {"env_reference_empty_name", "env://", NP_CRED_ENV, 6},
    {"file_reference_gives_path", "file:///x", NP_CRED_FILE, 7},
    {"keyring_reference_gives_pair", "keyring://s/a", NP_CRED_KEYRING, 10},
    {"bare_name_is_itself", "OPENAI_KEY", NP_CRED_KEYRING, 0},
    {"another_scheme_is_itself", "file:///x", NP_CRED_ENV, 0},
    {"uppercase_scheme_is_itself", "ENV://X", NP_CRED_ENV, 0},
};

static void
ref_body_rows(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < NP_ARRAY_LEN(BODY_ROWS); i++) {
        const struct body_row *row = &BODY_ROWS[i];

        print_message("  row %s\n", row->rule);
        assert_ptr_equal(np_cred_ref_body(row->key, row->scheme), row->key + row->skip);
    }
}

/* ---- np_cred_load: env:// --------------------------------------------------------------- */

struct load_result {
    enum np_cred_status st;
    char *secret;
    size_t len;
    char detail[DETAIL_SZ];
};

static void
load(struct load_result *r, const char *key, nonoproxy_credential_fn *cb, void *ud)
{
    struct np_cred_request q = {key, cb, ud};

    memset(r->detail, 'X', sizeof(r->detail));
    r->secret = (char *)(uintptr_t)1; /* must be reset */
    r->len = 99;
    r->st = np_cred_load(&q, &r->secret, &r->len, r->detail, sizeof(r->detail));
    if (r->st != NP_CRED_LOADED) {
        assert_null(r->secret);
        assert_int_equal(r->len, 0);
        assert_non_null(strstr(r->detail, "': ")); /* a reason that names the reference */
        assert_null(strchr(r->detail, '\n'));
    } else {
        assert_non_null(r->secret);
        assert_int_equal(strlen(r->secret), r->len);
        assert_string_equal(r->detail, "");
    }
}

struct env_row {
    const char *rule;
    const char *value; /* NULL = unset */
    enum np_cred_status st;
    const char *why_has; /* when not loaded */
};

static const struct env_row ENV_ROWS[] = {
    {"env_set_is_loaded", "sk-env-123", NP_CRED_LOADED, NULL},
    {"env_with_spaces_kept", " sk env ", NP_CRED_LOADED, NULL},
    {"env_unset_not_found", NULL, NP_CRED_NOT_FOUND, "unset or empty"},
    {"env_empty_not_found", "", NP_CRED_NOT_FOUND, "unset or empty"},
    {"env_inner_cr_refused", "sk-inner\rcr", NP_CRED_UNAVAILABLE, "control character"},
    {"env_inner_soh_refused", "sk-inner\x01soh", NP_CRED_UNAVAILABLE, "control character"},
    {"env_inner_del_refused",
     "sk-inner\x7f"
     "del",
     NP_CRED_UNAVAILABLE, "control character"},
    {"env_inner_lf_refused", "sk-inner\nlf", NP_CRED_UNAVAILABLE, "control character"},
    {"env_trailing_lf_refused", "sk-trail\n", NP_CRED_UNAVAILABLE, "control character"},
};

static void
load_env_rows(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < NP_ARRAY_LEN(ENV_ROWS); i++) {
        const struct env_row *row = &ENV_ROWS[i];
        struct load_result r;

        print_message("  row %s\n", row->rule);
        if (row->value == NULL) {
            unset_env(ENV_VAR);
        } else {
            set_env(ENV_VAR, row->value);
        }
        load(&r, "env://" ENV_VAR, NULL, NULL);
        assert_int_equal(r.st, row->st);
        if (r.st == NP_CRED_LOADED) {
            assert_string_equal(r.secret, row->value);
            np_free_secret(r.secret);
        } else {
            assert_non_null(strstr(r.detail, "'env://" ENV_VAR "'"));
            assert_non_null(strstr(r.detail, row->why_has));
            if (row->value != NULL) {
                assert_no_secret(r.detail, row->value, strlen(row->value));
            }
        }
    }
    unset_env(ENV_VAR);
}

/* A value of exactly NONOPROXY_SECRET_MAX bytes loads; one more is refused. */
static void
load_env_length_cap(void **state)
{
    char *v = np_malloc(NONOPROXY_SECRET_MAX + 2);
    struct load_result r;

    (void)state;
    assert_non_null(v);
    memset(v, 'k', NONOPROXY_SECRET_MAX + 1);
    v[NONOPROXY_SECRET_MAX] = '\0';
    set_env(ENV_VAR, v);
    load(&r, "env://" ENV_VAR, NULL, NULL);
    assert_int_equal(r.st, NP_CRED_LOADED);
    assert_int_equal(r.len, NONOPROXY_SECRET_MAX);
    np_free_secret(r.secret);

    v[NONOPROXY_SECRET_MAX] = 'k';
    v[NONOPROXY_SECRET_MAX + 1] = '\0';
    set_env(ENV_VAR, v);
    load(&r, "env://" ENV_VAR, NULL, NULL);
    assert_int_equal(r.st, NP_CRED_UNAVAILABLE);
    assert_non_null(strstr(r.detail, "longer than"));
    assert_null(strstr(r.detail, "kkkkkk"));
    unset_env(ENV_VAR);
    np_free(v);
}

/* ---- np_cred_load: file:// -------------------------------------------------------------- */

/* Write content to g_dir/name and the reference "file://<path>" to key. */
static void
write_file(const char *name, const char *content, size_t len, char *key, size_t key_cap)
{
    char path[128];
    int fd;

    (void)snprintf(path, sizeof(path), "%s/%s", g_dir, name);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
    (void)snprintf(key, key_cap, "file://%s", path);
}

static void
remove_entry(const char *name)
{
    char path[128];

    (void)snprintf(path, sizeof(path), "%s/%s", g_dir, name);
    assert_int_equal(remove(path), 0);
}

struct file_row {
    const char *rule;
    const char *content;
    size_t len;
    enum np_cred_status st;
    const char *secret;  /* when loaded */
    const char *why_has; /* when not loaded */
};

#define S(lit) lit, sizeof(lit) - 1

static const struct file_row FILE_ROWS[] = {
    {"file_lf_stripped", S("sk-file\n"), NP_CRED_LOADED, "sk-file", NULL},
    {"file_crlf_stripped", S("sk-file\r\n"), NP_CRED_LOADED, "sk-file", NULL},
    {"file_without_newline", S("sk-file"), NP_CRED_LOADED, "sk-file", NULL},
    {"file_spaces_kept", S(" sk file \n"), NP_CRED_LOADED, " sk file ", NULL},
    {"file_two_newlines_only_one_stripped", S("sk-file\n\n"), NP_CRED_UNAVAILABLE, NULL,
     "control character"},
    {"file_crlf_twice_only_one_stripped", S("sk-file\r\n\r\n"), NP_CRED_UNAVAILABLE, NULL,
     "control character"},
    {"file_lone_trailing_cr_refused", S("sk-file\r"), NP_CRED_UNAVAILABLE, NULL,
     "control character"},
    {"file_inner_lf_refused", S("sk-inner\nlf"), NP_CRED_UNAVAILABLE, NULL, "control character"},
    {"file_inner_cr_refused", S("sk-inner\rcr"), NP_CRED_UNAVAILABLE, NULL, "control character"},
    {"file_inner_nul_refused", S("sk-inner\0nul"), NP_CRED_UNAVAILABLE, NULL, "control character"},
    {"file_empty_not_found", S(""), NP_CRED_NOT_FOUND, NULL, "empty"},
    {"file_only_newline_not_found", S("\n"), NP_CRED_NOT_FOUND, NULL, "empty"},
    {"file_only_crlf_not_found", S("\r\n"), NP_CRED_NOT_FOUND, NULL, "empty"},
};

static void
load_file_rows(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < NP_ARRAY_LEN(FILE_ROWS); i++) {
        const struct file_row *row = &FILE_ROWS[i];
        struct load_result r;
        char key[160];

        print_message("  row %s\n", row->rule);
        write_file("secret", row->content, row->len, key, sizeof(key));
        load(&r, key, NULL, NULL);
        assert_int_equal(r.st, row->st);
        if (r.st == NP_CRED_LOADED) {
            assert_string_equal(r.secret, row->secret);
            np_free_secret(r.secret);
        } else {
            assert_non_null(strstr(r.detail, key));
            assert_non_null(strstr(r.detail, row->why_has));
            assert_no_secret(r.detail, row->content, row->len);
        }
        remove_entry("secret");
    }
}

/* NONOPROXY_SECRET_MAX bytes plus "\r\n" load; one byte more (with or without a line ending)
 * and a large file are refused without their content in the detail. */
static void
load_file_length_cap(void **state)
{
    static const struct {
        const char *rule;
        size_t body;
        const char *ending;
        enum np_cred_status st;
    } rows[] = {
        {"max_with_crlf_loads", NONOPROXY_SECRET_MAX, "\r\n", NP_CRED_LOADED},
        {"max_with_lf_loads", NONOPROXY_SECRET_MAX, "\n", NP_CRED_LOADED},
        {"over_max_with_lf_refused", NONOPROXY_SECRET_MAX + 1, "\n", NP_CRED_UNAVAILABLE},
        {"over_max_bare_refused", NONOPROXY_SECRET_MAX + 1, "", NP_CRED_UNAVAILABLE},
        {"over_max_plus_two_refused", NONOPROXY_SECRET_MAX + 3, "", NP_CRED_UNAVAILABLE},
        {"large_file_refused", 100000, "\n", NP_CRED_UNAVAILABLE},
    };
    size_t i;

    (void)state;
    for (i = 0; i < NP_ARRAY_LEN(rows); i++) {
        size_t elen = strlen(rows[i].ending);
        char *content = np_malloc(rows[i].body + elen);
        struct load_result r;
        char key[160];

        print_message("  row %s\n", rows[i].rule);
        assert_non_null(content);
        memset(content, 'f', rows[i].body);
        memcpy(content + rows[i].body, rows[i].ending, elen);
        write_file("big", content, rows[i].body + elen, key, sizeof(key));
        load(&r, key, NULL, NULL);
        assert_int_equal(r.st, rows[i].st);
        if (r.st == NP_CRED_LOADED) {
            assert_int_equal(r.len, rows[i].body);
            assert_memory_equal(r.secret, content, r.len);
            np_free_secret(r.secret);
        } else {
            assert_non_null(strstr(r.detail, "longer than"));
            assert_null(strstr(r.detail, "ffffff"));
        }
        np_free(content);
        remove_entry("big");
    }
}

/* A missing file is NOT_FOUND, a directory or a FIFO UNAVAILABLE (the FIFO must not block the
 * open), a symlink to a regular file is followed. */
static void
load_file_kinds(void **state)
{
    struct load_result r;
    char key[160];
    char path[128];
    char target[128];

    (void)state;
    (void)snprintf(key, sizeof(key), "file://%s/missing", g_dir);
    load(&r, key, NULL, NULL);
    assert_int_equal(r.st, NP_CRED_NOT_FOUND);
    assert_non_null(strstr(r.detail, "No such file"));

    (void)snprintf(key, sizeof(key), "file:///etc/hostname/below-a-file");
    load(&r, key, NULL, NULL);
    assert_int_equal(r.st, NP_CRED_NOT_FOUND);

    (void)snprintf(path, sizeof(path), "%s/dir", g_dir);
    assert_int_equal(mkdir(path, 0700), 0);
    (void)snprintf(key, sizeof(key), "file://%s", path);
    load(&r, key, NULL, NULL);
    assert_int_equal(r.st, NP_CRED_UNAVAILABLE);
    assert_non_null(strstr(r.detail, "not a regular file"));
    assert_int_equal(rmdir(path), 0);

    (void)snprintf(path, sizeof(path), "%s/fifo", g_dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    (void)snprintf(key, sizeof(key), "file://%s", path);
    load(&r, key, NULL, NULL);
    assert_int_equal(r.st, NP_CRED_UNAVAILABLE);
    assert_non_null(strstr(r.detail, "not a regular file"));
    remove_entry("fifo");

    write_file("target", S("sk-linked\n"), key, sizeof(key));
    (void)snprintf(target, sizeof(target), "%s/target", g_dir);
    (void)snprintf(path, sizeof(path), "%s/link", g_dir);
    assert_int_equal(symlink(target, path), 0);
    (void)snprintf(key, sizeof(key), "file://%s", path);
    load(&r, key, NULL, NULL);
    assert_int_equal(r.st, NP_CRED_LOADED);
    assert_string_equal(r.secret, "sk-linked");
    np_free_secret(r.secret);
    remove_entry("link");
    remove_entry("target");
}

/* An unreadable file is UNAVAILABLE. Root reads any file, so this row skips as root. */
static void
load_file_permission_denied(void **state)
{
    struct load_result r;
    char key[160];
    char path[128];

    (void)state;
    if (geteuid() == 0) {
        skip();
    }
    write_file("noperm", S("sk-noperm"), key, sizeof(key));
    (void)snprintf(path, sizeof(path), "%s/noperm", g_dir);
    assert_int_equal(chmod(path, 0), 0);
    load(&r, key, NULL, NULL);
    assert_int_equal(r.st, NP_CRED_UNAVAILABLE);
    assert_non_null(strstr(r.detail, "Permission denied"));
    remove_entry("noperm");
}

/* ---- np_cred_load: resolver callback ---------------------------------------------------- */

struct cb_state {
    enum nonoproxy_credential_result result;
    const char *secret; /* len bytes copied to buf when len <= cap */
    size_t len;         /* reported length */
    int calls;
    const char *seen_key;
    size_t seen_cap;
};

static enum nonoproxy_credential_result
fake_resolver(void *userdata, const char *key, char *buf, size_t cap, size_t *len)
{
    struct cb_state *s = userdata;

    s->calls++;
    s->seen_key = key;
    s->seen_cap = cap;
    if (s->secret != NULL && s->len <= cap) {
        memcpy(buf, s->secret, s->len);
    }
    *len = s->len;
    return s->result;
}

struct cb_row {
    const char *rule;
    enum nonoproxy_credential_result result;
    enum np_cred_status st;
    const char *secret;
    size_t len;
    const char *expect; /* loaded secret, or a substring of the detail */
};

static const struct cb_row CB_ROWS[] = {
    {"found_wins_over_env", NONOPROXY_CREDENTIAL_FOUND, NP_CRED_LOADED, S("sk-from-cb"),
     "sk-from-cb"},
    {"not_found_is_final", NONOPROXY_CREDENTIAL_NOT_FOUND, NP_CRED_NOT_FOUND, NULL, 0,
     "resolver callback"},
    {"pass_falls_through_to_env", NONOPROXY_CREDENTIAL_PASS, NP_CRED_LOADED, NULL, 0,
     "sk-from-env"},
    {"found_empty_refused", NONOPROXY_CREDENTIAL_FOUND, NP_CRED_UNAVAILABLE, "", 0, "empty"},
    {"found_over_cap_refused", NONOPROXY_CREDENTIAL_FOUND, NP_CRED_UNAVAILABLE, NULL,
     NONOPROXY_SECRET_MAX + 1, "more than"},
    {"found_inner_lf_refused", NONOPROXY_CREDENTIAL_FOUND, NP_CRED_UNAVAILABLE, S("sk-cb\nlf"),
     "control character"},
    {"found_inner_nul_refused", NONOPROXY_CREDENTIAL_FOUND, NP_CRED_UNAVAILABLE, S("sk-cb\0nul"),
     "control character"},
    {"unknown_result_refused", (enum nonoproxy_credential_result)7, NP_CRED_UNAVAILABLE, NULL, 0,
     "unknown result"},
};

static void
load_callback_rows(void **state)
{
    size_t i;

    (void)state;
    set_env(ENV_VAR, "sk-from-env");
    for (i = 0; i < NP_ARRAY_LEN(CB_ROWS); i++) {
        const struct cb_row *row = &CB_ROWS[i];
        struct cb_state s = {row->result, row->secret, row->len, 0, NULL, 0};
        const char *key = "env://" ENV_VAR;
        struct load_result r;

        print_message("  row %s\n", row->rule);
        load(&r, key, fake_resolver, &s);
        assert_int_equal(s.calls, 1); /* asked first, even though the variable is set */
        assert_ptr_equal(s.seen_key, key);
        assert_int_equal(s.seen_cap, NONOPROXY_SECRET_MAX);
        assert_int_equal(r.st, row->st);
        if (r.st == NP_CRED_LOADED) {
            assert_string_equal(r.secret, row->expect);
            np_free_secret(r.secret);
        } else {
            assert_non_null(strstr(r.detail, row->expect));
            assert_null(strstr(r.detail, "sk-from-env"));
            if (row->secret != NULL) {
                assert_no_secret(r.detail, row->secret, row->len);
            }
        }
    }
    unset_env(ENV_VAR);
}

/* A malformed reference of a built-in scheme is refused before anyone, the callback
 * included, is asked (it is a start error, SPEC §1.1). A custom scheme ("op://") goes to the
 * callback only: FOUND loads it, PASS leaves it unavailable, and without a callback it is
 * unsupported. */
static void
load_refuses_bad_reference(void **state)
{
    struct cb_state s = {NONOPROXY_CREDENTIAL_FOUND, "sk-x", 4, 0, NULL, 0};
    struct cb_state pass = {NONOPROXY_CREDENTIAL_PASS, NULL, 0, 0, NULL, 0};
    struct load_result r;

    (void)state;
    load(&r, "env://LD_PRELOAD", fake_resolver, &s);
    assert_int_equal(r.st, NP_CRED_UNAVAILABLE);
    assert_int_equal(s.calls, 0);
    load(&r, "op://vault/item/field", NULL, NULL);
    assert_int_equal(r.st, NP_CRED_UNAVAILABLE);
    assert_non_null(strstr(r.detail, "unsupported"));
    load(&r, "op://vault/item/field", fake_resolver, &pass);
    assert_int_equal(r.st, NP_CRED_UNAVAILABLE);
    assert_int_equal(pass.calls, 1);
    assert_non_null(strstr(r.detail, "did not resolve"));
    load(&r, "op://vault/item/field", fake_resolver, &s);
    assert_int_equal(r.st, NP_CRED_LOADED);
    assert_int_equal(s.calls, 1);
    np_free_secret(r.secret);
    assert_true(np_cred_ref_is_custom("op://vault/item"));
    assert_true(np_cred_ref_is_custom("vault+v2://x"));
    assert_false(np_cred_ref_is_custom("env://X"));
    assert_false(np_cred_ref_is_custom("file:///x"));
    assert_false(np_cred_ref_is_custom("keyring://a/b"));
    assert_false(np_cred_ref_is_custom("OP://x"));
    assert_false(np_cred_ref_is_custom("openai-key"));
    assert_false(np_cred_ref_is_custom("://x"));
}

/* The callback may claim a key of any scheme, keyring names included, without the keyring
 * being contacted. */
static void
load_callback_serves_keyring_names(void **state)
{
    struct cb_state s = {NONOPROXY_CREDENTIAL_FOUND, S("sk-kr"), 0, NULL, 0};
    struct load_result r;

    (void)state;
    load(&r, "keyring://svc/acct", fake_resolver, &s);
    assert_int_equal(r.st, NP_CRED_LOADED);
    assert_string_equal(r.secret, "sk-kr");
    np_free_secret(r.secret);
    load(&r, "openai-key", fake_resolver, &s);
    assert_int_equal(r.st, NP_CRED_LOADED);
    assert_string_equal(r.secret, "sk-kr");
    np_free_secret(r.secret);
    assert_int_equal(s.calls, 2);
}

/* ---- np_cred_load: keyring -------------------------------------------------------------- */

static const char *
keyring_mode(void)
{
    const char *m = get_env("NONOPROXY_KEYRING_TEST");

    return m == NULL ? "" : m;
}

/* libsecret is dlopen()ed at the first keyring lookup: when the library is not installed the
 * lookup is UNAVAILABLE with a reason naming it, and a later lookup tries again (here with
 * the real name, which then loads it, in keyring mode). Runs first: the test hook changes
 * the name only while libsecret is not loaded yet. */
static void
keyring_library_missing_is_named(void **state)
{
    struct load_result r;

    (void)state;
    assert_true(np_cred_set_keyring_soname("libsecret-np-missing.so.0"));
    load(&r, "keyring://np-service/np-account", NULL, NULL);
    assert_int_equal(r.st, NP_CRED_UNAVAILABLE);
#ifdef NONOPROXY_HAVE_LIBSECRET
    assert_non_null(strstr(r.detail, "keyring unavailable: libsecret-np-missing.so.0 not found"));
#else
    assert_non_null(strstr(r.detail, "built without keyring support"));
#endif
    assert_true(np_cred_set_keyring_soname(NULL));
}

/* Without a reachable D-Bus session the keyring is UNAVAILABLE with the D-Bus error (or the
 * build's lack of support) in the detail. Runs outside keyring_session.sh only. */
static void
keyring_without_session_unavailable(void **state)
{
    char *saved = NULL;
    const char *old = get_env("DBUS_SESSION_BUS_ADDRESS");
    struct load_result r;

    (void)state;
    if (keyring_mode()[0] != '\0') {
        skip();
    }
    if (old != NULL) {
        saved = np_strdup(old);
        assert_non_null(saved);
    }
    set_env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/np-bus");
    load(&r, "keyring://np-service/np-account", NULL, NULL);
    assert_int_equal(r.st, NP_CRED_UNAVAILABLE);
#ifdef NONOPROXY_HAVE_LIBSECRET
    assert_non_null(strstr(r.detail, "keyring unavailable: "));
#else
    assert_non_null(strstr(r.detail, "built without keyring support"));
#endif
    if (saved != NULL) {
        set_env("DBUS_SESSION_BUS_ADDRESS", saved);
    } else {
        unset_env("DBUS_SESSION_BUS_ADDRESS");
    }
    np_free(saved);
}

struct keyring_row {
    const char *rule;
    const char *key;
    enum np_cred_status st;
    const char *expect; /* loaded secret, or a substring of the detail */
};

static const struct keyring_row KEYRING_ROWS[] = {
    {"bare_name_uses_service_nono", "np-test-key", NP_CRED_LOADED, KEYRING_BARE_SECRET},
    {"service_and_account", "keyring://np-service/np-account", NP_CRED_LOADED,
     KEYRING_SERVICE_SECRET},
    {"absent_account_not_found", "keyring://np-service/np-absent", NP_CRED_NOT_FOUND,
     "no keyring entry with service 'np-service' username 'np-absent'"},
    {"absent_bare_name_not_found", "np-absent-key", NP_CRED_NOT_FOUND,
     "no keyring entry with service 'nono' username 'np-absent-key'"},
    {"bare_name_is_not_other_service", "np-account", NP_CRED_NOT_FOUND, "service 'nono'"},
    {"service_must_match", "keyring://nono/np-account", NP_CRED_NOT_FOUND, "no keyring entry"},
};

/* A keyring load run on its own thread (no cmocka assert there). */
struct kr_job {
    enum np_cred_status st;
    char *secret;
    size_t len;
    char detail[256];
};

static void *
kr_job_main(void *arg)
{
    struct kr_job *j = arg;
    const struct np_cred_request q = {"keyring://np-service/np-account", NULL, NULL};

    j->st = np_cred_load(&q, &j->secret, &j->len, j->detail, sizeof(j->detail));
    return NULL;
}

/* The first keyring lookup of the process (dlopen of libsecret, GLib's type setup, the D-Bus
 * session, the search) on a thread of exactly NP_THREAD_STACK, painted: it runs on the thread
 * calling nonoproxy_start, not on a worker, but it fits a worker's stack with half of it to
 * spare. Runs before keyring_lookup_rows, so this is the first load. */
static void
keyring_lookup_fits_thread_stack(void **state)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    struct kr_job j = {NP_CRED_UNAVAILABLE, NULL, 0, ""};
    pthread_attr_t attr;
    pthread_t t;
    unsigned char *stack;
    size_t i = 0;

    (void)state;
    if (strcmp(keyring_mode(), "1") != 0) {
        skip();
    }
#ifdef NP_SANITIZED_STACK
    skip(); /* sanitizer frames and stacks are not the release ones */
#endif
    stack = mmap(NULL, page + NP_THREAD_STACK, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    assert_true(stack != MAP_FAILED);
    assert_int_equal(mprotect(stack, page, PROT_NONE), 0);
    memset(stack + page, 0xA5, NP_THREAD_STACK);
    assert_int_equal(pthread_attr_init(&attr), 0);
    assert_int_equal(pthread_attr_setstack(&attr, stack + page, NP_THREAD_STACK), 0);
    assert_int_equal(pthread_create(&t, &attr, kr_job_main, &j), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    pthread_attr_destroy(&attr);
    while (i < NP_THREAD_STACK && stack[page + i] == 0xA5) {
        i++;
    }
    assert_int_equal(munmap(stack, page + NP_THREAD_STACK), 0);
    print_message("  keyring lookup: deepest stack use %zu of %zu bytes\n", NP_THREAD_STACK - i,
                  NP_THREAD_STACK);
    assert_int_equal(j.st, NP_CRED_LOADED);
    assert_string_equal(j.secret, KEYRING_SERVICE_SECRET);
    np_free_secret(j.secret);
    assert_true(NP_THREAD_STACK - i <= NP_THREAD_STACK / 2);
}

/* Against the entries keyring_session.sh stored in an unlocked collection. */
static void
keyring_lookup_rows(void **state)
{
    size_t i;

    (void)state;
    if (strcmp(keyring_mode(), "1") != 0) {
        skip();
    }
    for (i = 0; i < NP_ARRAY_LEN(KEYRING_ROWS); i++) {
        const struct keyring_row *row = &KEYRING_ROWS[i];
        struct load_result r;

        print_message("  row %s\n", row->rule);
        load(&r, row->key, NULL, NULL);
        assert_int_equal(r.st, row->st);
        if (r.st == NP_CRED_LOADED) {
            assert_string_equal(r.secret, row->expect);
            np_free_secret(r.secret);
        } else {
            assert_non_null(strstr(r.detail, row->expect));
            assert_null(strstr(r.detail, "np-keyring-secret"));
        }
    }
}

/* After keyring_session.sh locked the collection (and no prompter can unlock it), an existing
 * entry is UNAVAILABLE, not NOT_FOUND, and an absent one is still NOT_FOUND. */
static void
keyring_locked_unavailable(void **state)
{
    struct load_result r;

    (void)state;
    if (strcmp(keyring_mode(), "locked") != 0) {
        skip();
    }
    load(&r, "keyring://np-service/np-account", NULL, NULL);
    print_message("  detail: %s\n", r.detail);
    assert_int_equal(r.st, NP_CRED_UNAVAILABLE);
    assert_non_null(strstr(r.detail, "locked"));
    assert_null(strstr(r.detail, "np-keyring-secret"));
    load(&r, "np-test-key", NULL, NULL);
    print_message("  detail: %s\n", r.detail);
    assert_int_equal(r.st, NP_CRED_UNAVAILABLE);
    assert_non_null(strstr(r.detail, "locked"));
    load(&r, "keyring://np-service/np-absent", NULL, NULL);
    print_message("  detail: %s\n", r.detail);
    assert_int_equal(r.st, NP_CRED_NOT_FOUND);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ref_check_rows),
        cmocka_unit_test(ref_check_null_and_small_buffers),
        cmocka_unit_test(ref_body_rows),
        cmocka_unit_test(load_env_rows),
        cmocka_unit_test(load_env_length_cap),
        cmocka_unit_test(load_file_rows),
        cmocka_unit_test(load_file_length_cap),
        cmocka_unit_test(load_file_kinds),
        cmocka_unit_test(load_file_permission_denied),
        cmocka_unit_test(load_callback_rows),
        cmocka_unit_test(load_refuses_bad_reference),
        cmocka_unit_test(load_callback_serves_keyring_names),
        cmocka_unit_test(keyring_library_missing_is_named),
        cmocka_unit_test(keyring_without_session_unavailable),
        cmocka_unit_test(keyring_lookup_fits_thread_stack),
        cmocka_unit_test(keyring_lookup_rows),
        cmocka_unit_test(keyring_locked_unavailable),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
