/* test_store_retention.c -- the LMDB store's bounded idempotency memory
 * (store.h, "Bounded idempotency memory"; semantics §14): retention_days
 * pinned at creation, the removal of expired keys at commit bounded per
 * batch (2 x new keys + STORE_EXPIRE_MIN), oldest first, by the partition
 * clock only, never a key that still counts or that cannot expire, and a
 * key replaced after it expired surviving its stale index entry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/state.h"
#include "store/store.h"
#include "tests/unit/tmpdir.h"

#define DAY INT64_C(86400000000000)
#define T0 (INT64_C(1767225600) * INT64_C(1000000000)) /* 2026-01-01T00:00:00Z */

struct fx {
    char dir[64], path[96], err[512];
    struct store *s;
    struct engine_store ops;
};

static int open_ret(struct fx *f, int64_t days, struct store **out) {
    struct store_opts o = {.path = f->path, .nosync = 1, .currency = "EUR", .retention_days = days};
    f->err[0] = 0;
    return store_open(out, &o, f->err, sizeof(f->err));
}

static int setup(void **state) {
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    strcpy(f->dir, "/tmp/test_store_ret.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/db", f->dir);
    assert_int_equal(open_ret(f, 1, &f->s), STORE_OK);  /* retention: one day */
    store_engine_ops(f->s, &f->ops);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    struct fx *f = *state;
    store_close(f->s);
    tmpdir_rm(f->dir);
    free(f);
    return 0;
}

static void begin(struct fx *f) { assert_int_equal(store_begin(f->s, f->err, sizeof(f->err)), STORE_OK); }
static void commit(struct fx *f) { assert_int_equal(store_commit(f->s, f->err, sizeof(f->err)), STORE_OK); }

/* Key "k<i>" (org-key shaped), partition p, counting at t. */
static void put(struct fx *f, int i, int32_t p, int64_t t) {
    char k[32];
    int n = snprintf(k, sizeof(k), "ok%06d", i);
    struct eng_dedupe d = {.hash = (uint64_t)i, .partition = p, .time = t};
    assert_int_equal(f->ops.dedupe_put(f->ops.ctx, (const uint8_t *)k, (size_t)n, &d, f->err,
                                       sizeof(f->err)),
                     ENG_OK);
}

/* ENG_OK (and *d) or ENG_NOTFOUND, in its own aborted txn. */
static int get(struct fx *f, int i, struct eng_dedupe *d) {
    char k[32];
    int n = snprintf(k, sizeof(k), "ok%06d", i);
    begin(f);
    int rc = f->ops.dedupe_get(f->ops.ctx, (const uint8_t *)k, (size_t)n, d, f->err, sizeof(f->err));
    store_abort(f->s);
    return rc;
}

static uint64_t entries(struct fx *f, const char *db) {
    struct store_stats st;
    assert_int_equal(store_stats(f->s, &st, f->err, sizeof(f->err)), STORE_OK);
    for (int i = 0; i < st.ndb; i++)
        if (strcmp(st.db[i].name, db) == 0) return st.db[i].entries;
    fail_msg("no db %s", db);
    return 0;
}

static void clock_put(struct fx *f, int32_t p, int64_t t) {
    assert_int_equal(f->ops.clock_put(f->ops.ctx, p, t, f->err, sizeof(f->err)), ENG_OK);
}

/* 1000 keys at day 0 on partition 0: nothing goes while there is no clock;
 * then each commit removes 2 x its new keys + STORE_EXPIRE_MIN of them,
 * oldest first, until only the keys that still count (or cannot expire:
 * no time, partition -1, a partition without clock) are left. */
