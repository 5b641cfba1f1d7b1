/* timeutil.h -- the engine's only clock: timestamps taken from events.
 *
 * Instants are int64 nanoseconds since 1970-01-01T00:00:00Z (UTC), which
 * covers 1970..2262; the parsers accept only UTC years 1970..2261, i.e.
 * [1970-01-01T00:00:00Z, 2262-01-01T00:00:00Z), and return TIME_ERANGE for
 * anything else.  On any error the outputs are left untouched.
 * Months are counted as year*12 + (month-1), e.g. 2026-01 -> 24312.
 * Pure functions, no allocation, no wall clock, no locale, no TZ.
 */
#ifndef CREDITD_TIMEUTIL_H
#define CREDITD_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

#define TIME_OK      0
#define TIME_ESYNTAX -1
#define TIME_ERANGE  -2

/* RFC 3339 date-time: YYYY-MM-DDTHH:MM:SS[.frac]('Z'|'z'|(+|-)HH:MM).
 * The separator is 'T' or 't' (a space is NOT accepted); the zone is 'Z',
 * 'z' or an offset.  Fraction of 1 or more digits (beyond 9 truncated).  Validates
 * day-of-month (leap years), hour 0-23, minute 0-59, second 0-60 (a leap
 * second 60 is folded to 59.999999999 of the same minute, whatever fraction
 * follows it), offsets up to +-23:59.  A calendar/field error is
 * TIME_ESYNTAX; the range check (TIME_ERANGE) is made on the UTC instant
 * after applying the offset, so "1970-01-01T00:30:00+01:00" is out of range.
 * s must be NUL-terminated. */
int time_parse_rfc3339(const char *s, int64_t *ns_out);

/* A calendar date YYYY-MM-DD (NUL-terminated).  *month_out is the month index
 * and *day_out the day of month (1..31), validated against the calendar
 * (TIME_ESYNTAX).  Years outside 1970..2261 are TIME_ERANGE. */
int time_parse_date(const char *s, int32_t *month_out, int *day_out);

/* Month index of an instant (UTC).  Defined for every int64. */
int32_t time_month_of(int64_t ns);

/* First instant (00:00:00Z on day 1) of month m; TIME_ERANGE-safe callers
 * only pass months in 1970-01..2262-03 (asserted: 1970-01..2262-04, the
 * last month whose start fits int64). */
int64_t time_month_start(int32_t month);

/* Range checks for values read back from the store, which are checked,
 * never asserted on: an instant the parsers accept ([1970-01-01T00:00:00Z,
 * 2262-01-01T00:00:00Z)), and a month that holds one (1970-01..2261-12;
 * every function here takes such a month). */
int time_ns_in_range(int64_t ns);
int time_month_in_range(int32_t month);

/* "YYYY-MM" into buf (>= 8 bytes). */
void time_format_month(int32_t month, char *buf);

/* "YYYY-MM-DD" of the first day of month m into buf (>= 11 bytes). */
void time_format_month_date(int32_t month, char *buf);

/* RFC 3339 UTC form "YYYY-MM-DDTHH:MM:SS[.fffffffff]Z" (fraction only if
 * non-zero, trailing zeros trimmed) into buf (>= 40 bytes).  Defined for
 * every int64 (negative values give years before 1970). */
void time_format(int64_t ns, char *buf);

#endif
