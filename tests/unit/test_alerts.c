/* test_alerts.c -- alerts for cost policies (semantics §12) on the in-memory
 * store: example G with the exact alert sequence, each alert kind, exact
 * threshold levels, the order rules, and invalid alert_thresholds.  The
 * LMDB path is covered by tests/scenarios/alerts.sh (ex_G through
 * credit-replay, the state read back by creditctl) and test_store.c.
 *
 * Run from the repository root (ex_G is read from tests/scenarios/). */
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

/* ---- helpers --------------------------------------------------------------- */

static const char *or_dash(json_t *d, const char *k, char *buf, size_t n) {
    json_t *v = json_object_get(d, k);
    if (json_is_string(v)) return json_string_value(v);
    if (json_is_integer(v)) {
        snprintf(buf, n, "%lld", (long long)json_integer_value(v));
        return buf;
    }
    return "-";
}

/* "org project alert balance reference threshold month projected_month
 * event_id" of alert i, "-" for null; also checks id and envelope. */
static void alert_text(struct h *h, size_t i, char *out, size_t n) {
    json_error_t je;
    json_t *a = json_loads(h->ms.alerts[i].json, JSON_REJECT_DUPLICATES, &je);
    if (!a) fail_msg("alert %zu is not JSON: %s", i, h->ms.alerts[i].json);
    json_t *d = json_object_get(a, "data");
    char id[300];
    snprintf(id, sizeof(id), "alert/%s/%lld", json_string_value(json_object_get(d, "org")),
             (long long)json_integer_value(json_object_get(d, "seq")));
    assert_string_equal(json_string_value(json_object_get(a, "id")), id);
    assert_string_equal(json_string_value(json_object_get(a, "type")), "credit.alert");
    assert_string_equal(json_string_value(json_object_get(a, "source")), "creditd");
    assert_string_equal(h->ms.alerts[i].key, json_string_value(json_object_get(d, "org")));
    assert_int_equal(h->ms.alerts[i].kind, ENG_OUT_ALERT);
    char b[9][40];
    snprintf(out, n, "%s %s %s %s %s %s %s %s %s", or_dash(d, "org", b[0], 40),
             or_dash(d, "project", b[1], 40), or_dash(d, "alert", b[2], 40),
             or_dash(d, "balance", b[3], 40), or_dash(d, "reference", b[4], 40),
             or_dash(d, "threshold", b[5], 40), or_dash(d, "month", b[6], 40),
             or_dash(d, "projected_month", b[7], 40), or_dash(d, "event_id", b[8], 40));
    json_decref(a);
}

/* The alerts from index `from` on are exactly want[0..n). */
static void expect_alerts(struct h *h, size_t from, const char *const *want, size_t n,
                          const char *file, int line) {
    char got[512];
    int bad = h->ms.nalerts - from != n;
    for (size_t i = from; !bad && i < h->ms.nalerts; i++) {
        alert_text(h, i, got, sizeof(got));
        bad = strcmp(got, want[i - from]) != 0;
    }
    if (!bad) return;
    print_error("alerts from %zu: got %zu, want %zu\n", from, h->ms.nalerts - from, n);
    for (size_t i = from; i < h->ms.nalerts; i++) {
        alert_text(h, i, got, sizeof(got));
        print_error("  got  %s\n", got);
    }
    for (size_t i = 0; i < n; i++) print_error("  want %s\n", want[i]);
    _fail(file, line);
}
#define ALERTS(h, from, ...)                                                          \
    do {                                                                              \
        static const char *const w_[] = {__VA_ARGS__};                               \
        expect_alerts(h, from, w_, sizeof(w_) / sizeof(w_[0]), __FILE__, __LINE__);   \
    } while (0)
#define NO_ALERTS(h, from) assert_int_equal((h)->ms.nalerts, (from))

/* §12 order: the last event's alerts (from `from`) come after all of its
 * other outputs. */
