/* test_store.c -- unit tests of the LMDB store (store/store.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lmdb.h>  /* only to forge corrupt records behind the store's back */

#include "engine/engine.h"
#include "engine/state.h"
#include "store/store.h"
#include "tests/unit/tmpdir.h"

#define CUR "EUR"

struct fx {
    char dir[64];       /* mkdtemp dir */
    char path[96];      /* store dir inside it (created by store_open) */
    struct store *s;
    struct engine_store ops;
    char err[512];
};

/* ---- helpers ------------------------------------------------------------ */


static int open_store(struct fx *f, size_t map, int64_t close_after, const char *cur, int ro,
                      struct store **out) {
    struct store_opts o = { .path = f->path, .readonly = ro, .map_size = map, .nosync = 1,
                            .close_after_s = close_after, .currency = cur };
    f->err[0] = 0;
    return store_open(out, &o, f->err, sizeof(f->err));
}

static void reopen(struct fx *f, size_t map) {
    store_close(f->s);
    f->s = NULL;
    assert_int_equal(open_store(f, map, 0, CUR, 0, &f->s), STORE_OK);
    store_engine_ops(f->s, &f->ops);
}

static int setup_map(void **state, size_t map) {
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    strcpy(f->dir, "/tmp/test_store.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/db", f->dir);
    assert_int_equal(open_store(f, map, 0, CUR, 0, &f->s), STORE_OK);
    store_engine_ops(f->s, &f->ops);
    *state = f;
    return 0;
}
static int setup(void **state) { return setup_map(state, 0); }
static int setup_small(void **state) { return setup_map(state, 256 * 1024); }

static int teardown(void **state) {
    struct fx *f = *state;
    store_close(f->s);
    tmpdir_rm(f->dir);
    free(f);
    return 0;
}

static void begin(struct fx *f) { assert_int_equal(store_begin(f->s, f->err, sizeof(f->err)), STORE_OK); }
static void commit(struct fx *f) { assert_int_equal(store_commit(f->s, f->err, sizeof(f->err)), STORE_OK); }

static void put_org(struct fx *f, const struct eng_org *o) {
    begin(f);
    assert_int_equal(f->ops.org_put(f->ops.ctx, o, f->err, sizeof(f->err)), ENG_OK);
    commit(f);
}

/* Load through the engine ops (inside a write txn that is then aborted). */
/* The org and all its projects, as the engine sees them after a close
 * (org_get loads no project; projects_get loads them all). */
static int get_org(struct fx *f, const char *id, struct eng_org *out) {
    struct eng_org all;
    begin(f);
    int rc = f->ops.org_get(f->ops.ctx, id, out, f->err, sizeof(f->err));
    if (rc == ENG_OK) assert_int_equal(out->nproj, 0);
    eng_org_init(&all);
    if (rc == ENG_OK) rc = f->ops.projects_get(f->ops.ctx, id, &all, f->err, sizeof(f->err));
    if (rc == ENG_OK) {
        assert_int_equal(eng_org_merge_projects(out, &all), 0);
        out->all_projects = 1;
    }
    eng_org_free(&all);
    store_abort(f->s);
    return rc;
}

static void set_terms(struct eng_terms *t, int k) {
    t->logic = (uint8_t)(k & 1);
    t->grace = (uint8_t)(10 + k);
    t->apply_min = (uint8_t)(k & 1);
    t->reserve = (uint8_t)((k >> 1) & 1);
    t->use_org_credit = (uint8_t)(!(k & 1));
    t->mark_unused = 1;
    t->end_month = 24312 + k;
    t->expected = 1000000 * k + 7;
}

static void set_acct(struct eng_acct *a, int *n, int cnt, int64_t base) {
    *n = cnt;
    for (int i = 0; i < cnt; i++) {
        a[i].month = 24300 + i;
        a[i].consumed = base + i * 1111 - 5;  /* may be negative */
        a[i].overage = (uint8_t)(i & 1);
    }
}

/* Alert state: thresholds 20, 50 and 99 (50 armed unless k is odd). */
static void set_alerts(struct eng_alerts *a, int k) {
    a->thr[0] = UINT64_C(1) << 20 | UINT64_C(1) << 50;
    a->thr[1] = UINT64_C(1) << (99 - 64);
    a->armed[0] = k & 1 ? UINT64_C(1) << 20 : UINT64_C(1) << 50;
    a->armed[1] = a->thr[1];
    a->reference = INT64_C(1000000000) + k;
    a->exhausted = (uint8_t)(k & 1);
}

/* A full org: credit, terms, offerings, months, projects a0 (credit only),
 * p1 (credit + months), p2 (months only).  Everything dirty. */
static void make_org(struct eng_org *o, const char *id, int32_t part, int k) {
    eng_org_init(o);
    strcpy(o->id, id);
    o->partition = part;
    o->watermark = INT64_C(1767225600000000000) + k;
    o->open_month = 24312 + k;
    o->seq[0] = 7 + (uint64_t)k;
    o->seq[1] = UINT64_MAX - (uint64_t)k;
    o->alert_seq = 3 + (uint64_t)k;
    set_alerts(&o->al, k);
    o->has_credit = 1;
    o->value = INT64_C(70000000) + k;
    set_terms(&o->terms, k);
    o->noff = 3;
    strcpy(o->off[0], "offering-a");
    strcpy(o->off[1], "offering-b");
    memset(o->off[2], 'z', ENG_ID_MAX);
    o->off[2][ENG_ID_MAX] = 0;
    set_acct(o->acct, &o->nacct, 2, -100 + k);
    struct eng_project *p = eng_org_add_project(o, "p1");
    p->has_credit = 1;
    p->value = 5000000 + k;
    set_terms(&p->terms, k + 1);
    set_alerts(&p->al, k + 1);
    set_acct(p->acct, &p->nacct, ENG_MAX_MONTHS, 42 + k);
    p = eng_org_add_project(o, "p2");
    set_acct(p->acct, &p->nacct, 1, 9 + k);
    p = eng_org_add_project(o, "a0");
    p->has_credit = 1;
    p->value = 0;
    set_terms(&p->terms, k + 2);
    o->alloc_sum = 5000000 + k; /* p1 + a0 */
    o->dirty = ENG_DIRTY_META | ENG_DIRTY_SEQ | ENG_DIRTY_CREDIT | ENG_DIRTY_ACCT;
    for (size_t i = 0; i < o->nproj; i++) o->proj[i].dirty = ENG_DIRTY_CREDIT | ENG_DIRTY_ACCT;
}

static void assert_terms_equal(const struct eng_terms *a, const struct eng_terms *b) {
    assert_int_equal(a->logic, b->logic);
    assert_int_equal(a->grace, b->grace);
    assert_int_equal(a->apply_min, b->apply_min);
    assert_int_equal(a->reserve, b->reserve);
    assert_int_equal(a->use_org_credit, b->use_org_credit);
    assert_int_equal(a->mark_unused, b->mark_unused);
    assert_int_equal(a->end_month, b->end_month);
    assert_int_equal(a->expected, b->expected);
}

static void assert_acct_equal(const struct eng_acct *a, int na, const struct eng_acct *b, int nb) {
    assert_int_equal(na, nb);
    for (int i = 0; i < na; i++) {
        assert_int_equal(a[i].month, b[i].month);
        assert_int_equal(a[i].consumed, b[i].consumed);
        assert_int_equal(a[i].overage, b[i].overage);
    }
}

static void assert_alerts_equal(const struct eng_alerts *a, const struct eng_alerts *b) {
    for (int i = 0; i < 2; i++) {
        assert_int_equal(a->thr[i], b->thr[i]);
        assert_int_equal(a->armed[i], b->armed[i]);
    }
    assert_int_equal(a->reference, b->reference);
    assert_int_equal(a->exhausted, b->exhausted);
}

/* Field-wise equality; `got` must also have all dirty flags cleared. */
static void assert_org_equal(const struct eng_org *got, const struct eng_org *want) {
    assert_string_equal(got->id, want->id);
    assert_int_equal(got->partition, want->partition);
    assert_int_equal(got->watermark, want->watermark);
    assert_int_equal(got->open_month, want->open_month);
    assert_int_equal(got->seq[0], want->seq[0]);
    assert_int_equal(got->seq[1], want->seq[1]);
    assert_int_equal(got->alert_seq, want->alert_seq);
    assert_int_equal(got->has_credit, want->has_credit);
    assert_int_equal(got->value, want->value);
    assert_int_equal(got->alloc_sum, want->has_credit ? want->alloc_sum : 0);
    assert_terms_equal(&got->terms, &want->terms);
    if (want->has_credit) assert_alerts_equal(&got->al, &want->al);
    assert_int_equal(got->noff, want->noff);
    for (int i = 0; i < got->noff; i++) assert_string_equal(got->off[i], want->off[i]);
    assert_acct_equal(got->acct, got->nacct, want->acct, want->nacct);
    assert_int_equal(got->dirty, 0);
    assert_int_equal(got->nproj, want->nproj);
    for (size_t i = 0; i < got->nproj; i++) {
        const struct eng_project *a = &got->proj[i], *b = &want->proj[i];
        assert_string_equal(a->id, b->id);
        assert_int_equal(a->has_credit, b->has_credit);
        assert_int_equal(a->value, b->value);
        assert_terms_equal(&a->terms, &b->terms);
        if (b->has_credit) assert_alerts_equal(&a->al, &b->al);
        assert_acct_equal(a->acct, a->nacct, b->acct, b->nacct);
        assert_int_equal(a->dirty, 0);
    }
}

/* Raw dump of every DB, to compare whole-store states. */
struct dump { unsigned char *buf; size_t len, cap; size_t records; };

static void dump_add(struct dump *d, const void *p, size_t n) {
    if (d->len + n > d->cap) {
        d->cap = (d->len + n) * 2 + 4096;
        d->buf = realloc(d->buf, d->cap);
        assert_non_null(d->buf);
    }
    memcpy(d->buf + d->len, p, n);
    d->len += n;
}
static int dump_cb(void *arg, const char *db, const void *k, size_t kl, const void *v, size_t vl) {
    struct dump *d = arg;
    dump_add(d, db, strlen(db) + 1);
    dump_add(d, &kl, sizeof(kl));
    dump_add(d, k, kl);
    dump_add(d, &vl, sizeof(vl));
    dump_add(d, v, vl);
    d->records++;
    return 0;
}
static struct dump take_dump(struct fx *f) {
    struct dump d = { 0 };
    assert_int_equal(store_dump(f->s, dump_cb, &d, f->err, sizeof(f->err)), STORE_OK);
    return d;
}
static void assert_dump_equal(const struct dump *a, const struct dump *b) {
    assert_int_equal(a->records, b->records);
    assert_int_equal(a->len, b->len);
    assert_memory_equal(a->buf, b->buf, a->len);
}

/* ---- org state ---------------------------------------------------------- */

static void test_roundtrip(void **state) {
    struct fx *f = *state;
    struct eng_org o, got;
    make_org(&o, "org-1", 3, 1);
    put_org(f, &o);
    /* projects come back sorted: a0, p1, p2; p2 has months only */
    eng_org_init(&got);
    assert_int_equal(get_org(f, "org-1", &got), ENG_OK);
    assert_org_equal(&got, &o);
    assert_string_equal(got.proj[0].id, "a0");
    assert_int_equal(got.proj[2].has_credit, 0);
    assert_int_equal(got.proj[2].nacct, 1);
    /* a reused struct with stale projects is fully replaced */
    assert_non_null(eng_org_add_project(&got, "stale"));
    got.dirty = ENG_DIRTY_META;
    assert_int_equal(store_get_org(f->s, "org-1", &got, f->err, sizeof(f->err)), STORE_OK);
    assert_org_equal(&got, &o);
    /* survives a reopen */
    reopen(f, 0);
    assert_int_equal(get_org(f, "org-1", &got), ENG_OK);
    assert_org_equal(&got, &o);
    assert_int_equal(get_org(f, "org-2", &got), ENG_NOTFOUND);
    assert_int_equal(store_get_org(f->s, "org-", &got, f->err, sizeof(f->err)), STORE_NOTFOUND);
    eng_org_free(&got);
    eng_org_free(&o);
}

