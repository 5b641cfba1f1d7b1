/* test_state_check.c -- state read from the store is checked, never asserted
 * on (issue 6, point 4).
 *
 * The store checks each record's bytes; a well-formed record can still hold
 * state the rules cannot work with (an open month past the time range, a
 * negative expected consumption, months the closes never drop, a sequence
 * at its end, a sum of allocations that is not the sum of P...).  Each case
 * builds a valid organisation through events, breaks one invariant, writes
 * the org back through the store interface (memstore, and LMDB whenever its
 * encoders accept the value), applies an event that reached an assertion or
 * an overflow before, and expects ENG_ESTORE with an error naming the org,
 * the project when there is one, and the problem.  The same event on the
 * unbroken state applies: the checks never refuse valid state.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/engine.h"
#include "engine/timeutil.h"
#include "store/store.h"
#include "tests/unit/dualstore.h"

/* ---- harness: one engine over a memstore or an LMDB store ----------------- */

struct sc {
    struct dualstore d;
    int64_t line;
    char err[1024];
};

static void sc_open(struct sc *r, int lmdb) {
    memset(r, 0, sizeof(*r));
    dualstore_open(&r->d, lmdb, "test_state_check", NULL);
}

static void sc_close(struct sc *r) { dualstore_close(&r->d); }

/* Apply msg (' for ") in its own batch: engine_apply's return code, the
 * batch committed on 0 and aborted otherwise; r->err holds the error. */
static int feed(struct sc *r, const char *msg) {
    char buf[2048];
    struct engine_result res;
    assert_true(strlen(msg) < sizeof(buf));
    strcpy(buf, msg);
    for (char *p = buf; *p; p++)
        if (*p == '\'') *p = '"';
    dualstore_begin(&r->d);
    struct engine_msg m = {buf, strlen(buf), NULL, 0, ++r->line};
    r->err[0] = 0;
    int rc = engine_apply(r->d.e, &r->d.ops, &m, &res, r->err, sizeof(r->err));
    if (rc == 0) {
        if (res.outcome == ENG_REJECTED) fail_msg("rejected: %s", buf);
        dualstore_commit(&r->d);
    } else {
        dualstore_abort(&r->d);
    }
    return rc;
}

/* Org `id` with all its projects, as the store holds it, into o (inited). */
static void read_org(struct sc *r, const char *id, struct eng_org *o) {
    struct eng_org tmp;
    eng_org_init(&tmp);
    dualstore_begin(&r->d);
    if (r->d.ops.org_get(r->d.ops.ctx, id, o, r->err, sizeof(r->err))) fail_msg("org_get: %s", r->err);
    if (r->d.ops.projects_get(r->d.ops.ctx, id, &tmp, r->err, sizeof(r->err)))
        fail_msg("projects_get: %s", r->err);
    assert_int_equal(eng_org_merge_projects(o, &tmp), 0);
    eng_org_free(&tmp);
    dualstore_abort(&r->d);
}

/* Write all of o (every part dirty) through the store interface. */
static void plant(struct sc *r, struct eng_org *o) {
    o->dirty = ENG_DIRTY_META | ENG_DIRTY_SEQ | ENG_DIRTY_CREDIT | ENG_DIRTY_ACCT;
    for (size_t i = 0; i < o->nproj; i++) o->proj[i].dirty = ENG_DIRTY_CREDIT | ENG_DIRTY_ACCT;
    dualstore_begin(&r->d);
    if (r->d.ops.org_put(r->d.ops.ctx, o, r->err, sizeof(r->err))) fail_msg("org_put: %s", r->err);
    dualstore_commit(&r->d);
}

#define HDR(t) "{'specversion':'1.0','time':'" t "','source':'s',"

/* A valid org "o": V 1000 (expected 100, grace 10), project "p" with a
 * linear allocation of 300 ending 2026-06, 50 used from it in 2026-01.
 * Afterwards: V 950, sum of P 250, open month 2026-01. */
