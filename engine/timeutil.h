/* timeutil.h -- the engine's only clock: timestamps taken from events.
 *
 * Instants are int64 nanoseconds since 1970-01-01T00:00:00Z (UTC), which
 * covers 1970..2262; anything outside is rejected as out of range.
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
 * 't' and ' ' are NOT accepted as separator except 'T'/'t'.  Fraction up to 9
 * digits (more is TIME_ESYNTAX).  Validates day-of-month (leap years), hour
 * 0-23, minute 0-59, second 0-60 (a leap second 60 is folded to 59.999999999
 * of the same minute), offsets up to +-23:59.  s must be NUL-terminated. */
int time_parse_rfc3339(const char *s, int64_t *ns_out);

/* A calendar date YYYY-MM-DD (NUL-terminated).  *month_out is the month index
 * and *day_out the day of month (1..31), validated against the calendar. */
int time_parse_date(const char *s, int32_t *month_out, int *day_out);

/* Month index of an instant (UTC). */
int32_t time_month_of(int64_t ns);

/* First instant (00:00:00Z on day 1) of month m; TIME_ERANGE-safe callers
 * only pass months in 1970-01..2262-03. */
int64_t time_month_start(int32_t month);

/* "YYYY-MM" into buf (>= 8 bytes). */
void time_format_month(int32_t month, char *buf);

/* "YYYY-MM-DD" of the first day of month m into buf (>= 11 bytes). */
void time_format_month_date(int32_t month, char *buf);

/* RFC 3339 UTC form "YYYY-MM-DDTHH:MM:SS[.fffffffff]Z" (fraction only if
 * non-zero, trailing zeros trimmed) into buf (>= 40 bytes). */
void time_format(int64_t ns, char *buf);

#endif
