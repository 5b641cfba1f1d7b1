/* timeutil.c -- calendar arithmetic on event timestamps (see timeutil.h).
 *
 * Pure integer code: Howard Hinnant's days_from_civil / civil_from_days
 * (proleptic Gregorian), no timegm/mktime, no locale, no TZ.
 * Accepted instants are [1970-01-01T00:00:00Z, 2262-01-01T00:00:00Z), i.e.
 * UTC years 1970..2261 inclusive; the check is made after applying the
 * offset, so "1970-01-01T00:30:00+01:00" is out of range.
 */
#include "engine/timeutil.h"

#include <assert.h>
#include <stdbool.h>

#define NS_PER_SEC  INT64_C(1000000000)
#define SEC_PER_DAY INT64_C(86400)
#define NS_PER_DAY  (SEC_PER_DAY * NS_PER_SEC)
#define YEAR_MIN    1970
#define YEAR_END    2262                   /* first year out of range       */
#define MONTH_MIN   (YEAR_MIN * 12)        /* 1970-01                       */
#define MONTH_MAX   (2262 * 12 + 3)        /* 2262-04: last start in int64  */

struct civil {
    int64_t y;
    int m, d;
};

/* Days since 1970-01-01 of the proleptic Gregorian date y-m-d. */
static int64_t days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;                              /* [0, 399]   */
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;      /* [0,146096] */
    return era * 146097 + doe - 719468;
}

static struct civil civil_from_days(int64_t z) {
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    struct civil c;
    c.d = (int)(doy - (153 * mp + 2) / 5 + 1);
    c.m = (int)(mp < 10 ? mp + 3 : mp - 9);
    c.y = yoe + era * 400 + (c.m <= 2);
    return c;
}

static int days_in_month(int64_t y, int m) {
    static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return (m == 2 && leap) ? 29 : dm[m - 1];
}

/* ns = *days * NS_PER_DAY + *rem with 0 <= *rem < NS_PER_DAY, for any int64
 * (no intermediate product, so INT64_MIN is fine). */
static void split_days(int64_t ns, int64_t *days, int64_t *rem) {
    *days = ns / NS_PER_DAY;
    *rem = ns % NS_PER_DAY;
    if (*rem < 0) {
        *rem += NS_PER_DAY;
        (*days)--;
    }
}

/* Read exactly n ASCII digits at *p; stops at the first non-digit (so never
 * reads past a NUL).  Advances *p on success. */
static bool take_digits(const char **p, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9') return false;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static bool take_char(const char **p, char c1, char c2) {
    if (**p != c1 && **p != c2) return false;
    (*p)++;
    return true;
}

/* "YYYY-MM-DD", calendar-validated (any year 0000..9999). */
static bool take_date(const char **p, struct civil *c) {
    int y, m, d;
    if (!take_digits(p, 4, &y) || !take_char(p, '-', '-') ||
        !take_digits(p, 2, &m) || !take_char(p, '-', '-') ||
        !take_digits(p, 2, &d))
        return false;
    if (m < 1 || m > 12 || d < 1 || d > days_in_month(y, m)) return false;
    c->y = y;
    c->m = m;
    c->d = d;
    return true;
}

/* "HH:MM:SS[.f+]" -> seconds of day and nanoseconds; 60 is folded. */
static bool take_clock(const char **p, int64_t *sec, int64_t *ns) {
    int h, mi, s;
    if (!take_digits(p, 2, &h) || !take_char(p, ':', ':') ||
        !take_digits(p, 2, &mi) || !take_char(p, ':', ':') ||
        !take_digits(p, 2, &s))
        return false;
    if (h > 23 || mi > 59 || s > 60) return false;
    int64_t frac = 0;
    if (take_char(p, '.', '.')) {
        int n = 0;
        /* RFC 3339 allows any number of digits: nanoseconds are kept,
         * further digits are read and dropped (truncated, never rounded up
         * into the next second). */
        for (; (*p)[0] >= '0' && (*p)[0] <= '9'; (*p)++, n++)
            if (n < 9) frac = frac * 10 + ((*p)[0] - '0');
        if (n == 0) return false;
        for (; n < 9; n++) frac *= 10;
    }
    if (s == 60) {                                    /* leap second */
        s = 59;
        frac = NS_PER_SEC - 1;
    }
    *sec = (int64_t)h * 3600 + mi * 60 + s;
    *ns = frac;
    return true;
}

