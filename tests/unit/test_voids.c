/* test_voids.c -- usage corrections (semantics v1.3 §13) on the in-memory
 * store: example H with exact numbers, outputs and alerts; unknown_usage
 * and already_voided (remembered); field errors; a void after a month
 * close, after the project credit was deleted (or set again), after the
 * organisation credit was deleted or expired; too_late for usage_time
 * (§14); overflow.  The LMDB path: tests/scenarios/voids.sh.
 *
 * Run from the repository root (ex_H is read from tests/scenarios/). */
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

/* "alert project balance event_id" of alert i ("-" for a null project). */
static void alert_at(struct h *h, size_t i, char *out, size_t n) {
    json_t *a = json_loads(h->ms.alerts[i].json, 0, NULL);
    json_t *d = json_object_get(a, "data");
    const char *p = json_string_value(json_object_get(d, "project"));
    snprintf(out, n, "%s %s %s %s", json_string_value(json_object_get(d, "alert")), p ? p : "-",
             json_string_value(json_object_get(d, "balance")),
             json_string_value(json_object_get(d, "event_id")));
    json_decref(a);
}

static void expect_alert(struct h *h, size_t i, const char *want) {
    char got[256];
    assert_true(i < h->ms.nalerts);
    alert_at(h, i, got, sizeof(got));
    assert_string_equal(got, want);
}

/* A usage.void of (source "test", usage_id) at time t; extra: more data fields. */
static int void_of(struct h *h, const char *id, const char *t, const char *org,
                   const char *usage_id, const char *usage_time, const char *extra) {
    return EV(h, id, "usage.void", t,
              "{'org':'%s','usage_source':'test','usage_id':'%s','usage_time':'%s'%s}", org,
              usage_id, usage_time, extra ? extra : "");
}

/* The month's consumption of the org (project NULL) or a project. */
static int64_t consumed(struct h *h, const char *org, const char *p, const char *ym) {
    if (p) {
        struct eng_project *pp = proj_of(h, org, p);
        return engine_month_consumed(pp->acct, pp->nacct, MON(ym));
    }
    struct eng_org *o = org_of(h, org);
    return engine_month_consumed(o->acct, o->nacct, MON(ym));
}

/* ---- example H ------------------------------------------------------------- */

