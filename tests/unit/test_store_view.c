/* test_store_view.c -- unit tests of the store's views for other threads
 * (store.h: store_view_*): what they see while the writer works, scans
 * with `after`, corrupt records, and map growth while a view is open on
 * another thread (growth must wait for it, and hold off new views). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lmdb.h>  /* only to forge a corrupt record behind the store's back */

#include "engine/engine.h"
#include "engine/state.h"
#include "store/store.h"
#include "tests/unit/tmpdir.h"
#include "store/store_int.h"  /* map_lock: to see that growth waits */

#define WAIT_S 20  /* bound of every wait for another thread */

struct fx {
    char dir[64];
    char path[96];
    struct store *s;
    struct engine_store ops;
    char err[512];
};

static int open_at(struct fx *f, size_t map) {
    struct store_opts o = { .path = f->path, .map_size = map, .nosync = 1, .currency = "EUR" };
    int rc = store_open(&f->s, &o, f->err, sizeof(f->err));
    if (rc == STORE_OK) store_engine_ops(f->s, &f->ops);
    return rc;
}

static int setup_map(void **state, size_t map) {
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    strcpy(f->dir, "/tmp/test_store_view.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/db", f->dir);
    assert_int_equal(open_at(f, map), STORE_OK);
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

/* One committed org: partition 1, a credit of `value` micro-units, and
 * with proj a project "p" with a credit of 1 micro-unit. */
static void put_org(struct fx *f, const char *id, int64_t value, int proj) {
    struct eng_org o;
    eng_org_init(&o);
    strcpy(o.id, id);
    o.partition = 1;
    o.watermark = INT64_C(1767225600000000000);
    o.open_month = 24312;
    o.has_credit = 1;
    o.value = value;
    o.dirty = ENG_DIRTY_META | ENG_DIRTY_CREDIT;
    if (proj) {
        struct eng_project *p = eng_org_add_project(&o, "p");
        assert_non_null(p);
        p->has_credit = 1;
        p->value = 1;
        p->dirty = ENG_DIRTY_CREDIT;
        o.alloc_sum = 1;
    }
    assert_int_equal(store_begin(f->s, f->err, sizeof(f->err)), STORE_OK);
    assert_int_equal(f->ops.org_put(f->ops.ctx, &o, f->err, sizeof(f->err)), ENG_OK);
    assert_int_equal(store_commit(f->s, f->err, sizeof(f->err)), STORE_OK);
    eng_org_free(&o);
}

/* The org's value through a new view: -1 when there is no such org. */
static int64_t view_value(struct store *s, const char *id) {
    struct store_view *v;
    struct eng_org o;
    char err[512];
    int64_t value = -1;
    eng_org_init(&o);
    if (store_view_begin(s, &v, err, sizeof(err)) != STORE_OK) return -2;
    int rc = store_view_get_org(v, id, &o, err, sizeof(err));
    if (rc == STORE_OK) value = o.value;
    else if (rc != STORE_NOTFOUND) value = -3;
    store_view_end(v);
    eng_org_free(&o);
    return value;
}

static struct timespec deadline(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += WAIT_S;
    return ts;
}

/* ---- a view on another thread while the writer works --------------------- */

/* Steps between the test and its view thread (cmocka asserts only on the
 * main thread: the view thread records what it saw). */
struct steps {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int step;
};

static int step_wait(struct steps *st, int want) {
    struct timespec ts = deadline();
    int rc = 0;
    pthread_mutex_lock(&st->mu);
    while (st->step < want && rc == 0) rc = pthread_cond_timedwait(&st->cv, &st->mu, &ts);
    pthread_mutex_unlock(&st->mu);
    return st->step >= want ? 0 : -1;
}

static void step_set(struct steps *st, int step) {
    pthread_mutex_lock(&st->mu);
    st->step = step;
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
}

struct commit_arg {
    struct fx *f;
    struct steps st;
    int64_t seen_a, seen_b_in_view, seen_a_again;
    int fail;
};

/* Opens a view (step 1), waits for the test's commit (step 2), reads. */
static void *commit_reader(void *arg) {
    struct commit_arg *a = arg;
    struct store_view *v;
    struct eng_org o;
    char err[512];
    eng_org_init(&o);
    if (store_view_begin(a->f->s, &v, err, sizeof(err))) { a->fail = 1; step_set(&a->st, 1); return NULL; }
    a->seen_a = store_view_get_org(v, "a", &o, err, sizeof(err)) == STORE_OK ? o.value : -1;
    step_set(&a->st, 1);
    if (step_wait(&a->st, 2)) a->fail = 2;
    a->seen_b_in_view = store_view_get_org(v, "b", &o, err, sizeof(err)) == STORE_NOTFOUND ? -1 : 0;
    a->seen_a_again = store_view_get_org(v, "a", &o, err, sizeof(err)) == STORE_OK ? o.value : -1;
    store_view_end(v);
    eng_org_free(&o);
    return NULL;
}

/* A view sees the committed state it began in, not the writer's open batch
 * nor a batch committed while it is open (and does not hold that commit
 * up); a new view sees the commit. */
static void test_view_snapshot(void **state) {
    struct fx *f = *state;
    struct commit_arg a = { .f = f, .st = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 } };
    pthread_t th;
    put_org(f, "a", 10, 0);
    assert_int_equal(store_begin(f->s, f->err, sizeof(f->err)), STORE_OK);  /* an open batch */
    assert_int_equal(pthread_create(&th, NULL, commit_reader, &a), 0);
    assert_int_equal(step_wait(&a.st, 1), 0);
    store_abort(f->s);
    put_org(f, "b", 20, 0);  /* committed while the view is open */
    put_org(f, "a", 11, 0);
    step_set(&a.st, 2);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(a.fail, 0);
    assert_int_equal(a.seen_a, 10);
    assert_int_equal(a.seen_b_in_view, -1);
    assert_int_equal(a.seen_a_again, 10);
    assert_int_equal(view_value(f->s, "a"), 11);
    assert_int_equal(view_value(f->s, "b"), 20);
    assert_int_equal(view_value(f->s, "nope"), -1);
    assert_int_equal(view_value(f->s, ""), -1);
    char longid[ENG_ID_MAX + 2];
    memset(longid, 'x', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = 0;
    assert_int_equal(view_value(f->s, longid), -1);  /* no assert on an over-long id */
}

/* ---- the outbox from another thread (creditd's relay thread) -------------- */

struct outbox_arg {
    struct fx *f;
    uint64_t after;
    uint64_t seqs[8];
    int n, rc;
};

static int outbox_cb(void *arg, uint64_t seq, enum eng_out_kind kind, const char *key,
                     const char *json, size_t len) {
    struct outbox_arg *a = arg;
    (void)kind, (void)key;
    if (a->n >= 8 || json[len] != 0) return 99;
    a->seqs[a->n++] = seq;
    return 0;
}

static void *outbox_reader(void *arg) {
    struct outbox_arg *a = arg;
    struct store_view *v;
    char err[512];
    a->rc = store_view_begin(a->f->s, &v, err, sizeof(err));
    if (a->rc == STORE_OK) a->rc = store_view_outbox_scan(v, a->after, outbox_cb, a, err, sizeof(err));
    store_view_end(v);
    return NULL;
}

/* On its own thread: the outbox entries after a->after. */
static struct outbox_arg outbox_from_thread(struct fx *f, uint64_t after) {
    struct outbox_arg a = { .f = f, .after = after, .rc = -7 };
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, outbox_reader, &a), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    return a;
}