static const char *const setup_events[] = {
    HDR("2026-01-05T10:00:00Z") "'id':'s1','type':'org_credit.set','data':{'org':'o',"
        "'value':'1000','expected_consumption':'100','grace_coefficient':10}}",
    HDR("2026-01-05T10:00:00Z") "'id':'s2','type':'project_credit.set','data':{'org':'o',"
        "'project':'p','value':'300','consumption_logic':'linear','end_date':'2026-06-01'}}",
    HDR("2026-01-05T10:00:00Z") "'id':'s3','type':'usage','data':{'org':'o','project':'p',"
        "'resource':'r','offering':'f','component':'c','amount':'50'}}",
};

/* Events that reach the rules the invariants protect. */
#define T_USAGE HDR("2026-01-06T10:00:00Z") "'id':'t1','type':'usage','data':{'org':'o'," \
    "'project':'p','resource':'r','offering':'f','component':'c','amount':'10'}}"
#define T_TICK "{'specversion':'1.0','time':'2026-02-01T00:00:00Z','source':'clock','id':'t2'," \
    "'type':'clock.tick'}"
#define T_ADJUST HDR("2026-01-06T10:00:00Z") "'id':'t3','type':'org_credit.adjust'," \
    "'data':{'org':'o','delta':'5'}}"
#define T_DELETE HDR("2026-01-06T10:00:00Z") "'id':'t4','type':'org_credit.delete','data':{'org':'o'}}"
#define T_PSET HDR("2026-01-06T10:00:00Z") "'id':'t5','type':'project_credit.set','data':{'org':'o'," \
    "'project':'p2','value':'10','consumption_logic':'linear','end_date':'2026-06-01'}}"

static struct eng_project *proj(struct eng_org *o) {
    struct eng_project *p = eng_org_find_project(o, "p");
    assert_non_null(p);
    return p;
}

/* ---- the broken invariants ------------------------------------------------- */

#define M2026_01 (2026 * 12)