static void test_example_H(void **state) {
    struct h *h = *state;
    size_t n;
    char **L = read_lines("tests/scenarios/ex_H.jsonl", &n);
    assert_int_equal(n, 9);
    for (size_t i = 0; i < 4; i++) assert_int_equal(feed(h, L[i]), ENG_APPLIED);
    assert_int_equal(V(h, "o9"), 0);
    assert_int_equal(P(h, "o9", "pA"), 0);
    assert_int_equal(consumed(h, "o9", NULL, "2026-01"), U(500));
    assert_int_equal(h->ms.nalerts, 3);
    expect_alert(h, 0, "exhausted pA 0.000000 u-h1");
    expect_alert(h, 1, "exhausted - 0.000000 u-h2");
    expect_alert(h, 2, "overage_started pB 0.000000 u-h2");

    /* v-1: refunds 100 (P 100, V 100) and 50 (V 150); recovered pA, then o9 */
    assert_int_equal(feed(h, L[4]), ENG_APPLIED);
    assert_int_equal(nnew(h), 2);
    LEDGER(h, 0, "refund", "pA", "project", "100.000000", "100.000000", "100.000000", "2026-01", 0);
    LEDGER(h, 1, "refund", "pA", "org", "50.000000", "150.000000", "150.000000", "2026-01", 0);
    assert_int_equal(h->ms.nalerts, 5);
    expect_alert(h, 3, "recovered pA 100.000000 v-1");
    expect_alert(h, 4, "recovered - 100.000000 v-1");
    assert_int_equal(consumed(h, "o9", NULL, "2026-01"), U(350));
    assert_int_equal(consumed(h, "o9", "pA", "2026-01"), 0);

    /* v-2: refund 350 (V 500) and the overage void overage/o9/2 */
    assert_int_equal(feed(h, L[5]), ENG_APPLIED);
    assert_int_equal(nnew(h), 2);
    LEDGER(h, 0, "refund", "pB", "org", "350.000000", "500.000000", "500.000000", "2026-01", 0);
    json_t *ov = NEW(h, 1);
    assert_int_equal(h->ms.out[h->mark + 1].kind, ENG_OUT_OVERAGE);
    assert_string_equal(sget(ov, "type"), "credit.overage.void");
    assert_string_equal(sget(ov, "id"), "overage/o9/2");
    assert_string_equal(sget(ov, "time"), "2026-01-13T10:00:00Z");
    json_t *want = sq_json("{'voids':'overage/o9/1','amount':'50.000000','org':'o9','project':'pB',"
                           "'resource':'r-b','offering':'hpc','component':'cpu','currency':'EUR',"
                           "'period':'2026-01','billing_month':'2026-01',"
                           "'usage_source':'marketplace/usage','usage_id':'u-h2','reason':null,"
                           "'seq':2,'event_source':'marketplace/usage','event_id':'v-2'}");
    assert_true(json_equal(json_object_get(ov, "data"), want)); /* exactly these fields */
    json_decref(want);
    assert_int_equal(h->ms.nalerts, 5);
    assert_int_equal(consumed(h, "o9", NULL, "2026-01"), 0);

    /* v-3 already_voided, v-4 unknown_usage, u-h1 again: duplicate */
    assert_int_equal(feed(h, L[6]), ENG_REJECTED);
    REJECTED_ONLY(h, "already_voided", "data.usage_id");
    assert_int_equal(feed(h, L[7]), ENG_REJECTED);
    REJECTED_ONLY(h, "unknown_usage", "data.usage_id");
    assert_int_equal(feed(h, L[8]), ENG_DUPLICATE);
    assert_int_equal(nnew(h), 0);
    /* both rejects are remembered: sent again, they are duplicates */
    assert_int_equal(feed(h, L[6]), ENG_DUPLICATE);
    assert_int_equal(feed(h, L[7]), ENG_DUPLICATE);
    assert_int_equal(V(h, "o9"), U(500));
    assert_int_equal(P(h, "o9", "pA"), U(100));
    assert_int_equal(h->ms.nalerts, 5);
    check_seqs(h);
    free_lines(L, n);
}

/* ---- the rejects ------------------------------------------------------------- */

static void test_unknown_usage(void **state) {
    struct h *h = *state;
    org_1000(h, "o");
    assert_int_equal(usage(h, "u1", "2026-01-10T10:00:00Z", "o", "p", "hpc", "10"), ENG_APPLIED);
    /* a rejected usage (no project) and a key that is not a usage */
    assert_int_equal(EV(h, "u-bad", "usage", "2026-01-10T10:00:00Z",
                        "{'org':'o','resource':'r','offering':'hpc','component':'c','amount':'1'}"),
                     ENG_REJECTED);
    static const char *const cases[][3] = {
        {"v1", "u-none", "2026-01-10T10:00:00Z"},  /* never seen */
        {"v2", "u1", "2026-01-10T10:00:01Z"},      /* another instant */
        {"v3", "u-bad", "2026-01-10T10:00:00Z"},   /* rejected */
        {"v4", "set-o", "2026-01-05T10:00:00Z"},   /* not a usage */
    };
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(void_of(h, cases[i][0], "2026-01-11T10:00:00Z", "o", cases[i][1],
                                 cases[i][2], NULL), ENG_REJECTED);
        REJECTED_ONLY(h, "unknown_usage", "data.usage_id");
        assert_int_equal(void_of(h, cases[i][0], "2026-01-11T10:00:00Z", "o", cases[i][1],
                                 cases[i][2], NULL), ENG_DUPLICATE); /* remembered */
    }
    /* another organisation's usage */
    org_1000(h, "x");
    assert_int_equal(void_of(h, "v5", "2026-01-11T10:00:00Z", "x", "u1", "2026-01-10T10:00:00Z",
                             NULL), ENG_REJECTED);
    REJECTED_ONLY(h, "unknown_usage", "data.usage_id");
    /* the same instant written with an offset is the usage's time */
    assert_int_equal(void_of(h, "v6", "2026-01-11T10:00:00Z", "o", "u1",
                             "2026-01-10T11:00:00+01:00", ",'reason':''"), ENG_APPLIED);
    LEDGER(h, 0, "refund", "p", "org", "10.000000", "1000.000000", "1000.000000", "2026-01", 0);
    assert_int_equal(V(h, "o"), U(1000));
}

