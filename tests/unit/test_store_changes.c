/* test_store_changes.c -- change capture and the state changelog (store.h,
 * "Change capture and the state changelog (group mode)"): a realistic
 * stream driven through the engine on a capturing LMDB store, its captured
 * records replayed into empty stores (whole, and partition by partition),
 * store_partition_drop, the refusal of bad changelog records, capture off,
 * aborted batches, sweeps limited to partitions, changelog offsets, and
 * read-only opens of stores made before the new databases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "engine/engine.h"
#include "store/store.h"
#include "tests/unit/tmpdir.h"

#define NPART 3
#define NORG 9
#define TOPIC "in"
#define RETENTION_DAYS 1
#define BASE_S INT64_C(1768867200) /* 2026-01-20T00:00:00Z */
#define DAYS 26                    /* past the end of January: a month closes */
#define BATCH 7

/* ---- fixture ---------------------------------------------------------------- */

struct fx {
    char dir[64], err[512];
    int nstores;
};

static int setup(void **state) {
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    strcpy(f->dir, "/tmp/test_store_changes.XXXXXX");
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

/* A new store in the fixture's directory (name: its subdirectory). */
static struct store *open_named(struct fx *f, const char *name) {
    char path[128];
    struct store *s = NULL;
    snprintf(path, sizeof(path), "%s/%s", f->dir, name);
    struct store_opts o = {.path = path, .nosync = 1, .currency = "EUR",
                           .retention_days = RETENTION_DAYS};
    if (store_open(&s, &o, f->err, sizeof(f->err)) != STORE_OK) fail_msg("store_open: %s", f->err);
    return s;
}

static struct store *open_new(struct fx *f) {
    char name[32];
    snprintf(name, sizeof(name), "s%d", f->nstores++);
    return open_named(f, name);
}

static void begin(struct fx *f, struct store *s) {
    if (store_begin(s, f->err, sizeof(f->err))) fail_msg("store_begin: %s", f->err);
}
static void commit(struct fx *f, struct store *s) {
    if (store_commit(s, f->err, sizeof(f->err))) fail_msg("store_commit: %s", f->err);
}

/* ---- captured records --------------------------------------------------------- */

struct rec {
    int32_t part;
    uint8_t *k, *v;  /* v NULL: a tombstone */
    size_t kl, vl;
};
struct recs { struct rec *r; size_t n, cap; };

static void *dup_bytes(const void *p, size_t n) {
    void *d = malloc(n ? n : 1);
    assert_non_null(d);
    memcpy(d, p, n);
    return d;
}

static int collect(void *arg, int32_t part, const uint8_t *k, size_t kl, const uint8_t *v,
                   size_t vl) {
    struct recs *l = arg;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        l->r = realloc(l->r, l->cap * sizeof(*l->r));
        assert_non_null(l->r);
    }
    struct rec *r = &l->r[l->n++];
    r->part = part;
    r->k = dup_bytes(k, kl);
    r->kl = kl;
    r->v = v ? dup_bytes(v, vl) : NULL;
    r->vl = v ? vl : 0;
    return 0;
}

static void recs_free(struct recs *l) {
    for (size_t i = 0; i < l->n; i++) {
        free(l->r[i].k);
        free(l->r[i].v);
    }
    free(l->r);
    memset(l, 0, sizeof(*l));
}

static void scan(struct fx *f, struct store *s, struct recs *l) {
    if (store_changes_scan(s, collect, l, f->err, sizeof(f->err)))
        fail_msg("store_changes_scan: %s", f->err);
}

/* Records of l (part < 0: all; else only that partition's) applied to s in
 * one txn. */
static void apply_recs(struct fx *f, struct store *s, const struct recs *l, int32_t part) {
    begin(f, s);
    for (size_t i = 0; i < l->n; i++) {
        const struct rec *r = &l->r[i];
        if (part >= 0 && r->part != part) continue;
        if (store_change_apply(s, r->k, r->kl, r->v, r->vl, f->err, sizeof(f->err)))
            fail_msg("store_change_apply record %zu: %s", i, f->err);
    }
    commit(f, s);
}

/* ---- dumps of the state databases -------------------------------------------- */

static const char *const state_dbs[] = {"orgs", "project_credits", "org_partition", "partitions",
                                        "dedupe", "dedupe_expiry", "offsets"};
#define NSTATE (sizeof(state_dbs) / sizeof(state_dbs[0]))

struct drec { int db; uint8_t *k, *v; size_t kl, vl; };
struct dump { struct drec *r; size_t n, cap; size_t per_db[NSTATE]; };

static int db_index(const char *name) {
    for (size_t i = 0; i < NSTATE; i++)
        if (strcmp(state_dbs[i], name) == 0) return (int)i;
    return -1;
}

static int dump_cb(void *arg, const char *db, const void *k, size_t kl, const void *v, size_t vl) {
    struct dump *d = arg;
    int i = db_index(db);
    if (i < 0) return 0;
    if (d->n == d->cap) {
        d->cap = d->cap ? 2 * d->cap : 256;
        d->r = realloc(d->r, d->cap * sizeof(*d->r));
        assert_non_null(d->r);
    }
    d->r[d->n++] = (struct drec){i, dup_bytes(k, kl), dup_bytes(v, vl), kl, vl};
    d->per_db[i]++;
    return 0;
}