static void alerts_last(struct h *h, size_t from) {
    for (size_t i = from; i < h->ms.nalerts; i++)
        for (size_t j = h->mark; j < h->ms.nout; j++)
            if (h->ms.alerts[i].ord < h->ms.out[j].ord)
                fail_msg("alert %zu was emitted before output %zu (%s)", i, j, h->ms.out[j].json);
}

static void set_org(struct h *h, const char *id, const char *t, const char *data) {
    assert_int_equal(EV(h, id, "org_credit.set", t, "%s", data), ENG_APPLIED);
}

/* ---- example G ------------------------------------------------------------ */

static void test_example_G(void **state) {
    struct h *h = *state;
    size_t n;
    char **L = read_lines("tests/scenarios/ex_G.jsonl", &n);
    assert_int_equal(n, 10);
    size_t from[10];
    for (size_t i = 0; i < n; i++) {
        from[i] = h->ms.nalerts;
        assert_int_equal(feed(h, L[i]), ENG_APPLIED);
        alerts_last(h, from[i]);
    }
    assert_int_equal(from[3], 0);  /* the sets and the allocation arm, they emit nothing */
    ALERTS(h, 0,
           "o7 pA low_balance 50.000000 400.000000 25 2026-01 - g-4",
           "o7 pA exhausted 0.000000 - - 2026-01 - g-5",
           "o7 - low_balance 150.000000 1000.000000 50 2026-01 - g-6",
           "o7 - low_balance 150.000000 1000.000000 20 2026-01 - g-6",
           "o7 - low_balance 0.000000 1000.000000 50 2026-01 - g-8",
           "o7 - low_balance 0.000000 1000.000000 20 2026-01 - g-8",
           "o7 - exhausted 0.000000 - - 2026-01 - g-8",
           "o7 pB overage_started 0.000000 - - 2026-01 - g-8",
           "o8 - projected_exhaustion 150.000000 - - 2026-01 2026-02 tick-2026-02-01-p0");
    assert_int_equal(from[7], 4); /* the adjust (g-7) re-arms and emits nothing */
    assert_int_equal(V(h, "o7"), 0);
    assert_int_equal(P(h, "o7", "pA"), 0);
    assert_int_equal(V(h, "o8"), U(150));
    const struct eng_org *o7 = org_of(h, "o7");
    assert_int_equal(o7->alert_seq, 8);
    assert_int_equal(o7->al.reference, U(1000));
    assert_true(o7->al.exhausted);
    assert_int_equal(o7->al.armed[0] | o7->al.armed[1], 0);
    assert_int_equal(org_of(h, "o8")->alert_seq, 1);
    free_lines(L, n);
}

/* ---- thresholds --------------------------------------------------------------- */

static void test_thresholds_invalid(void **state) {
    struct h *h = *state;
    static const char *const bad[] = {"50", "'50'", "{}", "[50,50]", "[20,50,20]", "[0]", "[100]",
                                      "[120]", "[-1]", "[50.0]", "[1e2]", "['20']", "[true]",
                                      "[null]", "[99999999999999999999]"};
    char id[32];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(id, sizeof(id), "bad-o%zu", i);
        assert_int_equal(EV(h, id, "org_credit.set", "2026-01-05T10:00:00Z",
                            "{'org':'o','value':'100','alert_thresholds':%s}", bad[i]),
                         ENG_REJECTED);
        REJECTED_ONLY(h, "invalid_event", "data.alert_thresholds");
    }
    assert_int_equal(EV(h, "ok-o", "org_credit.set", "2026-01-05T10:00:00Z",
                        "{'org':'o','value':'100','alert_thresholds':[1,99]}"), ENG_APPLIED);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(id, sizeof(id), "bad-p%zu", i);
        assert_int_equal(EV(h, id, "project_credit.set", "2026-01-05T10:00:00Z",
                            "{'org':'o','project':'p','value':'10','alert_thresholds':%s}", bad[i]),
                         ENG_REJECTED);
        REJECTED_ONLY(h, "invalid_event", "data.alert_thresholds");
    }
    /* the field names the element */
    assert_int_equal(EV(h, "dup", "org_credit.set", "2026-01-05T10:00:00Z",
                        "{'org':'o','value':'100','alert_thresholds':[20,50,20]}"), ENG_REJECTED);
    REJ(h, 0, "invalid_event", "data.alert_thresholds[2]");
    /* missing, null and empty: no thresholds */
    assert_int_equal(EV(h, "null", "project_credit.set", "2026-01-05T10:00:00Z",
                        "{'org':'o','project':'p','value':'10','alert_thresholds':null}"), ENG_APPLIED);
    assert_int_equal(EV(h, "empty", "org_credit.set", "2026-01-05T10:00:00Z",
                        "{'org':'o','value':'100','alert_thresholds':[]}"), ENG_APPLIED);
    const struct eng_org *o = org_of(h, "o");
    assert_int_equal(o->al.thr[0] | o->al.thr[1], 0);
    NO_ALERTS(h, 0);
}