static void m_none(struct eng_org *o) { (void)o; }
static void m_open_far(struct eng_org *o) { o->open_month = 2262 * 12 + 5; }
static void m_open_ahead(struct eng_org *o) { o->open_month = M2026_01 + 48; }
static void m_open_none(struct eng_org *o) { o->open_month = ENG_NO_MONTH; }
static void m_wm_far(struct eng_org *o) { o->watermark = INT64_MAX - 1; }
static void m_wm_none(struct eng_org *o) { o->watermark = ENG_NO_TIME; }
static void m_seq_max(struct eng_org *o) { o->seq[ENG_OUT_LEDGER] = UINT64_MAX; }
static void m_value_neg(struct eng_org *o) { o->value = -1000000; }
static void m_sum_neg(struct eng_org *o) { o->alloc_sum = -1; }
static void m_nocredit_value(struct eng_org *o) {
    o->has_credit = 0;
    o->serial = proj(o)->serial = 0; /* the value is the fault */
    o->alloc_sum = 0;
    proj(o)->has_credit = 0;
    proj(o)->value = 0;
}
static void m_flag(struct eng_org *o) { o->has_credit = 2; }
static void m_expected_neg(struct eng_org *o) { o->terms.expected = -5000000; }
static void m_grace(struct eng_org *o) { o->terms.grace = 150; }
static void m_end_far(struct eng_org *o) { o->terms.end_month = 2300 * 12; }
static void m_linear_noend(struct eng_org *o) { o->terms.logic = ENG_LINEAR; }
static void m_noff(struct eng_org *o) { o->noff = ENG_MAX_OFFERINGS + 1; }
static void m_months_full(struct eng_org *o) {
    o->nacct = ENG_MAX_MONTHS;
    for (int i = 0; i < ENG_MAX_MONTHS; i++) {
        o->acct[i].month = M2026_01 + 1 + i;
        o->acct[i].consumed = 1;
    }
}
static void m_months_dup(struct eng_org *o) {
    o->nacct = 2;
    o->acct[1] = o->acct[0];
}
static void m_consumed_neg(struct eng_org *o) { o->acct[0].consumed = INT64_MIN; }
static void m_sum_high(struct eng_org *o) { o->alloc_sum += 1000000; }
static void m_sum_low(struct eng_org *o) { o->alloc_sum = 100000000; proj(o)->value = 200000000; }
static void m_p_value_neg(struct eng_org *o) { proj(o)->value = -1; }
static void m_p_nocredit_value(struct eng_org *o) {
    o->alloc_sum -= proj(o)->value;
    proj(o)->has_credit = 0;
}
static void m_p_orgless(struct eng_org *o) {
    o->has_credit = 0;
    o->value = o->alloc_sum = 0;
    o->serial = 0;
    memset(&o->al, 0, sizeof(o->al)); /* no org alert state either: the project is the fault */
}
static void m_p_expected_neg(struct eng_org *o) { proj(o)->terms.expected = -1; }
static void m_p_end_far(struct eng_org *o) { proj(o)->terms.end_month = 3000 * 12; }
static void m_p_end_none(struct eng_org *o) { proj(o)->terms.end_month = ENG_NO_MONTH; }
static void m_p_months_full(struct eng_org *o) {
    struct eng_project *p = proj(o);
    p->nacct = ENG_MAX_MONTHS;
    for (int i = 0; i < ENG_MAX_MONTHS; i++) {
        p->acct[i].month = M2026_01 - 1 - i;
        p->acct[i].consumed = 1;
    }
}
/* §12 alert state and overage flags */
static void m_alert_seq_max(struct eng_org *o) { o->alert_seq = UINT64_MAX; }
static void m_thr_zero(struct eng_org *o) { o->al.thr[0] |= 1; }
static void m_thr_100(struct eng_org *o) { o->al.thr[1] |= UINT64_C(1) << (100 - 64); }
static void m_armed_extra(struct eng_org *o) { o->al.armed[0] |= UINT64_C(1) << 5; }
static void m_reference_neg(struct eng_org *o) { o->al.reference = -1; }
static void m_exhausted_2(struct eng_org *o) { o->al.exhausted = 2; }
static void m_org_al_nocredit(struct eng_org *o) {
    m_nocredit_value(o);
    o->value = 0;
    o->al.reference = 7;
}
static void m_p_thr(struct eng_org *o) { proj(o)->al.thr[1] |= UINT64_C(1) << 63; }
static void m_p_al_nocredit(struct eng_org *o) {
    o->alloc_sum -= proj(o)->value;
    proj(o)->has_credit = 0;
    proj(o)->value = 0;
    proj(o)->al.exhausted = 1;
}
static void m_p_flag_2(struct eng_org *o) { proj(o)->acct[0].overage = 2; }
static void m_p_flag_future(struct eng_org *o) {
    struct eng_project *p = proj(o);
    p->acct[1] = (struct eng_acct){M2026_01 + 1, 0, 1};
    p->nacct = 2;
}
static void m_p_flag_before_open(struct eng_org *o) { /* valid: a flag kept from before the set */
    struct eng_project *p = proj(o);
    p->acct[1] = p->acct[0];
    p->acct[0] = (struct eng_acct){M2026_01 - 1, 0, 1};
    p->nacct = 2;
}

static void m_p_months_order(struct eng_org *o) {
    struct eng_project *p = proj(o);
    o->watermark = time_month_start(M2026_01 + 1) + 1; /* 2026-02 is not past it */
    p->nacct = 2;
    p->acct[1] = p->acct[0];
    p->acct[0].month = M2026_01 + 1;
}

struct scase {
    const char *name;
    void (*mut)(struct eng_org *o);
    const char *event;
    int lmdb;              /* the LMDB store's encoders accept the broken value */
    const char *project;   /* named in the error, NULL for the org */
    const char *what;      /* in the error */
};