static struct dump take(struct fx *f, struct store *s) {
    struct dump d = {0};
    if (store_dump(s, dump_cb, &d, f->err, sizeof(f->err))) fail_msg("store_dump: %s", f->err);
    return d;
}

static void dump_free(struct dump *d) {
    for (size_t i = 0; i < d->n; i++) {
        free(d->r[i].k);
        free(d->r[i].v);
    }
    free(d->r);
    memset(d, 0, sizeof(*d));
}

static void print_key(const struct drec *r) {
    print_error("  %s key ", state_dbs[r->db]);
    for (size_t i = 0; i < r->kl; i++)
        print_error(r->k[i] >= 0x20 && r->k[i] < 0x7f ? "%c" : "\\x%02x", r->k[i]);
    print_error(" (%zu value bytes)\n", r->vl);
}

static int drec_same(const struct drec *a, const struct drec *b) {
    return a->db == b->db && a->kl == b->kl && a->vl == b->vl && !memcmp(a->k, b->k, a->kl) &&
           !memcmp(a->v, b->v, a->vl);
}

/* The same records, byte for byte, in the same order (store_dump's). */
static void dump_equal(const struct dump *want, const struct dump *got, const char *what) {
    size_t i = 0;
    while (i < want->n && i < got->n && drec_same(&want->r[i], &got->r[i])) i++;
    if (i == want->n && i == got->n) return;
    print_error("%s: the stores differ at record %zu (%zu wanted, %zu got)\n", what, i, want->n,
                got->n);
    if (i < want->n) { print_error(" want"); print_key(&want->r[i]); }
    if (i < got->n) { print_error(" got "); print_key(&got->r[i]); }
    fail_msg("%s: state differs", what);
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static int32_t le32(const uint8_t *p) {
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                     (uint32_t)p[3] << 24);
}

/* The partition of org id (n bytes) in dump d (its orgs record), or -2. */
static int32_t org_part(const struct dump *d, const uint8_t *id, size_t n) {
    for (size_t i = 0; i < d->n; i++)
        if (d->r[i].db == 0 && d->r[i].kl == n && !memcmp(d->r[i].k, id, n))
            return le32(d->r[i].v + 1);  /* version, partition (i32 LE), ... */
    return -2;
}

/* The partition a record of d belongs to, from its bytes; a dedupe record
 * of partition -1 (store.h: format rejects of new orgs) gives -1. */
static int32_t owner(const struct dump *d, const struct drec *r) {
    const char *db = state_dbs[r->db];
    if (!strcmp(db, "orgs")) return le32(r->v + 1);
    if (!strcmp(db, "project_credits"))
        return org_part(d, r->k, strlen((const char *)r->k) < r->kl ? strlen((const char *)r->k) : 0);
    if (!strcmp(db, "org_partition") || !strcmp(db, "partitions") || !strcmp(db, "dedupe_expiry"))
        return (int32_t)be32(r->k);
    if (!strcmp(db, "offsets")) return (int32_t)be32(r->k + r->kl - 4);
    return le32(r->v + 1 + 8 + 1 + 1);  /* dedupe: version, hash, rejected, reason, partition */
}

/* The partition the last capture of dedupe key k (kl bytes) was noted under, or -1. */
static int32_t captured_part(const struct recs *l, const uint8_t *k, size_t kl) {
    int32_t p = -1;
    for (size_t i = 0; i < l->n; i++)
        if (l->r[i].k[0] == STORE_CL_DEDUPE && l->r[i].kl == kl + 1 && !memcmp(l->r[i].k + 1, k, kl))
            p = l->r[i].part;
    return p;
}

/* d restricted to the records for which keep(owner) holds; a dedupe record
 * of partition -1 counts as own_minus1's. */
static struct dump filter(const struct dump *d, int32_t part, int keep_part,
                          const struct recs *l) {
    struct dump o = {0};
    for (size_t i = 0; i < d->n; i++) {
        const struct drec *r = &d->r[i];
        int32_t p = owner(d, r);
        assert_true(p >= -1);
        if (p == -1 && l) p = captured_part(l, r->k, r->kl);
        if ((p == part) != keep_part) continue;
        dump_cb(&o, state_dbs[r->db], r->k, r->kl, r->v, r->vl);
    }
    return o;
}

/* ---- the stream ------------------------------------------------------------------ */

struct msg { char *json; int32_t part; };
struct stream { struct msg *m; size_t n, cap; };

