/* test_money.c -- unit tests for engine/money.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "engine/money.h"

#define SENTINEL INT64_C(0x5A5A5A5A5A5A5A5A)

/* Parse a NUL-terminated literal; on error also check *out was untouched. */
static int parse(const char *s, int digits, int64_t *out) {
    *out = SENTINEL;
    int rc = money_parse(s, strlen(s), digits, out);
    if (rc != MONEY_OK) assert_int_equal(*out, SENTINEL);
    return rc;
}

static void expect_parse(const char *s, int digits, int64_t want) {
    int64_t v;
    int rc = parse(s, digits, &v);
    if (rc != MONEY_OK) fail_msg("parse(\"%s\", %d) = %d", s, digits, rc);
    if (v != want)
        fail_msg("parse(\"%s\", %d): got %lld want %lld", s, digits,
                 (long long)v, (long long)want);
}

static void expect_parse_rc(const char *s, int digits, int want_rc) {
    int64_t v;
    int rc = parse(s, digits, &v);
    if (rc != want_rc)
        fail_msg("parse(\"%s\", %d): rc %d want %d", s, digits, rc, want_rc);
}

static void test_parse_valid(void **state) {
    (void)state;
    expect_parse("0", 6, 0);
    expect_parse("-0", 6, 0);
    expect_parse("-0.000000", 6, 0);
    expect_parse("1", 6, 1000000);
    expect_parse("70", 6, 70000000);
    expect_parse("1.5", 6, 1500000);
    expect_parse("-1.5", 6, -1500000);
    expect_parse("0.000001", 6, 1);
    expect_parse("-0.000001", 6, -1);
    expect_parse("123456.123456", 6, 123456123456);
    expect_parse("007.25", 6, 7250000);
    expect_parse("0000000000000000000000000000001", 6, 1000000);
    expect_parse("1.000000001", 9, 1000000001);
    expect_parse("0.5", 9, 500000000);
    expect_parse("42", 0, 42);
    expect_parse("-42", 0, -42);
    expect_parse("0.000000000000000001", 18, 1);
}

static void test_parse_respects_len(void **state) {
    (void)state;
    int64_t v = 0;
    /* Input is not NUL-terminated: only s[0..len) counts. */
    assert_int_equal(money_parse("1.5xyz", 3, 6, &v), MONEY_OK);
    assert_int_equal(v, 1500000);
    assert_int_equal(money_parse("12", 1, 6, &v), MONEY_OK);
    assert_int_equal(v, 1000000);
    assert_int_equal(money_parse("1.", 1, 6, &v), MONEY_OK);
    assert_int_equal(v, 1000000);
    assert_int_equal(money_parse("1.5", 2, 6, &v), MONEY_ESYNTAX);
    assert_int_equal(money_parse("-5", 1, 6, &v), MONEY_ESYNTAX);
    assert_int_equal(money_parse(NULL, 0, 6, &v), MONEY_ESYNTAX);
    /* A buffer with no terminator at all (ASan would catch an over-read). */
    char raw[4] = {'9', '.', '2', '5'};
    assert_int_equal(money_parse(raw, sizeof raw, 6, &v), MONEY_OK);
    assert_int_equal(v, 9250000);
}

