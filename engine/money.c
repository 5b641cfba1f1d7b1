/* money.c -- exact fixed-point amounts (see money.h).
 *
 * All arithmetic is integer.  Products are formed exactly in 128 bits
 * (|int64 * int64| <= 2^126 fits a signed __int128), divisions round
 * half-to-even on the magnitude and the sign is applied afterwards, which is
 * the same as round-half-even on the signed value (the rule is symmetric).
 */
#include "engine/money.h"

#include <assert.h>
#include <stdbool.h>
#include <stdio.h>

typedef unsigned __int128 money_u128;
typedef __int128 money_i128;

/* 2^63: the magnitude of INT64_MIN, the largest magnitude a negative fits. */
#define MAG_NEG_MAX ((uint64_t)INT64_MAX + 1u)

static const uint64_t pow10_tab[19] = {
    1u, 10u, 100u, 1000u, 10000u, 100000u, 1000000u, 10000000u,
    100000000u, 1000000000u, 10000000000u, 100000000000u,
    1000000000000u, 10000000000000u, 100000000000000u,
    1000000000000000u, 10000000000000000u, 100000000000000000u,
    1000000000000000000u,
};

static bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

/* Apply a sign to a magnitude; false if the result does not fit int64. */
static bool from_mag(money_u128 mag, bool neg, int64_t *out) {
    if (neg) {
        if (mag > MAG_NEG_MAX) return false;
        *out = (mag == MAG_NEG_MAX) ? INT64_MIN : -(int64_t)(uint64_t)mag;
    } else {
        if (mag > (uint64_t)INT64_MAX) return false;
        *out = (int64_t)(uint64_t)mag;
    }
    return true;
}

static money_u128 mag_of(money_i128 v) {
    return v < 0 ? (money_u128)0 - (money_u128)v : (money_u128)v;
}

/* round_half_even(n / d) for unsigned n and 0 < d < 2^127. */
static money_u128 div_half_even(money_u128 n, money_u128 d) {
    money_u128 q = n / d;
    money_u128 r = n % d;
    money_u128 twice = r * 2u;          /* r < d < 2^127: cannot wrap */
    if (twice > d || (twice == d && (q & 1u))) q++;
    return q;
}

/* Syntax scan of [-]D+[.D+].  On success *int_end is the index just past the
 * integer digits and *frac_n the number of fraction digits (0 if no '.'). */
static int scan_decimal(const char *s, size_t len, size_t *start,
                        size_t *int_end, size_t *frac_n) {
    size_t i = 0;
    if (i < len && s[i] == '-') i++;
    *start = i;
    while (i < len && is_digit(s[i])) i++;
    if (i == *start) return MONEY_ESYNTAX;     /* "", "-", ".5", "-.5", "+1" */
    *int_end = i;
    *frac_n = 0;
    if (i == len) return MONEY_OK;
    if (s[i] != '.') return MONEY_ESYNTAX;
    i++;
    size_t f0 = i;
    while (i < len && is_digit(s[i])) i++;
    if (i == f0 || i != len) return MONEY_ESYNTAX;  /* "1.", "1.5x", "1.2.3" */
    *frac_n = i - f0;
    return MONEY_OK;
}

int money_parse(const char *s, size_t len, int digits, int64_t *out) {
    assert(digits >= 0 && digits <= 18);
    assert(s != NULL || len == 0);
    size_t start, int_end, frac_n;
    int rc = scan_decimal(s, len, &start, &int_end, &frac_n);
    if (rc != MONEY_OK) return rc;
    if (frac_n > (size_t)digits) return MONEY_EDIGITS;

    /* Accumulate all digits as one integer, then scale up the fraction.
     * Stop as soon as the magnitude exceeds 2^63 (leading zeros are free). */
    money_u128 mag = 0;
    for (size_t i = start; i < len; i++) {
        if (i == int_end) continue;                 /* the '.' */
        mag = mag * 10u + (money_u128)(s[i] - '0');
        if (mag > MAG_NEG_MAX) return MONEY_ERANGE;
    }
    mag *= pow10_tab[(size_t)digits - frac_n];       /* < 2^63 * 10^18 */
    if (!from_mag(mag, s[0] == '-', out)) return MONEY_ERANGE;
    return MONEY_OK;
}

int money_from_int(int64_t whole, int digits, int64_t *out) {
    assert(digits >= 0 && digits <= 18);
    money_i128 v = (money_i128)whole * (money_i128)pow10_tab[digits];
    if (!from_mag(mag_of(v), v < 0, out)) return MONEY_ERANGE;
    return MONEY_OK;
}

int money_add(int64_t a, int64_t b, int64_t *out) {
    int64_t r;
    if (__builtin_add_overflow(a, b, &r)) return MONEY_EOVERFLOW;
    *out = r;
    return MONEY_OK;
}

int money_sub(int64_t a, int64_t b, int64_t *out) {
    int64_t r;
    if (__builtin_sub_overflow(a, b, &r)) return MONEY_EOVERFLOW;
    *out = r;
    return MONEY_OK;
}

int money_muldiv(int64_t a, int64_t num, int64_t den, int64_t *out) {
    assert(den > 0);
    money_i128 p = (money_i128)a * (money_i128)num;  /* |p| <= 2^126 */
    money_u128 q = div_half_even(mag_of(p), (money_u128)den);
    if (!from_mag(q, p < 0, out)) return MONEY_EOVERFLOW;
    return MONEY_OK;
}

int money_cost(int64_t qty_nano, int64_t price_nano, int64_t *cost_micro) {
    /* nano * nano = 1e-18 units; micro = 1e-6 units: divide by 1e12. */
    const int64_t den = (int64_t)pow10_tab[2 * QTY_DIGITS - MONEY_DIGITS];
    return money_muldiv(qty_nano, price_nano, den, cost_micro);
}

/* Hand-rolled: outputs format several amounts per event and snprintf was
 * a visible part of replay time. */
size_t money_format(int64_t v, int digits, char *buf) {
    assert(digits >= 0 && digits <= 18);
    assert(buf != NULL);
    uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    char tmp[MONEY_FMT_MAX];
    int n = 0;
    for (int k = 0; k < digits; k++) {       /* fraction, least significant first */
        tmp[n++] = (char)('0' + mag % 10);
        mag /= 10;
    }
    if (digits) tmp[n++] = '.';
    do {
        tmp[n++] = (char)('0' + mag % 10);
        mag /= 10;
    } while (mag);
    if (v < 0) tmp[n++] = '-';
    /* Longest output: "-9.223372036854775808" (21 chars). */
    assert(n < MONEY_FMT_MAX);
    for (int k = 0; k < n; k++) buf[k] = tmp[n - 1 - k];
    buf[n] = 0;
    return (size_t)n;
}