static const struct scase cases[] = {
    /* org meta: the closes would pass the time module's range */
    {"open month out of range", m_open_far, T_USAGE, 1, NULL, "open month 2262-06 is outside 1970-01 .. the watermark's month 2026-01"},
    {"open month after the watermark's", m_open_ahead, T_USAGE, 1, NULL,
     "open month 2030-01 is outside 1970-01 .. the watermark's month 2026-01"},
    {"watermark out of range", m_wm_far, T_USAGE, 1, NULL, "watermark 9223372036854775806 ns"},
    {"open month without a watermark", m_wm_none, T_TICK, 1, NULL, "open month 2026-01 without a watermark"},
    {"credit without an open month", m_open_none, T_PSET, 1, NULL, "a credit but no open month"},
    {"ledger sequence at UINT64_MAX", m_seq_max, T_ADJUST, 1, NULL,
     "ledger sequence 18446744073709551615 exceeds 2^63-1"},
    /* org credit */
    {"negative value", m_value_neg, T_USAGE, 0, NULL, "value -1.000000 < 0"},
    {"negative allocation sum", m_sum_neg, T_USAGE, 0, NULL, "allocation sum -0.000001 < 0"},
    {"value without a credit", m_nocredit_value, T_USAGE, 0, NULL, "no credit, yet value 950.000000"},
    {"credit flag 2", m_flag, T_USAGE, 0, NULL, "credit flag 2"},
    {"negative expected consumption", m_expected_neg, T_TICK, 1, NULL,
     "terms: expected consumption -5.000000 < 0"},
    {"grace over 100", m_grace, T_TICK, 0, NULL, "terms: grace coefficient 150"},
    {"end month out of range", m_end_far, T_USAGE, 1, NULL, "terms: end month 2300-01 is outside"},
    {"linear without an end", m_linear_noend, T_TICK, 1, NULL, "terms: linear consumption without an end date"},
    {"too many offerings", m_noff, T_USAGE, 0, NULL, "65 offerings"},
    /* org months */
    {"months past the watermark", m_months_full, T_USAGE, 1, NULL,
     "months: consumption in 2026-02, outside the open month 2026-01 .. the watermark's month 2026-01"},
    {"a month twice", m_months_dup, T_USAGE, 1, NULL, "months: 2026-01 after 2026-01 (not ascending)"},
    {"negative consumption", m_consumed_neg, T_TICK, 1, NULL, "months: consumption -9223372036854.775808 < 0"},
    /* the sum of P */
    {"sum of P above the projects'", m_sum_high, T_DELETE, 1, NULL,
     "allocation sum 251.000000, but the project credits add up to 250.000000"},
    {"P above the sum of P", m_sum_low, T_USAGE, 1, "p",
     "value 200.000000 exceeds the organisation's allocation sum 100.000000"},
    /* projects */
    {"negative P", m_p_value_neg, T_USAGE, 0, "p", "value -0.000001 < 0"},
    {"P without a credit", m_p_nocredit_value, T_TICK, 0, "p", "no credit, yet value 250.000000"},
    {"project credit without an org credit", m_p_orgless, T_TICK, 1, "p",
     "a credit, but the organisation has none"},
    {"project expected negative", m_p_expected_neg, T_TICK, 1, "p", "expected consumption -0.000001 < 0"},
    {"project end out of range", m_p_end_far, T_USAGE, 1, "p", "terms: end month 3000-01 is outside"},
    {"linear project without an end", m_p_end_none, T_TICK, 1, "p", "linear consumption without an end date"},
    {"project months before the open month", m_p_months_full, T_USAGE, 1, "p",
     "months: consumption in 2025-12, outside the open month 2026-01"},
    {"project months out of order", m_p_months_order, T_TICK, 1, "p",
     "months: 2026-01 after 2026-02 (not ascending)"},
    /* §12: alert state (the LMDB codec refuses most of these itself: store tests) */
    {"alert sequence at UINT64_MAX", m_alert_seq_max, T_ADJUST, 1, NULL,
     "alert sequence 18446744073709551615 exceeds 2^63-1"},
    {"threshold 0", m_thr_zero, T_USAGE, 0, NULL, "alert thresholds outside 1..99"},
    {"threshold 100", m_thr_100, T_USAGE, 0, NULL, "alert thresholds outside 1..99"},
    {"armed but not a threshold", m_armed_extra, T_USAGE, 0, NULL,
     "an armed alert threshold that is not a threshold"},
    {"negative reference", m_reference_neg, T_USAGE, 0, NULL, "alert reference -0.000001 < 0"},
    {"exhausted flag 2", m_exhausted_2, T_USAGE, 0, NULL, "exhausted flag 2"},
    {"org alert state without a credit", m_org_al_nocredit, T_USAGE, 0, NULL,
     "alert state without a credit"},
    {"project threshold 127", m_p_thr, T_USAGE, 0, "p", "alert thresholds outside 1..99"},
    {"project alert state without a credit", m_p_al_nocredit, T_TICK, 0, "p",
     "alert state without a credit"},
    {"overage flag 2", m_p_flag_2, T_USAGE, 0, "p", "months: overage flag 2 in 2026-01"},
    {"overage flag after the watermark's month", m_p_flag_future, T_USAGE, 1, "p",
     "months: overage flag in 2026-02, outside 1970-01 .. the watermark's month 2026-01"},
};