static void test_already_voided(void **state) {
    struct h *h = *state;
    org_1000(h, "o");
    assert_int_equal(usage(h, "u1", "2026-01-10T10:00:00Z", "o", "p", "hpc", "10"), ENG_APPLIED);
    assert_int_equal(void_of(h, "v1", "2026-01-11T10:00:00Z", "o", "u1", "2026-01-10T10:00:00Z",
                             ",'reason':'meter reset'"), ENG_APPLIED);
    assert_int_equal(void_of(h, "v2", "2026-01-11T11:00:00Z", "o", "u1", "2026-01-10T10:00:00Z",
                             NULL), ENG_REJECTED);
    REJECTED_ONLY(h, "already_voided", "data.usage_id");
    assert_int_equal(void_of(h, "v2", "2026-01-11T11:00:00Z", "o", "u1", "2026-01-10T10:00:00Z",
                             NULL), ENG_DUPLICATE);
    /* the voided usage stays remembered */
    assert_int_equal(usage(h, "u1", "2026-01-10T10:00:00Z", "o", "p", "hpc", "10"), ENG_DUPLICATE);
    assert_int_equal(V(h, "o"), U(1000));
    /* a zero usage can be voided too: nothing to give back */
    assert_int_equal(usage(h, "u0", "2026-01-10T10:00:00Z", "o", "p", "hpc", "0"), ENG_APPLIED);
    assert_int_equal(void_of(h, "v3", "2026-01-12T10:00:00Z", "o", "u0", "2026-01-10T10:00:00Z",
                             NULL), ENG_APPLIED);
    assert_int_equal(nnew(h), 0);
    assert_int_equal(void_of(h, "v4", "2026-01-12T10:00:00Z", "o", "u0", "2026-01-10T10:00:00Z",
                             NULL), ENG_REJECTED);
    REJECTED_ONLY(h, "already_voided", "data.usage_id");
}

static void test_void_fields(void **state) {
    struct h *h = *state;
    char big[260], extra[300];
    org_1000(h, "o");
    static const char *const bad[][2] = {
        {"{'org':'o','usage_id':'u','usage_time':'2026-01-10T10:00:00Z'}", "data.usage_source"},
        {"{'org':'o','usage_source':'s','usage_time':'2026-01-10T10:00:00Z'}", "data.usage_id"},
        {"{'org':'o','usage_source':'s','usage_id':'u'}", "data.usage_time"},
        {"{'org':'o','usage_source':'s','usage_id':'u','usage_time':'2026-01-10'}", "data.usage_time"},
        {"{'org':'o','usage_source':5,'usage_id':'u','usage_time':'2026-01-10T10:00:00Z'}",
         "data.usage_source"},
        {"{'org':'o','usage_source':'s','usage_id':'u','usage_time':'2026-01-10T10:00:00Z',"
         "'reason':7}", "data.reason"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char id[16];
        snprintf(id, sizeof(id), "b%zu", i);
        assert_int_equal(EV(h, id, "usage.void", "2026-01-11T10:00:00Z", "%s", bad[i][0]),
                         ENG_REJECTED);
        REJECTED_ONLY(h, "invalid_event", bad[i][1]);
    }
    memset(big, 'x', 201);
    big[201] = 0;
    snprintf(extra, sizeof(extra), ",'reason':'%s'", big);
    assert_int_equal(void_of(h, "long", "2026-01-11T10:00:00Z", "o", "u", "2026-01-10T10:00:00Z",
                             extra), ENG_REJECTED);
    REJECTED_ONLY(h, "invalid_event", "data.reason");
    big[200] = 0; /* 200 bytes are fine: then the key decides */
    snprintf(extra, sizeof(extra), ",'reason':'%s'", big);
    assert_int_equal(void_of(h, "ok", "2026-01-11T10:00:00Z", "o", "u", "2026-01-10T10:00:00Z",
                             extra), ENG_REJECTED);
    REJECTED_ONLY(h, "unknown_usage", "data.usage_id");
}

/* §14: a void whose usage_time is past the horizon is too_late, not remembered. */
static void test_void_too_late(void **state) {
    struct h *h = *state;
    struct engine_config cfg = {.currency = "EUR", .retention_days = 35};
    h_close(h);
    h_open_cfg(h, &cfg);
    org_1000(h, "o");
    assert_int_equal(usage(h, "u1", "2026-01-10T10:00:00Z", "o", "p", "hpc", "10"), ENG_APPLIED);
    assert_int_equal(tick(h, "2026-02-20T00:00:00Z"), ENG_APPLIED);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(void_of(h, "v1", "2026-02-20T01:00:00Z", "o", "u1",
                                 "2026-01-10T10:00:00Z", NULL), ENG_REJECTED);
        REJECTED_ONLY(h, "too_late", "data.usage_time");
    }
    assert_int_equal(V(h, "o"), U(990));
}

