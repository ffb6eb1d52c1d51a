/* Unit tests for lib/hostfilter.c (SPEC §3, §13): normalisation, hard deny list, allowlist entries
 * and matching, self detection, the whole decision with a scripted resolver, and the policy of
 * issue 14: denied_hosts (names never resolved, ranges on every address), allowlist ranges
 * (every address inside), strict mode and the decide callback's place in the order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "decide.h"
#include "hostfilter.h"

#define PROXY_PORT 38123

/* A string of n copies of c followed by tail, in a static buffer (one at a time). */
static const char *
long_name(size_t n, const char *tail)
{
    static char buf[600];
    size_t t = strlen(tail);

    assert_true(n + t < sizeof(buf));
    memset(buf, 'a', n);
    memcpy(buf + n, tail, t + 1);
    return buf;
}

/* Fill *ss from an address literal and a port; fails the test if text is not an address. */
static void
mk_addr(const char *text, uint16_t port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (strchr(text, ':') != NULL) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        assert_int_equal(inet_pton(AF_INET6, text, &s6->sin6_addr), 1);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        assert_int_equal(inet_pton(AF_INET, text, &s4->sin_addr), 1);
    }
}

static uint16_t
addr_port(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) {
        return ntohs(((const struct sockaddr_in *)(const void *)ss)->sin_port);
    }
    return ntohs(((const struct sockaddr_in6 *)(const void *)ss)->sin6_port);
}

static bool
is_printable(const char *s)
{
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f) {
            return false;
        }
    }
    return true;
}

/* ---- normalisation ---------------------------------------------------------------------- */

struct norm_row {
    const char *rule;
    const char *in;
    size_t len;       /* 0 = strlen(in) */
    const char *want; /* NULL = rejected */
};

static const struct norm_row norm_rows[] = {
    {"lowercases", "Example.COM", 0, "example.com"},
    {"trims_whitespace", " \t example.com \r\n", 0, "example.com"},
    {"strips_one_trailing_dot", "example.com.", 0, "example.com"},
    {"strips_all_trailing_dots", "EXAMPLE.com...", 0, "example.com"},
    {"keeps_hyphen_underscore_digits", "_srv.my-host9.example", 0, "_srv.my-host9.example"},
    {"single_label", "localhost", 0, "localhost"},
    {"v6_brackets_removed", "[::1]", 0, "::1"},
    {"v6_bare", "::1", 0, "::1"},
    {"v6_canonical_from_upper_long", "[FD00:0EC2:0:0:0:0:0:254]", 0, "fd00:ec2::254"},
    {"v6_canonical_bare_long", "fd00:ec2:0:0:0:0:0:254", 0, "fd00:ec2::254"},
    {"v6_canonical_leading_zeros", "[0000:0000::0001]", 0, "::1"},
    {"v6_mapped_dotted", "[::FFFF:169.254.169.254]", 0, "::ffff:169.254.169.254"},
    {"v6_mapped_hex", "::ffff:a9fe:a9fe", 0, "::ffff:169.254.169.254"},
    {"v6_trimmed", " [2001:DB8::1] ", 0, "2001:db8::1"},
    {"v4_dotted", "93.184.216.34", 0, "93.184.216.34"},
    {"v4_decimal_integer", "2852039166", 0, "169.254.169.254"},
    {"v4_hex_integer", "0xa9fea9fe", 0, "169.254.169.254"},
    {"v4_hex_integer_upper", "0XA9FEA9FE", 0, "169.254.169.254"},
    {"v4_octal_parts", "0251.0376.0251.0376", 0, "169.254.169.254"},
    {"v4_three_parts", "169.254.43518", 0, "169.254.169.254"},
    {"v4_two_parts", "127.1", 0, "127.0.0.1"},
    {"v4_hex_parts", "0x7f.0x0.0x0.0x1", 0, "127.0.0.1"},
    {"v4_octal_leading_zero", "010.0.0.1", 0, "8.0.0.1"},
    {"v4_trailing_dot", "169.254.169.254.", 0, "169.254.169.254"},
    {"v4_padded_hex", "0x0000000000a9fea9fe", 0, "169.254.169.254"},
    {"not_v4_five_parts_is_name", "1.2.3.4.5", 0, "1.2.3.4.5"},
    {"not_v4_overflow_is_name", "4294967296", 0, "4294967296"},
    {"not_v4_bad_octal_is_name", "1.2.3.08", 0, "1.2.3.08"},
    {"reject_space_inside", "a b", 0, NULL},
    {"reject_at", "a@b", 0, NULL},
    {"reject_slash", "a/b", 0, NULL},
    {"reject_backslash", "a\\b", 0, NULL},
    {"reject_control_char", "\x01x", 0, NULL},
    {"reject_del", "a\x7f", 0, NULL},
    {"reject_nul_inside", "a\0b", 3, NULL},
    {"reject_empty", "", 0, NULL},
    {"reject_only_spaces", "   ", 0, NULL},
    {"reject_only_dot", ".", 0, NULL},
    {"reject_only_dots", "...", 0, NULL},
    {"reject_empty_label", "a..b", 0, NULL},
    {"reject_leading_dot", ".a", 0, NULL},
    {"reject_percent", "%", 0, NULL},
    {"reject_percent_in_name", "exa%6dple.com", 0, NULL},
    {"reject_star", "*.example.com", 0, NULL},
    {"reject_non_ascii", "caf\xc3\xa9.com", 0, NULL},
    {"reject_colon_in_name", "example.com:443", 0, NULL},
    {"reject_bracket_in_name", "exa[mple", 0, NULL},
    {"reject_v6_zone", "[fe80::1%eth0]", 0, NULL},
    {"reject_v6_zone_bare", "fe80::1%25eth0", 0, NULL},
    {"reject_v6_unclosed", "[::1", 0, NULL},
    {"reject_v6_empty_brackets", "[]", 0, NULL},
    {"reject_v6_with_port", "[::1]:80", 0, NULL},
    {"reject_v4_in_brackets", "[1.2.3.4]", 0, NULL},
    {"reject_name_in_brackets", "[example.com]", 0, NULL},
    {"reject_bad_v6", ":::", 0, NULL},
};

static void
test_normalize_table(void **state)
{
    size_t i;
    char out[NP_HOST_BUF];

    (void)state;
    for (i = 0; i < NP_ARRAY_LEN(norm_rows); i++) {
        const struct norm_row *r = &norm_rows[i];
        const char *in = r->in;
        const char *want = r->want;
        size_t len = r->len;
        int rc;

        if (len == 0) {
            len = strlen(in);
        }
        memset(out, 'X', sizeof(out));
        rc = np_host_normalize(in, len, out, sizeof(out));
        if (want == NULL ? rc != -1 : (rc != 0 || strcmp(out, want) != 0)) {
            print_error("row %s: rc %d out '%s', want %s\n", r->rule, rc, rc == 0 ? out : "",
                        want == NULL ? "reject" : want);
            fail();
        }
    }
}

/* Fill name with a len-character host name made of 63-character labels. */
static void
labels_name(char *name, size_t len)
{
    size_t k;

    for (k = 0; k < len; k++) {
        name[k] = (k % 64 == 63) ? '.' : 'a';
    }
    name[len] = '\0';
}

static void
test_normalize_length_limit(void **state)
{
    char name[NP_HOST_BUF + 8];
    char out[NP_HOST_BUF];

    (void)state;
    labels_name(name, NP_MAX_HOST);
    assert_int_equal(np_host_normalize(name, NP_MAX_HOST, out, sizeof(out)), 0);
    assert_string_equal(out, name);
    labels_name(name, NP_MAX_HOST + 1);
    assert_int_equal(np_host_normalize(name, NP_MAX_HOST + 1, out, sizeof(out)), -1);
    /* Trailing dots do not count: they are stripped first. */
    labels_name(name, NP_MAX_HOST);
    name[NP_MAX_HOST] = '.';
    name[NP_MAX_HOST + 1] = '\0';
    assert_int_equal(np_host_normalize(name, NP_MAX_HOST + 1, out, sizeof(out)), 0);
}

static void
test_normalize_limits(void **state)
{
    char out[NP_HOST_BUF];
    char small[8];

    (void)state;
    /* Output capacity is honoured: "example.com" needs 12 bytes. */
    assert_int_equal(np_host_normalize("example.com", 11, small, sizeof(small)), -1);
    assert_int_equal(np_host_normalize("a.b", 3, small, sizeof(small)), 0);
    assert_string_equal(small, "a.b");
    /* Only len bytes are read. */
    assert_int_equal(np_host_normalize("example.com:443", 11, out, sizeof(out)), 0);
    assert_string_equal(out, "example.com");
    /* Far too long input (spaces are trimmed only at the ends). */
    assert_int_equal(np_host_normalize(long_name(500, ".com"), 504, out, sizeof(out)), -1);
    assert_int_equal(np_host_normalize(NULL, 0, out, sizeof(out)), -1);
}

