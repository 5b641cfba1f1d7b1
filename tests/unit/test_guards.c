/* test_guards.c -- the guards of semantics §11 (time_in_future,
 * source_not_allowed) on the in-memory store: worked example F with exact
 * numbers, the guard's activation by ticks, what it compares against, that
 * neither reject is remembered, and the source lists of every type class.
 * The same store/LMDB path is covered by tests/scenarios (ex_F through
 * credit-replay --config) and test_store.c (max_future pinned).
 *
 * Run from the repository root (ex_F is read from tests/scenarios/). */
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
#include "engine/guard.h"
#include "tests/unit/engine_harness.h"

#define DAYS31 INT64_C(2678400)

/* A fresh engine with max_future and the source lists (NULL = any). */
static void g_reset(struct h *h, int64_t max_future, const char *grant, const char *allocate,
                    const char *use, const char *clock) {
    struct engine_config cfg = {.close_after_s = 0, .currency = "EUR", .max_future_s = max_future,
                                .sources = {grant, allocate, use, clock}};
    h_close(h);
    h_open_cfg(h, &cfg);
}

static int g_setup(void **state) {
    struct h *h = calloc(1, sizeof(*h));
    if (!h) return -1;
    h_open(h, 0);
    *state = h;
    return 0;
}

static int g_teardown(void **state) {
    struct h *h = *state;
    h_close(h);
    free(h);
    return 0;
}

/* The last message was rejected with reason (not remembered: nothing in
 * the dedupe store changed, checked by the caller) and its reject names
 * field and carries event_id / event_source. */
static void guard_rej(struct h *h, int reason, const char *name, const char *field, size_t ndd) {
    assert_int_equal(h->res.outcome, ENG_REJECTED);
    assert_int_equal(h->res.reason, reason);
    assert_string_equal(event_reason_name(reason), name);
    assert_int_equal(nnew(h), 1);
    REJ(h, 0, name, field);
    assert_string_equal(dget(NEW(h, 0), "event_id"), h->id);
    assert_string_equal(dget(NEW(h, 0), "event_source"), h->source);
    assert_int_equal(h->ms.ndd, ndd);
}

static int usage_src(struct h *h, const char *src, const char *id, const char *t, const char *amount) {
    return evx(h, NULL, 0, src, id, "usage", t,
               "{'org':'o','project':'p','resource':'r','offering':'hpc','component':'cpu',"
               "'amount':'%s'}", amount);
}

/* ---- future time ---------------------------------------------------------- */

/* §15 F: V 1170, u-bad twice time_in_future, u-gap too; ticks close January
 * (draw 70) and February (draw 100); u-gap sent again is applied: V 990. */