/* Levels are reference x pct / 100 rounded half-to-even in micro-units; a
 * set arms only the thresholds whose level is below the new balance. */
static void test_threshold_levels_exact(void **state) {
    struct h *h = *state;
    /* 3 x 50% = 1.5 -> 2: fires at 0.000002 */
    set_org(h, "s1", "2026-01-05T10:00:00Z", "{'org':'a','value':'0.000003','alert_thresholds':[50]}");
    /* 5 x 50% = 2.5 -> 2: not at 0.000003, at 0.000002 */
    set_org(h, "s2", "2026-01-05T10:00:00Z", "{'org':'b','value':'0.000005','alert_thresholds':[50]}");
    /* 1 x 99% = 0.99 -> 1, not below 1: not armed; 1 x 10% = 0.1 -> 0: armed */
    set_org(h, "s3", "2026-01-05T10:00:00Z",
            "{'org':'c','value':'0.000001','alert_thresholds':[99,10]}");
    assert_int_equal(org_of(h, "c")->al.armed[1], 0);
    assert_int_equal(org_of(h, "c")->al.armed[0], UINT64_C(1) << 10);
    NO_ALERTS(h, 0);
    assert_int_equal(usage(h, "u1", "2026-01-06T10:00:00Z", "a", "p", "f", "0.000001"), ENG_APPLIED);
    ALERTS(h, 0, "a - low_balance 0.000002 0.000003 50 2026-01 - u1");
    assert_int_equal(usage(h, "u2", "2026-01-06T10:00:00Z", "b", "p", "f", "0.000002"), ENG_APPLIED);
    NO_ALERTS(h, 1);
    assert_int_equal(usage(h, "u3", "2026-01-06T10:00:00Z", "b", "p", "f", "0.000001"), ENG_APPLIED);
    ALERTS(h, 1, "b - low_balance 0.000002 0.000005 50 2026-01 - u3");
    assert_int_equal(usage(h, "u4", "2026-01-06T10:00:00Z", "c", "p", "f", "0.000001"), ENG_APPLIED);
    ALERTS(h, 2, "c - low_balance 0.000000 0.000001 10 2026-01 - u4",
           "c - exhausted 0.000000 - - 2026-01 - u4");
    /* a set to 0 arms nothing and emits nothing (sets are not checked) */
    set_org(h, "s4", "2026-01-07T10:00:00Z", "{'org':'a','value':'0','alert_thresholds':[50]}");
    NO_ALERTS(h, 4);
    assert_int_equal(org_of(h, "a")->al.armed[0], 0);
}

/* ---- exhausted, recovered, overage_started ------------------------------------ */