static void test_void_overflow(void **state) {
    struct h *h = *state;
    assert_int_equal(EV(h, "s", "org_credit.set", "2026-01-05T10:00:00Z",
                        "{'org':'o','value':'9223372036854.775807'}"), ENG_APPLIED);
    assert_int_equal(usage(h, "u1", "2026-01-10T10:00:00Z", "o", "p", "hpc", "10"), ENG_APPLIED);
    assert_int_equal(EV(h, "a", "org_credit.adjust", "2026-01-10T11:00:00Z",
                        "{'org':'o','delta':'9.999996'}"), ENG_APPLIED);
    assert_int_equal(void_of(h, "v1", "2026-01-11T10:00:00Z", "o", "u1", "2026-01-10T10:00:00Z",
                             NULL), ENG_REJECTED);
    REJECTED_ONLY(h, "overflow", "data.usage_id");
    assert_int_equal(V(h, "o"), INT64_MAX - 4);
    /* nothing changed: once there is room, another void applies */
    assert_int_equal(EV(h, "a2", "org_credit.adjust", "2026-01-11T11:00:00Z",
                        "{'org':'o','delta':'-10'}"), ENG_APPLIED);
    assert_int_equal(void_of(h, "v2", "2026-01-12T10:00:00Z", "o", "u1", "2026-01-10T10:00:00Z",
                             NULL), ENG_APPLIED);
    assert_int_equal(V(h, "o"), INT64_MAX - 4);
}

/* ---- where the refunds go -------------------------------------------------- */

/* The month closed (its minimum draw stands): refunds are late, in the open month. */
static void test_void_after_close(void **state) {
    struct h *h = *state;
    assert_int_equal(EV(h, "s", "org_credit.set", "2026-01-05T10:00:00Z",
                        "{'org':'o','value':'1000','expected_consumption':'100'}"), ENG_APPLIED);
    assert_int_equal(usage(h, "u1", "2026-01-10T10:00:00Z", "o", "p", "hpc", "30"), ENG_APPLIED);
    assert_int_equal(tick(h, "2026-02-01T00:00:00Z"), ENG_APPLIED); /* minimal draw 70 */
    assert_int_equal(V(h, "o"), U(900));
    assert_int_equal(void_of(h, "v1", "2026-02-02T10:00:00Z", "o", "u1", "2026-01-10T10:00:00Z",
                             NULL), ENG_APPLIED);
    assert_int_equal(nnew(h), 1);
    LEDGER(h, 0, "refund", "p", "org", "30.000000", "930.000000", "930.000000", "2026-02", 1);
    assert_int_equal(org_of(h, "o")->open_month, MON("2026-02"));
    assert_int_equal(consumed(h, "o", NULL, "2026-02"), 0);
    /* February's minimum is not lowered by the January refund */
    assert_int_equal(tick(h, "2026-03-01T00:00:00Z"), ENG_APPLIED);
    assert_int_equal(V(h, "o"), U(830));
}

/* The project credit is gone: its draw goes back to V alone, naming it; a
 * project credit deleted and set again is another credit. */
