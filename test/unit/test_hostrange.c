/* Unit tests for lib/hostrange.c (SPEC §13): CIDR parsing (v4, v6, /0, /32, /128, host bits,
 * bad syntax), matching (IPv4-mapped, embedded forms for deny lists, bit boundaries) and the
 * overlap with the hard deny list, checked against np_addr_is_hard_denied. */
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

#include "hostfilter.h"
#include "hostrange.h"

/* Fill *ss from an address literal; fails the test if text is not an address. */
static void
mk_addr(const char *text, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (strchr(text, ':') != NULL) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, text, &s6->sin6_addr), 1);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
        s4->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, text, &s4->sin_addr), 1);
    }
}

struct parse_row {
    const char *rule;
    const char *text;
    const char *want;   /* canonical text, or NULL = refused */
    const char *reason; /* a substring of the reason when refused */
};

/* clang-format off */
static const struct parse_row parse_rows[] = {
    {"v4_slash8", "10.0.0.0/8", "10.0.0.0/8", NULL},
    {"v4_slash0", "0.0.0.0/0", "0.0.0.0/0", NULL},
    {"v4_slash32", "203.0.113.7/32", "203.0.113.7/32", NULL},
    {"v4_odd_prefix", "10.0.0.0/15", "10.0.0.0/15", NULL},
    {"v6_slash8", "fd00::/8", "fd00::/8", NULL},
    {"v6_upper_case", "FD00::/8", "fd00::/8", NULL},
    {"v6_long_form", "2001:0DB8:0000:0000:0000:0000:0000:0000/32", "2001:db8::/32", NULL},
    {"v6_slash0", "::/0", "::/0", NULL},
    {"v6_slash128", "::1/128", "::1/128", NULL},
    {"v6_mapped", "::ffff:10.0.0.0/104", "::ffff:10.0.0.0/104", NULL},
    {"v4_host_bits", "10.1.2.3/8", NULL, "host bits"},
    {"v4_host_bits_last", "203.0.113.7/31", NULL, "host bits"},
    {"v4_host_bits_slash0", "0.0.0.1/0", NULL, "host bits"},
    {"v6_host_bits", "fd00::1/8", NULL, "host bits"},
    {"v6_host_bits_in_partial_byte", "fec0::/9", NULL, "host bits"},
    {"v4_prefix_33", "10.0.0.0/33", NULL, "0 to 32"},
    {"v4_prefix_huge", "10.0.0.0/99999999999999999999", NULL, "0 to 32"},
    {"v6_prefix_129", "fd00::/129", NULL, "0 to 128"},
    {"missing_prefix", "10.0.0.0/", NULL, "missing prefix"},
    {"missing_address", "/8", NULL, "before '/'"},
    {"no_slash", "10.0.0.0", NULL, "'/'"},
    {"prefix_negative", "10.0.0.0/-1", NULL, "decimal"},
    {"prefix_plus", "10.0.0.0/+8", NULL, "decimal"},
    {"prefix_leading_zero", "10.0.0.0/08", NULL, "leading zero"},
    {"prefix_space", "10.0.0.0/8 ", NULL, "decimal"},
    {"two_slashes", "10.0.0.0/8/8", NULL, "decimal"},
    {"prefix_with_port", "10.0.0.0/8:443", NULL, "decimal"},
    {"v4_three_parts", "10.0.0/8", NULL, "before '/'"},
    {"v4_leading_zero_octet", "010.0.0.0/8", NULL, "before '/'"},
    {"v4_hex", "0xa.0.0.0/8", NULL, "before '/'"},
    {"v4_decimal_number", "167772160/8", NULL, "before '/'"},
    {"name", "example.com/8", NULL, "before '/'"},
    {"v6_zone", "fe80::%eth0/64", NULL, "before '/'"},
    {"v6_brackets", "[fd00::]/8", NULL, "before '/'"},
    {"v6_too_many_groups", "1:2:3:4:5:6:7:8:9/64", NULL, "before '/'"},
};
/* clang-format on */

