/* Unit tests for lib/token.h: token generation, constant-time compare, base64, proxy auth. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "token.h"

#define TOKEN       "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
/* TOKEN with its last digit changed. */
#define OTHER_TOKEN "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdee"

/* ---- np_token_generate ----------------------------------------------------------------- */

static void
generate_is_64_lowercase_hex(void **state)
{
    char tok[NP_TOKEN_HEX_LEN + 1];
    size_t i;

    (void)state;
    memset(tok, 'X', sizeof(tok));
    assert_int_equal(np_token_generate(tok), 0);
    assert_int_equal(strlen(tok), NP_TOKEN_HEX_LEN);
    for (i = 0; i < NP_TOKEN_HEX_LEN; i++) {
        bool hex = (tok[i] >= '0' && tok[i] <= '9') || (tok[i] >= 'a' && tok[i] <= 'f');
        assert_true(hex);
    }
}

static void
generate_twice_differs(void **state)
{
    char a[NP_TOKEN_HEX_LEN + 1];
    char b[NP_TOKEN_HEX_LEN + 1];

    (void)state;
    assert_int_equal(np_token_generate(a), 0);
    assert_int_equal(np_token_generate(b), 0);
    assert_string_not_equal(a, b);
}

/* 200 tokens = 12800 digits: every one of the 16 digits must appear (a missing one would mean
 * the nibble-to-digit mapping is wrong; by chance, probability about 16 * (15/16)^12800). */
static void
generate_uses_every_hex_digit(void **state)
{
    char tok[NP_TOKEN_HEX_LEN + 1];
    bool seen[16] = {false};
    int n;
    size_t i;

    (void)state;
    for (n = 0; n < 200; n++) {
        assert_int_equal(np_token_generate(tok), 0);
        for (i = 0; i < NP_TOKEN_HEX_LEN; i++) {
            int d = (tok[i] <= '9') ? tok[i] - '0' : tok[i] - 'a' + 10;
            assert_in_range(d, 0, 15);
            seen[d] = true;
        }
    }
    for (i = 0; i < 16; i++) {
        assert_true(seen[i]);
    }
}

/* ---- np_ct_equal ----------------------------------------------------------------------- */

struct ct_row {
    const char *rule;
    const char *a;
    size_t alen;
    const char *b;
    size_t blen;
    bool expected;
};

static const struct ct_row CT_ROWS[] = {
    {"equal", "abc", 3, "abc", 3, true},
    {"both_empty", "", 0, "", 0, true},
    {"last_byte_differs", "abc", 3, "abd", 3, false},
    {"first_byte_differs", "xbc", 3, "abc", 3, false},
    {"prefix_is_not_equal", "abc", 3, "ab", 2, false},
    {"longer_is_not_equal", "ab", 2, "abc", 3, false},
    {"empty_vs_nonempty", "", 0, "a", 1, false},
    {"embedded_nul_equal", "a\0b", 3, "a\0b", 3, true},
    {"after_embedded_nul_differs", "a\0b", 3, "a\0c", 3, false},
    {"high_bit_differs", "\x80", 1, "\x00", 1, false},
    {"case_matters", "ABC", 3, "abc", 3, false},
    {"full_token", TOKEN, 64, TOKEN, 64, true},
};

static void
ct_equal_table(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(CT_ROWS) / sizeof(CT_ROWS[0]); i++) {
        const struct ct_row *r = &CT_ROWS[i];
        bool got = np_ct_equal(r->a, r->alen, r->b, r->blen);
        if (got != r->expected) {
            fail_msg("ct_equal row %s: got %d", r->rule, (int)got);
        }
    }
}

/* ---- base64 ---------------------------------------------------------------------------- */

struct b64_row {
    const char *plain;
    const char *encoded;
};

/* RFC 4648 §10 test vectors. */
static const struct b64_row RFC4648_ROWS[] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

static void
base64_rfc4648_vectors(void **state)
{
    char enc[32];
    unsigned char dec[32];
    size_t i;
    size_t n;

    (void)state;
    for (i = 0; i < sizeof(RFC4648_ROWS) / sizeof(RFC4648_ROWS[0]); i++) {
        const struct b64_row *r = &RFC4648_ROWS[i];
        size_t plen = strlen(r->plain);
        size_t elen = strlen(r->encoded);

        assert_int_equal(np_base64_encode(r->plain, plen, enc, sizeof(enc)), elen);
        assert_string_equal(enc, r->encoded);
        n = 999;
        assert_int_equal(np_base64_decode(r->encoded, elen, dec, sizeof(dec), &n), 0);
        assert_int_equal(n, plen);
        assert_memory_equal(dec, r->plain, plen);
    }
}