static void test_exhausted_recovered_overage(void **state) {
    struct h *h = *state;
    set_org(h, "s", "2026-01-05T10:00:00Z", "{'org':'o','value':'100'}");
    assert_int_equal(usage(h, "u1", "2026-01-06T10:00:00Z", "o", "pX", "f", "100"), ENG_APPLIED);
    ALERTS(h, 0, "o - exhausted 0.000000 - - 2026-01 - u1");
    /* the overage: overage_started once per (project, billing month) */
    assert_int_equal(usage(h, "u2", "2026-01-06T11:00:00Z", "o", "pX", "f", "10"), ENG_APPLIED);
    ALERTS(h, 1, "o pX overage_started 0.000000 - - 2026-01 - u2");
    alerts_last(h, 1);
    assert_int_equal(usage(h, "u3", "2026-01-06T12:00:00Z", "o", "pX", "f", "5"), ENG_APPLIED);
    NO_ALERTS(h, 2);
    /* an adjust brings it above 0: recovered, which re-arms exhausted */
    assert_int_equal(EV(h, "a1", "org_credit.adjust", "2026-01-07T10:00:00Z",
                        "{'org':'o','delta':'50'}"), ENG_APPLIED);
    ALERTS(h, 2, "o - recovered 50.000000 - - 2026-01 - a1");
    assert_int_equal(usage(h, "u4", "2026-01-08T10:00:00Z", "o", "pY", "f", "50"), ENG_APPLIED);
    ALERTS(h, 3, "o - exhausted 0.000000 - - 2026-01 - u4");
    assert_int_equal(usage(h, "u5", "2026-01-08T11:00:00Z", "o", "pY", "f", "1"), ENG_APPLIED);
    ALERTS(h, 4, "o pY overage_started 0.000000 - - 2026-01 - u5");
    /* a set recovers too */
    set_org(h, "s2", "2026-01-09T10:00:00Z", "{'org':'o','value':'200'}");
    ALERTS(h, 5, "o - recovered 200.000000 - - 2026-01 - s2");
    /* adjusts are not checked: down to 0 is no exhausted, so up is no recovered */
    assert_int_equal(EV(h, "a2", "org_credit.adjust", "2026-01-10T10:00:00Z",
                        "{'org':'o','delta':'-200'}"), ENG_APPLIED);
    assert_int_equal(EV(h, "a3", "org_credit.adjust", "2026-01-10T11:00:00Z",
                        "{'org':'o','delta':'10'}"), ENG_APPLIED);
    NO_ALERTS(h, 6);
    /* February: the January close projects exhaustion (rate 150, V 10, n 1),
     * then the usage; the close's alert follows every output of the event */
    assert_int_equal(usage(h, "u6", "2026-02-10T10:00:00Z", "o", "pX", "f", "1"), ENG_APPLIED);
    ALERTS(h, 6, "o - projected_exhaustion 10.000000 - - 2026-01 2026-02 u6");
    alerts_last(h, 6);
    assert_int_equal(usage(h, "u7", "2026-02-10T11:00:00Z", "o", "pX", "f", "11"), ENG_APPLIED);
    ALERTS(h, 7, "o - exhausted 0.000000 - - 2026-02 - u7",
           "o pX overage_started 0.000000 - - 2026-02 - u7");
    alerts_last(h, 7);
}

/* An organisation that never had a credit: overage_started with balance null;
 * its flags are kept for the watermark's month and the two before it. */
static void test_overage_started_without_credit(void **state) {
    struct h *h = *state;
    assert_int_equal(usage(h, "u1", "2026-05-06T10:00:00Z", "n", "p", "f", "3"), ENG_APPLIED);
    ALERTS(h, 0, "n p overage_started - - - 2026-05 - u1");
    assert_int_equal(usage(h, "u2", "2026-05-07T10:00:00Z", "n", "p", "f", "3"), ENG_APPLIED);
    NO_ALERTS(h, 1);
    assert_int_equal(usage(h, "u3", "2026-03-07T10:00:00Z", "n", "p", "f", "3"), ENG_APPLIED);
    ALERTS(h, 1, "n p overage_started - - - 2026-03 - u3");
    assert_int_equal(usage(h, "u4", "2026-03-08T10:00:00Z", "n", "p", "f", "3"), ENG_APPLIED);
    NO_ALERTS(h, 2);
    /* older than the window: not remembered, it fires each time */
    assert_int_equal(usage(h, "u5", "2026-02-07T10:00:00Z", "n", "p", "f", "3"), ENG_APPLIED);
    assert_int_equal(usage(h, "u6", "2026-02-08T10:00:00Z", "n", "p", "f", "3"), ENG_APPLIED);
    ALERTS(h, 2, "n p overage_started - - - 2026-02 - u5",
           "n p overage_started - - - 2026-02 - u6");
    /* the state stays valid (the engine checks it on every load) */
    char why[256];
    const struct eng_org *o = org_of(h, "n");
    assert_int_equal(eng_org_check(o, why, sizeof(why)), 0);
    assert_int_equal(eng_project_check(o, proj_of(h, "n", "p"), why, sizeof(why)), 0);
    /* a first set, then a close, drops the old flags with the closed months */
    set_org(h, "s", "2026-05-10T10:00:00Z", "{'org':'n','value':'1'}");
    assert_int_equal(tick(h, "2026-06-01T00:00:00Z"), ENG_APPLIED);
    struct eng_project *p = eng_org_find_project(memstore_org(&h->ms, "n"), "p");
    assert_true(p == NULL || p->nacct == 0);
}

