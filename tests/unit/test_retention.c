/* test_retention.c -- bounded idempotency memory, semantics §14, on the
 * in-memory store (which never removes a key: what is tested here is the
 * engine's own rule, "treated as unknown whether or not it is still
 * stored"): too_late for organisation events and ticks, its place in the
 * order of checks, a key past the horizon judged as new, keys of messages
 * without a readable time, and retention_days 0 (remember forever).  The
 * LMDB removal is tested in test_store.c, the bounded store size in
 * tests/scenarios/retention.sh. */
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

/* A fresh engine with retention_days (max_future off unless given). */
static void r_reset(struct h *h, int64_t days, int64_t max_future, const char *use) {
    struct engine_config cfg = {.close_after_s = 0, .currency = "EUR", .max_future_s = max_future,
                                .sources = {NULL, NULL, use, NULL}, .retention_days = days};
    h_close(h);
    h_open_cfg(h, &cfg);
}

static int r_setup(void **state) {
    struct h *h = calloc(1, sizeof(*h));
    if (!h) return -1;
    h_open(h, 0);
    *state = h;
    return 0;
}

static int r_teardown(void **state) {
    struct h *h = *state;
    h_close(h);
    free(h);
    return 0;
}

static int use10(struct h *h, const char *id, const char *t, const char *amount) {
    return usage(h, id, t, "o1", "p", "hpc", amount);
}

/* The remembered record of the key of the message last fed (org key of o1
 * or tick key on partition part): NULL if absent. */
static const struct eng_dedupe *rec_of(struct h *h, const char *id, const char *org, int32_t part) {
    uint8_t k[ENG_DKEY_MAX];
    size_t n = 0;
    const char *src = h->source;
    k[n++] = org ? 'o' : 't';
    memcpy(k + n, src, strlen(src) + 1);
    n += strlen(src) + 1;
    memcpy(k + n, id, strlen(id) + 1);
    n += strlen(id) + 1;
    if (org) {
        memcpy(k + n, org, strlen(org));
        n += strlen(org);
    } else {
        for (int i = 3; i >= 0; i--) k[n++] = (uint8_t)((uint32_t)part >> (8 * i));
    }
    for (size_t i = 0; i < h->ms.ndd; i++)
        if (h->ms.dd[i].n == n && memcmp(h->ms.dd[i].k, k, n) == 0) return &h->ms.dd[i].rec;
    return NULL;
}

static int64_t ns(const char *t) {
    int64_t v;
    assert_int_equal(time_parse_rfc3339(t, &v), 0);
    return v;
}

/* The last message was rejected too_late naming time, and not remembered. */
static void late_rej(struct h *h, size_t ndd) {
    assert_int_equal(h->res.outcome, ENG_REJECTED);
    assert_int_equal(h->res.reason, ENG_R_TOO_LATE);
    assert_string_equal(event_reason_name(ENG_R_TOO_LATE), "too_late");
    assert_int_equal(nnew(h), 1);
    REJ(h, 0, "too_late", "time");
    assert_string_equal(dget(NEW(h, 0), "event_id"), h->id);
    assert_int_equal(h->ms.ndd, ndd);
}

/* ---- too_late ------------------------------------------------------------- */

/* An org event earlier than its org's watermark - retention_days: rejected
 * too_late, not remembered (judged again), the watermark unmoved; at the
 * horizon exactly it is applied. */
