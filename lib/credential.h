/* Credential sources (SPEC §7), L2: the embedder's resolver callback first, then env://VAR,
 * file:///abs/path, keyring://service/account and a bare name (keyring service "nono",
 * account = name) through libsecret (Secret Service; attributes "service" and "username",
 * as `secret-tool store service nono username <name>` writes them). Loaded once, at start,
 * on the thread calling nonoproxy_start(). Nothing here logs or formats a secret. */
#ifndef NP_CREDENTIAL_H
#define NP_CREDENTIAL_H

#include <stdbool.h>
#include <stddef.h>

#include <nonoproxy/config.h>

enum np_cred_scheme {
    NP_CRED_ENV = 0, /* env://VAR */
    NP_CRED_FILE,    /* file:///absolute/path */
    NP_CRED_KEYRING, /* keyring://service/account, or a bare name (service "nono") */
};

/* Check the syntax of key (SPEC §1.1): env:// with a name [A-Za-z0-9_]+ that is not refused
 * (np_route_env_name_refused); file:// with an absolute path, no "..", no NUL CR LF ; ` | $ &
 * > <; keyring://service/account with both parts non-empty and printable; a bare name of
 * printable characters without "://" and without '/'. Any other scheme ("op://", "bw://",
 * ...) is unsupported. Returns 0 (with *scheme, may be NULL) or -1 with a one-line reason in
 * why that quotes the reference (references are not secret). */
int np_cred_ref_check(const char *key, enum np_cred_scheme *scheme, char *why, size_t why_cap);

/* Whether key is "<scheme>://..." with a scheme ([a-z][a-z0-9+.-]*) other than env, file and
 * keyring. Such a reference is refused at start unless the embedder installed a credential
 * callback: then only the callback is asked for it (it may implement op://, vault://, ...). */
bool np_cred_ref_is_custom(const char *key);

/* For env:// references, the variable's name (points into key) and its length; else NULL. */
const char *np_cred_env_name(const char *key, size_t *len);

enum np_cred_status {
    NP_CRED_LOADED = 0,
    NP_CRED_NOT_FOUND,   /* unset/empty variable, missing/empty file, no keyring entry */
    NP_CRED_UNAVAILABLE, /* keyring unreachable or locked, unreadable file, bad content */
};

/* Load the secret for key (already checked by np_cred_ref_check): ask cb first (may be NULL;
 * PASS falls through to the built-in sources). A file's one trailing "\n" or "\r\n" is
 * stripped. A secret that is empty, longer than NONOPROXY_SECRET_MAX or holds a control character (tab
 * excepted)
 * is refused (UNAVAILABLE): it could split an upstream header. A custom-scheme reference
 * (np_cred_ref_is_custom) is asked of cb only; PASS or no cb ⇒ UNAVAILABLE. On LOADED *secret is a
 * NUL-terminated np_malloc'd copy (free with np_free_secret) and *len its length; every
 * intermediate buffer is wiped. On other results detail holds one line for the diagnostic
 * (naming the reference, never a value). */
enum np_cred_status np_cred_load(const char *key, nonoproxy_credential_fn *cb, void *userdata,
                                 char **secret, size_t *len, char *detail, size_t detail_cap);

#endif /* NP_CREDENTIAL_H */