static void ts(char *buf, size_t len, int64_t s) {
    time_t t = (time_t)s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

__attribute__((format(printf, 3, 4)))
static void add(struct stream *st, int32_t part, const char *fmt, ...) {
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    for (char *p = buf; *p; p++)
        if (*p == '\'') *p = '"';
    if (st->n == st->cap) {
        st->cap = st->cap ? 2 * st->cap : 256;
        st->m = realloc(st->m, st->cap * sizeof(*st->m));
        assert_non_null(st->m);
    }
    st->m[st->n].json = strdup(buf);
    st->m[st->n++].part = part;
}

#define CE "{'specversion':'1.0','id':'%s','source':'%s','type':'%s','time':'%s'"

static void ev(struct stream *st, int32_t part, const char *id, const char *src, const char *type,
               const char *t, const char *data) {
    if (data) add(st, part, CE ",'data':%s}", id, src, type, t, data);
    else add(st, part, CE "}", id, src, type, t);
}

static int32_t part_of(int org) { return org % NPART; }

static void usage_of(struct stream *st, int org, int day, const char *id, const char *t, int amount) {
    char data[512];
    snprintf(data, sizeof(data),
             "{'org':'o%d','project':'p%d','resource':'r%d','offering':'hpc','component':'cpu',"
             "'amount':'%d'}", org, (org + day) % 2, org, amount);
    ev(st, part_of(org), id, "market", "usage", t, data);
}

/* Day 0: credits; every later day: a tick per partition, a usage per org,
 * and on some days duplicates, voids, id conflicts, adjustments, deletes,
 * wrong-partition, format, too-late and non-JSON rejects. */
static void day_events(struct stream *st, int d) {
    char t[40], id[64], data[512], t2[40];
    int64_t day = BASE_S + (int64_t)d * 86400;
    for (int p = 0; d > 0 && p < NPART; p++) {
        ts(t, sizeof(t), day + 1800);
        snprintf(id, sizeof(id), "tick-%d", d);
        ev(st, p, id, "clock", "clock.tick", t, NULL);
    }
    for (int i = 0; i < NORG; i++) {
        ts(t, sizeof(t), day + 3600 + i * 60);
        if (d == 0 || (d == 11 && i == 4)) {
            snprintf(id, sizeof(id), "set-%d-%d", i, d);
            snprintf(data, sizeof(data), "{'org':'o%d','value':'%d'%s}", i, 500 + 100 * i,
                     i % 3 == 1 ? ",'consumption_logic':'fixed','expected_consumption':'50'" : "");
            ev(st, part_of(i), id, "staff", "org_credit.set", t, data);
            if (i % 2 == 0) {
                snprintf(id, sizeof(id), "pset-%d-%d", i, d);
                snprintf(data, sizeof(data), "{'org':'o%d','project':'p0','value':'200'}", i);
                ev(st, part_of(i), id, "owners", "project_credit.set", t, data);
            }
            continue;
        }
        ts(t, sizeof(t), day + 36000 + i * 60);
        snprintf(id, sizeof(id), "u-%d-%d", i, d);
        usage_of(st, i, d, id, t, (i + d) % 7 * 10 + 5);
        if (d % 3 == 0 && d > 1) {  /* yesterday's usage again: a duplicate */
            ts(t2, sizeof(t2), day - 86400 + 36000 + i * 60);
            snprintf(id, sizeof(id), "u-%d-%d", i, d - 1);
            usage_of(st, i, d - 1, id, t2, (i + d - 1) % 7 * 10 + 5);
        }
        if (d % 4 == 1 && d > 1 && i % 3 == 0) {  /* void yesterday's usage */
            ts(t2, sizeof(t2), day - 86400 + 36000 + i * 60);
            snprintf(id, sizeof(id), "void-%d-%d", i, d);
            snprintf(data, sizeof(data), "{'org':'o%d','usage_source':'market','usage_id':'u-%d-%d',"
                     "'usage_time':'%s'}", i, i, d - 1, t2);
            ev(st, part_of(i), id, "market", "usage.void", t, data);
        }
        if (d % 5 == 2) {  /* today's usage id with another amount: an id conflict */
            snprintf(id, sizeof(id), "u-%d-%d", i, d);
            usage_of(st, i, d, id, t, 999);
        }
        if (d % 6 == 3) {
            snprintf(id, sizeof(id), "adj-%d-%d", i, d);
            snprintf(data, sizeof(data), "{'org':'o%d','delta':'50'}", i);
            ev(st, part_of(i), id, "staff", "org_credit.adjust", t, data);
        }
    }
    ts(t, sizeof(t), day + 50000);
    if (d == 10) ev(st, part_of(4), "del-4", "staff", "org_credit.delete", t, "{'org':'o4'}");
    if (d == 12) ev(st, part_of(0), "pdel-0", "owners", "project_credit.delete", t,
                    "{'org':'o0','project':'p0'}");
    if (d == 13) ev(st, part_of(2), "term-2", "owners", "project.terminate", t,
                    "{'org':'o2','project':'p1'}");
    if (d == 5) usage_of(st, 1, d, "misplaced", t, 5), st->m[st->n - 1].part = 2;
    if (d % 4 == 2) {  /* a format reject of an org without a record: partition -1 */
        snprintf(id, sizeof(id), "fresh-%d", d);
        snprintf(data, sizeof(data), "{'org':'fresh%d','project':'p','resource':'r','offering':"
                 "'hpc','component':'cpu','amount':'abc'}", d);
        ev(st, d % NPART, id, "market", "usage", t, data);
    }
    if (d == 8) {  /* older than the horizon: too late */
        ts(t2, sizeof(t2), BASE_S + 2 * 86400);
        usage_of(st, 1, 2, "late-1", t2, 5);
    }
    if (d == 7) add(st, 0, "this is not JSON");
}

static void stream_free(struct stream *st) {
    for (size_t i = 0; i < st->n; i++) free(st->m[i].json);
    free(st->m);
}

/* What a run captured, and what the engine decided. */
struct run {
    struct recs recs;
    size_t outcomes[3];
    uint64_t swept;     /* keys the sweeps removed */
    size_t sweep_tombstones;  /* dedupe tombstones captured in batches whose sweep removed keys */
};

/* The stream through the engine on s, BATCH messages a batch; capture on
 * (then each batch: store_sweep, store_changes_scan into r->recs) or off. */
static void drive(struct fx *f, struct store *s, const struct stream *st, int capture,
                  struct run *r) {
    struct engine_config cfg = {.currency = "EUR", .retention_days = RETENTION_DAYS};
    struct engine_store ops;
    struct engine *e;
    int64_t next[NPART] = {0};
    memset(r, 0, sizeof(*r));
    if (engine_new(&e, &cfg, f->err, sizeof(f->err))) fail_msg("engine_new: %s", f->err);
    store_engine_ops(s, &ops);
    store_capture(s, capture);
    for (size_t b = 0; b < st->n; b += BATCH) {
        int seen[NPART] = {0};
        begin(f, s);
        for (size_t i = b; i < st->n && i < b + BATCH; i++) {
            const struct msg *m = &st->m[i];
            struct engine_msg em = {m->json, strlen(m->json), TOPIC, m->part, next[m->part]++};
            struct engine_result res;
            store_capture_partition(s, m->part);
            if (engine_apply(e, &ops, &em, &res, f->err, sizeof(f->err)))
                fail_msg("engine_apply %s: %s", m->json, f->err);
            r->outcomes[res.outcome]++;
            seen[m->part] = 1;
        }
        for (int p = 0; p < NPART; p++)
            if (seen[p] && store_offset_put(s, TOPIC, p, next[p], f->err, sizeof(f->err)))
                fail_msg("store_offset_put: %s", f->err);
        if (capture) {
            size_t before = r->recs.n;
            if (store_sweep(s, f->err, sizeof(f->err))) fail_msg("store_sweep: %s", f->err);
            scan(f, s, &r->recs);
            commit(f, s);
            if (store_last_removed(s) > 0)
                for (size_t i = before; i < r->recs.n; i++)
                    r->sweep_tombstones += r->recs.r[i].k[0] == STORE_CL_DEDUPE && !r->recs.r[i].v;
        } else {
            commit(f, s);
        }
        r->swept += store_last_removed(s);
    }
    engine_free(e);
    store_capture(s, 0);
}

static void make_stream(struct stream *st) {
    memset(st, 0, sizeof(*st));
    for (int d = 0; d < DAYS; d++) day_events(st, d);
}

/* ---- (1), (2): the whole changelog, and partition by partition ---------------- */

static void test_replay_equals_source(void **state) {
    struct fx *f = *state;
    struct stream st;
    struct run r;
    make_stream(&st);
    struct store *a = open_new(f), *b = open_new(f);
    drive(f, a, &st, 1, &r);
    /* The stream is what it should be: every outcome, sweeps that removed
     * keys (and were captured), every state database in use. */
    assert_true(r.outcomes[ENG_APPLIED] > 100);
    assert_true(r.outcomes[ENG_DUPLICATE] > 10);
    assert_true(r.outcomes[ENG_REJECTED] > 10);
    assert_true(r.swept > 50);
    assert_true(r.sweep_tombstones > 0);
    struct dump da = take(f, a);
    for (size_t i = 0; i < NSTATE; i++)
        if (da.per_db[i] == 0) fail_msg("the stream left no %s record", state_dbs[i]);
    /* A's changelog, in order, into the empty B: B holds exactly A's state. */
    apply_recs(f, b, &r.recs, -1);
    struct dump db = take(f, b);
    dump_equal(&da, &db, "A vs B (every record applied)");
    /* Per partition: C holds A's records of that partition, nothing else. */
    for (int32_t p = 0; p < NPART; p++) {
        struct store *c = open_new(f);
        apply_recs(f, c, &r.recs, p);
        struct dump dc = take(f, c), want = filter(&da, p, 1, &r.recs);
        assert_true(want.n > 0);
        char what[64];
        snprintf(what, sizeof(what), "A's partition %d vs C", (int)p);
        dump_equal(&want, &dc, what);
        dump_free(&dc);
        dump_free(&want);
        store_close(c);
    }
    dump_free(&da);
    dump_free(&db);
    recs_free(&r.recs);
    store_close(a);
    store_close(b);
    stream_free(&st);
}

/* ---- (3): dropping a partition ----------------------------------------------- */

static void put_key(struct fx *f, struct engine_store *ops, int i, int32_t p, int64_t t);

/* Besides the changelog: another topic's offset on partition 1, changelog
 * offsets of partitions 0 and 1, and keys of partitions 1 and 0 without an
 * expiry entry (no time). */
static void extras(struct fx *f, struct store *s) {
    struct engine_store ops;
    store_engine_ops(s, &ops);
    begin(f, s);
    assert_int_equal(store_offset_put(s, "other", 1, 7, f->err, sizeof(f->err)), STORE_OK);
    assert_int_equal(store_changelog_put(s, 0, 11, f->err, sizeof(f->err)), STORE_OK);
    assert_int_equal(store_changelog_put(s, 1, 12, f->err, sizeof(f->err)), STORE_OK);
    put_key(f, &ops, 1, 1, ENG_NO_TIME);
    put_key(f, &ops, 2, 0, ENG_NO_TIME);
    commit(f, s);
}

static void test_partition_drop(void **state) {
    struct fx *f = *state;
    struct stream st;
    struct run r;
    struct recs tomb = {0};
    uint64_t removed = 0;
    int64_t off;
    make_stream(&st);
    struct store *a = open_new(f);
    drive(f, a, &st, 1, &r);
    extras(f, a);
    struct dump da = take(f, a);
    struct dump want = filter(&da, 1, 0, NULL);   /* everything not of partition 1 (-1 kept) */
    /* Two copies of A: the changelog applied to empty stores, and the extras. */
    struct store *c = open_new(f), *e = open_new(f);
    apply_recs(f, c, &r.recs, -1);
    apply_recs(f, e, &r.recs, -1);
    extras(f, c);
    extras(f, e);
    struct dump dc = take(f, c);
    dump_equal(&da, &dc, "A vs its copy");
    dump_free(&dc);
    /* Drop partition 1 on C with capture on. */
    store_capture(c, 1);
    begin(f, c);
    store_capture_partition(c, 2);  /* drop notes its own partition */
    assert_int_equal(store_partition_drop(c, 1, &removed, f->err, sizeof(f->err)), STORE_OK);
    scan(f, c, &tomb);
    commit(f, c);
    store_capture(c, 0);
    dc = take(f, c);
    dump_equal(&want, &dc, "A without partition 1 vs C after the drop");
    assert_int_equal(removed, da.n - want.n);
    assert_int_equal(tomb.n, removed);
    for (size_t i = 0; i < tomb.n; i++) {
        assert_int_equal(tomb.r[i].part, 1);
        assert_null(tomb.r[i].v);
    }
    assert_int_equal(store_changelog_get(c, 1, &off, f->err, sizeof(f->err)), STORE_NOTFOUND);
    assert_int_equal(store_changelog_get(c, 0, &off, f->err, sizeof(f->err)), STORE_OK);
    assert_int_equal(off, 11);
    /* The tombstones take another copy to the same state. */
    apply_recs(f, e, &tomb, -1);
    struct dump de = take(f, e);
    dump_equal(&want, &de, "A without partition 1 vs E after the tombstones");
    /* Dropping again removes nothing. */
    begin(f, c);
    assert_int_equal(store_partition_drop(c, 1, &removed, f->err, sizeof(f->err)), STORE_OK);
    commit(f, c);
    assert_int_equal(removed, 0);
    dump_free(&da);
    dump_free(&dc);
    dump_free(&de);
    dump_free(&want);
    recs_free(&r.recs);
    recs_free(&tomb);
    store_close(a);
    store_close(c);
    store_close(e);
    stream_free(&st);
}

/* ---- (4): bad records ------------------------------------------------------------ */

struct bad { const char *key; size_t kl; const char *val; size_t vl; const char *what; };

static void test_bad_records(void **state) {
    struct fx *f = *state;
    struct store *s = open_new(f);
    char big[600];
    memset(big, 'a', sizeof(big));
    big[0] = 'o';
    static const char v6[] = "\x06";
    const struct bad cases[] = {
        {"o", 1, v6, 1, "key of 1 bytes"},
        {"zorg", 4, v6, 1, "unknown database code 0x7a"},
        {big, STORE_CHANGE_KEY_MAX + 1, v6, 1, "key of 494 bytes"},
        {big, 202, v6, 1, "db orgs key \"aaaa"},
        {big, 202, v6, 1, "id of more than 200 bytes"},
        {"oo\0g", 4, v6, 1, "NUL"},
        /* the codes of the databases format 6 merged into orgs and project_credits */
        {"sorg", 4, "\x05", 1, "database code 's' (sequences) is retired since store format 6"},
        {"corg", 4, "\x05", 1, "database code 'c' (org_credits) is retired since store format 6"},
        {"morg\0", 5, NULL, 0, "database code 'm' (months) is retired since store format 6"},
        {"k\0\0\1", 4, v6, 1, "partitions key not of 4 bytes"},
        {"k\x80\0\0\1", 5, v6, 1, "negative partition"},
        {"i\0\0\0\1", 5, v6, 1, "org_partition key of fewer than 5 bytes"},
        {"x\0\0\0\1\0\0\0\0\0\0\0\0", 13, NULL, 0, "dedupe_expiry key not of 13..492 bytes"},
        {"fin\0\0\0", 6, v6, 1, "offsets key not of 6..205 bytes"},
        {"finn\0\0\0\0", 8, v6, 1, "offsets key is not topic \\0 partition"},
        {"porg", 4, v6, 1, "no NUL between org and project"},
        {"porg\0", 5, v6, 1, "empty id"},
        {"o1", 2, "", 0, "empty value"},
        {"o1", 2, "\x04\0\0\0\0", 5, "format version 4, this build reads 6"},
        {"o1", 2, "\x05\1\0\0\0", 5, "format version 5, this build reads 6"},
        {"o1", 2, "\x06\1\0", 3, "db orgs key \"1\": value: "},
        {"porg\0p", 6, "\x06\0\0", 3, "value: a project record with neither a credit nor months"},
        {"porg\0p", 6, "\x06\2\0", 3, "value: credit flag 2 (0..1)"},
        {"i\0\0\0\1o1", 7, "\x06\x06", 2, "value of 2 bytes"},
        {"d1", 2, "\x06garbage", 8, "db dedupe key"},
        {"k\0\0\0\1", 5, "\x06\1", 2, "db partitions key partition 1: value: "},
    };
    struct dump before = take(f, s);
    begin(f, s);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct bad *c = &cases[i];
        f->err[0] = 0;
        int rc = store_change_apply(s, (const uint8_t *)c->key, c->kl, (const uint8_t *)c->val,
                                    c->vl, f->err, sizeof(f->err));
        if (rc != STORE_ERR || !strstr(f->err, "changelog record: ") || !strstr(f->err, c->what))
            fail_msg("case %zu: rc %d, err \"%s\", want STORE_ERR naming \"%s\"", i, rc, f->err,
                     c->what);
    }
    assert_int_equal(store_change_apply(s, NULL, 0, NULL, 0, f->err, sizeof(f->err)), STORE_ERR);
    /* Good ones: a removal of a missing record, an index entry. */
    assert_int_equal(store_change_apply(s, (const uint8_t *)"oabc", 4, NULL, 0, f->err,
                                        sizeof(f->err)), STORE_OK);
    assert_int_equal(store_change_apply(s, (const uint8_t *)"i\0\0\0\1o1", 7,
                                        (const uint8_t *)v6, 1, f->err, sizeof(f->err)), STORE_OK);
    commit(f, s);
    struct dump after = take(f, s);
    assert_int_equal(after.n, before.n + 1);
    assert_int_equal(after.per_db[db_index("org_partition")], 1);
    dump_free(&before);
    dump_free(&after);
    store_close(s);
}

