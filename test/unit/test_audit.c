/* Unit tests for lib/audit.h and the public JSON serialiser: ring order and drops, a
 * concurrent push/drain run, JSON fields, escaping, truncation, worst-case size, redaction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "common.h"

#define TOKEN "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* ---- helpers --------------------------------------------------------------------------- */

/* Tell whether s[0..n) is well-formed UTF-8 (RFC 3629), written independently of audit.c. */
static bool
valid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        uint32_t cp;
        size_t k;
        size_t need;
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        if ((s[i] & 0xe0) == 0xc0) {
            need = 2;
            cp = s[i] & 0x1fu;
        } else if ((s[i] & 0xf0) == 0xe0) {
            need = 3;
            cp = s[i] & 0x0fu;
        } else if ((s[i] & 0xf8) == 0xf0) {
            need = 4;
            cp = s[i] & 0x07u;
        } else {
            return false;
        }
        if (n - i < need) {
            return false;
        }
        for (k = 1; k < need; k++) {
            if ((s[i + k] & 0xc0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (s[i + k] & 0x3fu);
        }
        if ((need == 2 && cp < 0x80) || (need == 3 && cp < 0x800) || (need == 4 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return false;
        }
        i += need;
    }
    return true;
}

/* Serialise ev into a fresh buffer of NONOPROXY_AUDIT_JSON_MAX; the caller frees it. */
static char *
to_json(const struct nonoproxy_audit_event *ev)
{
    char *buf = malloc(NONOPROXY_AUDIT_JSON_MAX);
    size_t n;

    assert_non_null(buf);
    n = nonoproxy_audit_event_to_json(ev, buf, NONOPROXY_AUDIT_JSON_MAX);
    assert_true(n < NONOPROXY_AUDIT_JSON_MAX);
    assert_int_equal(strlen(buf), n);
    return buf;
}

static struct nonoproxy_audit_event *
new_events(size_t n)
{
    struct nonoproxy_audit_event *evs = calloc(n, sizeof(*evs));

    assert_non_null(evs);
    return evs;
}

/* An event numbered seq (carried in port and bytes_up). */
static void
numbered(struct nonoproxy_audit_event *ev, unsigned seq)
{
    memset(ev, 0, sizeof(*ev));
    ev->has_port = true;
    ev->port = (uint16_t)seq;
    ev->bytes_up = seq;
}

/* ---- ring ------------------------------------------------------------------------------ */

static void
ring_drains_oldest_first(void **state)
{
    struct np_audit_ring *r = NULL;
    struct nonoproxy_audit_event ev;
    struct nonoproxy_audit_event *out = new_events(8);
    uint64_t dropped = 99;
    unsigned i;

    (void)state;
    assert_int_equal(np_audit_ring_new(8, &r), 0);
    for (i = 1; i <= 5; i++) {
        numbered(&ev, i);
        np_audit_ring_push(r, &ev);
    }
    assert_int_equal(np_audit_ring_drain(r, out, 8, &dropped), 5);
    assert_int_equal(dropped, 0);
    for (i = 0; i < 5; i++) {
        assert_int_equal(out[i].port, i + 1);
    }
    assert_int_equal(np_audit_ring_drain(r, out, 8, &dropped), 0);
    np_audit_ring_free(r);
    free(out);
}

static void
ring_overflow_overwrites_oldest_and_counts(void **state)
{
    struct np_audit_ring *r = NULL;
    struct nonoproxy_audit_event ev;
    struct nonoproxy_audit_event *out = new_events(16);
    uint64_t dropped = 0;
    unsigned i;

    (void)state;
    assert_int_equal(np_audit_ring_new(4, &r), 0);
    for (i = 1; i <= 10; i++) {
        numbered(&ev, i);
        np_audit_ring_push(r, &ev);
    }
    assert_int_equal(np_audit_ring_drain(r, out, 16, &dropped), 4);
    assert_int_equal(dropped, 6);
    for (i = 0; i < 4; i++) {
        assert_int_equal(out[i].port, 7 + i);
    }
    dropped = 99;
    assert_int_equal(np_audit_ring_drain(r, out, 16, &dropped), 0);
    assert_int_equal(dropped, 0);
    np_audit_ring_free(r);
    free(out);
}

static void
ring_partial_drain_keeps_the_rest(void **state)
{
    struct np_audit_ring *r = NULL;
    struct nonoproxy_audit_event ev;
    struct nonoproxy_audit_event *out = new_events(8);
    uint64_t dropped = 99;
    unsigned i;

    (void)state;
    assert_int_equal(np_audit_ring_new(8, &r), 0);
    for (i = 1; i <= 6; i++) {
        numbered(&ev, i);
        np_audit_ring_push(r, &ev);
    }
    assert_int_equal(np_audit_ring_drain(r, out, 2, &dropped), 2);
    assert_int_equal(out[0].port, 1);
    assert_int_equal(out[1].port, 2);
    assert_int_equal(np_audit_ring_drain(r, out, 0, NULL), 0);
    assert_int_equal(np_audit_ring_drain(r, out, 8, &dropped), 4);
    for (i = 0; i < 4; i++) {
        assert_int_equal(out[i].port, 3 + i);
    }
    np_audit_ring_free(r);
    free(out);
}

/* Wrap around the end of the array, then overflow: head and count stay consistent. */
static void
ring_wraps_around(void **state)
{
    struct np_audit_ring *r = NULL;
    struct nonoproxy_audit_event ev;
    struct nonoproxy_audit_event *out = new_events(8);
    uint64_t dropped = 99;
    unsigned i;

    (void)state;
    assert_int_equal(np_audit_ring_new(4, &r), 0);
    for (i = 1; i <= 3; i++) {
        numbered(&ev, i);
        np_audit_ring_push(r, &ev);
    }
    assert_int_equal(np_audit_ring_drain(r, out, 2, &dropped), 2); /* 1, 2 */
    assert_int_equal(dropped, 0);
    for (i = 4; i <= 7; i++) { /* 3..7 = 5 events in 4 slots: 3 is overwritten */
        numbered(&ev, i);
        np_audit_ring_push(r, &ev);
    }
    assert_int_equal(np_audit_ring_drain(r, out, 8, &dropped), 4);
    assert_int_equal(dropped, 1);
    for (i = 0; i < 4; i++) {
        assert_int_equal(out[i].port, 4 + i);
    }
    np_audit_ring_free(r);
    free(out);
}

/* The dropped counter is reported and reset by every drain, even one that moves nothing. */
static void
ring_dropped_reset_by_empty_drain(void **state)
{
    struct np_audit_ring *r = NULL;
    struct nonoproxy_audit_event ev;
    struct nonoproxy_audit_event *out = new_events(4);
    uint64_t dropped = 0;
    unsigned i;

    (void)state;
    assert_int_equal(np_audit_ring_new(2, &r), 0);
    for (i = 1; i <= 5; i++) {
        numbered(&ev, i);
        np_audit_ring_push(r, &ev);
    }
    assert_int_equal(np_audit_ring_drain(r, out, 0, &dropped), 0);
    assert_int_equal(dropped, 3);
    assert_int_equal(np_audit_ring_drain(r, out, 4, &dropped), 2);
    assert_int_equal(dropped, 0);
    assert_int_equal(out[0].port, 4);
    assert_int_equal(out[1].port, 5);
    np_audit_ring_free(r);
    free(out);
}

static void
ring_capacity_zero_records_nothing(void **state)
{
    struct np_audit_ring *r = NULL;
    struct nonoproxy_audit_event ev;
    struct nonoproxy_audit_event *out = new_events(4);
    uint64_t dropped = 99;
    unsigned i;

    (void)state;
    assert_int_equal(np_audit_ring_new(0, &r), 0);
    for (i = 1; i <= 5; i++) {
        numbered(&ev, i);
        np_audit_ring_push(r, &ev);
    }
    assert_int_equal(np_audit_ring_drain(r, out, 4, &dropped), 0);
    assert_int_equal(dropped, 0);
    np_audit_ring_free(r);
    np_audit_ring_free(NULL);
    free(out);
}

/* Every field of the event comes back byte for byte. */
static void
ring_copies_whole_event(void **state)
{
    struct np_audit_ring *r = NULL;
    struct nonoproxy_audit_event *in = new_events(1);
    struct nonoproxy_audit_event *out = new_events(1);

    (void)state;
    np_audit_event_init(in, NONOPROXY_MODE_REVERSE, NONOPROXY_DECISION_DENY);
    np_audit_set(in->target, sizeof(in->target), "api.example.com", 15);
    np_audit_set(in->path, sizeof(in->path), "/v1/models", 10);
    in->denial_category = NONOPROXY_DENIAL_ROUTE_NOT_FOUND;
    in->bytes_down = 77;
    assert_int_equal(np_audit_ring_new(3, &r), 0);
    np_audit_ring_push(r, in);
    assert_int_equal(np_audit_ring_drain(r, out, 1, NULL), 1);
    assert_memory_equal(out, in, sizeof(*in));
    np_audit_ring_free(r);
    free(in);
    free(out);
}

/* ---- concurrency ----------------------------------------------------------------------- */

#define PUSHERS     4
#define PER_PUSHER  10000
#define CONC_CAP    64
#define DRAIN_BATCH 16

struct conc {
    struct np_audit_ring *ring;
    atomic_int pushers_done;
    uint64_t drained;
    uint64_t dropped;
    long last_seq[PUSHERS]; /* last sequence drained per pusher */
    bool in_order;
};

struct pusher_arg {
    struct conc *c;
    unsigned id;
};

static void *
pusher(void *p)
{
    struct pusher_arg *a = p;
    struct nonoproxy_audit_event ev;
    unsigned seq;

    memset(&ev, 0, sizeof(ev));
    ev.has_port = true;
    ev.port = (uint16_t)a->id;
    for (seq = 0; seq < PER_PUSHER; seq++) {
        ev.bytes_up = seq;
        np_audit_ring_push(a->c->ring, &ev);
    }
    atomic_fetch_add(&a->c->pushers_done, 1);
    return NULL;
}

/* Account one drained batch: count it and check per-pusher order. */
static void
account(struct conc *c, const struct nonoproxy_audit_event *evs, size_t n, uint64_t dropped)
{
    size_t i;

    c->drained += n;
    c->dropped += dropped;
    for (i = 0; i < n; i++) {
        unsigned id = evs[i].port;
        long seq = (long)evs[i].bytes_up;
        if (id >= PUSHERS || seq <= c->last_seq[id]) {
            c->in_order = false;
            continue;
        }
        c->last_seq[id] = seq;
    }
}

static void *
drainer(void *p)
{
    struct conc *c = p;
    struct nonoproxy_audit_event *evs = calloc(DRAIN_BATCH, sizeof(*evs));
    uint64_t dropped = 0;
    size_t n;

    if (evs == NULL) {
        c->in_order = false;
        return NULL;
    }
    while (atomic_load(&c->pushers_done) < PUSHERS) {
        n = np_audit_ring_drain(c->ring, evs, DRAIN_BATCH, &dropped);
        account(c, evs, n, dropped);
    }
    do { /* everything pushed is in the ring or counted: empty it */
        n = np_audit_ring_drain(c->ring, evs, DRAIN_BATCH, &dropped);
        account(c, evs, n, dropped);
    } while (n > 0);
    free(evs);
    return NULL;
}

static void
ring_concurrent_push_and_drain(void **state)
{
    static struct conc c;
    struct pusher_arg args[PUSHERS];
    pthread_t threads[PUSHERS];
    pthread_t dt;
    unsigned i;

    (void)state;
    memset(&c, 0, sizeof(c));
    atomic_init(&c.pushers_done, 0);
    c.in_order = true;
    for (i = 0; i < PUSHERS; i++) {
        c.last_seq[i] = -1;
    }
    assert_int_equal(np_audit_ring_new(CONC_CAP, &c.ring), 0);
    assert_int_equal(pthread_create(&dt, NULL, drainer, &c), 0);
    for (i = 0; i < PUSHERS; i++) {
        args[i].c = &c;
        args[i].id = i;
        assert_int_equal(pthread_create(&threads[i], NULL, pusher, &args[i]), 0);
    }
    for (i = 0; i < PUSHERS; i++) {
        assert_int_equal(pthread_join(threads[i], NULL), 0);
    }
    assert_int_equal(pthread_join(dt, NULL), 0);
    assert_true(c.in_order);
    assert_int_equal(c.drained + c.dropped, (uint64_t)PUSHERS * PER_PUSHER);
    /* After the last drop the ring was full and nothing was dropped again, so at least a
     * ringful was drained (or nothing was ever dropped). */
    assert_true(c.drained >= CONC_CAP);
    np_audit_ring_free(c.ring);
}

/* ---- event helpers --------------------------------------------------------------------- */

static void
event_init_sets_defaults(void **state)
{
    struct nonoproxy_audit_event *ev = new_events(1);
    struct nonoproxy_audit_event *zero = new_events(1);
    uint64_t before;
    uint64_t after;

    (void)state;
    memset(ev, 0xa5, sizeof(*ev));
    before = np_wall_ms();
    np_audit_event_init(ev, NONOPROXY_MODE_FORWARD, NONOPROXY_DECISION_DENY);
    after = np_wall_ms();
    assert_in_range(ev->timestamp_unix_ms, before, after);
    assert_int_equal(ev->kind, NONOPROXY_EVENT_DECISION);
    assert_int_equal(ev->mode, NONOPROXY_MODE_FORWARD);
    assert_int_equal(ev->decision, NONOPROXY_DECISION_DENY);
    zero->timestamp_unix_ms = ev->timestamp_unix_ms;
    zero->mode = NONOPROXY_MODE_FORWARD;
    zero->decision = NONOPROXY_DECISION_DENY;
    assert_memory_equal(ev, zero, sizeof(*ev));
    free(ev);
    free(zero);
}

static void
set_truncates_and_replaces_controls(void **state)
{
    char field[8];

    (void)state;
    np_audit_set(field, sizeof(field), "abc", 3);
    assert_string_equal(field, "abc");
    np_audit_set(field, sizeof(field), "a\r\nb\x7f", 5);
    assert_string_equal(field, "a??b?");
    np_audit_set(field, sizeof(field), "abcdefgh", 8);
    assert_string_equal(field, "abcd...");
    np_audit_set(field, sizeof(field), "abcdefg", 7); /* exactly fits */
    assert_string_equal(field, "abcdefg");
    np_audit_set(field, sizeof(field), "abcdefgh", 2); /* by length */
    assert_string_equal(field, "ab");
}

/* ---- redaction ------------------------------------------------------------------------- */

struct redact_row {
    const char *rule;
    const char *path;
    const char *secret;
    const char *expected;
};

static const struct redact_row REDACT_ROWS[] = {
    {"once", "/v1/" TOKEN "/models", TOKEN, "/v1/[REDACTED]/models"},
    {"twice", "/a/" TOKEN "/b?key=" TOKEN, TOKEN, "/a/[REDACTED]/b?key=[REDACTED]"},
    {"at_end", "/a/" TOKEN, TOKEN, "/a/[REDACTED]"},
    {"at_start", TOKEN "/x", TOKEN, "[REDACTED]/x"},
    {"whole_path", TOKEN, TOKEN, "[REDACTED]"},
    {"adjacent", TOKEN TOKEN, TOKEN, "[REDACTED][REDACTED]"},
    {"in_query", "/q?a=1&token=" TOKEN "&b=2", TOKEN, "/q?a=1&token=[REDACTED]&b=2"},
    {"absent", "/v1/models", TOKEN, "/v1/models"},
    {"null_secret", "/v1/" TOKEN, NULL, "/v1/" TOKEN},
    {"empty_secret", "/v1/x", "", "/v1/x"},
    {"empty_path", "", TOKEN, ""},
    {"short_secret_everywhere", "abcabcXabc", "abc", "[REDACTED][REDACTED]X[REDACTED]"},
    {"overlap_left_to_right", "aaa", "aa", "[REDACTED]a"},
    {"controls_replaced", "/\r\na/" TOKEN, TOKEN, "/??a/[REDACTED]"},
};

static void
redact_table(void **state)
{
    struct nonoproxy_audit_event *ev = new_events(1);
    size_t i;

    (void)state;
    for (i = 0; i < NP_ARRAY_LEN(REDACT_ROWS); i++) {
        const struct redact_row *r = &REDACT_ROWS[i];
        memset(ev->path, 'Z', sizeof(ev->path));
        np_audit_set_path(ev, r->path, strlen(r->path), r->secret);
        if (strcmp(ev->path, r->expected) != 0) {
            fail_msg("redact row %s: got \"%s\"", r->rule, ev->path);
        }
    }
    free(ev);
}

/* Build a path of `before` 'a', then TOKEN, then `after` 'b' into buf; return its length. */
static size_t
long_path(char *buf, size_t cap, size_t before, size_t after)
{
    memset(buf, 'a', before);
    (void)snprintf(buf + before, cap - before, "%s", TOKEN);
    memset(buf + before + 64, 'b', after);
    return before + 64 + after;
}

struct cut_row {
    const char *rule;
    size_t before; /* 'a' before the token in the path */
    size_t after;  /* 'b' after it */
    size_t na;     /* expected: na 'a', mid, nb 'b', tail */
    const char *mid;
    size_t nb;
    const char *tail;
};

/* Build the row's expected field: na 'a', then mid, then nb 'b', then tail. */
static void
expected_text(char *buf, size_t cap, const struct cut_row *r)
{
    size_t pos = r->na;

    memset(buf, 'a', r->na);
    pos += (size_t)snprintf(buf + pos, cap - pos, "%s", r->mid);
    memset(buf + pos, 'b', r->nb);
    pos += r->nb;
    (void)snprintf(buf + pos, cap - pos, "%s", r->tail);
}

/* The field holds 511 characters; a truncated value keeps 508 and ends in "...". */
static const struct cut_row CUT_ROWS[] = {
    {"token_across_cut", 505, 100, 505, "[RE", 0, "..."},
    {"token_across_field_end", 480, 100, 480, "[REDACTED]", 18, "..."},
    {"token_before_cut", 444, 100, 444, "[REDACTED]", 54, "..."},
    {"token_far_beyond_cut", 3000, 10, 508, "", 0, "..."},
    {"redacted_exactly_fits", 501, 0, 501, "[REDACTED]", 0, ""},
    {"one_more_is_truncated", 502, 0, 502, "[REDAC", 0, "..."},
};

static void
redact_long_path_token_across_cut(void **state)
{
    struct nonoproxy_audit_event *ev = new_events(1);
    char *path = malloc(4096);
    char *expected = malloc(NONOPROXY_AUDIT_PATH_LEN);
    size_t i;
    size_t len;

    (void)state;
    assert_non_null(path);
    assert_non_null(expected);
    for (i = 0; i < NP_ARRAY_LEN(CUT_ROWS); i++) {
        const struct cut_row *r = &CUT_ROWS[i];
        len = long_path(path, 4096, r->before, r->after);
        np_audit_set_path(ev, path, len, TOKEN);
        expected_text(expected, NONOPROXY_AUDIT_PATH_LEN, r);
        if (strcmp(ev->path, expected) != 0) {
            fail_msg("cut row %s: got \"%s\"", r->rule, ev->path);
        }
        assert_null(strstr(ev->path, "0123"));
    }

    /* Without a secret the same path keeps the token (the control for the rows above). */
    len = long_path(path, 4096, 480, 100);
    np_audit_set_path(ev, path, len, NULL);
    assert_non_null(strstr(ev->path, "0123456789abcdef"));

    free(path);
    free(expected);
    free(ev);
}

/* Issue #9 hole 4: the target field (259 characters) is redacted across the whole input,
 * then cut, so a token straddling the cut leaves no digit behind; the same holds for every
 * field np_audit_set_redacted fills. */
static void
redact_target_token_across_cut(void **state)
{
    struct nonoproxy_audit_event *ev = new_events(1);
    char *host = malloc(1024);
    size_t before;

    (void)state;
    assert_non_null(host);
    for (before = 150; before < 270; before++) {
        size_t len = long_path(host, 1024, before, 10);
        size_t k;

        np_audit_set_redacted(ev->target, sizeof(ev->target), host, len, TOKEN);
        for (k = 0; k + 3 <= 16; k++) { /* every 3-digit piece of the token */
            char piece[4];

            memcpy(piece, &TOKEN[k], 3);
            piece[3] = '\0';
            if (strstr(ev->target, piece) != NULL) {
                fail_msg("%zu 'a' before the token: \"%s\" survives in \"%s\"", before, piece,
                         ev->target);
            }
        }
    }
    free(host);
    free(ev);
}

/* Found by fuzz_audit_json: a byte that is not UTF-8 before the token's last 63 characters.
 * The JSON writer spelled it \u00a0, whose last digit completed the token in the log line.
 * Such bytes become '?' in a redacted field; well-formed UTF-8 stays. */
static void
escape_digits_never_complete_the_token(void **state)
{
    struct nonoproxy_audit_event *ev = new_events(1);
    char in[80];
    char *json = malloc(NONOPROXY_AUDIT_JSON_MAX);
    unsigned b;

    (void)state;
    assert_non_null(json);
    for (b = 0x80; b <= 0xff; b++) {
        in[0] = (char)b;
        memcpy(in + 1, &TOKEN[1], 63);
        np_audit_set_redacted(ev->path, sizeof(ev->path), in, 64, TOKEN);
        assert_true(nonoproxy_audit_event_to_json(ev, json, NONOPROXY_AUDIT_JSON_MAX) > 0);
        if (strstr(json, TOKEN) != NULL) {
            fail_msg("byte 0x%02x before the token's tail spells it in the JSON", b);
        }
    }
    np_audit_set_redacted(ev->path, sizeof(ev->path), "/caf\xc3\xa9", 6, TOKEN);
    assert_string_equal(ev->path, "/caf\xc3\xa9");
    np_audit_set_redacted(ev->path, sizeof(ev->path), "/x\xc3", 3, TOKEN); /* cut sequence */
    assert_string_equal(ev->path, "/x?");
    free(json);
    free(ev);
}

/* A short secret that grows the path when redacted: the output is cut, not overflowed. */
static void
redact_expansion_is_truncated(void **state)
{
    struct nonoproxy_audit_event *ev = new_events(1);
    char *path = malloc(600);
    char *expected = malloc(NONOPROXY_AUDIT_PATH_LEN);
    size_t i;

    (void)state;
    assert_non_null(path);
    assert_non_null(expected);
    for (i = 0; i < 600; i++) {
        path[i] = "xyz"[i % 3];
    }
    for (i = 0; i < 508; i++) {
        expected[i] = "[REDACTED]"[i % 10];
    }
    memcpy(expected + 508, "...", 4);
    np_audit_set_path(ev, path, 600, "xyz");
    assert_string_equal(ev->path, expected);
    free(path);
    free(expected);
    free(ev);
}

/* ---- names ----------------------------------------------------------------------------- */

static void
mode_names(void **state)
{
    static const struct {
        enum nonoproxy_audit_mode mode;
        const char *name;
    } rows[] = {
        {NONOPROXY_MODE_CONNECT, "connect"}, {NONOPROXY_MODE_FORWARD, "forward"},
        {NONOPROXY_MODE_REVERSE, "reverse"}, {NONOPROXY_MODE_EXTERNAL, "external"},
        {(enum nonoproxy_audit_mode)99, ""},
    };
    size_t i;

    (void)state;
    for (i = 0; i < NP_ARRAY_LEN(rows); i++) {
        assert_string_equal(nonoproxy_audit_mode_name(rows[i].mode), rows[i].name);
    }
}

static void
denial_category_names(void **state)
{
    static const struct {
        enum nonoproxy_denial_category cat;
        const char *name;
    } rows[] = {
        {NONOPROXY_DENIAL_NONE, ""},
        {NONOPROXY_DENIAL_AUTHENTICATION_FAILED, "authentication_failed"},
        {NONOPROXY_DENIAL_HOST_DENIED, "host_denied"},
        {NONOPROXY_DENIAL_UPSTREAM_CONNECT_FAILED, "upstream_connect_failed"},
        {NONOPROXY_DENIAL_CONNECT_BYPASSES_L7, "connect_bypasses_l7"},
        {NONOPROXY_DENIAL_EXTERNAL_PROXY_REJECTED, "external_proxy_rejected"},
        {NONOPROXY_DENIAL_MANAGED_CREDENTIAL_UNAVAILABLE, "managed_credential_unavailable"},
        {NONOPROXY_DENIAL_CONNECTION_LIMIT, "connection_limit"},
        {NONOPROXY_DENIAL_SELF_REQUEST, "self_request"},
        {NONOPROXY_DENIAL_MALFORMED_REQUEST, "malformed_request"},
        {NONOPROXY_DENIAL_REQUEST_TIMEOUT, "request_timeout"},
        {NONOPROXY_DENIAL_UNSUPPORTED_REQUEST, "unsupported_request"},
        {NONOPROXY_DENIAL_ROUTE_NOT_FOUND, "route_not_found"},
        {NONOPROXY_DENIAL_UPSTREAM_TIMEOUT, "upstream_timeout"},
        {NONOPROXY_DENIAL_ENDPOINT_POLICY, "endpoint_policy"},
        {NONOPROXY_DENIAL_RATE_LIMITED, "rate_limited"},
        {(enum nonoproxy_denial_category)999, ""},
    };
    size_t i;

    (void)state;
    for (i = 0; i < NP_ARRAY_LEN(rows); i++) {
        assert_string_equal(nonoproxy_denial_category_name(rows[i].cat), rows[i].name);
    }
}

/* The other enum fields: every value, and "" for one that does not exist. */
static void
field_names(void **state)
{
    (void)state;
    assert_string_equal(nonoproxy_audit_kind_name(NONOPROXY_EVENT_DECISION), "decision");
    assert_string_equal(nonoproxy_audit_kind_name(NONOPROXY_EVENT_CLOSE), "close");
    assert_string_equal(nonoproxy_audit_kind_name((enum nonoproxy_audit_kind)7), "");
    assert_string_equal(nonoproxy_audit_decision_name(NONOPROXY_DECISION_ALLOW), "allow");
    assert_string_equal(nonoproxy_audit_decision_name(NONOPROXY_DECISION_DENY), "deny");
    assert_string_equal(nonoproxy_audit_decision_name((enum nonoproxy_audit_decision)7), "");
    assert_string_equal(nonoproxy_auth_mechanism_name(NONOPROXY_AUTH_MECH_NONE), "");
    assert_string_equal(nonoproxy_auth_mechanism_name(NONOPROXY_AUTH_MECH_PROXY_AUTHORIZATION),
                        "proxy_authorization");
    assert_string_equal(nonoproxy_auth_mechanism_name(NONOPROXY_AUTH_MECH_PHANTOM_HEADER),
                        "phantom_header");
    assert_string_equal(nonoproxy_auth_mechanism_name(NONOPROXY_AUTH_MECH_PHANTOM_PATH),
                        "phantom_path");
    assert_string_equal(nonoproxy_auth_mechanism_name(NONOPROXY_AUTH_MECH_PHANTOM_QUERY),
                        "phantom_query");
    assert_string_equal(nonoproxy_auth_outcome_name(NONOPROXY_AUTH_OUTCOME_NONE), "");
    assert_string_equal(nonoproxy_auth_outcome_name(NONOPROXY_AUTH_OUTCOME_SUCCEEDED), "succeeded");
    assert_string_equal(nonoproxy_auth_outcome_name(NONOPROXY_AUTH_OUTCOME_FAILED), "failed");
    assert_string_equal(nonoproxy_inject_mode_name(NONOPROXY_INJECT_NONE), "");
    assert_string_equal(nonoproxy_inject_mode_name(NONOPROXY_INJECT_HEADER), "header");
    assert_string_equal(nonoproxy_inject_mode_name(NONOPROXY_INJECT_URL_PATH), "url_path");
    assert_string_equal(nonoproxy_inject_mode_name(NONOPROXY_INJECT_QUERY_PARAM), "query_param");
    assert_string_equal(nonoproxy_inject_mode_name(NONOPROXY_INJECT_BASIC_AUTH), "basic_auth");
    assert_string_equal(nonoproxy_inject_mode_name((enum nonoproxy_inject_mode)9), "");
}

/* ---- JSON ------------------------------------------------------------------------------ */

static void
full_event(struct nonoproxy_audit_event *ev)
{
    memset(ev, 0, sizeof(*ev));
    ev->timestamp_unix_ms = 1700000000123u;
    ev->kind = NONOPROXY_EVENT_CLOSE;
    ev->mode = NONOPROXY_MODE_CONNECT;
    ev->decision = NONOPROXY_DECISION_ALLOW;
    np_audit_set(ev->target, sizeof(ev->target), "api.example.com", 15);
    ev->has_port = true;
    ev->port = 443;
    np_audit_set(ev->method, sizeof(ev->method), "CONNECT", 7);
    np_audit_set(ev->path, sizeof(ev->path), "/v1/x", 5);
    ev->status = 200;
    np_audit_set(ev->reason, sizeof(ev->reason), "allowed by allowlist", 20);
    np_audit_set(ev->route_id, sizeof(ev->route_id), "openai", 6);
    ev->auth_mechanism = NONOPROXY_AUTH_MECH_PROXY_AUTHORIZATION;
    ev->auth_outcome = NONOPROXY_AUTH_OUTCOME_SUCCEEDED;
    ev->managed_credential_active = NONOPROXY_TRI_TRUE;
    ev->injection_mode = NONOPROXY_INJECT_HEADER;
    ev->denial_category = NONOPROXY_DENIAL_HOST_DENIED;
    ev->bytes_up = 1234;
    ev->bytes_down = 5678;
    ev->duration_ms = 42;
}

static const char FULL_JSON[] =
    "{\"timestamp_unix_ms\":1700000000123,\"event\":\"close\",\"mode\":\"connect\","
    "\"decision\":\"allow\",\"target\":\"api.example.com\",\"port\":443,\"method\":\"CONNECT\","
    "\"path\":\"/v1/x\",\"status\":200,\"reason\":\"allowed by allowlist\","
    "\"route_id\":\"openai\",\"auth_mechanism\":\"proxy_authorization\","
    "\"auth_outcome\":\"succeeded\",\"managed_credential_active\":true,"
    "\"injection_mode\":\"header\",\"denial_category\":\"host_denied\",\"bytes_up\":1234,"
    "\"bytes_down\":5678,\"duration_ms\":42}";

static const char MINIMAL_JSON[] =
    "{\"timestamp_unix_ms\":0,\"event\":\"decision\",\"mode\":\"connect\","
    "\"decision\":\"allow\",\"target\":null,\"port\":null,\"method\":null,\"path\":null,"
    "\"status\":null,\"reason\":null,\"route_id\":null,\"auth_mechanism\":null,"
    "\"auth_outcome\":null,\"managed_credential_active\":null,\"injection_mode\":null,"
    "\"denial_category\":null,\"bytes_up\":null,\"bytes_down\":null,\"duration_ms\":null}";

static void
json_full_event(void **state)
{
    struct nonoproxy_audit_event *ev = new_events(1);
    char *json;

    (void)state;
    full_event(ev);
    json = to_json(ev);
    assert_string_equal(json, FULL_JSON);
    free(json);
    free(ev);
}

static void
json_minimal_event_is_nulls(void **state)
{
    struct nonoproxy_audit_event *ev = new_events(1);
    char *json;

    (void)state;
    json = to_json(ev);
    assert_string_equal(json, MINIMAL_JSON);
    free(json);
    free(ev);
}

/* Fields whose null-ness depends on another field: port on has_port, close-only numbers on
 * kind, tristate false, deny decision, other enum names. */
static void
json_conditional_fields(void **state)
{
    struct nonoproxy_audit_event *ev = new_events(1);
    char *json;

    (void)state;
    full_event(ev);
    ev->kind = NONOPROXY_EVENT_DECISION;
    ev->decision = NONOPROXY_DECISION_DENY;
    ev->mode = NONOPROXY_MODE_EXTERNAL;
    ev->has_port = false;
    ev->status = 0;
    ev->managed_credential_active = NONOPROXY_TRI_FALSE;
    ev->auth_mechanism = NONOPROXY_AUTH_MECH_PHANTOM_QUERY;
    ev->auth_outcome = NONOPROXY_AUTH_OUTCOME_FAILED;
    ev->injection_mode = NONOPROXY_INJECT_BASIC_AUTH;
    ev->denial_category = NONOPROXY_DENIAL_CONNECTION_LIMIT;
    json = to_json(ev);
    assert_string_equal(
        json, "{\"timestamp_unix_ms\":1700000000123,\"event\":\"decision\",\"mode\":\"external\","
              "\"decision\":\"deny\",\"target\":\"api.example.com\",\"port\":null,"
              "\"method\":\"CONNECT\",\"path\":\"/v1/x\",\"status\":null,"
              "\"reason\":\"allowed by allowlist\",\"route_id\":\"openai\","
              "\"auth_mechanism\":\"phantom_query\",\"auth_outcome\":\"failed\","
              "\"managed_credential_active\":false,\"injection_mode\":\"basic_auth\","
              "\"denial_category\":\"connection_limit\",\"bytes_up\":null,\"bytes_down\":null,"
              "\"duration_ms\":null}");
    free(json);

    ev->has_port = true;
    ev->port = 0;
    ev->kind = NONOPROXY_EVENT_CLOSE;
    ev->bytes_up = 0;
    ev->bytes_down = UINT64_MAX;
    ev->duration_ms = 1;
    json = to_json(ev);
    assert_non_null(strstr(json, "\"port\":0,"));
    assert_non_null(strstr(json, "\"bytes_up\":0,\"bytes_down\":18446744073709551615,"
                                 "\"duration_ms\":1}"));
    free(json);
    free(ev);
}

static void
json_enum_names(void **state)
{
    static const struct {
        enum nonoproxy_auth_mechanism mech;
        enum nonoproxy_inject_mode inj;
        const char *mech_json;
        const char *inj_json;
    } rows[] = {
        {NONOPROXY_AUTH_MECH_NONE, NONOPROXY_INJECT_NONE, "null", "null"},
        {NONOPROXY_AUTH_MECH_PROXY_AUTHORIZATION, NONOPROXY_INJECT_HEADER,
         "\"proxy_authorization\"", "\"header\""},
        {NONOPROXY_AUTH_MECH_PHANTOM_HEADER, NONOPROXY_INJECT_URL_PATH, "\"phantom_header\"",
         "\"url_path\""},
        {NONOPROXY_AUTH_MECH_PHANTOM_PATH, NONOPROXY_INJECT_QUERY_PARAM, "\"phantom_path\"",
         "\"query_param\""},
        {NONOPROXY_AUTH_MECH_PHANTOM_QUERY, NONOPROXY_INJECT_BASIC_AUTH, "\"phantom_query\"",
         "\"basic_auth\""},
        {(enum nonoproxy_auth_mechanism)42, (enum nonoproxy_inject_mode)42, "null", "null"},
    };
    struct nonoproxy_audit_event *ev = new_events(1);
    char want[128];
    size_t i;

    (void)state;
    for (i = 0; i < NP_ARRAY_LEN(rows); i++) {
        char *json;
        ev->auth_mechanism = rows[i].mech;
        ev->injection_mode = rows[i].inj;
        json = to_json(ev);
        (void)snprintf(want, sizeof(want), "\"auth_mechanism\":%s,", rows[i].mech_json);
        assert_non_null(strstr(json, want));
        (void)snprintf(want, sizeof(want), "\"injection_mode\":%s,", rows[i].inj_json);
        assert_non_null(strstr(json, want));
        free(json);
    }
    free(ev);
}

struct escape_row {
    const char *rule;
    const char *raw;      /* written into the reason field */
    const char *expected; /* JSON value of "reason" */
};

static const struct escape_row ESCAPE_ROWS[] = {
    {"quote", "say \"hi\"", "\"say \\\"hi\\\"\""},
    {"backslash", "a\\b", "\"a\\\\b\""},
    {"named_controls", "\n\r\t", "\"\\n\\r\\t\""},
    {"other_controls", "\x01\x08\x0c\x1f", "\"\\u0001\\u0008\\u000c\\u001f\""},
    {"del", "a\x7f", "\"a\\u007f\""},
    {"slash_kept", "/a/b", "\"/a/b\""},
    {"utf8_two_bytes_kept", "caf\xc3\xa9", "\"caf\xc3\xa9\""},
    {"utf8_three_bytes_kept", "\xe2\x82\xac", "\"\xe2\x82\xac\""},
    {"utf8_four_bytes_kept", "\xf0\x9f\x98\x80", "\"\xf0\x9f\x98\x80\""},
    {"utf8_max_kept", "\xf4\x8f\xbf\xbf", "\"\xf4\x8f\xbf\xbf\""},
    {"invalid_byte", "a\xff", "\"a\\u00ff\""},
    {"lone_continuation", "\x80x", "\"\\u0080x\""},
    {"truncated_at_end", "x\xe2\x82", "\"x\\u00e2\\u0082\""},
    {"lead_then_ascii", "\xc3(", "\"\\u00c3(\""},
    {"overlong_two", "\xc0\xaf", "\"\\u00c0\\u00af\""},
    {"overlong_three", "\xe0\x80\xaf", "\"\\u00e0\\u0080\\u00af\""},
    {"surrogate", "\xed\xa0\x80", "\"\\u00ed\\u00a0\\u0080\""},
    {"above_max", "\xf4\x90\x80\x80", "\"\\u00f4\\u0090\\u0080\\u0080\""},
    {"f5_lead", "\xf5\x80\x80\x80", "\"\\u00f5\\u0080\\u0080\\u0080\""},
};

static void
json_escaping(void **state)
{
    struct nonoproxy_audit_event *ev = new_events(1);
    char want[256];
    size_t i;

    (void)state;
    for (i = 0; i < NP_ARRAY_LEN(ESCAPE_ROWS); i++) {
        const struct escape_row *r = &ESCAPE_ROWS[i];
        char *json;
        /* Written directly: np_audit_set would already replace the control characters. */
        memset(ev->reason, 0, sizeof(ev->reason));
        memcpy(ev->reason, r->raw, strlen(r->raw));
        json = to_json(ev);
        (void)snprintf(want, sizeof(want), "\"reason\":%s,\"route_id\"", r->expected);
        if (strstr(json, want) == NULL) {
            fail_msg("escape row %s: %s", r->rule, json);
        }
        assert_true(valid_utf8((const unsigned char *)json, strlen(json)));
        free(json);
    }
    free(ev);
}

/* A field filled to its size without a NUL is read up to its size, not beyond. */
static void
json_unterminated_field(void **state)
{
    struct nonoproxy_audit_event *ev = new_events(1);
    char want[NONOPROXY_AUDIT_ROUTE_LEN + 64];
    char *json;

    (void)state;
    memset(ev->route_id, 'r', sizeof(ev->route_id));
    ev->auth_mechanism = NONOPROXY_AUTH_MECH_NONE;
    json = to_json(ev);
    (void)snprintf(want, sizeof(want), "\"route_id\":\"");
    memset(want + 12, 'r', NONOPROXY_AUDIT_ROUTE_LEN);
    (void)snprintf(want + 12 + NONOPROXY_AUDIT_ROUTE_LEN,
                   sizeof(want) - 12 - NONOPROXY_AUDIT_ROUTE_LEN, "\",\"auth_mechanism\":null");
    assert_non_null(strstr(json, want));
    free(json);
    free(ev);
}

/* snprintf contract: the return value is always the full length; the buffer holds a prefix of
 * the full text, NUL-terminated, never written at or past cap. */
static void
json_truncation(void **state)
{
    struct nonoproxy_audit_event *ev = new_events(1);
    char *buf = malloc(1024);
    char *ref = malloc(1024);
    size_t full;

    (void)state;
    assert_non_null(buf);
    assert_non_null(ref);
    full_event(ev);
    /* Written directly (np_audit_set would replace the control byte): a 3-byte UTF-8
     * sequence, a quote, a backslash and a control byte, each a multi-byte unit. */
    memset(ev->reason, 0, sizeof(ev->reason));
    memcpy(ev->reason, "\xe2\x82\xac \"q\\ \x01", 9);
    full = nonoproxy_audit_event_to_json(ev, ref, 1024);
    assert_true(full < 1000);
    assert_int_equal(strlen(ref), full);
    assert_int_equal(nonoproxy_audit_event_to_json(ev, NULL, 0), full);
    for (size_t cap = 1; cap <= full + 1; cap++) {
        size_t got;
        memset(buf, 'Z', 1024);
        assert_int_equal(nonoproxy_audit_event_to_json(ev, buf, cap), full);
        assert_int_equal(buf[cap], 'Z'); /* nothing written past cap - 1 */
        got = strnlen(buf, cap);
        assert_true(got < cap); /* NUL-terminated inside the buffer */
        assert_memory_equal(buf, ref, got);
        assert_true(valid_utf8((const unsigned char *)buf, got));
        if (got > 0 && buf[got - 1] == '\\') {
            /* a cut may not leave half an escape: a trailing backslash must be escaped */
            assert_true(got >= 2 && buf[got - 2] == '\\');
        }
        /* Units are at most 32 bytes (the longest name or number with its punctuation). */
        assert_true(got + 32 >= cap - 1);
    }
    memset(buf, 'Z', 1024);
    assert_int_equal(nonoproxy_audit_event_to_json(ev, buf, full + 1), full);
    assert_string_equal(buf, ref);
    memset(buf, 'Z', 1024);
    assert_int_equal(nonoproxy_audit_event_to_json(ev, buf, full), full);
    assert_int_equal(strlen(buf), full - 1); /* only the closing brace is missing */
    assert_memory_equal(buf, ref, full - 1);
    free(ref);
    free(buf);
    free(ev);
}

/* Fill every string field with byte c, to its full size (no NUL) when unterminated. */
static void
fill_strings(struct nonoproxy_audit_event *ev, char c, bool unterminated)
{
    size_t t = unterminated ? 0 : 1;

    memset(ev->target, c, sizeof(ev->target) - t);
    memset(ev->method, c, sizeof(ev->method) - t);
    memset(ev->path, c, sizeof(ev->path) - t);
    memset(ev->reason, c, sizeof(ev->reason) - t);
    memset(ev->route_id, c, sizeof(ev->route_id) - t);
}

/* The largest event (every byte escaped to 6, every name the longest, every number 20
 * digits) fits NONOPROXY_AUDIT_JSON_MAX. */
static void
json_worst_case_fits(void **state)
{
    static const char fill[] = {'\x01', '\xff', '"'};
    struct nonoproxy_audit_event *ev = new_events(1);
    char *buf = malloc(NONOPROXY_AUDIT_JSON_MAX);
    size_t strs = sizeof(ev->target) + sizeof(ev->method) + sizeof(ev->path) + sizeof(ev->reason) +
                  sizeof(ev->route_id);
    size_t f;
    size_t base;

    (void)state;
    assert_non_null(buf);
    ev->timestamp_unix_ms = UINT64_MAX;
    ev->kind = NONOPROXY_EVENT_CLOSE;
    ev->mode = NONOPROXY_MODE_EXTERNAL;
    ev->decision = NONOPROXY_DECISION_ALLOW;
    ev->has_port = true;
    ev->port = UINT16_MAX;
    ev->status = UINT16_MAX;
    ev->auth_mechanism = NONOPROXY_AUTH_MECH_PROXY_AUTHORIZATION;
    ev->auth_outcome = NONOPROXY_AUTH_OUTCOME_SUCCEEDED;
    ev->managed_credential_active = NONOPROXY_TRI_FALSE;
    ev->injection_mode = NONOPROXY_INJECT_QUERY_PARAM;
    ev->denial_category = NONOPROXY_DENIAL_MANAGED_CREDENTIAL_UNAVAILABLE;
    ev->bytes_up = UINT64_MAX;
    ev->bytes_down = UINT64_MAX;
    ev->duration_ms = UINT64_MAX;

    /* The same event with one plain byte per string character gives the skeleton size. */
    fill_strings(ev, 'x', true);
    base = nonoproxy_audit_event_to_json(ev, buf, NONOPROXY_AUDIT_JSON_MAX) - strs;
    for (f = 0; f < sizeof(fill); f++) {
        fill_strings(ev, fill[f], true);
        size_t n = nonoproxy_audit_event_to_json(ev, buf, NONOPROXY_AUDIT_JSON_MAX);
        assert_true(n < NONOPROXY_AUDIT_JSON_MAX);
        assert_int_equal(strlen(buf), n);
        assert_true(valid_utf8((const unsigned char *)buf, n));
        if (fill[f] != '"') {
            assert_int_equal(n, base + 6 * strs); /* every byte escaped as \u00XX */
        } else {
            assert_int_equal(n, base + 2 * strs);
        }
    }
    free(buf);
    free(ev);
}

/* Random bytes in every string field always give valid UTF-8 with no raw control byte. */
static void
json_random_bytes_stay_valid(void **state)
{
    struct nonoproxy_audit_event *ev = new_events(1);
    char *buf = malloc(NONOPROXY_AUDIT_JSON_MAX);
    unsigned seed = 12345;
    int round;

    (void)state;
    assert_non_null(buf);
    for (round = 0; round < 300; round++) {
        unsigned char *bytes = (unsigned char *)ev;
        size_t i;
        size_t n;
        for (i = 0; i < sizeof(*ev); i++) {
            seed = seed * 1103515245u + 12345u;
            bytes[i] = (unsigned char)(seed >> 16);
        }
        ev->has_port = (seed & 0x100u) != 0; /* a bool must hold 0 or 1 */
        n = nonoproxy_audit_event_to_json(ev, buf, NONOPROXY_AUDIT_JSON_MAX);
        assert_true(n < NONOPROXY_AUDIT_JSON_MAX);
        assert_true(valid_utf8((const unsigned char *)buf, n));
        for (i = 0; i < n; i++) {
            assert_true((unsigned char)buf[i] >= 0x20);
        }
    }
    free(buf);
    free(ev);
}

/* A token spelt with percent-escapes (any mix) is redacted in the path too. */
static void
redact_percent_encoded_token(void **state)
{
    static const char tok[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    struct nonoproxy_audit_event ev;
    char path[512];
    size_t n = 0;
    size_t i;

    (void)state;
    n += (size_t)snprintf(path + n, sizeof(path) - n, "/svc/x?k=");
    for (i = 0; i < 64; i++) {
        n += (size_t)snprintf(path + n, sizeof(path) - n, i % 2 == 0 ? "%%%02X" : "%c",
                              i % 2 == 0 ? (unsigned char)tok[i] : tok[i]);
    }
    n += (size_t)snprintf(path + n, sizeof(path) - n, "&z=1");
    memset(&ev, 0, sizeof(ev));
    np_audit_set_path(&ev, path, n, tok);
    assert_string_equal(ev.path, "/svc/x?k=[REDACTED]&z=1");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ring_drains_oldest_first),
        cmocka_unit_test(ring_overflow_overwrites_oldest_and_counts),
        cmocka_unit_test(ring_partial_drain_keeps_the_rest),
        cmocka_unit_test(ring_wraps_around),
        cmocka_unit_test(ring_dropped_reset_by_empty_drain),
        cmocka_unit_test(ring_capacity_zero_records_nothing),
        cmocka_unit_test(ring_copies_whole_event),
        cmocka_unit_test(ring_concurrent_push_and_drain),
        cmocka_unit_test(event_init_sets_defaults),
        cmocka_unit_test(set_truncates_and_replaces_controls),
        cmocka_unit_test(redact_table),
        cmocka_unit_test(redact_long_path_token_across_cut),
        cmocka_unit_test(redact_percent_encoded_token),
        cmocka_unit_test(redact_expansion_is_truncated),
        cmocka_unit_test(redact_target_token_across_cut),
        cmocka_unit_test(escape_digits_never_complete_the_token),
        cmocka_unit_test(mode_names),
        cmocka_unit_test(field_names),
        cmocka_unit_test(denial_category_names),
        cmocka_unit_test(json_full_event),
        cmocka_unit_test(json_minimal_event_is_nulls),
        cmocka_unit_test(json_conditional_fields),
        cmocka_unit_test(json_enum_names),
        cmocka_unit_test(json_escaping),
        cmocka_unit_test(json_unterminated_field),
        cmocka_unit_test(json_truncation),
        cmocka_unit_test(json_worst_case_fits),
        cmocka_unit_test(json_random_bytes_stay_valid),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
