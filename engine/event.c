/* event.c -- envelope and field validation (semantics §1-3, §7 order). */
#include "engine/event.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "engine/money.h"
#include "engine/timeutil.h"

static const char *const reason_names[ENG_R_COUNT] = {
    "none", "invalid_json", "invalid_event", "unknown_type", "id_conflict",
    "wrong_partition", "overflow", "no_org_credit", "no_project_credit",
    "allocation_exceeds_org_credit", "value_changed", "insufficient_credit",
    "source_not_allowed", "time_in_future", "too_late", "unknown_usage", "already_voided",
};

const char *event_reason_name(int r) {
    return (r >= 0 && r < ENG_R_COUNT) ? reason_names[r] : "unknown";
}

static const struct { const char *name; enum eng_type type; } types[] = {
    {"org_credit.set", ENG_T_ORG_SET},         {"org_credit.adjust", ENG_T_ORG_ADJUST},
    {"org_credit.delete", ENG_T_ORG_DELETE},   {"project_credit.set", ENG_T_PROJECT_SET},
    {"project_credit.delete", ENG_T_PROJECT_DELETE},
    {"project.terminate", ENG_T_PROJECT_TERMINATE},
    {"usage", ENG_T_USAGE},                    {"usage.void", ENG_T_USAGE_VOID},
    {"clock.tick", ENG_T_TICK},
};

enum eng_type event_type_of(const char *name) {
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(types[i].name, name) == 0) return types[i].type;
    return ENG_T_UNKNOWN;
}

const char *event_type_name(int t) {
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if ((int)types[i].type == t) return types[i].name;
    return "unknown";
}

void event_unknown_type_msg(char *msg, size_t msglen, const char *type) {
    size_t n = strlen(type), max = 64;
    const char *more = "";
    if (n > max) {
        /* Cut at a character boundary: the message must stay valid UTF-8. */
        n = max;
        while (n > 0 && ((unsigned char)type[n] & 0xC0) == 0x80) n--;
        more = "...";
    }
    snprintf(msg, msglen, "type: \"%.*s%s\" is not an event type creditd knows", (int)n, type,
             more);
}

int event_is_bignum(json_t *v) {
    return json_is_string(v) && json_string_length(v) > EVENT_BIGNUM_LEN &&
           memcmp(json_string_value(v), EVENT_BIGNUM_MARK, EVENT_BIGNUM_LEN) == 0;
}

/* Decoding context: the message buffer and the prefix of field names. */
struct dec {
    char *msg;
    size_t msglen;
};

static int fail(struct dec *d, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->msg, d->msglen, fmt, ap);
    va_end(ap);
    return ENG_R_INVALID_EVENT;
}

/* Missing and null are the same (§1). */
static json_t *field(json_t *obj, const char *name) {
    json_t *v = json_object_get(obj, name);
    return json_is_null(v) ? NULL : v;
}

/* A string of 1..maxlen bytes; *out NULL when absent and optional. */
static int get_str(struct dec *d, json_t *obj, const char *pfx, const char *name,
                   int required, size_t maxlen, const char **out) {
    json_t *v = field(obj, name);
    *out = NULL;
    if (!v) return required ? fail(d, "%s%s: required field is missing", pfx, name) : 0;
    if (!json_is_string(v) || event_is_bignum(v)) return fail(d, "%s%s: must be a string", pfx, name);
    size_t n = json_string_length(v);
    if (n == 0) return fail(d, "%s%s: must not be empty", pfx, name);
    if (n > maxlen) return fail(d, "%s%s: longer than %zu bytes", pfx, name, maxlen);
    if (memchr(json_string_value(v), 0, n)) return fail(d, "%s%s: must be a string", pfx, name);
    *out = json_string_value(v);
    return 0;
}

