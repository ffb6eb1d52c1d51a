/* Audit ring and event serialisation (SPEC §9), L1.
 *
 * The ring is one array allocated at creation, guarded by a mutex: push overwrites the oldest
 * event when full and counts it as dropped; drain moves events out oldest-first. The JSON
 * writer never depends on the fields being NUL-terminated and always emits valid UTF-8. */
#include "audit.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"
#include "common.h"
#include "token.h"

struct np_audit_ring {
    pthread_mutex_t lock;
    struct nonoproxy_audit_event *events; /* capacity slots */
    size_t capacity;
    size_t head;      /* index of the oldest event */
    size_t count;     /* events held */
    uint64_t dropped; /* overwritten since the last drain */
};

static const char REDACTED[] = "[REDACTED]";

/* Worst case of nonoproxy_audit_event_to_json: every byte of every string field escaped as
 * \u00XX (6 bytes; the whole field counts, since a field filled without a NUL is read up to
 * its size), plus a generous bound for the rest: 19 keys of at most 32 bytes with quotes,
 * colon and comma, and 19 values of at most 40 bytes (20-digit numbers, quoted names of at most
 * 38 characters), plus the braces. test_audit.c builds that event and checks its length. */
#define NP_JSON_STR_BYTES                                                                          \
    (NONOPROXY_AUDIT_TARGET_LEN + NONOPROXY_AUDIT_METHOD_LEN + NONOPROXY_AUDIT_PATH_LEN +          \
     NONOPROXY_AUDIT_REASON_LEN + NONOPROXY_AUDIT_ROUTE_LEN)
#define NP_JSON_FIELDS 19
#define NP_JSON_WORST  (6 * NP_JSON_STR_BYTES + NP_JSON_FIELDS * (32 + 40) + 2)
_Static_assert(NP_JSON_WORST < NONOPROXY_AUDIT_JSON_MAX, "audit JSON may not fit its buffer");

/* Allocate a ring of capacity events at once; 0 gives a ring that records nothing. */
int
np_audit_ring_new(size_t capacity, struct np_audit_ring **out)
{
    struct np_audit_ring *r = NULL;
    int rc = -1;

    r = np_calloc(1, sizeof(*r));
    if (r == NULL) {
        goto out;
    }
    if (capacity > 0) {
        r->events = np_calloc(capacity, sizeof(*r->events));
        if (r->events == NULL) {
            goto out;
        }
    }
    if (pthread_mutex_init(&r->lock, NULL) != 0) {
        goto out;
    }
    r->capacity = capacity;
    *out = r;
    r = NULL; /* ownership moved to the caller */
    rc = 0;
out:
    if (r != NULL) {
        np_free(r->events);
        np_free(r);
    }
    return rc;
}

/* Release the ring and its events. */
void
np_audit_ring_free(struct np_audit_ring *r)
{
    if (r == NULL) {
        return;
    }
    pthread_mutex_destroy(&r->lock);
    np_free(r->events);
    np_free(r);
}

/* Append a copy of ev; when full, overwrite the oldest event and count it as dropped. */
void
np_audit_ring_push(struct np_audit_ring *r, const struct nonoproxy_audit_event *ev)
{
    size_t slot;

    if (r == NULL || r->capacity == 0) {
        return;
    }
    pthread_mutex_lock(&r->lock);
    if (r->count == r->capacity) {
        /* Full: the oldest slot is reused and the head moves past it. */
        slot = r->head;
        r->head = (r->head + 1) % r->capacity;
        r->dropped++;
    } else {
        slot = (r->head + r->count) % r->capacity;
        r->count++;
    }
    r->events[slot] = *ev;
    pthread_mutex_unlock(&r->lock);
}