/* ---- (5), (6): capture off, aborted batches, leftovers ------------------------ */

static uint64_t entries(struct fx *f, struct store *s, const char *db) {
    struct store_stats stt;
    assert_int_equal(store_stats(s, &stt, f->err, sizeof(f->err)), STORE_OK);
    for (int i = 0; i < stt.ndb; i++)
        if (strcmp(stt.db[i].name, db) == 0) return stt.db[i].entries;
    fail_msg("no db %s", db);
    return 0;
}

/* A store driven with capture off holds the same state as one with it on,
 * notes nothing, and a scan yields nothing. */
static void test_capture_off(void **state) {
    struct fx *f = *state;
    struct stream st;
    struct run on, off;
    struct recs l = {0};
    make_stream(&st);
    struct store *a = open_new(f), *b = open_new(f);
    drive(f, a, &st, 1, &on);
    drive(f, b, &st, 0, &off);
    assert_int_equal(off.recs.n, 0);
    assert_memory_equal(on.outcomes, off.outcomes, sizeof(on.outcomes));
    assert_true(off.swept > 0);
    struct dump da = take(f, a), dbb = take(f, b);
    dump_equal(&da, &dbb, "capture on vs off");
    assert_int_equal(entries(f, b, "changes"), 0);
    begin(f, b);
    store_capture_partition(b, 0);
    assert_int_equal(store_offset_put(b, TOPIC, 0, 1000, f->err, sizeof(f->err)), STORE_OK);
    assert_int_equal(entries(f, b, "changes"), 0);
    scan(f, b, &l);
    commit(f, b);
    assert_int_equal(l.n, 0);
    dump_free(&da);
    dump_free(&dbb);
    recs_free(&on.recs);
    store_close(a);
    store_close(b);
    stream_free(&st);
}

