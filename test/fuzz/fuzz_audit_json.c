/* libFuzzer target: an audit event as JSON (SPEC §9): every string field set from fuzzed bytes
 * through np_audit_set_redacted with the session token (the token spliced into the input at a
 * fuzzed place, literally or percent-encoded), the other fields from the input too, then
 * nonoproxy_audit_event_to_json.
 * Properties: the output is one JSON object that cJSON parses, of the length the function
 * returns, with no newline; no string value a JSON reader gets holds the token, literally or
 * in any spelling np_token_find_encoded knows, nor does the text outside \uXXXX escapes. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <nonoproxy/audit.h>

#include "audit.h"
#include "token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char token[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
#define TOKEN_LEN ((size_t)NP_TOKEN_HEX_LEN)
#define HDR       12
#define MAX_INPUT 16384

/* The input's bytes cut in pieces: each field takes the next n bytes. */
struct cursor {
    const uint8_t *p;
    size_t left;
};

static void
take(struct cursor *c, size_t want, const uint8_t **p, size_t *n)
{
    *p = c->p;
    *n = want < c->left ? want : c->left;
    c->p += *n;
    c->left -= *n;
}

/* Set field from the next bytes of c, the token spliced in when splice is set. */
static void
set_field(char *field, size_t cap, struct cursor *c, uint8_t sel)
{
    const uint8_t *p;
    size_t n;
    char *tmp;
    size_t len = 0;
    size_t at;
    size_t i;

    take(c, (size_t)sel * 4u, &p, &n);
    tmp = malloc(n + 3 * TOKEN_LEN + 1);
    if (tmp == NULL) {
        abort();
    }
    at = n > 0 ? (size_t)sel % (n + 1) : 0;
    memcpy(tmp, p, at);
    len = at;
    if (sel & 1u) { /* the token, literal or percent-encoded */
        for (i = 0; i < TOKEN_LEN; i++) {
            if ((sel & 2u) && (i % 3 == 0)) {
                static const char hex[] = "0123456789abcdef";
                uint8_t ch = (uint8_t)token[i];

                tmp[len++] = '%';
                tmp[len++] = hex[ch >> 4];
                tmp[len++] = hex[ch & 15u];
            } else {
                tmp[len++] =
                    (sel & 4u) ? (char)(token[i] >= 'a' ? token[i] - 32 : token[i]) : token[i];
            }
        }
    }
    memcpy(tmp + len, p + at, n - at);
    len += n - at;
    np_audit_set_redacted(field, cap, tmp, len, token);
    free(tmp);
}

/* Whether the token is in the JSON text, as `grep <token>` over an audit log would see it. An
 * escape's hex digits next to the rest of a token once spelled it there (the byte 0xA0 before
 * the token's last 63 characters: regress-u00-escape-spells-token); the redacting setter now
 * leaves no byte that the writer would escape with hex digits. */
static bool
token_in_text(const char *out, size_t len)
{
    return memmem(out, len, token, TOKEN_LEN) != NULL ||
           np_token_find_encoded(out, len, token, TOKEN_LEN);
}

/* Whether any string value of the parsed object holds the token (what a JSON reader sees). */
static bool
token_in_values(const cJSON *json)
{
    const cJSON *item;

    cJSON_ArrayForEach(item, json)
    {
        const char *v = cJSON_GetStringValue(item);

        if (v != NULL &&
            (strstr(v, token) != NULL || np_token_find_encoded(v, strlen(v), token, TOKEN_LEN))) {
            return true;
        }
    }
    return false;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct nonoproxy_audit_event ev;
    struct cursor c;
    char *out;
    size_t len;
    cJSON *json;

    if (size < HDR || size > MAX_INPUT) {
        return -1;
    }
    np_audit_event_init(&ev, (enum nonoproxy_audit_mode)(data[0] % 4u),
                        (enum nonoproxy_audit_decision)(data[1] % 2u));
    ev.kind = (enum nonoproxy_audit_kind)(data[2] % 2u);
    ev.has_port = data[3] & 1u;
    ev.port = (uint16_t)(data[3] << 8 | data[4]);
    ev.status = (uint16_t)(data[4] * 3u);
    ev.auth_mechanism = (enum nonoproxy_auth_mechanism)(data[5] % 5u);
    ev.auth_outcome = (enum nonoproxy_auth_outcome)(data[5] / 5u % 3u);
    ev.managed_credential_active = (enum nonoproxy_tristate)(data[6] % 3u);
    ev.injection_mode = (enum nonoproxy_inject_mode)(data[6] / 3u % 5u);
    ev.denial_category = (enum nonoproxy_denial_category)(data[7] % 14u);
    ev.bytes_up = (uint64_t)data[7] << 56 | data[2];
    ev.bytes_down = UINT64_MAX - data[3];
    ev.duration_ms = (uint64_t)data[1] << 40;
    ev.timestamp_unix_ms = UINT64_MAX / (data[0] + 1u);

    c.p = data + HDR;
    c.left = size - HDR;
    set_field(ev.target, sizeof(ev.target), &c, data[8]);
    set_field(ev.method, sizeof(ev.method), &c, data[9]);
    set_field(ev.path, sizeof(ev.path), &c, data[10]);
    set_field(ev.reason, sizeof(ev.reason), &c, data[11]);
    set_field(ev.route_id, sizeof(ev.route_id), &c, (uint8_t)(data[8] ^ data[11]));

    out = malloc(NONOPROXY_AUDIT_JSON_MAX);
    if (out == NULL) {
        abort();
    }
    len = nonoproxy_audit_event_to_json(&ev, out, NONOPROXY_AUDIT_JSON_MAX);
    if (len >= NONOPROXY_AUDIT_JSON_MAX || strlen(out) != len || memchr(out, '\n', len) != NULL) {
        abort();
    }
    if (token_in_text(out, len)) {
        abort();
    }
    json = cJSON_ParseWithLengthOpts(out, len + 1, NULL, 1); /* whole text, nothing after */
    if (json == NULL || !cJSON_IsObject(json) || token_in_values(json)) {
        abort();
    }
    cJSON_Delete(json);
    free(out);
    return 0;
}
