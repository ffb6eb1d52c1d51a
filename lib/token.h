/* Session token and proxy authentication (SPEC §2), L1. */
#ifndef NP_TOKEN_H
#define NP_TOKEN_H

#include <stdbool.h>
#include <stddef.h>

#include "http_head.h"
#include "http_request.h"

#define NP_TOKEN_HEX_LEN 64

/* Fill out with 64 lowercase hex characters from 32 getrandom() bytes, NUL-terminated.
 * The raw bytes are wiped. Returns 0, or -1 when the OS generator fails. */
int np_token_generate(char out[NP_TOKEN_HEX_LEN + 1]);

/* Constant-time equality of a[0..alen) and b[0..blen) (the length comparison is not secret). */
bool np_ct_equal(const void *a, size_t alen, const void *b, size_t blen);

/* Standard base64 (RFC 4648, with padding). encode returns the output length (no NUL written
 * beyond it if cap is exact; NUL-terminated when room) or 0 when cap is too small. decode
 * accepts canonical padded input only and returns 0 with *outlen, or -1. */
size_t np_base64_encode(const void *in, size_t len, char *out, size_t cap);
int np_base64_decode(const char *in, size_t len, void *out, size_t cap, size_t *outlen);

/* Largest decoded Basic credential (user:token) that np_token_basic_ok validates, for proxy
 * authentication and basic_auth phantoms alike; longer ⇒ invalid. (The detector,
 * np_token_in_value, has no limit below the header cap.) */
#define NP_TOKEN_BASIC_MAX 2048

/* Whether v[0..len) is "<scheme> 1*(SP/HTAB) <credentials>" (scheme any case, whitespace
 * around ignored); *cred, *cred_len receive the credentials. */
bool np_token_scheme_value(const char *v, size_t len, const char *scheme, const char **cred,
                           size_t *cred_len);

/* Whether b64[0..len) is canonical base64 of "<any user>:<token>", at most NP_TOKEN_BASIC_MAX
 * decoded bytes; constant-time compare, decoded bytes wiped. */
bool np_token_basic_ok(const char *b64, size_t len, const char *token, size_t token_len);

enum np_auth {
    NP_AUTH_MISSING = 0, /* no Proxy-Authorization header */
    NP_AUTH_INVALID,     /* present but wrong or malformed */
    NP_AUTH_OK,
};

/* Check the Proxy-Authorization headers of req against token (SPEC §2): `Basic
 * base64(<any user>:<token>)` or `Bearer <token>`; name and scheme case-insensitive; any
 * whitespace after the colon and between scheme and credentials. Constant-time compare.
 * Every Proxy-Authorization header present must be valid. Decoded bytes are wiped. */
enum np_auth np_token_check_proxy_auth(const struct np_http_req *req, const char *token);

/* Whether text[0..len) starts with secret[0..n) spelt with any mix of literal bytes and
 * percent-escapes ("%63" for 'c'), ASCII case folded (the token is hex: "AB" and "ab" are the
 * same value to a careless upstream); *used receives the raw length matched. Every byte of the
 * secret is examined whatever the outcome. */
bool np_token_match_encoded(const char *text, size_t len, const char *secret, size_t n,
                            size_t *used);

/* Whether secret (n > 0 bytes) occurs anywhere in text[0..len) in any such spelling. */
bool np_token_find_encoded(const char *text, size_t len, const char *secret, size_t n);

/* The one token detector for header values (SPEC §1.2): whether secret occurs in v[0..len)
 * in any spelling np_token_find_encoded knows, or, when the value is "Basic <credentials>"
 * (scheme in any case), anywhere in the base64 decoding of the credentials, whatever their
 * length, in every reading an upstream's decoder may apply (both alphabets at once, or one
 * alphabet with the other one's '+' '/' or '-' '_' skipped; padding optional, every other
 * byte skipped). */
bool np_token_in_value(const char *v, size_t len, const char *secret, size_t n);

/* Whether the header h carries secret: in its name (np_token_find_encoded) or its value
 * (np_token_in_value). A header for which this is true never goes upstream. */
bool np_token_in_header(const struct np_header *h, const char *secret, size_t n);

#endif /* NP_TOKEN_H */