/* Build the valid org, break it with mut, apply ev: its return code. */
static int run_case(struct sc *r, void (*mut)(struct eng_org *), const char *ev) {
    struct eng_org o;
    for (size_t i = 0; i < sizeof(setup_events) / sizeof(setup_events[0]); i++)
        if (feed(r, setup_events[i])) fail_msg("setup %zu: %s", i, r->err);
    eng_org_init(&o);
    read_org(r, "o", &o);
    mut(&o);
    plant(r, &o);
    eng_org_free(&o);
    return feed(r, ev);
}

static void test_broken_state(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct scase *c = &cases[i];
        for (int lmdb = 0; lmdb <= c->lmdb; lmdb++) {
            struct sc r;
            char want[256];
            /* the same event on the unbroken state applies */
            sc_open(&r, lmdb);
            if (run_case(&r, m_none, c->event))
                fail_msg("%s (%s): valid state refused: %s", c->name, lmdb ? "lmdb" : "mem", r.err);
            sc_close(&r);
            sc_open(&r, lmdb);
            int rc = run_case(&r, c->mut, c->event);
            if (rc != ENG_ESTORE)
                fail_msg("%s (%s): rc %d, want ENG_ESTORE", c->name, lmdb ? "lmdb" : "mem", rc);
            snprintf(want, sizeof(want), "corrupt store: org o%s%s: ", c->project ? " project " : "",
                     c->project ? c->project : "");
            if (strncmp(r.err, want, strlen(want)) || !strstr(r.err, c->what))
                fail_msg("%s (%s): error \"%s\", want \"%s...%s\"", c->name, lmdb ? "lmdb" : "mem",
                         r.err, want, c->what);
            sc_close(&r);
        }
    }
}

/* ---- the partition clock ---------------------------------------------------- */

static void set_clock(struct sc *r, int64_t ns) {
    dualstore_begin(&r->d);
    if (r->d.ops.clock_put(r->d.ops.ctx, 0, ns, r->err, sizeof(r->err))) fail_msg("clock_put: %s", r->err);
    dualstore_commit(&r->d);
}

/* A new org's watermark starts at the partition clock: a clock past the
 * time range made the first set close months until time_month_start
 * asserted. */
/* A flag-only month entry before the open month (kept from before the
 * first set) is valid, on both stores, and the usage prunes it. */
static void test_flag_before_open_is_valid(void **state) {
    (void)state;
    for (int lmdb = 0; lmdb <= 1; lmdb++) {
        struct sc r;
        struct eng_org o;
        sc_open(&r, lmdb);
        if (run_case(&r, m_p_flag_before_open, T_USAGE))
            fail_msg("%s: refused: %s", lmdb ? "lmdb" : "mem", r.err);
        eng_org_init(&o);
        read_org(&r, "o", &o);
        assert_int_equal(proj(&o)->nacct, 1);
        assert_int_equal(proj(&o)->acct[0].month, M2026_01);
        eng_org_free(&o);
        sc_close(&r);
    }
}

static void test_broken_clock(void **state) {
    (void)state;
    for (int lmdb = 0; lmdb <= 1; lmdb++) {
        struct sc r;
        sc_open(&r, lmdb);
        set_clock(&r, INT64_MAX);
        assert_int_equal(feed(&r, HDR("2026-01-05T10:00:00Z") "'id':'n1','type':'org_credit.set',"
                                  "'data':{'org':'n','value':'10'}}"), ENG_ESTORE);
        assert_string_equal(r.err, "corrupt store: partition 0 clock: 9223372036854775807 ns is "
                                   "outside 1970..2261");
        assert_int_equal(feed(&r, T_TICK), ENG_ESTORE);
        assert_non_null(strstr(r.err, "corrupt store: partition 0 clock"));
        set_clock(&r, -1);
        assert_int_equal(feed(&r, T_TICK), ENG_ESTORE);
        set_clock(&r, time_month_start(M2026_01));
        assert_int_equal(feed(&r, T_TICK), 0);
        sc_close(&r);
    }
}