/* ---- hard deny list ---------------------------------------------------------------------- */

struct addr_row {
    const char *rule;
    const char *addr;
    bool denied;
};

static const struct addr_row addr_rows[] = {
    {"v4_metadata", "169.254.169.254", true},
    {"v4_link_local_low_edge", "169.254.0.0", true},
    {"v4_link_local_high_edge", "169.254.255.255", true},
    {"v4_below_link_local", "169.253.255.255", false},
    {"v4_above_link_local", "169.255.0.0", false},
    {"v4_alibaba_metadata", "100.100.100.200", true},
    {"v4_alibaba_neighbour_below", "100.100.100.199", false},
    {"v4_alibaba_neighbour_above", "100.100.100.201", false},
    {"v4_oracle_metadata", "192.0.0.192", true},
    {"v4_oracle_neighbour", "192.0.0.191", false},
    {"v4_loopback_allowed", "127.0.0.1", false},
    {"v4_unspecified_allowed", "0.0.0.0", false},
    {"v4_rfc1918_10_allowed", "10.0.0.1", false},
    {"v4_rfc1918_172_allowed", "172.16.0.1", false},
    {"v4_rfc1918_192_allowed", "192.168.1.1", false},
    {"v4_cgnat_allowed", "100.64.0.1", false},
    {"v4_public_allowed", "93.184.216.34", false},
    {"v6_link_local", "fe80::1", true},
    {"v6_link_local_low_edge", "fe80::", true},
    {"v6_link_local_high_edge", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true},
    {"v6_link_local_febf", "febf::", true},
    {"v6_site_local_not_link_local", "fec0::", false},
    {"v6_below_link_local", "fe7f:ffff::", false},
    {"v6_aws_metadata", "fd00:ec2::254", true},
    {"v6_aws_neighbour_253", "fd00:ec2::253", false},
    {"v6_aws_neighbour_255", "fd00:ec2::255", false},
    {"v6_mapped_metadata", "::ffff:169.254.169.254", true},
    {"v6_mapped_link_local_edge", "::ffff:169.254.0.0", true},
    {"v6_mapped_alibaba", "::ffff:100.100.100.200", true},
    {"v6_mapped_oracle", "::ffff:192.0.0.192", true},
    {"v6_compat_metadata", "::a9fe:a9fe", true},
    {"v6_compat_alibaba", "::6464:64c8", true},
    {"v6_compat_oracle", "::c000:c0", true},
    {"v6_nat64_metadata", "64:ff9b::a9fe:a9fe", true},
    {"v6_nat64_alibaba", "64:ff9b::100.100.100.200", true},
    {"v6_nat64_oracle", "64:ff9b::192.0.0.192", true},
    {"v6_6to4_metadata", "2002:a9fe:a9fe::", true},
    {"v6_6to4_metadata_with_suffix", "2002:a9fe:a9fe:1234::5", true},
    {"v6_6to4_alibaba", "2002:6464:64c8::", true},
    {"v6_6to4_oracle", "2002:c000:c0::", true},
    {"v6_loopback_allowed", "::1", false},
    {"v6_unspecified_allowed", "::", false},
    {"v6_mapped_loopback_allowed", "::ffff:127.0.0.1", false},
    {"v6_mapped_rfc1918_allowed", "::ffff:10.0.0.1", false},
    {"v6_nat64_public_allowed", "64:ff9b::808:808", false},
    {"v6_6to4_public_allowed", "2002:808:808::", false},
    {"v6_ula_allowed", "fd00::1", false},
    {"v6_public_allowed", "2001:db8::1", false},
};

static void
test_hard_deny_addr_table(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < NP_ARRAY_LEN(addr_rows); i++) {
        const struct addr_row *r = &addr_rows[i];
        struct sockaddr_storage ss;
        bool got;

        mk_addr(r->addr, 443, &ss);
        got = np_addr_is_hard_denied((const struct sockaddr *)&ss);
        if (got != r->denied) {
            print_error("row %s: %s denied=%d, want %d\n", r->rule, r->addr, got, r->denied);
            fail();
        }
    }
}

static void
test_hard_deny_unknown_family(void **state)
{
    struct sockaddr_storage ss;

    (void)state;
    memset(&ss, 0, sizeof(ss));
    ss.ss_family = AF_UNIX;
    assert_true(np_addr_is_hard_denied((const struct sockaddr *)&ss));
    ss.ss_family = AF_UNSPEC;
    assert_true(np_addr_is_hard_denied((const struct sockaddr *)&ss));
    assert_true(np_addr_is_hard_denied(NULL));
}

struct name_row {
    const char *rule;
    const char *host; /* raw; normalised by the test */
    uint16_t port;
    enum np_host_verdict want;
};

/* The allowlist below tries to allow everything on the hard deny list: it must not matter. */
static const char *const greedy_entries[] = {
    "metadata.google.internal",
    "metadata.azure.internal",
    "metadata",
    "instance-data",
    "*.internal",
    "169.254.169.254",
    "fd00:ec2::254",
    "100.100.100.200",
    "192.0.0.192",
    "example.com",
    "127.0.0.1",
};

static const struct name_row hard_name_rows[] = {
    {"gcp_name", "metadata.google.internal", 80, NP_HOST_DENY_HARD},
    {"gcp_name_case_and_dot", "METADATA.Google.Internal.", 80, NP_HOST_DENY_HARD},
    {"azure_name", "metadata.azure.internal", 80, NP_HOST_DENY_HARD},
    {"bare_metadata", "metadata", 80, NP_HOST_DENY_HARD},
    {"instance_data", "Instance-Data", 80, NP_HOST_DENY_HARD},
    {"other_internal_name_allowed_by_wildcard", "foo.google.internal", 80, NP_HOST_ALLOW},
    {"v4_dotted", "169.254.169.254", 80, NP_HOST_DENY_HARD},
    {"v4_decimal", "2852039166", 80, NP_HOST_DENY_HARD},
    {"v4_hex", "0xa9fea9fe", 80, NP_HOST_DENY_HARD},
    {"v4_octal", "0251.0376.0251.0376", 80, NP_HOST_DENY_HARD},
    {"v4_three_parts", "169.254.43518", 80, NP_HOST_DENY_HARD},
    {"v4_link_local_other", "169.254.1.1", 80, NP_HOST_DENY_HARD},
    {"v4_alibaba", "100.100.100.200", 80, NP_HOST_DENY_HARD},
    {"v4_oracle", "192.0.0.192", 80, NP_HOST_DENY_HARD},
    {"v6_aws_long_form", "[FD00:0EC2:0:0:0:0:0:254]", 80, NP_HOST_DENY_HARD},
    {"v6_link_local", "[fe80::1]", 80, NP_HOST_DENY_HARD},
    {"v6_mapped", "[::ffff:169.254.169.254]", 80, NP_HOST_DENY_HARD},
    {"v6_compat", "::a9fe:a9fe", 80, NP_HOST_DENY_HARD},
    {"v6_nat64", "64:ff9b::a9fe:a9fe", 80, NP_HOST_DENY_HARD},
    {"v6_6to4", "2002:a9fe:a9fe::", 80, NP_HOST_DENY_HARD},
    {"allowed_name", "example.com", 80, NP_HOST_ALLOW},
    {"loopback_allowed_when_listed", "127.1", 80, NP_HOST_ALLOW},
    {"unlisted_name", "example.org", 80, NP_HOST_DENY_NOT_ALLOWED},
};

static void
run_name_rows(const struct np_hostfilter *f, const struct name_row *rows, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        const struct name_row *r = &rows[i];
        char norm[NP_HOST_BUF];
        enum np_host_verdict got;

        assert_int_equal(np_host_normalize(r->host, strlen(r->host), norm, sizeof(norm)), 0);
        got = np_hostfilter_check_name(f, norm, r->port);
        if (got != r->want) {
            print_error("row %s: %s verdict %d, want %d\n", r->rule, r->host, (int)got,
                        (int)r->want);
            fail();
        }
    }
}

static void
test_hard_deny_names_cannot_be_allowed(void **state)
{
    struct np_hostfilter *f = NULL;

    (void)state;
    assert_int_equal(np_hostfilter_new(greedy_entries, NP_ARRAY_LEN(greedy_entries), &f), 0);
    run_name_rows(f, hard_name_rows, NP_ARRAY_LEN(hard_name_rows));
    np_hostfilter_free(f);
}

static const struct name_row allow_all_rows[] = {
    {"empty_list_allows_names", "example.org", 443, NP_HOST_ALLOW},
    {"empty_list_allows_loopback", "127.0.0.1", 443, NP_HOST_ALLOW},
    {"empty_list_allows_rfc1918", "10.1.2.3", 443, NP_HOST_ALLOW},
    {"empty_list_allows_v6_loopback", "[::1]", 443, NP_HOST_ALLOW},
    {"empty_list_still_denies_gcp", "metadata.google.internal", 443, NP_HOST_DENY_HARD},
    {"empty_list_still_denies_hex_v4", "0xa9fea9fe", 443, NP_HOST_DENY_HARD},
    {"empty_list_still_denies_nat64", "[64:ff9b::a9fe:a9fe]", 443, NP_HOST_DENY_HARD},
};

