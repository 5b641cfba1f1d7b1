/* store_outbox.c -- the outbox: outputs awaiting delivery, keyed by their
 * sequence (BE64, so in emission order), and the engine's emit.
 *
 * meta outbox_seq holds the last sequence ever used, so sequences are never
 * reused even when the outbox is emptied; a txn writes it once, at its
 * commit (st_outbox_flush), not per output.
 */
#undef NDEBUG /* asserts (programmer errors only, never read data) stay on in release builds */
#include "store/store_int.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

/* An outbox key: 8 bytes (BE64 seq), or STORE_ECORRUPT. */
static int outbox_key(struct store *s, const MDB_val *k, uint64_t *seq, char *err, size_t errlen) {
    if (k->mv_size != 8)
        return st_corrupt(s, DB_OUTBOX, k->mv_data, k->mv_size, "key is not an 8-byte sequence",
                          err, errlen);
    *seq = st_get_be64(k->mv_data);
    return 0;
}

/* Last outbox seq ever used: meta outbox_seq (kept even when the outbox is
 * emptied, so seqs are never reused), cached for the current txn.  The last
 * entry must not be beyond it. */
static int outbox_last(struct store *s, uint64_t *last, char *err, size_t errlen) {
    char why[ST_WHY_MAX];
    MDB_val v, k;
    MDB_cursor *c;
    uint64_t m = 0, top = 0;
    if (s->out_valid) { *last = s->out_last; return 0; }
    int rc = st_db_get(s, s->txn, DB_META, MK_OUTSEQ, strlen(MK_OUTSEQ), &v, err, errlen);
    if (rc < 0) return rc;
    if (rc == 0 && st_dec_u64(&v, &m, why, sizeof(why)))
        return st_corrupt(s, DB_META, MK_OUTSEQ, strlen(MK_OUTSEQ), why, err, errlen);
    if ((rc = st_cursor_open(s, s->txn, DB_OUTBOX, &c, err, errlen)) != 0) return rc;
    int mrc = mdb_cursor_get(c, &k, &v, MDB_LAST);
    if (mrc == 0) rc = outbox_key(s, &k, &top, err, errlen);
    if (!rc && mrc == 0 && top > m) {
        snprintf(why, sizeof(why), "beyond the last sequence recorded in meta outbox_seq (%llu)",
                 (unsigned long long)m);
        rc = st_corrupt(s, DB_OUTBOX, k.mv_data, k.mv_size, why, err, errlen);
    }
    mdb_cursor_close(c);
    if (rc) return rc;
    if (mrc != 0 && mrc != MDB_NOTFOUND) return st_lmdb_fail(s, mrc, "read", "outbox", err, errlen);
    s->out_last = *last = m;
    s->out_valid = 1;
    return 0;
}

int st_emit(struct store *s, enum eng_out_kind kind, const char *key, const char *json, size_t len,
            char *err, size_t errlen) {
    uint8_t k[8];
    uint64_t last = 0;
    assert(s->txn && (unsigned)kind < ENG_OUT_NKIND && json && len <= UINT32_MAX);
    if (s->emit_fn) {
        if (s->emit_fn(s->emit_arg, kind, key, json, len) == 0) return 0;
        return st_fail(err, errlen, "store %s: output hook failed", s->path);
    }
    int rc = outbox_last(s, &last, err, errlen);
    if (rc) return rc;
    if (last == UINT64_MAX)
        return st_corrupt(s, DB_META, MK_OUTSEQ, strlen(MK_OUTSEQ), "the largest sequence: none left",
                          err, errlen);
    st_be64(k, last + 1);
    size_t vlen = st_outbox_len(key, len);
    MDB_val mk = { 8, k }, mv = { vlen, NULL };
    rc = mdb_put(s->txn, s->dbi[DB_OUTBOX], &mk, &mv, MDB_RESERVE | MDB_APPEND);
    if (rc) return st_lmdb_fail(s, rc, "append", "outbox", err, errlen);
    st_enc_outbox(mv.mv_data, vlen, kind, key, json, len);
    s->out_last = last + 1;  /* into meta once, at the commit (st_outbox_flush) */
    s->out_dirty = 1;
    return 0;
}