/* Orgs whose ids are prefixes of each other don't see each other's records. */
static void test_prefix_orgs(void **state) {
    struct fx *f = *state;
    struct eng_org a, ab, got;
    make_org(&a, "a", 0, 1);
    make_org(&ab, "ab", 0, 2);
    struct eng_project *p = eng_org_add_project(&ab, "only-ab");
    assert_non_null(p);
    p->dirty = ENG_DIRTY_ACCT;
    set_acct(p->acct, &p->nacct, 1, 5);
    a.nacct = 0;  /* "a" has no own months, "ab" does */
    put_org(f, &ab);
    put_org(f, &a);
    eng_org_init(&got);
    assert_int_equal(get_org(f, "a", &got), ENG_OK);
    assert_org_equal(&got, &a);
    assert_int_equal(get_org(f, "ab", &got), ENG_OK);
    assert_org_equal(&got, &ab);
    eng_org_free(&got);
    eng_org_free(&a);
    eng_org_free(&ab);
}

/* Only the dirty parts are written. */
/* The org-level fields of src into dst (its projects stay). */
static void copy_head(struct eng_org *dst, const struct eng_org *src) {
    dst->partition = src->partition;
    dst->watermark = src->watermark;
    dst->open_month = src->open_month;
    memcpy(dst->seq, src->seq, sizeof(dst->seq));
    dst->alert_seq = src->alert_seq;
    dst->credit_seq = src->credit_seq;
    dst->has_credit = src->has_credit;
    dst->value = src->value;
    dst->alloc_sum = src->alloc_sum;
    dst->terms = src->terms;
    dst->al = src->al;
    dst->serial = src->serial;
    dst->noff = src->noff;
    memcpy(dst->off, src->off, sizeof(dst->off));
    dst->nacct = src->nacct;
    memcpy(dst->acct, src->acct, sizeof(dst->acct));
}

/* Format 6: an org is one record, a project one record.  Nothing dirty
 * writes nothing; any dirty part of the org rewrites the org's record whole
 * (its projects untouched), any dirty part of a project that project's
 * record whole (the org's and the other projects' untouched). */
static void test_dirty_only(void **state) {
    struct fx *f = *state;
    struct eng_org base, mod, want, got;
    static const unsigned bits[] = { ENG_DIRTY_SEQ, ENG_DIRTY_META, ENG_DIRTY_CREDIT, ENG_DIRTY_ACCT };
    eng_org_init(&want);
    eng_org_init(&got);
    for (size_t b = 0; b < sizeof(bits) / sizeof(bits[0]); b++) {
        make_org(&base, "org", 1, 1);
        put_org(f, &base);
        make_org(&mod, "org", 1, 5);   /* every value differs from base */
        eng_org_free(&want);
        eng_org_init(&want);
        assert_int_equal(eng_org_copy(&want, &base), 0);

        mod.dirty = 0;  /* nothing dirty: nothing written */
        for (size_t i = 0; i < mod.nproj; i++) mod.proj[i].dirty = 0;
        struct dump before = take_dump(f);
        put_org(f, &mod);
        struct dump after = take_dump(f);
        assert_dump_equal(&before, &after);
        free(before.buf);
        free(after.buf);

        mod.dirty = bits[b];  /* one part dirty: the whole org record */
        put_org(f, &mod);
        copy_head(&want, &mod);
        assert_int_equal(get_org(f, "org", &got), ENG_OK);
        assert_org_equal(&got, &want);
        assert_int_not_equal(got.watermark, base.watermark);
        assert_int_not_equal(got.proj[1].value, mod.proj[1].value);  /* projects untouched */

        /* project p1, one part dirty: its whole record; the org's is clean */
        mod.dirty = 0;
        mod.watermark++;  /* not written */
        struct eng_project *mp = eng_org_find_project(&mod, "p1"), *wp = eng_org_find_project(&want, "p1");
        mp->dirty = bits[b] == ENG_DIRTY_ACCT ? ENG_DIRTY_ACCT : ENG_DIRTY_CREDIT;
        put_org(f, &mod);
        *wp = *mp;
        wp->dirty = 0;
        assert_int_equal(get_org(f, "org", &got), ENG_OK);
        assert_org_equal(&got, &want);
        assert_int_not_equal(base.proj[1].value, got.proj[1].value);  /* the test changed something */
        assert_int_not_equal(base.proj[1].acct[0].consumed, got.proj[1].acct[0].consumed);
        assert_int_equal(got.watermark, mod.watermark - 1);
        eng_org_free(&base);
        eng_org_free(&mod);
    }
    eng_org_free(&want);
    eng_org_free(&got);
}

static void test_deletes(void **state) {
    struct fx *f = *state;
    struct eng_org o, got;
    make_org(&o, "org", 2, 1);
    put_org(f, &o);
    eng_org_init(&got);

    /* org credit and own months deleted; p1 loses both records and vanishes;
     * p2 keeps months (loaded without credit); never-stored project deletes are fine */
    o.dirty = ENG_DIRTY_CREDIT | ENG_DIRTY_ACCT;
    o.has_credit = 0;
    o.nacct = 0;
    struct eng_project *p1 = eng_org_find_project(&o, "p1");
    p1->has_credit = 0;
    p1->nacct = 0;
    p1->dirty = ENG_DIRTY_CREDIT | ENG_DIRTY_ACCT;
    eng_org_find_project(&o, "p2")->dirty = 0;
    eng_org_find_project(&o, "a0")->dirty = 0;
    eng_org_add_project(&o, "ghost")->dirty = ENG_DIRTY_CREDIT | ENG_DIRTY_ACCT;
    put_org(f, &o);

    assert_int_equal(get_org(f, "org", &got), ENG_OK);
    assert_int_equal(got.has_credit, 0);
    assert_int_equal(got.value, 0);
    assert_int_equal(got.noff, 0);
    assert_int_equal(got.nacct, 0);
    assert_int_equal(got.seq[0], o.seq[0]);  /* untouched */
    assert_int_equal(got.nproj, 2);
    assert_string_equal(got.proj[0].id, "a0");
    assert_string_equal(got.proj[1].id, "p2");
    assert_int_equal(got.proj[1].has_credit, 0);
    assert_int_equal(got.proj[1].nacct, 1);

    /* p2's months go too: no projects left */
    struct eng_project *p2 = eng_org_find_project(&o, "p2");
    p2->nacct = 0;
    p2->dirty = ENG_DIRTY_ACCT;
    eng_org_find_project(&o, "a0")->has_credit = 0;
    eng_org_find_project(&o, "a0")->dirty = ENG_DIRTY_CREDIT;
    o.dirty = 0;
    put_org(f, &o);
    assert_int_equal(get_org(f, "org", &got), ENG_OK);
    assert_int_equal(got.nproj, 0);
    struct store_stats st;
    assert_int_equal(store_stats(f->s, &st, f->err, sizeof(f->err)), STORE_OK);
    int seen = 0;
    for (int i = 0; i < st.ndb; i++)
        if (!strcmp(st.db[i].name, "project_credits")) {
            assert_int_equal(st.db[i].entries, 0);
            seen++;
        }
    assert_int_equal(seen, 1);
    eng_org_free(&o);
    eng_org_free(&got);
}

/* ---- partitions, clocks -------------------------------------------------- */

struct visit { struct fx *f; char ids[16][16]; int n; int stop_at; };

static int visit_cb(void *arg, const char *org) {
    struct visit *v = arg;
    struct eng_org o;
    assert_true(v->n < 16);
    strcpy(v->ids[v->n++], org);
    if (v->n == v->stop_at) return 77;
    /* cb may write: bump the watermark */
    eng_org_init(&o);
    assert_int_equal(v->f->ops.org_get(v->f->ops.ctx, org, &o, v->f->err, sizeof(v->f->err)), ENG_OK);
    o.watermark += 1;
    o.dirty = ENG_DIRTY_META;
    int rc = v->f->ops.org_put(v->f->ops.ctx, &o, v->f->err, sizeof(v->f->err));
    eng_org_free(&o);
    return rc;
}

static void put_simple(struct fx *f, const char *id, int32_t part) {
    struct eng_org o;
    eng_org_init(&o);
    strcpy(o.id, id);
    o.partition = part;
    o.watermark = 100;
    o.dirty = ENG_DIRTY_META;
    put_org(f, &o);
}

static void test_orgs_on_partition(void **state) {
    struct fx *f = *state;
    const char *on3[] = { "b", "aa", "c", "a", "b-" };
    for (int i = 0; i < 5; i++) put_simple(f, on3[i], 3);
    put_simple(f, "z", 2);
    put_simple(f, "y", 4);
    put_simple(f, "x", 256 + 3);  /* BE32 key: must not show up on 3 */
    struct visit v = { .f = f, .stop_at = -1 };
    begin(f);
    assert_int_equal(f->ops.orgs_on_partition(f->ops.ctx, 3, visit_cb, &v, f->err, sizeof(f->err)), 0);
    commit(f);
    assert_int_equal(v.n, 5);
    const char *want[] = { "a", "aa", "b", "b-", "c" };
    for (int i = 0; i < 5; i++) assert_string_equal(v.ids[i], want[i]);
    struct eng_org o;
    eng_org_init(&o);
    assert_int_equal(get_org(f, "b-", &o), ENG_OK);
    assert_int_equal(o.watermark, 101);  /* the cb's write landed */
    assert_int_equal(get_org(f, "z", &o), ENG_OK);
    assert_int_equal(o.watermark, 100);

    /* cb's non-zero return stops the walk and is returned */
    struct visit stop = { .f = f, .stop_at = 2 };
    begin(f);
    assert_int_equal(f->ops.orgs_on_partition(f->ops.ctx, 3, visit_cb, &stop, f->err, sizeof(f->err)), 77);
    store_abort(f->s);
    assert_int_equal(stop.n, 2);

    /* moving an org keeps the index right; empty partition visits nothing */
    put_simple(f, "b", 5);
    struct visit v3 = { .f = f, .stop_at = -1 }, v5 = v3, v9 = v3;
    begin(f);
    assert_int_equal(f->ops.orgs_on_partition(f->ops.ctx, 3, visit_cb, &v3, f->err, sizeof(f->err)), 0);
    assert_int_equal(f->ops.orgs_on_partition(f->ops.ctx, 5, visit_cb, &v5, f->err, sizeof(f->err)), 0);
    assert_int_equal(f->ops.orgs_on_partition(f->ops.ctx, 9, visit_cb, &v9, f->err, sizeof(f->err)), 0);
    store_abort(f->s);
    assert_int_equal(v3.n, 4);
    assert_string_equal(v3.ids[2], "b-");
    assert_int_equal(v5.n, 1);
    assert_string_equal(v5.ids[0], "b");
    assert_int_equal(v9.n, 0);
    eng_org_free(&o);
}

