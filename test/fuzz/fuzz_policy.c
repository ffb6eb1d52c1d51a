/* libFuzzer target: the policy of issue 14 (SPEC §13): endpoint rules (np_route_rules_compile
 * over fuzzed rules, np_route_rules_allow over a fuzzed request path after the route's own
 * normalisation), allow/deny list entries with address ranges (np_host_entry_normalize), and
 * the rate limit's token bucket (np_ratelimit_take) over a fuzzed clock.
 * Input: byte 0 selects the part; then:
 *   0, rules: lines (LF): the request method, the request path, then rules "METHOD PATH"
 *      (at most MAX_RULES).
 *   1, entries: lines (LF), each a host list entry.
 *   2, bucket: bytes 1-4 rpm, 5-6 burst, 7-8 max delay in ms; then each pair of bytes a step
 *      of the clock in microseconds (monotonic).
 * Properties:
 *   - rules: no crash, no leak; a rule set that compiles recompiles from its canonical
 *     spellings to the same spellings; a match answer is the same when asked twice; a set
 *     holding the glob "any method, every segment" allows every normalised path; a set holding only
 * "GET <p>" never allows another method.
 *   - entries: a normalised entry normalises to itself (one spelling, whatever was written).
 *   - bucket: never more tokens (taken at once or reserved) than burst plus what the rate gave
 *     by the time they are used; a reserved token's wait never exceeds the max delay. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <nonoproxy/config.h>

#include "buf.h"
#include "hostfilter.h"
#include "ratelimit.h"
#include "route_path.h"
#include "route_rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_INPUT 8192
#define MAX_RULES 16
#define MAX_LINES (MAX_RULES + 2)
#define PATH_CAP  (MAX_INPUT * 3 + 16)

/* Split text (NUL-terminated, modified) at LF into at most max lines. */
static size_t
split_lines(char *text, char **lines, size_t max)
{
    size_t n = 0;
    char *p = text;

    while (n < max && p != NULL) {
        char *nl = strchr(p, '\n');

        lines[n++] = p;
        if (nl != NULL) {
            *nl = '\0';
            p = nl + 1;
        } else {
            p = NULL;
        }
    }
    return n;
}

/* Fill rules from lines "METHOD PATH" (no space: the whole line is the path, method "*"). */
static size_t
parse_rules(char **lines, size_t n, struct nonoproxy_endpoint_rule *rules)
{
    size_t i;

    for (i = 0; i < n; i++) {
        char *sp = strchr(lines[i], ' ');

        if (sp != NULL) {
            *sp = '\0';
            rules[i].method = lines[i];
            rules[i].path = sp + 1;
        } else {
            rules[i].method = "*";
            rules[i].path = lines[i];
        }
    }
    return n;
}

/* Whether the compiled set, recompiled from its canonical spellings, gives the same ones. */
static void
check_recompile(const struct np_route_rules *rs)
{
    struct nonoproxy_endpoint_rule again[MAX_RULES];
    struct np_route_rules rs2;
    char why[256];
    size_t i;

    for (i = 0; i < rs->n; i++) {
        again[i].method = rs->rules[i].method != NULL ? rs->rules[i].method : "*";
        again[i].path = rs->rules[i].path;
    }
    if (np_route_rules_compile(again, rs->n, &rs2, why, sizeof(why)) != 0) {
        abort(); /* a canonical spelling must compile */
    }
    for (i = 0; i < rs->n; i++) {
        if (strcmp(rs2.rules[i].path, rs->rules[i].path) != 0) {
            abort();
        }
    }
    np_route_rules_free(&rs2);
}

/* Whether the set holds the rule method, path exactly as written. */
static bool
has_rule(const struct nonoproxy_endpoint_rule *rules, size_t n, const char *method,
         const char *path)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (strcmp(rules[i].method, method) == 0 && strcmp(rules[i].path, path) == 0) {
            return true;
        }
    }
    return false;
}

