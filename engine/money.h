/* money.h -- exact fixed-point amounts for creditd.
 *
 * Money is a signed 64-bit count of micro-units (1e-6).  Quantities and unit
 * prices are signed 64-bit counts of nano-units (1e-9).  No floating point.
 * Every operation that can overflow is checked and reports MONEY_EOVERFLOW;
 * every division rounds half-to-even.
 *
 * All functions are pure; none allocates.
 */
#ifndef CREDITD_MONEY_H
#define CREDITD_MONEY_H

#include <stddef.h>
#include <stdint.h>

#define MONEY_DIGITS 6               /* fractional digits of money          */
#define MONEY_SCALE  INT64_C(1000000)
#define QTY_DIGITS   9               /* fractional digits of quantity/price */
#define QTY_SCALE    INT64_C(1000000000)

/* Return codes (0 = success). */
#define MONEY_OK         0
#define MONEY_ESYNTAX   -1  /* not a plain decimal: empty, sign only, '.', exponent, spaces... */
#define MONEY_EDIGITS   -2  /* more fractional digits than allowed */
#define MONEY_ERANGE    -3  /* magnitude does not fit in int64 at the given scale */
#define MONEY_EOVERFLOW -4  /* arithmetic result does not fit in int64 */

/* Parse the decimal text s[0..len) (not NUL-terminated necessarily) with at
 * most `digits` fractional digits (0..18) into a count of 10^-digits units.
 * Accepted: optional leading '-', one or more ASCII digits, optionally '.'
 * followed by one or more digits.  Rejected: '+', leading/trailing '.',
 * exponents, whitespace, anything else.  "-0" parses as 0.
 * Leading zeros are fine.  Too many fraction digits is MONEY_EDIGITS even if
 * they are zeros ("1.5000000" at 6 digits).  When several errors apply the
 * first of ESYNTAX, EDIGITS, ERANGE wins.  digits outside 0..18 is asserted.
 * On any error *out is left untouched (true of every function below). */
int money_parse(const char *s, size_t len, int digits, int64_t *out);

/* Convert a JSON integer (whole units) to a count of 10^-digits units;
 * MONEY_ERANGE if it does not fit. */
int money_from_int(int64_t whole, int digits, int64_t *out);

/* Checked arithmetic: *out = a op b, or MONEY_EOVERFLOW leaving *out untouched. */
int money_add(int64_t a, int64_t b, int64_t *out);
int money_sub(int64_t a, int64_t b, int64_t *out);

/* cost = qty * price, where qty and price are nano-units (9 digits), result in
 * micro-units (6 digits): exact 128-bit product, then divided by 10^12 with
 * half-to-even rounding.  MONEY_EOVERFLOW if the result does not fit. */
int money_cost(int64_t qty_nano, int64_t price_nano, int64_t *cost_micro);

/* *out = round_half_even(a * num / den), computed exactly in 128 bits.
 * den must be > 0 (asserted).  MONEY_EOVERFLOW if the result does not fit.
 * Negative a or num: half-even is applied to the magnitude and the sign put
 * back, so (-5,1,2) -> -2 and (-7,1,2) -> -4; a zero result is never "-0".
 * Overflow is judged after rounding (INT64_MIN itself is a valid result). */
int money_muldiv(int64_t a, int64_t num, int64_t den, int64_t *out);

/* Format v (a count of 10^-digits units) as a decimal with exactly `digits`
 * fractional digits ("70.000000", "-0.500000").  buf must hold at least
 * MONEY_FMT_MAX bytes; returns the length written (without the NUL). */
#define MONEY_FMT_MAX 32
size_t money_format(int64_t v, int digits, char *buf);

#endif