/* Move up to max events oldest-first into out; report and reset the dropped counter. */
size_t
np_audit_ring_drain(struct np_audit_ring *r, struct nonoproxy_audit_event *out, size_t max,
                    uint64_t *dropped)
{
    size_t n = 0;
    size_t i;

    if (r == NULL) {
        if (dropped != NULL) {
            *dropped = 0;
        }
        return 0;
    }
    pthread_mutex_lock(&r->lock);
    n = (max < r->count) ? max : r->count;
    for (i = 0; i < n; i++) {
        out[i] = r->events[(r->head + i) % r->capacity];
    }
    if (n > 0) {
        r->head = (r->head + n) % r->capacity;
        r->count -= n;
    }
    if (dropped != NULL) {
        *dropped = r->dropped;
    }
    r->dropped = 0;
    pthread_mutex_unlock(&r->lock);
    return n;
}

/* Reset ev to a decision event stamped with the wall clock. */
void
np_audit_event_init(struct nonoproxy_audit_event *ev, enum nonoproxy_audit_mode mode,
                    enum nonoproxy_audit_decision decision)
{
    memset(ev, 0, sizeof(*ev));
    ev->timestamp_unix_ms = np_wall_ms();
    ev->kind = NONOPROXY_EVENT_DECISION;
    ev->mode = mode;
    ev->decision = decision;
}

/* Copy src[0..len) into a field, printable and truncated with "...". */
void
np_audit_set(char *field, size_t cap, const char *src, size_t len)
{
    if (field == NULL || cap == 0) {
        return;
    }
    np_copy_printable(field, cap, src, (src != NULL) ? len : 0);
}

size_t
np_audit_redact(char *out, size_t cap, const char *src, size_t len, const char *secret)
{
    size_t slen = (secret != NULL) ? strlen(secret) : 0;
    size_t used = 0;
    size_t i = 0;

    if (src == NULL) {
        len = 0;
    }
    /* Each occurrence is matched against the whole rest of the input, so stopping once out
     * is full never leaves a part of one behind. */
    while (i < len && used < cap) {
        size_t raw = 0;

        if (slen > 0 && (src[i] == secret[0] || (src[i] ^ 0x20) == secret[0] || src[i] == '%') &&
            np_token_match_encoded(src + i, len - i, secret, slen, &raw)) {
            size_t k;

            for (k = 0; k < sizeof(REDACTED) - 1 && used < cap; k++) {
                out[used++] = REDACTED[k];
            }
            i += raw;
        } else {
            out[used++] = src[i++];
        }
    }
    return used;
}

/* Return the length (2..4) of the well-formed UTF-8 sequence at s[0..n), or 0 when s does
 * not start one (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF). */
static size_t
utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned char b = s[0];
    size_t need;
    unsigned char lo = 0x80;
    unsigned char hi = 0xbf;
    size_t i;

    if (b >= 0xc2 && b <= 0xdf) {
        need = 2;
    } else if (b >= 0xe0 && b <= 0xef) {
        need = 3;
        lo = (b == 0xe0) ? 0xa0 : 0x80; /* overlong */
        hi = (b == 0xed) ? 0x9f : 0xbf; /* surrogates */
    } else if (b >= 0xf0 && b <= 0xf4) {
        need = 4;
        lo = (b == 0xf0) ? 0x90 : 0x80; /* overlong */
        hi = (b == 0xf4) ? 0x8f : 0xbf; /* above U+10FFFF */
    } else {
        return 0;
    }
    if (n < need || s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (i = 2; i < need; i++) {
        if (s[i] < 0x80 || s[i] > 0xbf) {
            return 0;
        }
    }
    return need;
}

/* Replace each byte of field that is not part of well-formed UTF-8 with '?'. The JSON writer
 * would spell it \u00XX, and those hex digits, next to the rest of a token the redaction did
 * not see whole, could spell the token in the log line. */
