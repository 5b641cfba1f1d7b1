/* store_offsets.c -- input offsets: topic \0 partition(BE32) -> the offset
 * of the next message to consume, committed with the batch that applied
 * the messages before it.
 */
#undef NDEBUG /* asserts (programmer errors only, never read data) stay on in release builds */
#include "store/store_int.h"

#include <assert.h>
#include <string.h>

static size_t offset_key(uint8_t *k, const char *topic, int32_t partition) {
    size_t n = strlen(topic);
    assert(n > 0 && n <= NAME_MAX_B && partition >= 0);
    memcpy(k, topic, n);
    k[n] = 0;
    st_be32(k + n + 1, (uint32_t)partition);
    return n + 5;
}

int store_offset_get(struct store *s, const char *topic, int32_t partition, int64_t *next,
                     char *err, size_t errlen) {
    uint8_t k[NAME_MAX_B + 5];
    char why[ST_WHY_MAX];
    size_t kl = offset_key(k, topic, partition);
    MDB_txn *t;
    MDB_val v;
    int own;
    int rc = st_rtxn_begin(s, &t, &own, err, errlen);
    if (rc) return rc;
    rc = st_db_get(s, t, DB_OFFSETS, k, kl, &v, err, errlen);
    if (rc == 0 && st_dec_i64(&v, next, 0, why, sizeof(why)))
        rc = st_corrupt(s, DB_OFFSETS, k, kl, why, err, errlen);
    st_rtxn_end(t, own);
    return rc;
}

int store_offset_put(struct store *s, const char *topic, int32_t partition, int64_t next,
                     char *err, size_t errlen) {
    uint8_t k[NAME_MAX_B + 5], buf[1 + 8];
    assert(s->txn && next >= 0);
    size_t n = st_enc_i64(buf, sizeof(buf), next);
    return st_pub_rc(s, st_db_put(s, DB_OFFSETS, k, offset_key(k, topic, partition), buf, n, err, errlen));
}