/* ---- sequences and boundaries of valid state -------------------------------- */

/* A sequence at INT64_MAX is valid (the last id used), but cannot grow:
 * the next output is an error, not an id past int64 (an assertion before). */
static void test_sequence_exhausted(void **state) {
    (void)state;
    for (int lmdb = 0; lmdb <= 1; lmdb++) {
        struct sc r;
        struct eng_org o;
        sc_open(&r, lmdb);
        assert_int_equal(feed(&r, setup_events[0]), 0);
        /* org q has no credit: its usage is an overage */
        assert_int_equal(feed(&r, HDR("2026-01-05T10:00:00Z") "'id':'q1','type':'usage','data':{"
                                  "'org':'q','project':'p','resource':'r','offering':'f',"
                                  "'component':'c','amount':'1'}}"), 0);
        eng_org_init(&o);
        read_org(&r, "o", &o);
        o.seq[ENG_OUT_LEDGER] = INT64_MAX - 1;
        plant(&r, &o);
        read_org(&r, "q", &o);
        assert_int_equal(o.seq[ENG_OUT_OVERAGE], 1);
        o.seq[ENG_OUT_OVERAGE] = INT64_MAX;
        plant(&r, &o);
        eng_org_free(&o);
        assert_int_equal(feed(&r, T_ADJUST), 0); /* ledger INT64_MAX */
        assert_int_equal(feed(&r, HDR("2026-01-06T10:00:00Z") "'id':'a2','type':'org_credit.adjust',"
                                  "'data':{'org':'o','delta':'5'}}"), ENG_ESTORE);
        assert_string_equal(r.err, "org o: the ledger sequence is exhausted");
        assert_int_equal(feed(&r, HDR("2026-01-06T10:00:00Z") "'id':'q2','type':'usage','data':{"
                                  "'org':'q','project':'p','resource':'r','offering':'f',"
                                  "'component':'c','amount':'1'}}"), ENG_ESTORE);
        assert_string_equal(r.err, "org q: the overage sequence is exhausted");
        sc_close(&r);
    }
}

/* The latest instant accepted: every month up to 2261-12 closes, the org
 * stays valid and goes on working (the checks accept the edges). */
static void test_latest_time(void **state) {
    (void)state;
    for (int lmdb = 0; lmdb <= 1; lmdb++) {
        struct sc r;
        sc_open(&r, lmdb);
        for (size_t i = 0; i < sizeof(setup_events) / sizeof(setup_events[0]); i++)
            assert_int_equal(feed(&r, setup_events[i]), 0);
        assert_int_equal(feed(&r, "{'specversion':'1.0','time':'2261-12-31T23:59:59.999999999Z',"
                                  "'source':'clock','id':'late','type':'clock.tick'}"), 0);
        assert_int_equal(feed(&r, HDR("2261-12-31T23:59:59.999999999Z") "'id':'u9','type':'usage',"
                                  "'data':{'org':'o','project':'p','resource':'r','offering':'f',"
                                  "'component':'c','amount':'1'}}"), 0);
        struct eng_org o;
        eng_org_init(&o);
        read_org(&r, "o", &o);
        char why[256] = "";
        assert_int_equal(o.open_month, 2261 * 12 + 11);
        if (eng_org_check(&o, why, sizeof(why))) fail_msg("org: %s", why);
        for (size_t i = 0; i < o.nproj; i++)
            if (eng_project_check(&o, &o.proj[i], why, sizeof(why))) fail_msg("project: %s", why);
        if (eng_org_check_alloc_sum(&o, why, sizeof(why))) fail_msg("sum: %s", why);
        eng_org_free(&o);
        sc_close(&r);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_broken_state),
        cmocka_unit_test(test_flag_before_open_is_valid),
        cmocka_unit_test(test_broken_clock),
        cmocka_unit_test(test_sequence_exhausted),
        cmocka_unit_test(test_latest_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