static void
test_empty_list_allows_all_but_hard_deny(void **state)
{
    struct np_hostfilter *f = NULL;

    (void)state;
    assert_int_equal(np_hostfilter_new(NULL, 0, &f), 0);
    run_name_rows(f, allow_all_rows, NP_ARRAY_LEN(allow_all_rows));
    /* An empty list matches nothing: as a bypass list it bypasses nothing. */
    assert_false(np_hostfilter_matches(f, "example.org", 443));
    np_hostfilter_free(f);
    /* A NULL filter behaves as the empty list. */
    run_name_rows(NULL, allow_all_rows, NP_ARRAY_LEN(allow_all_rows));
    assert_false(np_hostfilter_matches(NULL, "example.org", 443));
}

static void
test_check_name_renormalises(void **state)
{
    (void)state;
    /* Callers should pass normalised hosts, but a raw spelling must not slip through. */
    assert_int_equal(np_hostfilter_check_name(NULL, "0xA9FEA9FE", 80), NP_HOST_DENY_HARD);
    assert_int_equal(np_hostfilter_check_name(NULL, "Metadata.", 80), NP_HOST_DENY_HARD);
    assert_int_equal(np_hostfilter_check_name(NULL, "a b", 80), NP_HOST_DENY_INVALID);
    assert_int_equal(np_hostfilter_check_name(NULL, "", 80), NP_HOST_DENY_INVALID);
    assert_int_equal(np_hostfilter_check_name(NULL, NULL, 80), NP_HOST_DENY_INVALID);
}

/* ---- allowlist matching ------------------------------------------------------------------ */

static const char *const allow_entries[] = {
    "example.com", "*.wild.test", "port.test:8443", "*.pw.test:443", "[::1]:8975",
    "10.0.0.1",    "fd00::1",     "upper.test",     "*.0.0.1",
};

struct match_row {
    const char *rule;
    const char *host; /* raw; normalised by the test */
    uint16_t port;
    bool want;
};

static const struct match_row match_rows[] = {
    {"exact", "example.com", 443, true},
    {"exact_any_port", "example.com", 1, true},
    {"exact_case_insensitive", "EXAMPLE.Com", 443, true},
    {"exact_trailing_dot", "example.com.", 443, true},
    {"exact_not_subdomain", "www.example.com", 443, false},
    {"exact_not_prefix", "example.co", 443, false},
    {"exact_not_longer", "example.com.evil", 443, false},
    {"exact_not_suffix_attack", "evilexample.com", 443, false},
    {"wildcard_one_label", "a.wild.test", 443, true},
    {"wildcard_two_labels", "a.b.wild.test", 443, true},
    {"wildcard_case", "A.WILD.TEST", 443, true},
    {"wildcard_not_bare_domain", "wild.test", 443, false},
    {"wildcard_label_boundary", "badwild.test", 443, false},
    {"wildcard_label_boundary_2", "a.badwild.test", 443, false},
    {"wildcard_not_other_tld", "a.wild.testx", 443, false},
    {"port_entry_right_port", "port.test", 8443, true},
    {"port_entry_wrong_port", "port.test", 443, false},
    {"port_wildcard_right_port", "a.pw.test", 443, true},
    {"port_wildcard_wrong_port", "a.pw.test", 80, false},
    {"port_wildcard_not_bare", "pw.test", 443, false},
    {"v6_port_entry_right_port", "::1", 8975, true},
    {"v6_port_entry_bracketed_host", "[::1]", 8975, true},
    {"v6_port_entry_long_form", "[0:0:0:0:0:0:0:1]", 8975, true},
    {"v6_port_entry_wrong_port", "::1", 8976, false},
    {"v4_literal", "10.0.0.1", 22, true},
    {"v4_literal_other_spelling", "10.1", 22, true},
    {"v4_literal_other_address", "10.0.0.2", 22, false},
    {"v6_literal_any_port", "[FD00:0:0::1]", 22, true},
    {"wildcard_never_matches_address", "127.0.0.1", 443, false},
    {"upper_entry_normalised", "upper.test", 80, true},
};

static void
test_allowlist_table(void **state)
{
    struct np_hostfilter *f = NULL;
    size_t i;

    (void)state;
    assert_int_equal(np_hostfilter_new(allow_entries, NP_ARRAY_LEN(allow_entries), &f), 0);
    for (i = 0; i < NP_ARRAY_LEN(match_rows); i++) {
        const struct match_row *r = &match_rows[i];
        char norm[NP_HOST_BUF];
        bool got;
        enum np_host_verdict v;

        assert_int_equal(np_host_normalize(r->host, strlen(r->host), norm, sizeof(norm)), 0);
        got = np_hostfilter_matches(f, norm, r->port);
        v = np_hostfilter_check_name(f, norm, r->port);
        if (got != r->want || v != (r->want ? NP_HOST_ALLOW : NP_HOST_DENY_NOT_ALLOWED)) {
            print_error("row %s: %s:%u matches=%d verdict=%d, want %d\n", r->rule, r->host,
                        (unsigned)r->port, got, (int)v, r->want);
            fail();
        }
    }
    np_hostfilter_free(f);
}

/* ---- entry validation -------------------------------------------------------------------- */

struct entry_row {
    const char *rule;
    const char *entry;
    const char *want; /* NULL = rejected */
};

static const struct entry_row entry_rows[] = {
    {"host", "example.com", "example.com"},
    {"host_normalised", "Example.COM.", "example.com"},
    {"wildcard", "*.Example.com", "*.example.com"},
    {"wildcard_single_label", "*.test", "*.test"},
    {"host_port", "example.com:443", "example.com:443"},
    {"wildcard_port", "*.example.com:8443", "*.example.com:8443"},
    {"port_edges_low", "h.test:1", "h.test:1"},
    {"port_edges_high", "h.test:65535", "h.test:65535"},
    {"port_leading_zero", "h.test:0443", "h.test:443"},
    {"v4", "10.0.0.1", "10.0.0.1"},
    {"v4_port", "127.1:80", "127.0.0.1:80"},
    {"v4_hex_canonicalised", "0xa9fea9fe", "169.254.169.254"},
    {"v6_bare", "::1", "::1"},
    {"v6_bare_canonicalised", "FD00:0EC2:0:0:0:0:0:254", "fd00:ec2::254"},
    {"v6_bare_is_not_host_port", "2001:DB8::1:8975", "2001:db8::1:8975"},
    {"v6_brackets_no_port", "[::1]", "::1"},
    {"v6_brackets_port", "[::1]:8975", "[::1]:8975"},
    {"v6_brackets_port_canonical", "[0:0:0:0:0:0:0:1]:8975", "[::1]:8975"},
    {"reject_empty", "", NULL},
    {"reject_bare_star", "*", NULL},
    {"reject_star_no_dot", "*foo", NULL},
    {"reject_star_no_dot_domain", "*example.com", NULL},
    {"reject_star_dot_alone", "*.", NULL},
    {"reject_star_dot_port", "*.:443", NULL},
    {"reject_double_star", "**.x", NULL},
    {"reject_star_inside", "a.*.com", NULL},
    {"reject_star_at_end", "foo*", NULL},
    {"reject_second_star", "*.*.com", NULL},
    {"reject_star_empty_label", "*..com", NULL},
    {"reject_wildcard_v6", "*.a::b", NULL},
    {"reject_wildcard_brackets", "*.[::1]", NULL},
    {"reject_control_char", "a\x01.com", NULL},
    {"reject_tab", "a\tb.com", NULL},
    {"reject_del", "a\x7f.com", NULL},
    {"reject_newline_end", "example.com\n", NULL},
    {"reject_space", "a b.com", NULL},
    {"reject_leading_space", " example.com", NULL},
    {"reject_at", "user@example.com", NULL},
    {"reject_slash", "example.com/path", NULL},
    {"reject_backslash", "example.com\\x", NULL},
    {"reject_port_zero", "example.com:0", NULL},
    {"reject_port_too_big", "example.com:65536", NULL},
    {"reject_port_huge", "example.com:99999999999", NULL},
    {"reject_port_letters", "example.com:abc", NULL},
    {"reject_port_empty", "example.com:", NULL},
    {"reject_port_plus", "example.com:+80", NULL},
    {"reject_port_minus", "example.com:-1", NULL},
    {"reject_empty_host_with_port", ":80", NULL},
    {"reject_v6_port_empty", "[::1]:", NULL},
    {"reject_v6_garbage_after", "[::1]x", NULL},
    {"reject_v6_unclosed", "[::1", NULL},
    {"reject_v6_zone", "[fe80::1%eth0]:80", NULL},
    {"reject_v6_empty_brackets", "[]:80", NULL},
    {"reject_v4_in_brackets", "[10.0.0.1]:80", NULL},
    {"reject_name_in_brackets", "[example.com]", NULL},
    {"reject_bad_v6", "a:b:c", NULL},
    {"reject_empty_label", "a..b", NULL},
    {"reject_only_dot", ".", NULL},
    {"reject_percent", "exa%mple.com", NULL},
    {"reject_non_ascii", "caf\xc3\xa9.com", NULL},
    {"range_v4", "10.0.0.0/8", "10.0.0.0/8"},
    {"range_v4_slash32", "203.0.113.7/32", "203.0.113.7/32"},
    {"range_v4_slash0", "0.0.0.0/0", "0.0.0.0/0"},
    {"range_v6_canonical", "FD00:0::/8", "fd00::/8"},
    {"range_v6_slash128", "::1/128", "::1/128"},
    {"reject_range_host_bits", "10.1.2.3/8", NULL},
    {"reject_range_prefix_v4", "10.0.0.0/33", NULL},
    {"reject_range_prefix_v6", "fd00::/129", NULL},
    {"reject_range_brackets", "[fd00::]/8", NULL},
    {"reject_range_wildcard", "*.example.com/8", NULL},
    {"reject_range_port", "10.0.0.0/8:443", NULL},
    {"reject_range_inet_aton_spelling", "10/8", NULL},
    {"reject_range_space", "10.0.0.0/ 8", NULL},
    {"reject_range_empty_prefix", "10.0.0.0/", NULL},
};