static void emit_n(struct fx *f, int n) {
    for (int i = 0; i < n; i++)
        assert_int_equal(f->ops.emit(f->ops.ctx, ENG_OUT_LEDGER, "k", "{}", 2, f->err, sizeof(f->err)), ENG_OK);
}

/* A view's outbox scan sees the committed entries only (not the writer's
 * open batch), from `after` on; meta outbox_seq, written once at the
 * commit, keeps the seqs going across transactions. */
static void test_view_outbox(void **state) {
    struct fx *f = *state;
    assert_int_equal(store_begin(f->s, f->err, sizeof(f->err)), STORE_OK);
    emit_n(f, 2);
    assert_int_equal(store_commit(f->s, f->err, sizeof(f->err)), STORE_OK);
    assert_int_equal(store_begin(f->s, f->err, sizeof(f->err)), STORE_OK);
    emit_n(f, 3);  /* open: seqs 3..5 */
    struct outbox_arg a = outbox_from_thread(f, 0);
    assert_int_equal(a.rc, STORE_OK);
    assert_int_equal(a.n, 2);
    assert_int_equal(a.seqs[0], 1);
    assert_int_equal(a.seqs[1], 2);
    assert_int_equal(store_commit(f->s, f->err, sizeof(f->err)), STORE_OK);
    a = outbox_from_thread(f, 3);
    assert_int_equal(a.rc, STORE_OK);
    assert_int_equal(a.n, 2);
    assert_int_equal(a.seqs[0], 4);
    assert_int_equal(a.seqs[1], 5);
    /* emptied, then one more batch after a reopen: seq 6 */
    assert_int_equal(store_begin(f->s, f->err, sizeof(f->err)), STORE_OK);
    assert_int_equal(store_outbox_delete_upto(f->s, 5, f->err, sizeof(f->err)), STORE_OK);
    assert_int_equal(store_commit(f->s, f->err, sizeof(f->err)), STORE_OK);
    store_close(f->s);
    assert_int_equal(open_at(f, 0), STORE_OK);
    assert_int_equal(store_begin(f->s, f->err, sizeof(f->err)), STORE_OK);
    emit_n(f, 1);
    assert_int_equal(store_commit(f->s, f->err, sizeof(f->err)), STORE_OK);
    a = outbox_from_thread(f, 0);
    assert_int_equal(a.rc, STORE_OK);
    assert_int_equal(a.n, 1);
    assert_int_equal(a.seqs[0], 6);
}