static void test_abort_forgets(void **state) {
    struct fx *f = *state;
    struct recs l = {0};
    struct store *s = open_new(f);
    store_capture(s, 1);
    begin(f, s);
    store_capture_partition(s, 2);
    assert_int_equal(store_offset_put(s, TOPIC, 2, 5, f->err, sizeof(f->err)), STORE_OK);
    assert_int_equal(entries(f, s, "changes"), 1);
    store_abort(s);
    assert_int_equal(entries(f, s, "changes"), 0);
    begin(f, s);
    scan(f, s, &l);
    assert_int_equal(l.n, 0);
    /* A batch committed without a scan: its notes come with the next scan,
     * each record once, with its value at the scan. */
    assert_int_equal(store_offset_put(s, TOPIC, 2, 6, f->err, sizeof(f->err)), STORE_OK);
    commit(f, s);
    begin(f, s);
    assert_int_equal(store_offset_put(s, TOPIC, 2, 7, f->err, sizeof(f->err)), STORE_OK);
    assert_int_equal(store_offset_put(s, TOPIC, 1, 3, f->err, sizeof(f->err)), STORE_OK);
    scan(f, s, &l);
    commit(f, s);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.r[0].part, 1);  /* ordered by partition, key */
    assert_int_equal(l.r[1].part, 2);
    assert_int_equal(l.r[1].k[0], STORE_CL_OFFSETS);
    assert_int_equal(l.r[1].vl, 9);
    assert_int_equal(l.r[1].v[1], 7);  /* i64 little-endian after the version byte */
    assert_int_equal(entries(f, s, "changes"), 0);
    recs_free(&l);
    store_capture(s, 0);
    store_close(s);
}