static void
check_entry_row(const struct entry_row *r)
{
    char out[NP_HOST_BUF + 16];
    char why[128];
    int rc;

    memset(out, 'X', sizeof(out));
    memset(why, 'Y', sizeof(why));
    rc = np_host_entry_normalize(r->entry, out, sizeof(out), why, sizeof(why));
    if (r->want != NULL && (rc != 0 || strcmp(out, r->want) != 0)) {
        print_error("row %s: rc %d out '%s' why '%s', want '%s'\n", r->rule, rc, out,
                    rc == 0 ? "" : why, r->want);
        fail();
    }
    if (r->want == NULL && (rc != -1 || why[0] == '\0' || strlen(why) >= sizeof(why) ||
                            !is_printable(why) || out[0] != '\0')) {
        print_error("row %s: rc %d, want a rejection with a reason\n", r->rule, rc);
        fail();
    }
}

static void
test_entry_table(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < NP_ARRAY_LEN(entry_rows); i++) {
        check_entry_row(&entry_rows[i]);
    }
}

static void
test_entry_limits(void **state)
{
    char out[NP_HOST_BUF + 16];
    char why[64];
    struct np_hostfilter *f = NULL;
    const char *bad[] = {"example.com", "*"};
    const char *normalised[NP_ARRAY_LEN(entry_rows)];
    static char store[NP_ARRAY_LEN(entry_rows)][NP_HOST_BUF + 16];
    size_t n = 0;
    size_t i;

    (void)state;
    why[0] = '\0';
    assert_int_equal(np_host_entry_normalize(NULL, out, sizeof(out), why, sizeof(why)), -1);
    assert_true(why[0] != '\0');
    /* The normalised form must fit the output buffer. */
    assert_int_equal(np_host_entry_normalize("example.com", out, 6, why, sizeof(why)), -1);
    assert_int_equal(np_host_entry_normalize("example.com", out, 12, why, sizeof(why)), 0);
    /* Longest domain (253) in a wildcard with a port fits NP_HOST_BUF + 16. */
    assert_int_equal(np_host_entry_normalize(long_name(0, ""), out, sizeof(out), why, 4), -1);
    assert_int_equal(strlen(why), 3); /* reason truncated to the capacity */
    assert_int_equal(np_host_entry_normalize(long_name(300, ""), out, sizeof(out), NULL, 0), -1);
    /* A filter refuses malformed entries instead of dropping them (never allow-all by mistake). */
    assert_int_equal(np_hostfilter_new(bad, NP_ARRAY_LEN(bad), &f), -1);
    assert_null(f);
    /* Every accepted entry's normalised form is accepted again unchanged (idempotent). */
    for (i = 0; i < NP_ARRAY_LEN(entry_rows); i++) {
        if (entry_rows[i].want != NULL) {
            assert_int_equal(np_host_entry_normalize(entry_rows[i].want, store[n], sizeof(store[n]),
                                                     why, sizeof(why)),
                             0);
            assert_string_equal(store[n], entry_rows[i].want);
            normalised[n] = store[n];
            n++;
        }
    }
    assert_int_equal(np_hostfilter_new(normalised, n, &f), 0);
    assert_true(np_hostfilter_matches(f, "::1", 8975));
    np_hostfilter_free(f);
    np_hostfilter_free(NULL);
}

static void
test_entry_longest_wildcard_fits(void **state)
{
    char entry[NP_HOST_BUF + 16];
    char out[NP_HOST_BUF + 16];
    char want[NP_HOST_BUF + 16];
    char name[NP_MAX_HOST + 1];
    size_t k;

    (void)state;
    for (k = 0; k < NP_MAX_HOST; k++) {
        name[k] = (k % 64 == 63) ? '.' : 'a';
    }
    name[NP_MAX_HOST] = '\0';
    assert_true(snprintf(entry, sizeof(entry), "*.%s:65535", name) < (int)sizeof(entry));
    assert_true(snprintf(want, sizeof(want), "*.%s:65535", name) < (int)sizeof(want));
    assert_int_equal(np_host_entry_normalize(entry, out, sizeof(out), NULL, 0), 0);
    assert_string_equal(out, want);
    assert_true(snprintf(entry, sizeof(entry), "*.a%s", name) < (int)sizeof(entry));
    assert_int_equal(np_host_entry_normalize(entry, out, sizeof(out), NULL, 0), -1);
}

/* ---- self detection ---------------------------------------------------------------------- */

struct self_row {
    const char *rule;
    const char *addr;
    const char *self;
    uint16_t port;
    uint16_t self_port;
    bool want;
};

static const struct self_row self_rows[] = {
    {"same_v4", "127.0.0.1", "127.0.0.1", 8080, 8080, true},
    {"other_port", "127.0.0.1", "127.0.0.1", 8081, 8080, false},
    {"other_loopback_on_specific_listener", "127.0.0.2", "127.0.0.1", 8080, 8080, false},
    {"mapped_request", "::ffff:127.0.0.1", "127.0.0.1", 8080, 8080, true},
    {"mapped_listener", "127.0.0.1", "::ffff:127.0.0.1", 8080, 8080, true},
    {"unspecified_request_reaches_loopback", "0.0.0.0", "127.0.0.1", 8080, 8080, true},
    {"unspecified6_request_reaches_loopback6", "::", "::1", 8080, 8080, true},
    {"any_listener_loopback", "127.0.0.5", "0.0.0.0", 8080, 8080, true},
    {"any_listener_loopback6", "::1", "0.0.0.0", 8080, 8080, true},
    {"any_listener_unspecified", "0.0.0.0", "0.0.0.0", 8080, 8080, true},
    {"any_listener_unspecified6", "::", "0.0.0.0", 8080, 8080, true},
    {"any6_listener_loopback4", "127.0.0.1", "::", 8080, 8080, true},
    {"any6_listener_unspecified6", "::", "::", 8080, 8080, true},
    {"any_listener_other_port", "127.0.0.1", "0.0.0.0", 9090, 8080, false},
    {"any_listener_remote", "10.0.0.1", "0.0.0.0", 8080, 8080, false},
    {"v6_loopback_vs_v4_listener", "::1", "127.0.0.1", 8080, 8080, false},
    {"same_v6", "::1", "::1", 8080, 8080, true},
    {"same_specific", "192.168.1.5", "192.168.1.5", 8080, 8080, true},
    {"other_specific", "192.168.1.6", "192.168.1.5", 8080, 8080, false},
};

static void
test_self_table(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < NP_ARRAY_LEN(self_rows); i++) {
        const struct self_row *r = &self_rows[i];
        struct sockaddr_storage a;
        struct sockaddr_storage s;
        bool got;

        mk_addr(r->addr, r->port, &a);
        mk_addr(r->self, r->self_port, &s);
        got = np_addr_is_self((const struct sockaddr *)&a, &s);
        if (got != r->want) {
            print_error("row %s: self=%d, want %d\n", r->rule, got, r->want);
            fail();
        }
    }
    {
        struct sockaddr_storage a;
        mk_addr("127.0.0.1", 8080, &a);
        assert_false(np_addr_is_self((const struct sockaddr *)&a, NULL));
    }
}

/* ---- the whole decision, with a scripted resolver ---------------------------------------- */

