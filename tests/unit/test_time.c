/* test_time.c -- unit tests for engine/timeutil.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "engine/timeutil.h"

#define SENTINEL INT64_C(0x5A5A5A5A5A5A5A5A)
#define NS       INT64_C(1000000000)
#define DAY_NS   (INT64_C(86400) * NS)
#define M(y, m)  ((int32_t)((y) * 12 + (m) - 1))

/* 2026-01-01T00:00:00Z, from `date -u -d 2026-01-01 +%s`. */
#define T2026 (INT64_C(1767225600) * NS)

static int parse(const char *s, int64_t *ns) {
    *ns = SENTINEL;
    int rc = time_parse_rfc3339(s, ns);
    if (rc != TIME_OK) assert_int_equal(*ns, SENTINEL);
    return rc;
}

static void expect_ns(const char *s, int64_t want) {
    int64_t v;
    int rc = parse(s, &v);
    if (rc != TIME_OK) fail_msg("parse(\"%s\") rc %d", s, rc);
    if (v != want)
        fail_msg("parse(\"%s\"): got %lld want %lld", s, (long long)v,
                 (long long)want);
}

static void expect_rc(const char *s, int want_rc) {
    int64_t v;
    int rc = parse(s, &v);
    if (rc != want_rc) fail_msg("parse(\"%s\"): rc %d want %d", s, rc, want_rc);
}

static void test_parse_basic(void **state) {
    (void)state;
    expect_ns("1970-01-01T00:00:00Z", 0);
    expect_ns("1970-01-01T00:00:01Z", NS);
    /* RFC 3339 fractions of any length: digits past nanoseconds are dropped */
    expect_ns("1970-01-01T00:00:01.1234567891Z", NS + 123456789);
    expect_ns("1970-01-01T00:00:01.99999999999999999999Z", NS + 999999999);
    expect_ns("1970-01-02T00:00:00Z", DAY_NS);
    expect_ns("2026-01-01T00:00:00Z", T2026);
    expect_ns("2000-03-01T00:00:00Z", INT64_C(951868800) * NS);
    expect_ns("2026-01-01t00:00:00z", T2026);      /* RFC 3339 5.6 NOTE */
    expect_ns("2026-01-01T00:00:00z", T2026);
    expect_ns("2025-12-31T23:59:59Z", T2026 - NS);
    expect_ns("2026-03-15T12:34:56Z",
              T2026 + ((31 + 28 + 14) * INT64_C(86400) + 45296) * NS);
}

static void test_parse_offsets(void **state) {
    (void)state;
    expect_ns("2026-01-01T01:00:00+01:00", T2026);
    expect_ns("2025-12-31T19:00:00-05:00", T2026);
    expect_ns("2026-01-01T05:30:00+05:30", T2026);
    expect_ns("2025-12-31T20:15:00-03:45", T2026);
    expect_ns("2026-01-01T00:00:00+00:00", T2026);
    expect_ns("2026-01-01T00:00:00-00:00", T2026);
    expect_ns("2026-01-01T23:59:00+23:59", T2026);
    expect_ns("2025-12-31T00:01:00-23:59", T2026);
    /* Offset crossing a month boundary changes the UTC month. */
    int64_t v;
    assert_int_equal(parse("2026-02-01T00:30:00+01:00", &v), TIME_OK);
    assert_int_equal(time_month_of(v), M(2026, 1));
    expect_rc("2026-01-01T00:00:00+24:00", TIME_ESYNTAX);
    expect_rc("2026-01-01T00:00:00+01:60", TIME_ESYNTAX);
    expect_rc("2026-01-01T00:00:00+0100", TIME_ESYNTAX);
    expect_rc("2026-01-01T00:00:00+01", TIME_ESYNTAX);
    expect_rc("2026-01-01T00:00:00+1:00", TIME_ESYNTAX);
    expect_rc("2026-01-01T00:00:00", TIME_ESYNTAX);       /* no zone */
    expect_rc("2026-01-01T00:00:00UTC", TIME_ESYNTAX);
    expect_rc("2026-01-01T00:00:00 Z", TIME_ESYNTAX);
}