static void test_clock(void **state) {
    struct fx *f = *state;
    int64_t ns = 0;
    begin(f);
    assert_int_equal(f->ops.clock_get(f->ops.ctx, 0, &ns, f->err, sizeof(f->err)), ENG_NOTFOUND);
    assert_int_equal(f->ops.clock_put(f->ops.ctx, 0, INT64_C(-5), f->err, sizeof(f->err)), ENG_OK);
    assert_int_equal(f->ops.clock_put(f->ops.ctx, 1, INT64_MAX, f->err, sizeof(f->err)), ENG_OK);
    assert_int_equal(f->ops.clock_get(f->ops.ctx, 0, &ns, f->err, sizeof(f->err)), ENG_OK);
    assert_int_equal(ns, -5);
    commit(f);
    begin(f);
    assert_int_equal(f->ops.clock_put(f->ops.ctx, 0, 12345, f->err, sizeof(f->err)), ENG_OK);
    commit(f);
    begin(f);
    assert_int_equal(f->ops.clock_get(f->ops.ctx, 0, &ns, f->err, sizeof(f->err)), ENG_OK);
    assert_int_equal(ns, 12345);
    assert_int_equal(f->ops.clock_get(f->ops.ctx, 1, &ns, f->err, sizeof(f->err)), ENG_OK);
    assert_int_equal(ns, INT64_MAX);
    assert_int_equal(f->ops.clock_get(f->ops.ctx, 2, &ns, f->err, sizeof(f->err)), ENG_NOTFOUND);
    store_abort(f->s);
}

/* ---- dedupe ---------------------------------------------------------------- */

static void fill_key(uint8_t *k, size_t n, uint8_t seed) {
    for (size_t i = 0; i < n; i++) k[i] = (uint8_t)(seed + i * 7);
}

static int dget(struct fx *f, const uint8_t *k, size_t n, struct eng_dedupe *d) {
    return f->ops.dedupe_get(f->ops.ctx, k, n, d, f->err, sizeof(f->err));
}
static void dput(struct fx *f, const uint8_t *k, size_t n, uint64_t hash, uint8_t rej) {
    struct eng_dedupe d = { .hash = hash, .rejected = rej, .reason = (uint8_t)(rej * 3) };
    assert_int_equal(f->ops.dedupe_put(f->ops.ctx, k, n, &d, f->err, sizeof(f->err)), ENG_OK);
}

static void test_dedupe(void **state) {
    struct fx *f = *state;
    uint8_t a[ENG_DKEY_MAX], b[ENG_DKEY_MAX];
    struct eng_dedupe d;
    const size_t lens[] = { 1, 100, 480, 481, 600, ENG_DKEY_MAX };
    fill_key(a, sizeof(a), 1);
    memcpy(b, a, sizeof(b));
    b[ENG_DKEY_MAX - 1] ^= 0xFF;  /* b shares every byte but the last with a */
    begin(f);
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(dget(f, a, lens[i], &d), ENG_NOTFOUND);
        dput(f, a, lens[i], 1000 + i, (uint8_t)(i & 1));
    }
    commit(f);
    begin(f);
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(dget(f, a, lens[i], &d), ENG_OK);
        assert_int_equal(d.hash, 1000 + i);
        assert_int_equal(d.rejected, i & 1);
        assert_int_equal(d.reason, (i & 1) * 3);
    }
    /* long keys differing only after the 464-byte prefix are distinct */
    assert_int_equal(dget(f, b, ENG_DKEY_MAX, &d), ENG_NOTFOUND);
    dput(f, b, ENG_DKEY_MAX, 9, 0);
    assert_int_equal(dget(f, b, ENG_DKEY_MAX, &d), ENG_OK);
    assert_int_equal(d.hash, 9);
    assert_int_equal(dget(f, a, ENG_DKEY_MAX, &d), ENG_OK);
    assert_int_equal(d.hash, 1005);
    commit(f);
}

/* A raw 480-byte key equal to a long key's LMDB key is never taken as a match. */
static void test_dedupe_collision(void **state) {
    struct fx *f = *state;
    uint8_t lk[600], raw[STORE_DKEY_RAW_MAX];
    struct eng_dedupe d = { .hash = 0xdead };
    fill_key(lk, sizeof(lk), 3);
    size_t rl = store_dedupe_dbkey(lk, sizeof(lk), raw);
    assert_int_equal(rl, STORE_DKEY_RAW_MAX);
    assert_memory_equal(raw, lk, STORE_DKEY_PREFIX);
    assert_memory_not_equal(raw + STORE_DKEY_PREFIX, lk + STORE_DKEY_PREFIX, 16);

    begin(f);
    dput(f, raw, rl, 1, 0);          /* stored as a raw key */
    assert_int_equal(dget(f, lk, sizeof(lk), &d), ENG_ESTORE);
    assert_non_null(strstr(f->err, "collides"));
    assert_int_equal(d.hash, 0xdead);  /* out untouched */
    store_abort(f->s);

    begin(f);
    dput(f, lk, sizeof(lk), 2, 0);   /* stored hashed, with the full key */
    f->err[0] = 0;
    assert_int_equal(dget(f, raw, rl, &d), ENG_ESTORE);
    assert_non_null(strstr(f->err, "collides"));
    assert_int_equal(dget(f, lk, sizeof(lk), &d), ENG_OK);
    assert_int_equal(d.hash, 2);
    store_abort(f->s);
}

/* ---- outbox ---------------------------------------------------------------- */

struct seen { uint64_t seq[16]; int kind[16]; char key[16][32]; char json[16][64]; size_t len[16]; int n, stop; };

static int seen_cb(void *arg, uint64_t seq, enum eng_out_kind kind, const char *key,
                   const char *json, size_t len) {
    struct seen *s = arg;
    assert_true(s->n < 16 && len < 64);
    s->seq[s->n] = seq;
    s->kind[s->n] = (int)kind;
    strcpy(s->key[s->n], key ? key : "(null)");
    memcpy(s->json[s->n], json, len);
    s->json[s->n][len] = 0;
    assert_int_equal(json[len], 0);
    s->len[s->n] = len;
    s->n++;
    return s->n == s->stop ? 5 : 0;
}

static int emit(struct fx *f, enum eng_out_kind k, const char *key, const char *json) {
    return f->ops.emit(f->ops.ctx, k, key, json, strlen(json), f->err, sizeof(f->err));
}

static struct seen scan(struct fx *f, uint64_t after, int stop) {
    struct seen s = { .stop = stop };
    int rc = store_outbox_scan(f->s, after, seen_cb, &s, f->err, sizeof(f->err));
    assert_int_equal(rc, stop > 0 && s.n == stop ? 5 : 0);
    return s;
}

static uint64_t outbox_count(struct fx *f) {
    uint64_t n = UINT64_MAX;
    assert_int_equal(store_outbox_count(f->s, &n, f->err, sizeof(f->err)), STORE_OK);
    return n;
}

static uint64_t last_seq(struct fx *f) {
    uint64_t seq = UINT64_MAX;
    assert_int_equal(store_outbox_last_seq(f->s, &seq, f->err, sizeof(f->err)), STORE_OK);
    return seq;
}

static void test_outbox(void **state) {
    struct fx *f = *state;
    struct seen s = scan(f, 0, 0);
    assert_int_equal(s.n, 0);
    begin(f);
    assert_int_equal(last_seq(f), 0);
    assert_int_equal(emit(f, ENG_OUT_OVERAGE, "org-1", "{\"a\":1}"), ENG_OK);
    assert_int_equal(last_seq(f), 1);
    assert_int_equal(emit(f, ENG_OUT_REJECTED, NULL, "{\"r\":true}"), ENG_OK);
    assert_int_equal(emit(f, ENG_OUT_LEDGER, "", "{}"), ENG_OK);
    s = scan(f, 0, 0);  /* inside the txn: sees its own entries */
    assert_int_equal(s.n, 3);
    assert_int_equal(outbox_count(f), 3);
    commit(f);
    s = scan(f, 0, 0);
    assert_int_equal(s.n, 3);
    assert_int_equal(outbox_count(f), 3);  /* outside a txn */
    for (int i = 0; i < 3; i++) assert_int_equal(s.seq[i], (uint64_t)i + 1);
    assert_int_equal(s.kind[0], ENG_OUT_OVERAGE);
    assert_int_equal(s.kind[1], ENG_OUT_REJECTED);
    assert_int_equal(s.kind[2], ENG_OUT_LEDGER);
    assert_string_equal(s.key[0], "org-1");
    assert_string_equal(s.key[1], "(null)");
    assert_string_equal(s.key[2], "");
    assert_string_equal(s.json[1], "{\"r\":true}");
    assert_int_equal(s.len[1], 10);
    s = scan(f, 2, 0);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.seq[0], 3);
    s = scan(f, 0, 2);  /* cb stops */
    assert_int_equal(s.n, 2);
    s = scan(f, UINT64_MAX, 0);
    assert_int_equal(s.n, 0);

    begin(f);
    assert_int_equal(store_outbox_delete_upto(f->s, 2, f->err, sizeof(f->err)), STORE_OK);
    assert_int_equal(outbox_count(f), 1);  /* the txn's view */
    commit(f);
    s = scan(f, 0, 0);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.seq[0], 3);
    assert_int_equal(outbox_count(f), 1);  /* its own read txn */

    /* an aborted emit does not consume its seq (cache reset on abort) */
    begin(f);
    assert_int_equal(emit(f, ENG_OUT_LEDGER, "k", "{\"x\":4}"), ENG_OK);
    store_abort(f->s);
    begin(f);
    assert_int_equal(emit(f, ENG_OUT_LEDGER, "k", "{\"x\":4}"), ENG_OK);
    assert_int_equal(store_outbox_delete_upto(f->s, 100, f->err, sizeof(f->err)), STORE_OK);
    commit(f);
    assert_int_equal(scan(f, 0, 0).n, 0);

    /* seqs are never reused, even after emptying the outbox and reopening */
    reopen(f, 0);
    begin(f);
    assert_int_equal(last_seq(f), 4);  /* the outbox is empty; its last seq is kept */
    assert_int_equal(emit(f, ENG_OUT_OVERAGE, "k", "{\"x\":5}"), ENG_OK);
    commit(f);
    s = scan(f, 0, 0);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.seq[0], 5);
}

/* ---- offsets, counters, meta ------------------------------------------------ */

static void test_offsets(void **state) {
    struct fx *f = *state;
    int64_t next = -1;
    assert_int_equal(store_offset_get(f->s, "in", 0, &next, f->err, sizeof(f->err)), STORE_NOTFOUND);
    begin(f);
    assert_int_equal(store_offset_put(f->s, "in", 0, 10, f->err, sizeof(f->err)), STORE_OK);
    assert_int_equal(store_offset_put(f->s, "in", 1, 20, f->err, sizeof(f->err)), STORE_OK);
    assert_int_equal(store_offset_put(f->s, "input", 0, 30, f->err, sizeof(f->err)), STORE_OK);
    assert_int_equal(store_offset_get(f->s, "in", 0, &next, f->err, sizeof(f->err)), STORE_OK);
    assert_int_equal(next, 10);
    commit(f);
    begin(f);
    assert_int_equal(store_offset_put(f->s, "in", 0, 11, f->err, sizeof(f->err)), STORE_OK);
    store_abort(f->s);
    assert_int_equal(store_offset_get(f->s, "in", 0, &next, f->err, sizeof(f->err)), STORE_OK);
    assert_int_equal(next, 10);
    assert_int_equal(store_offset_get(f->s, "in", 1, &next, f->err, sizeof(f->err)), STORE_OK);
    assert_int_equal(next, 20);
    assert_int_equal(store_offset_get(f->s, "input", 0, &next, f->err, sizeof(f->err)), STORE_OK);
    assert_int_equal(next, 30);
    assert_int_equal(store_offset_get(f->s, "in", 2, &next, f->err, sizeof(f->err)), STORE_NOTFOUND);
}