static void
test_parse_table(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < NP_ARRAY_LEN(parse_rows); i++) {
        const struct parse_row *r = &parse_rows[i];
        struct np_range rg;
        char out[64];
        const char *why = np_range_parse(r->text, strlen(r->text), &rg);

        if (r->want != NULL) {
            if (why != NULL || np_range_format(&rg, out, sizeof(out)) != 0 ||
                strcmp(out, r->want) != 0) {
                print_error("row %s: why '%s', want '%s'\n", r->rule, why ? why : "", r->want);
                fail();
            }
        } else if (why == NULL || strstr(why, r->reason) == NULL) {
            print_error("row %s: why '%s', want a reason with '%s'\n", r->rule,
                        why ? why : "(none)", r->reason);
            fail();
        }
    }
}

/* A range with host bits set still yields the masked range (the caller's suggestion). */
static void
test_host_bits_give_the_masked_range(void **state)
{
    struct np_range rg;
    char out[64];

    (void)state;
    assert_ptr_equal(np_range_parse("10.1.2.3/8", 10, &rg), np_range_why_host_bits);
    assert_int_equal(np_range_format(&rg, out, sizeof(out)), 0);
    assert_string_equal(out, "10.0.0.0/8");
    assert_ptr_equal(np_range_parse("fd12:3456::1/20", 15, &rg), np_range_why_host_bits);
    assert_int_equal(np_range_format(&rg, out, sizeof(out)), 0);
    assert_string_equal(out, "fd12:3000::/20");
    assert_int_equal(np_range_format(&rg, out, 5), -1);
    assert_non_null(np_range_parse(NULL, 0, &rg));
}

struct match_row {
    const char *rule;
    const char *range;
    const char *addr;
    bool embedded;
    bool want;
};

/* clang-format off */
static const struct match_row match_rows[] = {
    {"v4_inside", "10.0.0.0/8", "10.1.2.3", false, true},
    {"v4_first", "10.0.0.0/8", "10.0.0.0", false, true},
    {"v4_last", "10.0.0.0/8", "10.255.255.255", false, true},
    {"v4_outside", "10.0.0.0/8", "11.0.0.0", false, false},
    {"v4_below", "10.0.0.0/8", "9.255.255.255", false, false},
    {"v4_odd_prefix_inside", "10.0.0.0/15", "10.1.255.255", false, true},
    {"v4_odd_prefix_outside", "10.0.0.0/15", "10.2.0.0", false, false},
    {"v4_slash1_boundary_low", "128.0.0.0/1", "127.255.255.255", false, false},
    {"v4_slash1_boundary_high", "128.0.0.0/1", "128.0.0.0", false, true},
    {"v4_slash32_same", "203.0.113.7/32", "203.0.113.7", false, true},
    {"v4_slash32_next", "203.0.113.7/32", "203.0.113.8", false, false},
    {"v4_slash0_any", "0.0.0.0/0", "198.51.100.1", false, true},
    {"v4_range_mapped_addr", "10.0.0.0/8", "::ffff:10.1.2.3", false, true},
    {"v4_range_mapped_addr_outside", "10.0.0.0/8", "::ffff:11.1.2.3", false, false},
    {"v4_range_nat64_allow", "10.0.0.0/8", "64:ff9b::a01:203", false, false},
    {"v4_range_nat64_deny", "10.0.0.0/8", "64:ff9b::a01:203", true, true},
    {"v4_range_6to4_allow", "10.0.0.0/8", "2002:a01:203::1", false, false},
    {"v4_range_6to4_deny", "10.0.0.0/8", "2002:a01:203::1", true, true},
    {"v4_range_compat_deny", "10.0.0.0/8", "::a01:203", true, true},
    {"v4_slash0_not_v6_loopback", "0.0.0.0/0", "::1", true, false},
    {"v4_slash0_not_v6_unspecified", "0.0.0.0/0", "::", true, false},
    {"v4_slash0_not_plain_v6", "0.0.0.0/0", "2001:db8::1", true, false},
    {"v6_inside", "fd00::/8", "fd12::1", false, true},
    {"v6_outside", "fd00::/8", "fe00::1", false, false},
    {"v6_not_v4", "fd00::/8", "10.0.0.1", false, false},
    {"v6_slash128_same", "::1/128", "::1", false, true},
    {"v6_slash128_next", "::1/128", "::2", false, false},
    {"v6_slash0_any_v6", "::/0", "2001:db8::1", false, true},
    {"v6_slash0_any_v4", "::/0", "192.0.2.1", false, true},
    {"v6_mapped_range_v4_addr", "::ffff:0:0/96", "192.0.2.1", false, true},
    {"v6_mapped_range_v4_addr_narrow", "::ffff:10.0.0.0/104", "10.9.9.9", false, true},
    {"v6_mapped_range_v4_addr_outside", "::ffff:10.0.0.0/104", "11.9.9.9", false, false},
    {"v6_partial_byte_inside", "fe80::/10", "febf::1", false, true},
    {"v6_partial_byte_outside", "fe80::/10", "fec0::1", false, false},
};
/* clang-format on */