static int stop_cb(void *arg, int32_t part, const uint8_t *k, size_t kl, const uint8_t *v,
                   size_t vl) {
    (void)arg; (void)part; (void)k; (void)kl; (void)v; (void)vl;
    return 42;
}

static void test_scan_stopped(void **state) {
    struct fx *f = *state;
    struct recs l = {0};
    struct store *s = open_new(f);
    store_capture(s, 1);
    begin(f, s);
    assert_int_equal(store_offset_put(s, TOPIC, 0, 1, f->err, sizeof(f->err)), STORE_OK);
    assert_int_equal(store_changes_scan(s, stop_cb, NULL, f->err, sizeof(f->err)), 42);
    scan(f, s, &l);
    assert_int_equal(l.n, 1);
    commit(f, s);
    store_capture(s, 0);
    recs_free(&l);
    store_close(s);
}

/* ---- sweeps limited to partitions ------------------------------------------------ */

static void put_key(struct fx *f, struct engine_store *ops, int i, int32_t p, int64_t t) {
    char k[32];
    int n = snprintf(k, sizeof(k), "ok%06d", i);
    struct eng_dedupe d = {.hash = (uint64_t)i, .partition = p, .time = t};
    assert_int_equal(ops->dedupe_put(ops->ctx, (const uint8_t *)k, (size_t)n, &d, f->err,
                                     sizeof(f->err)), ENG_OK);
}