static void
fuzz_rules(char *text)
{
    static char norm[PATH_CAP];
    static char scratch[PATH_CAP];
    struct nonoproxy_endpoint_rule rules[MAX_RULES];
    char *lines[MAX_LINES];
    size_t n = split_lines(text, lines, MAX_LINES);
    struct np_route_rules rs;
    struct np_buf w;
    char why[256];
    size_t nr;
    bool a;
    bool b;

    if (n < 3) {
        return;
    }
    nr = parse_rules(lines + 2, n - 2, rules);
    if (np_route_rules_compile(rules, nr, &rs, why, sizeof(why)) != 0) {
        return;
    }
    check_recompile(&rs);
    np_buf_init(&w, norm, sizeof(norm));
    if (np_route_normalise(lines[1], strlen(lines[1]), &w) == 0 && np_buf_ok(&w) && w.len > 0 &&
        norm[0] == '/') {
        struct np_rule_query q = {lines[0], norm, w.len, scratch, sizeof(scratch)};

        a = np_route_rules_allow(&rs, &q);
        b = np_route_rules_allow(&rs, &q);
        if (a != b) {
            abort();
        }
        if (has_rule(rules, nr, "*", "/**") && !a) {
            abort(); /* any method, every segment: every path is allowed */
        }
        if (nr == 1 && strcmp(rules[0].method, "GET") == 0 && strcmp(lines[0], "GET") != 0 && a) {
            abort(); /* a GET rule never lets another method through */
        }
    }
    np_route_rules_free(&rs);
}

static void
fuzz_entries(char *text)
{
    char *lines[64];
    size_t n = split_lines(text, lines, 64);
    char norm[NP_HOST_BUF + 64];
    char again[NP_HOST_BUF + 64];
    char why[128];
    size_t i;

    for (i = 0; i < n; i++) {
        if (np_host_entry_normalize(lines[i], norm, sizeof(norm), why, sizeof(why)) != 0) {
            continue;
        }
        if (np_host_entry_normalize(norm, again, sizeof(again), why, sizeof(why)) != 0 ||
            strcmp(norm, again) != 0) {
            abort(); /* one spelling: a normalised entry is its own normal form */
        }
    }
}

static void
fuzz_bucket(const uint8_t *d, size_t size)
{
    struct np_ratelimit rl;
    uint32_t rpm;
    uint32_t burst;
    uint32_t delay_ms;
    uint64_t now = 1000000000u; /* ns */
    uint64_t granted = 0;
    size_t i;

    if (size < 9) {
        return;
    }
    rpm = ((uint32_t)d[1] << 24 | (uint32_t)d[2] << 16 | (uint32_t)d[3] << 8 | d[4]) %
          (NP_RATE_RPM_MAX + 1);
    burst = ((uint32_t)d[5] << 8 | d[6]) % 1000u;
    delay_ms = ((uint32_t)d[7] << 8 | d[8]);
    np_ratelimit_init(&rl, rpm, burst, delay_ms);
    for (i = 9; i + 1 < size; i += 2) {
        uint64_t wait = 0;
        enum np_rate_verdict v;
        uint64_t used_at;
        uint64_t allowed;
        uint64_t cap = burst == 0 ? NP_RATE_BURST_DEFAULT : burst;

        now += ((uint64_t)d[i] << 8 | d[i + 1]) * 1000u;
        v = np_ratelimit_take(&rl, now, &wait);
        if (rpm == 0) {
            if (v != NP_RATE_GO) {
                abort();
            }
            continue;
        }
        if (v == NP_RATE_REFUSE) {
            continue;
        }
        if (v == NP_RATE_WAIT && wait > (uint64_t)delay_ms * 1000000u) {
            abort(); /* a reserved token never waits longer than the max delay */
        }
        granted++;
        used_at = now + (v == NP_RATE_WAIT ? wait : 0) - 1000000000u;
        /* burst at start, plus one token every 60 s / rpm, plus one for rounding */
        allowed = cap + used_at / (60000000000u / rpm) + 1;
        if (granted > allowed) {
            abort();
        }
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text;

    if (size < 1 || size > MAX_INPUT) {
        return 0;
    }
    if (data[0] % 3 == 2) {
        fuzz_bucket(data, size);
        return 0;
    }
    text = malloc(size);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    if (data[0] % 3 == 0) {
        fuzz_rules(text);
    } else {
        fuzz_entries(text);
    }
    free(text);
    return 0;
}