/* An amount (§2): a string or a JSON integer, `digits` fractional digits. */
static int get_amount(struct dec *d, json_t *obj, const char *name, int digits, int allow_neg,
                      int required, int *present, int64_t *out) {
    json_t *v = field(obj, name);
    *present = v != NULL;
    if (!v) return required ? fail(d, "data.%s: required field is missing", name) : 0;
    int rc;
    if (event_is_bignum(v))
        return fail(d, "data.%s: out of range (the number does not fit 64 bits)", name);
    if (json_is_string(v))
        rc = money_parse(json_string_value(v), json_string_length(v), digits, out);
    else if (json_is_integer(v))
        rc = money_from_int(json_integer_value(v), digits, out);
    else if (json_is_real(v))
        return fail(d, "data.%s: a JSON real is not allowed, send the amount as a string such as \"12.50\"", name);
    else
        return fail(d, "data.%s: must be a decimal string or an integer", name);
    if (rc == MONEY_EDIGITS)
        return fail(d, "data.%s: more than %d fractional digits", name, digits);
    if (rc == MONEY_ERANGE)
        return fail(d, "data.%s: out of range", name);
    if (rc != 0)
        return fail(d, "data.%s: not a plain decimal number", name);
    if (!allow_neg && *out < 0) return fail(d, "data.%s: must not be negative", name);
    return 0;
}

static int get_bool(struct dec *d, json_t *obj, const char *name, uint8_t def, uint8_t *out) {
    json_t *v = field(obj, name);
    *out = def;
    if (!v) return 0;
    if (!json_is_boolean(v)) return fail(d, "data.%s: must be true or false", name);
    *out = json_is_true(v) ? 1 : 0;
    return 0;
}

/* end_date: YYYY-MM-DD, the first day of a month after the event's month. */
static int get_end_date(struct dec *d, json_t *data, struct eng_event *ev) {
    const char *s;
    int rc = get_str(d, data, "data.", "end_date", 0, 10, &s);
    ev->terms.end_month = ENG_NO_MONTH;
    if (rc || !s) return rc;
    int32_t m;
    int day;
    if (time_parse_date(s, &m, &day) != 0)
        return fail(d, "data.end_date: \"%s\" is not a date YYYY-MM-DD", s);
    if (day != 1) return fail(d, "data.end_date: %s is not the first day of a month", s);
    if (m <= time_month_of(ev->time))
        return fail(d, "data.end_date: %s is not after the event's month", s);
    ev->terms.end_month = m;
    ev->end_day = day;
    return 0;
}

/* Terms common to org and project sets (§3). */
static int get_terms(struct dec *d, json_t *data, struct eng_event *ev) {
    int rc, present;
    const char *logic;
    if ((rc = get_amount(d, data, "value", MONEY_DIGITS, 0, 1, &present, &ev->value))) return rc;
    if ((rc = get_str(d, data, "data.", "consumption_logic", 0, 16, &logic))) return rc;
    ev->terms.logic = ENG_FIXED;
    if (logic && strcmp(logic, "linear") == 0) ev->terms.logic = ENG_LINEAR;
    else if (logic && strcmp(logic, "fixed") != 0)
        return fail(d, "data.consumption_logic: must be \"fixed\" or \"linear\"");
    if ((rc = get_amount(d, data, "expected_consumption", MONEY_DIGITS, 0, 0, &present,
                         &ev->terms.expected))) return rc;
    if (!present) ev->terms.expected = 0;
    json_t *g = field(data, "grace_coefficient");
    ev->terms.grace = 0;
    if (g) {
        if (!json_is_integer(g) || json_integer_value(g) < 0 || json_integer_value(g) > 100)
            return fail(d, "data.grace_coefficient: must be an integer from 0 to 100");
        ev->terms.grace = (uint8_t)json_integer_value(g);
    }
    if ((rc = get_bool(d, data, "apply_as_minimal_consumption", 1, &ev->terms.apply_min))) return rc;
    if ((rc = get_end_date(d, data, ev))) return rc;
    if (ev->terms.logic == ENG_LINEAR) {
        if (ev->terms.end_month == ENG_NO_MONTH)
            return fail(d, "data.end_date: required for linear consumption");
        ev->terms.expected = 0; /* computed at apply time */
    } else if (ev->terms.expected > ev->value) {
        return fail(d, "data.expected_consumption: greater than data.value");
    }
    return 0;
}

/* alert_thresholds (§12): an array of distinct JSON integers 1..99; missing
 * or null = none.  Bit k of ev->thr is k percent. */
