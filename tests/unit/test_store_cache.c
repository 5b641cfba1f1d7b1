/* test_store_cache.c -- the organisation cache (store.h "The organisation
 * cache", store/store_cache.c): a stream driven through the engine on a
 * cached store must give the same outputs, the same state and the same
 * captured changelog records (partition by partition) as on a store without
 * the cache -- with the default bound, and with a bound so small that every
 * new organisation evicts (and writes back) another in mid-batch; an aborted
 * batch drops the cache; a full map during the write-back at commit is
 * retried like any full map; write-backs are captured under the org's own
 * partition whatever the capture partition is at the time. */
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
#include <time.h>

#include "engine/engine.h"
#include "store/store.h"
#include "tests/unit/tmpdir.h"

#define NPART 3
#define NORG 12
#define TOPIC "in"
#define BASE_S INT64_C(1768867200) /* 2026-01-20T00:00:00Z */
#define DAYS 16                    /* into February: a month closes at a tick */

struct fx { char dir[64], err[512]; int n; };

static int setup(void **state) {
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    strcpy(f->dir, "/tmp/test_store_cache.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    *state = f;
    return 0;
}
static int teardown(void **state) {
    struct fx *f = *state;
    tmpdir_rm(f->dir);
    free(f);
    return 0;
}

/* ---- a store with its outputs and captured records -------------------------- */

struct rig {
    struct store *s;
    struct engine *e;
    struct engine_store ops;
    char *out;               /* every committed output, one per line */
    size_t nout, capout, mark;
    char *cl;                /* captured records: "partition key-hex value-hex" lines */
    size_t ncl, capcl;
    int64_t next[NPART];
};

static void grow_add(char **b, size_t *n, size_t *cap, const char *s, size_t len) {
    if (*n + len + 1 > *cap) {
        *cap = (*n + len + 1) * 2;
        *b = realloc(*b, *cap);
        assert_non_null(*b);
    }
    memcpy(*b + *n, s, len);
    *n += len;
    (*b)[*n] = 0;
}

static int on_emit(void *arg, enum eng_out_kind kind, const char *key, const char *json, size_t len) {
    struct rig *r = arg;
    char pre[300];
    int n = snprintf(pre, sizeof(pre), "%d %s ", (int)kind, key ? key : "-");
    grow_add(&r->out, &r->nout, &r->capout, pre, (size_t)n);
    grow_add(&r->out, &r->nout, &r->capout, json, len);
    grow_add(&r->out, &r->nout, &r->capout, "\n", 1);
    return 0;
}

static void hex(struct rig *r, const uint8_t *p, size_t n) {
    char b[3];
    for (size_t i = 0; i < n; i++) {
        snprintf(b, sizeof(b), "%02x", p[i]);
        grow_add(&r->cl, &r->ncl, &r->capcl, b, 2);
    }
}

static int on_change(void *arg, int32_t part, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl) {
    struct rig *r = arg;
    char b[32];
    int n = snprintf(b, sizeof(b), "%d ", (int)part);
    grow_add(&r->cl, &r->ncl, &r->capcl, b, (size_t)n);
    hex(r, k, kl);
    grow_add(&r->cl, &r->ncl, &r->capcl, " ", 1);
    if (v) hex(r, v, vl); else grow_add(&r->cl, &r->ncl, &r->capcl, "-", 1);
    grow_add(&r->cl, &r->ncl, &r->capcl, "\n", 1);
    return 0;
}

/* cache_bytes 0: the default bound; no_cache: none; map 0: the default map. */
static void rig_open(struct fx *f, struct rig *r, size_t cache_bytes, int no_cache, size_t map) {
    char path[128];
    struct engine_config cfg = {.currency = "EUR", .retention_days = 3};
    memset(r, 0, sizeof(*r));
    snprintf(path, sizeof(path), "%s/s%d", f->dir, f->n++);
    struct store_opts o = {.path = path, .nosync = 1, .currency = "EUR", .retention_days = 3,
                           .cache_bytes = cache_bytes, .no_cache = no_cache, .map_size = map};
    if (store_open(&r->s, &o, f->err, sizeof(f->err))) fail_msg("store_open: %s", f->err);
    if (engine_new(&r->e, &cfg, f->err, sizeof(f->err))) fail_msg("engine_new: %s", f->err);
    store_engine_ops(r->s, &r->ops);
    store_set_emit_hook(r->s, on_emit, r);
    store_capture(r->s, 1);
}

static void rig_close(struct rig *r) {
    engine_free(r->e);
    store_close(r->s);
    free(r->out);
    free(r->cl);
}

/* ---- the stream --------------------------------------------------------------- */

struct msg { char json[1024]; int32_t part; };
struct stream { struct msg *m; size_t n, cap; };

__attribute__((format(printf, 3, 4)))
static void add(struct stream *st, int32_t part, const char *fmt, ...) {
    va_list ap;
    if (st->n == st->cap) {
        st->cap = st->cap ? 2 * st->cap : 256;
        st->m = realloc(st->m, st->cap * sizeof(*st->m));
        assert_non_null(st->m);
    }
    va_start(ap, fmt);
    vsnprintf(st->m[st->n].json, sizeof(st->m[st->n].json), fmt, ap);
    va_end(ap);
    for (char *p = st->m[st->n].json; *p; p++)
        if (*p == '\'') *p = '"';
    st->m[st->n++].part = part;
}

#define CE "{'specversion':'1.0','id':'%s-%d-%d','source':'s','type':'%s','time':'%s'"
static void ev(struct stream *st, int org, int d, const char *id, const char *type, const char *t,
               const char *data) {
    add(st, org % NPART, CE ",'data':{'org':'o%d'%s}}", id, org, d, type, t, org, data);
}

/* Per day: credits (day 0), usages on two projects (one without credit),
 * allocations, a credit set and deleted within one batch (a new org and a
 * project), adjusts, voids, duplicates, a tick per partition (a month close
 * on the day it crosses into February), a message on the wrong partition. */
static void day_events(struct stream *st, int d) {
    char t[40], data[600];
    for (int i = 0; i < NORG; i++) {
        time_t tt = (time_t)(BASE_S + (int64_t)d * 86400 + 3600 + i * 60);
        struct tm tm;
        gmtime_r(&tt, &tm);
        strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%SZ", &tm);
        if (d == 0) {
            snprintf(data, sizeof(data), ",'value':'%d'%s", 1000 + 50 * i,
                     i % 3 == 1 ? ",'consumption_logic':'fixed','expected_consumption':'30'" : "");
            ev(st, i, d, "set", "org_credit.set", t, data);
            ev(st, i, d, "pset", "project_credit.set", t, ",'project':'pa','value':'300'");
            continue;
        }
        snprintf(data, sizeof(data), ",'project':'%s','resource':'r','offering':'hpc','component':"
                 "'cpu','amount':'%d'", (i + d) % 3 ? "pa" : "pb", (i * 7 + d) % 40 + 1);
        ev(st, i, d, "u", "usage", t, data);
        if (d % 3 == 0) ev(st, i, d, "u", "usage", t, data);  /* a duplicate */
        if (d % 4 == 2 && i % 2) {
            snprintf(data, sizeof(data), ",'usage_source':'s','usage_id':'u-%d-%d','usage_time':'%s'",
                     i, d, t);
            ev(st, i, d, "void", "usage.void", t, data);
        }
        if (d % 5 == 1) ev(st, i, d, "adj", "org_credit.adjust", t, ",'delta':'25'");
        if (d == 6 && i % 4 == 0) {  /* set and deleted in one batch */
            ev(st, i, d, "ps2", "project_credit.set", t, ",'project':'px','value':'10'");
            ev(st, i, d, "pd2", "project_credit.delete", t, ",'project':'px'");
        }
        if (d == 7 && i == 5) {  /* a new org whose credit goes within the batch */
            ev(st, 40, d, "nset", "org_credit.set", t, ",'value':'5'");
            ev(st, 40, d, "ndel", "org_credit.delete", t, "");
        }
        if (d == 9 && i == 3) {  /* the wrong partition */
            ev(st, i, d, "wp", "org_credit.adjust", t, ",'delta':'1'");
            st->m[st->n - 1].part = (i + 1) % NPART;
        }
    }
    for (int p = 0; d > 0 && p < NPART; p++) {
        time_t tt = (time_t)(BASE_S + (int64_t)d * 86400 + 7200);
        struct tm tm;
        gmtime_r(&tt, &tm);
        strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%SZ", &tm);
        add(st, p, "{'specversion':'1.0','id':'tick-%d','source':'clock','type':'clock.tick',"
                   "'time':'%s'}", d, t);
    }
}

static void make_stream(struct stream *st) {
    memset(st, 0, sizeof(*st));
    for (int d = 0; d < DAYS; d++) day_events(st, d);
}

/* ---- driving -------------------------------------------------------------------- */

/* Messages [b, e) as one batch: 0; FULL_APPLY or FULL_COMMIT when the map
 * was full while applying or at the change scan / commit (where the cache
 * writes back): the batch is then gone and the map grown -- call again. */
#define FULL_APPLY 1
#define FULL_COMMIT 2
static int batch(struct fx *f, struct rig *r, const struct stream *st, size_t b, size_t e) {
    int64_t next[NPART];
    memcpy(next, r->next, sizeof(next));
    r->mark = r->nout;
    if (store_begin(r->s, f->err, sizeof(f->err))) fail_msg("store_begin: %s", f->err);
    size_t mark_cl = r->ncl;
    for (size_t i = b; i < e; i++) {
        struct engine_msg em = {st->m[i].json, strlen(st->m[i].json), TOPIC, st->m[i].part,
                                next[st->m[i].part]++};
        struct engine_result res;
        store_capture_partition(r->s, st->m[i].part);
        if (engine_apply(r->e, &r->ops, &em, &res, f->err, sizeof(f->err))) {
            if (!store_map_full(r->s)) fail_msg("engine_apply: %s", f->err);
            store_abort(r->s);
            r->nout = r->mark;
            return FULL_APPLY;
        }
    }
    store_capture_partition(r->s, 0);  /* offsets are keyed by their partition */
    for (int p = 0; p < NPART; p++)
        if (next[p] != r->next[p] && store_offset_put(r->s, TOPIC, p, next[p], f->err, sizeof(f->err))) {
            if (!store_map_full(r->s)) fail_msg("store_offset_put: %s", f->err);
            store_abort(r->s);
            r->nout = r->mark;
            return FULL_APPLY;
        }
    int rc = store_changes_scan(r->s, on_change, r, f->err, sizeof(f->err));
    if (rc == 0) rc = store_commit(r->s, f->err, sizeof(f->err));
    else store_abort(r->s);
    if (rc == STORE_EMAPFULL) {
        r->nout = r->mark;
        r->ncl = mark_cl;
        return FULL_COMMIT;
    }
    if (rc) fail_msg("scan or commit: %s", f->err);
    memcpy(r->next, next, sizeof(next));
    return 0;
}

/* The stream in batches of bsz; full maps are grown and the batch retried
 * (counted in full[FULL_APPLY], full[FULL_COMMIT] when full is not NULL). */
static void drive(struct fx *f, struct rig *r, const struct stream *st, size_t bsz, int *full) {
    for (size_t b = 0; b < st->n; b += bsz) {
        size_t e = b + bsz < st->n ? b + bsz : st->n;
        int rc, tries = 0;
        while ((rc = batch(f, r, st, b, e)) != 0) {
            if (full) full[rc]++;
            if (++tries > 30) fail_msg("batch at %zu: the map stays full", b);
        }
    }
}

/* Every state record, as text (store_dump order). */
struct text { char *b; size_t n, cap; };
static int dump_cb(void *arg, const char *db, const void *k, size_t kl, const void *v, size_t vl) {
    struct text *t = arg;
    static const char *const skip[] = {"meta", "outbox", "changes", "changelog"};
    for (size_t i = 0; i < sizeof(skip) / sizeof(skip[0]); i++)
        if (!strcmp(db, skip[i])) return 0;
    char b[8];
    grow_add(&t->b, &t->n, &t->cap, db, strlen(db));
    grow_add(&t->b, &t->n, &t->cap, " ", 1);
    for (size_t i = 0; i < kl + vl; i++) {
        snprintf(b, sizeof(b), "%02x", i < kl ? ((const uint8_t *)k)[i] : ((const uint8_t *)v)[i - kl]);
        grow_add(&t->b, &t->n, &t->cap, b, 2);
        if (i + 1 == kl) grow_add(&t->b, &t->n, &t->cap, " ", 1);
    }
    grow_add(&t->b, &t->n, &t->cap, "\n", 1);
    return 0;
}
static char *state_of(struct fx *f, struct rig *r) {
    struct text t = {0};
    if (store_dump(r->s, dump_cb, &t, f->err, sizeof(f->err))) fail_msg("store_dump: %s", f->err);
    return t.b;
}

/* The first line where a and b differ, for the failure message. */
static void same_text(const char *what, const char *a, const char *b) {
    if (!strcmp(a, b)) return;
    size_t i = 0, line = 1;
    for (; a[i] && a[i] == b[i]; i++) line += a[i] == '\n';
    fail_msg("%s differ at line %zu:\n  direct: %.200s\n  cached: %.200s", what, line, a + i, b + i);
}

static void compare(struct fx *f, struct rig *ref, struct rig *r) {
    same_text("outputs", ref->out, r->out);
    same_text("captured changelog records", ref->cl, r->cl);
    char *sa = state_of(f, ref), *sb = state_of(f, r);
    same_text("state databases", sa, sb);
    free(sa);
    free(sb);
}

/* ---- tests ------------------------------------------------------------------------ */

static void cached_equals_direct(struct fx *f, size_t cache_bytes, size_t bsz,
                                 struct store_cache_stats *cs) {
    struct stream st;
    struct rig ref, r;
    make_stream(&st);
    rig_open(f, &ref, 0, 1, 0);
    rig_open(f, &r, cache_bytes, 0, 0);
    drive(f, &ref, &st, bsz, NULL);
    drive(f, &r, &st, bsz, NULL);
    assert_true(ref.nout > 1000 && ref.ncl > 1000);  /* the stream does something */
    compare(f, &ref, &r);
    store_cache_stats(r.s, cs);
    rig_close(&ref);
    rig_close(&r);
    free(st.m);
}

/* The default bound: every org stays cached; reads are hits. */
static void test_default_bound(void **state) {
    struct fx *f = *state;
    struct store_cache_stats cs;
    cached_equals_direct(f, 0, 50, &cs);
    assert_true(cs.hits > 10 * cs.misses);
    assert_int_equal(cs.evictions, 0);
    assert_true(cs.writebacks > 0);
    assert_true(cs.entries >= NORG);
}

/* A bound below one entry: each org evicts the last one, dirty ones are
 * written back in mid-batch (captured under their own partition, while the
 * capture partition is another org's). */
static void test_evict_every_org(void **state) {
    struct fx *f = *state;
    struct store_cache_stats cs;
    cached_equals_direct(f, 1, 50, &cs);
    assert_true(cs.evictions > 100);
    assert_true(cs.writebacks > cs.evictions / 2);
    assert_true(cs.entries <= 1);
}

/* One batch for the whole stream, and batches of one message. */
static void test_batch_sizes(void **state) {
    struct fx *f = *state;
    struct store_cache_stats cs;
    cached_equals_direct(f, 0, 100000, &cs);
    assert_true(cs.writebacks >= NORG);
    cached_equals_direct(f, 4096, 1, &cs);
    assert_true(cs.evictions > 0);
}

/* An aborted batch leaves nothing cached; applying it again gives what a
 * store that never saw the abort gives. */
static void test_abort_drops(void **state) {
    struct fx *f = *state;
    struct stream st;
    struct rig ref, r;
    struct store_cache_stats cs;
    make_stream(&st);
    rig_open(f, &ref, 0, 1, 0);
    rig_open(f, &r, 0, 0, 0);
    size_t half = st.n / 2;
    drive(f, &ref, &st, half, NULL);
    assert_int_equal(batch(f, &r, &st, 0, half), 0);
    /* The second half, applied and aborted. */
    if (store_begin(r.s, f->err, sizeof(f->err))) fail_msg("store_begin: %s", f->err);
    int64_t next[NPART];
    memcpy(next, r.next, sizeof(next));
    size_t mark = r.nout;
    for (size_t i = half; i < st.n; i++) {
        struct engine_msg em = {st.m[i].json, strlen(st.m[i].json), TOPIC, st.m[i].part,
                                next[st.m[i].part]++};
        struct engine_result res;
        store_capture_partition(r.s, st.m[i].part);
        if (engine_apply(r.e, &r.ops, &em, &res, f->err, sizeof(f->err)))
            fail_msg("engine_apply: %s", f->err);
    }
    store_cache_stats(r.s, &cs);
    assert_true(cs.entries > 0);
    store_abort(r.s);
    r.nout = mark;
    store_cache_stats(r.s, &cs);
    assert_int_equal(cs.entries, 0);
    assert_int_equal(cs.drops, 1);
    assert_int_equal(batch(f, &r, &st, half, st.n), 0);
    compare(f, &ref, &r);
    rig_close(&ref);
    rig_close(&r);
    free(st.m);
}

/* Many orgs with credits on partition 0, then one tick into the next month:
 * the tick's batch writes one idempotency key while applying and every
 * org's closed month at the write-back. */
static void make_tick_stream(struct stream *st, size_t *first) {
    memset(st, 0, sizeof(*st));
    for (int i = 0; i < 150; i++) {
        add(st, 0, "{'specversion':'1.0','id':'s%d','source':'s','type':'org_credit.set','time':"
                   "'2026-01-20T00:00:00Z','data':{'org':'org-%d','value':'900',"
                   "'consumption_logic':'fixed','expected_consumption':'30'}}", i, i);
        for (int p = 0; p < 3; p++)
            add(st, 0, "{'specversion':'1.0','id':'p%d-%d','source':'s','type':"
                       "'project_credit.set','time':'2026-01-20T00:00:01Z','data':{'org':"
                       "'org-%d','project':'p%d','value':'100'}}", i, p, i, p);
    }
    *first = st->n;
    add(st, 0, "{'specversion':'1.0','id':'tick','source':'clock','type':'clock.tick',"
               "'time':'2026-02-03T00:00:00Z'}");
}

/* A map too small for the batch: full while applying, and at the write-back
 * of the cached orgs; grown and retried each time; the result is the
 * direct store's. */
static void test_map_full_retry(void **state) {
    struct fx *f = *state;
    struct stream st;
    struct rig ref;
    size_t first;
    int full[3] = {0, 0, 0};
    make_tick_stream(&st, &first);
    rig_open(f, &ref, 0, 1, 0);
    drive(f, &ref, &st, first, NULL);
    /* Several initial maps: where the map first runs out varies. */
    for (size_t map = 64 << 10; map <= (1024 << 10); map += 64 << 10) {
        struct rig r;
        rig_open(f, &r, 0, 0, map);
        drive(f, &r, &st, first, full);
        compare(f, &ref, &r);
        rig_close(&r);
    }
    print_message("full maps: %d while applying, %d at the write-back\n", full[FULL_APPLY],
                  full[FULL_COMMIT]);
    assert_true(full[FULL_COMMIT] > 0);
    rig_close(&ref);
    free(st.m);
}

/* Write-backs are captured under the org's partition: after a batch of
 * messages on partition 2, with the capture partition set to 0 before the
 * scan, every org record still comes as partition 2's. */
static void test_capture_partition(void **state) {
    struct fx *f = *state;
    struct rig r;
    struct stream st = {0};
    rig_open(f, &r, 0, 0, 0);
    add(&st, 2, "{'specversion':'1.0','id':'a','source':'s','type':'org_credit.set','time':"
                "'2026-01-20T00:00:00Z','data':{'org':'o2','value':'10'}}");
    add(&st, 2, "{'specversion':'1.0','id':'b','source':'s','type':'project_credit.set','time':"
                "'2026-01-20T00:00:01Z','data':{'org':'o2','project':'p','value':'4'}}");
    if (store_begin(r.s, f->err, sizeof(f->err))) fail_msg("store_begin: %s", f->err);
    for (size_t i = 0; i < st.n; i++) {
        struct engine_msg em = {st.m[i].json, strlen(st.m[i].json), TOPIC, 2, (int64_t)i};
        struct engine_result res;
        store_capture_partition(r.s, 2);
        if (engine_apply(r.e, &r.ops, &em, &res, f->err, sizeof(f->err)))
            fail_msg("engine_apply: %s", f->err);
        assert_int_equal(res.outcome, ENG_APPLIED);
    }
    store_capture_partition(r.s, 0);
    if (store_changes_scan(r.s, on_change, &r, f->err, sizeof(f->err))) fail_msg("scan: %s", f->err);
    if (store_commit(r.s, f->err, sizeof(f->err))) fail_msg("commit: %s", f->err);
    /* o, p, i records (and d, x of the keys): all of partition 2; format 6:
     * one o (the whole org), one p (the project), no s, c, m. */
    int orecs = 0, precs = 0;
    for (char *line = r.cl; line && *line;) {
        char *nl = strchr(line, '\n');
        if (strncmp(line, "2 ", 2) != 0) fail_msg("a record not of partition 2: %.80s", line);
        orecs += !strncmp(line + 2, "6f", 2);
        precs += !strncmp(line + 2, "70", 2);
        if (!strncmp(line + 2, "73", 2) || !strncmp(line + 2, "63", 2) || !strncmp(line + 2, "6d", 2))
            fail_msg("a record of a retired database code: %.80s", line);
        line = nl ? nl + 1 : NULL;
    }
    assert_int_equal(orecs, 1);
    assert_int_equal(precs, 1);
    rig_close(&r);
    free(st.m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_default_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_evict_every_org, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort_drops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_full_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capture_partition, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
