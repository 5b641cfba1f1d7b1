/* event.h -- decoding and validation of input CloudEvents (semantics §1-3).
 *
 * event_decode() runs the "envelope and fields" step of the order of checks
 * (§7): specversion, time, type and every data field of the type.  The
 * earlier steps (JSON, id/source, data.org, partition, idempotency) are done
 * by engine.c.  Strings in struct eng_event are borrowed from the jansson
 * tree and valid as long as it lives.
 */
#ifndef CREDITD_EVENT_H
#define CREDITD_EVENT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/state.h"

enum eng_reason {
    ENG_R_NONE = 0,
    ENG_R_INVALID_JSON,
    ENG_R_INVALID_EVENT,
    ENG_R_UNKNOWN_TYPE,
    ENG_R_ID_CONFLICT,
    ENG_R_WRONG_PARTITION,
    ENG_R_OVERFLOW,
    ENG_R_NO_ORG_CREDIT,
    ENG_R_NO_PROJECT_CREDIT,
    ENG_R_ALLOCATION_EXCEEDS,
    ENG_R_VALUE_CHANGED,
    ENG_R_INSUFFICIENT_CREDIT,
    ENG_R_SOURCE_NOT_ALLOWED,   /* v1.3 §11: before idempotency, not remembered */
    ENG_R_TIME_IN_FUTURE,       /* v1.3 §11: before idempotency, not remembered */
    ENG_R_TOO_LATE,             /* v1.3 §14: before idempotency, not remembered */
    ENG_R_UNKNOWN_USAGE,        /* v1.3 §13: usage.void of no applied usage, remembered */
    ENG_R_ALREADY_VOIDED,       /* v1.3 §13: usage.void of a voided usage, remembered */
    ENG_R_COUNT
};
const char *event_reason_name(int reason);

enum eng_type {
    ENG_T_UNKNOWN = 0,
    ENG_T_ORG_SET,
    ENG_T_ORG_ADJUST,
    ENG_T_ORG_DELETE,
    ENG_T_PROJECT_SET,
    ENG_T_PROJECT_DELETE,
    ENG_T_PROJECT_TERMINATE,
    ENG_T_USAGE,
    ENG_T_USAGE_VOID,
    ENG_T_TICK
};
#define ENG_T_COUNT (ENG_T_TICK + 1)
/* Type from its name; ENG_T_UNKNOWN when not one of ours. */
enum eng_type event_type_of(const char *name);
/* The CloudEvents type name of t ("usage", "clock.tick", ...); "unknown"
 * for ENG_T_UNKNOWN or out of range.  Static string. */
const char *event_type_name(int t);

#define EVENT_VOID_REASON_MAX 200   /* usage.void data.reason bytes (§3) */

struct eng_event {
    enum eng_type type;
    const char *id, *source, *time_str, *org, *project;
    int64_t time;                 /* ns since epoch */
    /* org_credit.set / project_credit.set */
    int64_t value;
    int has_if_value;
    int64_t if_value;
    struct eng_terms terms;       /* expected = expected_consumption as given */
    int end_day;                  /* day of end_date (must be 1) */
    int noff;
    const char *off[ENG_MAX_OFFERINGS];
    uint64_t thr[2];              /* alert_thresholds (§12), bit k = k percent */
    /* org_credit.adjust */
    int64_t delta;
    /* usage */
    const char *resource, *offering, *component, *plan, *unit;
    int has_qty;                  /* quantity + unit_price form */
    int64_t quantity, unit_price; /* nano-units */
    int64_t amount;               /* micro-units; for the qty form: 0 until computed */
    int amount_overflow;          /* quantity * unit_price does not fit */
    /* usage.void (§13) */
    const char *usage_source, *usage_id, *usage_time_str, *reason;
    int64_t usage_time;           /* ns */
};

/* The reject message for an unknown type: the name is quoted up to 64 bytes,
 * cut at a UTF-8 character boundary. */
void event_unknown_type_msg(char *msg, size_t msglen, const char *type);

/* A JSON number too large for jansson (an integer beyond 64 bits, a real
 * that overflows a double) cannot be parsed; engine_parse rewrites its
 * lexeme into the string EVENT_BIGNUM_MARK + lexeme so the message still
 * parses and the field that holds it is rejected invalid_event "out of
 * range" (§2) instead of the whole message invalid_json.  The mark starts
 * with a NUL, which jansson refuses in input, so no sender can forge it, and
 * which no id or string field accepts. */
#define EVENT_BIGNUM_MARK "\0bignum:"
#define EVENT_BIGNUM_LEN 8
int event_is_bignum(json_t *v);

/* Validate the envelope and the data of `root` (a JSON object whose id,
 * source and org/tick were already read) into *ev.  Returns 0, or the reason
 * (ENG_R_INVALID_EVENT / ENG_R_UNKNOWN_TYPE) with a message naming the field
 * in msg. */
int event_decode(json_t *root, struct eng_event *ev, char *msg, size_t msglen);

#endif