/* "Z" | "z" | ("+"|"-")HH:MM -> offset east of UTC in seconds. */
static bool take_offset(const char **p, int64_t *off) {
    if (take_char(p, 'Z', 'z')) {
        *off = 0;
        return true;
    }
    char sign = **p;
    int h, m;
    if (!take_char(p, '+', '-') || !take_digits(p, 2, &h) ||
        !take_char(p, ':', ':') || !take_digits(p, 2, &m))
        return false;
    if (h > 23 || m > 59) return false;
    *off = (sign == '-' ? -1 : 1) * ((int64_t)h * 3600 + m * 60);
    return true;
}

int time_parse_rfc3339(const char *s, int64_t *ns_out) {
    assert(s != NULL && ns_out != NULL);
    const char *p = s;
    struct civil c;
    int64_t sec, frac, off;
    if (!take_date(&p, &c) || !take_char(&p, 'T', 't') ||
        !take_clock(&p, &sec, &frac) || !take_offset(&p, &off) || *p != '\0')
        return TIME_ESYNTAX;
    /* Years are at most 9999 here, so seconds cannot overflow int64. */
    int64_t utc = days_from_civil(c.y, c.m, c.d) * SEC_PER_DAY + sec - off;
    if (utc < 0 || utc >= days_from_civil(YEAR_END, 1, 1) * SEC_PER_DAY)
        return TIME_ERANGE;
    *ns_out = utc * NS_PER_SEC + frac;
    return TIME_OK;
}

int time_parse_date(const char *s, int32_t *month_out, int *day_out) {
    assert(s != NULL && month_out != NULL && day_out != NULL);
    const char *p = s;
    struct civil c;
    if (!take_date(&p, &c) || *p != '\0') return TIME_ESYNTAX;
    if (c.y < YEAR_MIN || c.y >= YEAR_END) return TIME_ERANGE;
    *month_out = (int32_t)(c.y * 12 + c.m - 1);
    *day_out = c.d;
    return TIME_OK;
}

int32_t time_month_of(int64_t ns) {
    int64_t days, rem;
    split_days(ns, &days, &rem);
    struct civil c = civil_from_days(days);
    return (int32_t)(c.y * 12 + c.m - 1);
}

int64_t time_month_start(int32_t month) {
    assert(month >= MONTH_MIN && month <= MONTH_MAX);
    int64_t days = days_from_civil(month / 12, month % 12 + 1, 1);
    return days * NS_PER_DAY;
}

int time_ns_in_range(int64_t ns) {
    return ns >= 0 && ns < days_from_civil(YEAR_END, 1, 1) * NS_PER_DAY;
}

int time_month_in_range(int32_t month) {
    return month >= MONTH_MIN && month < YEAR_END * 12;
}

/* Write v as exactly n zero-padded decimal digits (v must fit). */
static char *put_digits(char *buf, int64_t v, int n) {
    assert(v >= 0);
    for (int i = n - 1; i >= 0; i--) {
        buf[i] = (char)('0' + v % 10);
        v /= 10;
    }
    assert(v == 0);
    return buf + n;
}

static char *put_date(char *buf, int64_t y, int m, int d) {
    buf = put_digits(buf, y, 4);
    *buf++ = '-';
    buf = put_digits(buf, m, 2);
    *buf++ = '-';
    return put_digits(buf, d, 2);
}

void time_format_month(int32_t month, char *buf) {
    assert(month >= 0 && month < 10000 * 12);
    buf = put_digits(buf, month / 12, 4);
    *buf++ = '-';
    buf = put_digits(buf, month % 12 + 1, 2);
    *buf = '\0';
}

void time_format_month_date(int32_t month, char *buf) {
    assert(month >= 0 && month < 10000 * 12);
    buf = put_date(buf, month / 12, month % 12 + 1, 1);
    *buf = '\0';
}

void time_format(int64_t ns, char *buf) {
    int64_t days, rem;
    split_days(ns, &days, &rem);
    int64_t sod = rem / NS_PER_SEC;
    int64_t frac = rem % NS_PER_SEC;
    struct civil c = civil_from_days(days);
    buf = put_date(buf, c.y, c.m, c.d);
    *buf++ = 'T';
    buf = put_digits(buf, sod / 3600, 2);
    *buf++ = ':';
    buf = put_digits(buf, sod / 60 % 60, 2);
    *buf++ = ':';
    buf = put_digits(buf, sod % 60, 2);
    if (frac != 0) {
        int n = 9;
        while (frac % 10 == 0) {
            frac /= 10;
            n--;
        }
        *buf++ = '.';
        buf = put_digits(buf, frac, n);
    }
    *buf++ = 'Z';
    *buf = '\0';
}