static void test_removal_bounded(void **state) {
    struct fx *f = *state;
    struct eng_dedupe d;
    begin(f);
    for (int i = 0; i < 1000; i++) put(f, i, 0, T0 + i);
    for (int i = 0; i < 5; i++) put(f, 2000 + i, 1, T0);     /* partition 1: no clock */
    put(f, 3000, 0, ENG_NO_TIME);                             /* no time: kept */
    put(f, 3001, -1, T0);                                     /* no partition: kept */
    commit(f);
    assert_int_equal(store_last_removed(f->s), 0);
    assert_int_equal(entries(f, "dedupe"), 1007);
    assert_int_equal(entries(f, "dedupe_expiry"), 1005);
    /* the clock reaches day 10 (horizon day 9): 10 new keys at day 9.5 */
    begin(f);
    clock_put(f, 0, T0 + 10 * DAY);
    for (int i = 0; i < 10; i++) put(f, 4000 + i, 0, T0 + 9 * DAY + DAY / 2);
    commit(f);
    assert_int_equal(store_last_removed(f->s), 2 * 10 + STORE_EXPIRE_MIN);
    assert_int_equal(entries(f, "dedupe"), 1017 - 84);
    assert_int_equal(get(f, 83, &d), ENG_NOTFOUND);          /* the oldest went first */
    assert_int_equal(get(f, 84, &d), ENG_OK);
    assert_int_equal(d.time, T0 + 84);
    /* batches without new keys remove STORE_EXPIRE_MIN each */
    uint64_t left = 1000 - 84, batches = 0;
    while (left > 0) {
        begin(f);
        commit(f);
        uint64_t want = left < STORE_EXPIRE_MIN ? left : STORE_EXPIRE_MIN;
        assert_int_equal(store_last_removed(f->s), want);
        left -= want;
        batches++;
    }
    assert_int_equal(batches, (916 + STORE_EXPIRE_MIN - 1) / STORE_EXPIRE_MIN);
    begin(f);
    commit(f);
    assert_int_equal(store_last_removed(f->s), 0);
    assert_int_equal(entries(f, "dedupe"), 5 + 2 + 10);
    assert_int_equal(get(f, 999, &d), ENG_NOTFOUND);
    for (int i = 0; i < 10; i++) assert_int_equal(get(f, 4000 + i, &d), ENG_OK);  /* still count */
    for (int i = 0; i < 5; i++) assert_int_equal(get(f, 2000 + i, &d), ENG_OK);
    assert_int_equal(get(f, 3000, &d), ENG_OK);
    assert_int_equal(get(f, 3001, &d), ENG_OK);
    struct store_stats st;
    assert_int_equal(store_stats(f->s, &st, f->err, sizeof(f->err)), STORE_OK);
    assert_int_equal(st.oldest_key_time, T0);                 /* partition 1's */
    assert_int_equal(st.retention_days, 1);
}

/* Nothing at or after the horizon goes, whatever the budget. */
static void test_removal_stops_at_horizon(void **state) {
    struct fx *f = *state;
    struct eng_dedupe d;
    begin(f);
    clock_put(f, 0, T0 + 2 * DAY);                            /* horizon: T0 + 1 day */
    put(f, 1, 0, T0 + DAY - 1);
    put(f, 2, 0, T0 + DAY);
    put(f, 3, 0, T0 + DAY + 1);
    commit(f);
    assert_int_equal(store_last_removed(f->s), 1);
    assert_int_equal(get(f, 1, &d), ENG_NOTFOUND);
    assert_int_equal(get(f, 2, &d), ENG_OK);
    assert_int_equal(get(f, 3, &d), ENG_OK);
}

/* A key put again after it expired (the engine judged it as new) keeps its
 * new record when its old index entry comes due; the new entry removes it
 * later. */
static void test_replaced_key_survives(void **state) {
    struct fx *f = *state;
    struct eng_dedupe d;
    begin(f);
    put(f, 7, 0, T0);
    commit(f);
    begin(f);
    put(f, 7, 0, T0 + 5 * DAY);
    clock_put(f, 0, T0 + 3 * DAY);                            /* horizon T0 + 2 days */
    commit(f);
    assert_int_equal(store_last_removed(f->s), 1);            /* the stale entry */
    assert_int_equal(get(f, 7, &d), ENG_OK);
    assert_int_equal(d.time, T0 + 5 * DAY);
    assert_int_equal(entries(f, "dedupe_expiry"), 1);
    begin(f);
    clock_put(f, 0, T0 + 7 * DAY);
    commit(f);
    assert_int_equal(get(f, 7, &d), ENG_NOTFOUND);
    assert_int_equal(entries(f, "dedupe_expiry"), 0);
}

/* retention_days is pinned: another value on open fails naming the key;
 * with 0 nothing is indexed or removed. */
static void test_retention_pinned(void **state) {
    struct fx *f = *state;
    struct store *s2 = NULL;
    char want[512];
    store_close(f->s);
    f->s = NULL;
    assert_int_equal(open_ret(f, 35, &s2), STORE_EMISMATCH);
    assert_null(s2);
    snprintf(want, sizeof(want), "store %s was created with retention_days=1, config says 35", f->path);
    assert_string_equal(f->err, want);
    assert_int_equal(open_ret(f, 1, &f->s), STORE_OK);
    store_engine_ops(f->s, &f->ops);
    /* a store with retention 0 keeps everything */
    store_close(f->s);
    snprintf(f->path, sizeof(f->path), "%s/zero", f->dir);
    assert_int_equal(open_ret(f, 0, &f->s), STORE_OK);
    store_engine_ops(f->s, &f->ops);
    begin(f);
    put(f, 1, 0, T0);
    clock_put(f, 0, T0 + 3650 * DAY);
    commit(f);
    assert_int_equal(store_last_removed(f->s), 0);
    assert_int_equal(entries(f, "dedupe"), 1);
    assert_int_equal(entries(f, "dedupe_expiry"), 0);
    assert_int_equal(open_ret(f, STORE_RETENTION_DAYS_MAX + 1, &s2), STORE_ERR);
    assert_non_null(strstr(f->err, "retention_days 3661 outside 0..3660"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_removal_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_removal_stops_at_horizon, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replaced_key_survives, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_pinned, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
