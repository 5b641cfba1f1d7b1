/* store_org.c -- org state on LMDB: the engine's org_get / org_put, the
 * org_partition index and partition clocks, and the org views (store.h).
 *
 * Format 6: an org is one orgs record (keyed by the id: partition,
 * watermark, open month, sequences, credit, its own months) and one
 * project_credits record per project (keyed by id \0 project: credit and
 * months; a project with neither has no record).  org_partition (partition
 * BE32 + id) lists the orgs pinned to a partition, in id order, for ticks.
 */
#undef NDEBUG /* asserts (programmer errors only, never read data) stay on in release builds */
#include "store/store_int.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- keys -------------------------------------------------------------- */

static size_t org_key_len(const char *id) {
    size_t n = strlen(id);
    assert(n > 0 && n <= ENG_ID_MAX);
    return n;
}

/* org \0 project */
static size_t proj_key(uint8_t *k, const char *org, size_t olen, const char *proj) {
    size_t plen = strlen(proj);
    assert(plen <= ENG_ID_MAX);
    memcpy(k, org, olen);
    k[olen] = 0;
    memcpy(k + olen + 1, proj, plen);
    return olen + 1 + plen;
}

size_t st_proj_key(uint8_t *k, const char *org, const char *proj) {
    return proj_key(k, org, org_key_len(org), proj);
}

static size_t part_key(uint8_t *k, int32_t partition, const char *org, size_t olen) {
    assert(partition >= 0);
    st_be32(k, (uint32_t)partition);
    memcpy(k + 4, org, olen);
    return 4 + olen;
}

/* ---- org_get ----------------------------------------------------------- */

/* The project id in key k (olen bytes of org, \0, the id): 0, or -1 with why. */
static int key_project(const uint8_t *k, size_t kl, size_t olen, char id[ENG_ID_MAX + 1],
                       char *why, size_t whylen) {
    const uint8_t *pid = k + olen + 1;
    size_t plen = kl - olen - 1;
    if (plen > ENG_ID_MAX)
        snprintf(why, whylen, "project id of %zu bytes (at most %d)", plen, ENG_ID_MAX);
    else if (memchr(pid, 0, plen))
        snprintf(why, whylen, "project id contains a NUL byte");
    else if (plen == 0)
        snprintf(why, whylen, "a project record without a project id");
    else {
        memcpy(id, pid, plen);
        id[plen] = 0;
        return 0;
    }
    return -1;
}

/* One project_credits record (key k, value v) of org o. */
static int load_one(struct store *s, struct eng_org *o, const MDB_val *k, size_t olen,
                    const MDB_val *v, char *err, size_t errlen) {
    char id[ENG_ID_MAX + 1], why[ST_WHY_MAX];
    if (key_project(k->mv_data, k->mv_size, olen, id, why, sizeof(why)))
        return st_corrupt(s, DB_PROJCRED, k->mv_data, k->mv_size, why, err, errlen);
    struct eng_project *p = eng_org_add_project(o, id);
    if (!p) return st_fail(err, errlen, "store: load org %s project %s: out of memory", o->id, id);
    if (st_dec_proj(v, p, why, sizeof(why)))
        return st_corrupt(s, DB_PROJCRED, k->mv_data, k->mv_size, why, err, errlen);
    return 0;
}