/* ---- scans ------------------------------------------------------------------ */

struct scanned { char ids[8][ENG_ID_MAX + 1]; size_t nproj[8]; int n, stop; };

static int scan_cb(void *arg, const struct eng_org *o) {
    struct scanned *s = arg;
    if (s->n >= 8) return 99;
    strcpy(s->ids[s->n], o->id);
    s->nproj[s->n] = o->nproj;
    s->n++;
    return s->n == s->stop ? 42 : 0;
}

static int scan(struct fx *f, const char *after, struct scanned *s, char bad[ENG_ID_MAX + 1]) {
    struct store_view *v;
    assert_int_equal(store_view_begin(f->s, &v, f->err, sizeof(f->err)), STORE_OK);
    int rc = store_view_scan_orgs(v, after, scan_cb, s, bad, f->err, sizeof(f->err));
    store_view_end(v);
    return rc;
}

static void assert_ids(const struct scanned *s, const char *const *want, int n) {
    assert_int_equal(s->n, n);
    for (int i = 0; i < n; i++) assert_string_equal(s->ids[i], want[i]);
}

static void test_view_scan_after(void **state) {
    struct fx *f = *state;
    char bad[ENG_ID_MAX + 1];
    struct scanned s = { .stop = -1 };
    assert_int_equal(scan(f, NULL, &s, bad), STORE_OK);
    assert_int_equal(s.n, 0);
    const char *ids[] = { "m", "b", "z", "ba" };
    for (int i = 0; i < 4; i++) put_org(f, ids[i], 5, i == 0);
    const char *all[] = { "b", "ba", "m", "z" };
    memset(&s, 0, sizeof(s));
    s.stop = -1;
    assert_int_equal(scan(f, "", &s, bad), STORE_OK);
    assert_ids(&s, all, 4);
    assert_int_equal(s.nproj[2], 1);  /* loaded whole: m's project */
    memset(&s, 0, sizeof(s));
    s.stop = -1;
    assert_int_equal(scan(f, "b", &s, bad), STORE_OK);  /* strictly after */
    assert_ids(&s, all + 1, 3);
    memset(&s, 0, sizeof(s));
    s.stop = -1;
    assert_int_equal(scan(f, "bz", &s, bad), STORE_OK);  /* not an org: the next one */
    assert_ids(&s, all + 2, 2);
    memset(&s, 0, sizeof(s));
    s.stop = -1;
    assert_int_equal(scan(f, "zz", &s, bad), STORE_OK);
    assert_int_equal(s.n, 0);
    memset(&s, 0, sizeof(s));
    s.stop = 2;
    assert_int_equal(scan(f, "a", &s, bad), 42);  /* cb's value, as is */
    assert_ids(&s, all, 2);
}

/* A corrupt record stops a scan with STORE_ECORRUPT naming db, key and
 * org; a lookup of that org too; the others still read. */
static void test_view_corrupt(void **state) {
    struct fx *f = *state;
    char bad[ENG_ID_MAX + 1];
    put_org(f, "a", 5, 0);
    put_org(f, "m", 5, 0);
    store_close(f->s);
    f->s = NULL;
    MDB_env *env;
    MDB_txn *t;
    MDB_dbi dbi;
    uint8_t junk[2] = { STORE_FORMAT_VERSION, 0xff };
    MDB_val key = { 1, (void *)"m" }, val = { sizeof(junk), junk };
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
    assert_int_equal(mdb_env_open(env, f->path, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &t), 0);
    assert_int_equal(mdb_dbi_open(t, "orgs", 0, &dbi), 0);
    assert_int_equal(mdb_put(t, dbi, &key, &val, 0), 0);
    assert_int_equal(mdb_txn_commit(t), 0);
    mdb_env_close(env);
    assert_int_equal(open_at(f, 0), STORE_OK);
    struct scanned s = { .stop = -1 };
    assert_int_equal(scan(f, NULL, &s, bad), STORE_ECORRUPT);
    assert_int_equal(s.n, 1);
    assert_string_equal(bad, "m");
    assert_non_null(strstr(f->err, "db orgs key \"m\""));
    memset(&s, 0, sizeof(s));
    s.stop = -1;
    assert_int_equal(scan(f, "m", &s, bad), STORE_OK);  /* past it */
    assert_int_equal(view_value(f->s, "m"), -3);
    assert_int_equal(view_value(f->s, "a"), 5);
}

