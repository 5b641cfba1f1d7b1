/* fuzz_check.h -- invariants the engine fuzzer (fuzz_engine.c) checks on every
 * output event, and how a violated invariant is reported.
 *
 * Each invariant has a short name (the "bug name": "output_utf8",
 * "json_number_range", ...).  A violation prints the name and a description
 * on stderr and traps (__builtin_trap), so libFuzzer saves the input.
 *
 * Known open bugs: names listed with fz_known_open_set (from the
 * FUZZ_KNOWN_OPEN environment variable, which `make fuzz-short` fills from
 * tests/fuzz/known-open) do not trap: their first hit is printed, every hit
 * counted, and the run goes on, so a bounded CI run is not stopped by a bug
 * that is already being fixed.  `make fuzz` runs with none.
 */
#ifndef CREDITD_FUZZ_CHECK_H
#define CREDITD_FUZZ_CHECK_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/state.h"

/* The message being checked (borrowed for the call). */
struct fz_line {
    const char *buf;
    size_t len;
    const char *topic;       /* NULL: file replay */
    int32_t partition;
    int64_t offset;          /* 1-based line number in the input */
};

/* Names separated by commas or spaces; NULL or "" = none.  Copied. */
void fz_known_open_set(const char *list);
int  fz_known_open(const char *bug);
/* Print the hit counts of known open bugs (at exit). */
void fz_known_open_report(void);

/* Report a violation of invariant `bug`.  Traps unless bug is known open;
 * then returns 1 so the caller can skip the checks that depend on it. */
int fz_violation(const char *bug, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* 1 if s[0..n) is valid UTF-8 (RFC 3629: no overlongs, no surrogates,
 * nothing above U+10FFFF) without NUL bytes. */
int fz_utf8_valid(const char *s, size_t n);

/* Output money: "-?D+.DDDDDD" (exactly 6 fractional digits) into micro-units.
 * 0, or -1 if malformed or out of range. */
int fz_money_parse(const char *s, int64_t *micro);

/* Check one output event: valid UTF-8, a JSON object jansson reads back,
 * the CloudEvents envelope (specversion, id, source "creditd", type of
 * `kind`, time, datacontenttype, data), the Kafka key, and the data fields
 * of its type.  Returns the parsed event (the caller decrefs it), or NULL
 * when it broke a check whose bug is known open. */
json_t *fz_check_output(const struct fz_line *l, enum eng_out_kind kind, const char *key,
                        const char *json, size_t len);

/* A string member of obj, or NULL (missing, null or not a string). */
const char *fz_str(json_t *obj, const char *name);

#endif
