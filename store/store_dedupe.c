/* store_dedupe.c -- remembered idempotency keys (the engine's dedupe_get /
 * dedupe_put) in the dedupe database, their expiry index dedupe_expiry and
 * the bounded removal of expired keys at commit (store.h, "Bounded
 * idempotency memory").
 *
 * Keys up to STORE_DKEY_RAW_MAX bytes are the LMDB key themselves; longer
 * ones are stored under a prefix + hash (store_dedupe_dbkey) with the full
 * key kept in the record and compared on lookup.
 */
#undef NDEBUG /* asserts (programmer errors only, never read data) stay on in release builds */
#include "store/store_int.h"

#include <assert.h>
#include <string.h>

#include "engine/timeutil.h"

__extension__ typedef unsigned __int128 u128;

/* FNV-1a, 128 bits (persisted: never change it). */
static void hash128(const uint8_t *p, size_t n, uint8_t out[16]) {
    const u128 prime = ((u128)1 << 88) | 0x13B;
    u128 h = ((u128)0x6c62272e07bb0142ULL << 64) | 0x62b821756295c58dULL;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= prime;
    }
    for (int i = 0; i < 16; i++) out[i] = (uint8_t)(h >> (8 * i));
}

_Static_assert(STORE_DKEY_PREFIX + 16 == STORE_DKEY_RAW_MAX, "dedupe key layout");
_Static_assert(STORE_DKEY_RAW_MAX < 511, "LMDB max key size");

size_t store_dedupe_dbkey(const uint8_t *key, size_t klen, uint8_t *out) {
    assert(key && klen > 0 && klen <= ENG_DKEY_MAX);
    if (klen <= STORE_DKEY_RAW_MAX) {
        memcpy(out, key, klen);
        return klen;
    }
    memcpy(out, key, STORE_DKEY_PREFIX);
    hash128(key, klen, out + STORE_DKEY_PREFIX);
    return STORE_DKEY_RAW_MAX;
}

int st_dedupe_get(struct store *s, const uint8_t *key, size_t klen, struct eng_dedupe *out,
                  char *err, size_t errlen) {
    uint8_t k[STORE_DKEY_RAW_MAX];
    struct eng_dedupe d;
    const uint8_t *fk;
    char why[ST_WHY_MAX];
    size_t full;
    MDB_val v;
    assert(s->txn);
    size_t kl = store_dedupe_dbkey(key, klen, k);
    int rc = st_db_get(s, s->txn, DB_DEDUPE, k, kl, &v, err, errlen);
    if (rc) return rc;
    if (st_dec_dedupe(&v, &d, &fk, &full, why, sizeof(why)))
        return st_corrupt(s, DB_DEDUPE, k, kl, why, err, errlen);
    int same = klen <= STORE_DKEY_RAW_MAX ? full == 0 : (full == klen && !memcmp(fk, key, klen));
    if (!same)
        return st_fail(err, errlen, "store %s: dedupe: the %zu-byte idempotency key collides with a "
                       "stored key of %zu bytes (same LMDB key, different key); not a duplicate, "
                       "cannot record it", s->path, klen, full ? full : kl);
    *out = d;
    return 0;
}

/* The expiry-index key of dedupe LMDB key dk (dkl bytes) of partition p
 * counting at time t: times order as signed numbers (sign bit flipped). */
static size_t ddexp_key(uint8_t *out, int32_t p, int64_t t, const uint8_t *dk, size_t dkl) {
    st_be32(out, (uint32_t)p);
    st_be64(out + 4, (uint64_t)t ^ (UINT64_C(1) << 63));
    memcpy(out + 12, dk, dkl);
    return 12 + dkl;
}

static int64_t ddexp_time(const uint8_t *k) {
    return (int64_t)(st_get_be64(k + 4) ^ (UINT64_C(1) << 63));
}

/* A key replaced by a newer one (judged as new after it expired) leaves its
 * old index entry behind; st_dedupe_expire drops it when it comes due,
 * seeing that the record's time is no longer the entry's. */
int st_dedupe_put(struct store *s, const uint8_t *key, size_t klen, const struct eng_dedupe *rec,
                  char *err, size_t errlen) {
    uint8_t k[STORE_DKEY_RAW_MAX], buf[DEDUPE_MAX], xk[DDEXP_KEY_MAX];
    static const uint8_t ver = STORE_FORMAT_VERSION;
    assert(s->txn);
    size_t kl = store_dedupe_dbkey(key, klen, k);
    int raw = klen <= STORE_DKEY_RAW_MAX;
    size_t n = st_enc_dedupe(buf, sizeof(buf), rec, raw ? NULL : key, klen);
    int rc = st_db_put(s, DB_DEDUPE, k, kl, buf, n, err, errlen);
    /* Indexed only when it can expire: retention on, a time, a partition. */
    if (rc || !s->retention_ns || rec->time == ENG_NO_TIME || rec->partition < 0) return rc;
    s->dd_new++;
    return st_db_put(s, DB_DDEXP, xk, ddexp_key(xk, rec->partition, rec->time, k, kl), &ver, 1,
                     err, errlen);
}

/* The index entry at c (key k) is due: delete it and, when the record
 * under its dedupe key still counts at the entry's time and partition, the
 * record too.  Captured (store.h) as changes of the entry's partition. */
