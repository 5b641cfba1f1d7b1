/* store_dedupe.c -- remembered idempotency keys (the engine's dedupe_get /
 * dedupe_put) in the dedupe database.
 *
 * Keys up to STORE_DKEY_RAW_MAX bytes are the LMDB key themselves; longer
 * ones are stored under a prefix + hash (store_dedupe_dbkey) with the full
 * key kept in the record and compared on lookup.
 */
#undef NDEBUG /* asserts (programmer errors only, never read data) stay on in release builds */
#include "store/store_int.h"

#include <assert.h>
#include <string.h>

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

int st_dedupe_put(struct store *s, const uint8_t *key, size_t klen, const struct eng_dedupe *rec,
                  char *err, size_t errlen) {
    uint8_t k[STORE_DKEY_RAW_MAX], buf[DEDUPE_MAX];
    assert(s->txn);
    size_t kl = store_dedupe_dbkey(key, klen, k);
    int raw = klen <= STORE_DKEY_RAW_MAX;
    size_t n = st_enc_dedupe(buf, sizeof(buf), rec, raw ? NULL : key, klen);
    return st_db_put(s, DB_DEDUPE, k, kl, buf, n, err, errlen);
}