struct fake_resolver {
    int rc;
    const char *addrs[4]; /* NULL-terminated; "unix" = an AF_UNIX address */
    int calls;
    char host[NP_HOST_BUF];
    uint16_t port;
};

/* Record the call and return the scripted addresses with port 0 (decide must set the port). */
static int
fake_resolve(void *userdata, const char *host, uint16_t port, struct nonoproxy_addrs *out)
{
    struct fake_resolver *fr = userdata;
    size_t n = 0;

    fr->calls++;
    (void)snprintf(fr->host, sizeof(fr->host), "%s", host);
    fr->port = port;
    while (n < out->max && n < NP_ARRAY_LEN(fr->addrs) && fr->addrs[n] != NULL) {
        if (strcmp(fr->addrs[n], "unix") == 0) {
            memset(&out->addrs[n], 0, sizeof(out->addrs[n]));
            out->addrs[n].ss_family = AF_UNIX;
        } else {
            mk_addr(fr->addrs[n], 0, &out->addrs[n]);
        }
        n++;
    }
    out->count = n;
    return fr->rc;
}

struct decide_row {
    const char *rule;
    const char *host;
    const char *self; /* listener address on PROXY_PORT, or NULL */
    uint16_t port;
    int rc; /* resolver's return */
    const char *addrs[4];
    enum np_host_verdict want;
    int calls;          /* expected resolver calls */
    size_t n;           /* expected addresses on ALLOW */
    const char *reason; /* exact reason, or NULL for "any non-empty" */
};

static const char *const decide_allow[] = {
    "good.test", "rebind.test", "*.dual.test", "localhost", "proxy.test", "93.184.216.34",
    "127.0.0.1", "metadata",    "x.test",      "none.test", "odd.test",   "::ffff:127.0.0.1"};

/* clang-format off */
static const struct decide_row decide_rows[] = {
    {"hard_name_never_resolved", "metadata.google.internal", NULL, 80, 0, {"1.2.3.4"},
     NP_HOST_DENY_HARD, 0, 0, "host metadata.google.internal is on the hard deny list"},
    {"hard_name_allowlisted_never_resolved", "METADATA.", NULL, 80, 0, {"1.2.3.4"},
     NP_HOST_DENY_HARD, 0, 0, "host metadata is on the hard deny list"},
    {"not_allowed_never_resolved", "evil.com", NULL, 443, 0, {"1.2.3.4"},
     NP_HOST_DENY_NOT_ALLOWED, 0, 0, "host evil.com is not in the allowlist"},
    {"wildcard_bare_domain_never_resolved", "dual.test", NULL, 443, 0, {"1.2.3.4"},
     NP_HOST_DENY_NOT_ALLOWED, 0, 0, "host dual.test is not in the allowlist"},
    {"invalid_never_resolved", "a b", NULL, 443, 0, {"1.2.3.4"}, NP_HOST_DENY_INVALID, 0, 0,
     "invalid host name \"a b\""},
    {"invalid_control_bytes_not_echoed", "\x01x\x1b[2J", NULL, 443, 0, {"1.2.3.4"},
     NP_HOST_DENY_INVALID, 0, 0, "invalid host name \"?x?[2J\""},
    {"allowed_name_resolved_ports_set", "GOOD.test.", NULL, 8443, 0,
     {"93.184.216.34", "2606:2800:220:1::1"}, NP_HOST_ALLOW, 1, 2, ""},
    {"rebind_v4_denied", "rebind.test", NULL, 443, 0, {"93.184.216.34", "169.254.169.254"},
     NP_HOST_DENY_HARD, 1, 0,
     "resolved address 169.254.169.254 of rebind.test is on the hard deny list "
     "(link-local / cloud metadata)"},
    {"rebind_v6_mapped_denied", "a.dual.test", NULL, 443, 0,
     {"2606:2800:220:1::1", "::ffff:169.254.169.254", "93.184.216.34"}, NP_HOST_DENY_HARD, 1, 0,
     "resolved address ::ffff:169.254.169.254 of a.dual.test is on the hard deny list "
     "(link-local / cloud metadata)"},
    {"rebind_nat64_denied", "b.dual.test", NULL, 443, 0, {"64:ff9b::a9fe:a9fe"},
     NP_HOST_DENY_HARD, 1, 0, NULL},
    {"rebind_unknown_family_denied", "odd.test", NULL, 443, 0, {"93.184.216.34", "unix"},
     NP_HOST_DENY_HARD, 1, 0, NULL},
    {"resolver_failure", "x.test", NULL, 443, -2, {NULL}, NP_HOST_RESOLVE_FAILED, 1, 0,
     "DNS resolution of x.test failed"},
    {"resolver_failure_with_addresses", "x.test", NULL, 443, 1, {"93.184.216.34"},
     NP_HOST_RESOLVE_FAILED, 1, 0, "DNS resolution of x.test failed"},
    {"resolver_zero_addresses", "none.test", NULL, 443, 0, {NULL}, NP_HOST_RESOLVE_FAILED, 1, 0,
     "DNS resolution of none.test returned no address"},
    {"literal_v4_not_resolved", "93.184.216.34", NULL, 443, -1, {NULL}, NP_HOST_ALLOW, 0, 1, ""},
    {"literal_hard_v4_not_resolved", "0xa9fea9fe", NULL, 443, 0, {"1.2.3.4"},
     NP_HOST_DENY_HARD, 0, 0, "host 169.254.169.254 is on the hard deny list"},
    {"literal_hard_v6_not_resolved", "[::ffff:a9fe:a9fe]", NULL, 443, 0, {"1.2.3.4"},
     NP_HOST_DENY_HARD, 0, 0, "host ::ffff:169.254.169.254 is on the hard deny list"},
    {"literal_self", "127.0.0.1", "127.0.0.1", PROXY_PORT, -1, {NULL}, NP_HOST_DENY_SELF, 0, 0,
     "request to the proxy itself is refused"},
    {"literal_self_mapped", "[::ffff:127.0.0.1]", "127.0.0.1", PROXY_PORT, -1, {NULL},
     NP_HOST_DENY_SELF, 0, 0, "request to the proxy itself is refused"},
    {"literal_loopback_other_port", "127.0.0.1", "127.0.0.1", 8080, -1, {NULL}, NP_HOST_ALLOW,
     0, 1, ""},
    {"name_resolving_to_self", "proxy.test", "0.0.0.0", PROXY_PORT, 0, {"127.0.0.1"},
     NP_HOST_DENY_SELF, 1, 0, "request to the proxy itself is refused"},
    {"localhost_v6_then_v4_self", "localhost", "127.0.0.1", PROXY_PORT, 0, {"::1", "127.0.0.1"},
     NP_HOST_DENY_SELF, 1, 0, "request to the proxy itself is refused"},
    {"hard_beats_self", "localhost", "127.0.0.1", PROXY_PORT, 0,
     {"127.0.0.1", "169.254.1.1"}, NP_HOST_DENY_HARD, 1, 0, NULL},
    {"localhost_other_port_allowed", "localhost", "127.0.0.1", 3000, 0, {"::1", "127.0.0.1"},
     NP_HOST_ALLOW, 1, 2, ""},
};
/* clang-format on */

static void
check_decide_row(const struct np_hostfilter *f, const struct decide_row *r)
{
    struct fake_resolver fr;
    struct np_resolver res = {fake_resolve, &fr};
    struct sockaddr_storage self;
    struct np_host_query q;
    enum np_host_verdict v;
    size_t i;

    memset(&fr, 0, sizeof(fr));
    fr.rc = r->rc;
    memcpy(fr.addrs, r->addrs, sizeof(fr.addrs));
    memset(&q, 0x5a, sizeof(q));
    q.host = r->host;
    q.host_len = strlen(r->host);
    q.port = r->port;
    q.self = NULL;
    if (r->self != NULL) {
        mk_addr(r->self, PROXY_PORT, &self);
        q.self = &self;
    }
    v = np_hostfilter_decide(f, &res, &q);
    if (v != r->want || fr.calls != r->calls) {
        print_error("row %s: verdict %d calls %d reason '%s', want %d calls %d\n", r->rule, (int)v,
                    fr.calls, q.reason, (int)r->want, r->calls);
        fail();
    }
    if (r->reason != NULL && strcmp(q.reason, r->reason) != 0) {
        print_error("row %s: reason '%s', want '%s'\n", r->rule, q.reason, r->reason);
        fail();
    }
    assert_true(is_printable(q.reason) && is_printable(q.norm));
    assert_true(v == NP_HOST_ALLOW ? q.reason[0] == '\0' : q.reason[0] != '\0');
    assert_int_equal(q.addrs.n, r->n);
    for (i = 0; i < q.addrs.n; i++) {
        assert_int_equal(addr_port(&q.addrs.addr[i]), r->port);
        assert_false(np_addr_is_hard_denied((const struct sockaddr *)&q.addrs.addr[i]));
    }
    if (fr.calls > 0) {
        assert_string_equal(fr.host, q.norm);
        assert_int_equal(fr.port, r->port);
    }
    if (v == NP_HOST_DENY_INVALID) {
        assert_string_equal(q.norm, "");
    }
}