static void test_parse_syntax(void **state) {
    (void)state;
    static const char *bad[] = {
        "", "-", ".", "1.", ".5", "-.5", "+1", " 1", "1 ", "\t1", "1e5",
        "1E5", "1.5e2", "--1", "-+1", "1.2.3", "0x10", "1,5", "1_000",
        "-.", "- 1", "1.-5", "inf", "nan", "1.5 ", "1.5x",
        "1.1234567x", /* syntax is checked before the digit count */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_parse_rc(bad[i], 6, MONEY_ESYNTAX);
    expect_parse_rc("1.5", 0, MONEY_EDIGITS);
}

static void test_parse_too_many_digits(void **state) {
    (void)state;
    expect_parse_rc("1.1234567", 6, MONEY_EDIGITS);
    expect_parse_rc("1.5000000", 6, MONEY_EDIGITS);     /* zeros count too */
    expect_parse_rc("0.0000000", 6, MONEY_EDIGITS);
    expect_parse_rc("-0.0000001", 6, MONEY_EDIGITS);
    expect_parse_rc("1.0000000000", 9, MONEY_EDIGITS);
    expect_parse_rc("1.0", 0, MONEY_EDIGITS);
    /* A value both too long and too large reports the digit count. */
    expect_parse_rc("99999999999999999999.1234567", 6, MONEY_EDIGITS);
}

static void test_parse_limits(void **state) {
    (void)state;
    expect_parse("9223372036854.775807", 6, INT64_MAX);
    expect_parse("-9223372036854.775808", 6, INT64_MIN);
    expect_parse("0009223372036854.775807", 6, INT64_MAX);
    expect_parse_rc("9223372036854.775808", 6, MONEY_ERANGE);
    expect_parse_rc("-9223372036854.775809", 6, MONEY_ERANGE);
    expect_parse_rc("9223372036855", 6, MONEY_ERANGE);
    expect_parse_rc("99999999999999999999999999999999", 6, MONEY_ERANGE);
    expect_parse_rc("-99999999999999999999999999999999.5", 6, MONEY_ERANGE);
    /* Quantities and prices: 9 digits. */
    expect_parse("9223372036.854775807", 9, INT64_MAX);
    expect_parse("-9223372036.854775808", 9, INT64_MIN);
    expect_parse_rc("9223372036.854775808", 9, MONEY_ERANGE);
    expect_parse_rc("9223372037", 9, MONEY_ERANGE);
    /* Scale extremes. */
    expect_parse("9223372036854775807", 0, INT64_MAX);
    expect_parse("-9223372036854775808", 0, INT64_MIN);
    expect_parse_rc("9223372036854775808", 0, MONEY_ERANGE);
    expect_parse_rc("18446744073709551616", 0, MONEY_ERANGE);
    expect_parse("9.223372036854775807", 18, INT64_MAX);
    expect_parse_rc("10", 18, MONEY_ERANGE);
}

static void test_from_int(void **state) {
    (void)state;
    int64_t v = SENTINEL;
    assert_int_equal(money_from_int(70, 6, &v), MONEY_OK);
    assert_int_equal(v, 70000000);
    assert_int_equal(money_from_int(-3, 6, &v), MONEY_OK);
    assert_int_equal(v, -3000000);
    assert_int_equal(money_from_int(0, 9, &v), MONEY_OK);
    assert_int_equal(v, 0);
    assert_int_equal(money_from_int(9223372036854, 6, &v), MONEY_OK);
    assert_int_equal(v, INT64_C(9223372036854000000));
    assert_int_equal(money_from_int(INT64_MIN, 0, &v), MONEY_OK);
    assert_int_equal(v, INT64_MIN);
    v = SENTINEL;
    assert_int_equal(money_from_int(9223372036855, 6, &v), MONEY_ERANGE);
    assert_int_equal(money_from_int(-9223372036855, 6, &v), MONEY_ERANGE);
    assert_int_equal(money_from_int(9223372037, 9, &v), MONEY_ERANGE);
    assert_int_equal(money_from_int(INT64_MAX, 1, &v), MONEY_ERANGE);
    assert_int_equal(money_from_int(INT64_MIN, 18, &v), MONEY_ERANGE);
    assert_int_equal(v, SENTINEL);
}

static void test_add_sub(void **state) {
    (void)state;
    int64_t v = SENTINEL;
    assert_int_equal(money_add(1500000, -2000000, &v), MONEY_OK);
    assert_int_equal(v, -500000);
    assert_int_equal(money_sub(1, 2, &v), MONEY_OK);
    assert_int_equal(v, -1);
    assert_int_equal(money_add(INT64_MAX, INT64_MIN, &v), MONEY_OK);
    assert_int_equal(v, -1);
    assert_int_equal(money_sub(-1, INT64_MAX, &v), MONEY_OK);
    assert_int_equal(v, INT64_MIN);
    v = SENTINEL;
    assert_int_equal(money_add(INT64_MAX, 1, &v), MONEY_EOVERFLOW);
    assert_int_equal(money_add(INT64_MIN, -1, &v), MONEY_EOVERFLOW);
    assert_int_equal(money_sub(INT64_MIN, 1, &v), MONEY_EOVERFLOW);
    assert_int_equal(money_sub(0, INT64_MIN, &v), MONEY_EOVERFLOW);
    assert_int_equal(money_sub(INT64_MAX, -1, &v), MONEY_EOVERFLOW);
    assert_int_equal(v, SENTINEL);
}

static int64_t cost(int64_t q, int64_t p) {
    int64_t v = SENTINEL;
    int rc = money_cost(q, p, &v);
    if (rc != MONEY_OK) fail_msg("cost(%lld, %lld) rc %d", (long long)q,
                                 (long long)p, rc);
    return v;
}

static void test_cost_rounding(void **state) {
    (void)state;
    const int64_t one = INT64_C(1000000000);         /* 1 unit in nano */
    assert_int_equal(cost(INT64_C(1000000) * one, 1000), 1000000);
    assert_int_equal(cost(3 * one, 2 * one), 6000000);
    assert_int_equal(cost(one, 500), 0);             /* 0.0000005 -> 0 */
    assert_int_equal(cost(one, 1500), 2);            /* 0.0000015 -> 2 */
    assert_int_equal(cost(one, 2500), 2);            /* 0.0000025 -> 2 */
    assert_int_equal(cost(one, 3500), 4);
    assert_int_equal(cost(one, 499), 0);
    assert_int_equal(cost(one, 501), 1);
    assert_int_equal(cost(one, 2501), 3);
    assert_int_equal(cost(-one, 500), 0);            /* no "-0" */
    assert_int_equal(cost(-one, 1500), -2);
    assert_int_equal(cost(one, -2500), -2);
    assert_int_equal(cost(-one, -2500), 2);
    assert_int_equal(cost(-one, 2501), -3);
    /* Half a micro-unit made from 1 nano of quantity. */
    assert_int_equal(cost(1, INT64_C(500000000000)), 0);
    assert_int_equal(cost(1, INT64_C(1500000000000)), 2);
    /* 2.5 units at 0.000001/unit is 2.5 micro -> 2; 3.5 -> 4. */
    assert_int_equal(cost(2500000000, 1000), 2);
    assert_int_equal(cost(3500000000, 1000), 4);
    assert_int_equal(cost(0, INT64_MAX), 0);
}

static void test_cost_limits(void **state) {
    (void)state;
    const int64_t one = INT64_C(1000000000);
    int64_t v = SENTINEL;
    /* max qty * 1000.000000000 = exactly INT64_MAX micro-units */
    assert_int_equal(cost(INT64_MAX, 1000 * one), INT64_MAX);
    assert_int_equal(cost(INT64_MIN, 1000 * one), INT64_MIN);
    /* max qty * 1.0 = 9223372036854775.807 micro -> rounds up */
    assert_int_equal(cost(INT64_MAX, one), INT64_C(9223372036854776));
    assert_int_equal(money_cost(INT64_MAX, INT64_MAX, &v), MONEY_EOVERFLOW);
    assert_int_equal(money_cost(INT64_MIN, INT64_MIN, &v), MONEY_EOVERFLOW);
    assert_int_equal(money_cost(INT64_MIN, INT64_MAX, &v), MONEY_EOVERFLOW);
    assert_int_equal(money_cost(INT64_MAX, 1000 * one + 1, &v),
                     MONEY_EOVERFLOW);
    assert_int_equal(money_cost(INT64_MIN, -1000 * one, &v), MONEY_EOVERFLOW);
    assert_int_equal(money_cost(INT64_MIN, 1000 * one + 1, &v),
                     MONEY_EOVERFLOW);
    assert_int_equal(v, SENTINEL);
}

static int64_t muldiv(int64_t a, int64_t n, int64_t d) {
    int64_t v = SENTINEL;
    int rc = money_muldiv(a, n, d, &v);
    if (rc != MONEY_OK) fail_msg("muldiv(%lld, %lld, %lld) rc %d",
                                 (long long)a, (long long)n, (long long)d, rc);
    return v;
}

static void test_muldiv_rounding(void **state) {
    (void)state;
    assert_int_equal(muldiv(5, 1, 2), 2);
    assert_int_equal(muldiv(7, 1, 2), 4);
    assert_int_equal(muldiv(-5, 1, 2), -2);
    assert_int_equal(muldiv(-7, 1, 2), -4);
    assert_int_equal(muldiv(5, -1, 2), -2);
    assert_int_equal(muldiv(-5, -1, 2), 2);
    assert_int_equal(muldiv(-1, 1, 2), 0);
    assert_int_equal(muldiv(-3, 1, 2), -2);
    assert_int_equal(muldiv(1, 1, 3), 0);
    assert_int_equal(muldiv(2, 1, 3), 1);
    assert_int_equal(muldiv(-2, 1, 3), -1);
    assert_int_equal(muldiv(10, 5, 4), 12);          /* 12.5 -> 12 */
    assert_int_equal(muldiv(10, 7, 4), 18);          /* 17.5 -> 18 */
    assert_int_equal(muldiv(-10, 5, 4), -12);
    assert_int_equal(muldiv(-10, 7, 4), -18);
    assert_int_equal(muldiv(0, INT64_MIN, 7), 0);
    assert_int_equal(muldiv(123456789, 1, 1), 123456789);
    /* 70.000000 prorated 10/31 days = 22.58064516... -> 22.580645 */
    assert_int_equal(muldiv(70000000, 10, 31), 22580645);
}

static void test_muldiv_limits(void **state) {
    (void)state;
    /* The intermediate product needs 128 bits. */
    assert_int_equal(muldiv(INT64_MAX, INT64_MAX, INT64_MAX), INT64_MAX);
    assert_int_equal(muldiv(INT64_MIN, INT64_MAX, INT64_MAX), INT64_MIN);
    assert_int_equal(muldiv(INT64_MAX, INT64_MAX - 1, INT64_MAX),
                     INT64_MAX - 1);
    const int64_t p62 = INT64_C(1) << 62;
    assert_int_equal(muldiv(INT64_MIN, p62, p62), INT64_MIN);
    /* 2^125 / (2^63-1) = 2^62 + 0.50000000000000000005...: just above half */
    assert_int_equal(muldiv(INT64_MIN, -p62, INT64_MAX), p62 + 1);
    /* exact ties at full width: (2^63-1)/2 = 2^62 - 0.5 -> 2^62 (even) */
    assert_int_equal(muldiv(INT64_MAX, 1, 2), p62);
    assert_int_equal(muldiv(INT64_MAX - 2, 1, 2), p62 - 2);
    assert_int_equal(muldiv(INT64_MIN + 1, 1, 2), -p62);
}

static void test_muldiv_overflow(void **state) {
    (void)state;
    int64_t v = SENTINEL;
    assert_int_equal(money_muldiv(INT64_MAX, 2, 1, &v), MONEY_EOVERFLOW);
    assert_int_equal(money_muldiv(INT64_MIN, -1, 1, &v), MONEY_EOVERFLOW);
    assert_int_equal(money_muldiv(INT64_MIN, INT64_MIN, 1, &v),
                     MONEY_EOVERFLOW);
    /* 65535 * 281479271743489 = 2^64-1; /2 = INT64_MAX + 0.5 and INT64_MAX
     * is odd, so rounding pushes it to 2^63: overflow when positive, but
     * exactly INT64_MIN when negative. */
    assert_int_equal(money_muldiv(65535, INT64_C(281479271743489), 2, &v),
                     MONEY_EOVERFLOW);
    assert_int_equal(v, SENTINEL);
    assert_int_equal(muldiv(-65535, INT64_C(281479271743489), 2), INT64_MIN);
    assert_int_equal(muldiv(INT64_MAX, 2, 2), INT64_MAX);
    assert_int_equal(muldiv(INT64_MIN, 1, 1), INT64_MIN);
    v = SENTINEL;
    assert_int_equal(money_muldiv(INT64_MIN, INT64_MIN, INT64_MAX, &v),
                     MONEY_EOVERFLOW);
    /* (2^63-1)^2 / (2^63-2) = 2^63 + tiny */
    assert_int_equal(money_muldiv(INT64_MAX, INT64_MAX, INT64_MAX - 1, &v),
                     MONEY_EOVERFLOW);
    /* negative, magnitude 2^63 + 1: one past INT64_MIN */
    assert_int_equal(money_muldiv(INT64_MIN, INT64_MAX, INT64_MAX - 1, &v),
                     MONEY_EOVERFLOW);
    assert_int_equal(v, SENTINEL);
}

static void expect_format(int64_t v, int digits, const char *want) {
    char buf[MONEY_FMT_MAX];
    memset(buf, 'X', sizeof buf);
    size_t n = money_format(v, digits, buf);
    assert_string_equal(buf, want);
    assert_int_equal(n, strlen(want));
}

static void test_format(void **state) {
    (void)state;
    expect_format(70000000, 6, "70.000000");
    expect_format(-500000, 6, "-0.500000");
    expect_format(0, 6, "0.000000");
    expect_format(1, 6, "0.000001");
    expect_format(-1, 6, "-0.000001");
    expect_format(-1000000, 6, "-1.000000");
    expect_format(INT64_MAX, 6, "9223372036854.775807");
    expect_format(INT64_MIN, 6, "-9223372036854.775808");
    expect_format(INT64_MIN, 9, "-9223372036.854775808");
    expect_format(INT64_MIN, 0, "-9223372036854775808");
    expect_format(INT64_MIN, 18, "-9.223372036854775808");
    expect_format(1, 18, "0.000000000000000001");
    expect_format(42, 0, "42");
    expect_format(-7, 1, "-0.7");
}

static void test_format_parse_roundtrip(void **state) {
    (void)state;
    static const int64_t vals[] = {
        0, 1, -1, 999999, -999999, 1000000, 123456789012345, INT64_MAX,
        INT64_MIN, INT64_MIN + 1, INT64_MAX - 1,
    };
    for (int digits = 0; digits <= 18; digits++) {
        for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
            char buf[MONEY_FMT_MAX];
            size_t n = money_format(vals[i], digits, buf);
            int64_t back = SENTINEL;
            assert_int_equal(money_parse(buf, n, digits, &back), MONEY_OK);
            assert_int_equal(back, vals[i]);
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid),
        cmocka_unit_test(test_parse_respects_len),
        cmocka_unit_test(test_parse_syntax),
        cmocka_unit_test(test_parse_too_many_digits),
        cmocka_unit_test(test_parse_limits),
        cmocka_unit_test(test_from_int),
        cmocka_unit_test(test_add_sub),
        cmocka_unit_test(test_cost_rounding),
        cmocka_unit_test(test_cost_limits),
        cmocka_unit_test(test_muldiv_rounding),
        cmocka_unit_test(test_muldiv_limits),
        cmocka_unit_test(test_muldiv_overflow),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_format_parse_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