/* ---- the organisation is checked after a project draw and a termination ------ */

static void test_project_then_org(void **state) {
    struct h *h = *state;
    set_org(h, "s", "2026-01-05T10:00:00Z", "{'org':'o','value':'1000','alert_thresholds':[50]}");
    assert_int_equal(EV(h, "p", "project_credit.set", "2026-01-05T11:00:00Z",
                        "{'org':'o','project':'pA','value':'1000','alert_thresholds':[50]}"),
                     ENG_APPLIED);
    assert_int_equal(usage(h, "u1", "2026-01-06T10:00:00Z", "o", "pA", "f", "500"), ENG_APPLIED);
    ALERTS(h, 0, "o pA low_balance 500.000000 1000.000000 50 2026-01 - u1",
           "o - low_balance 500.000000 1000.000000 50 2026-01 - u1");
    /* termination with mark_unused: the org is checked, the project is not */
    set_org(h, "t", "2026-01-05T10:00:00Z", "{'org':'t','value':'1000','alert_thresholds':[90]}");
    assert_int_equal(EV(h, "tp", "project_credit.set", "2026-01-05T11:00:00Z",
                        "{'org':'t','project':'pB','value':'200','alert_thresholds':[50],"
                        "'mark_unused_as_spent_on_termination':true}"), ENG_APPLIED);
    assert_int_equal(EV(h, "tt", "project.terminate", "2026-01-06T10:00:00Z",
                        "{'org':'t','project':'pB'}"), ENG_APPLIED);
    ALERTS(h, 2, "t - low_balance 800.000000 1000.000000 90 2026-01 - tt");
    alerts_last(h, 2);
    /* a project credit set again after being exhausted: recovered */
    assert_int_equal(usage(h, "u2", "2026-01-07T10:00:00Z", "o", "pA", "f", "500"), ENG_APPLIED);
    ALERTS(h, 3, "o pA exhausted 0.000000 - - 2026-01 - u2", "o - exhausted 0.000000 - - 2026-01 - u2");
    assert_int_equal(EV(h, "a", "org_credit.adjust", "2026-01-08T10:00:00Z",
                        "{'org':'o','delta':'100'}"), ENG_APPLIED);
    assert_int_equal(EV(h, "p2", "project_credit.set", "2026-01-08T11:00:00Z",
                        "{'org':'o','project':'pA','value':'100'}"), ENG_APPLIED);
    ALERTS(h, 5, "o - recovered 100.000000 - - 2026-01 - a", "o pA recovered 100.000000 - - 2026-01 - p2");
}

/* ---- closes: expired, projected_exhaustion, minimal draws ---------------------- */