static void
test_decide_table(void **state)
{
    struct np_hostfilter *f = NULL;
    size_t i;

    (void)state;
    assert_int_equal(np_hostfilter_new(decide_allow, NP_ARRAY_LEN(decide_allow), &f), 0);
    for (i = 0; i < NP_ARRAY_LEN(decide_rows); i++) {
        check_decide_row(f, &decide_rows[i]);
    }
    np_hostfilter_free(f);
}

static void
test_decide_returns_exactly_the_checked_addresses(void **state)
{
    struct fake_resolver fr;
    struct np_resolver res = {fake_resolve, &fr};
    struct np_host_query q;
    char text[INET6_ADDRSTRLEN];
    const struct sockaddr_in6 *s6;

    (void)state;
    memset(&fr, 0, sizeof(fr));
    fr.addrs[0] = "93.184.216.34";
    fr.addrs[1] = "2606:2800:220:1::1";
    memset(&q, 0, sizeof(q));
    q.host = "  Good.Test.  ";
    q.host_len = strlen(q.host);
    q.port = 443;
    assert_int_equal(np_hostfilter_decide(NULL, &res, &q), NP_HOST_ALLOW);
    assert_string_equal(q.norm, "good.test");
    assert_string_equal(fr.host, "good.test");
    assert_int_equal(q.addrs.n, 2);
    assert_int_equal(q.addrs.addr[0].ss_family, AF_INET);
    assert_string_equal(
        inet_ntop(AF_INET, &((struct sockaddr_in *)&q.addrs.addr[0])->sin_addr, text, sizeof(text)),
        "93.184.216.34");
    assert_int_equal(q.addrs.addr[1].ss_family, AF_INET6);
    s6 = (const struct sockaddr_in6 *)&q.addrs.addr[1];
    assert_string_equal(inet_ntop(AF_INET6, &s6->sin6_addr, text, sizeof(text)),
                        "2606:2800:220:1::1");
    assert_int_equal(ntohs(s6->sin6_port), 443);

    /* A literal v6 host is its own single address, with the port. */
    memset(&fr, 0, sizeof(fr));
    q.host = "[2001:DB8::7]";
    q.host_len = strlen(q.host);
    q.port = 8443;
    assert_int_equal(np_hostfilter_decide(NULL, &res, &q), NP_HOST_ALLOW);
    assert_int_equal(fr.calls, 0);
    assert_string_equal(q.norm, "2001:db8::7");
    assert_int_equal(q.addrs.n, 1);
    assert_int_equal(addr_port(&q.addrs.addr[0]), 8443);

    /* A long name is shortened in the reason, which stays one printable line. */
    q.host = long_name(200, ".example");
    q.host_len = strlen(q.host);
    fr.rc = -1;
    assert_int_equal(np_hostfilter_decide(NULL, &res, &q), NP_HOST_RESOLVE_FAILED);
    assert_non_null(strstr(q.reason, "..."));
    assert_true(strlen(q.reason) < sizeof(q.reason));
    assert_int_equal(q.addrs.n, 0);
}

/* ---- issue 14: ranges in entries ---------------------------------------------------------- */

static void
test_entry_range_reasons(void **state)
{
    char out[NP_HOST_BUF + 16];
    char why[128];

    (void)state;
    assert_int_equal(np_host_entry_normalize("10.1.2.3/8", out, sizeof(out), why, sizeof(why)), -1);
    assert_non_null(strstr(why, "host bits"));
    assert_non_null(strstr(why, "10.0.0.0/8")); /* the suggestion */
    assert_int_equal(np_host_entry_normalize("fd00::/129", out, sizeof(out), why, sizeof(why)), -1);
    assert_non_null(strstr(why, "0 to 128"));
    assert_int_equal(np_host_entry_normalize("[fd00::]/8", out, sizeof(out), why, sizeof(why)), -1);
    assert_non_null(strstr(why, "without brackets"));
    assert_true(np_host_entry_is_range("10.0.0.0/8"));
    assert_false(np_host_entry_is_range("10.0.0.1"));
    assert_false(np_host_entry_is_range(NULL));
}

/* Ranges never match names or literals by name (np_hostfilter_matches): they are judged on
 * addresses (np_hostfilter_addr_match); a deny list's literals match addresses too. */
static void
test_addr_match(void **state)
{
    static const char *const entries[] = {"10.0.0.0/8", "fd00::/8", "good.test", "192.0.2.7",
                                          "[2001:db8::9]:8443"};
    struct np_hostfilter *f = NULL;
    struct sockaddr_storage ss;

    (void)state;
    assert_int_equal(np_hostfilter_new(entries, NP_ARRAY_LEN(entries), &f), 0);
    assert_false(np_hostfilter_is_empty(f));
    assert_true(np_hostfilter_has_ranges(f));
    assert_false(np_hostfilter_matches(f, "10.1.2.3", 443));
    assert_true(np_hostfilter_matches(f, "192.0.2.7", 443));
    mk_addr("10.1.2.3", 443, &ss);
    assert_string_equal(np_hostfilter_addr_match(f, (struct sockaddr *)&ss, 443, false),
                        "10.0.0.0/8");
    mk_addr("::ffff:10.1.2.3", 443, &ss);
    assert_string_equal(np_hostfilter_addr_match(f, (struct sockaddr *)&ss, 443, false),
                        "10.0.0.0/8");
    mk_addr("64:ff9b::a01:203", 443, &ss); /* NAT64 10.1.2.3: deny lists only */
    assert_null(np_hostfilter_addr_match(f, (struct sockaddr *)&ss, 443, false));
    assert_string_equal(np_hostfilter_addr_match(f, (struct sockaddr *)&ss, 443, true),
                        "10.0.0.0/8");
    mk_addr("fd12::1", 443, &ss);
    assert_string_equal(np_hostfilter_addr_match(f, (struct sockaddr *)&ss, 443, false),
                        "fd00::/8");
    mk_addr("192.0.2.7", 443, &ss);
    assert_null(np_hostfilter_addr_match(f, (struct sockaddr *)&ss, 443, false));
    assert_string_equal(np_hostfilter_addr_match(f, (struct sockaddr *)&ss, 443, true),
                        "192.0.2.7");
    mk_addr("::ffff:192.0.2.7", 443, &ss);
    assert_string_equal(np_hostfilter_addr_match(f, (struct sockaddr *)&ss, 443, true),
                        "192.0.2.7");
    mk_addr("2001:db8::9", 8443, &ss);
    assert_string_equal(np_hostfilter_addr_match(f, (struct sockaddr *)&ss, 8443, true),
                        "2001:db8::9");
    assert_null(np_hostfilter_addr_match(f, (struct sockaddr *)&ss, 443, true)); /* port */
    mk_addr("11.0.0.1", 443, &ss);
    assert_null(np_hostfilter_addr_match(f, (struct sockaddr *)&ss, 443, true));
    assert_null(np_hostfilter_addr_match(NULL, (struct sockaddr *)&ss, 443, true));
    np_hostfilter_free(f);
    assert_true(np_hostfilter_is_empty(NULL));
    assert_false(np_hostfilter_has_ranges(NULL));
}

/* ---- issue 14: the policy (denied_hosts, allowlist ranges, strict, decide) ---------------- */

/* A decide callback that answers from a script and records whether DNS had run before. */
struct fake_decide {
    enum nonoproxy_decide_answer answer;
    int calls;
    int dns_calls_before; /* the resolver's call count when the callback ran */
    const struct fake_resolver *fr;
    char host[NP_HOST_BUF];
    uint16_t port;
};

static enum nonoproxy_decide_answer
fake_decide_fn(void *userdata, const struct nonoproxy_decide_query *q)
{
    struct fake_decide *fd = userdata;

    fd->calls++;
    fd->dns_calls_before = fd->fr->calls;
    (void)snprintf(fd->host, sizeof(fd->host), "%s", q->host);
    fd->port = q->port;
    return fd->answer;
}

enum policy_kind {
    P_DENY_ONLY,     /* denied_hosts, empty allowlist */
    P_ALLOW_RANGES,  /* allowlist with names and ranges, denied_hosts */
    P_STRICT_EMPTY,  /* strict, empty allowlist */
    P_DECIDE,        /* allowlist of names, denied_hosts, a decide callback */
    P_DECIDE_RANGES, /* allowlist with ranges, denied_hosts, a decide callback */
};

struct policy_row {
    const char *rule;
    enum policy_kind kind;
    const char *host;
    uint16_t port;
    const char *addrs[4]; /* the resolver's answer (rc 0); {NULL}: no address */
    enum nonoproxy_decide_answer answer;
    enum np_host_verdict want;
    int dns;            /* expected resolver calls */
    int asks;           /* expected decide calls */
    const char *reason; /* substring of the reason (deny) or the note (allow), or NULL */
};

