/* Session token and proxy authentication (SPEC §2), L1.
 *
 * Secrets pass through every function here: nothing is logged, decoded credentials live in a
 * stack buffer that is wiped before return, and every comparison with the token goes through
 * np_ct_equal. The hex and base64 codecs map characters arithmetically (no table indexed by
 * a secret byte). */
#include "token.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>

#include "alloc.h"

#define TOKEN_RAW_LEN 32

/* Return all-ones when a == b, else 0, without a branch (a, b < 2^31). */
static unsigned
ct_eq_mask(unsigned a, unsigned b)
{
    unsigned d = a ^ b;

    /* d - 1 has the top bit set only when d == 0 (d < 2^31). */
    return 0u - ((d - 1u) >> 31);
}

/* Return all-ones when lo <= c <= hi, else 0, without a branch (all < 2^31). */
static unsigned
ct_range_mask(unsigned c, unsigned lo, unsigned hi)
{
    unsigned below = (c - lo) >> 31; /* 1 when c < lo */
    unsigned above = (hi - c) >> 31; /* 1 when c > hi */

    return (below | above) - 1u;
}

/* Map a nibble 0..15 to its lowercase hex digit without a table lookup. */
static char
hex_digit(unsigned n)
{
    unsigned letter = 0u - ((9u - n) >> 31); /* all-ones when n > 9 */

    return (char)(n + '0' + (letter & ('a' - '0' - 10)));
}

/* Map a 6-bit value to its base64 character without a table lookup: start from 'A' + v and
 * shift by the distance of the range v falls in (the masks are mutually exclusive). */
static char
b64_char(unsigned v)
{
    unsigned c = v + 'A';

    c += ct_range_mask(v, 26, 51) & 6u;  /* 'a' - 26 - 'A' */
    c -= ct_range_mask(v, 52, 61) & 69u; /* 'A' - ('0' - 52) */
    c -= ct_eq_mask(v, 62) & 84u;        /* 'A' + 62 - '+' */
    c -= ct_eq_mask(v, 63) & 81u;        /* 'A' + 63 - '/' */
    return (char)(c & 0xffu);
}

/* Decode one base64 character to 0..63; sets *bad to 1 when c is outside the alphabet. The
 * work done does not depend on c. */
static unsigned
b64_value(unsigned char ch, unsigned *bad)
{
    unsigned c = ch;
    unsigned m;
    unsigned val = 0;
    unsigned valid = 0;

    m = ct_range_mask(c, 'A', 'Z');
    val |= m & (c - 'A');
    valid |= m;
    m = ct_range_mask(c, 'a', 'z');
    val |= m & (c - 'a' + 26u);
    valid |= m;
    m = ct_range_mask(c, '0', '9');
    val |= m & (c - '0' + 52u);
    valid |= m;
    m = ct_eq_mask(c, '+');
    val |= m & 62u;
    valid |= m;
    m = ct_eq_mask(c, '/');
    val |= m & 63u;
    valid |= m;
    *bad |= ~valid & 1u;
    return val & 0x3fu;
}

/* Fill raw[0..len) from getrandom(2), retrying on EINTR and short reads. Returns 0 or -1. */
static int
fill_random(unsigned char *raw, size_t len)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = getrandom(raw + got, len - got, 0);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        got += (size_t)n;
    }
    return 0;
}

/* Draw 32 bytes from getrandom(2) and write them as 64 lowercase hex digits. */
int
np_token_generate(char out[NP_TOKEN_HEX_LEN + 1])
{
    unsigned char raw[TOKEN_RAW_LEN];
    int rc = -1;
    size_t i;

    out[0] = '\0';
    if (fill_random(raw, sizeof(raw)) != 0) {
        goto out;
    }
    for (i = 0; i < sizeof(raw); i++) {
        out[2 * i] = hex_digit(raw[i] >> 4);
        out[2 * i + 1] = hex_digit(raw[i] & 0x0fu);
    }
    out[NP_TOKEN_HEX_LEN] = '\0';
    rc = 0;
out:
    np_secure_zero(raw, sizeof(raw));
    return rc;
}

/* Compare two byte strings; equal lengths take the same time whatever the bytes. */
bool
np_ct_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    const unsigned char *pa = a;
    const unsigned char *pb = b;
    volatile unsigned char acc = 0;
    size_t i;

    if (alen != blen) {
        return false; /* lengths are not secret */
    }
    for (i = 0; i < alen; i++) {
        acc = (unsigned char)(acc | (pa[i] ^ pb[i]));
    }
    return acc == 0;
}