static int get_thresholds(struct dec *d, json_t *data, struct eng_event *ev) {
    json_t *a = field(data, "alert_thresholds");
    ev->thr[0] = ev->thr[1] = 0;
    if (!a) return 0;
    if (!json_is_array(a))
        return fail(d, "data.alert_thresholds: must be an array of distinct integers from 1 to %d",
                    ENG_ALERT_PCT_MAX);
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *v = json_array_get(a, i);
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > ENG_ALERT_PCT_MAX)
            return fail(d, "data.alert_thresholds[%zu]: must be an integer from 1 to %d", i,
                        ENG_ALERT_PCT_MAX);
        unsigned k = (unsigned)json_integer_value(v);
        uint64_t bit = UINT64_C(1) << (k % 64);
        if (ev->thr[k / 64] & bit)
            return fail(d, "data.alert_thresholds[%zu]: %u appears more than once", i, k);
        ev->thr[k / 64] |= bit;
    }
    return 0;
}

static int decode_org_set(struct dec *d, json_t *data, struct eng_event *ev) {
    int rc;
    if ((rc = get_terms(d, data, ev))) return rc;
    if ((rc = get_thresholds(d, data, ev))) return rc;
    if ((rc = get_amount(d, data, "if_value", MONEY_DIGITS, 0, 0, &ev->has_if_value,
                         &ev->if_value))) return rc;
    if ((rc = get_bool(d, data, "reserve_allocations", 1, &ev->terms.reserve))) return rc;
    json_t *offs = field(data, "offerings");
    ev->noff = 0;
    if (!offs) return 0;
    if (!json_is_array(offs)) return fail(d, "data.offerings: must be an array of offering ids");
    if (json_array_size(offs) > ENG_MAX_OFFERINGS)
        return fail(d, "data.offerings: more than %d offerings", ENG_MAX_OFFERINGS);
    for (size_t i = 0; i < json_array_size(offs); i++) {
        json_t *o = json_array_get(offs, i);
        if (!json_is_string(o) || json_string_length(o) == 0 ||
            json_string_length(o) > ENG_ID_MAX || memchr(json_string_value(o), 0, json_string_length(o)))
            return fail(d, "data.offerings[%zu]: must be a non-empty string of at most %d bytes",
                        i, ENG_ID_MAX);
        ev->off[ev->noff++] = json_string_value(o);
    }
    return 0;
}

static int decode_project_set(struct dec *d, json_t *data, struct eng_event *ev) {
    int rc;
    if ((rc = get_terms(d, data, ev))) return rc;
    if ((rc = get_thresholds(d, data, ev))) return rc;
    if ((rc = get_bool(d, data, "use_org_credit", 0, &ev->terms.use_org_credit))) return rc;
    return get_bool(d, data, "mark_unused_as_spent_on_termination", 0, &ev->terms.mark_unused);
}

static int decode_usage(struct dec *d, json_t *data, struct eng_event *ev) {
    int rc, has_amount, has_q, has_p;
    if ((rc = get_str(d, data, "data.", "resource", 1, ENG_KEYPART_MAX, &ev->resource))) return rc;
    if ((rc = get_str(d, data, "data.", "offering", 1, ENG_ID_MAX, &ev->offering))) return rc;
    if ((rc = get_str(d, data, "data.", "component", 1, ENG_KEYPART_MAX, &ev->component))) return rc;
    if ((rc = get_str(d, data, "data.", "plan", 0, ENG_KEYPART_MAX, &ev->plan))) return rc;
    if ((rc = get_str(d, data, "data.", "unit", 0, ENG_KEYPART_MAX, &ev->unit))) return rc;
    if ((rc = get_amount(d, data, "amount", MONEY_DIGITS, 0, 0, &has_amount, &ev->amount))) return rc;
    if ((rc = get_amount(d, data, "quantity", QTY_DIGITS, 0, 0, &has_q, &ev->quantity))) return rc;
    if ((rc = get_amount(d, data, "unit_price", QTY_DIGITS, 0, 0, &has_p, &ev->unit_price))) return rc;
    if (has_amount && (has_q || has_p))
        return fail(d, "data.amount: not allowed together with data.quantity/data.unit_price");
    if (has_q != has_p)
        return fail(d, "data.%s: required together with data.%s",
                    has_q ? "unit_price" : "quantity", has_q ? "quantity" : "unit_price");
    if (!has_amount && !has_q)
        return fail(d, "data.amount: required (or data.quantity and data.unit_price)");
    ev->has_qty = has_q;
    if (has_q && money_cost(ev->quantity, ev->unit_price, &ev->amount) != 0)
        ev->amount_overflow = 1;
    return 0;
}