static void
replace_invalid_utf8(char *field)
{
    size_t n = strlen(field);
    size_t i = 0;

    while (i < n) {
        size_t k = (unsigned char)field[i] < 0x80
                       ? 1
                       : utf8_seq_len((const unsigned char *)field + i, n - i);

        if (k == 0) {
            field[i] = '?';
            k = 1;
        }
        i += k;
    }
}

/* Copy src into a field with every occurrence of secret redacted (literal or
 * percent-encoded, in any mix), then truncate. */
void
np_audit_set_redacted(char *field, size_t cap, const char *src, size_t len, const char *secret)
{
    char tmp[NONOPROXY_AUDIT_PATH_LEN]; /* the largest field: one byte more than it can show */
    size_t used;

    if (field == NULL || cap == 0) {
        return;
    }
    if (cap > sizeof(tmp)) {
        cap = sizeof(tmp);
    }
    /* Redact into tmp first; stop once tmp holds cap bytes, since the field truncates there
     * anyway and "..." then marks the cut. Truncation only removes characters, so no part of
     * a redacted occurrence can come back. When tmp filled up, used == cap exceeds the field
     * and np_copy_printable adds "..."; otherwise the whole redacted text fits. */
    used = np_audit_redact(tmp, cap, src, len, secret);
    np_copy_printable(field, cap, tmp, used);
    replace_invalid_utf8(field);
    np_secure_zero(tmp, sizeof(tmp));
}

/* Copy a path into ev->path with every occurrence of secret redacted, then truncate. */
void
np_audit_set_path(struct nonoproxy_audit_event *ev, const char *path, size_t len,
                  const char *secret)
{
    np_audit_set_redacted(ev->path, sizeof(ev->path), path, len, secret);
}

/* ---- JSON ---------------------------------------------------------------------------- */

static void
put_u00(struct np_buf *w, unsigned char c)
{
    static const char hex[] = "0123456789abcdef";
    char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0x0f]};

    np_buf_put(w, esc, sizeof(esc));
}

/* Write field[0..strnlen(field, cap)) as a JSON string, or null when empty. Control
 * characters, DEL and bytes that are not part of valid UTF-8 become \u00XX. */
static void
put_field(struct np_buf *w, const char *field, size_t cap)
{
    const unsigned char *s = (const unsigned char *)field;
    size_t n = strnlen(field, cap);
    size_t i = 0;

    if (n == 0) {
        np_buf_puts(w, "null");
        return;
    }
    np_buf_put(w, "\"", 1);
    while (i < n) {
        unsigned char c = s[i];
        size_t seq = 1;
        if (c == '"') {
            np_buf_put(w, "\\\"", 2);
        } else if (c == '\\') {
            np_buf_put(w, "\\\\", 2);
        } else if (c == '\n') {
            np_buf_put(w, "\\n", 2);
        } else if (c == '\r') {
            np_buf_put(w, "\\r", 2);
        } else if (c == '\t') {
            np_buf_put(w, "\\t", 2);
        } else if (c < 0x20 || c == 0x7f) {
            put_u00(w, c);
        } else if (c < 0x80) {
            np_buf_put(w, (const char *)s + i, 1);
        } else {
            seq = utf8_seq_len(s + i, n - i);
            if (seq == 0) {
                put_u00(w, c);
                seq = 1;
            } else {
                np_buf_put(w, (const char *)s + i, seq);
            }
        }
        i += seq;
    }
    np_buf_put(w, "\"", 1);
}

/* Write a static name as a JSON string, or null when it is empty. */
static void
put_name(struct np_buf *w, const char *name)
{
    if (name[0] == '\0') {
        np_buf_puts(w, "null");
        return;
    }
    np_buf_put(w, "\"", 1);
    np_buf_puts(w, name);
    np_buf_put(w, "\"", 1);
}

static void
put_key(struct np_buf *w, const char *key)
{
    if (w->want == 0) {
        np_buf_put(w, "{\"", 2);
    } else {
        np_buf_put(w, ",\"", 2);
    }
    np_buf_puts(w, key);
    np_buf_put(w, "\":", 2);
}