static void test_void_project_deleted(void **state) {
    struct h *h = *state;
    org_1000(h, "o");
    assert_int_equal(EV(h, "p1", "project_credit.set", "2026-01-05T11:00:00Z",
                        "{'org':'o','project':'pA','value':'100','use_org_credit':true}"),
                     ENG_APPLIED);
    assert_int_equal(usage(h, "u1", "2026-01-10T10:00:00Z", "o", "pA", "hpc", "150"), ENG_APPLIED);
    assert_int_equal(V(h, "o"), U(850));
    assert_int_equal(EV(h, "d1", "project_credit.delete", "2026-01-11T10:00:00Z",
                        "{'org':'o','project':'pA'}"), ENG_APPLIED);
    assert_int_equal(void_of(h, "v1", "2026-01-12T10:00:00Z", "o", "u1", "2026-01-10T10:00:00Z",
                             NULL), ENG_APPLIED);
    assert_int_equal(nnew(h), 2);
    LEDGER(h, 0, "refund", "pA", "org", "100.000000", "950.000000", "950.000000", "2026-01", 0);
    LEDGER(h, 1, "refund", "pA", "org", "50.000000", "1000.000000", "1000.000000", "2026-01", 0);
    assert_false(has_project_credit(h, "o", "pA"));
    assert_int_equal(consumed(h, "o", NULL, "2026-01"), 0);
    assert_int_equal(consumed(h, "o", "pA", "2026-01"), 0);
    /* deleted and set again: another credit, the draw goes to V alone */
    assert_int_equal(EV(h, "p2", "project_credit.set", "2026-01-12T11:00:00Z",
                        "{'org':'o','project':'pB','value':'50'}"), ENG_APPLIED);
    assert_int_equal(usage(h, "u2", "2026-01-13T10:00:00Z", "o", "pB", "hpc", "30"), ENG_APPLIED);
    assert_int_equal(EV(h, "d2", "project_credit.delete", "2026-01-13T11:00:00Z",
                        "{'org':'o','project':'pB'}"), ENG_APPLIED);
    assert_int_equal(EV(h, "p3", "project_credit.set", "2026-01-13T12:00:00Z",
                        "{'org':'o','project':'pB','value':'50'}"), ENG_APPLIED);
    assert_int_equal(void_of(h, "v2", "2026-01-14T10:00:00Z", "o", "u2", "2026-01-13T10:00:00Z",
                             NULL), ENG_APPLIED);
    assert_int_equal(nnew(h), 1);
    LEDGER(h, 0, "refund", "pB", "org", "30.000000", "1000.000000", "1000.000000", "2026-01", 0);
    assert_int_equal(P(h, "o", "pB"), U(50));
}

/* The org credit was deleted (or deleted and set again): nothing is given
 * back, the overage void is still emitted. */
static void test_void_org_deleted(void **state) {
    struct h *h = *state;
    assert_int_equal(EV(h, "s1", "org_credit.set", "2026-01-05T10:00:00Z",
                        "{'org':'o','value':'100'}"), ENG_APPLIED);
    assert_int_equal(usage(h, "u1", "2026-01-10T10:00:00Z", "o", "p", "hpc", "150"), ENG_APPLIED);
    assert_int_equal(EV(h, "d1", "org_credit.delete", "2026-01-11T10:00:00Z", "{'org':'o'}"),
                     ENG_APPLIED);
    assert_int_equal(void_of(h, "v1", "2026-01-12T10:00:00Z", "o", "u1", "2026-01-10T10:00:00Z",
                             ",'reason':'double count'"), ENG_APPLIED);
    assert_int_equal(nnew(h), 1);
    json_t *ov = NEW(h, 0);
    assert_string_equal(sget(ov, "type"), "credit.overage.void");
    assert_string_equal(sget(ov, "id"), "overage/o/2");
    assert_string_equal(dget(ov, "voids"), "overage/o/1");
    assert_string_equal(dget(ov, "amount"), "50.000000");
    assert_string_equal(dget(ov, "reason"), "double count");
    assert_int_equal(consumed(h, "o", NULL, "2026-01"), U(100)); /* nothing refunded */
    /* set again: another credit */
    assert_int_equal(EV(h, "s2", "org_credit.set", "2026-01-12T11:00:00Z",
                        "{'org':'o','value':'100'}"), ENG_APPLIED);
    assert_int_equal(usage(h, "u2", "2026-01-13T10:00:00Z", "o", "p", "hpc", "40"), ENG_APPLIED);
    assert_int_equal(EV(h, "d2", "org_credit.delete", "2026-01-13T11:00:00Z", "{'org':'o'}"),
                     ENG_APPLIED);
    assert_int_equal(EV(h, "s3", "org_credit.set", "2026-01-13T12:00:00Z",
                        "{'org':'o','value':'100'}"), ENG_APPLIED);
    assert_int_equal(void_of(h, "v2", "2026-01-14T10:00:00Z", "o", "u2", "2026-01-13T10:00:00Z",
                             NULL), ENG_APPLIED);
    assert_int_equal(nnew(h), 0);
    assert_int_equal(V(h, "o"), U(100));
}

