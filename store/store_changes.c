/* store_changes.c -- change capture and the state changelog (store.h,
 * "Change capture and the state changelog (group mode)"): the notes of
 * captured writes, their scan into changelog records, the application of
 * changelog records from outside, the changelog offsets, the removal of
 * one partition's state, and the sweep's entry points.
 *
 * Notes live in the database "changes" of the same LMDB environment, keyed
 * partition(BE32) wire-code LMDB-key (value: the version byte), written in
 * the batch's write txn: they commit or abort with the batch, need no
 * memory of their own, and a record written many times in a batch is noted
 * once.  store_changes_scan reads each noted record's value as it is at the
 * scan and empties the database.
 */
#undef NDEBUG /* asserts (programmer errors only, never read data) stay on in release builds */
#include "store/store_int.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(STORE_CHANGE_KEY_MAX == 1 + DDEXP_KEY_MAX, "the longest state key is dedupe_expiry's");
_Static_assert(4 + STORE_CHANGE_KEY_MAX <= 511, "a note key fits an LMDB key");

/* ---- wire codes ----------------------------------------------------------- */

/* The wire code of each state database; 0: not captured.  Format 6 writes
 * no s, c, m (their databases are gone; store.h). */
static const uint8_t wire_code[DB_COUNT] = {
    [DB_ORGS] = STORE_CL_ORGS,       [DB_PROJCRED] = STORE_CL_PROJCRED,
    [DB_ORGPART] = STORE_CL_ORGPART, [DB_PARTS] = STORE_CL_PARTS,
    [DB_DEDUPE] = STORE_CL_DEDUPE,   [DB_DDEXP] = STORE_CL_DDEXP,
    [DB_OFFSETS] = STORE_CL_OFFSETS,
};

/* The name of a retired wire code (format 5 and older), or NULL. */
static const char *retired_code(uint8_t c) {
    switch (c) {
    case STORE_CL_RETIRED_SEQ: return "sequences";
    case STORE_CL_RETIRED_ORGCRED: return "org_credits";
    case STORE_CL_RETIRED_MONTHS: return "months";
    }
    return NULL;
}

/* The database of wire code c, or -1. */
static int db_of_code(uint8_t c) {
    for (int i = 0; i < DB_COUNT; i++)
        if (c != 0 && wire_code[i] == c) return i;
    return -1;
}

/* ---- capture ------------------------------------------------------------- */

void store_capture(struct store *s, int on) {
    assert(!s->txn && !s->readonly);
    s->capture = on != 0;
}

void store_capture_partition(struct store *s, int32_t partition) {
    assert(partition >= 0);
    s->cap_part = partition;
}

/* The partition record k of db belongs to (store_int.h st_change_note). */
static int32_t note_partition(const struct store *s, int db, const uint8_t *k, size_t kl) {
    if ((db == DB_ORGPART || db == DB_PARTS || db == DB_DDEXP) && kl >= 4)
        return (int32_t)st_get_be32(k);
    if (db == DB_OFFSETS && kl >= 5) return (int32_t)st_get_be32(k + kl - 4);
    assert(s->cap_part >= 0);  /* capture on: store_capture_partition was called */
    return s->cap_part;
}

int st_change_note(struct store *s, int db, const void *k, size_t kl, char *err, size_t errlen) {
    uint8_t nk[4 + STORE_CHANGE_KEY_MAX];
    static const uint8_t ver = STORE_FORMAT_VERSION;
    assert(s->txn && s->capture && kl > 0);
    if (wire_code[db] == 0) return 0;
    if (kl + 1 > STORE_CHANGE_KEY_MAX)
        return st_corrupt(s, db, k, kl, "key too long for a changelog record", err, errlen);
    int32_t p = note_partition(s, db, k, kl);
    if (p < 0) return st_corrupt(s, db, k, kl, "no partition (negative)", err, errlen);
    st_be32(nk, (uint32_t)p);
    nk[4] = wire_code[db];
    memcpy(nk + 5, k, kl);
    MDB_val key = {5 + kl, nk}, val = {1, (void *)&ver};
    int rc = mdb_put(s->txn, s->dbi[DB_CHANGES], &key, &val, 0);
    return rc ? st_lmdb_fail(s, rc, "put", st_db_names[DB_CHANGES], err, errlen) : 0;
}