static void test_too_late_org_event(void **state) {
    struct h *h = *state;
    r_reset(h, 10, 0, NULL);
    org_1000(h, "o1");
    assert_int_equal(use10(h, "u-1", "2026-02-01T00:00:00Z", "10"), ENG_APPLIED);
    size_t ndd = h->ms.ndd;
    int64_t wm = org_of(h, "o1")->watermark;
    /* horizon: 2026-02-01 - 10 days = 2026-01-22T00:00:00Z */
    assert_int_equal(use10(h, "u-old", "2026-01-21T23:59:59Z", "5"), ENG_REJECTED);
    late_rej(h, ndd);
    assert_non_null(strstr(dget(NEW(h, 0), "message"), "2026-01-22T00:00:00Z"));
    assert_non_null(strstr(dget(NEW(h, 0), "message"), "watermark of organisation o1"));
    assert_int_equal(use10(h, "u-old", "2026-01-21T23:59:59Z", "5"), ENG_REJECTED);
    late_rej(h, ndd);                                 /* not remembered: judged again */
    assert_int_equal(org_of(h, "o1")->watermark, wm);
    assert_int_equal(V(h, "o1"), U(990));
    assert_int_equal(use10(h, "u-edge", "2026-01-22T00:00:00Z", "5"), ENG_APPLIED);
    assert_int_equal(V(h, "o1"), U(985));
    assert_int_equal(h->ms.ndd, ndd + 1);
}

/* A tick earlier than its partition's clock - retention_days: too_late; a
 * tick on a partition without a clock is never too late.  A new org on a
 * ticked partition starts at the clock (choice 3), so its old events are
 * too late too. */
static void test_too_late_tick(void **state) {
    struct h *h = *state;
    r_reset(h, 10, 0, NULL);
    assert_int_equal(tick(h, "2026-03-01T00:00:00Z"), ENG_APPLIED);
    size_t ndd = h->ms.ndd;
    assert_int_equal(tick(h, "2026-02-18T23:00:00Z"), ENG_REJECTED);
    late_rej(h, ndd);
    assert_non_null(strstr(dget(NEW(h, 0), "message"), "the clock of partition 0"));
    assert_int_equal(tick(h, "2026-02-19T00:00:00Z"), ENG_APPLIED);  /* at the horizon */
    assert_int_equal(h->ms.ndd, ndd + 1);
    assert_int_equal(h->ms.clock[0], ns("2026-03-01T00:00:00Z"));   /* unmoved */
    assert_int_equal(evx(h, NULL, 1, "clock", "t-p1", "clock.tick", "2020-01-01T00:00:00Z", NULL),
                     ENG_APPLIED);
    assert_int_equal(EV(h, "s-new", "org_credit.set", "2026-01-05T10:00:00Z",
                        "{'org':'o9','value':'1000'}"),
                     ENG_REJECTED);
    late_rej(h, ndd + 2);
}

/* §7 order: source authority, then time guards (future, too_late), then
 * idempotency.  A too-late message under a key remembered recently is
 * too_late, not id_conflict; from a disallowed source it is
 * source_not_allowed. */
static void test_too_late_order(void **state) {
    struct h *h = *state;
    r_reset(h, 10, 31 * 86400, "test");
    org_1000(h, "o1");
    assert_int_equal(use10(h, "u-1", "2026-02-01T00:00:00Z", "10"), ENG_APPLIED);
    size_t ndd = h->ms.ndd;
    assert_int_equal(use10(h, "u-1", "2026-01-02T00:00:00Z", "10"), ENG_REJECTED);
    late_rej(h, ndd);
    assert_int_equal(evx(h, NULL, 0, "other", "u-x", "usage", "2026-01-02T00:00:00Z",
                         "{'org':'o1','project':'p','resource':'r','offering':'hpc',"
                         "'component':'cpu','amount':'1'}"),
                     ENG_REJECTED);
    assert_int_equal(h->res.reason, ENG_R_SOURCE_NOT_ALLOWED);
    assert_int_equal(h->ms.ndd, ndd);
}

/* ---- keys past the horizon -------------------------------------------------- */

/* A key whose event is older than the watermark - retention_days no longer
 * counts: the same key with a later time is judged as new and applied
 * again (not id_conflict, not duplicate); the identical re-send is too_late
 * (its own time is past the horizon).  Within the horizon the same key
 * with other content is still id_conflict. */
