/* Credential references (SPEC §1.1, §7): see credential_ref.h. */
#include "credential_ref.h"

#include <stdio.h>
#include <string.h>

#include "common.h"
#include "route_env.h"

#define REF_QUOTE_MAX 160 /* bytes of the reference quoted in a message */

static const char ENV_PREFIX[] = "env://";
static const char FILE_PREFIX[] = "file://";
static const char KEYRING_PREFIX[] = "keyring://";

#define PREFIX_LEN(p) (sizeof(p) - 1)

static bool
has_prefix(const char *s, const char *prefix, size_t prefix_len)
{
    return strncmp(s, prefix, prefix_len) == 0;
}

/* Whether every byte of s[0..len) is printable ASCII (space included). */
static bool
printable_ascii(const char *s, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c > 0x7e) {
            return false;
        }
    }
    return true;
}

void
np_cred_quote_reason(char *out, size_t cap, const char *key, const char *reason)
{
    char quoted[REF_QUOTE_MAX];

    if (out == NULL || cap == 0) {
        return;
    }
    np_copy_printable(quoted, sizeof(quoted), key, strlen(key));
    (void)snprintf(out, cap, "'%s': %s", quoted, reason);
}

/* Return the reason an env:// variable name is refused, or NULL when it is acceptable. */
static const char *
check_env_name(const char *name)
{
    size_t len = strlen(name);
    size_t i;

    if (len == 0) {
        return "environment variable name is empty";
    }
    for (i = 0; i < len; i++) {
        char c = name[i];
        bool ok =
            (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
        if (!ok) {
            return "environment variable name must match [A-Za-z0-9_]+";
        }
    }
    if (np_route_env_name_refused(name, len)) {
        return "environment variable name is refused (it can inject code into programs)";
    }
    return NULL;
}

/* Return the reason a file:// path is refused, or NULL when it is acceptable. */
static const char *
check_file_path(const char *path)
{
    if (path[0] != '/') {
        return "file path must be absolute (file:///path)";
    }
    if (strstr(path, "..") != NULL) {
        return "file path must not contain '..'";
    }
    if (strpbrk(path, "\r\n;`|$&><") != NULL) {
        return "file path contains a refused character (CR LF ; ` | $ & > <)";
    }
    return NULL;
}

/* Return the reason "service/account" is refused, or NULL when it is acceptable. */
static const char *
check_keyring_pair(const char *rest)
{
    const char *slash = strchr(rest, '/');

    if (slash == NULL) {
        return "keyring reference must be keyring://service/account";
    }
    if (slash == rest) {
        return "keyring service is empty (keyring://service/account)";
    }
    if (slash[1] == '\0') {
        return "keyring account is empty (keyring://service/account)";
    }
    if (!printable_ascii(rest, strlen(rest))) {
        return "keyring service and account must be printable ASCII";
    }
    return NULL;
}

/* Return the reason a bare keyring name is refused, or NULL when it is acceptable. */
static const char *
check_bare_name(const char *name)
{
    if (strchr(name, '/') != NULL) {
        return "a bare keyring name must not contain '/' (use keyring://service/account)";
    }
    if (!printable_ascii(name, strlen(name))) {
        return "a bare keyring name must be printable ASCII";
    }
    return NULL;
}

/* Check the syntax of key; see credential.h. Dispatch is by exact, case-sensitive prefix as
 * in the reference: "ENV://X" is an unsupported scheme, not an environment reference. */
int
np_cred_ref_check(const char *key, enum np_cred_scheme *scheme, char *why, size_t why_cap)
{
    enum np_cred_scheme s = NP_CRED_KEYRING;
    const char *reason = NULL;

    if (why != NULL && why_cap > 0) {
        why[0] = '\0';
    }
    if (key == NULL || key[0] == '\0') {
        np_cred_quote_reason(why, why_cap, "", "credential reference is empty");
        return -1;
    }
    if (has_prefix(key, ENV_PREFIX, PREFIX_LEN(ENV_PREFIX))) {
        s = NP_CRED_ENV;
        reason = check_env_name(key + PREFIX_LEN(ENV_PREFIX));
    } else if (has_prefix(key, FILE_PREFIX, PREFIX_LEN(FILE_PREFIX))) {
        s = NP_CRED_FILE;
        reason = check_file_path(key + PREFIX_LEN(FILE_PREFIX));
    } else if (has_prefix(key, KEYRING_PREFIX, PREFIX_LEN(KEYRING_PREFIX))) {
        reason = check_keyring_pair(key + PREFIX_LEN(KEYRING_PREFIX));
    } else if (strstr(key, "://") != NULL) {
        reason = "unsupported credential scheme (supported: env://, file://, keyring://, "
                 "or a bare keyring name)";
    } else {
        reason = check_bare_name(key);
    }
    if (reason != NULL) {
        np_cred_quote_reason(why, why_cap, key, reason);
        return -1;
    }
    if (scheme != NULL) {
        *scheme = s;
    }
    return 0;
}

bool
np_cred_ref_is_custom(const char *key)
{
    const char *sep = key != NULL ? strstr(key, "://") : NULL;
    const char *c;

    if (sep == NULL || sep == key || !(key[0] >= 'a' && key[0] <= 'z') ||
        has_prefix(key, ENV_PREFIX, PREFIX_LEN(ENV_PREFIX)) ||
        has_prefix(key, FILE_PREFIX, PREFIX_LEN(FILE_PREFIX)) ||
        has_prefix(key, KEYRING_PREFIX, PREFIX_LEN(KEYRING_PREFIX))) {
        return false;
    }
    for (c = key; c < sep; c++) {
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '+' || *c == '.' ||
              *c == '-')) {
            return false;
        }
    }
    return printable_ascii(key, strlen(key));
}

const char *
np_cred_ref_body(const char *key, enum np_cred_scheme scheme)
{
    switch (scheme) {
    case NP_CRED_ENV:
        return has_prefix(key, ENV_PREFIX, PREFIX_LEN(ENV_PREFIX)) ? key + PREFIX_LEN(ENV_PREFIX)
                                                                   : key;
    case NP_CRED_FILE:
        return has_prefix(key, FILE_PREFIX, PREFIX_LEN(FILE_PREFIX)) ? key + PREFIX_LEN(FILE_PREFIX)
                                                                     : key;
    case NP_CRED_KEYRING:
        return has_prefix(key, KEYRING_PREFIX, PREFIX_LEN(KEYRING_PREFIX))
                   ? key + PREFIX_LEN(KEYRING_PREFIX)
                   : key;
    }
    return key;
}