/* Every project_credits record whose key starts with o->id \0. */
static int load_projects(struct store *s, MDB_txn *t, struct eng_org *o, size_t olen, char *err,
                         size_t errlen) {
    uint8_t k[ENG_ID_MAX + 1];
    MDB_cursor *c;
    MDB_val key = { olen + 1, k }, v;
    memcpy(k, o->id, olen);
    k[olen] = 0;
    int rc = st_cursor_open(s, t, DB_PROJCRED, &c, err, errlen);
    if (rc) return rc;
    int mrc = mdb_cursor_get(c, &key, &v, MDB_SET_RANGE);
    while (mrc == 0) {
        if (key.mv_size < olen + 1 || memcmp(key.mv_data, k, olen + 1) != 0) break;
        if ((rc = load_one(s, o, &key, olen, &v, err, errlen)) != 0) break;
        mrc = mdb_cursor_get(c, &key, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    if (!rc && mrc != 0 && mrc != MDB_NOTFOUND)
        rc = st_lmdb_fail(s, mrc, "read", st_db_names[DB_PROJCRED], err, errlen);
    return rc;
}

int st_load_org(struct store *s, MDB_txn *t, const char *id, struct eng_org *o, int with_projects,
                char *err, size_t errlen) {
    size_t olen = org_key_len(id);
    struct eng_project *keep = o->proj;
    size_t cap = o->capproj;
    char why[ST_WHY_MAX];
    MDB_val v;
    eng_org_init(o);
    o->proj = keep;
    o->capproj = cap;
    int rc = st_db_get(s, t, DB_ORGS, id, olen, &v, err, errlen);
    if (rc) return rc;
    if (st_dec_org(&v, o, why, sizeof(why))) return st_corrupt(s, DB_ORGS, id, olen, why, err, errlen);
    memcpy(o->id, id, olen + 1);
    if (!with_projects) return 0;
    rc = load_projects(s, t, o, olen, err, errlen);
    if (!rc) o->all_projects = 1;
    return rc;
}

int st_org_get(struct store *s, const char *id, struct eng_org *out, char *err, size_t errlen) {
    assert(s->txn);
    if (s->cache) return st_cache_org_get(s, id, out, err, errlen);
    return st_load_org(s, s->txn, id, out, 0, err, errlen);
}

int st_project_get(struct store *s, const char *org, const char *project, struct eng_project *out,
                   char *err, size_t errlen) {
    if (s->cache) return st_cache_project_get(s, org, project, out, err, errlen);
    return st_project_load(s, org, project, out, err, errlen);
}

int st_project_load(struct store *s, const char *org, const char *project, struct eng_project *out,
                    char *err, size_t errlen) {
    uint8_t k[PKEY_MAX];
    char why[ST_WHY_MAX];
    MDB_val v;
    assert(s->txn && project[0]);
    size_t kl = proj_key(k, org, org_key_len(org), project);
    int rc = st_db_get(s, s->txn, DB_PROJCRED, k, kl, &v, err, errlen);
    if (rc) return rc;
    if (st_dec_proj(&v, out, why, sizeof(why)))
        return st_corrupt(s, DB_PROJCRED, k, kl, why, err, errlen);
    strcpy(out->id, project);
    return 0;
}

int st_projects_get(struct store *s, const char *org, struct eng_org *out, char *err,
                    size_t errlen) {
    if (s->cache) return st_cache_projects_get(s, org, out, err, errlen);
    return st_projects_load(s, org, out, err, errlen);
}

int st_projects_load(struct store *s, const char *org, struct eng_org *out, char *err,
                     size_t errlen) {
    size_t olen = org_key_len(org);
    assert(s->txn);
    memcpy(out->id, org, olen + 1);
    out->nproj = 0;
    return load_projects(s, s->txn, out, olen, err, errlen);
}

/* ---- org_put ----------------------------------------------------------- */

/* The orgs record (the whole org but its projects) + the org_partition
 * index entry. */
static int put_org_rec(struct store *s, const struct eng_org *o, size_t olen, char *err, size_t errlen) {
    uint8_t buf[ORG_MAX], pk[4 + ENG_ID_MAX];
    const uint8_t mark = STORE_FORMAT_VERSION;
    char why[ST_WHY_MAX];
    MDB_val old;
    assert(o->partition >= 0);
    int oldpart_same = 0;
    int rc = st_db_get(s, s->txn, DB_ORGS, o->id, olen, &old, err, errlen);
    if (rc < 0) return rc;
    if (rc == 0) {
        int32_t oldpart;
        if (st_dec_org_partition(&old, &oldpart, why, sizeof(why)))
            return st_corrupt(s, DB_ORGS, o->id, olen, why, err, errlen);
        oldpart_same = oldpart == o->partition;
        if (!oldpart_same) {
            rc = st_db_del(s, DB_ORGPART, pk, part_key(pk, oldpart, o->id, olen), err, errlen);
            if (rc) return rc;
        }
    }
    size_t n = st_enc_org(buf, sizeof(buf), o);
    int indexed = rc == 0 && oldpart_same;
    rc = st_db_put(s, DB_ORGS, o->id, olen, buf, n, err, errlen);
    if (rc || indexed) return rc; /* the watermark moves on most events; the index rarely */
    return st_db_put(s, DB_ORGPART, pk, part_key(pk, o->partition, o->id, olen), &mark, 1, err, errlen);
}

/* A project's record: put, or deleted when it has neither credit nor months. */
static int put_project(struct store *s, const struct eng_org *o, size_t olen,
                       const struct eng_project *p, char *err, size_t errlen) {
    uint8_t k[PKEY_MAX], buf[PROJ_MAX];
    assert((p->dirty & ~(unsigned)(ENG_DIRTY_CREDIT | ENG_DIRTY_ACCT)) == 0);
    assert(p->id[0] != 0 && p->has_credit <= 1);
    assert(p->nacct >= 0 && p->nacct <= ENG_MAX_MONTHS);
    size_t kl = proj_key(k, o->id, olen, p->id);
    if (!p->has_credit && p->nacct == 0) return st_db_del(s, DB_PROJCRED, k, kl, err, errlen);
    return st_db_put(s, DB_PROJCRED, k, kl, buf, st_enc_proj(buf, sizeof(buf), p), err, errlen);
}

int st_org_put(struct store *s, const struct eng_org *o, char *err, size_t errlen) {
    assert(s->txn);
    if (s->cache) return st_cache_org_put(s, o, err, errlen);
    return st_org_write(s, o, err, errlen);
}

/* Any dirty part of the org rewrites its one record, any dirty part of a
 * project that project's.  The parts o does not mark dirty are written as
 * o holds them: o is what org_get / the cache gave, so they are the stored
 * ones. */
int st_org_write(struct store *s, const struct eng_org *o, char *err, size_t errlen) {
    size_t olen = org_key_len(o->id);
    int rc = 0;
    assert(s->txn && (o->dirty & ~0xFu) == 0 && o->has_credit <= 1);
    if (o->dirty) rc = put_org_rec(s, o, olen, err, errlen);
    for (size_t i = 0; !rc && i < o->nproj; i++)
        if (o->proj[i].dirty) rc = put_project(s, o, olen, &o->proj[i], err, errlen);
    return rc;
}

/* ---- partitions -------------------------------------------------------- */

struct idlist { char *buf; size_t len, cap, n; };  /* NUL-separated ids */

static int idlist_add(struct idlist *l, const void *id, size_t n) {
    if (l->len + n + 1 > l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 1024;
        while (cap < l->len + n + 1) cap *= 2;
        char *nb = realloc(l->buf, cap);
        if (!nb) return -1;
        l->buf = nb;
        l->cap = cap;
    }
    memcpy(l->buf + l->len, id, n);
    l->buf[l->len + n] = 0;
    l->len += n + 1;
    l->n++;
    return 0;
}

/* What is wrong with an org_partition entry (org id of n bytes, value v), or NULL. */
static const char *index_entry_bad(const uint8_t *id, size_t n, const MDB_val *v) {
    if (n > ENG_ID_MAX) return "org id of more than 200 bytes";
    if (memchr(id, 0, n)) return "org id contains a NUL byte";
    if (v->mv_size != 1) return "value is not the single format version byte";
    if (*(const uint8_t *)v->mv_data != STORE_FORMAT_VERSION) return "value: unknown format version";
    return NULL;
}

static int collect_partition(struct store *s, int32_t partition, struct idlist *l,
                             char *err, size_t errlen) {
    uint8_t k[4];
    MDB_cursor *c;
    MDB_val key = { 4, k }, v;
    st_be32(k, (uint32_t)partition);
    int rc = st_cursor_open(s, s->txn, DB_ORGPART, &c, err, errlen);
    if (rc) return rc;
    rc = mdb_cursor_get(c, &key, &v, MDB_SET_RANGE);
    while (rc == 0 && key.mv_size > 4 && memcmp(key.mv_data, k, 4) == 0) {
        const uint8_t *id = (const uint8_t *)key.mv_data + 4;
        const char *why = index_entry_bad(id, key.mv_size - 4, &v);
        if (why) {
            mdb_cursor_close(c);
            return st_corrupt(s, DB_ORGPART, key.mv_data, key.mv_size, why, err, errlen);
        }
        if (idlist_add(l, id, key.mv_size - 4)) {
            mdb_cursor_close(c);
            return st_fail(err, errlen, "store %s: orgs on partition %d: out of memory", s->path,
                           (int)partition);
        }
        rc = mdb_cursor_get(c, &key, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    if (rc != 0 && rc != MDB_NOTFOUND) return st_lmdb_fail(s, rc, "read", "org_partition", err, errlen);
    return 0;
}

int st_orgs_on_partition(struct store *s, int32_t partition, int (*cb)(void *arg, const char *org),
                         void *arg, int *cbrc, char *err, size_t errlen) {
    struct idlist l = { 0 };
    assert(s->txn && partition >= 0);
    *cbrc = 0;
    /* The index must list the orgs the cache has not written yet. */
    int rc = st_cache_flush(s, err, errlen);
    if (!rc) rc = collect_partition(s, partition, &l, err, errlen);
    const char *id = l.buf;
    for (size_t i = 0; !rc && !*cbrc && i < l.n; i++) {
        *cbrc = cb(arg, id);
        id += strlen(id) + 1;
    }
    free(l.buf);
    return rc;
}

int st_clock_get(struct store *s, int32_t partition, int64_t *ns, char *err, size_t errlen) {
    uint8_t k[4];
    MDB_val v;
    assert(s->txn && partition >= 0);
    st_be32(k, (uint32_t)partition);
    char why[ST_WHY_MAX];
    int rc = st_db_get(s, s->txn, DB_PARTS, k, sizeof(k), &v, err, errlen);
    if (rc) return rc;
    if (st_dec_i64(&v, ns, INT64_MIN, why, sizeof(why)))
        return st_corrupt(s, DB_PARTS, k, sizeof(k), why, err, errlen);
    return 0;
}

int st_clock_put(struct store *s, int32_t partition, int64_t ns, char *err, size_t errlen) {
    uint8_t k[4], buf[1 + 8];
    assert(s->txn && partition >= 0);
    st_be32(k, (uint32_t)partition);
    return st_db_put(s, DB_PARTS, k, sizeof(k), buf, st_enc_i64(buf, sizeof(buf), ns), err, errlen);
}

/* ---- read-only views --------------------------------------------------- */

int store_get_org(struct store *s, const char *id, struct eng_org *out, char *err, size_t errlen) {
    MDB_txn *t;
    int own;
    int rc = s->txn ? st_cache_flush(s, err, errlen) : 0;  /* the batch's own writes too */
    if (!rc) rc = st_rtxn_begin(s, &t, &own, err, errlen);
    if (rc) return rc;
    rc = st_load_org(s, t, id, out, 1, err, errlen);
    st_rtxn_end(t, own);
    return rc;
}

/* An orgs key: 0 with id set, or STORE_ECORRUPT. */
static int key_org(struct store *s, const MDB_val *k, char id[ENG_ID_MAX + 1], char *err, size_t errlen) {
    const char *why = NULL;
    if (k->mv_size == 0 || k->mv_size > ENG_ID_MAX) why = "org id of 0 or more than 200 bytes";
    else if (memchr(k->mv_data, 0, k->mv_size)) why = "org id contains a NUL byte";
    if (why) return st_corrupt(s, DB_ORGS, k->mv_data, k->mv_size, why, err, errlen);
    memcpy(id, k->mv_data, k->mv_size);
    id[k->mv_size] = 0;
    return 0;
}

static int scan_orgs_txn(struct store *s, MDB_txn *t, struct eng_org *o, store_org_cb cb, void *arg,
                         char *err, size_t errlen) {
    char id[ENG_ID_MAX + 1];
    MDB_cursor *c;
    MDB_val k, v;
    int rc = st_cursor_open(s, t, DB_ORGS, &c, err, errlen);
    if (rc) return rc;
    int mrc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (mrc == 0) {
        rc = key_org(s, &k, id, err, errlen);
        if (!rc) rc = st_load_org(s, t, id, o, 1, err, errlen);
        if (rc == STORE_NOTFOUND) /* the cursor just saw the key in this txn */
            rc = st_fail(err, errlen, "store %s: org %s listed but not found", s->path, id);
        if (!rc) rc = cb(arg, o);
        else if (st_corrupt_skip(s, rc, err)) rc = 0;
        if (rc) break;
        mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    if (!rc && mrc != 0 && mrc != MDB_NOTFOUND) rc = st_lmdb_fail(s, mrc, "read", "orgs", err, errlen);
    return rc;
}

int store_scan_orgs(struct store *s, store_org_cb cb, void *arg, char *err, size_t errlen) {
    struct eng_org *o = malloc(sizeof(*o));
    MDB_txn *t;
    int own;
    if (!o) return st_fail(err, errlen, "store %s: scan orgs: out of memory", s->path);
    eng_org_init(o);
    int rc = s->txn ? st_cache_flush(s, err, errlen) : 0;  /* the batch's own writes too */
    if (!rc) rc = st_rtxn_begin(s, &t, &own, err, errlen);
    if (!rc) {
        rc = scan_orgs_txn(s, t, o, cb, arg, err, errlen);
        st_rtxn_end(t, own);
    }
    eng_org_free(o);
    free(o);
    return rc;
}

/* ---- views for other threads (store.h) ------------------------------------ */

/* A read txn under map_lock held shared.  MDB_MAP_RESIZED (another
 * process grew the map: a read-only handle) is caught up with
 * st_set_mapsize, the lock released meanwhile, then begun again.  Only a
 * read-only handle meets it: in a writer's process the map grows only
 * through the writer's own st_set_mapsize, under map_lock held exclusive
 * and with no txn of its own open, so its views (HTTP, the relay thread)
 * never see a map that another process resized. */
static int view_txn(struct store *s, MDB_txn **t, char *err, size_t errlen) {
    for (int tries = 0;; tries++) {
        int rc = pthread_rwlock_rdlock(&s->map_lock);
        if (rc) return st_fail(err, errlen, "store %s: view: map lock: %s", s->path, strerror(rc));
        rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, t);
        if (!rc) return 0;
        pthread_rwlock_unlock(&s->map_lock);
        if (rc != MDB_MAP_RESIZED || tries == 2 || (rc = st_set_mapsize(s, 0)) != 0)
            return st_fail(err, errlen, "store %s: view: begin read txn: %s", s->path, mdb_strerror(rc));
    }
}

int store_view_begin(struct store *s, struct store_view **out, char *err, size_t errlen) {
    struct store_view *v = calloc(1, sizeof(*v));
    *out = NULL;
    if (!v) return st_fail(err, errlen, "store %s: view: out of memory", s->path);
    v->s = s;
    int rc = view_txn(s, &v->txn, err, errlen);
    if (rc) {
        free(v);
        return rc;
    }
    *out = v;
    return 0;
}

void store_view_end(struct store_view *v) {
    if (!v) return;
    mdb_txn_abort(v->txn);
    pthread_rwlock_unlock(&v->s->map_lock);
    if (v->scratch) {
        eng_org_free(v->scratch);
        free(v->scratch);
    }
    free(v);
}

int store_view_get_org(struct store_view *v, const char *id, struct eng_org *out,
                       char *err, size_t errlen) {
    size_t n = strlen(id);
    if (n == 0 || n > ENG_ID_MAX) return STORE_NOTFOUND;  /* org_key_len would assert */
    return st_load_org(v->s, v->txn, id, out, 1, err, errlen);
}

/* Position c on the first orgs key > after (MDB_FIRST without one). */
static int view_seek(MDB_cursor *c, const char *after, MDB_val *k, MDB_val *val) {
    size_t n = after ? strlen(after) : 0;
    if (n == 0) return mdb_cursor_get(c, k, val, MDB_FIRST);
    k->mv_size = n;
    k->mv_data = (void *)after;
    int rc = mdb_cursor_get(c, k, val, MDB_SET_RANGE);
    if (rc == 0 && k->mv_size == n && memcmp(k->mv_data, after, n) == 0)
        rc = mdb_cursor_get(c, k, val, MDB_NEXT);
    return rc;
}

int store_view_scan_orgs(struct store_view *v, const char *after, store_org_cb cb, void *arg,
                         char bad_id[ENG_ID_MAX + 1], char *err, size_t errlen) {
    struct store *s = v->s;
    char id[ENG_ID_MAX + 1];
    MDB_cursor *c;
    MDB_val k, val;
    bad_id[0] = 0;
    if (!v->scratch && (v->scratch = malloc(sizeof(*v->scratch))) != NULL) eng_org_init(v->scratch);
    if (!v->scratch) return st_fail(err, errlen, "store %s: view: out of memory", s->path);
    if (after && strlen(after) > ENG_ID_MAX)  /* LMDB keys are at most 511 bytes */
        return st_fail(err, errlen, "store %s: view: after: longer than %d bytes", s->path, ENG_ID_MAX);
    int rc = st_cursor_open(s, v->txn, DB_ORGS, &c, err, errlen);
    if (rc) return rc;
    int mrc = view_seek(c, after, &k, &val);
    while (mrc == 0) {
        rc = key_org(s, &k, id, err, errlen);
        if (!rc) rc = st_load_org(s, v->txn, id, v->scratch, 1, err, errlen);
        if (rc == STORE_NOTFOUND) /* the cursor just saw the key in this txn */
            rc = st_fail(err, errlen, "store %s: org %s listed but not found", s->path, id);
        if (rc == STORE_ECORRUPT && k.mv_size <= ENG_ID_MAX && !memchr(k.mv_data, 0, k.mv_size)) {
            memcpy(bad_id, k.mv_data, k.mv_size);
            bad_id[k.mv_size] = 0;
        }
        if (!rc) rc = cb(arg, v->scratch);
        if (rc) break;
        mrc = mdb_cursor_get(c, &k, &val, MDB_NEXT);
    }
    mdb_cursor_close(c);
    if (!rc && mrc != 0 && mrc != MDB_NOTFOUND) rc = st_lmdb_fail(s, mrc, "read", "orgs", err, errlen);
    return rc;
}