static void test_counters_stats_meta(void **state) {
    struct fx *f = *state;
    struct store_counters d1 = { 5, 2, 1 }, d2 = { 10, 0, 3 };
    struct store_stats st;
    char val[8];
    begin(f);
    assert_int_equal(store_counters_add(f->s, &d1, f->err, sizeof(f->err)), STORE_OK);
    assert_int_equal(store_counters_add(f->s, &d2, f->err, sizeof(f->err)), STORE_OK);
    assert_int_equal(store_meta_put(f->s, "cluster", "abc", f->err, sizeof(f->err)), STORE_OK);
    commit(f);
    begin(f);
    assert_int_equal(store_counters_add(f->s, &d2, f->err, sizeof(f->err)), STORE_OK);
    assert_int_equal(store_meta_put(f->s, "cluster", "zzz", f->err, sizeof(f->err)), STORE_OK);
    store_abort(f->s);
    reopen(f, 0);
    put_simple(f, "o1", 0);
    assert_int_equal(store_stats(f->s, &st, f->err, sizeof(f->err)), STORE_OK);
    assert_int_equal(st.counters.applied, 15);
    assert_int_equal(st.counters.duplicates, 2);
    assert_int_equal(st.counters.rejected, 4);
    assert_int_equal(st.close_after_s, 0);
    assert_string_equal(st.currency, CUR);
    assert_int_equal(st.ndb, 11);  /* format 6: no sequences, org_credits, months */
    assert_string_equal(st.db[1].name, "orgs");
    assert_string_equal(st.db[2].name, "project_credits");
    assert_string_equal(st.db[8].name, "dedupe_expiry");
    assert_string_equal(st.db[9].name, "changes");     /* group mode (store_changes.c) */
    assert_string_equal(st.db[10].name, "changelog");
    for (int i = 0; i < st.ndb; i++)
        assert_true(strcmp(st.db[i].name, "sequences") && strcmp(st.db[i].name, "org_credits") &&
                    strcmp(st.db[i].name, "months"));
    assert_int_equal(st.retention_days, 0);
    assert_true(st.oldest_key_time == ENG_NO_TIME);
    assert_string_equal(st.db[0].name, "meta");
    assert_string_equal(st.db[1].name, "orgs");
    assert_int_equal(st.db[1].entries, 1);
    assert_string_equal(st.db[3].name, "org_partition");
    assert_int_equal(st.db[3].entries, 1);
    assert_int_equal(st.map_size, (uint64_t)1 << 30);
    assert_true(st.used_bytes > 0 && st.used_bytes <= st.file_bytes);
    /* user meta strings */
    assert_int_equal(store_meta_get(f->s, "cluster", val, sizeof(val), f->err, sizeof(f->err)), STORE_OK);
    assert_string_equal(val, "abc");
    assert_int_equal(store_meta_get(f->s, "cluster", val, 3, f->err, sizeof(f->err)), STORE_ERR);
    assert_non_null(strstr(f->err, "cluster"));
    assert_int_equal(store_meta_get(f->s, "nope", val, sizeof(val), f->err, sizeof(f->err)), STORE_NOTFOUND);
    assert_int_equal(store_meta_get(f->s, "currency", val, sizeof(val), f->err, sizeof(f->err)),
                     STORE_NOTFOUND);  /* user names don't reach internal records */
}

/* ---- transactions ------------------------------------------------------------ */

static void test_abort_restores(void **state) {
    struct fx *f = *state;
    struct eng_org o;
    struct store_counters d = { 1, 1, 1 };
    uint8_t key[600];
    struct eng_dedupe dd = { .hash = 1 };
    fill_key(key, sizeof(key), 9);
    make_org(&o, "org", 1, 1);
    put_org(f, &o);
    begin(f);
    assert_int_equal(emit(f, ENG_OUT_OVERAGE, "org", "{}"), ENG_OK);
    assert_int_equal(emit(f, ENG_OUT_OVERAGE, "org", "{}"), ENG_OK);
    assert_int_equal(store_offset_put(f->s, "in", 0, 5, f->err, sizeof(f->err)), STORE_OK);
    commit(f);
    struct dump before = take_dump(f);

    begin(f);
    eng_org_free(&o);
    make_org(&o, "org", 2, 7);  /* moves partition, changes everything */
    assert_int_equal(f->ops.org_put(f->ops.ctx, &o, f->err, sizeof(f->err)), ENG_OK);
    eng_org_free(&o);
    make_org(&o, "org-new", 2, 8);
    assert_int_equal(f->ops.org_put(f->ops.ctx, &o, f->err, sizeof(f->err)), ENG_OK);
    assert_int_equal(f->ops.dedupe_put(f->ops.ctx, key, sizeof(key), &dd, f->err, sizeof(f->err)), ENG_OK);
    assert_int_equal(f->ops.clock_put(f->ops.ctx, 1, 99, f->err, sizeof(f->err)), ENG_OK);
    assert_int_equal(emit(f, ENG_OUT_LEDGER, NULL, "{\"l\":1}"), ENG_OK);
    assert_int_equal(store_outbox_delete_upto(f->s, 1, f->err, sizeof(f->err)), STORE_OK);
    assert_int_equal(store_offset_put(f->s, "in", 0, 6, f->err, sizeof(f->err)), STORE_OK);
    assert_int_equal(store_counters_add(f->s, &d, f->err, sizeof(f->err)), STORE_OK);
    assert_int_equal(store_meta_put(f->s, "x", "y", f->err, sizeof(f->err)), STORE_OK);
    struct dump during = take_dump(f);  /* inside the txn: changed */
    assert_true(during.len != before.len || memcmp(during.buf, before.buf, before.len) != 0);
    store_abort(f->s);
    struct dump after = take_dump(f);
    assert_dump_equal(&before, &after);

    /* the same batch committed is visible */
    begin(f);
    assert_int_equal(f->ops.org_put(f->ops.ctx, &o, f->err, sizeof(f->err)), ENG_OK);
    commit(f);
    struct dump committed = take_dump(f);
    assert_true(committed.records > after.records);
    free(before.buf);
    free(during.buf);
    free(after.buf);
    free(committed.buf);
    eng_org_free(&o);
}

/* One batch of n big orgs (64 offerings of 200 bytes each) + outbox entries. */
static void make_big(struct eng_org *o, int i) {
    char id[32];
    snprintf(id, sizeof(id), "big-%03d", i);
    make_org(o, id, i % 4, i);
    o->noff = ENG_MAX_OFFERINGS;
    for (int j = 0; j < ENG_MAX_OFFERINGS; j++) {
        char tag[32];
        int n = snprintf(tag, sizeof(tag), "%d-%d-", i, j);  /* unique prefix */
        memset(o->off[j], 'a' + j % 26, ENG_ID_MAX);
        memcpy(o->off[j], tag, (size_t)n);
        o->off[j][ENG_ID_MAX] = 0;
    }
}

static int big_batch(struct fx *f, int n, struct eng_org *o) {
    int rc = store_begin(f->s, f->err, sizeof(f->err));
    assert_int_equal(rc, STORE_OK);
    for (int i = 0; i < n && rc == ENG_OK; i++) {
        eng_org_free(o);
        make_big(o, i);
        rc = f->ops.org_put(f->ops.ctx, o, f->err, sizeof(f->err));
        if (rc == ENG_OK) rc = emit(f, ENG_OUT_LEDGER, o->id, "{\"big\":true}");
    }
    if (rc != ENG_OK) {
        assert_int_equal(rc, ENG_ESTORE);
        assert_true(store_map_full(f->s));
        assert_non_null(strstr(f->err, "map full"));
        store_abort(f->s);
        return STORE_EMAPFULL;
    }
    return store_commit(f->s, f->err, sizeof(f->err));
}

static void test_map_full(void **state) {
    struct fx *f = *state;
    struct eng_org o, got;
    struct store_stats st;
    eng_org_init(&o);
    eng_org_init(&got);
    put_simple(f, "existing", 0);
    struct dump before = take_dump(f);
    int rc, attempts = 0;
    do {
        rc = big_batch(f, 60, &o);
        attempts++;
        if (rc == STORE_EMAPFULL) {  /* nothing of the failed batch is there */
            struct dump now = take_dump(f);
            assert_dump_equal(&before, &now);
            free(now.buf);
        }
    } while (rc == STORE_EMAPFULL && attempts < 10);
    assert_int_equal(rc, STORE_OK);
    assert_true(attempts >= 2);
    assert_int_equal(store_stats(f->s, &st, f->err, sizeof(f->err)), STORE_OK);
    assert_true(st.map_size >= 512 * 1024);
    assert_int_equal(st.db[1].entries, 61);
    assert_string_equal(st.db[6].name, "outbox");
    assert_int_equal(st.db[6].entries, 60);
    for (int i = 0; i < 60; i++) {
        struct eng_org want;
        make_big(&want, i);
        assert_int_equal(store_get_org(f->s, want.id, &got, f->err, sizeof(f->err)), STORE_OK);
        assert_org_equal(&got, &want);
        eng_org_free(&want);
    }
    /* fill the grown map with dedupe keys: the op fails, commit says
     * EMAPFULL (not half-committed), the map grows again */
    free(before.buf);
    before = take_dump(f);
    uint64_t before_map = st.map_size;
    begin(f);
    int puts = 0;
    for (int i = 0; i < 100000; i++, puts++) {
        struct eng_dedupe d = { .hash = (uint64_t)i };
        uint8_t k[400];
        fill_key(k, sizeof(k), 0);
        memcpy(k, &i, sizeof(i));
        if (f->ops.dedupe_put(f->ops.ctx, k, sizeof(k), &d, f->err, sizeof(f->err)) != ENG_OK) break;
    }
    assert_true(store_map_full(f->s));
    assert_true(puts > 0 && puts < 100000);
    assert_int_equal(store_commit(f->s, f->err, sizeof(f->err)), STORE_EMAPFULL);
    assert_true(store_map_full(f->s));
    struct dump now = take_dump(f);
    assert_dump_equal(&before, &now);
    free(now.buf);
    assert_int_equal(store_stats(f->s, &st, f->err, sizeof(f->err)), STORE_OK);
    assert_true(st.map_size == 2 * before_map);
    begin(f);
    assert_false(store_map_full(f->s));
    store_abort(f->s);
    assert_int_equal(store_stats(f->s, &st, f->err, sizeof(f->err)), STORE_OK);
    assert_true(st.map_size == 2 * before_map);  /* a clean abort does not grow */
    free(before.buf);
    eng_org_free(&o);
    eng_org_free(&got);
}

/* ---- open / meta ------------------------------------------------------------- */

static void test_meta_mismatch(void **state) {
    struct fx *f = *state;
    struct store *s2 = NULL;
    store_close(f->s);
    f->s = NULL;
    assert_int_equal(open_store(f, 0, 86400, CUR, 0, &s2), STORE_EMISMATCH);
    assert_null(s2);
    char want[256];
    snprintf(want, sizeof(want), "store %s was created with close_after=0, config says 86400", f->path);
    assert_string_equal(f->err, want);
    assert_int_equal(open_store(f, 0, 0, "USD", 0, &s2), STORE_EMISMATCH);
    assert_non_null(strstr(f->err, "currency=EUR, config says USD"));
    /* readonly checks the config too, unless currency is NULL */
    assert_int_equal(open_store(f, 0, 86400, CUR, 1, &s2), STORE_EMISMATCH);
    assert_int_equal(open_store(f, 0, 86400, NULL, 1, &s2), STORE_OK);
    store_close(s2);
    assert_int_equal(open_store(f, 0, 0, CUR, 0, &f->s), STORE_OK);
    store_engine_ops(f->s, &f->ops);
    /* a fresh store in a nested, missing dir records its own config */
    snprintf(f->path, sizeof(f->path), "%s/x/y", f->dir);
    assert_int_equal(open_store(f, 0, 3600, "USD", 0, &s2), STORE_OK);
    store_close(s2);
    assert_int_equal(open_store(f, 0, 3600, "USD", 0, &s2), STORE_OK);
    struct store_stats st;
    assert_int_equal(store_stats(s2, &st, f->err, sizeof(f->err)), STORE_OK);
    assert_int_equal(st.close_after_s, 3600);
    assert_string_equal(st.currency, "USD");
    store_close(s2);
}

static void raw_write(struct fx *f, const char *db, const void *k, size_t kl, const void *v, size_t vl);

/* max_future is pinned like close_after (v1.3 §11); a store without the
 * record (made before the guard) is refused, never read as some value. */