static void
test_match_table(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < NP_ARRAY_LEN(match_rows); i++) {
        const struct match_row *r = &match_rows[i];
        struct sockaddr_storage ss;
        struct np_range rg;
        bool got;

        assert_null(np_range_parse(r->range, strlen(r->range), &rg));
        mk_addr(r->addr, &ss);
        got = np_range_contains(&rg, (const struct sockaddr *)&ss, r->embedded);
        if (got != r->want) {
            print_error("row %s: %s in %s = %d, want %d\n", r->rule, r->addr, r->range, got,
                        r->want);
            fail();
        }
    }
}

static void
test_match_other_family_and_null(void **state)
{
    struct sockaddr_un un;
    struct np_range rg;

    (void)state;
    memset(&un, 0, sizeof(un));
    un.sun_family = AF_UNIX;
    assert_null(np_range_parse("::/0", 4, &rg));
    assert_false(np_range_contains(&rg, (const struct sockaddr *)&un, true));
    assert_false(np_range_contains(&rg, NULL, true));
    assert_false(np_range_contains(NULL, (const struct sockaddr *)&un, true));
}

struct overlap_row {
    const char *range;
    enum np_range_overlap want;
    const char *what; /* the hard-denied range named, or NULL */
};

/* clang-format off */
static const struct overlap_row overlap_rows[] = {
    {"169.254.0.0/16", NP_RANGE_OVERLAPS_DENIED, "169.254.0.0/16"},
    {"169.0.0.0/8", NP_RANGE_OVERLAPS_DENIED, "169.254.0.0/16"},
    {"0.0.0.0/0", NP_RANGE_OVERLAPS_DENIED, "169.254.0.0/16"},
    {"128.0.0.0/1", NP_RANGE_OVERLAPS_DENIED, "169.254.0.0/16"},
    {"169.254.1.0/24", NP_RANGE_OVERLAPS_DENIED, "169.254.0.0/16"},
    {"169.254.169.254/32", NP_RANGE_OVERLAPS_DENIED, "169.254.0.0/16"},
    {"100.100.100.200/32", NP_RANGE_OVERLAPS_DENIED, "100.100.100.200/32"},
    {"192.0.0.192/32", NP_RANGE_OVERLAPS_DENIED, "192.0.0.192/32"},
    {"fe80::/10", NP_RANGE_OVERLAPS_DENIED, "fe80::/10"},
    {"fe80::1/128", NP_RANGE_OVERLAPS_DENIED, "fe80::/10"},
    {"fe00::/7", NP_RANGE_OVERLAPS_DENIED, "fe80::/10"},
    {"::/0", NP_RANGE_OVERLAPS_DENIED, NULL},
    {"::ffff:0:0/96", NP_RANGE_OVERLAPS_DENIED, "::ffff:169.254.0.0/112"},
    {"::ffff:169.254.0.0/112", NP_RANGE_OVERLAPS_DENIED, "::ffff:169.254.0.0/112"},
    {"::/96", NP_RANGE_OVERLAPS_DENIED, NULL},
    {"64:ff9b::/96", NP_RANGE_OVERLAPS_DENIED, NULL},
    {"2002::/16", NP_RANGE_OVERLAPS_DENIED, NULL},
    {"2002:a9fe::/32", NP_RANGE_OVERLAPS_DENIED, "2002:a9fe::/32"},
    {"fd00:ec2::254/128", NP_RANGE_OVERLAPS_DENIED, "fd00:ec2::254/128"},
    {"fd00::/8", NP_RANGE_HOLDS_DENIED_ADDRESS, "fd00:ec2::254/128"},
    {"fc00::/7", NP_RANGE_HOLDS_DENIED_ADDRESS, "fd00:ec2::254/128"},
    {"100.64.0.0/10", NP_RANGE_HOLDS_DENIED_ADDRESS, "100.100.100.200/32"},
    {"192.0.0.0/24", NP_RANGE_HOLDS_DENIED_ADDRESS, "192.0.0.192/32"},
    {"2002:6464::/32", NP_RANGE_HOLDS_DENIED_ADDRESS, "2002:6464:64c8::/48"},
    {"10.0.0.0/8", NP_RANGE_CLEAR, NULL},
    {"203.0.113.7/32", NP_RANGE_CLEAR, NULL},
    {"169.253.0.0/16", NP_RANGE_CLEAR, NULL},
    {"169.255.0.0/16", NP_RANGE_CLEAR, NULL},
    {"127.0.0.0/8", NP_RANGE_CLEAR, NULL},
    {"2001:db8::/32", NP_RANGE_CLEAR, NULL},
    {"fec0::/10", NP_RANGE_CLEAR, NULL},
    {"::1/128", NP_RANGE_CLEAR, NULL},
    {"::ffff:10.0.0.0/104", NP_RANGE_CLEAR, NULL},
};
/* clang-format on */

