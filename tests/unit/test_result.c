/* test_result.c -- struct engine_result beyond outcome and reason: the
 * message's type, and the outputs it emitted by kind and its alerts by kind
 * (what creditd's metrics count, consumer/metrics.h).
 *
 * The counts are checked against the outputs the in-memory store received,
 * message by message, over the worked examples and the bad input; the type
 * against the message's own "type" field, and "unknown" where it is not ours
 * or not readable.
 *
 * Run from the repository root (the examples are read from tests/scenarios/). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "engine/engine.h"
#include "tests/unit/engine_harness.h"

/* The outputs of the last message (in h->ms.out from h->mark, and the
 * alerts from `from`) are exactly what h->res counts. */
static void counts_match(struct h *h, size_t from, const char *line) {
    uint32_t kinds[ENG_OUT_NKIND] = {0}, alerts[ENG_ALERT_NKIND] = {0};
    for (size_t i = h->mark; i < h->ms.nout; i++) kinds[h->ms.out[i].kind]++;
    for (size_t i = from; i < h->ms.nalerts; i++) {
        json_t *a = json_loads(h->ms.alerts[i].json, 0, NULL);
        const char *name = dget(a, "alert");
        int k = 0;
        while (k < ENG_ALERT_NKIND && !streq(engine_alert_name(k), name)) k++;
        if (k == ENG_ALERT_NKIND) fail_msg("alert %s has no kind: %s", name, h->ms.alerts[i].json);
        alerts[k]++;
        kinds[ENG_OUT_ALERT]++;
        json_decref(a);
    }
    for (int k = 0; k < ENG_OUT_NKIND; k++)
        if (h->res.outputs[k] != kinds[k])
            fail_msg("outputs[%d] = %u, the store got %u, for %s", k, h->res.outputs[k], kinds[k], line);
    for (int k = 0; k < ENG_ALERT_NKIND; k++)
        if (h->res.alerts[k] != alerts[k])
            fail_msg("alerts[%s] = %u, the store got %u, for %s", engine_alert_name(k),
                     h->res.alerts[k], alerts[k], line);
}

/* The type the result must carry: the message's "type" when it is one of ours. */
static int type_of_line(const char *line) {
    json_t *root = json_loads(line, 0, NULL);
    json_t *t = json_is_object(root) ? json_object_get(root, "type") : NULL;
    int type = json_is_string(t) ? (int)event_type_of(json_string_value(t)) : ENG_T_UNKNOWN;
    json_decref(root);
    return type;
}

static void run_file(struct h *h, const char *path, uint64_t *alerts_seen, uint64_t *by_kind) {
    size_t n;
    char **L = read_lines(path, &n);
    for (size_t i = 0; i < n; i++) {
        size_t from = h->ms.nalerts;
        feed(h, L[i]);
        counts_match(h, from, L[i]);
        if (h->res.type != type_of_line(L[i]))
            fail_msg("%s line %zu: type %d (%s), want %d", path, i + 1, h->res.type,
                     event_type_name(h->res.type), type_of_line(L[i]));
        if (h->res.outcome == ENG_DUPLICATE)
            for (int k = 0; k < ENG_OUT_NKIND; k++) assert_int_equal(h->res.outputs[k], 0);
        if (h->res.outcome == ENG_REJECTED) assert_int_equal(h->res.outputs[ENG_OUT_REJECTED], 1);
        for (int k = 0; k < ENG_ALERT_NKIND; k++) *alerts_seen += h->res.alerts[k];
        for (int k = 0; k < ENG_OUT_NKIND; k++) by_kind[k] += h->res.outputs[k];
    }
    free_lines(L, n);
}

/* Every example and the bad input, each on a fresh store: the counts equal
 * the outputs, and the examples do raise alerts, overage and rejects (so
 * the checks are not vacuous). */
static void test_counts_equal_outputs(void **state) {
    struct h *h = *state;
    static const char *const files[] = {
        "tests/scenarios/ex_A.jsonl", "tests/scenarios/ex_B.jsonl", "tests/scenarios/ex_C.jsonl",
        "tests/scenarios/ex_D.jsonl", "tests/scenarios/ex_E.jsonl", "tests/scenarios/ex_F.jsonl",
        "tests/scenarios/ex_G.jsonl", "tests/scenarios/ex_H.jsonl", "tests/scenarios/bad_input.jsonl"};
    uint64_t alerts = 0, kinds[ENG_OUT_NKIND] = {0};
    for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
        h_reset(h, 0);
        run_file(h, files[f], &alerts, kinds);
    }
    assert_true(alerts >= 9);  /* ex_G alone raises nine */
    for (int k = 0; k < ENG_OUT_NKIND; k++) assert_true(kinds[k] > 0);
}

/* The type of messages that are not ours, not readable, duplicates, ticks. */
static void test_type(void **state) {
    struct h *h = *state;
    feed(h, "not json");
    assert_int_equal(h->res.outcome, ENG_REJECTED);
    assert_int_equal(h->res.type, ENG_T_UNKNOWN);
    assert_string_equal(event_type_name(h->res.type), "unknown");
    feed(h, "[1]");
    assert_int_equal(h->res.type, ENG_T_UNKNOWN);
    assert_int_equal(EV(h, "x1", "credit.bogus", "2026-01-05T10:00:00Z", "{'org':'o'}"), ENG_REJECTED);
    assert_int_equal(h->res.type, ENG_T_UNKNOWN);
    feed(h, dq((char[]){"{'specversion':'1.0','id':'x2','source':'s','type':42,'data':{'org':'o'}}"}));
    assert_int_equal(h->res.type, ENG_T_UNKNOWN);
    /* a reject of ours keeps its type */
    assert_int_equal(EV(h, "u0", "usage", "2026-01-05T10:00:00Z", "{'org':'o'}"), ENG_REJECTED);
    assert_string_equal(event_type_name(h->res.type), "usage");
    assert_int_equal(usage(h, "u1", "2026-01-06T10:00:00Z", "o", "p", "f", "5"), ENG_APPLIED);
    assert_string_equal(event_type_name(h->res.type), "usage");
    assert_int_equal(h->res.outputs[ENG_OUT_OVERAGE], 1);
    assert_int_equal(usage(h, "u1", "2026-01-06T10:00:00Z", "o", "p", "f", "5"), ENG_DUPLICATE);
    assert_string_equal(event_type_name(h->res.type), "usage");
    assert_int_equal(h->res.outputs[ENG_OUT_OVERAGE], 0);
    assert_int_equal(tick(h, "2026-02-01T00:00:00Z"), ENG_APPLIED);
    assert_string_equal(event_type_name(h->res.type), "clock.tick");
}

/* Names: every type round-trips, the alert names are the output's. */
static void test_names(void **state) {
    (void)state;
    for (int t = 1; t < ENG_T_COUNT; t++) assert_int_equal(event_type_of(event_type_name(t)), t);
    assert_string_equal(event_type_name(ENG_T_UNKNOWN), "unknown");
    assert_string_equal(event_type_name(ENG_T_COUNT), "unknown");
    assert_string_equal(event_type_name(-1), "unknown");
    assert_string_equal(engine_alert_name(0), "low_balance");
    assert_string_equal(engine_alert_name(ENG_ALERT_NKIND - 1), "projected_exhaustion");
    assert_string_equal(engine_alert_name(ENG_ALERT_NKIND), "unknown");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_counts_equal_outputs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_names, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