static void test_parse_syntax(void **state) {
    (void)state;
    static const char *bad[] = {
        "", "2026", "2026-01-01", "2026-01-01T", "2026-01-01T00:00",
        "2026-01-01T00:00:00", "2026-01-01 00:00:00Z", "2026-01-01_00:00:00Z",
        " 2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z ", "2026-01-01T00:00:00Zx",
        "2026-1-01T00:00:00Z", "2026-01-1T00:00:00Z", "26-01-01T00:00:00Z",
        "+2026-01-01T00:00:00Z", "2026/01/01T00:00:00Z", "2026-01-01T0:00:00Z",
        "2026-01-01T00:00:0Z", "2026-01-01T00-00-00Z", "20260101T000000Z",
        "2026-01-01T00:00:00.Z", "2026-01-01T00:00:00,5Z",
        "2026-01-01T00:00:00.5.5Z",
        "2026-01-01T24:00:00Z", "2026-01-01T00:60:00Z", "2026-01-01T00:00:61Z",
        "2026-13-01T00:00:00Z", "2026-00-10T00:00:00Z", "2026-01-00T00:00:00Z",
        "2026-01-32T00:00:00Z", "2026-04-31T00:00:00Z", "2026-02-29T00:00:00Z",
        "2100-02-29T00:00:00Z", "2026-02-30T00:00:00Z",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_rc(bad[i], TIME_ESYNTAX);
}

static void test_parse_leap_years(void **state) {
    (void)state;
    /* 2024-01-01 = 1704067200; + 59 days = 2024-02-29 */
    expect_ns("2024-02-29T00:00:00Z", (INT64_C(1704067200) + 59 * 86400) * NS);
    expect_ns("2024-03-01T00:00:00Z", (INT64_C(1704067200) + 60 * 86400) * NS);
    expect_ns("2000-02-29T12:00:00Z", (INT64_C(951782400) + 43200) * NS);
    expect_ns("2028-02-29T00:00:00Z", INT64_C(1835395200) * NS);
    expect_rc("2026-02-29T00:00:00Z", TIME_ESYNTAX);
    expect_rc("1900-02-29T00:00:00Z", TIME_ESYNTAX);   /* (and < 1970) */
    expect_rc("2200-02-29T00:00:00Z", TIME_ESYNTAX);
}

static void test_parse_fractions(void **state) {
    (void)state;
    expect_ns("2026-01-01T00:00:00.5Z", T2026 + 500000000);
    expect_ns("2026-01-01T00:00:00.05Z", T2026 + 50000000);
    expect_ns("2026-01-01T00:00:00.123456789Z", T2026 + 123456789);
    expect_ns("2026-01-01T00:00:00.000000001Z", T2026 + 1);
    expect_ns("2026-01-01T00:00:00.100Z", T2026 + 100000000);
    expect_ns("2026-01-01T00:00:00.000000000Z", T2026);
    expect_ns("2026-01-01T01:00:00.25+01:00", T2026 + 250000000);
    expect_ns("2026-01-01T00:00:00.1234567890Z", T2026 + 123456789); /* RFC 3339: any length */
    expect_rc("2026-01-01T00:00:00.Z", TIME_ESYNTAX);
}

static void test_parse_leap_second(void **state) {
    (void)state;
    /* 60 folds to 59.999999999 of the same minute. */
    int64_t a, b;
    assert_int_equal(parse("2016-12-31T23:59:60Z", &a), TIME_OK);
    assert_int_equal(parse("2016-12-31T23:59:59.999999999Z", &b), TIME_OK);
    assert_int_equal(a, b);
    assert_int_equal(parse("2016-12-31T23:59:60.5Z", &a), TIME_OK);
    assert_int_equal(a, b);
    assert_int_equal(time_month_of(a), M(2016, 12));
    assert_int_equal(parse("2017-01-01T00:59:60+01:00", &a), TIME_OK);
    assert_int_equal(a, b);
}

static void test_parse_range(void **state) {
    (void)state;
    expect_rc("1969-12-31T23:59:59Z", TIME_ERANGE);
    expect_rc("1969-12-31T23:59:59.999999999Z", TIME_ERANGE);
    expect_rc("1970-01-01T00:00:00+00:01", TIME_ERANGE);
    expect_rc("1970-01-01T00:30:00+01:00", TIME_ERANGE);
    expect_ns("1969-12-31T23:00:00-01:00", 0);
    expect_rc("0000-01-01T00:00:00Z", TIME_ERANGE);
    expect_rc("1900-01-01T00:00:00Z", TIME_ERANGE);
    /* 2262-01-01T00:00:00Z = 9214646400 s */
    const int64_t end = INT64_C(9214646400) * NS;
    expect_ns("2261-12-31T23:59:59.999999999Z", end - 1);
    expect_ns("2262-01-01T00:30:00+01:00", end - 30 * 60 * NS);
    expect_rc("2262-01-01T00:00:00Z", TIME_ERANGE);
    expect_rc("2261-12-31T23:30:00-01:00", TIME_ERANGE);
    expect_rc("2262-04-11T23:47:16Z", TIME_ERANGE);     /* < INT64_MAX ns */
    expect_rc("2262-04-12T00:00:00Z", TIME_ERANGE);
    expect_rc("9999-12-31T23:59:59Z", TIME_ERANGE);
    expect_rc("9999-12-31T23:59:60-23:59", TIME_ERANGE);
}

static void test_parse_date(void **state) {
    (void)state;
    int32_t m = -1;
    int d = -1;
    assert_int_equal(time_parse_date("2026-01-15", &m, &d), TIME_OK);
    assert_int_equal(m, 24312);
    assert_int_equal(d, 15);
    assert_int_equal(time_parse_date("2024-02-29", &m, &d), TIME_OK);
    assert_int_equal(m, M(2024, 2));
    assert_int_equal(d, 29);
    assert_int_equal(time_parse_date("1970-01-01", &m, &d), TIME_OK);
    assert_int_equal(m, M(1970, 1));
    assert_int_equal(d, 1);
    assert_int_equal(time_parse_date("2261-12-31", &m, &d), TIME_OK);
    assert_int_equal(m, M(2261, 12));
    assert_int_equal(d, 31);
    m = -1;
    d = -1;
    assert_int_equal(time_parse_date("2026-02-29", &m, &d), TIME_ESYNTAX);
    assert_int_equal(time_parse_date("2026-04-31", &m, &d), TIME_ESYNTAX);
    assert_int_equal(time_parse_date("2026-13-01", &m, &d), TIME_ESYNTAX);
    assert_int_equal(time_parse_date("2026-1-15", &m, &d), TIME_ESYNTAX);
    assert_int_equal(time_parse_date("2026-01-15T", &m, &d), TIME_ESYNTAX);
    assert_int_equal(time_parse_date("2026-01-15 ", &m, &d), TIME_ESYNTAX);
    assert_int_equal(time_parse_date("2026-01", &m, &d), TIME_ESYNTAX);
    assert_int_equal(time_parse_date("", &m, &d), TIME_ESYNTAX);
    assert_int_equal(time_parse_date("1969-12-31", &m, &d), TIME_ERANGE);
    assert_int_equal(time_parse_date("2262-01-01", &m, &d), TIME_ERANGE);
    assert_int_equal(m, -1);
    assert_int_equal(d, -1);
}

static void test_month_of_boundaries(void **state) {
    (void)state;
    assert_int_equal(time_month_of(0), M(1970, 1));
    assert_int_equal(time_month_of(31 * DAY_NS - 1), M(1970, 1));
    assert_int_equal(time_month_of(31 * DAY_NS), M(1970, 2));
    assert_int_equal(time_month_of(T2026), 24312);
    assert_int_equal(time_month_of(T2026 - 1), M(2025, 12));
    int64_t v;
    assert_int_equal(parse("2024-03-01T00:00:00Z", &v), TIME_OK);
    assert_int_equal(time_month_of(v), M(2024, 3));
    assert_int_equal(time_month_of(v - 1), M(2024, 2));
    assert_int_equal(time_month_of(INT64_MAX), M(2262, 4));
}

/* The range checks for stored values agree with what the parsers accept. */
static void test_in_range(void **state) {
    (void)state;
    int64_t first, last;
    assert_int_equal(parse("1970-01-01T00:00:00Z", &first), TIME_OK);
    assert_int_equal(parse("2261-12-31T23:59:59.999999999Z", &last), TIME_OK);
    assert_true(time_ns_in_range(first) && time_ns_in_range(last));
    assert_false(time_ns_in_range(first - 1) || time_ns_in_range(last + 1));
    assert_false(time_ns_in_range(INT64_MAX) || time_ns_in_range(INT64_MIN));
    assert_true(time_month_in_range(M(1970, 1)) && time_month_in_range(M(2261, 12)));
    assert_true(time_month_in_range(time_month_of(first)) && time_month_in_range(time_month_of(last)));
    assert_false(time_month_in_range(M(1969, 12)) || time_month_in_range(M(2262, 1)));
    assert_false(time_month_in_range(INT32_MIN) || time_month_in_range(INT32_MAX));
}

static int days_in(int y, int m) {
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 ? 28 + leap : dm[m - 1];
}

/* Every month 1970-01..2261-12: start instant, month_of either side, the
 * month length, and format -> parse round trips. */
static void test_month_start_every_month(void **state) {
    (void)state;
    int64_t expect = 0;                     /* accumulated independently */
    for (int y = 1970; y <= 2261; y++) {
        for (int mo = 1; mo <= 12; mo++) {
            int32_t m = M(y, mo);
            int64_t start = time_month_start(m);
            assert_int_equal(start, expect);
            assert_int_equal(time_month_of(start), m);
            if (m > M(1970, 1)) assert_int_equal(time_month_of(start - 1), m - 1);
            expect += days_in(y, mo) * DAY_NS;
            assert_int_equal(time_month_of(expect - 1), m);

            char buf[40], want[40];
            time_format_month(m, buf);
            snprintf(want, sizeof want, "%04d-%02d", y, mo);
            assert_string_equal(buf, want);
            time_format_month_date(m, buf);
            snprintf(want, sizeof want, "%04d-%02d-01", y, mo);
            assert_string_equal(buf, want);
            int32_t pm;
            int pd;
            assert_int_equal(time_parse_date(buf, &pm, &pd), TIME_OK);
            assert_int_equal(pm, m);
            assert_int_equal(pd, 1);
            time_format(start, buf);
            snprintf(want, sizeof want, "%04d-%02d-01T00:00:00Z", y, mo);
            assert_string_equal(buf, want);
            int64_t back;
            assert_int_equal(parse(buf, &back), TIME_OK);
            assert_int_equal(back, start);
        }
    }
    /* The last valid instant is the day before 2262-01. */
    assert_int_equal(expect, INT64_C(9214646400) * NS);
    assert_int_equal(time_month_start(M(2262, 1)), expect);
    assert_int_equal(time_month_of(time_month_start(M(2262, 4))), M(2262, 4));
}

static void expect_format(int64_t ns, const char *want) {
    char buf[40];
    memset(buf, 'X', sizeof buf);
    time_format(ns, buf);
    assert_string_equal(buf, want);
}

static void test_format(void **state) {
    (void)state;
    expect_format(0, "1970-01-01T00:00:00Z");
    expect_format(1, "1970-01-01T00:00:00.000000001Z");
    expect_format(500000000, "1970-01-01T00:00:00.5Z");
    expect_format(NS + 120000000, "1970-01-01T00:00:01.12Z");
    expect_format(T2026 + 123456789, "2026-01-01T00:00:00.123456789Z");
    expect_format(T2026 - 1, "2025-12-31T23:59:59.999999999Z");
    expect_format(T2026 + 45296 * NS, "2026-01-01T12:34:56Z");
    expect_format(INT64_MAX, "2262-04-11T23:47:16.854775807Z");
    expect_format(-1, "1969-12-31T23:59:59.999999999Z");
    expect_format(INT64_MIN, "1677-09-21T00:12:43.145224192Z");
    char buf[8];
    time_format_month(24312, buf);
    assert_string_equal(buf, "2026-01");
    char dbuf[11];
    time_format_month_date(M(2024, 12), dbuf);
    assert_string_equal(dbuf, "2024-12-01");
}

static void test_format_parse_roundtrip(void **state) {
    (void)state;
    const int64_t end = INT64_C(9214646400) * NS;
    uint64_t x = 88172645463325252u;                 /* xorshift64 */
    for (int i = 0; i < 100000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int64_t ns = (int64_t)(x % (uint64_t)end);
        if (i % 3 == 0) ns -= ns % NS;              /* whole seconds too */
        char buf[40];
        time_format(ns, buf);
        int64_t back;
        if (parse(buf, &back) != TIME_OK) fail_msg("parse(\"%s\")", buf);
        assert_int_equal(back, ns);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_basic),
        cmocka_unit_test(test_parse_offsets),
        cmocka_unit_test(test_parse_syntax),
        cmocka_unit_test(test_parse_leap_years),
        cmocka_unit_test(test_parse_fractions),
        cmocka_unit_test(test_parse_leap_second),
        cmocka_unit_test(test_parse_range),
        cmocka_unit_test(test_parse_date),
        cmocka_unit_test(test_month_of_boundaries),
        cmocka_unit_test(test_in_range),
        cmocka_unit_test(test_month_start_every_month),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_format_parse_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