/* '+' and '/' (values 62 and 63) and the alphabet boundaries. */
static void
base64_alphabet_edges(void **state)
{
    static const unsigned char plus_slash[] = {0xfb, 0xff, 0xbf};
    static const unsigned char zeros[] = {0, 0, 0};
    char enc[8];
    unsigned char all[256];
    char big[400];
    unsigned char back[256];
    size_t n = 0;
    size_t i;

    (void)state;
    assert_int_equal(np_base64_encode(plus_slash, 3, enc, sizeof(enc)), 4);
    assert_string_equal(enc, "+/+/");
    assert_int_equal(np_base64_encode(zeros, 3, enc, sizeof(enc)), 4);
    assert_string_equal(enc, "AAAA");
    for (i = 0; i < sizeof(all); i++) {
        all[i] = (unsigned char)i;
    }
    assert_int_equal(np_base64_encode(all, sizeof(all), big, sizeof(big)), 344);
    assert_memory_equal(big, "AAECAwQFBgcICQoLDA0O", 20);
    assert_int_equal(np_base64_decode(big, 344, back, sizeof(back), &n), 0);
    assert_int_equal(n, sizeof(all));
    assert_memory_equal(back, all, sizeof(all));
}

/* Every length 0..100 round-trips, and the encoding uses only the alphabet. */
static void
base64_round_trip_all_lengths(void **state)
{
    unsigned char in[100];
    char enc[200];
    unsigned char out[100];
    size_t len;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(in); i++) {
        in[i] = (unsigned char)(i * 37u + 11u);
    }
    for (len = 0; len <= sizeof(in); len++) {
        size_t n = 999;
        size_t elen = np_base64_encode(in, len, enc, sizeof(enc));
        assert_int_equal(elen, (len + 2) / 3 * 4);
        assert_int_equal(strlen(enc), elen);
        assert_int_equal(np_base64_decode(enc, elen, out, sizeof(out), &n), 0);
        assert_int_equal(n, len);
        assert_memory_equal(out, in, len);
    }
}

static void
base64_encode_capacity(void **state)
{
    char out[8];

    (void)state;
    memset(out, '#', sizeof(out));
    assert_int_equal(np_base64_encode("foo", 3, out, 3), 0); /* too small */
    memset(out, '#', sizeof(out));
    assert_int_equal(np_base64_encode("foo", 3, out, 4), 4); /* exact: no NUL */
    assert_memory_equal(out, "Zm9v#", 5);
    assert_int_equal(np_base64_encode("foo", 3, out, 5), 4); /* room: NUL */
    assert_memory_equal(out, "Zm9v", 5);
}

/* Inputs decode must reject: not canonical, not padded, or outside the alphabet. */
static const char *const B64_REJECTS[] = {
    "Zg",        /* length not a multiple of 4 */
    "Zg=",       /* length not a multiple of 4 */
    "Zm9vY",     /* length not a multiple of 4 */
    "Zh==",      /* unused bits set (one byte) */
    "Zm9=",      /* unused bits set (two bytes) */
    "Z===",      /* three padding characters */
    "====",      /* only padding */
    "Zg=a",      /* data after padding */
    "Z=g=",      /* padding in the middle of a quantum */
    "Zg==Zg==",  /* padding before the last quantum */
    "Zm9v Zg==", /* whitespace */
    "Zm9v\n",    /* trailing newline */
    " Zm9",      /* leading space */
    "Zm9!",      /* outside the alphabet */
    "Zm9-",      /* base64url is not accepted */
    "Zm9_",      /* base64url is not accepted */
    "Zm\x80v",   /* high byte */
};

static void
base64_decode_rejects_noncanonical(void **state)
{
    unsigned char out[16];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(B64_REJECTS) / sizeof(B64_REJECTS[0]); i++) {
        size_t n = 12345;
        const char *in = B64_REJECTS[i];
        if (np_base64_decode(in, strlen(in), out, sizeof(out), &n) != -1) {
            fail_msg("decode accepted \"%s\"", in);
        }
        assert_int_equal(n, 12345); /* not written on failure */
    }
}

