/* libFuzzer target: the token detector and Base64 (SPEC §1.2, §2, §6.3): np_token_in_value,
 * np_token_in_header, np_token_find_encoded, np_token_match_encoded, np_token_scheme_value,
 * np_token_basic_ok, np_base64_encode/decode.
 * Properties: a match is also found by the search and a search hit by the detector; the
 * detector finds the token appended to the input literally, percent-encoded and in Basic
 * credentials whose user is taken from the input; Base64 round-trips both ways (decode accepts
 * canonical input only, so what decodes re-encodes to the same text). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_head.h"
#include "token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char token[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
#define TOKEN_LEN ((size_t)NP_TOKEN_HEX_LEN)
#define MAX_INPUT 8192

static void *
xmalloc(size_t n)
{
    void *p = malloc(n > 0 ? n : 1);

    if (p == NULL) {
        abort();
    }
    return p;
}

/* The detectors over v[0..len), with their implications. */
static void
detect(const char *v, size_t len)
{
    size_t used = 0;
    bool found = np_token_find_encoded(v, len, token, TOKEN_LEN);
    bool in_value = np_token_in_value(v, len, token, TOKEN_LEN);

    if (np_token_match_encoded(v, len, token, TOKEN_LEN, &used) &&
        (used < TOKEN_LEN || used > len || !found)) {
        abort();
    }
    if (found && !in_value) {
        abort();
    }
    if (memmem(v, len, token, TOKEN_LEN) != NULL && !found) {
        abort();
    }
}

/* Base64 both ways. */
static void
base64(const uint8_t *data, size_t size)
{
    size_t enc_cap = (size + 2) / 3 * 4 + 1;
    char *enc = xmalloc(enc_cap);
    uint8_t *dec = xmalloc(size);
    size_t enc_len = np_base64_encode(data, size, enc, enc_cap);
    size_t dec_len = 0;

    if (enc_len != (size + 2) / 3 * 4) {
        abort();
    }
    if (np_base64_decode(enc, enc_len, dec, size, &dec_len) != 0 || dec_len != size ||
        (size > 0 && memcmp(dec, data, size) != 0)) {
        abort();
    }
    free(dec);
    free(enc);

    /* The input as Base64 text: canonical input decodes and re-encodes to itself. */
    dec = xmalloc(size);
    if (np_base64_decode((const char *)data, size, dec, size, &dec_len) == 0) {
        enc_cap = (dec_len + 2) / 3 * 4 + 1;
        enc = xmalloc(enc_cap);
        enc_len = np_base64_encode(dec, dec_len, enc, enc_cap);
        if (enc_len != size || (size > 0 && memcmp(enc, data, size) != 0)) {
            abort();
        }
        free(enc);
    }
    free(dec);
}

/* "Basic b64(<user from the input>:<token>)" must be detected and accepted. */
static void
basic(const uint8_t *data, size_t size)
{
    size_t user_len = 0;
    size_t i;
    size_t plain_cap = size + 1 + TOKEN_LEN;
    char *plain = xmalloc(plain_cap);
    size_t b64_cap = (plain_cap + 2) / 3 * 4 + 1;
    char *value = xmalloc(6 + b64_cap);
    size_t b64_len;
    const char *cred = NULL;
    size_t cred_len = 0;

    for (i = 0; i < size && user_len < 512; i++) {
        if (data[i] != ':') {
            plain[user_len++] = (char)data[i];
        }
    }
    plain[user_len] = ':';
    memcpy(plain + user_len + 1, token, TOKEN_LEN);
    memcpy(value, "Basic ", 6);
    b64_len = np_base64_encode(plain, user_len + 1 + TOKEN_LEN, value + 6, b64_cap);
    if (b64_len == 0 || !np_token_in_value(value, 6 + b64_len, token, TOKEN_LEN)) {
        abort();
    }
    if (!np_token_scheme_value(value, 6 + b64_len, "basic", &cred, &cred_len) ||
        !np_token_basic_ok(cred, cred_len, token, TOKEN_LEN)) {
        abort();
    }
    free(value);
    free(plain);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *v = (const char *)data;
    char *copy;
    const char *cred = NULL;
    size_t cred_len = 0;
    const uint8_t *colon;
    static const char hex[] = "0123456789ABCDEF";
    size_t i;
    size_t n;

    if (size > MAX_INPUT) {
        return -1;
    }
    copy = xmalloc(size);
    if (size > 0) {
        memcpy(copy, data, size);
    }
    detect(copy, size);
    if (np_token_scheme_value(copy, size, "Basic", &cred, &cred_len)) {
        (void)np_token_basic_ok(cred, cred_len, token, TOKEN_LEN);
    }
    if (np_token_scheme_value(copy, size, "Bearer", &cred, &cred_len)) {
        (void)np_ct_equal(cred, cred_len, token, TOKEN_LEN);
    }
    colon = memchr(data, ':', size);
    if (colon != NULL) {
        struct np_header h;

        h.name = copy;
        h.name_len = (size_t)(colon - data);
        h.value = copy + h.name_len + 1;
        h.value_len = size - h.name_len - 1;
        if (np_token_in_header(&h, token, TOKEN_LEN) !=
            (np_token_find_encoded(h.name, h.name_len, token, TOKEN_LEN) ||
             np_token_in_value(h.value, h.value_len, token, TOKEN_LEN))) {
            abort();
        }
    }
    free(copy);

    /* The input followed by the token, some of its bytes percent-escaped (per input bit). */
    copy = xmalloc(size + 3 * TOKEN_LEN);
    if (size > 0) {
        memcpy(copy, v, size);
    }
    n = size;
    for (i = 0; i < TOKEN_LEN; i++) {
        uint8_t c = (uint8_t)token[i];

        if (size > 0 && (data[i % size] >> (i % 8)) & 1u) {
            copy[n++] = '%';
            copy[n++] = hex[c >> 4];
            copy[n++] = hex[c & 15u];
        } else {
            copy[n++] = (char)c;
        }
    }
    if (!np_token_find_encoded(copy, n, token, TOKEN_LEN) ||
        !np_token_in_value(copy, n, token, TOKEN_LEN)) {
        abort();
    }
    free(copy);

    base64(data, size);
    basic(data, size);
    return 0;
}