static void test_expired_key_is_new(void **state) {
    struct h *h = *state;
    r_reset(h, 10, 0, NULL);
    org_1000(h, "o1");
    assert_int_equal(use10(h, "u-1", "2026-01-10T00:00:00Z", "10"), ENG_APPLIED);
    assert_int_equal(use10(h, "u-1", "2026-01-10T00:00:00Z", "10"), ENG_DUPLICATE);
    assert_int_equal(use10(h, "u-1", "2026-01-19T00:00:00Z", "10"), ENG_REJECTED);
    assert_int_equal(h->res.reason, ENG_R_ID_CONFLICT);
    /* the watermark reaches 01-21: horizon 01-11, u-1 (01-10) expires */
    assert_int_equal(use10(h, "u-2", "2026-01-21T00:00:00Z", "20"), ENG_APPLIED);
    assert_int_equal(V(h, "o1"), U(970));
    size_t ndd = h->ms.ndd;
    assert_int_equal(use10(h, "u-1", "2026-01-10T00:00:00Z", "10"), ENG_REJECTED);
    late_rej(h, ndd);
    assert_non_null(rec_of(h, "u-1", "o1", 0));       /* still stored, yet it no longer counts */
    assert_int_equal(use10(h, "u-1", "2026-01-19T00:00:00Z", "10"), ENG_APPLIED);
    assert_int_equal(V(h, "o1"), U(960));
    assert_int_equal(h->ms.ndd, ndd);                 /* the record was replaced */
    assert_int_equal(rec_of(h, "u-1", "o1", 0)->time, ns("2026-01-19T00:00:00Z"));
    assert_int_equal(use10(h, "u-1", "2026-01-19T00:00:00Z", "10"), ENG_DUPLICATE);
    assert_int_equal(V(h, "o1"), U(960));
}

/* Tick keys expire against the partition clock the same way. */
static void test_expired_tick_key(void **state) {
    struct h *h = *state;
    r_reset(h, 10, 0, NULL);
    assert_int_equal(evx(h, NULL, 0, "clock", "k", "clock.tick", "2026-01-01T00:00:00Z", NULL),
                     ENG_APPLIED);
    assert_int_equal(evx(h, NULL, 0, "clock", "k", "clock.tick", "2026-01-05T00:00:00Z", NULL),
                     ENG_REJECTED);
    assert_int_equal(h->res.reason, ENG_R_ID_CONFLICT);
    assert_int_equal(tick(h, "2026-01-20T00:00:00Z"), ENG_APPLIED);  /* horizon 01-10 */
    assert_int_equal(evx(h, NULL, 0, "clock", "k", "clock.tick", "2026-01-15T00:00:00Z", NULL),
                     ENG_APPLIED);
    assert_int_equal(rec_of(h, "k", NULL, 0)->time, ns("2026-01-15T00:00:00Z"));
    assert_int_equal(rec_of(h, "k", NULL, 0)->partition, 0);
}

/* A message without a readable time is remembered at the watermark of its
 * arrival (it expires when that does); one that arrives before its org has
 * any watermark is kept forever; a format reject of an org without a record
 * has no partition (kept by the store). */