static void
base64_decode_capacity(void **state)
{
    unsigned char out[3];
    size_t n = 0;

    (void)state;
    assert_int_equal(np_base64_decode("Zm9v", 4, out, 2, &n), -1);
    assert_int_equal(np_base64_decode("Zm9v", 4, out, 3, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(np_base64_decode("Zm8=", 4, out, 2, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(np_base64_decode("Zm9vYg==", 8, out, 3, &n), -1);
}

/* ---- np_token_check_proxy_auth --------------------------------------------------------- */

#define MAX_ROW_HEADERS 3

struct auth_row {
    const char *rule;
    const char *names[MAX_ROW_HEADERS];
    const char *values[MAX_ROW_HEADERS];
    enum np_auth expected;
};

/* base64("user:" TOKEN) */
#define B64_USER_TOKEN                                                                             \
    "dXNlcjowMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVm"
/* base64(":" TOKEN) */
#define B64_EMPTY_USER                                                                             \
    "OjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

static const struct auth_row AUTH_ROWS[] = {
    {"basic_with_user", {"Proxy-Authorization"}, {"Basic " B64_USER_TOKEN}, NP_AUTH_OK},
    {"basic_with_empty_user", {"Proxy-Authorization"}, {"Basic " B64_EMPTY_USER}, NP_AUTH_OK},
    {"basic_user_may_be_anything",
     {"Proxy-Authorization"},
     /* base64("nono:" TOKEN), the user curl sends from HTTPS_PROXY */
     {"Basic "
      "bm9ubzowMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2Rl"
      "ZjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVm"},
     NP_AUTH_OK},
    {"bearer", {"Proxy-Authorization"}, {"Bearer " TOKEN}, NP_AUTH_OK},
    {"name_case_insensitive", {"PROXY-AUTHORIZATION"}, {"Bearer " TOKEN}, NP_AUTH_OK},
    {"name_lowercase", {"proxy-authorization"}, {"Basic " B64_USER_TOKEN}, NP_AUTH_OK},
    {"scheme_case_insensitive_basic",
     {"Proxy-Authorization"},
     {"bAsIc " B64_USER_TOKEN},
     NP_AUTH_OK},
    {"scheme_case_insensitive_bearer", {"Proxy-Authorization"}, {"BEARER " TOKEN}, NP_AUTH_OK},
    {"several_spaces_after_scheme",
     {"Proxy-Authorization"},
     {"Basic    " B64_USER_TOKEN},
     NP_AUTH_OK},
    {"tabs_after_scheme", {"Proxy-Authorization"}, {"Bearer\t \t" TOKEN}, NP_AUTH_OK},
    {"surrounding_whitespace_ignored",
     {"Proxy-Authorization"},
     {" \tBearer " TOKEN " \t"},
     NP_AUTH_OK},
    {"other_headers_ignored",
     {"Host", "Proxy-Authorization", "Authorization"},
     {"example.com:443", "Bearer " TOKEN, "Bearer wrong"},
     NP_AUTH_OK},
    {"two_valid_headers",
     {"Proxy-Authorization", "proxy-authorization"},
     {"Bearer " TOKEN, "Basic " B64_USER_TOKEN},
     NP_AUTH_OK},

    {"missing_header", {"Host"}, {"example.com:443"}, NP_AUTH_MISSING},
    {"no_headers_at_all", {NULL}, {NULL}, NP_AUTH_MISSING},
    {"authorization_is_not_proxy_authorization",
     {"Authorization"},
     {"Bearer " TOKEN},
     NP_AUTH_MISSING},
    {"name_with_suffix_is_other_header",
     {"Proxy-Authorization2"},
     {"Bearer " TOKEN},
     NP_AUTH_MISSING},

    {"bearer_wrong_token",
     {"Proxy-Authorization"},
     {"Bearer fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"},
     NP_AUTH_INVALID},
    {"bearer_token_prefix",
     {"Proxy-Authorization"},
     {"Bearer 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde"},
     NP_AUTH_INVALID},
    {"bearer_token_suffix", {"Proxy-Authorization"}, {"Bearer " TOKEN "0"}, NP_AUTH_INVALID},
    {"bearer_extra_word", {"Proxy-Authorization"}, {"Bearer " TOKEN " extra"}, NP_AUTH_INVALID},
    {"bearer_uppercase_token",
     {"Proxy-Authorization"},
     {"Bearer 0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF"},
     NP_AUTH_INVALID},
    {"bearer_empty", {"Proxy-Authorization"}, {"Bearer"}, NP_AUTH_INVALID},
    {"bearer_empty_after_space", {"Proxy-Authorization"}, {"Bearer   "}, NP_AUTH_INVALID},
    {"scheme_needs_whitespace", {"Proxy-Authorization"}, {"Bearer" TOKEN}, NP_AUTH_INVALID},
    {"empty_value", {"Proxy-Authorization"}, {""}, NP_AUTH_INVALID},
    {"token_without_scheme", {"Proxy-Authorization"}, {TOKEN}, NP_AUTH_INVALID},
    {"unknown_scheme", {"Proxy-Authorization"}, {"Digest " TOKEN}, NP_AUTH_INVALID},
    {"scheme_prefix_is_not_scheme", {"Proxy-Authorization"}, {"Bear " TOKEN}, NP_AUTH_INVALID},
    {"basic_token_prefix",
     {"Proxy-Authorization"},
     /* base64("user:" TOKEN minus its last character) */
     {"Basic "
      "dXNlcjowMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2Rl"
      "ZjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGU="},
     NP_AUTH_INVALID},
    {"basic_token_suffix",
     {"Proxy-Authorization"},
     /* base64("user:" TOKEN "0") */
     {"Basic "
      "dXNlcjowMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2Rl"
      "ZjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVmMA=="},
     NP_AUTH_INVALID},
    {"basic_trailing_newline_in_password",
     {"Proxy-Authorization"},
     /* base64("user:" TOKEN "\n") */
     {"Basic "
      "dXNlcjowMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2Rl"
      "ZjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVmCg=="},
     NP_AUTH_INVALID},
    {"basic_trailing_colon",
     {"Proxy-Authorization"},
     /* base64("user:" TOKEN ":") */
     {"Basic "
      "dXNlcjowMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2Rl"
      "ZjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVmOg=="},
     NP_AUTH_INVALID},
    {"basic_splits_at_first_colon",
     {"Proxy-Authorization"},
     /* base64("us:er:" TOKEN): the password is "er:" TOKEN */
     {"Basic "
      "dXM6ZXI6MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNk"
      "ZWYwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZg=="},
     NP_AUTH_INVALID},
    {"basic_no_colon",
     {"Proxy-Authorization"},
     /* base64(TOKEN) */
     {"Basic "
      "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZg=="},
     NP_AUTH_INVALID},
    {"basic_empty_password", {"Proxy-Authorization"}, {"Basic dXNlcjo="}, NP_AUTH_INVALID},
    {"basic_bad_base64", {"Proxy-Authorization"}, {"Basic !!!!"}, NP_AUTH_INVALID},
    {"basic_unpadded_base64",
     {"Proxy-Authorization"},
     {"Basic "
      "OjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"},
     NP_AUTH_INVALID},
    {"basic_noncanonical_padding_bits",
     {"Proxy-Authorization"},
     /* B64_EMPTY_USER with the unused low bits of the last character set */
     {"Basic "
      "OjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWZ="},
     NP_AUTH_INVALID},
    {"basic_garbage_after_base64",
     {"Proxy-Authorization"},
     {"Basic " B64_USER_TOKEN "x"},
     NP_AUTH_INVALID},
    {"basic_second_word",
     {"Proxy-Authorization"},
     {"Basic " B64_USER_TOKEN " Zm9v"},
     NP_AUTH_INVALID},
    {"basic_token_is_bearer_credentials",
     {"Proxy-Authorization"},
     {"Basic " TOKEN},
     NP_AUTH_INVALID},
    {"bearer_with_basic_credentials",
     {"Proxy-Authorization"},
     {"Bearer " B64_USER_TOKEN},
     NP_AUTH_INVALID},

    {"second_header_wrong",
     {"Proxy-Authorization", "Proxy-Authorization"},
     {"Bearer " TOKEN, "Bearer wrong"},
     NP_AUTH_INVALID},
    {"first_header_wrong",
     {"Proxy-Authorization", "Proxy-Authorization"},
     {"Bearer wrong", "Bearer " TOKEN},
     NP_AUTH_INVALID},
    {"smuggled_empty_header",
     {"Proxy-Authorization", "Host", "proxy-AUTHORIZATION"},
     {"Basic " B64_USER_TOKEN, "example.com", ""},
     NP_AUTH_INVALID},
};

/* Build a request holding the row's headers, as np_http_req_parse would. */
static void
fill_req(struct np_http_req *req, const char *const *names, const char *const *values, size_t n)
{
    size_t i;

    memset(req, 0, sizeof(*req));
    req->method = NP_METHOD_CONNECT;
    for (i = 0; i < n && names[i] != NULL; i++) {
        req->headers[i].name = names[i];
        req->headers[i].name_len = strlen(names[i]);
        req->headers[i].value = values[i];
        req->headers[i].value_len = strlen(values[i]);
        req->n_headers++;
    }
}

static void
proxy_auth_table(void **state)
{
    struct np_http_req req;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(AUTH_ROWS) / sizeof(AUTH_ROWS[0]); i++) {
        const struct auth_row *r = &AUTH_ROWS[i];
        enum np_auth got;

        fill_req(&req, r->names, r->values, MAX_ROW_HEADERS);
        got = np_token_check_proxy_auth(&req, TOKEN);
        if (got != r->expected) {
            fail_msg("proxy auth row %s: got %d, expected %d", r->rule, (int)got, (int)r->expected);
        }
    }
}

/* A value is used by length only: bytes past value_len (here a trailing "X") are not read. */
static void
proxy_auth_uses_value_len(void **state)
{
    struct np_http_req req;
    static const char value[] = "Bearer " TOKEN "X";
    const char *names[1] = {"Proxy-Authorization"};
    const char *values[1] = {value};

    (void)state;
    fill_req(&req, names, values, 1);
    assert_int_equal(np_token_check_proxy_auth(&req, TOKEN), NP_AUTH_INVALID);
    req.headers[0].value_len = sizeof(value) - 2;
    assert_int_equal(np_token_check_proxy_auth(&req, TOKEN), NP_AUTH_OK);
}

/* Basic with a long user: accepted while the decoded credentials fit NP_TOKEN_BASIC_MAX, the
 * one limit proxy authentication and basic_auth phantoms share (it was 512 bytes here and
 * 2048 for phantoms), invalid (not a crash) above it. */
static void
proxy_auth_basic_length_cap(void **state)
{
    static const struct {
        size_t user_len;
        enum np_auth expected;
    } rows[] = {
        {400, NP_AUTH_OK},
        {448, NP_AUTH_OK}, /* 513 decoded bytes: over the old proxy-auth limit */
        {1000, NP_AUTH_OK},
        {1983, NP_AUTH_OK},      /* 1983 + 1 + 64 = 2048 decoded bytes */
        {1984, NP_AUTH_INVALID}, /* 2049 */
        {3000, NP_AUTH_INVALID},
    };
    static char plain[3200];
    static char b64[4400];
    static char value[4410];
    struct np_http_req req;
    const char *names[1] = {"Proxy-Authorization"};
    const char *values[1] = {value};
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        size_t u = rows[i].user_len;
        memset(plain, 'u', u);
        (void)snprintf(plain + u, sizeof(plain) - u, ":%s", TOKEN);
        assert_true(np_base64_encode(plain, strlen(plain), b64, sizeof(b64)) > 0);
        (void)snprintf(value, sizeof(value), "Basic %s", b64);
        fill_req(&req, names, values, 1);
        assert_int_equal(np_token_check_proxy_auth(&req, TOKEN), rows[i].expected);
        assert_int_equal(np_token_basic_ok(b64, strlen(b64), TOKEN, 64),
                         rows[i].expected == NP_AUTH_OK);
    }
}

/* With an empty (or absent) token nothing authenticates, not even empty credentials. */
static void
proxy_auth_empty_token_never_ok(void **state)
{
    struct np_http_req req;
    const char *names[1] = {"Proxy-Authorization"};
    const char *values[1] = {"Basic dXNlcjo="}; /* "user:" */

    (void)state;
    fill_req(&req, names, values, 1);
    assert_int_equal(np_token_check_proxy_auth(&req, ""), NP_AUTH_INVALID);
    assert_int_equal(np_token_check_proxy_auth(&req, NULL), NP_AUTH_INVALID);
    values[0] = "Bearer ";
    fill_req(&req, names, values, 1);
    assert_int_equal(np_token_check_proxy_auth(&req, ""), NP_AUTH_INVALID);
}

/* A freshly generated token authenticates through both schemes. */
static void
proxy_auth_generated_token(void **state)
{
    struct np_http_req req;
    char tok[NP_TOKEN_HEX_LEN + 1];
    char plain[80];
    char b64[128];
    char value[160];
    const char *names[1] = {"Proxy-Authorization"};
    const char *values[1] = {value};

    (void)state;
    assert_int_equal(np_token_generate(tok), 0);
    (void)snprintf(plain, sizeof(plain), "nono:%s", tok);
    assert_int_equal(np_base64_encode(plain, strlen(plain), b64, sizeof(b64)), 92);
    (void)snprintf(value, sizeof(value), "Basic %s", b64);
    fill_req(&req, names, values, 1);
    assert_int_equal(np_token_check_proxy_auth(&req, tok), NP_AUTH_OK);
    assert_int_equal(np_token_check_proxy_auth(&req, TOKEN), NP_AUTH_INVALID);
    (void)snprintf(value, sizeof(value), "Bearer %s", tok);
    fill_req(&req, names, values, 1);
    assert_int_equal(np_token_check_proxy_auth(&req, tok), NP_AUTH_OK);
}

/* The token found in any mix of literal bytes and percent-escapes, and nothing else. */
static void
token_find_encoded_rows(void **state)
{
    static const char tok[] = "c0ffee";
    static const struct {
        const char *name;
        const char *text;
        bool found;
        size_t used; /* raw length matched at offset 0 (0 = not checked) */
    } rows[] = {
        {"literal", "c0ffee", true, 6},
        {"inside_text", "/a/b?x=c0ffee&y", true, 0},
        {"all_escaped_lower", "%63%30%66%66%65%65", true, 18},
        {"mixed", "c%30f%66ee", true, 10},
        {"escaped_upper_case_letters_fold", "%43%30%46%66%45%65", true, 18},
        {"upper_case_literal_folds", "C0FFEE", true, 6},
        {"one_char_changed", "c0ffef", false, 0},
        {"truncated", "c0ffe", false, 0},
        {"truncated_escape", "c0ffe%6", false, 0},
        {"bad_escape_is_literal", "c0ffe%zz", false, 0},
        {"empty", "", false, 0},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        size_t used = 0;
        bool found = np_token_find_encoded(rows[i].text, strlen(rows[i].text), tok, 6);
        if (found != rows[i].found) {
            fail_msg("row %s: found %d", rows[i].name, (int)found);
        }
        if (rows[i].used != 0) {
            assert_true(np_token_match_encoded(rows[i].text, strlen(rows[i].text), tok, 6, &used));
            assert_int_equal(used, rows[i].used);
        }
    }
}

/* Write "Basic base64(<pad 'a'>:<tok>)" into out; returns its length. */
static size_t
basic_value(char *out, size_t cap, size_t pad, const char *tok)
{
    size_t plain_len = pad + 1 + strlen(tok);
    char *plain = malloc(plain_len + 1);
    size_t n;

    assert_non_null(plain);
    memset(plain, 'a', pad);
    plain[pad] = ':';
    memcpy(plain + pad + 1, tok, strlen(tok));
    memcpy(out, "Basic ", 6);
    n = np_base64_encode(plain, plain_len, out + 6, cap - 6);
    assert_true(n > 0);
    free(plain);
    return 6 + n;
}

/* Issue #9 hole 7: one detector, no decode limit below the header cap. The token inside a
 * Basic value is found whatever the length of what precedes it, up to a 64 KiB header. */
static void
token_in_value_basic_any_length(void **state)
{
    static const size_t pads[] = {0,    1,    2,    3,    100,  511,  819,  820,   900,  1023,
                                  1024, 1100, 1590, 1600, 2048, 2100, 3000, 10000, 48000};
    size_t cap = 70000;
    char *v = malloc(cap);
    size_t i;

    (void)state;
    assert_non_null(v);
    for (i = 0; i < sizeof(pads) / sizeof(pads[0]); i++) {
        size_t n = basic_value(v, cap, pads[i], TOKEN);

        if (!np_token_in_value(v, n, TOKEN, 64)) {
            fail_msg("Basic value with %zu bytes before the token: not detected", pads[i]);
        }
        assert_false(np_token_in_value(v, n, OTHER_TOKEN, 64));
    }
    free(v);
}

/* Spellings an upstream's lenient decoder still reads: no padding, the URL-safe alphabet,
 * "BASIC" in capitals, whitespace around; and the token percent-encoded inside. */
static void
token_in_value_lenient_spellings(void **state)
{
    char v[512];
    char enc[256];
    size_t n;
    size_t k;

    (void)state;
    n = basic_value(v, sizeof(v), 6, TOKEN); /* 71 bytes: the base64 ends in "==" */
    while (v[n - 1] == '=') {
        n--;
    }
    assert_true(np_token_in_value(v, n, TOKEN, 64)); /* padding dropped */
    memcpy(v, "BASIC ", 6);
    assert_true(np_token_in_value(v, n, TOKEN, 64));
    for (k = 6; k < n; k++) {
        if (v[k] == '+') {
            v[k] = '-';
        } else if (v[k] == '/') {
            v[k] = '_';
        }
    }
    assert_true(np_token_in_value(v, n, TOKEN, 64)); /* URL-safe alphabet */
    for (k = 0; k < 64; k++) {
        (void)snprintf(enc + 3 * k, 4, "%%%02X", (unsigned char)TOKEN[k]);
    }
    n = basic_value(v, sizeof(v), 3, enc);
    assert_true(np_token_in_value(v, n, TOKEN, 64)); /* percent-encoded inside base64 */
    /* A byte of the other alphabet inserted: decoders that skip it (Python's b64decode,
     * Perl, Java's MIME decoder) still read the token; so must the detector. */
    for (k = 0; k < 4; k++) {
        static const char odd[] = "_-+/";
        char ins[512];

        n = basic_value(v, sizeof(v), 0, TOKEN);
        memcpy(ins, v, 10);
        ins[10] = odd[k];
        memcpy(ins + 11, v + 10, n - 10);
        if (!np_token_in_value(ins, n + 1, TOKEN, 64)) {
            fail_msg("Basic value with '%c' inserted: not detected", odd[k]);
        }
    }
    assert_false(np_token_in_value("Basic", 5, TOKEN, 64));
    assert_false(np_token_in_value("Bearer abc", 10, TOKEN, 64));
    assert_false(np_token_in_value("", 0, TOKEN, 64));
}

/* Issue #9 hole 5: a header carrying the token in its name is caught like one in its value. */
static void
token_in_header_name(void **state)
{
    char name[96];
    struct np_header h;

    (void)state;
    (void)snprintf(name, sizeof(name), "X-%s", TOKEN);
    h.name = name;
    h.name_len = strlen(name);
    h.value = "1";
    h.value_len = 1;
    assert_true(np_token_in_header(&h, TOKEN, 64));
    name[2] = '1'; /* one digit changed: not the token */
    assert_false(np_token_in_header(&h, TOKEN, 64));
    h.name = "X-Plain";
    h.name_len = 7;
    h.value = TOKEN;
    h.value_len = 64;
    assert_true(np_token_in_header(&h, TOKEN, 64));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(generate_is_64_lowercase_hex),
        cmocka_unit_test(generate_twice_differs),
        cmocka_unit_test(generate_uses_every_hex_digit),
        cmocka_unit_test(ct_equal_table),
        cmocka_unit_test(base64_rfc4648_vectors),
        cmocka_unit_test(base64_alphabet_edges),
        cmocka_unit_test(base64_round_trip_all_lengths),
        cmocka_unit_test(base64_encode_capacity),
        cmocka_unit_test(base64_decode_rejects_noncanonical),
        cmocka_unit_test(base64_decode_capacity),
        cmocka_unit_test(proxy_auth_table),
        cmocka_unit_test(proxy_auth_uses_value_len),
        cmocka_unit_test(proxy_auth_basic_length_cap),
        cmocka_unit_test(proxy_auth_empty_token_never_ok),
        cmocka_unit_test(proxy_auth_generated_token),
        cmocka_unit_test(token_find_encoded_rows),
        cmocka_unit_test(token_in_value_basic_any_length),
        cmocka_unit_test(token_in_value_lenient_spellings),
        cmocka_unit_test(token_in_header_name),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