/* The org credit reached its end_date: nothing is given back. */
static void test_void_org_expired(void **state) {
    struct h *h = *state;
    assert_int_equal(EV(h, "s1", "org_credit.set", "2026-01-05T10:00:00Z",
                        "{'org':'o','value':'1000','end_date':'2026-03-01'}"), ENG_APPLIED);
    assert_int_equal(usage(h, "u1", "2026-02-10T10:00:00Z", "o", "p", "hpc", "10"), ENG_APPLIED);
    assert_int_equal(tick(h, "2026-03-01T00:00:00Z"), ENG_APPLIED);
    assert_int_equal(V(h, "o"), 0);
    assert_int_equal(void_of(h, "v1", "2026-03-02T10:00:00Z", "o", "u1", "2026-02-10T10:00:00Z",
                             NULL), ENG_APPLIED);
    assert_int_equal(nnew(h), 0);
    assert_int_equal(V(h, "o"), 0);
    assert_int_equal(void_of(h, "v2", "2026-03-02T11:00:00Z", "o", "u1", "2026-02-10T10:00:00Z",
                             NULL), ENG_REJECTED);
    REJECTED_ONLY(h, "already_voided", "data.usage_id");
}

/* A project credit past its own end_date still exists (choice 7): its draw
 * goes back to P_p and V, account project (§13: V alone only when the
 * project credit no longer exists); late, January being closed. */
static void test_void_project_expired(void **state) {
    struct h *h = *state;
    assert_int_equal(EV(h, "s1", "org_credit.set", "2026-01-05T10:00:00Z",
                        "{'org':'o','value':'100'}"), ENG_APPLIED);
    assert_int_equal(EV(h, "a1", "project_credit.set", "2026-01-05T11:00:00Z",
                        "{'org':'o','project':'pA','value':'40','end_date':'2026-02-01'}"),
                     ENG_APPLIED);
    assert_int_equal(usage(h, "u1", "2026-01-10T10:00:00Z", "o", "pA", "hpc", "10"), ENG_APPLIED);
    assert_int_equal(tick(h, "2026-02-01T00:00:00Z"), ENG_APPLIED);
    assert_int_equal(P(h, "o", "pA"), 0);
    assert_int_equal(V(h, "o"), U(90));
    assert_int_equal(void_of(h, "v1", "2026-02-02T10:00:00Z", "o", "u1", "2026-01-10T10:00:00Z",
                             NULL), ENG_APPLIED);
    LEDGER(h, 0, "refund", "pA", "project", "10.000000", "10.000000", "100.000000", "2026-02", 1);
    assert_int_equal(P(h, "o", "pA"), U(10));
    assert_int_equal(V(h, "o"), U(100));
}

#define A(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        A(test_example_H),
        A(test_unknown_usage),
        A(test_already_voided),
        A(test_void_fields),
        A(test_void_too_late),
        A(test_void_overflow),
        A(test_void_after_close),
        A(test_void_project_deleted),
        A(test_void_org_deleted),
        A(test_void_org_expired),
        A(test_void_project_expired),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