static void test_sweep_only(void **state) {
    struct fx *f = *state;
    const int64_t day = INT64_C(86400000000000), t0 = BASE_S * INT64_C(1000000000);
    struct engine_store ops;
    struct recs l = {0};
    struct store *s = open_new(f);
    const int32_t none[1] = {0}, only[2] = {2, 0};
    store_engine_ops(s, &ops);
    /* parts not NULL, n 0: no partition; the commit's own sweep obeys too. */
    assert_int_equal(store_sweep_only(s, none, 0, f->err, sizeof(f->err)), STORE_OK);
    begin(f, s);
    for (int32_t p = 0; p < 3; p++) {
        store_capture_partition(s, p);
        for (int i = 0; i < 5; i++) put_key(f, &ops, 100 * p + i, p, t0);
        assert_int_equal(ops.clock_put(ops.ctx, p, t0 + 10 * day, f->err, sizeof(f->err)), ENG_OK);
    }
    commit(f, s);
    assert_int_equal(store_last_removed(s), 0);
    assert_int_equal(entries(f, s, "dedupe"), 15);
    /* partitions 2 and 0, captured as theirs */
    assert_int_equal(store_sweep_only(s, only, 2, f->err, sizeof(f->err)), STORE_OK);
    store_capture(s, 1);
    begin(f, s);
    store_capture_partition(s, 1);
    assert_int_equal(store_sweep(s, f->err, sizeof(f->err)), STORE_OK);
    scan(f, s, &l);
    commit(f, s);
    assert_int_equal(store_last_removed(s), 10);
    assert_int_equal(l.n, 20);  /* 10 dedupe records and their 10 expiry entries */
    for (size_t i = 0; i < l.n; i++) {
        assert_null(l.r[i].v);
        assert_true(l.r[i].part == 0 || l.r[i].part == 2);
        assert_true(l.r[i].k[0] == STORE_CL_DEDUPE || l.r[i].k[0] == STORE_CL_DDEXP);
    }
    assert_int_equal(entries(f, s, "dedupe"), 5);
    /* store_sweep then store_commit: the commit does not sweep again. */
    assert_int_equal(store_sweep_only(s, NULL, 0, f->err, sizeof(f->err)), STORE_OK);
    begin(f, s);
    assert_int_equal(store_sweep_only(s, only, 1, f->err, sizeof(f->err)), STORE_OK);
    assert_int_equal(store_sweep(s, f->err, sizeof(f->err)), STORE_OK);
    assert_int_equal(store_sweep_only(s, NULL, 0, f->err, sizeof(f->err)), STORE_OK);
    commit(f, s);
    assert_int_equal(store_last_removed(s), 0);
    assert_int_equal(entries(f, s, "dedupe"), 5);
    begin(f, s);
    scan(f, s, &l);
    commit(f, s);  /* the default again: every partition */
    assert_int_equal(store_last_removed(s), 5);
    assert_int_equal(entries(f, s, "dedupe"), 0);
    assert_int_equal(entries(f, s, "changes"), 10);  /* the commit's sweep: for the next scan */
    store_capture(s, 0);
    recs_free(&l);
    store_close(s);
}