const char *
nonoproxy_audit_kind_name(enum nonoproxy_audit_kind kind)
{
    switch (kind) {
    case NONOPROXY_EVENT_DECISION:
        return "decision";
    case NONOPROXY_EVENT_CLOSE:
        return "close";
    }
    return "";
}

const char *
nonoproxy_audit_decision_name(enum nonoproxy_audit_decision d)
{
    switch (d) {
    case NONOPROXY_DECISION_ALLOW:
        return "allow";
    case NONOPROXY_DECISION_DENY:
        return "deny";
    }
    return "";
}

const char *
nonoproxy_auth_mechanism_name(enum nonoproxy_auth_mechanism m)
{
    switch (m) {
    case NONOPROXY_AUTH_MECH_NONE:
        return "";
    case NONOPROXY_AUTH_MECH_PROXY_AUTHORIZATION:
        return "proxy_authorization";
    case NONOPROXY_AUTH_MECH_PHANTOM_HEADER:
        return "phantom_header";
    case NONOPROXY_AUTH_MECH_PHANTOM_PATH:
        return "phantom_path";
    case NONOPROXY_AUTH_MECH_PHANTOM_QUERY:
        return "phantom_query";
    }
    return "";
}

const char *
nonoproxy_auth_outcome_name(enum nonoproxy_auth_outcome o)
{
    switch (o) {
    case NONOPROXY_AUTH_OUTCOME_NONE:
        return "";
    case NONOPROXY_AUTH_OUTCOME_SUCCEEDED:
        return "succeeded";
    case NONOPROXY_AUTH_OUTCOME_FAILED:
        return "failed";
    }
    return "";
}

const char *
nonoproxy_inject_mode_name(enum nonoproxy_inject_mode m)
{
    switch (m) {
    case NONOPROXY_INJECT_NONE:
        return "";
    case NONOPROXY_INJECT_HEADER:
        return "header";
    case NONOPROXY_INJECT_URL_PATH:
        return "url_path";
    case NONOPROXY_INJECT_QUERY_PARAM:
        return "query_param";
    case NONOPROXY_INJECT_BASIC_AUTH:
        return "basic_auth";
    }
    return "";
}

static const char *
tristate_json(enum nonoproxy_tristate t)
{
    switch (t) {
    case NONOPROXY_TRI_UNSET:
        return "null";
    case NONOPROXY_TRI_FALSE:
        return "false";
    case NONOPROXY_TRI_TRUE:
        return "true";
    }
    return "null";
}

/* Name a mode as in the JSON; "" for an unknown value. */
const char *
nonoproxy_audit_mode_name(enum nonoproxy_audit_mode mode)
{
    switch (mode) {
    case NONOPROXY_MODE_CONNECT:
        return "connect";
    case NONOPROXY_MODE_FORWARD:
        return "forward";
    case NONOPROXY_MODE_REVERSE:
        return "reverse";
    case NONOPROXY_MODE_EXTERNAL:
        return "external";
    }
    return "";
}