int st_cursor_del(struct store *s, MDB_cursor *c, int db, const void *k, size_t kl, char *err,
                  size_t errlen) {
    int rc = mdb_cursor_del(c, 0);
    if (rc) return st_lmdb_fail(s, rc, "delete", st_db_names[db], err, errlen);
    return s->capture ? st_change_note(s, db, k, kl, err, errlen) : 0;
}

/* One note (key nk, nkl bytes): its record's current value to cb, whose
 * result goes to *cbrc.  0 or STORE_*. */
static int scan_one(struct store *s, const uint8_t *nk, size_t nkl, store_change_cb cb, void *arg,
                    int *cbrc, char *err, size_t errlen) {
    uint8_t key[STORE_CHANGE_KEY_MAX];
    int db = nkl >= 6 ? db_of_code(nk[4]) : -1;
    int32_t p = nkl >= 4 ? (int32_t)st_get_be32(nk) : -1;
    MDB_val v;
    if (db < 0 || p < 0 || nkl - 4 > sizeof(key))
        return st_corrupt(s, DB_CHANGES, nk, nkl, "not a change note", err, errlen);
    memcpy(key, nk + 4, nkl - 4);  /* cb's copy: nk lives in a page */
    int rc = st_db_get(s, s->txn, db, key + 1, nkl - 5, &v, err, errlen);
    if (rc == STORE_NOTFOUND) *cbrc = cb(arg, p, key, nkl - 4, NULL, 0);
    else if (rc == 0) *cbrc = cb(arg, p, key, nkl - 4, v.mv_data, v.mv_size);
    return rc == STORE_NOTFOUND ? 0 : rc;
}