static const char *const p_deny[] = {"evil.test",   "*.ads.test", "blocked.test:8443",
                                     "10.9.0.0/16", "fd66::/16",  "192.0.2.66"};
static const char *const p_allow[] = {"good.test", "10.0.0.0/8", "2001:db8::/32"};
static const char *const p_allow_names[] = {"good.test"};

/* clang-format off */
static const struct policy_row policy_rows[] = {
    /* denied_hosts: names are never resolved (nor asked about). */
    {"deny_exact_not_resolved", P_DENY_ONLY, "EVIL.test.", 443, {"1.2.3.4"}, 0,
     NP_HOST_DENY_LISTED, 0, 0, "host evil.test denied by denied_hosts"},
    {"deny_wildcard_not_resolved", P_DENY_ONLY, "x.y.ads.test", 80, {"1.2.3.4"}, 0,
     NP_HOST_DENY_LISTED, 0, 0, "denied by denied_hosts"},
    {"deny_wildcard_not_bare_domain", P_DENY_ONLY, "ads.test", 80, {"1.2.3.4"}, 0,
     NP_HOST_ALLOW, 1, 0, NULL},
    {"deny_port_entry_on_its_port", P_DENY_ONLY, "blocked.test", 8443, {"1.2.3.4"}, 0,
     NP_HOST_DENY_LISTED, 0, 0, "denied by denied_hosts"},
    {"deny_port_entry_other_port", P_DENY_ONLY, "blocked.test", 443, {"1.2.3.4"}, 0,
     NP_HOST_ALLOW, 1, 0, NULL},
    {"deny_literal_entry", P_DENY_ONLY, "192.0.2.66", 443, {NULL}, 0, NP_HOST_DENY_LISTED, 0, 0,
     "host 192.0.2.66 denied by denied_hosts"},
    {"deny_literal_in_range", P_DENY_ONLY, "10.9.1.2", 443, {NULL}, 0, NP_HOST_DENY_LISTED, 0,
     0, "host 10.9.1.2 denied by denied_hosts (10.9.0.0/16)"},
    {"deny_mapped_literal_in_v4_range", P_DENY_ONLY, "[::ffff:10.9.1.2]", 443, {NULL}, 0,
     NP_HOST_DENY_LISTED, 0, 0, "10.9.0.0/16"},
    {"deny_v6_literal_in_range", P_DENY_ONLY, "[fd66::1]", 443, {NULL}, 0, NP_HOST_DENY_LISTED,
     0, 0, "fd66::/16"},
    {"deny_range_any_resolved_address", P_DENY_ONLY, "mixed.test", 443,
     {"93.184.216.34", "10.9.8.7"}, 0, NP_HOST_DENY_LISTED, 1, 0,
     "resolved address 10.9.8.7 of mixed.test denied by denied_hosts (10.9.0.0/16)"},
    {"deny_range_nat64_resolved", P_DENY_ONLY, "nat.test", 443, {"64:ff9b::a09:101"}, 0,
     NP_HOST_DENY_LISTED, 1, 0, "10.9.0.0/16"},
    {"deny_literal_entry_resolved", P_DENY_ONLY, "alias.test", 443, {"192.0.2.66"}, 0,
     NP_HOST_DENY_LISTED, 1, 0, "(192.0.2.66)"},
    {"deny_range_outside_allowed", P_DENY_ONLY, "fine.test", 443, {"10.10.0.1"}, 0,
     NP_HOST_ALLOW, 1, 0, NULL},
    {"hard_deny_before_deny_list", P_DENY_ONLY, "metadata", 80, {"1.2.3.4"}, 0,
     NP_HOST_DENY_HARD, 0, 0, "hard deny list"},
    /* The allowlist's ranges: every address inside. */
    {"allow_name_entry", P_ALLOW_RANGES, "good.test", 443, {"93.184.216.34"}, 0, NP_HOST_ALLOW,
     1, 0, NULL},
    {"allow_range_all_inside", P_ALLOW_RANGES, "lab.test", 443, {"10.1.2.3", "2001:db8::5"}, 0,
     NP_HOST_ALLOW, 1, 0, NULL},
    {"allow_range_one_outside", P_ALLOW_RANGES, "lab.test", 443, {"10.1.2.3", "93.184.216.34"},
     0, NP_HOST_DENY_NOT_ALLOWED, 1, 0, "address 93.184.216.34 is outside its ranges"},
    {"allow_range_mapped_inside", P_ALLOW_RANGES, "lab.test", 443, {"::ffff:10.1.2.3"}, 0,
     NP_HOST_ALLOW, 1, 0, NULL},
    {"allow_range_nat64_not_inside", P_ALLOW_RANGES, "lab.test", 443, {"64:ff9b::a01:203"}, 0,
     NP_HOST_DENY_NOT_ALLOWED, 1, 0, "outside its ranges"},
    {"allow_range_literal", P_ALLOW_RANGES, "10.200.0.1", 443, {NULL}, 0, NP_HOST_ALLOW, 0, 0,
     NULL},
    {"allow_range_literal_outside", P_ALLOW_RANGES, "11.0.0.1", 443, {NULL}, 0,
     NP_HOST_DENY_NOT_ALLOWED, 0, 0, "outside its ranges"},
    {"allow_range_deny_range_wins", P_ALLOW_RANGES, "lab.test", 443, {"10.9.0.5"}, 0,
     NP_HOST_DENY_LISTED, 1, 0, "10.9.0.0/16"},
    {"allow_range_hard_deny_wins", P_ALLOW_RANGES, "lab.test", 443, {"10.1.1.1", "169.254.1.1"},
     0, NP_HOST_DENY_HARD, 1, 0, "hard deny list"},
    {"allow_range_denied_name_not_resolved", P_ALLOW_RANGES, "evil.test", 443, {"10.1.2.3"}, 0,
     NP_HOST_DENY_LISTED, 0, 0, "denied by denied_hosts"},
    {"allow_range_dns_failure", P_ALLOW_RANGES, "gone.test", 443, {NULL}, 0,
     NP_HOST_DENY_NOT_ALLOWED, 1, 0, "no DNS answer"},
    /* strict_allowlist with an empty allowlist. */
    {"strict_empty_denies", P_STRICT_EMPTY, "good.test", 443, {"93.184.216.34"}, 0,
     NP_HOST_DENY_NOT_ALLOWED, 0, 0,
     "host good.test denied: the allowlist is empty and strict_allowlist is set"},
    {"strict_empty_denies_literal", P_STRICT_EMPTY, "127.0.0.1", 8080, {NULL}, 0,
     NP_HOST_DENY_NOT_ALLOWED, 0, 0, "strict_allowlist"},
    /* The decide callback: only for hosts no list decides, after their addresses were
     * resolved and checked (a name resolving into a denied range is never asked about). */
    {"decide_not_for_allowed", P_DECIDE, "good.test", 443, {"93.184.216.34"},
     NONOPROXY_DECIDE_DENY, NP_HOST_ALLOW, 1, 0, NULL},
    {"decide_not_for_deny_listed", P_DECIDE, "evil.test", 443, {"93.184.216.34"},
     NONOPROXY_DECIDE_ALLOW_ONCE, NP_HOST_DENY_LISTED, 0, 0, NULL},
    {"decide_not_for_hard_denied", P_DECIDE, "metadata.google.internal", 80, {"1.2.3.4"},
     NONOPROXY_DECIDE_ALLOW_ONCE, NP_HOST_DENY_HARD, 0, 0, NULL},
    {"decide_not_for_deny_listed_literal", P_DECIDE, "10.9.0.1", 443, {NULL},
     NONOPROXY_DECIDE_ALLOW_ONCE, NP_HOST_DENY_LISTED, 0, 0, NULL},
    {"decide_deny", P_DECIDE, "new.test", 443, {"93.184.216.34"}, NONOPROXY_DECIDE_DENY,
     NP_HOST_DENY_DECIDED, 1, 1, "host new.test:443 denied by the decide callback"},
    {"decide_once", P_DECIDE, "new.test", 443, {"93.184.216.34"}, NONOPROXY_DECIDE_ALLOW_ONCE,
     NP_HOST_ALLOW, 1, 1, "allowed once by the decide callback"},
    {"decide_session", P_DECIDE, "new.test", 443, {"93.184.216.34"},
     NONOPROXY_DECIDE_ALLOW_SESSION, NP_HOST_ALLOW, 1, 1,
     "granted for the session by the decide callback"},
    {"decide_not_for_name_in_deny_range", P_DECIDE, "sneaky.test", 443, {"10.9.9.9"},
     NONOPROXY_DECIDE_ALLOW_ONCE, NP_HOST_DENY_LISTED, 1, 0, "10.9.0.0/16"},
    {"decide_not_for_name_on_hard_deny", P_DECIDE, "sneaky.test", 443, {"169.254.169.254"},
     NONOPROXY_DECIDE_ALLOW_ONCE, NP_HOST_DENY_HARD, 1, 0, "hard deny list"},
    {"decide_not_for_name_one_address_denied", P_DECIDE, "sneaky.test", 443,
     {"93.184.216.34", "10.9.0.7"}, NONOPROXY_DECIDE_ALLOW_ONCE, NP_HOST_DENY_LISTED, 1, 0,
     "10.9.0.0/16"},
    {"decide_not_for_dns_failure", P_DECIDE, "gone.test", 443, {NULL},
     NONOPROXY_DECIDE_ALLOW_ONCE, NP_HOST_RESOLVE_FAILED, 1, 0, "DNS resolution of gone.test"},
    {"decide_v6_literal", P_DECIDE, "[2001:DB8::1]", 8443, {NULL}, NONOPROXY_DECIDE_DENY,
     NP_HOST_DENY_DECIDED, 0, 1, "host [2001:db8::1]:8443 denied by the decide callback"},
    /* With allow ranges, an unmatched name is resolved first, then asked about. */
    {"decide_ranges_inside_not_asked", P_DECIDE_RANGES, "lab.test", 443, {"10.1.2.3"},
     NONOPROXY_DECIDE_DENY, NP_HOST_ALLOW, 1, 0, NULL},
    {"decide_ranges_outside_asked_once_resolved", P_DECIDE_RANGES, "web.test", 443,
     {"93.184.216.34"}, NONOPROXY_DECIDE_ALLOW_ONCE, NP_HOST_ALLOW, 1, 1, NULL},
    {"decide_ranges_deny_range_not_asked", P_DECIDE_RANGES, "web.test", 443, {"10.9.0.1"},
     NONOPROXY_DECIDE_ALLOW_ONCE, NP_HOST_DENY_LISTED, 1, 0, NULL},
    {"decide_ranges_dns_failure_not_asked", P_DECIDE_RANGES, "gone.test", 443, {NULL},
     NONOPROXY_DECIDE_ALLOW_ONCE, NP_HOST_RESOLVE_FAILED, 1, 0, "DNS resolution of gone.test"},
};
/* clang-format on */