/* Encode in[0..len) as padded standard base64; 0 when out cannot hold it. */
size_t
np_base64_encode(const void *in, size_t len, char *out, size_t cap)
{
    const unsigned char *p = in;
    size_t outlen;
    size_t i = 0;
    size_t o = 0;

    if (len > (SIZE_MAX / 4 - 1) * 3) {
        return 0;
    }
    outlen = (len + 2) / 3 * 4;
    if (cap < outlen) {
        return 0;
    }
    for (i = 0; len - i >= 3; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        out[o++] = b64_char(v >> 18);
        out[o++] = b64_char((v >> 12) & 0x3fu);
        out[o++] = b64_char((v >> 6) & 0x3fu);
        out[o++] = b64_char(v & 0x3fu);
    }
    if (len - i == 1) {
        unsigned v = (unsigned)p[i] << 16;
        out[o++] = b64_char(v >> 18);
        out[o++] = b64_char((v >> 12) & 0x3fu);
        out[o++] = '=';
        out[o++] = '=';
    } else if (len - i == 2) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
        out[o++] = b64_char(v >> 18);
        out[o++] = b64_char((v >> 12) & 0x3fu);
        out[o++] = b64_char((v >> 6) & 0x3fu);
        out[o++] = '=';
    }
    if (cap > outlen) {
        out[outlen] = '\0';
    }
    return outlen;
}

/* Count the '=' padding at the end of in[0..len) (len a non-zero multiple of 4): 0, 1 or 2, or
 * -1 when padding is malformed (three '=', or a '=' followed by a non-'='). */
static int
b64_padding(const char *in, size_t len)
{
    int pad = 0;

    if (in[len - 1] == '=') {
        pad = (in[len - 2] == '=') ? 2 : 1;
        if (pad == 2 && in[len - 3] == '=') {
            return -1;
        }
    } else if (in[len - 2] == '=') {
        return -1;
    }
    return pad;
}

/* Decode canonical padded base64 (no whitespace, zero unused bits); failure wipes out. */
int
np_base64_decode(const char *in, size_t len, void *out, size_t cap, size_t *outlen)
{
    unsigned char *o = out;
    unsigned bad = 0;
    size_t need;
    size_t full; /* input characters outside the padded last quantum */
    size_t i;
    size_t w = 0;
    int pad;

    if (len % 4 != 0) {
        return -1;
    }
    if (len == 0) {
        *outlen = 0;
        return 0;
    }
    pad = b64_padding(in, len);
    if (pad < 0) {
        return -1;
    }
    need = len / 4 * 3 - (size_t)pad;
    if (need > cap) {
        return -1;
    }
    full = (pad == 0) ? len : len - 4;
    for (i = 0; i < full; i += 4) {
        unsigned v = b64_value((unsigned char)in[i], &bad) << 18 |
                     b64_value((unsigned char)in[i + 1], &bad) << 12 |
                     b64_value((unsigned char)in[i + 2], &bad) << 6 |
                     b64_value((unsigned char)in[i + 3], &bad);
        o[w++] = (unsigned char)(v >> 16);
        o[w++] = (unsigned char)(v >> 8);
        o[w++] = (unsigned char)v;
    }
    if (pad > 0) {
        unsigned v = b64_value((unsigned char)in[i], &bad) << 18 |
                     b64_value((unsigned char)in[i + 1], &bad) << 12;
        if (pad == 1) {
            v |= b64_value((unsigned char)in[i + 2], &bad) << 6;
        }
        /* Canonical form: the bits below the last output byte must be zero. */
        bad |= ((pad == 2 ? (v & 0xffffu) : (v & 0xffu)) != 0) ? 1u : 0u;
        o[w++] = (unsigned char)(v >> 16);
        if (pad == 1) {
            o[w++] = (unsigned char)(v >> 8);
        }
    }
    if (bad != 0) {
        np_secure_zero(out, w);
        return -1;
    }
    *outlen = w;
    return 0;
}

bool
np_token_scheme_value(const char *v, size_t len, const char *scheme, const char **cred,
                      size_t *cred_len)
{
    struct np_slice s = {v, len};
    size_t k = 0;
    size_t c;

    np_http_trim_ows(&s.p, &s.len);
    while (k < s.len && !np_http_is_ows(s.p[k])) {
        k++;
    }
    c = k;
    while (c < s.len && np_http_is_ows(s.p[c])) {
        c++;
    }
    if (c == s.len || c == k || !np_http_ieq(s.p, k, scheme)) {
        return false; /* no credentials, or another scheme */
    }
    *cred = s.p + c;
    *cred_len = s.len - c;
    return true;
}