static void test_expired(void **state) {
    struct h *h = *state;
    set_org(h, "s", "2026-01-05T10:00:00Z", "{'org':'o','value':'1000','end_date':'2026-04-01'}");
    assert_int_equal(EV(h, "pa", "project_credit.set", "2026-01-05T11:00:00Z",
                        "{'org':'o','project':'pA','value':'100','end_date':'2026-03-01'}"), ENG_APPLIED);
    assert_int_equal(EV(h, "pb", "project_credit.set", "2026-01-05T11:00:00Z",
                        "{'org':'o','project':'pB','value':'100'}"), ENG_APPLIED);
    assert_int_equal(tick(h, "2026-03-01T00:00:00Z"), ENG_APPLIED);
    ALERTS(h, 0, "o pA expired 0.000000 - - 2026-02 - tick-2026-03-01T00:00:00Z");
    alerts_last(h, 0);
    /* the org expires; pB, zeroed by it, gets no alert of its own; pA none again */
    assert_int_equal(tick(h, "2026-04-01T00:00:00Z"), ENG_APPLIED);
    ALERTS(h, 1, "o - expired 0.000000 - - 2026-03 - tick-2026-04-01T00:00:00Z");
    alerts_last(h, 1);
    assert_int_equal(tick(h, "2026-06-01T00:00:00Z"), ENG_APPLIED);
    NO_ALERTS(h, 2);
}

static void test_projected_exhaustion(void **state) {
    struct h *h = *state;
    /* no end date: fires when n <= 3 */
    set_org(h, "s1", "2026-01-05T10:00:00Z", "{'org':'o1','value':'400'}");
    set_org(h, "s2", "2026-01-05T10:00:00Z", "{'org':'o2','value':'401'}");
    /* end 2026-07-01 (last month June): projected May fires */
    set_org(h, "s3", "2026-01-05T10:00:00Z", "{'org':'o3','value':'500','end_date':'2026-07-01'}");
    /* end 2026-06-01 (last month May): projected May is the plan, nothing */
    set_org(h, "s4", "2026-01-05T10:00:00Z", "{'org':'o4','value':'500','end_date':'2026-06-01'}");
    /* the minimum is the rate when consumption is below it; the minimal draw
     * crosses 60% first */
    set_org(h, "s5", "2026-01-05T10:00:00Z",
            "{'org':'o5','value':'250','expected_consumption':'100','alert_thresholds':[60]}");
    for (int i = 1; i <= 4; i++) {
        char id[16], org[16];
        snprintf(id, sizeof(id), "u%d", i);
        snprintf(org, sizeof(org), "o%d", i);
        assert_int_equal(usage(h, id, "2026-01-10T10:00:00Z", org, "p", "f", "100"), ENG_APPLIED);
    }
    NO_ALERTS(h, 0);
    assert_int_equal(tick(h, "2026-02-01T00:00:00Z"), ENG_APPLIED);
    ALERTS(h, 0,
           "o1 - projected_exhaustion 300.000000 - - 2026-01 2026-04 tick-2026-02-01T00:00:00Z",
           "o3 - projected_exhaustion 400.000000 - - 2026-01 2026-05 tick-2026-02-01T00:00:00Z",
           "o5 - low_balance 150.000000 250.000000 60 2026-01 - tick-2026-02-01T00:00:00Z",
           "o5 - projected_exhaustion 150.000000 - - 2026-01 2026-03 tick-2026-02-01T00:00:00Z");
}

/* A tick that closes seven months: the alerts of every close follow all the
 * tick's ledger outputs, in the order of their closes. */
static void test_many_closes_order(void **state) {
    struct h *h = *state;
    set_org(h, "s", "2026-01-05T10:00:00Z",
            "{'org':'o','value':'1000','expected_consumption':'100','alert_thresholds':[50]}");
    assert_int_equal(tick(h, "2026-08-01T00:00:00Z"), ENG_APPLIED);
    assert_int_equal(V(h, "o"), U(300));
    ALERTS(h, 0, "o - low_balance 500.000000 1000.000000 50 2026-05 - tick-2026-08-01T00:00:00Z",
           "o - projected_exhaustion 300.000000 - - 2026-07 2026-10 tick-2026-08-01T00:00:00Z");
    assert_int_equal(nnew(h), 14); /* 7 minimal draws, 7 month_closed */
    alerts_last(h, 0);
    /* three more closes: the last one's draw exhausts it, nothing projected */
    assert_int_equal(tick(h, "2026-11-01T00:00:00Z"), ENG_APPLIED);
    ALERTS(h, 2,
           "o - projected_exhaustion 200.000000 - - 2026-08 2026-10 tick-2026-11-01T00:00:00Z",
           "o - projected_exhaustion 100.000000 - - 2026-09 2026-10 tick-2026-11-01T00:00:00Z",
           "o - exhausted 0.000000 - - 2026-10 - tick-2026-11-01T00:00:00Z");
    alerts_last(h, 2);
}