/* ---- map growth while a view is open on another thread ---------------------- */

struct grow_arg {
    struct fx *f;
    struct steps st;
    atomic_int grown;        /* the writer's store_abort (which grows) returned */
    int writer_waited;       /* growth waited for the open view */
    int64_t before, during;  /* the org's value read in the view */
    int fail;
};

/* 1 once a writer waits on the map lock: new readers are then held off
 * (writer-preferring), so a try fails. */
static int writer_waiting(struct store *s) {
    int rc = pthread_rwlock_tryrdlock(&s->map_lock);
    if (rc == 0) pthread_rwlock_unlock(&s->map_lock);
    return rc == EBUSY;
}

static void *grow_reader(void *arg) {
    struct grow_arg *a = arg;
    struct store_view *v;
    struct eng_org o;
    char err[512];
    eng_org_init(&o);
    if (store_view_begin(a->f->s, &v, err, sizeof(err))) { a->fail = 1; step_set(&a->st, 1); return NULL; }
    a->before = store_view_get_org(v, "a", &o, err, sizeof(err)) == STORE_OK ? o.value : -1;
    step_set(&a->st, 1);
    time_t end = time(NULL) + WAIT_S;
    while (!writer_waiting(a->f->s) && !atomic_load(&a->grown) && time(NULL) < end) sched_yield();
    a->writer_waited = writer_waiting(a->f->s) && !atomic_load(&a->grown);
    /* the map is still the one this view reads */
    a->during = store_view_get_org(v, "a", &o, err, sizeof(err)) == STORE_OK ? o.value : -1;
    store_view_end(v);
    eng_org_free(&o);
    return NULL;
}

/* The writer fills the map (MDB_MAP_FULL) while a view is open on another
 * thread: store_abort grows the map only once the view has ended, and new
 * views wait behind the growth. */
static void test_view_growth(void **state) {
    struct fx *f = *state;
    struct grow_arg a = { .f = f, .st = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 } };
    struct store_stats st;
    pthread_t th;
    put_org(f, "a", 77, 1);
    assert_int_equal(store_stats(f->s, &st, f->err, sizeof(f->err)), STORE_OK);
    uint64_t map0 = st.map_size;
    assert_int_equal(pthread_create(&th, NULL, grow_reader, &a), 0);
    assert_int_equal(step_wait(&a.st, 1), 0);
    assert_int_equal(store_begin(f->s, f->err, sizeof(f->err)), STORE_OK);
    int puts = 0;
    for (; puts < 100000; puts++) {
        struct eng_dedupe d = { .hash = (uint64_t)puts, .time = ENG_NO_TIME, .partition = -1 };
        uint8_t k[400];
        memset(k, 'k', sizeof(k));
        memcpy(k, &puts, sizeof(puts));
        if (f->ops.dedupe_put(f->ops.ctx, k, sizeof(k), &d, f->err, sizeof(f->err)) != ENG_OK) break;
    }
    assert_true(store_map_full(f->s));
    store_abort(f->s);  /* grows: waits for the view */
    atomic_store(&a.grown, 1);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(a.fail, 0);
    assert_true(a.writer_waited);
    assert_int_equal(a.before, 77);
    assert_int_equal(a.during, 77);
    assert_int_equal(store_stats(f->s, &st, f->err, sizeof(f->err)), STORE_OK);
    assert_int_equal(st.map_size, 2 * map0);
    assert_int_equal(view_value(f->s, "a"), 77);  /* on the new map */
    put_org(f, "b", 3, 0);
    assert_int_equal(view_value(f->s, "b"), 3);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_view_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_view_scan_after, setup, teardown),
        cmocka_unit_test_setup_teardown(test_view_outbox, setup, teardown),
        cmocka_unit_test_setup_teardown(test_view_corrupt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_view_growth, setup_small, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