static void test_max_future_pinned(void **state) {
    struct fx *f = *state;
    struct store *s2 = NULL;
    struct store_opts o = { .nosync = 1, .currency = CUR, .max_future_s = 2678400 };
    char path[sizeof(f->path)], want[512];
    snprintf(path, sizeof(path), "%s/mf", f->dir);
    o.path = path;
    assert_int_equal(store_open(&s2, &o, f->err, sizeof(f->err)), STORE_OK);
    struct store_stats st;
    assert_int_equal(store_stats(s2, &st, f->err, sizeof(f->err)), STORE_OK);
    assert_int_equal(st.max_future_s, 2678400);
    store_close(s2);
    o.max_future_s = 0;
    assert_int_equal(store_open(&s2, &o, f->err, sizeof(f->err)), STORE_EMISMATCH);
    assert_null(s2);
    snprintf(want, sizeof(want), "store %s was created with max_future=2678400, config says 0", path);
    assert_string_equal(f->err, want);
    o.max_future_s = 2678400;
    assert_int_equal(store_open(&s2, &o, f->err, sizeof(f->err)), STORE_OK);
    store_close(s2);
    /* the fixture's store (max_future 0) loses its record */
    raw_write(f, "meta", "max_future", 10, NULL, 0);
    assert_int_equal(open_store(f, 0, 0, CUR, 0, &f->s), STORE_ERR);
    assert_null(f->s);
    assert_non_null(strstr(f->err, "has no max_future record"));
    assert_non_null(strstr(f->err, "rebuild it by replaying"));
}

static void test_readonly_missing(void **state) {
    struct fx *f = *state;
    struct store *ro = NULL;
    snprintf(f->path, sizeof(f->path), "%s/empty", f->dir);
    assert_int_equal(mkdir(f->path, 0700), 0);
    assert_int_equal(open_store(f, 0, 0, NULL, 1, &ro), STORE_ERR);
    assert_null(ro);
    assert_non_null(strstr(f->err, "no store"));
    snprintf(f->path, sizeof(f->path), "%s/missing", f->dir);
    assert_int_equal(open_store(f, 0, 0, NULL, 1, &ro), STORE_ERR);
    assert_non_null(strstr(f->err, "no store"));
    struct stat st;
    assert_int_not_equal(stat(f->path, &st), 0);  /* readonly creates nothing */
}

/* Child process: readonly open while the parent holds a write txn. */
static int readonly_child(struct fx *f) {
    struct store *ro;
    struct eng_org o;
    char err[512];
    struct store_opts opts = { .path = f->path, .readonly = 1 };
    alarm(20);  /* must never block on the writer */
    if (store_open(&ro, &opts, err, sizeof(err)) != STORE_OK) return 10;
    eng_org_init(&o);
    if (store_get_org(ro, "committed", &o, err, sizeof(err)) != STORE_OK) return 11;
    if (o.watermark != 100 || o.partition != 7) return 12;
    if (store_get_org(ro, "uncommitted", &o, err, sizeof(err)) != STORE_NOTFOUND) return 13;
    if (store_begin(ro, err, sizeof(err)) != STORE_ERR) return 14;
    struct store_stats st;
    if (store_stats(ro, &st, err, sizeof(err)) != STORE_OK || st.db[1].entries != 1) return 15;
    eng_org_free(&o);
    store_close(ro);
    return 0;
}

static void test_readonly_concurrent(void **state) {
    struct fx *f = *state;
    put_simple(f, "committed", 7);
    begin(f);  /* writer holds the write lock with an uncommitted org */
    struct eng_org o;
    eng_org_init(&o);
    strcpy(o.id, "uncommitted");
    o.partition = 1;
    o.dirty = ENG_DIRTY_META;
    assert_int_equal(f->ops.org_put(f->ops.ctx, &o, f->err, sizeof(f->err)), ENG_OK);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) _exit(readonly_child(f));
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    commit(f);
    /* readonly in this process too, after the writer committed */
    struct store *ro;
    assert_int_equal(open_store(f, 0, 0, NULL, 1, &ro), STORE_OK);
    assert_int_equal(store_get_org(ro, "uncommitted", &o, f->err, sizeof(f->err)), STORE_OK);
    assert_int_equal(store_begin(ro, f->err, sizeof(f->err)), STORE_ERR);
    assert_non_null(strstr(f->err, "readonly"));
    store_close(ro);
}

/* ---- views ------------------------------------------------------------------- */

struct scanned { char ids[8][16]; size_t nproj[8]; int n, stop; };

static int scan_cb(void *arg, const struct eng_org *o) {
    struct scanned *s = arg;
    assert_true(s->n < 8);
    strcpy(s->ids[s->n], o->id);
    s->nproj[s->n] = o->nproj;
    s->n++;
    return s->n == s->stop ? 9 : 0;
}

static void test_scan_orgs(void **state) {
    struct fx *f = *state;
    struct eng_org o;
    const char *ids[] = { "m", "b", "z", "ba" };
    struct scanned s = { .stop = -1 };
    assert_int_equal(store_scan_orgs(f->s, scan_cb, &s, f->err, sizeof(f->err)), STORE_OK);
    assert_int_equal(s.n, 0);
    for (int i = 0; i < 4; i++) {
        make_org(&o, ids[i], i, i);
        if (i == 2) o.nproj = 0;
        put_org(f, &o);
        eng_org_free(&o);
    }
    assert_int_equal(store_scan_orgs(f->s, scan_cb, &s, f->err, sizeof(f->err)), STORE_OK);
    assert_int_equal(s.n, 4);
    const char *want[] = { "b", "ba", "m", "z" };
    for (int i = 0; i < 4; i++) assert_string_equal(s.ids[i], want[i]);
    assert_int_equal(s.nproj[0], 3);
    assert_int_equal(s.nproj[3], 0);
    struct scanned stop = { .stop = 2 };
    assert_int_equal(store_scan_orgs(f->s, scan_cb, &stop, f->err, sizeof(f->err)), 9);
    assert_int_equal(stop.n, 2);
}

/* ---- corrupt records ---------------------------------------------------------
 * Records are forged with raw LMDB writes while the store is closed: what a
 * disk fault, a bug or another version could leave behind.  Every read of
 * one must fail with STORE_ECORRUPT (ENG_ESTORE through the engine ops)
 * naming the database and key, and never abort (the ASan build runs these). */

/* Put (or, with v NULL, delete) raw bytes under key k of db; the store is
 * closed (f->s NULL) until the caller reopens it. */
static void raw_write(struct fx *f, const char *db, const void *k, size_t kl, const void *v, size_t vl) {
    MDB_env *env;
    MDB_txn *t;
    MDB_dbi dbi;
    MDB_val key = { kl, (void *)k }, val = { vl, (void *)v };
    store_close(f->s);
    f->s = NULL;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
    assert_int_equal(mdb_env_open(env, f->path, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &t), 0);
    assert_int_equal(mdb_dbi_open(t, db, 0, &dbi), 0);
    if (v) assert_int_equal(mdb_put(t, dbi, &key, &val, 0), 0);
    else assert_int_equal(mdb_del(t, dbi, &key, NULL), 0);
    assert_int_equal(mdb_txn_commit(t), 0);
    mdb_env_close(env);
}

/* The same, then reopen the store. */
static void raw_put(struct fx *f, const char *db, const void *k, size_t kl, const void *v, size_t vl) {
    raw_write(f, db, k, kl, v, vl);
    reopen(f, 0);
}

struct rawrec { const char *db; const void *k; size_t kl; uint8_t v[4096]; size_t vl; int found; };

static int raw_cb(void *arg, const char *db, const void *k, size_t kl, const void *v, size_t vl) {
    struct rawrec *r = arg;
    if (strcmp(db, r->db) || kl != r->kl || memcmp(k, r->k, kl)) return 0;
    assert_true(vl <= sizeof(r->v));
    memcpy(r->v, v, vl);
    r->vl = vl;
    r->found = 1;
    return 0;
}

/* The stored bytes of db/k (which must exist) into r. */
static void raw_get(struct fx *f, const char *db, const void *k, size_t kl, struct rawrec *r) {
    memset(r, 0, sizeof(*r));
    r->db = db;
    r->k = k;
    r->kl = kl;
    assert_int_equal(store_dump(f->s, raw_cb, r, f->err, sizeof(f->err)), STORE_OK);
    assert_true(r->found);
}

/* err names the database, the key (as printed) and what is wrong. */
static void assert_corrupt_err(const char *err, const char *db, const char *key, const char *what) {
    char want[256];
    snprintf(want, sizeof(want), ": db %s key %s: ", db, key);
    if (!strstr(err, "corrupt store ") || !strstr(err, want) || !strstr(err, what))
        fail_msg("error '%s' should name db %s, key %s and '%s'", err, db, key, what);
}

enum mut { M_TRUNC, M_TRAIL, M_VERSION, M_EMPTY, M_BYTE, M_I32 };

struct ccase {
    const char *db;
    const char *key; size_t kl;   /* kl 0: strlen(key) */
    enum mut m; size_t off; uint32_t val;  /* M_BYTE / M_I32 (little-endian) at off */
    const char *keytext, *what;
};

/* Rewrite the record of c as c->m says. */
static void corrupt_rec(struct fx *f, const struct ccase *c) {
    struct rawrec r;
    size_t kl = c->kl ? c->kl : strlen(c->key);
    raw_get(f, c->db, c->key, kl, &r);
    switch (c->m) {
    case M_TRUNC:   r.vl--; break;
    case M_TRAIL:   r.v[r.vl++] = 0xAB; break;
    case M_VERSION: r.v[0] = 7; break;
    case M_EMPTY:   r.vl = 0; break;
    case M_BYTE:    assert_true(c->off < r.vl); r.v[c->off] = (uint8_t)c->val; break;
    case M_I32:
        assert_true(c->off + 4 <= r.vl);
        for (int i = 0; i < 4; i++) r.v[c->off + (size_t)i] = (uint8_t)(c->val >> (8 * i));
        break;
    }
    raw_put(f, c->db, c->key, kl, r.v, r.vl);
}

/* Corrupt db/key (kl 0: strlen) as m says, at off with val. */
static void corrupt(struct fx *f, const char *db, const char *key, size_t kl, enum mut m, size_t off,
                    uint32_t val) {
    struct ccase c = { db, key, kl, m, off, val, NULL, NULL };
    corrupt_rec(f, &c);
}

#define OK1 "org-1"
#define P1K "org-1\0p1"   /* project p1 of org-1 */
#define P2K "org-1\0p2"   /* project p2 of org-1 (months, no credit) */

/* Every field of an org's records that is checked, corrupted; read by
 * org_get.  Format 6 layout of org-1 (make_org, k 1): orgs record: version 0,
 * partition 1, watermark 5, open month 13, seqs 17 25 33, credit serial 41,
 * credit flag 49, V 50, sum of P 58, terms 66 (logic 66, grace 67, flags 68),
 * offerings 81 (count; first id's length 82, bytes 83..), alert state 305
 * (thresholds 305, armed 321, reference 337, exhausted 345), serial 346,
 * months 354 (count; entry 0: month 355, consumed 359, overage flag 367);
 * 381 bytes.  p1's record: version 0, credit flag 1, P 2, terms 10, alert
 * state 25 (reference 57, exhausted 65), serial 66, months 74 (entry 0:
 * month 75, overage flag 87).  p2's: version, credit flag 0, months 2. */