int st_outbox_flush(struct store *s, char *err, size_t errlen) {
    uint8_t mb[1 + 8];
    assert(s->txn && s->out_valid);
    size_t mn = st_enc_u64(mb, sizeof(mb), s->out_last);
    int rc = st_db_put(s, DB_META, MK_OUTSEQ, strlen(MK_OUTSEQ), mb, mn, err, errlen);
    if (!rc) s->out_dirty = 0;
    return rc;
}

/* One entry to cb: cb's result, or STORE_ECORRUPT. */
static int scan_one(struct store *s, const MDB_val *k, const MDB_val *v, store_outbox_cb cb, void *arg,
                    char *err, size_t errlen) {
    enum eng_out_kind kind;
    const char *key, *json;
    char why[ST_WHY_MAX];
    uint64_t seq = 0;
    size_t len;
    int rc = outbox_key(s, k, &seq, err, errlen);
    if (rc) return rc;
    if (st_dec_outbox(v, &kind, &key, &json, &len, why, sizeof(why)))
        return st_corrupt(s, DB_OUTBOX, k->mv_data, k->mv_size, why, err, errlen);
    return cb(arg, seq, kind, key, json, len);
}

/* Entries of t with seq > after, to cb; a corrupt entry goes to the
 * store's corrupt hook when hook is set (read-only tools), else stops. */
static int scan_txn(struct store *s, MDB_txn *t, uint64_t after, int hook, store_outbox_cb cb,
                    void *arg, char *err, size_t errlen) {
    uint8_t kb[8];
    MDB_val k = { 8, kb }, v;
    MDB_cursor *c;
    if (after == UINT64_MAX) return 0;
    int rc = st_cursor_open(s, t, DB_OUTBOX, &c, err, errlen);
    if (rc) return rc;
    st_be64(kb, after + 1);
    int mrc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    while (mrc == 0) {
        rc = scan_one(s, &k, &v, cb, arg, err, errlen);
        if (hook && st_corrupt_skip(s, rc, err)) rc = 0;
        if (rc) break;
        mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    if (!rc && mrc != 0 && mrc != MDB_NOTFOUND) rc = st_lmdb_fail(s, mrc, "read", "outbox", err, errlen);
    return rc;
}

int store_outbox_scan(struct store *s, uint64_t after, store_outbox_cb cb, void *arg,
                      char *err, size_t errlen) {
    MDB_txn *t;
    int own;
    if (after == UINT64_MAX) return 0;
    int rc = st_rtxn_begin(s, &t, &own, err, errlen);
    if (rc) return rc;
    rc = scan_txn(s, t, after, 1, cb, arg, err, errlen);
    st_rtxn_end(t, own);
    return rc;
}

int store_view_outbox_scan(struct store_view *v, uint64_t after, store_outbox_cb cb, void *arg,
                           char *err, size_t errlen) {
    return scan_txn(v->s, v->txn, after, 0, cb, arg, err, errlen);
}

int store_outbox_count(struct store *s, uint64_t *n, char *err, size_t errlen) {
    MDB_txn *t;
    MDB_stat ms;
    int own;
    int rc = st_rtxn_begin(s, &t, &own, err, errlen);
    if (rc) return rc;
    int mrc = mdb_stat(t, s->dbi[DB_OUTBOX], &ms);
    st_rtxn_end(t, own);
    if (mrc) return st_lmdb_fail(s, mrc, "stat", "outbox", err, errlen);
    *n = ms.ms_entries;
    return 0;
}

int store_outbox_last_seq(struct store *s, uint64_t *seq, char *err, size_t errlen) {
    assert(s->txn);
    return outbox_last(s, seq, err, errlen);
}

int store_outbox_delete_upto(struct store *s, uint64_t upto, char *err, size_t errlen) {
    MDB_cursor *c;
    MDB_val k, v;
    uint64_t seq = 0;
    assert(s->txn);
    int rc = st_cursor_open(s, s->txn, DB_OUTBOX, &c, err, errlen);
    if (rc) return rc;
    int mrc;
    while ((mrc = mdb_cursor_get(c, &k, &v, MDB_FIRST)) == 0) {
        if ((rc = outbox_key(s, &k, &seq, err, errlen)) != 0 || seq > upto) break;
        if ((mrc = mdb_cursor_del(c, 0)) != 0) break;
    }
    mdb_cursor_close(c);
    if (rc) return rc;
    if (mrc != 0 && mrc != MDB_NOTFOUND)
        return st_pub_rc(s, st_lmdb_fail(s, mrc, "delete", "outbox", err, errlen));
    return 0;
}
