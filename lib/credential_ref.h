/* Credential references (SPEC §1.1, §7), L1: the syntax of a route's credential_key, checked
 * at start, before anything is loaded. References are not secret: messages quote them. */
#ifndef NP_CREDENTIAL_REF_H
#define NP_CREDENTIAL_REF_H

#include <stdbool.h>
#include <stddef.h>

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

/* The part of key after its scheme's prefix: the variable name (NP_CRED_ENV), the path
 * (NP_CRED_FILE), "service/account" (NP_CRED_KEYRING); key itself when it does not start with
 * that prefix (a bare keyring name). */
const char *np_cred_ref_body(const char *key, enum np_cred_scheme scheme);

/* Write "'<key>': <reason>" to out (cap may be 0; out may then be NULL), the reference quoted
 * printable and truncated. */
void np_cred_quote_reason(char *out, size_t cap, const char *key, const char *reason);

#endif /* NP_CREDENTIAL_REF_H */