static void test_example_F(void **state) {
    struct h *h = *state;
    size_t n;
    char **L = read_lines("tests/scenarios/ex_F.jsonl", &n);
    assert_int_equal(n, 9);
    g_reset(h, DAYS31, NULL, NULL, NULL, NULL);
    assert_int_equal(feed(h, L[0]), ENG_APPLIED);
    assert_int_equal(nnew(h), 2);
    LEDGER(h, 0, "staff_grant", NULL, "org", "1200.000000", "1200.000000", "1200.000000", "2026-01", 0);
    TERMS(h, 1, NULL, "1200.000000", "1200.000000", "2026-01", 0,
          "{'consumption_logic':'linear','expected_consumption':'100.000000','grace_coefficient':0,"
          "'apply_as_minimal_consumption':true,'end_date':'2027-01-01','reserve_allocations':true,"
          "'offerings':[]}");
    assert_int_equal(feed(h, L[1]), ENG_APPLIED); /* tick 01-06: the guard is on */
    assert_int_equal(nnew(h), 0);
    assert_int_equal(feed(h, L[2]), ENG_APPLIED);
    assert_int_equal(nnew(h), 1);
    LEDGER(h, 0, "compensation", "pA", "org", "-30.000000", "1170.000000", "1170.000000", "2026-01", 0);
    size_t ndd = h->ms.ndd;
    int64_t wm = org_of(h, "o6")->watermark;
    for (int i = 3; i <= 4; i++) { /* u-bad, twice: judged again, not a duplicate */
        assert_int_equal(feed(h, L[i]), ENG_REJECTED);
        guard_rej(h, ENG_R_TIME_IN_FUTURE, "time_in_future", "time", ndd);
        assert_non_null(strstr(dget(NEW(h, 0), "message"), "2026-01-20T10:00:00Z"));
        assert_string_equal(h->ms.out[h->mark].key, "o6");
    }
    assert_int_equal(feed(h, L[5]), ENG_REJECTED); /* u-gap 03-15 > 01-20 10:00 + 31 days */
    guard_rej(h, ENG_R_TIME_IN_FUTURE, "time_in_future", "time", ndd);
    /* no watermark moved, no month closed */
    assert_int_equal(org_of(h, "o6")->watermark, wm);
    assert_int_equal(org_of(h, "o6")->open_month, MON("2026-01"));
    assert_int_equal(V(h, "o6"), U(1170));
    assert_int_equal(feed(h, L[6]), ENG_APPLIED); /* tick 02-01 closes January */
    assert_int_equal(nnew(h), 2);
    LEDGER(h, 0, "minimal_draw", NULL, "org", "-70.000000", "1100.000000", "1100.000000", "2026-01", 0);
    CLOSED(h, 1, NULL, "2026-01", "30.000000", "100.000000", "70.000000", "100.000000",
           "1100.000000", "1100.000000");
    assert_int_equal(feed(h, L[7]), ENG_APPLIED); /* tick 03-01 closes February */
    assert_int_equal(nnew(h), 2);
    LEDGER(h, 0, "minimal_draw", NULL, "org", "-100.000000", "1000.000000", "1000.000000", "2026-02", 0);
    CLOSED(h, 1, NULL, "2026-02", "0.000000", "100.000000", "100.000000", "100.000000",
           "1000.000000", "1000.000000");
    assert_int_equal(feed(h, L[8]), ENG_APPLIED); /* u-gap again, unchanged: applied */
    assert_int_equal(nnew(h), 1);
    LEDGER(h, 0, "compensation", "pA", "org", "-10.000000", "990.000000", "990.000000", "2026-03", 0);
    assert_int_equal(V(h, "o6"), U(990));
    assert_int_equal(count_kind(h, ENG_OUT_REJECTED), 3);
    assert_int_equal(count_kind(h, ENG_OUT_OVERAGE), 0);
    check_seqs(h);
    free_lines(L, n);
}

/* Off until the partition has seen a tick; on after it; the same message
 * is applied once the clock has caught up.  Partitions are separate. */
static void test_future_needs_a_tick(void **state) {
    struct h *h = *state;
    g_reset(h, DAYS31, NULL, NULL, NULL, NULL);
    /* partition 1 never ticks: a far-future org event is applied */
    assert_int_equal(evx(h, "t", 1, "staff", "s1", "org_credit.set", "2026-01-05T00:00:00Z",
                         "{'org':'a','value':'100'}"), ENG_APPLIED);
    assert_int_equal(evx(h, "t", 1, "u", "u1", "usage", "2099-01-20T00:00:00Z",
                         "{'org':'a','project':'p','resource':'r','offering':'f','component':'c','amount':'1'}"),
                     ENG_APPLIED);
    /* partition 0 ticks: its org events are checked */
    assert_int_equal(evx(h, "t", 0, "clock", "k0", "clock.tick", "2026-01-01T00:00:00Z", NULL), ENG_APPLIED);
    assert_int_equal(evx(h, "t", 0, "staff", "s2", "org_credit.set", "2026-01-05T00:00:00Z",
                         "{'org':'b','value':'100'}"), ENG_APPLIED);
    const char *far = "{'specversion':'1.0','id':'s3','source':'staff','type':'org_credit.adjust',"
                      "'time':'2026-02-05T00:00:01Z','data':{'org':'b','delta':'5'}}";
    char msg[256];
    size_t ndd = h->ms.ndd;
    assert_int_equal(feed_t(h, "t", 0, dq(strcpy(msg, far))), ENG_REJECTED);
    guard_rej(h, ENG_R_TIME_IN_FUTURE, "time_in_future", "time", ndd);
    assert_int_equal(feed_t(h, "t", 0, msg), ENG_REJECTED); /* not remembered */
    guard_rej(h, ENG_R_TIME_IN_FUTURE, "time_in_future", "time", ndd);
    /* exactly watermark + max_future is not later: applied */
    assert_int_equal(evx(h, "t", 0, "staff", "s4", "org_credit.adjust", "2026-02-05T00:00:00Z",
                         "{'org':'b','delta':'1'}"), ENG_APPLIED);
    assert_int_equal(V(h, "b"), U(101));
    /* the watermark moved to 02-05: the same message now passes */
    assert_int_equal(feed_t(h, "t", 0, msg), ENG_APPLIED);
    assert_int_equal(V(h, "b"), U(106));
    assert_int_equal(feed_t(h, "t", 0, msg), ENG_DUPLICATE); /* applied ones are remembered */
}