static const struct ccase org_cases[] = {
    { "orgs", OK1, 0, M_TRUNC, 0, 0, "\"org-1\"", "truncated: 380-byte value, 1 more bytes needed at byte 380" },
    { "orgs", OK1, 0, M_TRAIL, 0, 0, "\"org-1\"", "1 trailing bytes after a 381-byte record" },
    { "orgs", OK1, 0, M_VERSION, 0, 0, "\"org-1\"", "record format version 7, this build reads version 6" },
    { "orgs", OK1, 0, M_EMPTY, 0, 0, "\"org-1\"", "empty value (no format version byte)" },
    { "orgs", OK1, 0, M_BYTE, 4, 0x80, "\"org-1\"", "partition -2147483645 < 0" },
    /* what the sequences record held */
    { "orgs", OK1, 0, M_BYTE, 48, 0x80, "\"org-1\"", "credit serial beyond 2^63-1" },
    /* what the org_credits record held */
    { "orgs", OK1, 0, M_BYTE, 49, 2, "\"org-1\"", "credit flag 2 (0..1)" },
    { "orgs", OK1, 0, M_BYTE, 57, 0x80, "\"org-1\"", "value -9223372036784775807 < 0" },
    { "orgs", OK1, 0, M_BYTE, 65, 0x80, "\"org-1\"", "allocation sum -92233720368" },
    { "orgs", OK1, 0, M_BYTE, 66, 2, "\"org-1\"", "terms: consumption logic 2 (0..1)" },
    { "orgs", OK1, 0, M_BYTE, 67, 101, "\"org-1\"", "terms: grace coefficient 101 (0..100)" },
    { "orgs", OK1, 0, M_BYTE, 68, 0x10, "\"org-1\"", "terms: flags 0x10 (bits 0x0f only)" },
    { "orgs", OK1, 0, M_BYTE, 81, 65, "\"org-1\"", "65 offerings (at most 64)" },
    { "orgs", OK1, 0, M_BYTE, 82, 0, "\"org-1\"", "offering 0: id of 0 bytes (1..200)" },
    { "orgs", OK1, 0, M_BYTE, 84, 0, "\"org-1\"", "offering 0: id contains a NUL byte" },
    { "orgs", OK1, 0, M_BYTE, 82, 250, "\"org-1\"", "offering 0: id of 250 bytes (1..200)" },
    { "orgs", OK1, 0, M_BYTE, 305, 1, "\"org-1\"", "alerts: a threshold outside 1..99" },
    { "orgs", OK1, 0, M_BYTE, 320, 0x80, "\"org-1\"", "alerts: a threshold outside 1..99" },
    { "orgs", OK1, 0, M_BYTE, 321, 0x08, "\"org-1\"", "alerts: an armed threshold that is not a threshold" },
    { "orgs", OK1, 0, M_BYTE, 344, 0x80, "\"org-1\"", "alerts: reference -" },
    { "orgs", OK1, 0, M_BYTE, 345, 2, "\"org-1\"", "alerts: exhausted flag 2 (0..1)" },
    /* what the org's own months record held */
    { "orgs", OK1, 0, M_BYTE, 354, 200, "\"org-1\"", "months: 200 entries (0..8)" },
    { "orgs", OK1, 0, M_BYTE, 354, ENG_MAX_MONTHS + 1, "\"org-1\"", "months: 9 entries (0..8)" },
    { "orgs", OK1, 0, M_I32, 355, 0x80000000u, "\"org-1\"", "months: entry 0 has no month" },
    { "orgs", OK1, 0, M_BYTE, 367, 2, "\"org-1\"", "months: entry 0 has overage flag 2 (0..1)" },
    /* a project's record: what project_credits and its months record held */
    { "project_credits", P1K, 8, M_TRUNC, 0, 0, "\"org-1\\x00p1\"", "truncated" },
    { "project_credits", P1K, 8, M_TRAIL, 0, 0, "\"org-1\\x00p1\"", "trailing bytes" },
    { "project_credits", P1K, 8, M_VERSION, 0, 0, "\"org-1\\x00p1\"", "record format version 7" },
    { "project_credits", P1K, 8, M_EMPTY, 0, 0, "\"org-1\\x00p1\"", "empty value" },
    { "project_credits", P1K, 8, M_BYTE, 1, 2, "\"org-1\\x00p1\"", "credit flag 2 (0..1)" },
    { "project_credits", P1K, 8, M_BYTE, 9, 0x80, "\"org-1\\x00p1\"", "value -" },
    { "project_credits", P1K, 8, M_BYTE, 10, 9, "\"org-1\\x00p1\"", "consumption logic 9" },
    { "project_credits", P1K, 8, M_BYTE, 11, 101, "\"org-1\\x00p1\"", "grace coefficient 101" },
    { "project_credits", P1K, 8, M_BYTE, 12, 0xFF, "\"org-1\\x00p1\"", "flags 0xff" },
    { "project_credits", P1K, 8, M_BYTE, 25, 1, "\"org-1\\x00p1\"", "alerts: a threshold outside 1..99" },
    { "project_credits", P1K, 8, M_BYTE, 64, 0x80, "\"org-1\\x00p1\"", "alerts: reference -" },
    { "project_credits", P1K, 8, M_BYTE, 65, 2, "\"org-1\\x00p1\"", "alerts: exhausted flag 2 (0..1)" },
    { "project_credits", P1K, 8, M_BYTE, 74, ENG_MAX_MONTHS + 1, "\"org-1\\x00p1\"", "months: 9 entries (0..8)" },
    { "project_credits", P1K, 8, M_I32, 75, 0x80000000u, "\"org-1\\x00p1\"", "months: entry 0 has no month" },
    { "project_credits", P1K, 8, M_BYTE, 87, 2, "\"org-1\\x00p1\"", "months: entry 0 has overage flag 2 (0..1)" },
    { "project_credits", P2K, 8, M_BYTE, 1, 7, "\"org-1\\x00p2\"", "credit flag 7 (0..1)" },
    { "project_credits", P2K, 8, M_BYTE, 2, 0, "\"org-1\\x00p2\"", "a project record with neither a credit nor months" },
    { "project_credits", P2K, 8, M_TRUNC, 0, 0, "\"org-1\\x00p2\"", "truncated" },
};

static void test_corrupt_org_records(void **state) {
    struct fx *f = *state;
    struct eng_org o, got;
    eng_org_init(&got);
    for (size_t i = 0; i < sizeof(org_cases) / sizeof(org_cases[0]); i++) {
        const struct ccase *c = &org_cases[i];
        make_org(&o, "org-1", 3, 1);
        put_org(f, &o);
        eng_org_free(&o);
        assert_int_equal(get_org(f, "org-1", &got), ENG_OK);
        corrupt_rec(f, c);
        f->err[0] = 0;
        /* the engine's view: ENG_ESTORE exactly (mapped), err names it */
        assert_int_equal(get_org(f, "org-1", &got), ENG_ESTORE);
        assert_corrupt_err(f->err, c->db, c->keytext, c->what);
        /* the readonly view */
        f->err[0] = 0;
        assert_int_equal(store_get_org(f->s, "org-1", &got, f->err, sizeof(f->err)), STORE_ECORRUPT);
        assert_corrupt_err(f->err, c->db, c->keytext, c->what);
        /* other orgs are still readable */
        assert_int_equal(get_org(f, "other", &got), ENG_NOTFOUND);
        /* start over: rewrite every record of org-1 */
        raw_put(f, c->db, c->key, c->kl ? c->kl : strlen(c->key), NULL, 0);
    }
    eng_org_free(&got);
}

/* §13: an applied usage's record keeps what a void needs; read back exactly,
 * and every broken part of it is a corrupt-store error naming it. */