/* The queue is bounded: a tick closing twelve months over 500 project
 * credits raises 5,000 alerts; once 4,096 (engine_int.h ALERT_QUEUE_FLUSH)
 * are queued, after the 9th close, they go out before the next close's
 * entries, the rest at the end. */
static void test_queue_bound(void **state) {
    struct h *h = *state;
    set_org(h, "s", "2026-01-05T10:00:00Z", "{'org':'o','value':'500000'}");
    for (int i = 0; i < 500; i++) {
        char id[16];
        snprintf(id, sizeof(id), "p%03d", i);
        assert_int_equal(EV(h, id, "project_credit.set", "2026-01-05T11:00:00Z",
                            "{'org':'o','project':'%s','value':'1000','expected_consumption':'100',"
                            "'end_date':'2030-01-01'}", id), ENG_APPLIED);
    }
    assert_int_equal(tick(h, "2027-01-01T00:00:00Z"), ENG_APPLIED);
    /* per project: projected at the closes of Jan..Sep, exhausted at Oct's */
    assert_int_equal(h->ms.nalerts, 5000);
    char got[512];
    alert_text(h, 0, got, sizeof(got));
    assert_string_equal(got, "o p000 projected_exhaustion 900.000000 - - 2026-01 2026-10 "
                             "tick-2027-01-01T00:00:00Z");
    alert_text(h, 4499, got, sizeof(got));
    assert_string_equal(got, "o p499 projected_exhaustion 100.000000 - - 2026-09 2026-10 "
                             "tick-2027-01-01T00:00:00Z");
    alert_text(h, 4999, got, sizeof(got));
    assert_string_equal(got, "o p499 exhausted 0.000000 - - 2026-10 - tick-2027-01-01T00:00:00Z");
    for (size_t i = 0; i < h->ms.nalerts; i++) {  /* one sequence, in emission order */
        json_t *a = json_loads(h->ms.alerts[i].json, 0, NULL);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(a, "data"), "seq")),
                         (json_int_t)i + 1);
        json_decref(a);
    }
    /* the first 4,500 precede the October close's entries, the rest follow all */
    size_t first_oct = h->ms.nout;
    for (size_t j = h->mark; j < h->ms.nout && first_oct == h->ms.nout; j++)
        if (strstr(h->ms.out[j].json, "\"month\":\"2026-10\"")) first_oct = j;
    assert_true(first_oct < h->ms.nout);
    assert_true(h->ms.alerts[4499].ord < h->ms.out[first_oct].ord);
    assert_true(h->ms.alerts[4500].ord > h->ms.out[h->ms.nout - 1].ord);
}

/* A rejected event's closes still raise their alerts (the closes stand). */
static void test_reject_after_close(void **state) {
    struct h *h = *state;
    set_org(h, "s", "2026-01-05T10:00:00Z", "{'org':'o','value':'300','expected_consumption':'100'}");
    assert_int_equal(EV(h, "a", "org_credit.adjust", "2026-02-02T10:00:00Z",
                        "{'org':'o','delta':'-1000'}"), ENG_REJECTED);
    ALERTS(h, 0, "o - projected_exhaustion 200.000000 - - 2026-01 2026-03 a");
    alerts_last(h, 0);
}

#define A(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        A(test_example_G),
        A(test_thresholds_invalid),
        A(test_threshold_levels_exact),
        A(test_exhausted_recovered_overage),
        A(test_overage_started_without_credit),
        A(test_project_then_org),
        A(test_expired),
        A(test_projected_exhaustion),
        A(test_many_closes_order),
        A(test_reject_after_close),
        A(test_queue_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