/* A ticked partition: a new org compares against the partition clock
 * (its watermark starts there, choice 3); ticks themselves are never
 * checked; a time that does not parse is invalid_event (remembered). */
static void test_future_reference_and_ticks(void **state) {
    struct h *h = *state;
    g_reset(h, 86400, NULL, NULL, NULL, NULL);
    assert_int_equal(tick(h, "2026-01-01T00:00:00Z"), ENG_APPLIED);
    size_t ndd = h->ms.ndd;
    assert_int_equal(EV(h, "n1", "org_credit.set", "2026-01-02T00:00:01Z", "{'org':'new','value':'1'}"),
                     ENG_REJECTED);
    guard_rej(h, ENG_R_TIME_IN_FUTURE, "time_in_future", "time", ndd);
    assert_null(memstore_org(&h->ms, "new")); /* nothing stored for it */
    assert_int_equal(EV(h, "n2", "org_credit.set", "2026-01-02T00:00:00Z", "{'org':'new','value':'1'}"),
                     ENG_APPLIED);
    /* a tick far ahead is applied and moves every clock */
    assert_int_equal(tick(h, "2099-01-01T00:00:00Z"), ENG_APPLIED);
    assert_int_equal(EV(h, "n3", "org_credit.adjust", "2099-01-01T12:00:00Z", "{'org':'new','delta':'1'}"),
                     ENG_APPLIED);
    /* unreadable time: the format step decides */
    assert_int_equal(EV(h, "n4", "org_credit.adjust", "next year", "{'org':'new','delta':'1'}"),
                     ENG_REJECTED);
    REJECTED_ONLY(h, "invalid_event", "time");
    assert_int_equal(h->ms.ndd, ndd + 4); /* n2, tick, n3, n4 remembered */
    /* an org event on the partition is checked whatever its type */
    assert_int_equal(EV(h, "n5", "org_credit.frobnicate", "2199-01-01T00:00:00Z", "{'org':'new'}"),
                     ENG_REJECTED);
    assert_int_equal(h->res.reason, ENG_R_TIME_IN_FUTURE);
}

/* max_future 0 turns the guard off. */
static void test_future_off(void **state) {
    struct h *h = *state;
    g_reset(h, 0, NULL, NULL, NULL, NULL);
    assert_int_equal(tick(h, "2026-01-01T00:00:00Z"), ENG_APPLIED);
    org_1000(h, "o");
    assert_int_equal(usage(h, "u", "2099-01-20T10:00:00Z", "o", "p", "hpc", "1"), ENG_APPLIED);
    assert_int_equal(org_of(h, "o")->open_month, MON("2099-01"));
}

/* ---- source authority ---------------------------------------------------- */