int store_changes_scan(struct store *s, store_change_cb cb, void *arg, char *err, size_t errlen) {
    MDB_cursor *c;
    MDB_val k, v;
    assert(s->txn);
    int rc = st_cache_flush(s, err, errlen);  /* the batch's org writes are changes too */
    if (!rc) rc = st_cursor_open(s, s->txn, DB_CHANGES, &c, err, errlen);
    if (rc) return st_pub_rc(s, rc);
    int cbrc = 0, mrc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    for (; !rc && !cbrc && mrc == 0; mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
        rc = scan_one(s, k.mv_data, k.mv_size, cb, arg, &cbrc, err, errlen);
    mdb_cursor_close(c);
    if (cbrc) return cbrc;  /* stopped: the notes stay */
    if (!rc && mrc != MDB_NOTFOUND) rc = st_lmdb_fail(s, mrc, "read", "changes", err, errlen);
    if (rc) return st_pub_rc(s, rc);
    mrc = mdb_drop(s->txn, s->dbi[DB_CHANGES], 0);
    return mrc ? st_pub_rc(s, st_lmdb_fail(s, mrc, "empty", "changes", err, errlen)) : 0;
}

/* ---- applying changelog records ------------------------------------------ */

/* What is wrong with an id of n bytes (org, project, offering), or NULL. */
static const char *id_bad(const uint8_t *id, size_t n, int may_be_empty) {
    if (n == 0 && !may_be_empty) return "empty id";
    if (n > ENG_ID_MAX) return "id of more than 200 bytes";
    if (memchr(id, 0, n)) return "id contains a NUL byte";
    return NULL;
}

/* org \0 project */
static const char *pkey_bad(const uint8_t *k, size_t n) {
    const uint8_t *z = memchr(k, 0, n);
    if (!z) return "no NUL between org and project";
    const char *why = id_bad(k, (size_t)(z - k), 0);
    return why ? why : id_bad(z + 1, n - (size_t)(z - k) - 1, 0);
}

/* What is wrong with LMDB key k (n bytes) of state database db, or NULL. */
static const char *key_bad(int db, const uint8_t *k, size_t n) {
    switch (db) {
    case DB_ORGS: return id_bad(k, n, 0);
    case DB_PROJCRED: return pkey_bad(k, n);
    case DB_ORGPART:
        if (n < 5) return "org_partition key of fewer than 5 bytes";
        return k[0] & 0x80 ? "negative partition" : id_bad(k + 4, n - 4, 0);
    case DB_PARTS:
        if (n != 4) return "partitions key not of 4 bytes";
        return k[0] & 0x80 ? "negative partition" : NULL;
    case DB_DEDUPE:
        return n > STORE_DKEY_RAW_MAX ? "dedupe key of more than 480 bytes" : NULL;
    case DB_DDEXP:
        if (n <= 12 || n > DDEXP_KEY_MAX) return "dedupe_expiry key not of 13..492 bytes";
        return k[0] & 0x80 ? "negative partition" : NULL;
    case DB_OFFSETS:
        if (n < 6 || n > NAME_MAX_B + 5) return "offsets key not of 6..205 bytes";
        if (k[n - 5] != 0 || memchr(k, 0, n - 5)) return "offsets key is not topic \\0 partition";
        return k[n - 4] & 0x80 ? "negative partition" : NULL;
    }
    return "not a state database";
}

/* What is wrong with value v of a record of db: decoded as the store will
 * read it (store_codec.c), into why; 0 or -1. */
static int val_bad(int db, const MDB_val *v, char *why, size_t whylen) {
    struct eng_project pr;
    struct eng_dedupe d;
    int32_t a;
    int64_t x;
    const uint8_t *full;
    size_t flen;
    switch (db) {
    case DB_ORGS: return st_dec_org_partition(v, &a, why, whylen);
    case DB_PROJCRED: return st_dec_proj(v, &pr, why, whylen);
    case DB_PARTS: return st_dec_i64(v, &x, INT64_MIN, why, whylen);
    case DB_OFFSETS: return st_dec_i64(v, &x, 0, why, whylen);
    case DB_DEDUPE: return st_dec_dedupe(v, &d, &full, &flen, why, whylen);
    case DB_ORGPART: case DB_DDEXP:
        if (v->mv_size == 1) return 0;
        snprintf(why, whylen, "value of %zu bytes (only the version byte)", v->mv_size);
        return -1;
    }
    snprintf(why, whylen, "not a state database");
    return -1;
}

int store_change_apply(struct store *s, const uint8_t *key, size_t klen, const uint8_t *val,
                       size_t vlen, char *err, size_t errlen) {
    char kt[200], why[ST_WHY_MAX];
    assert(s->txn && !s->capture);  /* restoring must not capture */
    /* The records written here are the org cache's too: write it back and
     * forget it (a no-op once empty). */
    int crc = st_cache_flush(s, err, errlen);
    if (crc) return st_pub_rc(s, crc);
    st_cache_drop(s);
    if (!key || klen < 2 || klen > STORE_CHANGE_KEY_MAX)
        return st_fail(err, errlen, "changelog record: key of %zu bytes (2..%d: a database code "
                       "and an LMDB key)", key ? klen : 0, STORE_CHANGE_KEY_MAX);
    int db = db_of_code(key[0]);
    if (db < 0 && retired_code(key[0]))
        return st_fail(err, errlen, "changelog record: database code '%c' (%s) is retired since "
                       "store format 6 (a changelog of an older creditd: rebuild it)", key[0],
                       retired_code(key[0]));
    if (db < 0) return st_fail(err, errlen, "changelog record: unknown database code 0x%02x", key[0]);
    st_key_text(db, key + 1, klen - 1, kt, sizeof(kt));
    const char *kwhy = key_bad(db, key + 1, klen - 1);
    if (kwhy) return st_fail(err, errlen, "changelog record: db %s key %s: %s", st_db_names[db], kt, kwhy);
    if (!val) {
        s->swept = 1;
        return st_pub_rc(s, st_db_del(s, db, key + 1, klen - 1, err, errlen));
    }
    if (vlen == 0)
        return st_fail(err, errlen, "changelog record: db %s key %s: empty value (a removal has "
                       "none)", st_db_names[db], kt);
    if (val[0] != STORE_FORMAT_VERSION)
        return st_fail(err, errlen, "changelog record: db %s key %s: format version %u, this "
                       "build reads %d", st_db_names[db], kt, val[0], STORE_FORMAT_VERSION);
    MDB_val v = {vlen, (void *)val};
    s->swept = 1;  /* store.h: no sweep in a txn that applies records */
    if (val_bad(db, &v, why, sizeof(why)))
        return st_fail(err, errlen, "changelog record: db %s key %s: value: %s", st_db_names[db], kt, why);
    return st_pub_rc(s, st_db_put(s, db, key + 1, klen - 1, val, vlen, err, errlen));
}

/* ---- changelog offsets ----------------------------------------------------- */

int store_changelog_get(struct store *s, int32_t partition, int64_t *next, char *err, size_t errlen) {
    uint8_t k[4];
    char why[ST_WHY_MAX];
    MDB_txn *t;
    MDB_val v;
    int own;
    assert(partition >= 0);
    if ((s->absent >> DB_CLOFF) & 1) return STORE_NOTFOUND;  /* an older store, read-only */
    st_be32(k, (uint32_t)partition);
    int rc = st_rtxn_begin(s, &t, &own, err, errlen);
    if (rc) return rc;
    rc = st_db_get(s, t, DB_CLOFF, k, 4, &v, err, errlen);
    if (rc == 0 && st_dec_i64(&v, next, 0, why, sizeof(why)))
        rc = st_corrupt(s, DB_CLOFF, k, 4, why, err, errlen);
    st_rtxn_end(t, own);
    return rc;
}

int store_changelog_put(struct store *s, int32_t partition, int64_t next, char *err, size_t errlen) {
    uint8_t k[4], buf[1 + 8];
    assert(s->txn && partition >= 0 && next >= 0);
    st_be32(k, (uint32_t)partition);
    size_t n = st_enc_i64(buf, sizeof(buf), next);
    return st_pub_rc(s, st_db_put(s, DB_CLOFF, k, 4, buf, n, err, errlen));
}

/* ---- dropping a partition ------------------------------------------------- */

struct drop { int32_t p; uint64_t removed; };

/* Decides whether record (k, v) of a walk goes: *yes.  0 or STORE_*. */
typedef int (*drop_fn)(struct store *s, struct drop *d, const MDB_val *k, const MDB_val *v,
                       int *yes, char *err, size_t errlen);

/* Delete the records of db whose key starts with pre (pn bytes; 0: every
 * record) and that fn accepts (NULL: all), noted when capture is on.  After
 * a delete the walk seeks to the deleted key again (the first key after
 * it): the cursor is not trusted across a delete. */
static int drop_where(struct store *s, int db, const uint8_t *pre, size_t pn, drop_fn fn,
                      struct drop *d, char *err, size_t errlen) {
    uint8_t cur[511];
    size_t cl = pn;
    MDB_cursor *c;
    MDB_val k, v;
    int rc = st_cursor_open(s, s->txn, db, &c, err, errlen);
    if (rc) return rc;
    if (pn) memcpy(cur, pre, pn);  /* pre may be NULL when pn is 0 */
    while (!rc) {
        int yes = 1;
        k.mv_size = cl;
        k.mv_data = cur;
        int mrc = mdb_cursor_get(c, &k, &v, cl ? MDB_SET_RANGE : MDB_FIRST);
        for (; mrc == 0; mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
            if (k.mv_size < pn || (pn && memcmp(k.mv_data, pre, pn) != 0)) {
                mrc = MDB_NOTFOUND;
                break;
            }
            memcpy(cur, k.mv_data, k.mv_size);  /* before fn writes anything */
            cl = k.mv_size;
            if (fn) rc = fn(s, d, &k, &v, &yes, err, errlen);
            if (rc || yes) break;
        }
        if (!rc && !mrc && fn) {  /* fn may have written elsewhere: find the record again */
            k.mv_size = cl;
            k.mv_data = cur;
            mrc = mdb_cursor_get(c, &k, &v, MDB_SET);
        }
        if (rc || mrc == MDB_NOTFOUND) break;
        if (mrc) {
            rc = st_lmdb_fail(s, mrc, "read", st_db_names[db], err, errlen);
            break;
        }
        if ((rc = st_cursor_del(s, c, db, cur, cl, err, errlen)) == 0) d->removed++;
    }
    mdb_cursor_close(c);
    return rc;
}

/* Record k of db, if there is one. */
static int drop_key(struct store *s, int db, const void *k, size_t kl, struct drop *d, char *err,
                    size_t errlen) {
    MDB_val v;
    int rc = st_db_get(s, s->txn, db, k, kl, &v, err, errlen);
    if (rc) return rc == STORE_NOTFOUND ? 0 : rc;
    rc = st_db_del(s, db, k, kl, err, errlen);
    if (!rc) d->removed++;
    return rc;
}

/* An org_partition entry of the partition: the org's records go, then the entry. */
static int drop_org(struct store *s, struct drop *d, const MDB_val *k, const MDB_val *v, int *yes,
                    char *err, size_t errlen) {
    uint8_t id[ENG_ID_MAX + 1];
    size_t n = k->mv_size - 4;
    (void)v;
    if (k->mv_size <= 4 || id_bad((const uint8_t *)k->mv_data + 4, n, 0))
        return st_corrupt(s, DB_ORGPART, k->mv_data, k->mv_size, "not partition + org id", err, errlen);
    memcpy(id, (const uint8_t *)k->mv_data + 4, n);
    id[n] = 0;
    *yes = 1;
    int rc = drop_key(s, DB_ORGS, id, n, d, err, errlen);
    if (!rc) rc = drop_where(s, DB_PROJCRED, id, n + 1, NULL, d, err, errlen);  /* org \0 ... */
    return rc;
}

/* A dedupe record recorded with the partition. */
static int dedupe_of(struct store *s, struct drop *d, const MDB_val *k, const MDB_val *v, int *yes,
                     char *err, size_t errlen) {
    char why[ST_WHY_MAX];
    struct eng_dedupe rec;
    const uint8_t *full;
    size_t flen;
    if (st_dec_dedupe(v, &rec, &full, &flen, why, sizeof(why)))
        return st_corrupt(s, DB_DEDUPE, k->mv_data, k->mv_size, why, err, errlen);
    *yes = rec.partition == d->p;
    return 0;
}

/* An offsets entry (topic \0 partition) of the partition. */
static int offset_of(struct store *s, struct drop *d, const MDB_val *k, const MDB_val *v, int *yes,
                     char *err, size_t errlen) {
    const uint8_t *b = k->mv_data;
    size_t n = k->mv_size;
    (void)s; (void)v; (void)err; (void)errlen;
    *yes = n >= 6 && b[n - 5] == 0 && st_get_be32(b + n - 4) == (uint32_t)d->p;
    return 0;
}

int store_partition_drop(struct store *s, int32_t partition, uint64_t *removed, char *err,
                         size_t errlen) {
    uint8_t pk[4];
    struct drop d = {partition, 0};
    int32_t keep = s->cap_part;
    assert(s->txn && partition >= 0);
    /* The cache's pending writes first; then it would hold removed orgs. */
    int rc = st_cache_flush(s, err, errlen);
    if (rc) return st_pub_rc(s, rc);
    st_cache_drop(s);
    st_be32(pk, (uint32_t)partition);
    s->cap_part = partition;  /* the org records are the partition's */
    rc = drop_where(s, DB_ORGPART, pk, 4, drop_org, &d, err, errlen);
    if (!rc) rc = drop_key(s, DB_PARTS, pk, 4, &d, err, errlen);
    if (!rc) rc = drop_where(s, DB_DDEXP, pk, 4, NULL, &d, err, errlen);
    /* Every key of the partition, indexed or not (no time, retention 0). */
    if (!rc) rc = drop_where(s, DB_DEDUPE, NULL, 0, dedupe_of, &d, err, errlen);
    if (!rc) rc = drop_where(s, DB_OFFSETS, NULL, 0, offset_of, &d, err, errlen);
    if (!rc) rc = st_db_del(s, DB_CLOFF, pk, 4, err, errlen);
    s->cap_part = keep;
    *removed = d.removed;
    return st_pub_rc(s, rc);
}

/* ---- the expiry sweep ------------------------------------------------------ */

int st_sweep(struct store *s, char *err, size_t errlen) {
    uint64_t removed = 0;
    int rc = st_dedupe_expire(s, 2 * s->dd_new + STORE_EXPIRE_MIN, &removed, err, errlen);
    s->dd_new = 0;
    s->dd_txn_removed += removed;
    s->swept = 1;
    return rc;
}

int store_sweep(struct store *s, char *err, size_t errlen) {
    assert(s->txn);
    /* The cached orgs go first, so that store_changes_scan sees them. */
    int rc = st_cache_flush(s, err, errlen);
    return st_pub_rc(s, rc ? rc : st_sweep(s, err, errlen));
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

int store_sweep_only(struct store *s, const int32_t *parts, size_t n, char *err, size_t errlen) {
    int32_t *copy = NULL;
    assert(n == 0 || parts);
    if (n > 0 && !(copy = malloc(n * sizeof(*copy))))
        return st_fail(err, errlen, "store %s: sweep partitions: out of memory", s->path);
    for (size_t i = 0; i < n; i++) {
        assert(parts[i] >= 0);
        copy[i] = parts[i];
    }
    if (n > 0) qsort(copy, n, sizeof(*copy), cmp_i32);
    free(s->sweep_parts);
    s->sweep_limited = parts != NULL;
    s->sweep_parts = copy;
    s->nsweep = n;
    return 0;
}

int st_sweep_owns(const struct store *s, int32_t p) {
    if (!s->sweep_limited) return 1;
    return s->nsweep > 0 && bsearch(&p, s->sweep_parts, s->nsweep, sizeof(p), cmp_i32) != NULL;
}

void st_changes_txn_reset(struct store *s) {
    s->swept = 0;
    s->dd_txn_removed = 0;
}