static void
test_overlap_table(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < NP_ARRAY_LEN(overlap_rows); i++) {
        const struct overlap_row *r = &overlap_rows[i];
        struct np_range rg;
        char what[64];
        enum np_range_overlap got;

        assert_null(np_range_parse(r->range, strlen(r->range), &rg));
        memset(what, 'X', sizeof(what));
        got = np_range_hard_deny_overlap(&rg, what, sizeof(what));
        if (got != r->want || (r->what != NULL && strcmp(what, r->what) != 0) ||
            (got == NP_RANGE_CLEAR && what[0] != '\0')) {
            print_error("range %s: %d '%s', want %d '%s'\n", r->range, (int)got, what, (int)r->want,
                        r->what != NULL ? r->what : "");
            fail();
        }
    }
}

/* The overlap table and np_addr_is_hard_denied agree: a single address (/32, /128) is refused
 * exactly when the hard deny list denies it. */
static void
test_overlap_agrees_with_hard_deny(void **state)
{
    static const char *const samples[] = {
        "169.254.0.0",
        "169.254.255.255",
        "169.253.255.255",
        "169.255.0.0",
        "100.100.100.200",
        "100.100.100.201",
        "192.0.0.192",
        "192.0.0.191",
        "fe80::1",
        "febf:ffff::1",
        "fec0::1",
        "fd00:ec2::254",
        "fd00:ec2::255",
        "::ffff:169.254.1.1",
        "::169.254.1.1",
        "64:ff9b::169.254.1.1",
        "2002:a9fe:101::1",
        "2002:6464:64c8::",
        "2002:c000:c0::5",
        "8.8.8.8",
        "::1",
        "2001:db8::1",
        "64:ff9b::100.100.100.200",
        "::192.0.0.192",
        "::ffff:192.0.0.193",
        "2002:a9ff::1",
    };
    size_t i;

    (void)state;
    for (i = 0; i < NP_ARRAY_LEN(samples); i++) {
        struct sockaddr_storage ss;
        struct np_range rg;
        bool denied;
        bool refused;

        mk_addr(samples[i], &ss);
        memset(&rg, 0, sizeof(rg));
        rg.v4 = ss.ss_family == AF_INET;
        rg.prefix = rg.v4 ? 32 : 128;
        if (rg.v4) {
            memcpy(rg.net, &((struct sockaddr_in *)&ss)->sin_addr, 4);
        } else {
            memcpy(rg.net, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
        }
        denied = np_addr_is_hard_denied((const struct sockaddr *)&ss);
        refused = np_range_hard_deny_overlap(&rg, NULL, 0) == NP_RANGE_OVERLAPS_DENIED;
        if (denied != refused) {
            print_error("%s: hard denied %d, refused as a range %d\n", samples[i], denied, refused);
            fail();
        }
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table),
        cmocka_unit_test(test_host_bits_give_the_masked_range),
        cmocka_unit_test(test_match_table),
        cmocka_unit_test(test_match_other_family_and_null),
        cmocka_unit_test(test_overlap_table),
        cmocka_unit_test(test_overlap_agrees_with_hard_deny),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