/* A txn that applies changelog records does not sweep at commit (its
 * removals could not be captured); the next ordinary batch does. */
static void test_apply_no_sweep(void **state) {
    struct fx *f = *state;
    const int64_t day = INT64_C(86400000000000), t0 = BASE_S * INT64_C(1000000000);
    const int32_t none[1] = {0};
    struct engine_store ops;
    struct recs l = {0};
    struct store *a = open_new(f), *b = open_new(f);
    store_engine_ops(a, &ops);
    assert_int_equal(store_sweep_only(a, none, 0, f->err, sizeof(f->err)), STORE_OK);
    store_capture(a, 1);
    begin(f, a);
    store_capture_partition(a, 0);
    for (int i = 0; i < 5; i++) put_key(f, &ops, i, 0, t0);
    assert_int_equal(ops.clock_put(ops.ctx, 0, t0 + 10 * day, f->err, sizeof(f->err)), ENG_OK);
    assert_int_equal(store_sweep(a, f->err, sizeof(f->err)), STORE_OK);
    scan(f, a, &l);
    commit(f, a);
    assert_int_equal(store_last_removed(a), 0);
    assert_int_equal(l.n, 11);  /* 5 keys, 5 expiry entries, the clock */
    apply_recs(f, b, &l, -1);
    assert_int_equal(store_last_removed(b), 0);
    assert_int_equal(entries(f, b, "dedupe"), 5);
    begin(f, b);
    commit(f, b);
    assert_int_equal(store_last_removed(b), 5);
    store_capture(a, 0);
    recs_free(&l);
    store_close(a);
    store_close(b);
}

/* ---- changelog offsets, older stores ------------------------------------------- */

static void test_changelog_offsets(void **state) {
    struct fx *f = *state;
    struct recs l = {0};
    int64_t off = -1;
    struct store *s = open_named(f, "cl");
    assert_int_equal(store_changelog_get(s, 3, &off, f->err, sizeof(f->err)), STORE_NOTFOUND);
    store_capture(s, 1);
    begin(f, s);
    store_capture_partition(s, 3);
    assert_int_equal(store_changelog_put(s, 3, 77, f->err, sizeof(f->err)), STORE_OK);
    assert_int_equal(store_changelog_get(s, 3, &off, f->err, sizeof(f->err)), STORE_OK);
    assert_int_equal(off, 77);
    scan(f, s, &l);
    assert_int_equal(l.n, 0);  /* not captured */
    commit(f, s);
    store_capture(s, 0);
    off = -1;
    assert_int_equal(store_changelog_get(s, 3, &off, f->err, sizeof(f->err)), STORE_OK);
    assert_int_equal(off, 77);
    store_close(s);
    /* A store made before the changes and changelog databases (removed here
     * with LMDB itself) opens read-only as it is, and a writer adds them. */
    char path[128];
    MDB_env *env;
    MDB_txn *t;
    MDB_dbi dbi;
    snprintf(path, sizeof(path), "%s/cl", f->dir);
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 32), 0);
    assert_int_equal(mdb_env_open(env, path, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &t), 0);
    assert_int_equal(mdb_dbi_open(t, "changes", 0, &dbi), 0);
    assert_int_equal(mdb_drop(t, dbi, 1), 0);
    assert_int_equal(mdb_dbi_open(t, "changelog", 0, &dbi), 0);
    assert_int_equal(mdb_drop(t, dbi, 1), 0);
    assert_int_equal(mdb_txn_commit(t), 0);
    mdb_env_close(env);
    struct store_opts ro = {.path = path, .readonly = 1};
    struct store *r = NULL;
    if (store_open(&r, &ro, f->err, sizeof(f->err))) fail_msg("read-only open: %s", f->err);
    assert_int_equal(entries(f, r, "changelog"), 0);
    assert_int_equal(entries(f, r, "changes"), 0);
    assert_int_equal(store_changelog_get(r, 3, &off, f->err, sizeof(f->err)), STORE_NOTFOUND);
    struct dump d = take(f, r);
    dump_free(&d);
    store_close(r);
    s = open_named(f, "cl");
    assert_int_equal(store_changelog_get(s, 3, &off, f->err, sizeof(f->err)), STORE_NOTFOUND);
    begin(f, s);
    assert_int_equal(store_changelog_put(s, 3, 78, f->err, sizeof(f->err)), STORE_OK);
    commit(f, s);
    assert_int_equal(entries(f, s, "changelog"), 1);
    store_close(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_replay_equals_source, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partition_drop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capture_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort_forgets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan_stopped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_no_sweep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_changelog_offsets, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
