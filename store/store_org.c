/* store_org.c -- org state on LMDB: the engine's org_get / org_put, the
 * org_partition index and partition clocks, and the org views (store.h).
 *
 * One org is spread over orgs, sequences, org_credits (keyed by the id) and
 * project_credits, months (keyed by id \0 project; project "" is the org's
 * own months record).  org_partition (partition BE32 + id) lists the orgs
 * pinned to a partition, in id order, for ticks.
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

/* org \0 project ("" = the org's own record) */
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

/* The project id in key k (olen bytes of org, \0, the id) of a record of db:
 * 0, or -1 with why. */
static int key_project(int db, const uint8_t *k, size_t kl, size_t olen, char id[ENG_ID_MAX + 1],
                       char *why, size_t whylen) {
    const uint8_t *pid = k + olen + 1;
    size_t plen = kl - olen - 1;
    if (plen > ENG_ID_MAX)
        snprintf(why, whylen, "project id of %zu bytes (at most %d)", plen, ENG_ID_MAX);
    else if (memchr(pid, 0, plen))
        snprintf(why, whylen, "project id contains a NUL byte");
    else if (plen == 0 && db != DB_MONTHS)
        snprintf(why, whylen, "a project credit without a project id");
    else {
        memcpy(id, pid, plen);
        id[plen] = 0;
        return 0;
    }
    return -1;
}

/* One project_credits / months record (key k, value v) of org o. */
static int load_one(struct store *s, struct eng_org *o, int db, const MDB_val *k, size_t olen,
                    const MDB_val *v, char *err, size_t errlen) {
    char id[ENG_ID_MAX + 1], why[ST_WHY_MAX];
    int bad;
    if (key_project(db, k->mv_data, k->mv_size, olen, id, why, sizeof(why)))
        return st_corrupt(s, db, k->mv_data, k->mv_size, why, err, errlen);
    if (id[0] == 0) {
        bad = st_dec_acct(v, o->acct, &o->nacct, why, sizeof(why));
    } else {
        struct eng_project *p = eng_org_add_project(o, id);
        if (!p) return st_fail(err, errlen, "store: load org %s project %s: out of memory", o->id, id);
        if (db == DB_MONTHS) bad = st_dec_acct(v, p->acct, &p->nacct, why, sizeof(why));
        else bad = st_dec_proj_credit(v, p, why, sizeof(why));
    }
    return bad ? st_corrupt(s, db, k->mv_data, k->mv_size, why, err, errlen) : 0;
}