/* usage.void (§13): the voided usage's key and time; reason optional. */
static int decode_void(struct dec *d, json_t *data, struct eng_event *ev) {
    int rc;
    if ((rc = get_str(d, data, "data.", "usage_source", 1, ENG_KEYPART_MAX, &ev->usage_source)))
        return rc;
    if ((rc = get_str(d, data, "data.", "usage_id", 1, ENG_KEYPART_MAX, &ev->usage_id))) return rc;
    if ((rc = get_str(d, data, "data.", "usage_time", 1, 64, &ev->usage_time_str))) return rc;
    int trc = time_parse_rfc3339(ev->usage_time_str, &ev->usage_time);
    if (trc == TIME_ERANGE)
        return fail(d, "data.usage_time: \"%s\" is out of range (1970..2261)", ev->usage_time_str);
    if (trc)
        return fail(d, "data.usage_time: \"%s\" is not an RFC 3339 date-time", ev->usage_time_str);
    json_t *r = field(data, "reason");
    if (json_is_string(r) && json_string_length(r) == 0) { /* "" is a string of <= 200 bytes */
        ev->reason = "";
        return 0;
    }
    return get_str(d, data, "data.", "reason", 0, EVENT_VOID_REASON_MAX, &ev->reason);
}

/* specversion, time, type and data. */
int event_decode(json_t *root, struct eng_event *ev, char *msg, size_t msglen) {
    struct dec d = {msg, msglen};
    const char *ts;
    /* Outputs carry the causing event's `time` (§8): known as soon as it
     * reads, whichever field fails first, and absent when it does not read
     * (a reject must not copy a time that is not RFC 3339). */
    ev->time_str = NULL;
    json_t *tv = json_object_get(root, "time");
    if (json_is_string(tv) && json_string_length(tv) <= 64 &&
        time_parse_rfc3339(json_string_value(tv), &ev->time) == 0)
        ev->time_str = json_string_value(tv);
    json_t *v = json_object_get(root, "specversion");
    if (!json_is_string(v) || strcmp(json_string_value(v), "1.0") != 0)
        return fail(&d, "specversion: must be \"1.0\"");
    int rc = get_str(&d, root, "", "time", 1, 64, &ts);
    if (rc) return rc;
    int trc = time_parse_rfc3339(ts, &ev->time);
    if (trc == TIME_ERANGE) return fail(&d, "time: \"%s\" is out of range (1970..2261)", ts);
    if (trc) return fail(&d, "time: \"%s\" is not an RFC 3339 date-time", ts);
    const char *type;
    if ((rc = get_str(&d, root, "", "type", 1, 64, &type))) return rc;
    ev->type = event_type_of(type);
    if (ev->type == ENG_T_UNKNOWN) {
        event_unknown_type_msg(msg, msglen, type);
        return ENG_R_UNKNOWN_TYPE;
    }
    if (ev->type == ENG_T_TICK) return 0;
    json_t *data = json_object_get(root, "data");
    switch (ev->type) {
    case ENG_T_ORG_SET: return decode_org_set(&d, data, ev);
    case ENG_T_PROJECT_SET:
    case ENG_T_PROJECT_DELETE:
    case ENG_T_PROJECT_TERMINATE:
    case ENG_T_USAGE:
        if ((rc = get_str(&d, data, "data.", "project", 1, ENG_ID_MAX, &ev->project))) return rc;
        if (ev->type == ENG_T_PROJECT_SET) return decode_project_set(&d, data, ev);
        if (ev->type == ENG_T_USAGE) return decode_usage(&d, data, ev);
        return 0;
    case ENG_T_USAGE_VOID: return decode_void(&d, data, ev);
    case ENG_T_ORG_ADJUST: {
        int present;
        if ((rc = get_amount(&d, data, "delta", MONEY_DIGITS, 1, 1, &present, &ev->delta))) return rc;
        if (ev->delta == 0) return fail(&d, "data.delta: must not be 0");
        return 0;
    }
    default:
        return 0;
    }
}