/* The filters and the decider of one kind of policy. */
struct policy_fixture {
    struct np_hostfilter *allow;
    struct np_hostfilter *deny;
    struct np_decider *decider;
    struct np_host_policy p;
};

static void
policy_setup(struct policy_fixture *px, enum policy_kind kind, struct fake_decide *fd,
             const struct np_resolver *res)
{
    memset(px, 0, sizeof(*px));
    if (kind != P_STRICT_EMPTY) {
        assert_int_equal(np_hostfilter_new(p_deny, NP_ARRAY_LEN(p_deny), &px->deny), 0);
    }
    if (kind == P_ALLOW_RANGES || kind == P_DECIDE_RANGES) {
        assert_int_equal(np_hostfilter_new(p_allow, NP_ARRAY_LEN(p_allow), &px->allow), 0);
    } else if (kind == P_DECIDE) {
        assert_int_equal(np_hostfilter_new(p_allow_names, 1, &px->allow), 0);
    }
    if (kind == P_DECIDE || kind == P_DECIDE_RANGES) {
        struct np_decider_config c;

        memset(&c, 0, sizeof(c));
        c.fn = fake_decide_fn;
        c.userdata = fd;
        c.timeout_ms = 30000;
        assert_int_equal(np_decider_new(&c, &px->decider), 0);
    }
    px->p.allow = px->allow;
    px->p.deny = px->deny;
    px->p.strict = kind == P_STRICT_EMPTY;
    px->p.decider = px->decider;
    px->p.resolver = res;
}

static void
policy_teardown(struct policy_fixture *px)
{
    np_hostfilter_free(px->allow);
    np_hostfilter_free(px->deny);
    np_decider_free(px->decider);
}

static void
check_policy_row(const struct policy_row *r)
{
    struct fake_resolver fr;
    struct fake_decide fd;
    struct np_resolver res = {fake_resolve, &fr};
    struct policy_fixture px;
    struct np_host_query q;
    enum np_host_verdict v;
    const char *text;

    memset(&fr, 0, sizeof(fr));
    memcpy(fr.addrs, r->addrs, sizeof(fr.addrs));
    memset(&fd, 0, sizeof(fd));
    fd.answer = r->answer;
    fd.fr = &fr;
    policy_setup(&px, r->kind, &fd, &res);
    memset(&q, 0, sizeof(q));
    q.host = r->host;
    q.host_len = strlen(r->host);
    q.port = r->port;
    q.mode = NONOPROXY_MODE_CONNECT;
    v = np_host_policy_decide(&px.p, &q);
    text = v == NP_HOST_ALLOW ? q.note : q.reason;
    if (v != r->want || fr.calls != r->dns || fd.calls != r->asks ||
        (r->reason != NULL && strstr(text, r->reason) == NULL)) {
        print_error("row %s: verdict %d dns %d asks %d text '%s', want %d dns %d asks %d '%s'\n",
                    r->rule, (int)v, fr.calls, fd.calls, text, (int)r->want, r->dns, r->asks,
                    r->reason != NULL ? r->reason : "");
        fail();
    }
    assert_true(v == NP_HOST_ALLOW ? q.reason[0] == '\0' && q.addrs.n > 0 : q.addrs.n == 0);
    assert_true(is_printable(q.reason) && is_printable(q.note));
    if (fd.calls > 0) {
        assert_string_equal(fd.host, q.norm);
        assert_int_equal(fd.port, r->port);
        /* After the one lookup (none for a literal): the addresses were checked first. */
        assert_int_equal(fd.dns_calls_before, fr.calls);
    }
    assert_int_equal(q.once, v == NP_HOST_ALLOW && r->answer == NONOPROXY_DECIDE_ALLOW_ONCE &&
                                 fd.calls > 0);
    policy_teardown(&px);
}

static void
test_policy_table(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < NP_ARRAY_LEN(policy_rows); i++) {
        check_policy_row(&policy_rows[i]);
    }
}

/* A session grant is remembered: the next decision allows without asking, with the note. */
static void
test_policy_session_grant_remembered(void **state)
{
    struct fake_resolver fr;
    struct fake_decide fd;
    struct np_resolver res = {fake_resolve, &fr};
    struct policy_fixture px;
    struct np_host_query q;

    (void)state;
    memset(&fr, 0, sizeof(fr));
    fr.addrs[0] = "93.184.216.34";
    memset(&fd, 0, sizeof(fd));
    fd.answer = NONOPROXY_DECIDE_ALLOW_SESSION;
    fd.fr = &fr;
    policy_setup(&px, P_DECIDE, &fd, &res);
    memset(&q, 0, sizeof(q));
    q.host = "new.test";
    q.host_len = strlen(q.host);
    q.port = 443;
    assert_int_equal(np_host_policy_decide(&px.p, &q), NP_HOST_ALLOW);
    fd.answer = NONOPROXY_DECIDE_DENY;
    assert_int_equal(np_host_policy_decide(&px.p, &q), NP_HOST_ALLOW);
    assert_string_equal(q.note, "granted for the session by the decide callback");
    assert_false(q.once);
    assert_int_equal(fd.calls, 1);
    q.port = 80; /* another port is another destination */
    assert_int_equal(np_host_policy_decide(&px.p, &q), NP_HOST_DENY_DECIDED);
    assert_int_equal(fd.calls, 2);
    np_decider_stop(px.decider);
    q.host = "later.test";
    q.host_len = strlen(q.host);
    assert_int_equal(np_host_policy_decide(&px.p, &q), NP_HOST_DENY_DECIDED);
    assert_non_null(strstr(q.reason, "shutting down"));
    assert_int_equal(fd.calls, 2);
    policy_teardown(&px);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize_table),
        cmocka_unit_test(test_normalize_length_limit),
        cmocka_unit_test(test_normalize_limits),
        cmocka_unit_test(test_hard_deny_addr_table),
        cmocka_unit_test(test_hard_deny_unknown_family),
        cmocka_unit_test(test_hard_deny_names_cannot_be_allowed),
        cmocka_unit_test(test_empty_list_allows_all_but_hard_deny),
        cmocka_unit_test(test_check_name_renormalises),
        cmocka_unit_test(test_allowlist_table),
        cmocka_unit_test(test_entry_table),
        cmocka_unit_test(test_entry_limits),
        cmocka_unit_test(test_entry_longest_wildcard_fits),
        cmocka_unit_test(test_self_table),
        cmocka_unit_test(test_decide_table),
        cmocka_unit_test(test_decide_returns_exactly_the_checked_addresses),
        cmocka_unit_test(test_entry_range_reasons),
        cmocka_unit_test(test_addr_match),
        cmocka_unit_test(test_policy_table),
        cmocka_unit_test(test_policy_session_grant_remembered),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