bool
np_token_basic_ok(const char *b64, size_t len, const char *token, size_t token_len)
{
    unsigned char decoded[NP_TOKEN_BASIC_MAX];
    size_t n = 0;
    const unsigned char *colon;
    bool ok = false;

    if (token_len == 0 || np_base64_decode(b64, len, decoded, sizeof(decoded), &n) != 0) {
        goto out;
    }
    colon = memchr(decoded, ':', n);
    if (colon == NULL) {
        goto out;
    }
    colon++;
    ok = np_ct_equal(colon, n - (size_t)(colon - decoded), token, token_len);
out:
    np_secure_zero(decoded, sizeof(decoded));
    return ok;
}

/* Check one Proxy-Authorization value: Bearer <token> or Basic base64(<user>:<token>). */
static bool
value_matches(const char *v, size_t len, const char *token, size_t token_len)
{
    const char *cred = NULL;
    size_t cred_len = 0;

    if (np_token_scheme_value(v, len, "bearer", &cred, &cred_len)) {
        return np_ct_equal(cred, cred_len, token, token_len);
    }
    return np_token_scheme_value(v, len, "basic", &cred, &cred_len) &&
           np_token_basic_ok(cred, cred_len, token, token_len);
}

/* Check every Proxy-Authorization header of req: all must carry the token (SPEC §2). */
enum np_auth
np_token_check_proxy_auth(const struct np_http_req *req, const char *token)
{
    enum np_auth res = NP_AUTH_MISSING;
    size_t token_len = (token != NULL) ? strlen(token) : 0;
    size_t i;

    for (i = 0; i < req->n_headers && i < NP_ARRAY_LEN(req->headers); i++) {
        const struct np_header *h = &req->headers[i];
        if (!np_http_ieq(h->name, h->name_len, "proxy-authorization")) {
            continue;
        }
        /* An empty token would match empty credentials: never accept it. */
        if (token_len == 0 || !value_matches(h->value, h->value_len, token, token_len)) {
            res = NP_AUTH_INVALID; /* one bad header spoils them all */
        } else if (res == NP_AUTH_MISSING) {
            res = NP_AUTH_OK;
        }
    }
    return res;
}

/* c with A-Z folded to a-z, without branches on the value. */
static unsigned char
ascii_lower(unsigned char c)
{
    unsigned char upper = (unsigned char)((unsigned char)(c - 'A') < 26u);
    return (unsigned char)(c | (upper << 5));
}

bool
np_token_match_encoded(const char *text, size_t len, const char *secret, size_t n, size_t *used)
{
    volatile unsigned char acc = 0;
    size_t at = 0;
    size_t k;

    for (k = 0; k < n; k++) {
        unsigned char c;
        if (at >= len) {
            return false;
        }
        c = (unsigned char)text[at];
        if (c == '%' && at + 2 < len && np_hex_value(text[at + 1]) >= 0 &&
            np_hex_value(text[at + 2]) >= 0) {
            c = (unsigned char)(np_hex_value(text[at + 1]) * 16 + np_hex_value(text[at + 2]));
            at += 3;
        } else {
            at++;
        }
        /* ASCII case folded: the token is hex, and "ABC" names the same value as "abc". */
        acc = (unsigned char)(acc | (ascii_lower(c) ^ ascii_lower((unsigned char)secret[k])));
    }
    *used = at;
    return acc == 0;
}

bool
np_token_find_encoded(const char *text, size_t len, const char *secret, size_t n)
{
    size_t used;
    size_t i;

    for (i = 0; n > 0 && i < len; i++) {
        /* Only a position that starts like the secret (or with an escape) can match: skip the
         * rest cheaply, so a long path costs a scan, not a scan per position. */
        if (ascii_lower((unsigned char)text[i]) != ascii_lower((unsigned char)secret[0]) &&
            text[i] != '%') {
            continue;
        }
        if (np_token_match_encoded(text + i, len - i, secret, n, &used)) {
            return true;
        }
    }
    return false;
}

/* Longest spelling of one secret byte that np_token_match_encoded reads: "%XX". */
#define SPELL_MAX_PER_BYTE 3
/* Decoded bytes searched at once by basic_holds; a window keeps the last spelling-length - 1
 * bytes of the one before, so that no spelling of the secret can straddle two windows. */