/* Each class has its list; '*' is a prefix; a missing key allows any. */
static void test_sources_classes(void **state) {
    struct h *h = *state;
    g_reset(h, 0, "staff/credits", "owners/*", "marketplace/usage, billing/*", NULL);
    assert_int_equal(evx(h, NULL, 0, "staff/credits", "s1", "org_credit.set", "2026-01-05T00:00:00Z",
                         "{'org':'o','value':'100'}"), ENG_APPLIED);
    size_t ndd = h->ms.ndd;
    /* grant: exact only */
    assert_int_equal(evx(h, NULL, 0, "staff/credits2", "s2", "org_credit.adjust", "2026-01-05T00:00:00Z",
                         "{'org':'o','delta':'1'}"), ENG_REJECTED);
    guard_rej(h, ENG_R_SOURCE_NOT_ALLOWED, "source_not_allowed", "source: \"staff/credits2\" is not allowed for type org_credit.adjust", ndd);
    assert_string_equal(h->ms.out[h->mark].key, "o");
    assert_int_equal(evx(h, NULL, 0, "owners/x", "s3", "org_credit.delete", "2026-01-05T00:00:00Z",
                         "{'org':'o'}"), ENG_REJECTED);
    guard_rej(h, ENG_R_SOURCE_NOT_ALLOWED, "source_not_allowed", "source", ndd);
    /* allocate: prefix owners/ for all three types */
    assert_int_equal(evx(h, NULL, 0, "owners/alice", "a1", "project_credit.set", "2026-01-05T00:00:00Z",
                         "{'org':'o','project':'p','value':'10'}"), ENG_APPLIED);
    assert_int_equal(evx(h, NULL, 0, "owners", "a2", "project_credit.delete", "2026-01-05T00:00:00Z",
                         "{'org':'o','project':'p'}"), ENG_REJECTED);
    guard_rej(h, ENG_R_SOURCE_NOT_ALLOWED, "source_not_allowed", "project_credit.delete", ndd + 1);
    assert_int_equal(evx(h, NULL, 0, "staff/credits", "a3", "project.terminate", "2026-01-05T00:00:00Z",
                         "{'org':'o','project':'p'}"), ENG_REJECTED);
    guard_rej(h, ENG_R_SOURCE_NOT_ALLOWED, "source_not_allowed", "project.terminate", ndd + 1);
    /* usage: exact and prefix entries, blanks trimmed */
    assert_int_equal(usage_src(h, "marketplace/usage", "u1", "2026-01-06T00:00:00Z", "1"), ENG_APPLIED);
    assert_int_equal(usage_src(h, "billing/", "u2", "2026-01-06T00:00:00Z", "1"), ENG_APPLIED);
    assert_int_equal(usage_src(h, "billing/eu", "u3", "2026-01-06T00:00:00Z", "1"), ENG_APPLIED);
    assert_int_equal(usage_src(h, "Marketplace/usage", "u4", "2026-01-06T00:00:00Z", "1"), ENG_REJECTED);
    guard_rej(h, ENG_R_SOURCE_NOT_ALLOWED, "source_not_allowed", "for type usage", ndd + 4);
    /* usage.void belongs to the usage class (checked before unknown_type) */
    assert_int_equal(evx(h, NULL, 0, "staff/credits", "v1", "usage.void", "2026-01-06T00:00:00Z",
                         "{'org':'o'}"), ENG_REJECTED);
    guard_rej(h, ENG_R_SOURCE_NOT_ALLOWED, "source_not_allowed", "usage.void", ndd + 4);
    /* clock: key missing, any source ticks */
    assert_int_equal(evx(h, NULL, 0, "whoever", "k1", "clock.tick", "2026-02-01T00:00:00Z", NULL), ENG_APPLIED);
    /* an unknown type has no list */
    assert_int_equal(evx(h, NULL, 0, "nobody", "x1", "org_credit.grant", "2026-02-01T00:00:00Z",
                         "{'org':'o'}"), ENG_REJECTED);
    REJECTED_ONLY(h, "unknown_type", "type");
    assert_int_equal(V(h, "o"), U(97));
}

/* An empty list allows none, ticks included; a rejected message is not
 * remembered, so it is applied once the list allows its source. */