static int expire_one(struct store *s, MDB_cursor *c, const MDB_val *k, char *err, size_t errlen) {
    uint8_t xk[DDEXP_KEY_MAX];
    char why[ST_WHY_MAX];
    struct eng_dedupe d;
    const uint8_t *full;
    size_t flen, xkl = k->mv_size, dkl = k->mv_size - 12;
    MDB_val v;
    memcpy(xk, k->mv_data, xkl);  /* k points into the page the delete changes */
    const uint8_t *dk = xk + 12;
    int32_t p = (int32_t)st_get_be32(xk);
    int64_t t = ddexp_time(xk);
    int rc = st_cursor_del(s, c, DB_DDEXP, xk, xkl, err, errlen);
    if (rc) return rc;
    rc = st_db_get(s, s->txn, DB_DEDUPE, dk, dkl, &v, err, errlen);
    if (rc == STORE_NOTFOUND) return 0;
    if (rc) return rc;
    if (st_dec_dedupe(&v, &d, &full, &flen, why, sizeof(why)))
        return st_corrupt(s, DB_DEDUPE, dk, dkl, why, err, errlen);
    if (d.time != t || d.partition != p) return 0;   /* replaced since: a stale entry */
    int32_t keep = s->cap_part;
    s->cap_part = p;
    rc = st_db_del(s, DB_DEDUPE, dk, dkl, err, errlen);
    s->cap_part = keep;
    return rc;
}

/* Partition pk's (4 bytes) entries earlier than horizon, oldest first,
 * while *budget lasts. */
static int expire_partition(struct store *s, MDB_cursor *c, const uint8_t *pk, int64_t horizon,
                            uint64_t *budget, uint64_t *removed, char *err, size_t errlen) {
    while (*budget > 0) {
        MDB_val k = {4, (void *)pk}, v;
        int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        if (rc == MDB_NOTFOUND) return 0;
        if (rc) return st_lmdb_fail(s, rc, "read", st_db_names[DB_DDEXP], err, errlen);
        if (k.mv_size < 4 || memcmp(k.mv_data, pk, 4) != 0) return 0;  /* next partition */
        if (k.mv_size <= 12 || k.mv_size > DDEXP_KEY_MAX)
            return st_corrupt(s, DB_DDEXP, k.mv_data, k.mv_size, "key of a wrong length", err,
                              errlen);
        if (ddexp_time(k.mv_data) >= horizon) return 0;
        if ((rc = expire_one(s, c, &k, err, errlen))) return rc;
        (*budget)--;
        (*removed)++;
    }
    return 0;
}

int st_dedupe_expire(struct store *s, uint64_t budget, uint64_t *removed, char *err,
                     size_t errlen) {
    MDB_cursor *pc = NULL, *xc = NULL;
    char why[ST_WHY_MAX];
    MDB_val k, v;
    int64_t clock;
    assert(s->txn);
    *removed = 0;
    if (!s->retention_ns) return 0;
    int rc = st_cursor_open(s, s->txn, DB_PARTS, &pc, err, errlen);
    if (!rc) rc = st_cursor_open(s, s->txn, DB_DDEXP, &xc, err, errlen);
    int mrc = rc ? MDB_NOTFOUND : mdb_cursor_get(pc, &k, &v, MDB_FIRST);
    for (; !rc && mrc == 0 && budget > 0; mrc = mdb_cursor_get(pc, &k, &v, MDB_NEXT)) {
        uint8_t pk[4];
        if (k.mv_size != 4) {
            rc = st_corrupt(s, DB_PARTS, k.mv_data, k.mv_size, "key of a wrong length", err, errlen);
            break;
        }
        memcpy(pk, k.mv_data, 4);
        if (!st_sweep_owns(s, (int32_t)st_get_be32(pk))) continue;
        if (st_dec_i64(&v, &clock, 0, why, sizeof(why)) || !time_ns_in_range(clock)) {
            rc = st_corrupt(s, DB_PARTS, pk, 4, "clock outside 1970..2261", err, errlen);
            break;
        }
        rc = expire_partition(s, xc, pk, clock - s->retention_ns, &budget, removed, err, errlen);
    }
    if (!rc && mrc != 0 && mrc != MDB_NOTFOUND)
        rc = st_lmdb_fail(s, mrc, "read", st_db_names[DB_PARTS], err, errlen);
    if (xc) mdb_cursor_close(xc);
    if (pc) mdb_cursor_close(pc);
    return rc;
}

int st_dedupe_oldest(struct store *s, MDB_txn *t, int64_t *oldest, char *err, size_t errlen) {
    MDB_cursor *c;
    MDB_val k, v;
    uint8_t next[4];
    *oldest = ENG_NO_TIME;
    int rc = st_cursor_open(s, t, DB_DDEXP, &c, err, errlen);
    if (rc) return rc;
    int mrc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (mrc == 0) {   /* the first entry of each partition */
        if (k.mv_size <= 12 || k.mv_size > DDEXP_KEY_MAX) {
            rc = st_corrupt(s, DB_DDEXP, k.mv_data, k.mv_size, "key of a wrong length", err, errlen);
            break;
        }
        int64_t x = ddexp_time(k.mv_data);
        if (*oldest == ENG_NO_TIME || x < *oldest) *oldest = x;
        uint32_t p = (uint32_t)(st_get_be64(k.mv_data) >> 32);
        if (p == UINT32_MAX) break;
        st_be32(next, p + 1);
        k.mv_size = 4;
        k.mv_data = next;
        mrc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    }
    if (!rc && mrc != 0 && mrc != MDB_NOTFOUND)
        rc = st_lmdb_fail(s, mrc, "read", st_db_names[DB_DDEXP], err, errlen);
    mdb_cursor_close(c);
    return rc;
}