/* Name a denial category as in the JSON; "" for NONE or an unknown value. */
const char *
nonoproxy_denial_category_name(enum nonoproxy_denial_category cat)
{
    switch (cat) {
    case NONOPROXY_DENIAL_NONE:
        return "";
    case NONOPROXY_DENIAL_AUTHENTICATION_FAILED:
        return "authentication_failed";
    case NONOPROXY_DENIAL_HOST_DENIED:
        return "host_denied";
    case NONOPROXY_DENIAL_UPSTREAM_CONNECT_FAILED:
        return "upstream_connect_failed";
    case NONOPROXY_DENIAL_CONNECT_BYPASSES_L7:
        return "connect_bypasses_l7";
    case NONOPROXY_DENIAL_EXTERNAL_PROXY_REJECTED:
        return "external_proxy_rejected";
    case NONOPROXY_DENIAL_MANAGED_CREDENTIAL_UNAVAILABLE:
        return "managed_credential_unavailable";
    case NONOPROXY_DENIAL_CONNECTION_LIMIT:
        return "connection_limit";
    case NONOPROXY_DENIAL_SELF_REQUEST:
        return "self_request";
    case NONOPROXY_DENIAL_MALFORMED_REQUEST:
        return "malformed_request";
    case NONOPROXY_DENIAL_REQUEST_TIMEOUT:
        return "request_timeout";
    case NONOPROXY_DENIAL_UNSUPPORTED_REQUEST:
        return "unsupported_request";
    case NONOPROXY_DENIAL_ROUTE_NOT_FOUND:
        return "route_not_found";
    case NONOPROXY_DENIAL_UPSTREAM_TIMEOUT:
        return "upstream_timeout";
    case NONOPROXY_DENIAL_ENDPOINT_POLICY:
        return "endpoint_policy";
    case NONOPROXY_DENIAL_RATE_LIMITED:
        return "rate_limited";
    }
    return "";
}

/* Write a number, or null when present is false. */
static void
put_opt_u64(struct np_buf *w, bool present, uint64_t v)
{
    if (present) {
        np_buf_put_u64(w, v);
    } else {
        np_buf_puts(w, "null");
    }
}

/* Serialise ev as one JSON object with every field, in the documented order. */
size_t
nonoproxy_audit_event_to_json(const struct nonoproxy_audit_event *ev, char *buf, size_t cap)
{
    struct np_buf w;
    bool closing = (ev->kind == NONOPROXY_EVENT_CLOSE);

    /* One piece per character, escape or UTF-8 sequence: a cut output stays valid text. */
    np_buf_init_str(&w, buf, cap);
    put_key(&w, "timestamp_unix_ms");
    np_buf_put_u64(&w, ev->timestamp_unix_ms);
    put_key(&w, "event");
    put_name(&w, nonoproxy_audit_kind_name(ev->kind));
    put_key(&w, "mode");
    put_name(&w, nonoproxy_audit_mode_name(ev->mode));
    put_key(&w, "decision");
    put_name(&w, nonoproxy_audit_decision_name(ev->decision));
    put_key(&w, "target");
    put_field(&w, ev->target, sizeof(ev->target));
    put_key(&w, "port");
    put_opt_u64(&w, ev->has_port, ev->port);
    put_key(&w, "method");
    put_field(&w, ev->method, sizeof(ev->method));
    put_key(&w, "path");
    put_field(&w, ev->path, sizeof(ev->path));
    put_key(&w, "status");
    put_opt_u64(&w, ev->status != 0, ev->status);
    put_key(&w, "reason");
    put_field(&w, ev->reason, sizeof(ev->reason));
    put_key(&w, "route_id");
    put_field(&w, ev->route_id, sizeof(ev->route_id));
    put_key(&w, "auth_mechanism");
    put_name(&w, nonoproxy_auth_mechanism_name(ev->auth_mechanism));
    put_key(&w, "auth_outcome");
    put_name(&w, nonoproxy_auth_outcome_name(ev->auth_outcome));
    put_key(&w, "managed_credential_active");
    np_buf_puts(&w, tristate_json(ev->managed_credential_active));
    put_key(&w, "injection_mode");
    put_name(&w, nonoproxy_inject_mode_name(ev->injection_mode));
    put_key(&w, "denial_category");
    put_name(&w, nonoproxy_denial_category_name(ev->denial_category));
    put_key(&w, "bytes_up");
    put_opt_u64(&w, closing, ev->bytes_up);
    put_key(&w, "bytes_down");
    put_opt_u64(&w, closing, ev->bytes_down);
    put_key(&w, "duration_ms");
    put_opt_u64(&w, closing, ev->duration_ms);
    np_buf_put(&w, "}", 1);
    return w.want;
}
