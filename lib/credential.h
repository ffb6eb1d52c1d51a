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

#include "credential_ref.h"

enum np_cred_status {
    NP_CRED_LOADED = 0,
    NP_CRED_NOT_FOUND,   /* unset/empty variable, missing/empty file, no keyring entry */
    NP_CRED_UNAVAILABLE, /* keyring unreachable or locked, unreadable file, bad content */
    NP_CRED_NOMEM,       /* out of memory: a start error, not a route answering 503 */
};

/* What to load, and the embedder's resolver to ask first. */
struct np_cred_request {
    const char *key;             /* a credential reference (SPEC §7) */
    nonoproxy_credential_fn *cb; /* may be NULL */
    void *userdata;              /* cb's */
};

/* Load the secret for q->key (already checked by np_cred_ref_check): ask q->cb first (PASS
 * falls through to the built-in sources). A file's one trailing "\n" or "\r\n" is stripped.
 * A secret that is empty, longer than NONOPROXY_SECRET_MAX or holds a control character (tab
 * excepted) is refused (UNAVAILABLE): it could split an upstream header. A custom-scheme
 * reference (np_cred_ref_is_custom) is asked of cb only; PASS or no cb ⇒ UNAVAILABLE. On
 * LOADED *secret is a NUL-terminated np_malloc'd copy (free with np_free_secret) and *len its
 * length; every intermediate buffer is wiped. On other results detail holds one line for the
 * diagnostic (naming the reference, never a value). */
enum np_cred_status np_cred_load(const struct np_cred_request *q, char **secret, size_t *len,
                                 char *detail, size_t detail_cap);

/* Make the next keyring lookups dlopen soname instead of "libsecret-1.so.0" (NULL = that);
 * returns false when libsecret is already loaded, so the change has no effect. */
/* test hook */
bool np_cred_set_keyring_soname(const char *soname);

#endif /* NP_CREDENTIAL_H */