#define B64_WINDOW         1024

/* How basic_holds reads the base64 alphabet. Decoders disagree about '+', '/', '-' and '_':
 * strict ones take one alphabet, lenient ones (Python's b64decode, Perl's MIME::Base64,
 * Java's MIME decoder) skip whatever is not in theirs, which shifts the bits of everything
 * after it. Every reading an upstream may apply is tried. */
enum b64_reading {
    B64_BOTH = 0, /* '+' and '-' are 62, '/' and '_' are 63 */
    B64_STANDARD, /* '+' '/' are digits, '-' '_' are skipped */
    B64_URLSAFE,  /* '-' '_' are digits, '+' '/' are skipped */
};

/* Value 0..63 of a base64 character in the given reading, or -1 for a byte to skip. Not
 * constant-time: the decoded text is the client's own. */
static int
b64_any_value(char ch, enum b64_reading how)
{
    if (ch >= 'A' && ch <= 'Z') {
        return ch - 'A';
    }
    if (ch >= 'a' && ch <= 'z') {
        return ch - 'a' + 26;
    }
    if (ch >= '0' && ch <= '9') {
        return ch - '0' + 52;
    }
    if ((ch == '+' && how != B64_URLSAFE) || (ch == '-' && how != B64_STANDARD)) {
        return 62;
    }
    if ((ch == '/' && how != B64_URLSAFE) || (ch == '_' && how != B64_STANDARD)) {
        return 63;
    }
    return -1;
}

/* Whether the secret, in any spelling np_token_find_encoded knows, occurs in the base64
 * decoding of b64[0..len) read as how says (padding and every skipped byte ignored). The
 * decoded text is searched window by window, so any length is covered with a fixed buffer,
 * which is wiped before return. */
static bool
b64_holds(const char *b64, size_t len, const char *secret, size_t n, enum b64_reading how)
{
    unsigned char win[B64_WINDOW];
    size_t keep = n * SPELL_MAX_PER_BYTE - 1; /* < B64_WINDOW - 3 for n <= 64 */
    size_t have = 0;
    unsigned acc = 0;
    unsigned bits = 0;
    bool found = false;
    size_t i;

    if (n == 0 || keep >= B64_WINDOW / 2) {
        return false;
    }
    for (i = 0; i < len && !found; i++) {
        int v = b64_any_value(b64[i], how);

        if (v < 0) {
            continue;
        }
        acc = ((acc << 6) | (unsigned)v) & 0xffffu;
        bits += 6;
        if (bits < 8) {
            continue;
        }
        bits -= 8;
        win[have++] = (unsigned char)(acc >> bits);
        if (have == sizeof(win)) {
            found = np_token_find_encoded((const char *)win, have, secret, n);
            memmove(win, win + have - keep, keep);
            have = keep;
        }
    }
    if (!found) {
        found = np_token_find_encoded((const char *)win, have, secret, n);
    }
    np_secure_zero(win, sizeof(win));
    np_secure_zero(&acc, sizeof(acc)); /* it held the last decoded bits */
    return found;
}

/* Whether the secret hides in the base64 credentials of a Basic value, in any reading. */
static bool
basic_holds(const char *b64, size_t len, const char *secret, size_t n)
{
    return b64_holds(b64, len, secret, n, B64_BOTH) ||
           (memchr(b64, '-', len) != NULL || memchr(b64, '_', len) != NULL
                ? b64_holds(b64, len, secret, n, B64_STANDARD)
                : false) ||
           (memchr(b64, '+', len) != NULL || memchr(b64, '/', len) != NULL
                ? b64_holds(b64, len, secret, n, B64_URLSAFE)
                : false);
}

bool
np_token_in_value(const char *v, size_t len, const char *secret, size_t n)
{
    const char *cred = NULL;
    size_t cred_len = 0;

    if (n == 0) {
        return false;
    }
    if (np_token_find_encoded(v, len, secret, n)) {
        return true;
    }
    return np_token_scheme_value(v, len, "basic", &cred, &cred_len) &&
           basic_holds(cred, cred_len, secret, n);
}

bool
np_token_in_header(const struct np_header *h, const char *secret, size_t n)
{
    return np_token_find_encoded(h->name, h->name_len, secret, n) ||
           np_token_in_value(h->value, h->value_len, secret, n);
}