/* All records of db whose key starts with o->id \0. */
static int load_prefixed(struct store *s, MDB_txn *t, int db, struct eng_org *o, size_t olen,
                         char *err, size_t errlen) {
    uint8_t k[ENG_ID_MAX + 1];
    MDB_cursor *c;
    MDB_val key = { olen + 1, k }, v;
    memcpy(k, o->id, olen);
    k[olen] = 0;
    int rc = st_cursor_open(s, t, db, &c, err, errlen);
    if (rc) return rc;
    int mrc = mdb_cursor_get(c, &key, &v, MDB_SET_RANGE);
    while (mrc == 0) {
        if (key.mv_size < olen + 1 || memcmp(key.mv_data, k, olen + 1) != 0) break;
        if ((rc = load_one(s, o, db, &key, olen, &v, err, errlen)) != 0) break;
        mrc = mdb_cursor_get(c, &key, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    if (!rc && mrc != 0 && mrc != MDB_NOTFOUND)
        rc = st_lmdb_fail(s, mrc, "read", st_db_names[db], err, errlen);
    return rc;
}

/* The orgs, sequences or org_credits record of org id (olen bytes), decoded
 * into o: STORE_NOTFOUND when there is none. */
static int load_rec(struct store *s, MDB_txn *t, int db, const char *id, size_t olen, struct eng_org *o,
                    char *err, size_t errlen) {
    char why[ST_WHY_MAX];
    MDB_val v;
    int bad = 0;
    int rc = st_db_get(s, t, db, id, olen, &v, err, errlen);
    if (rc) return rc;
    if (db == DB_ORGS)
        bad = st_dec_org_meta(&v, &o->partition, &o->watermark, &o->open_month, why, sizeof(why));
    else if (db == DB_SEQ)
        bad = st_dec_seq(&v, o, why, sizeof(why));
    else
        bad = st_dec_org_credit(&v, o, why, sizeof(why));
    return bad ? st_corrupt(s, db, id, olen, why, err, errlen) : 0;
}

/* The org's own months record (key id \0). */
static int load_own_months(struct store *s, MDB_txn *t, struct eng_org *o, size_t olen,
                           char *err, size_t errlen) {
    uint8_t k[PKEY_MAX];
    char why[ST_WHY_MAX];
    MDB_val v;
    size_t kl = proj_key(k, o->id, olen, "");
    int rc = st_db_get(s, t, DB_MONTHS, k, kl, &v, err, errlen);
    if (rc) return rc == STORE_NOTFOUND ? 0 : rc;
    return st_dec_acct(&v, o->acct, &o->nacct, why, sizeof(why))
               ? st_corrupt(s, DB_MONTHS, k, kl, why, err, errlen) : 0;
}

int st_load_org(struct store *s, MDB_txn *t, const char *id, struct eng_org *o, int with_projects,
                char *err, size_t errlen) {
    size_t olen = org_key_len(id);
    struct eng_project *keep = o->proj;
    size_t cap = o->capproj;
    eng_org_init(o);
    o->proj = keep;
    o->capproj = cap;
    int rc = load_rec(s, t, DB_ORGS, id, olen, o, err, errlen);
    if (rc) return rc;
    memcpy(o->id, id, olen + 1);
    rc = load_rec(s, t, DB_SEQ, id, olen, o, err, errlen);
    if (rc == STORE_NOTFOUND) rc = 0;
    if (!rc) rc = load_rec(s, t, DB_ORGCRED, id, olen, o, err, errlen);
    if (rc == STORE_NOTFOUND) rc = 0;
    if (!rc) rc = load_own_months(s, t, o, olen, err, errlen);
    if (rc || !with_projects) return rc;
    /* project_credits then months: the months of a project already added
     * by its credit record land on it (load_one finds it). */
    rc = load_prefixed(s, t, DB_PROJCRED, o, olen, err, errlen);
    if (!rc) rc = load_prefixed(s, t, DB_MONTHS, o, olen, err, errlen);
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
    int found = 0, rc = st_db_get(s, s->txn, DB_PROJCRED, k, kl, &v, err, errlen);
    if (rc < 0) return rc;
    if (rc == 0 && (found = 1) && st_dec_proj_credit(&v, out, why, sizeof(why)))
        return st_corrupt(s, DB_PROJCRED, k, kl, why, err, errlen);
    rc = st_db_get(s, s->txn, DB_MONTHS, k, kl, &v, err, errlen);
    if (rc < 0) return rc;
    if (rc == 0 && (found = 1) && st_dec_acct(&v, out->acct, &out->nacct, why, sizeof(why)))
        return st_corrupt(s, DB_MONTHS, k, kl, why, err, errlen);
    if (!found) return STORE_NOTFOUND;
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
    int rc = load_prefixed(s, s->txn, DB_PROJCRED, out, olen, err, errlen);
    if (!rc) rc = load_prefixed(s, s->txn, DB_MONTHS, out, olen, err, errlen);
    return rc;
}

/* ---- org_put ----------------------------------------------------------- */

/* orgs record + the org_partition index entry. */
static int put_org_meta(struct store *s, const struct eng_org *o, size_t olen, char *err, size_t errlen) {
    uint8_t buf[1 + 4 + 8 + 4], pk[4 + ENG_ID_MAX];
    const uint8_t mark = STORE_FORMAT_VERSION;
    char why[ST_WHY_MAX];
    MDB_val old;
    assert(o->partition >= 0);
    int oldpart_same = 0;
    int rc = st_db_get(s, s->txn, DB_ORGS, o->id, olen, &old, err, errlen);
    if (rc < 0) return rc;
    if (rc == 0) {
        int32_t oldpart, oldmonth;
        int64_t oldwm;
        if (st_dec_org_meta(&old, &oldpart, &oldwm, &oldmonth, why, sizeof(why)))
            return st_corrupt(s, DB_ORGS, o->id, olen, why, err, errlen);
        oldpart_same = oldpart == o->partition;
        if (!oldpart_same) {
            rc = st_db_del(s, DB_ORGPART, pk, part_key(pk, oldpart, o->id, olen), err, errlen);
            if (rc) return rc;
        }
    }
    size_t n = st_enc_org_meta(buf, sizeof(buf), o);
    int indexed = rc == 0 && oldpart_same;
    rc = st_db_put(s, DB_ORGS, o->id, olen, buf, n, err, errlen);
    if (rc || indexed) return rc; /* the watermark moves on most events; the index rarely */
    return st_db_put(s, DB_ORGPART, pk, part_key(pk, o->partition, o->id, olen), &mark, 1, err, errlen);
}

static int put_seq(struct store *s, const struct eng_org *o, size_t olen, char *err, size_t errlen) {
    uint8_t buf[1 + 32];
    return st_db_put(s, DB_SEQ, o->id, olen, buf, st_enc_seq(buf, sizeof(buf), o), err, errlen);
}

/* months record of key k: put, or delete when n == 0. */
static int put_acct(struct store *s, const uint8_t *k, size_t kl, const struct eng_acct *a, int n,
                    char *err, size_t errlen) {
    uint8_t buf[1 + ACCT_LEN];
    assert(n >= 0 && n <= ENG_MAX_MONTHS);
    if (n == 0) return st_db_del(s, DB_MONTHS, k, kl, err, errlen);
    return st_db_put(s, DB_MONTHS, k, kl, buf, st_enc_acct(buf, sizeof(buf), a, n), err, errlen);
}

static int put_project(struct store *s, const struct eng_org *o, size_t olen,
                       const struct eng_project *p, char *err, size_t errlen) {
    uint8_t k[PKEY_MAX], buf[1 + 8 + TERMS_LEN + ALERTS_LEN + 8];
    int rc = 0;
    assert((p->dirty & ~(unsigned)(ENG_DIRTY_CREDIT | ENG_DIRTY_ACCT)) == 0);
    assert(p->id[0] != 0 && p->has_credit <= 1);
    size_t kl = proj_key(k, o->id, olen, p->id);
    if ((p->dirty & ENG_DIRTY_CREDIT) && !p->has_credit)
        rc = st_db_del(s, DB_PROJCRED, k, kl, err, errlen);
    else if (p->dirty & ENG_DIRTY_CREDIT)
        rc = st_db_put(s, DB_PROJCRED, k, kl, buf, st_enc_proj_credit(buf, sizeof(buf), p), err, errlen);
    if (!rc && (p->dirty & ENG_DIRTY_ACCT)) rc = put_acct(s, k, kl, p->acct, p->nacct, err, errlen);
    return rc;
}

int st_org_put(struct store *s, const struct eng_org *o, char *err, size_t errlen) {
    assert(s->txn);
    if (s->cache) return st_cache_org_put(s, o, err, errlen);
    return st_org_write(s, o, err, errlen);
}

int st_org_write(struct store *s, const struct eng_org *o, char *err, size_t errlen) {
    uint8_t k[PKEY_MAX], buf[OCRED_MAX];
    size_t olen = org_key_len(o->id);
    int rc = 0;
    assert(s->txn && (o->dirty & ~0xFu) == 0 && o->has_credit <= 1);
    if (o->dirty & ENG_DIRTY_META) rc = put_org_meta(s, o, olen, err, errlen);
    if (!rc && (o->dirty & ENG_DIRTY_SEQ)) rc = put_seq(s, o, olen, err, errlen);
    if (!rc && (o->dirty & ENG_DIRTY_CREDIT)) {
        if (o->has_credit)
            rc = st_db_put(s, DB_ORGCRED, o->id, olen, buf, st_enc_org_credit(buf, sizeof(buf), o),
                           err, errlen);
        else
            rc = st_db_del(s, DB_ORGCRED, o->id, olen, err, errlen);
    }
    if (!rc && (o->dirty & ENG_DIRTY_ACCT))
        rc = put_acct(s, k, proj_key(k, o->id, olen, ""), o->acct, o->nacct, err, errlen);
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
 * st_set_mapsize, the lock released meanwhile, then begun again. */
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