static void test_sources_empty_and_not_remembered(void **state) {
    struct h *h = *state;
    g_reset(h, 0, "", NULL, NULL, " ");
    const char *set = "{'specversion':'1.0','id':'s1','source':'staff','type':'org_credit.set',"
                      "'time':'2026-01-05T00:00:00Z','data':{'org':'o','value':'100'}}";
    char msg[256];
    dq(strcpy(msg, set));
    assert_int_equal(feed(h, msg), ENG_REJECTED);
    guard_rej(h, ENG_R_SOURCE_NOT_ALLOWED, "source_not_allowed", "source", 0);
    assert_int_equal(feed(h, msg), ENG_REJECTED); /* judged again, not a duplicate */
    guard_rej(h, ENG_R_SOURCE_NOT_ALLOWED, "source_not_allowed", "source", 0);
    assert_null(memstore_org(&h->ms, "o"));
    assert_int_equal(evx(h, NULL, 0, "clock", "k1", "clock.tick", "2026-02-01T00:00:00Z", NULL), ENG_REJECTED);
    guard_rej(h, ENG_R_SOURCE_NOT_ALLOWED, "source_not_allowed", "for type clock.tick", 0);
    assert_null(h->ms.out[h->mark].key);
    assert_false(h->ms.has_clock[0]);
    /* the source before the time guard: a far-future tick-less message */
    g_reset(h, DAYS31, "st*", NULL, NULL, NULL);
    assert_int_equal(feed(h, msg), ENG_APPLIED);
    assert_int_equal(V(h, "o"), U(100));
    assert_int_equal(feed(h, msg), ENG_DUPLICATE);
}

/* engine_new bounds every list and max_future, naming the key. */
static void test_sources_bounds(void **state) {
    (void)state;
    char list[70 * 4 + 1] = "", err[256], big[GUARD_ENTRY_MAX + 2];
    for (int i = 0; i < GUARD_LIST_MAX; i++) strcat(list, i ? ",s" : "s");
    struct engine_config cfg = {.currency = "EUR", .sources = {NULL, NULL, list, NULL}};
    struct engine *e = NULL;
    assert_int_equal(engine_new(&e, &cfg, err, sizeof(err)), 0); /* 64 entries */
    engine_free(e);
    strcat(list, ",t");
    assert_int_equal(engine_new(&e, &cfg, err, sizeof(err)), -1);
    assert_string_equal(err, "sources.usage: more than 64 entries");
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    cfg.sources[2] = NULL;
    cfg.sources[0] = big;
    assert_int_equal(engine_new(&e, &cfg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "sources.grant: entry"));
    big[GUARD_ENTRY_MAX] = 0; /* 256 bytes: fine */
    assert_int_equal(engine_new(&e, &cfg, err, sizeof(err)), 0);
    engine_free(e);
    static const char *const bad[] = {"a,,b", "a,", ",a", "a*b", "**"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cfg.sources[0] = NULL;
        cfg.sources[3] = bad[i];
        if (engine_new(&e, &cfg, err, sizeof(err)) != -1) fail_msg("list \"%s\" accepted", bad[i]);
        assert_non_null(strstr(err, "sources.clock: "));
    }
    cfg.sources[3] = NULL;
    cfg.max_future_s = GUARD_MAX_FUTURE_MAX + 1;
    assert_int_equal(engine_new(&e, &cfg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "max_future"));
    cfg.max_future_s = -1;
    assert_int_equal(engine_new(&e, &cfg, err, sizeof(err)), -1);
    /* matching, directly */
    struct guard_list l;
    assert_int_equal(guard_list_parse(&l, "*", err, sizeof(err)), 0);
    assert_true(guard_list_allows(&l, "anything"));
    guard_list_free(&l);
    assert_int_equal(guard_list_parse(&l, " a/* , b ", err, sizeof(err)), 0);
    assert_true(guard_list_allows(&l, "a/"));
    assert_true(guard_list_allows(&l, "a/x"));
    assert_false(guard_list_allows(&l, "a"));
    assert_true(guard_list_allows(&l, "b"));
    assert_false(guard_list_allows(&l, "b2"));
    assert_false(guard_list_allows(&l, " b"));
    guard_list_free(&l);
    assert_int_equal(guard_class_of("org_credit.set"), GUARD_GRANT);
    assert_int_equal(guard_class_of("project.terminate"), GUARD_ALLOCATE);
    assert_int_equal(guard_class_of("usage.void"), GUARD_USAGE);
    assert_int_equal(guard_class_of("clock.tick"), GUARD_CLOCK);
    assert_int_equal(guard_class_of("org_credit.*"), -1);
}

#define G(f) cmocka_unit_test_setup_teardown(f, g_setup, g_teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        G(test_example_F),
        G(test_future_needs_a_tick),
        G(test_future_reference_and_ticks),
        G(test_future_off),
        G(test_sources_classes),
        G(test_sources_empty_and_not_remembered),
        cmocka_unit_test(test_sources_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