static void test_key_without_time(void **state) {
    struct h *h = *state;
    const char *notime = "{'org':'o1','project':'p','resource':'r','offering':'hpc',"
                         "'component':'cpu','amount':'1'}";
    r_reset(h, 10, 0, NULL);
    org_1000(h, "o1");
    assert_int_equal(use10(h, "u-1", "2026-01-10T00:00:00Z", "10"), ENG_APPLIED);
    assert_int_equal(EV(h, "nt", "usage", NULL, "%s", notime), ENG_REJECTED);
    assert_int_equal(h->res.reason, ENG_R_INVALID_EVENT);
    const struct eng_dedupe *r = rec_of(h, "nt", "o1", 0);
    assert_non_null(r);
    assert_int_equal(r->time, ns("2026-01-10T00:00:00Z"));
    assert_int_equal(r->partition, 0);
    assert_int_equal(EV(h, "nt", "usage", NULL, "%s", notime), ENG_DUPLICATE);
    assert_int_equal(use10(h, "u-2", "2026-01-20T00:00:01Z", "10"), ENG_APPLIED); /* horizon past 01-10 */
    assert_int_equal(EV(h, "nt", "usage", NULL, "%s", notime), ENG_REJECTED);  /* judged as new */
    assert_int_equal(h->res.reason, ENG_R_INVALID_EVENT);
    assert_int_equal(rec_of(h, "nt", "o1", 0)->time, ns("2026-01-20T00:00:01Z"));
    assert_int_equal(EV(h, "nt", "usage", NULL, "%s", notime), ENG_DUPLICATE);
    /* before o5 has any watermark (no tick on partition 0 yet): kept */
    assert_int_equal(EV(h, "nt5", "usage", NULL, "{'org':'o5'}"), ENG_REJECTED);
    r = rec_of(h, "nt5", "o5", 0);
    assert_non_null(r);
    assert_true(r->time == ENG_NO_TIME);
    assert_int_equal(r->partition, -1);
    /* a readable time, but o6 has no record after its format reject */
    assert_int_equal(EV(h, "bad6", "usage", "2026-01-20T00:00:00Z", "{'org':'o6'}"), ENG_REJECTED);
    assert_int_equal(rec_of(h, "bad6", "o6", 0)->time, ns("2026-01-20T00:00:00Z"));
    assert_int_equal(rec_of(h, "bad6", "o6", 0)->partition, -1);
    EV(h, "s5", "org_credit.set", "2026-01-05T00:00:00Z", "{'org':'o5','value':'10'}");
    assert_int_equal(EV(h, "late5", "usage", "2027-06-01T00:00:00Z", "%s",
                        "{'org':'o5','project':'p','resource':'r','offering':'hpc',"
                        "'component':'cpu','amount':'1'}"),
                     ENG_APPLIED);
    assert_int_equal(EV(h, "nt5", "usage", NULL, "{'org':'o5'}"), ENG_DUPLICATE);
}

/* retention_days 0: no too_late, every key counts forever. */
static void test_retention_zero_forever(void **state) {
    struct h *h = *state;
    r_reset(h, 0, 0, NULL);
    org_1000(h, "o1");
    assert_int_equal(use10(h, "u-1", "2026-01-10T00:00:00Z", "10"), ENG_APPLIED);
    assert_int_equal(tick(h, "2036-01-10T00:00:00Z"), ENG_APPLIED);
    assert_int_equal(use10(h, "u-1", "2026-01-10T00:00:00Z", "10"), ENG_DUPLICATE);
    assert_int_equal(use10(h, "u-1", "2035-12-10T00:00:00Z", "10"), ENG_REJECTED);
    assert_int_equal(h->res.reason, ENG_R_ID_CONFLICT);
    assert_int_equal(use10(h, "u-old", "2026-01-11T00:00:00Z", "1"), ENG_APPLIED); /* late, not too late */
    assert_int_equal(tick(h, "2026-01-01T00:00:00Z"), ENG_APPLIED);
}

/* engine_new checks the bound and names the key. */
static void test_retention_bounds(void **state) {
    (void)state;
    struct engine *e = NULL;
    char err[200];
    struct engine_config cfg = {.currency = "EUR", .retention_days = GUARD_RETENTION_DAYS_MAX};
    assert_int_equal(engine_new(&e, &cfg, err, sizeof(err)), 0);
    engine_free(e);
    cfg.retention_days = GUARD_RETENTION_DAYS_MAX + 1;
    assert_int_equal(engine_new(&e, &cfg, err, sizeof(err)), -1);
    assert_string_equal(err, "retention_days: 3661 is outside 0..3660 days");
    cfg.retention_days = -1;
    assert_int_equal(engine_new(&e, &cfg, err, sizeof(err)), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_too_late_org_event, r_setup, r_teardown),
        cmocka_unit_test_setup_teardown(test_too_late_tick, r_setup, r_teardown),
        cmocka_unit_test_setup_teardown(test_too_late_order, r_setup, r_teardown),
        cmocka_unit_test_setup_teardown(test_expired_key_is_new, r_setup, r_teardown),
        cmocka_unit_test_setup_teardown(test_expired_tick_key, r_setup, r_teardown),
        cmocka_unit_test_setup_teardown(test_key_without_time, r_setup, r_teardown),
        cmocka_unit_test_setup_teardown(test_retention_zero_forever, r_setup, r_teardown),
        cmocka_unit_test(test_retention_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