static void test_dedupe_usage(void **state) {
    struct fx *f = *state;
    struct eng_dedupe d = { .hash = 9, .partition = 2, .time = 1767261600000000000LL }, got;
    struct eng_usage_rec *u = &d.u;
    u->has = 1;
    u->voided = 1;
    u->billing_month = 2026 * 12;
    u->org_serial = 3;
    u->proj_serial = 4;
    u->d1 = 100000000;
    u->d2 = 50000000;
    strcpy(u->project, "pA");
    u->ov_seq = 7;
    u->ov_amount = 25000000;
    strcpy(u->resource, "r-1");
    strcpy(u->offering, "hpc");
    strcpy(u->component, "cpu");
    begin(f);
    assert_int_equal(f->ops.dedupe_put(f->ops.ctx, (const uint8_t *)"u1", 2, &d, f->err,
                                       sizeof(f->err)), ENG_OK);
    d.u.ov_seq = 0; /* without an overage: no strings kept */
    assert_int_equal(f->ops.dedupe_put(f->ops.ctx, (const uint8_t *)"u2", 2, &d, f->err,
                                       sizeof(f->err)), ENG_OK);
    dput(f, (const uint8_t *)"r1", 2, 5, 1);
    commit(f);
    begin(f);
    assert_int_equal(dget(f, (const uint8_t *)"u1", 2, &got), ENG_OK);
    assert_true(got.u.has && got.u.voided && got.u.billing_month == 2026 * 12);
    assert_true(got.u.org_serial == 3 && got.u.proj_serial == 4 && got.u.d1 == 100000000 &&
                got.u.d2 == 50000000 && got.u.ov_seq == 7 && got.u.ov_amount == 25000000);
    assert_string_equal(got.u.project, "pA");
    assert_string_equal(got.u.resource, "r-1");
    assert_string_equal(got.u.offering, "hpc");
    assert_string_equal(got.u.component, "cpu");
    assert_int_equal(dget(f, (const uint8_t *)"u2", 2, &got), ENG_OK);
    assert_true(got.u.has && got.u.ov_seq == 0 && got.u.resource[0] == 0);
    assert_int_equal(dget(f, (const uint8_t *)"r1", 2, &got), ENG_OK);
    assert_false(got.u.has);
    store_abort(f->s);
    /* layout: 25 bytes of key record, then flags (25), month (26..28: 3 LEB128
     * bytes), serials (29, 30), d1 (31..34), d2 (35..38), project length (39),
     * "pA", overage seq (42), amount (43..46) */
    static const struct { const char *key; enum mut m; size_t off; uint32_t val; const char *what; }
    cases[] = {
        {"u2", M_BYTE, 25, 2, "usage flags 2"},
        {"u2", M_BYTE, 34, 0, "usage d1: bad variable-length number"},   /* not the shortest */
        {"u2", M_BYTE, 39, 0, "usage project of 0 bytes"},
        {"u2", M_BYTE, 28, 0x7f, "usage billing month"},
        {"u2", M_TRUNC, 0, 0, "truncated"},
        {"u2", M_TRAIL, 0, 0, "trailing"},
        {"u1", M_BYTE, 43, 0, "usage overage amount 0"},
        {"r1", M_BYTE, 25, 1, "usage data on a rejected key"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct rawrec keep;
        char kt[8];
        raw_get(f, "dedupe", cases[i].key, 2, &keep);
        corrupt(f, "dedupe", cases[i].key, 2, cases[i].m, cases[i].off, cases[i].val);
        begin(f);
        assert_int_equal(dget(f, (const uint8_t *)cases[i].key, 2, &got), ENG_ESTORE);
        snprintf(kt, sizeof(kt), "\"%s\"", cases[i].key);
        assert_corrupt_err(f->err, "dedupe", kt, cases[i].what);
        store_abort(f->s);
        raw_put(f, "dedupe", cases[i].key, 2, keep.v, keep.vl); /* the good record again */
    }
}

static void test_corrupt_clock_dedupe(void **state) {
    struct fx *f = *state;
    struct eng_dedupe d;
    int64_t ns;
    const uint8_t part3[4] = { 0, 0, 0, 3 };
    begin(f);
    assert_int_equal(f->ops.clock_put(f->ops.ctx, 3, 12345, f->err, sizeof(f->err)), ENG_OK);
    dput(f, (const uint8_t *)"abc", 3, 5, 1);
    commit(f);
    corrupt(f, "partitions", (const char *)part3, 4, M_TRUNC, 0, 0);
    begin(f);
    assert_int_equal(f->ops.clock_get(f->ops.ctx, 3, &ns, f->err, sizeof(f->err)), ENG_ESTORE);
    assert_corrupt_err(f->err, "partitions", "partition 3", "truncated: 8-byte value");
    store_abort(f->s);
    corrupt(f, "dedupe", "abc", 3, M_BYTE, 9, 2);
    begin(f);
    assert_int_equal(dget(f, (const uint8_t *)"abc", 3, &d), ENG_ESTORE);
    assert_corrupt_err(f->err, "dedupe", "\"abc\"", "rejected flag 2 (0..1)");
    store_abort(f->s);
    corrupt(f, "dedupe", "abc", 3, M_BYTE, 9, 1);
    corrupt(f, "dedupe", "abc", 3, M_BYTE, 23, 5);   /* full key length: 5 */
    begin(f);
    assert_int_equal(dget(f, (const uint8_t *)"abc", 3, &d), ENG_ESTORE);
    assert_corrupt_err(f->err, "dedupe", "\"abc\"", "full key of 5 bytes");
    store_abort(f->s);
    corrupt(f, "dedupe", "abc", 3, M_VERSION, 0, 0);
    begin(f);
    assert_int_equal(dget(f, (const uint8_t *)"abc", 3, &d), ENG_ESTORE);
    assert_corrupt_err(f->err, "dedupe", "\"abc\"", "record format version 7");
    store_abort(f->s);
}

static void be64_key(uint8_t k[8], uint64_t v) {
    for (int i = 7; i >= 0; i--) { k[i] = (uint8_t)v; v >>= 8; }
}

/* Entries: seq 1 key "org-1", seq 2 no key. */
static void outbox_two(struct fx *f) {
    begin(f);
    assert_int_equal(emit(f, ENG_OUT_LEDGER, "org-1", "{\"a\":1}"), ENG_OK);
    assert_int_equal(emit(f, ENG_OUT_OVERAGE, NULL, "{\"b\":2}"), ENG_OK);
    commit(f);
}

static void expect_scan_corrupt(struct fx *f, const char *keytext, const char *what) {
    struct seen sn = { .stop = 0 };
    f->err[0] = 0;
    assert_int_equal(store_outbox_scan(f->s, 0, seen_cb, &sn, f->err, sizeof(f->err)), STORE_ECORRUPT);
    assert_corrupt_err(f->err, "outbox", keytext, what);
}

static void test_corrupt_outbox(void **state) {
    struct fx *f = *state;
    uint8_t k1[8], k10[8];
    be64_key(k1, 1);
    be64_key(k10, 10);
    outbox_two(f);
    corrupt(f, "outbox", (const char *)k1, 8, M_BYTE, 1, 4);
    expect_scan_corrupt(f, "seq 1", "output kind 4 (0..3)");
    corrupt(f, "outbox", (const char *)k1, 8, M_BYTE, 1, 1);
    corrupt(f, "outbox", (const char *)k1, 8, M_BYTE, 4, 0);  /* "org-1" -> "\0rg-1" */
    expect_scan_corrupt(f, "seq 1", "key contains a NUL byte");
    corrupt(f, "outbox", (const char *)k1, 8, M_BYTE, 4, 'o');
    corrupt(f, "outbox", (const char *)k1, 8, M_BYTE, 21, 'x');  /* the json's NUL */
    expect_scan_corrupt(f, "seq 1", "json is not NUL-terminated");
    corrupt(f, "outbox", (const char *)k1, 8, M_TRUNC, 0, 0);
    expect_scan_corrupt(f, "seq 1", "truncated");
    corrupt(f, "outbox", (const char *)k1, 8, M_VERSION, 0, 0);
    expect_scan_corrupt(f, "seq 1", "record format version 7");
    /* an entry beyond outbox_seq: the next emit would reuse its seq */
    struct rawrec r;
    be64_key(k1, 2);
    raw_get(f, "outbox", k1, 8, &r);
    raw_put(f, "outbox", k10, 8, r.v, r.vl);
    begin(f);
    assert_int_equal(emit(f, ENG_OUT_LEDGER, "k", "{}"), ENG_ESTORE);
    assert_corrupt_err(f->err, "outbox", "seq 10",
                       "beyond the last sequence recorded in meta outbox_seq (2)");
    store_abort(f->s);
    /* a key that is no sequence: scan, and the relay's delete */
    raw_put(f, "outbox", "abc", 3, r.v, r.vl);
    begin(f);
    assert_int_equal(store_outbox_delete_upto(f->s, 100, f->err, sizeof(f->err)), STORE_ECORRUPT);
    assert_corrupt_err(f->err, "outbox", "\"abc\"", "key is not an 8-byte sequence");
    store_abort(f->s);
    /* meta outbox_seq itself */
    corrupt(f, "meta", "outbox_seq", 0, M_TRAIL, 0, 0);
    begin(f);
    assert_int_equal(emit(f, ENG_OUT_LEDGER, "k", "{}"), ENG_ESTORE);
    assert_corrupt_err(f->err, "meta", "\"outbox_seq\"", "1 trailing bytes after a 9-byte record");
    store_abort(f->s);
}

static void test_corrupt_meta_offsets(void **state) {
    struct fx *f = *state;
    struct store_counters d = { 1, 2, 3 };
    struct store_stats st;
    char val[16];
    int64_t next;
    const char okey[] = "in\0\0\0\0\0";  /* "in" \0 partition 0 */
    begin(f);
    assert_int_equal(store_offset_put(f->s, "in", 0, 10, f->err, sizeof(f->err)), STORE_OK);
    assert_int_equal(store_counters_add(f->s, &d, f->err, sizeof(f->err)), STORE_OK);
    assert_int_equal(store_meta_put(f->s, "cluster", "abc", f->err, sizeof(f->err)), STORE_OK);
    commit(f);
    corrupt(f, "offsets", okey, 7, M_BYTE, 8, 0x80);
    assert_int_equal(store_offset_get(f->s, "in", 0, &next, f->err, sizeof(f->err)), STORE_ECORRUPT);
    assert_corrupt_err(f->err, "offsets", "\"in\\x00\\x00\\x00\\x00\\x00\"",
                       "value -9223372036854775798 < 0");
    corrupt(f, "meta", "counters", 0, M_TRUNC, 0, 0);
    assert_int_equal(store_stats(f->s, &st, f->err, sizeof(f->err)), STORE_ECORRUPT);
    assert_corrupt_err(f->err, "meta", "\"counters\"", "truncated");
    begin(f);
    assert_int_equal(store_counters_add(f->s, &d, f->err, sizeof(f->err)), STORE_ECORRUPT);
    store_abort(f->s);
    corrupt(f, "meta", "user:cluster", 0, M_BYTE, 2, 0);
    assert_int_equal(store_meta_get(f->s, "cluster", val, sizeof(val), f->err, sizeof(f->err)),
                     STORE_ECORRUPT);
    assert_corrupt_err(f->err, "meta", "\"user:cluster\"", "text contains a NUL byte");
    /* the config records are read on open: a writer cannot start */
    struct rawrec r;
    raw_get(f, "meta", "close_after", 11, &r);
    r.v[0] = 9;
    raw_write(f, "meta", "close_after", 11, r.v, r.vl);
    assert_int_equal(open_store(f, 0, 0, CUR, 0, &f->s), STORE_ECORRUPT);
    assert_null(f->s);
    assert_corrupt_err(f->err, "meta", "\"close_after\"",
                       "record format version 9, this build reads version 6");
    r.v[0] = STORE_FORMAT_VERSION;
    raw_write(f, "meta", "close_after", 11, r.v, r.vl);
    raw_write(f, "meta", "currency", 8, "\6EUREUREUREUREUREUREUREUREUREUREUR", 34);
    assert_int_equal(open_store(f, 0, 0, CUR, 0, &f->s), STORE_ECORRUPT);
    assert_corrupt_err(f->err, "meta", "\"currency\"", "currency of 33 bytes (at most 31)");
    raw_write(f, "meta", "currency", 8, "\6EUR", 4);
    reopen(f, 0);
    /* a store of the previous format is refused, saying how to rebuild it */
    raw_write(f, "meta", "format", 6, "\1", 1);
    assert_int_equal(open_store(f, 0, 0, CUR, 0, &f->s), STORE_EMISMATCH);
    assert_non_null(strstr(f->err, "has format 1, this build reads format 6: rebuild it by replaying"));
    /* format 2 (before v1.3 §12) and 3 (before §14: dedupe records without time) too */
    raw_write(f, "meta", "format", 6, "\3", 1);
    assert_int_equal(open_store(f, 0, 0, CUR, 0, &f->s), STORE_EMISMATCH);
    assert_non_null(strstr(f->err, "has format 3, this build reads format 6: rebuild it by replaying"));
    raw_write(f, "meta", "format", 6, "\2", 1);
    assert_int_equal(open_store(f, 0, 0, CUR, 0, &f->s), STORE_EMISMATCH);
    assert_non_null(strstr(f->err, "has format 2, this build reads format 6: rebuild it by replaying"));
    /* format 4 (before §13: usage records without what a void needs) too */
    raw_write(f, "meta", "format", 6, "\4", 1);
    assert_int_equal(open_store(f, 0, 0, CUR, 0, &f->s), STORE_EMISMATCH);
    assert_non_null(strstr(f->err, "has format 4, this build reads format 6: rebuild it by replaying"));
    /* format 5 (before issue 11: an org over four databases) too */
    raw_write(f, "meta", "format", 6, "\5", 1);
    assert_int_equal(open_store(f, 0, 0, CUR, 0, &f->s), STORE_EMISMATCH);
    assert_non_null(strstr(f->err, "has format 5, this build reads format 6: rebuild it by replaying"));
    raw_write(f, "meta", "format", 6, "\6", 1);
    reopen(f, 0);
}

/* A store as format 5 left it (the org spread over orgs, sequences,
 * org_credits and months) is refused by writers and readers alike, saying
 * how to rebuild it, and left as it was. */
static void test_format5_store_refused(void **state) {
    struct fx *f = *state;
    static const char *const dbs[] = { "meta", "orgs", "sequences", "org_credits", "project_credits",
                                       "months", "org_partition", "partitions", "dedupe", "outbox",
                                       "offsets", "dedupe_expiry" };
    static const uint8_t orgv[] = { 5, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x10, 0x5f, 0, 0 };
    static const uint8_t seqv[33] = { 5, 1 };
    char path[sizeof(f->path)];
    MDB_env *env;
    MDB_txn *t;
    MDB_dbi dbi[12];
    snprintf(path, sizeof(path), "%s/f5", f->dir);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
    assert_int_equal(mdb_env_open(env, path, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &t), 0);
    for (int i = 0; i < 12; i++) assert_int_equal(mdb_dbi_open(t, dbs[i], MDB_CREATE, &dbi[i]), 0);
    MDB_val k = { 6, "format" }, v = { 1, "\5" };
    assert_int_equal(mdb_put(t, dbi[0], &k, &v, 0), 0);
    k = (MDB_val){ 2, "g1" };
    v = (MDB_val){ sizeof(orgv), (void *)orgv };
    assert_int_equal(mdb_put(t, dbi[1], &k, &v, 0), 0);
    v = (MDB_val){ sizeof(seqv), (void *)seqv };
    assert_int_equal(mdb_put(t, dbi[2], &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(t), 0);
    mdb_env_close(env);
    for (int ro = 0; ro <= 1; ro++) {
        struct store *s2 = (struct store *)1;
        struct store_opts o = { .path = path, .readonly = ro, .nosync = 1, .currency = CUR };
        f->err[0] = 0;
        assert_int_equal(store_open(&s2, &o, f->err, sizeof(f->err)), STORE_EMISMATCH);
        assert_null(s2);
        assert_non_null(strstr(f->err, "has format 5, this build reads format 6: rebuild it by "
                                       "replaying the input into a new store (credit-replay --db NEWDIR"));
    }
    /* left as it was: format 5, the sequences record there */
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
    assert_int_equal(mdb_env_open(env, path, MDB_RDONLY, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &t), 0);
    assert_int_equal(mdb_dbi_open(t, "meta", 0, &dbi[0]), 0);
    k = (MDB_val){ 6, "format" };
    assert_int_equal(mdb_get(t, dbi[0], &k, &v), 0);
    assert_true(v.mv_size == 1 && ((const uint8_t *)v.mv_data)[0] == 5);
    assert_int_equal(mdb_dbi_open(t, "sequences", 0, &dbi[2]), 0);
    k = (MDB_val){ 2, "g1" };
    assert_int_equal(mdb_get(t, dbi[2], &k, &v), 0);
    assert_int_equal(mdb_dbi_open(t, "changes", 0, &dbi[3]), MDB_NOTFOUND);  /* nothing created */
    mdb_txn_abort(t);
    mdb_env_close(env);
}

static int on_partition(struct fx *f, int32_t part, struct visit *v) {
    return f->ops.orgs_on_partition(f->ops.ctx, part, visit_cb, v, f->err, sizeof(f->err));
}

/* Keys that no writer of this store makes, and the writer's own reads. */
static void test_corrupt_keys(void **state) {
    struct fx *f = *state;
    struct eng_org o, got;
    struct scanned sc = { .stop = -1 };
    struct visit v = { .f = f, .stop_at = -1 };
    const uint8_t orgval[17] = { 1, 3 };            /* partition 3, watermark 0, open month 0 */
    const char ipk[] = "\0\0\0\3a\0b";               /* org_partition: partition 3, org "a\0b" */
    make_org(&o, "org-1", 3, 1);
    put_org(f, &o);
    eng_org_init(&got);
    raw_put(f, "orgs", "b\0c", 3, orgval, sizeof(orgval));
    assert_int_equal(store_scan_orgs(f->s, scan_cb, &sc, f->err, sizeof(f->err)), STORE_ECORRUPT);
    assert_corrupt_err(f->err, "orgs", "\"b\\x00c\"", "org id contains a NUL byte");
    raw_put(f, "orgs", "b\0c", 3, NULL, 0);
    raw_put(f, "project_credits", "org-1\0p\0x", 9, orgval, 1);
    assert_int_equal(get_org(f, "org-1", &got), ENG_ESTORE);
    assert_corrupt_err(f->err, "project_credits", "\"org-1\\x00p\\x00x\"", "project id contains a NUL byte");
    raw_put(f, "project_credits", "org-1\0p\0x", 9, NULL, 0);
    raw_put(f, "project_credits", "org-1\0", 6, orgval, 1);
    assert_int_equal(get_org(f, "org-1", &got), ENG_ESTORE);
    assert_corrupt_err(f->err, "project_credits", "\"org-1\\x00\"", "a project record without a project id");
    raw_put(f, "project_credits", "org-1\0", 6, NULL, 0);
    raw_put(f, "org_partition", ipk, 7, orgval, 1);
    begin(f);
    assert_int_equal(on_partition(f, 3, &v), ENG_ESTORE);
    assert_corrupt_err(f->err, "org_partition", "partition 3 org \"a\\x00b\"", "org id contains a NUL byte");
    store_abort(f->s);
    raw_put(f, "org_partition", ipk, 7, NULL, 0);
    corrupt(f, "org_partition", "\0\0\0\3org-1", 9, M_VERSION, 0, 0);
    begin(f);
    assert_int_equal(on_partition(f, 3, &v), ENG_ESTORE);
    assert_corrupt_err(f->err, "org_partition", "partition 3 org \"org-1\"", "unknown format version");
    store_abort(f->s);
    /* org_put reads the old orgs record to move the index */
    corrupt(f, "orgs", "org-1", 0, M_TRUNC, 0, 0);
    o.dirty = ENG_DIRTY_META;
    begin(f);
    assert_int_equal(f->ops.org_put(f->ops.ctx, &o, f->err, sizeof(f->err)), ENG_ESTORE);
    assert_corrupt_err(f->err, "orgs", "\"org-1\"", "truncated");
    store_abort(f->s);
    eng_org_free(&o);
    eng_org_free(&got);
}

/* Through the engine: a corrupt record fails the event with ENG_ESTORE. */
static void test_corrupt_engine(void **state) {
    struct fx *f = *state;
    struct eng_org o;
    struct engine *e;
    struct engine_config ec = { .close_after_s = 0, .currency = CUR };
    struct engine_result res;
    const char *ev = "{\"specversion\":\"1.0\",\"id\":\"u1\",\"source\":\"s\",\"type\":\"usage\","
                     "\"time\":\"2026-03-01T10:00:00Z\",\"data\":{\"org\":\"org-1\",\"project\":\"p\","
                     "\"resource\":\"r\",\"offering\":\"o\",\"component\":\"c\",\"amount\":\"1\"}}";
    struct engine_msg m = { ev, strlen(ev), NULL, 3, 1 };
    make_org(&o, "org-1", 3, 1);
    put_org(f, &o);
    eng_org_free(&o);
    corrupt(f, "orgs", "org-1", 0, M_BYTE, 67, 200);  /* the credit's grace coefficient */
    assert_int_equal(engine_new(&e, &ec, f->err, sizeof(f->err)), 0);
    begin(f);
    assert_int_equal(engine_apply(e, &f->ops, &m, &res, f->err, sizeof(f->err)), ENG_ESTORE);
    assert_corrupt_err(f->err, "orgs", "\"org-1\"", "terms: grace coefficient 200 (0..100)");
    store_abort(f->s);
    engine_free(e);
}

/* A read-only tool with a corrupt hook reports each corrupt record and goes on. */
struct bad { int n; char first[512]; };
static void bad_cb(void *arg, const char *msg) {
    struct bad *b = arg;
    if (b->n++ == 0) snprintf(b->first, sizeof(b->first), "%s", msg);
}

static void test_corrupt_views_go_on(void **state) {
    struct fx *f = *state;
    struct store_counters d = { 1, 2, 3 };
    uint8_t k1[8];
    struct store *ro;
    be64_key(k1, 1);
    for (int i = 0; i < 3; i++) put_simple(f, (const char *[]){ "a", "b", "c" }[i], 0);
    outbox_two(f);
    begin(f);
    assert_int_equal(store_counters_add(f->s, &d, f->err, sizeof(f->err)), STORE_OK);
    commit(f);
    corrupt(f, "orgs", "b", 0, M_TRAIL, 0, 0);
    corrupt(f, "outbox", (const char *)k1, 8, M_BYTE, 1, 9);
    corrupt(f, "meta", "counters", 0, M_VERSION, 0, 0);
    assert_int_equal(open_store(f, 0, 0, NULL, 1, &ro), STORE_OK);
    /* without the hook the views stop */
    struct scanned sc = { .stop = -1 };
    assert_int_equal(store_scan_orgs(ro, scan_cb, &sc, f->err, sizeof(f->err)), STORE_ECORRUPT);
    assert_int_equal(sc.n, 1);
    struct bad b = { 0 };
    store_set_corrupt_hook(ro, bad_cb, &b);
    struct scanned sc2 = { .stop = -1 };
    assert_int_equal(store_scan_orgs(ro, scan_cb, &sc2, f->err, sizeof(f->err)), STORE_OK);
    assert_int_equal(sc2.n, 2);
    assert_string_equal(sc2.ids[0], "a");
    assert_string_equal(sc2.ids[1], "c");
    assert_int_equal(b.n, 1);
    assert_corrupt_err(b.first, "orgs", "\"b\"", "1 trailing bytes");
    struct seen sn = { .stop = 0 };
    b.n = 0;
    assert_int_equal(store_outbox_scan(ro, 0, seen_cb, &sn, f->err, sizeof(f->err)), STORE_OK);
    assert_int_equal(sn.n, 1);
    assert_int_equal(sn.seq[0], 2);
    assert_int_equal(b.n, 1);
    assert_corrupt_err(b.first, "outbox", "seq 1", "output kind 9");
    struct store_stats st;
    b.n = 0;
    assert_int_equal(store_stats(ro, &st, f->err, sizeof(f->err)), STORE_OK);
    assert_int_equal(b.n, 1);
    assert_corrupt_err(b.first, "meta", "\"counters\"", "record format version 7");
    assert_int_equal(st.counters.applied, 0);
    assert_string_equal(st.currency, CUR);
    assert_int_equal(st.db[1].entries, 3);
    struct eng_org o;
    eng_org_init(&o);
    assert_int_equal(store_get_org(ro, "b", &o, f->err, sizeof(f->err)), STORE_ECORRUPT);
    assert_int_equal(store_get_org(ro, "c", &o, f->err, sizeof(f->err)), STORE_OK);
    eng_org_free(&o);
    store_close(ro);
}

/* ---- one writer per store ---------------------------------------------------- */

static void assert_locked_msg(const struct fx *f, long pid) {
    char want[512];
    snprintf(want, sizeof(want), "store %s is already open for writing (pid %ld holds %s/writer.lock)",
             f->path, pid, f->path);
    if (!strstr(f->err, want)) fail_msg("error '%s' should say '%s'", f->err, want);
}

/* flock locks belong to the open file description: a second writing open in
 * the same process is refused as one from another process would be. */
static void test_writer_lock(void **state) {
    struct fx *f = *state;
    struct store *s2 = NULL, *ro = NULL;
    put_simple(f, "a", 0);
    assert_int_equal(open_store(f, 0, 0, CUR, 0, &s2), STORE_ELOCKED);
    assert_null(s2);
    assert_locked_msg(f, (long)getpid());
    /* readers take no lock, and see the writer's data */
    struct eng_org o;
    eng_org_init(&o);
    assert_int_equal(open_store(f, 0, 0, NULL, 1, &ro), STORE_OK);
    assert_int_equal(store_get_org(ro, "a", &o, f->err, sizeof(f->err)), STORE_OK);
    store_close(ro);
    /* the writer still works after the refusal (the refused open touched nothing) */
    put_simple(f, "b", 0);
    /* closing releases the lock */
    store_close(f->s);
    f->s = NULL;
    assert_int_equal(open_store(f, 0, 0, CUR, 0, &s2), STORE_OK);
    assert_int_equal(store_get_org(s2, "b", &o, f->err, sizeof(f->err)), STORE_OK);
    f->s = s2;
    store_engine_ops(f->s, &f->ops);
    eng_org_free(&o);
}

/* A writer in another process: refused with its pid; its death (no
 * store_close) releases the lock. */
static void test_writer_lock_process(void **state) {
    struct fx *f = *state;
    int ready[2], hold[2];
    char c = 0;
    store_close(f->s);
    f->s = NULL;
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(hold), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct store *s;
        close(ready[0]);
        close(hold[1]);
        alarm(20);
        if (open_store(f, 0, 0, CUR, 0, &s) != STORE_OK) _exit(10);
        if (write(ready[1], "r", 1) != 1) _exit(11);
        (void)!read(hold[0], &c, 1);  /* until the parent has looked (or died) */
        _exit(0);                     /* no store_close: the kernel drops the lock */
    }
    close(ready[1]);
    close(hold[0]);
    assert_int_equal(read(ready[0], &c, 1), 1);
    assert_int_equal(open_store(f, 0, 0, CUR, 0, &f->s), STORE_ELOCKED);
    assert_locked_msg(f, (long)pid);
    struct store *ro;
    assert_int_equal(open_store(f, 0, 0, NULL, 1, &ro), STORE_OK);
    store_close(ro);
    close(hold[1]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    close(ready[0]);
    reopen(f, 0);
    put_simple(f, "after", 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prefix_orgs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dirty_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_format5_store_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deletes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_orgs_on_partition, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dedupe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dedupe_collision, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offsets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_counters_stats_meta, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort_restores, setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_full, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_meta_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_future_pinned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readonly_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readonly_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan_orgs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_org_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_clock_dedupe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_outbox, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_meta_offsets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dedupe_usage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_engine, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_views_go_on, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_lock_process, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
