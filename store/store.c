/* store.c -- creditd's durable state on LMDB (see store.h).
 *
 * Record layout: every value starts with STORE_FORMAT_VERSION, then fixed
 * little-endian fields (i32/i64/u64), strings as u8/u16 length + bytes.
 * Keys that must sort numerically (partitions, outbox seqs) are big-endian.
 * Data is checked with assertions before it is written and after it is read
 * back; LMDB failures (map full, I/O) are reported through err.
 */
#undef NDEBUG /* the data checks below must stay on in release builds */
#include "store/store.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <lmdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum {
    DB_META, DB_ORGS, DB_SEQ, DB_ORGCRED, DB_PROJCRED, DB_MONTHS,
    DB_ORGPART, DB_PARTS, DB_DEDUPE, DB_OUTBOX, DB_OFFSETS, DB_COUNT
};
static const char *const db_names[DB_COUNT] = {
    "meta", "orgs", "sequences", "org_credits", "project_credits", "months",
    "org_partition", "partitions", "dedupe", "outbox", "offsets"
};

#define DEFAULT_MAP_SIZE ((size_t)1 << 30)
#define PKEY_MAX   (ENG_ID_MAX + 1 + ENG_ID_MAX)   /* org \0 project */
#define NAME_MAX_B 200                              /* meta names, topics */
#define TERMS_LEN  (3 + 4 + 8)
#define ACCT_LEN   (1 + ENG_MAX_MONTHS * 12)
#define OCRED_MAX  (1 + 8 + TERMS_LEN + 1 + ENG_MAX_OFFERINGS * (1 + ENG_ID_MAX))
#define DEDUPE_MAX (1 + 8 + 2 + 2 + ENG_DKEY_MAX)
#define OUT_NOKEY  0xFFFFu

/* meta keys; user names from store_meta_* live under "user:" */
#define MK_FORMAT   "format"
#define MK_CLOSE    "close_after"
#define MK_CURRENCY "currency"
#define MK_COUNTERS "counters"
#define MK_OUTSEQ   "outbox_seq"
#define MK_USER     "user:"

struct store {
    MDB_env *env;
    MDB_dbi dbi[DB_COUNT];
    MDB_txn *txn;          /* the batch's write txn, NULL outside one */
    int readonly;
    int map_full;          /* the current/last txn hit MDB_MAP_FULL */
    int grow_pending;      /* map must be grown before the next txn */
    int out_valid;         /* out_last is loaded for the current txn */
    uint64_t out_last;     /* last outbox seq used (cache; reset on commit/abort) */
    store_emit_fn emit_fn; /* when set, outputs go here instead of the outbox */
    void *emit_arg;
    char path[PATH_MAX];
};

/* ---- errors ------------------------------------------------------------ */

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen) vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return STORE_ERR;
}

/* An LMDB call failed: note map-full, name what failed. */
static int lmdb_fail(struct store *s, int rc, const char *what, const char *db,
                     char *err, size_t errlen) {
    if (rc == MDB_MAP_FULL) {
        s->map_full = 1;
        s->grow_pending = 1;
        return fail(err, errlen, "store %s: %s %s: map full (grown on abort: retry the batch)",
                    s->path, what, db);
    }
    return fail(err, errlen, "store %s: %s %s: %s", s->path, what, db, mdb_strerror(rc));
}

/* Public store_* calls report a full map as STORE_EMAPFULL. */
static int pub_rc(const struct store *s, int rc) {
    return (rc < 0 && s->map_full) ? STORE_EMAPFULL : rc;
}

/* ---- byte encoding ----------------------------------------------------- */

struct wbuf { uint8_t *p; size_t n, cap; };
struct rbuf { const uint8_t *p; size_t n, pos; };

static void w_bytes(struct wbuf *b, const void *v, size_t n) {
    assert(b->n + n <= b->cap);
    if (n) memcpy(b->p + b->n, v, n);
    b->n += n;
}
static void w_uint(struct wbuf *b, uint64_t v, int bytes) {
    assert(b->n + (size_t)bytes <= b->cap);
    for (int i = 0; i < bytes; i++) b->p[b->n++] = (uint8_t)(v >> (8 * i));
}
static void w_u8(struct wbuf *b, unsigned v)  { assert(v <= 0xFF); w_uint(b, v, 1); }
static void w_u16(struct wbuf *b, unsigned v) { assert(v <= 0xFFFF); w_uint(b, v, 2); }
static void w_i32(struct wbuf *b, int32_t v)  { w_uint(b, (uint32_t)v, 4); }
static void w_i64(struct wbuf *b, int64_t v)  { w_uint(b, (uint64_t)v, 8); }
static void w_u64(struct wbuf *b, uint64_t v) { w_uint(b, v, 8); }
static void w_begin(struct wbuf *b, void *buf, size_t cap) {
    b->p = buf; b->n = 0; b->cap = cap;
    w_u8(b, STORE_FORMAT_VERSION);
}

static uint64_t r_uint(struct rbuf *r, int bytes) {
    uint64_t v = 0;
    assert(r->pos + (size_t)bytes <= r->n);
    for (int i = 0; i < bytes; i++) v |= (uint64_t)r->p[r->pos++] << (8 * i);
    return v;
}
static unsigned r_u8(struct rbuf *r)  { return (unsigned)r_uint(r, 1); }
static unsigned r_u16(struct rbuf *r) { return (unsigned)r_uint(r, 2); }
static int32_t r_i32(struct rbuf *r)  { return (int32_t)(uint32_t)r_uint(r, 4); }
static int64_t r_i64(struct rbuf *r)  { return (int64_t)r_uint(r, 8); }
static uint64_t r_u64(struct rbuf *r) { return r_uint(r, 8); }
static const uint8_t *r_bytes(struct rbuf *r, size_t n) {
    assert(r->pos + n <= r->n);
    r->pos += n;
    return r->p + r->pos - n;
}
static void r_begin(struct rbuf *r, const MDB_val *v) {
    r->p = v->mv_data; r->n = v->mv_size; r->pos = 0;
    unsigned ver = r_u8(r);
    assert(ver == STORE_FORMAT_VERSION);
}
static void r_end(const struct rbuf *r) { assert(r->pos == r->n); }

static void be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static uint64_t get_be64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
    return v;
}
static void be64(uint8_t *p, uint64_t v) {
    for (int i = 7; i >= 0; i--) { p[i] = (uint8_t)v; v >>= 8; }
}

/* ---- LMDB helpers ------------------------------------------------------ */

static int db_get(struct store *s, MDB_txn *t, int db, const void *k, size_t kl, MDB_val *v,
                  char *err, size_t errlen) {
    MDB_val key = { kl, (void *)k };
    int rc = mdb_get(t, s->dbi[db], &key, v);
    if (rc == MDB_NOTFOUND) return STORE_NOTFOUND;
    if (rc) return lmdb_fail(s, rc, "get", db_names[db], err, errlen);
    return 0;
}

static int db_put(struct store *s, int db, const void *k, size_t kl, const void *v, size_t vl,
                  char *err, size_t errlen) {
    MDB_val key = { kl, (void *)k }, val = { vl, (void *)v };
    assert(s->txn && kl > 0 && kl <= 511 && vl >= 1);
    assert(((const uint8_t *)v)[0] == STORE_FORMAT_VERSION);
    int rc = mdb_put(s->txn, s->dbi[db], &key, &val, 0);
    return rc ? lmdb_fail(s, rc, "put", db_names[db], err, errlen) : 0;
}

/* Deleting a missing key is not an error. */
static int db_del(struct store *s, int db, const void *k, size_t kl, char *err, size_t errlen) {
    MDB_val key = { kl, (void *)k };
    assert(s->txn && kl > 0 && kl <= 511);
    int rc = mdb_del(s->txn, s->dbi[db], &key, NULL);
    if (rc == MDB_NOTFOUND) return 0;
    return rc ? lmdb_fail(s, rc, "delete", db_names[db], err, errlen) : 0;
}

static int cursor_open(struct store *s, MDB_txn *t, int db, MDB_cursor **c, char *err, size_t errlen) {
    int rc = mdb_cursor_open(t, s->dbi[db], c);
    return rc ? lmdb_fail(s, rc, "cursor on", db_names[db], err, errlen) : 0;
}

/* A txn for reading: the batch's write txn if one is active, else a new
 * read txn (*own = 1; end it with rtxn_end). */
static int rtxn_begin(struct store *s, MDB_txn **t, int *own, char *err, size_t errlen) {
    *own = 0;
    if (s->txn) { *t = s->txn; return 0; }
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, t);
    if (rc == MDB_MAP_RESIZED) { /* the writer grew the map */
        rc = mdb_env_set_mapsize(s->env, 0);
        if (!rc) rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, t);
    }
    if (rc) return fail(err, errlen, "store %s: begin read txn: %s", s->path, mdb_strerror(rc));
    *own = 1;
    return 0;
}
static void rtxn_end(MDB_txn *t, int own) { if (own) mdb_txn_abort(t); }

static int grow_map(struct store *s) {
    MDB_envinfo info;
    assert(!s->txn);
    int rc = mdb_env_info(s->env, &info);
    if (!rc) rc = mdb_env_set_mapsize(s->env, info.me_mapsize * 2);
    if (!rc) s->grow_pending = 0;
    return rc;
}

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

static size_t part_key(uint8_t *k, int32_t partition, const char *org, size_t olen) {
    assert(partition >= 0);
    be32(k, (uint32_t)partition);
    memcpy(k + 4, org, olen);
    return 4 + olen;
}

/* ---- records ----------------------------------------------------------- */

static void w_terms(struct wbuf *b, const struct eng_terms *t) {
    assert(t->logic <= ENG_LINEAR && t->grace <= 100);
    assert(t->apply_min <= 1 && t->reserve <= 1 && t->use_org_credit <= 1 && t->mark_unused <= 1);
    w_u8(b, t->logic);
    w_u8(b, t->grace);
    w_u8(b, (unsigned)(t->apply_min | t->reserve << 1 | t->use_org_credit << 2 | t->mark_unused << 3));
    w_i32(b, t->end_month);
    w_i64(b, t->expected);
}
static void r_terms(struct rbuf *r, struct eng_terms *t) {
    memset(t, 0, sizeof(*t));
    t->logic = (uint8_t)r_u8(r);
    t->grace = (uint8_t)r_u8(r);
    unsigned f = r_u8(r);
    assert(t->logic <= ENG_LINEAR && t->grace <= 100 && f <= 0xF);
    t->apply_min = f & 1;
    t->reserve = (f >> 1) & 1;
    t->use_org_credit = (f >> 2) & 1;
    t->mark_unused = (f >> 3) & 1;
    t->end_month = r_i32(r);
    t->expected = r_i64(r);
}

/* months record: n, n * (month, consumed) */
static size_t enc_acct(uint8_t *buf, size_t cap, const struct eng_acct *a, int n) {
    struct wbuf b;
    assert(n > 0 && n <= ENG_MAX_MONTHS);
    w_begin(&b, buf, cap);
    w_u8(&b, (unsigned)n);
    for (int i = 0; i < n; i++) {
        assert(a[i].month != ENG_NO_MONTH);
        w_i32(&b, a[i].month);
        w_i64(&b, a[i].consumed);
    }
    return b.n;
}
static int dec_acct(const MDB_val *v, struct eng_acct *a) {
    struct rbuf r;
    r_begin(&r, v);
    int n = (int)r_u8(&r);
    assert(n > 0 && n <= ENG_MAX_MONTHS);
    for (int i = 0; i < n; i++) {
        a[i].month = r_i32(&r);
        a[i].consumed = r_i64(&r);
        assert(a[i].month != ENG_NO_MONTH);
    }
    r_end(&r);
    return n;
}

/* orgs record: partition, watermark, open month */
static void dec_org_meta(const MDB_val *v, int32_t *partition, int64_t *watermark, int32_t *open_month) {
    struct rbuf r;
    r_begin(&r, v);
    *partition = r_i32(&r);
    *watermark = r_i64(&r);
    *open_month = r_i32(&r);
    r_end(&r);
    assert(*partition >= 0);
}

static void dec_seq(const MDB_val *v, uint64_t seq[2]) {
    struct rbuf r;
    r_begin(&r, v);
    seq[0] = r_u64(&r);
    seq[1] = r_u64(&r);
    r_end(&r);
}

/* org_credits record: V, terms, offerings */
static size_t enc_org_credit(uint8_t *buf, size_t cap, const struct eng_org *o) {
    struct wbuf b;
    assert(o->has_credit == 1 && o->value >= 0);
    assert(o->noff >= 0 && o->noff <= ENG_MAX_OFFERINGS);
    w_begin(&b, buf, cap);
    w_i64(&b, o->value);
    w_terms(&b, &o->terms);
    w_u8(&b, (unsigned)o->noff);
    for (int i = 0; i < o->noff; i++) {
        size_t n = strnlen(o->off[i], ENG_ID_MAX + 1);
        assert(n > 0 && n <= ENG_ID_MAX);
        w_u8(&b, (unsigned)n);
        w_bytes(&b, o->off[i], n);
    }
    return b.n;
}
static void dec_org_credit(const MDB_val *v, struct eng_org *o) {
    struct rbuf r;
    r_begin(&r, v);
    o->has_credit = 1;
    o->value = r_i64(&r);
    assert(o->value >= 0);
    r_terms(&r, &o->terms);
    o->noff = (int)r_u8(&r);
    assert(o->noff <= ENG_MAX_OFFERINGS);
    for (int i = 0; i < o->noff; i++) {
        size_t n = r_u8(&r);
        const uint8_t *p = r_bytes(&r, n);
        assert(n > 0 && n <= ENG_ID_MAX && !memchr(p, 0, n));
        memcpy(o->off[i], p, n);
        o->off[i][n] = 0;
    }
    r_end(&r);
}

/* project_credits record: P, terms */
static void dec_proj_credit(const MDB_val *v, struct eng_project *p) {
    struct rbuf r;
    r_begin(&r, v);
    p->has_credit = 1;
    p->value = r_i64(&r);
    assert(p->value >= 0);
    r_terms(&r, &p->terms);
    r_end(&r);
}

/* ---- org_get ----------------------------------------------------------- */

/* One project_credits / months record of org o; pid = project id bytes. */
static int load_one(struct eng_org *o, int db, const uint8_t *pid, size_t plen,
                    const MDB_val *v, char *err, size_t errlen) {
    char id[ENG_ID_MAX + 1];
    assert(plen <= ENG_ID_MAX && !memchr(pid, 0, plen));
    if (plen == 0) {
        assert(db == DB_MONTHS);
        o->nacct = dec_acct(v, o->acct);
        return 0;
    }
    memcpy(id, pid, plen);
    id[plen] = 0;
    struct eng_project *p = eng_org_add_project(o, id);
    if (!p) return fail(err, errlen, "store: load org %s project %s: out of memory", o->id, id);
    if (db == DB_MONTHS) p->nacct = dec_acct(v, p->acct);
    else dec_proj_credit(v, p);
    return 0;
}

/* All records of db whose key starts with o->id \0. */
static int load_prefixed(struct store *s, MDB_txn *t, int db, struct eng_org *o, size_t olen,
                         char *err, size_t errlen) {
    uint8_t k[ENG_ID_MAX + 1];
    MDB_cursor *c;
    MDB_val key = { olen + 1, k }, v;
    memcpy(k, o->id, olen);
    k[olen] = 0;
    int rc = cursor_open(s, t, db, &c, err, errlen);
    if (rc) return rc;
    rc = mdb_cursor_get(c, &key, &v, MDB_SET_RANGE);
    while (rc == 0) {
        if (key.mv_size < olen + 1 || memcmp(key.mv_data, k, olen + 1) != 0) break;
        if (load_one(o, db, (const uint8_t *)key.mv_data + olen + 1, key.mv_size - olen - 1,
                     &v, err, errlen)) {
            mdb_cursor_close(c);
            return ENG_ESTORE;
        }
        rc = mdb_cursor_get(c, &key, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    if (rc != 0 && rc != MDB_NOTFOUND) return lmdb_fail(s, rc, "read", db_names[db], err, errlen);
    return 0;
}

/* Load org id (whole) in txn t.  ENG_NOTFOUND if there is no orgs record. */
static int load_org(struct store *s, MDB_txn *t, const char *id, struct eng_org *o,
                    char *err, size_t errlen) {
    size_t olen = org_key_len(id);
    struct eng_project *keep = o->proj;
    size_t cap = o->capproj;
    MDB_val v;
    eng_org_init(o);
    o->proj = keep;
    o->capproj = cap;
    int rc = db_get(s, t, DB_ORGS, id, olen, &v, err, errlen);
    if (rc) return rc == STORE_NOTFOUND ? ENG_NOTFOUND : rc;
    memcpy(o->id, id, olen + 1);
    dec_org_meta(&v, &o->partition, &o->watermark, &o->open_month);
    rc = db_get(s, t, DB_SEQ, id, olen, &v, err, errlen);
    if (rc < 0) return rc;
    if (rc == 0) dec_seq(&v, o->seq);
    rc = db_get(s, t, DB_ORGCRED, id, olen, &v, err, errlen);
    if (rc < 0) return rc;
    if (rc == 0) dec_org_credit(&v, o);
    rc = load_prefixed(s, t, DB_PROJCRED, o, olen, err, errlen);
    if (!rc) rc = load_prefixed(s, t, DB_MONTHS, o, olen, err, errlen);
    return rc;
}

static int op_org_get(void *ctx, const char *id, struct eng_org *out, char *err, size_t errlen) {
    struct store *s = ctx;
    assert(s->txn);
    return load_org(s, s->txn, id, out, err, errlen);
}

/* ---- org_put ----------------------------------------------------------- */

/* orgs record + the org_partition index entry. */
static int put_org_meta(struct store *s, const struct eng_org *o, size_t olen, char *err, size_t errlen) {
    uint8_t buf[1 + 4 + 8 + 4], pk[4 + ENG_ID_MAX];
    const uint8_t mark = STORE_FORMAT_VERSION;
    struct wbuf b;
    MDB_val old;
    assert(o->partition >= 0);
    int oldpart_same = 0;
    int rc = db_get(s, s->txn, DB_ORGS, o->id, olen, &old, err, errlen);
    if (rc < 0) return rc;
    if (rc == 0) {
        int32_t oldpart, oldmonth;
        int64_t oldwm;
        dec_org_meta(&old, &oldpart, &oldwm, &oldmonth);
        oldpart_same = oldpart == o->partition;
        if (!oldpart_same) {
            rc = db_del(s, DB_ORGPART, pk, part_key(pk, oldpart, o->id, olen), err, errlen);
            if (rc) return rc;
        }
    }
    w_begin(&b, buf, sizeof(buf));
    w_i32(&b, o->partition);
    w_i64(&b, o->watermark);
    w_i32(&b, o->open_month);
    int indexed = rc == 0 && oldpart_same;
    rc = db_put(s, DB_ORGS, o->id, olen, buf, b.n, err, errlen);
    if (rc || indexed) return rc; /* the watermark moves on most events; the index rarely */
    return db_put(s, DB_ORGPART, pk, part_key(pk, o->partition, o->id, olen), &mark, 1, err, errlen);
}

static int put_seq(struct store *s, const struct eng_org *o, size_t olen, char *err, size_t errlen) {
    uint8_t buf[1 + 16];
    struct wbuf b;
    w_begin(&b, buf, sizeof(buf));
    w_u64(&b, o->seq[0]);
    w_u64(&b, o->seq[1]);
    return db_put(s, DB_SEQ, o->id, olen, buf, b.n, err, errlen);
}

/* months record of key k: put, or delete when n == 0. */
static int put_acct(struct store *s, const uint8_t *k, size_t kl, const struct eng_acct *a, int n,
                    char *err, size_t errlen) {
    uint8_t buf[1 + ACCT_LEN];
    assert(n >= 0 && n <= ENG_MAX_MONTHS);
    if (n == 0) return db_del(s, DB_MONTHS, k, kl, err, errlen);
    return db_put(s, DB_MONTHS, k, kl, buf, enc_acct(buf, sizeof(buf), a, n), err, errlen);
}

static int put_project(struct store *s, const struct eng_org *o, size_t olen,
                       const struct eng_project *p, char *err, size_t errlen) {
    uint8_t k[PKEY_MAX], buf[1 + 8 + TERMS_LEN];
    struct wbuf b;
    int rc = 0;
    assert((p->dirty & ~(unsigned)(ENG_DIRTY_CREDIT | ENG_DIRTY_ACCT)) == 0);
    assert(p->id[0] != 0 && p->has_credit <= 1);
    size_t kl = proj_key(k, o->id, olen, p->id);
    if ((p->dirty & ENG_DIRTY_CREDIT) && !p->has_credit) {
        rc = db_del(s, DB_PROJCRED, k, kl, err, errlen);
    } else if (p->dirty & ENG_DIRTY_CREDIT) {
        assert(p->value >= 0);
        w_begin(&b, buf, sizeof(buf));
        w_i64(&b, p->value);
        w_terms(&b, &p->terms);
        rc = db_put(s, DB_PROJCRED, k, kl, buf, b.n, err, errlen);
    }
    if (!rc && (p->dirty & ENG_DIRTY_ACCT)) rc = put_acct(s, k, kl, p->acct, p->nacct, err, errlen);
    return rc;
}

static int op_org_put(void *ctx, const struct eng_org *o, char *err, size_t errlen) {
    struct store *s = ctx;
    uint8_t k[PKEY_MAX], buf[OCRED_MAX];
    size_t olen = org_key_len(o->id);
    int rc = 0;
    assert(s->txn && (o->dirty & ~0xFu) == 0 && o->has_credit <= 1);
    if (o->dirty & ENG_DIRTY_META) rc = put_org_meta(s, o, olen, err, errlen);
    if (!rc && (o->dirty & ENG_DIRTY_SEQ)) rc = put_seq(s, o, olen, err, errlen);
    if (!rc && (o->dirty & ENG_DIRTY_CREDIT)) {
        if (o->has_credit)
            rc = db_put(s, DB_ORGCRED, o->id, olen, buf, enc_org_credit(buf, sizeof(buf), o), err, errlen);
        else
            rc = db_del(s, DB_ORGCRED, o->id, olen, err, errlen);
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

static int collect_partition(struct store *s, int32_t partition, struct idlist *l,
                             char *err, size_t errlen) {
    uint8_t k[4];
    MDB_cursor *c;
    MDB_val key = { 4, k }, v;
    be32(k, (uint32_t)partition);
    int rc = cursor_open(s, s->txn, DB_ORGPART, &c, err, errlen);
    if (rc) return rc;
    rc = mdb_cursor_get(c, &key, &v, MDB_SET_RANGE);
    while (rc == 0 && key.mv_size > 4 && memcmp(key.mv_data, k, 4) == 0) {
        const uint8_t *id = (const uint8_t *)key.mv_data + 4;
        assert(key.mv_size - 4 <= ENG_ID_MAX && !memchr(id, 0, key.mv_size - 4));
        assert(v.mv_size == 1 && *(const uint8_t *)v.mv_data == STORE_FORMAT_VERSION);
        if (idlist_add(l, id, key.mv_size - 4)) {
            mdb_cursor_close(c);
            return fail(err, errlen, "store %s: orgs on partition %d: out of memory", s->path,
                        (int)partition);
        }
        rc = mdb_cursor_get(c, &key, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    if (rc != 0 && rc != MDB_NOTFOUND) return lmdb_fail(s, rc, "read", "org_partition", err, errlen);
    return 0;
}

static int op_orgs_on_partition(void *ctx, int32_t partition, int (*cb)(void *arg, const char *org),
                                void *arg, char *err, size_t errlen) {
    struct store *s = ctx;
    struct idlist l = { 0 };
    assert(s->txn && partition >= 0);
    int rc = collect_partition(s, partition, &l, err, errlen);
    const char *id = l.buf;
    for (size_t i = 0; !rc && i < l.n; i++) {
        rc = cb(arg, id);
        id += strlen(id) + 1;
    }
    free(l.buf);
    return rc;
}

static int op_clock_get(void *ctx, int32_t partition, int64_t *ns, char *err, size_t errlen) {
    struct store *s = ctx;
    uint8_t k[4];
    MDB_val v;
    struct rbuf r;
    assert(s->txn && partition >= 0);
    be32(k, (uint32_t)partition);
    int rc = db_get(s, s->txn, DB_PARTS, k, sizeof(k), &v, err, errlen);
    if (rc) return rc;
    r_begin(&r, &v);
    *ns = r_i64(&r);
    r_end(&r);
    return 0;
}

static int op_clock_put(void *ctx, int32_t partition, int64_t ns, char *err, size_t errlen) {
    struct store *s = ctx;
    uint8_t k[4], buf[1 + 8];
    struct wbuf b;
    assert(s->txn && partition >= 0);
    be32(k, (uint32_t)partition);
    w_begin(&b, buf, sizeof(buf));
    w_i64(&b, ns);
    return db_put(s, DB_PARTS, k, sizeof(k), buf, b.n, err, errlen);
}

/* ---- dedupe ------------------------------------------------------------ */

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

/* dedupe record: hash, rejected, reason, full key length (0 = key is raw), full key */
static int op_dedupe_get(void *ctx, const uint8_t *key, size_t klen, struct eng_dedupe *out,
                         char *err, size_t errlen) {
    struct store *s = ctx;
    uint8_t k[STORE_DKEY_RAW_MAX];
    struct eng_dedupe d;
    struct rbuf r;
    MDB_val v;
    assert(s->txn);
    size_t kl = store_dedupe_dbkey(key, klen, k);
    int rc = db_get(s, s->txn, DB_DEDUPE, k, kl, &v, err, errlen);
    if (rc) return rc;
    r_begin(&r, &v);
    d.hash = r_u64(&r);
    d.rejected = (uint8_t)r_u8(&r);
    d.reason = (uint8_t)r_u8(&r);
    size_t full = r_u16(&r);
    const uint8_t *fk = r_bytes(&r, full);
    r_end(&r);
    assert(d.rejected <= 1 && (full == 0 || (full > STORE_DKEY_RAW_MAX && full <= ENG_DKEY_MAX)));
    int same = klen <= STORE_DKEY_RAW_MAX ? full == 0 : (full == klen && !memcmp(fk, key, klen));
    if (!same)
        return fail(err, errlen, "store %s: dedupe: the %zu-byte idempotency key collides with a "
                    "stored key of %zu bytes (same LMDB key, different key); not a duplicate, "
                    "cannot record it", s->path, klen, full ? full : kl);
    *out = d;
    return 0;
}

static int op_dedupe_put(void *ctx, const uint8_t *key, size_t klen, const struct eng_dedupe *rec,
                         char *err, size_t errlen) {
    struct store *s = ctx;
    uint8_t k[STORE_DKEY_RAW_MAX], buf[DEDUPE_MAX];
    struct wbuf b;
    assert(s->txn && rec->rejected <= 1);
    size_t kl = store_dedupe_dbkey(key, klen, k);
    int raw = klen <= STORE_DKEY_RAW_MAX;
    w_begin(&b, buf, sizeof(buf));
    w_u64(&b, rec->hash);
    w_u8(&b, rec->rejected);
    w_u8(&b, rec->reason);
    w_u16(&b, raw ? 0 : (unsigned)klen);
    if (!raw) w_bytes(&b, key, klen);
    return db_put(s, DB_DEDUPE, k, kl, buf, b.n, err, errlen);
}

/* ---- outbox ------------------------------------------------------------ */

/* Last outbox seq ever used: meta outbox_seq (kept even when the outbox is
 * emptied, so seqs are never reused), cached for the current txn. */
static int outbox_last(struct store *s, uint64_t *last, char *err, size_t errlen) {
    MDB_val v, k;
    MDB_cursor *c;
    struct rbuf r;
    uint64_t m = 0;
    if (s->out_valid) { *last = s->out_last; return 0; }
    int rc = db_get(s, s->txn, DB_META, MK_OUTSEQ, strlen(MK_OUTSEQ), &v, err, errlen);
    if (rc < 0) return rc;
    if (rc == 0) {
        r_begin(&r, &v);
        m = r_u64(&r);
        r_end(&r);
    }
    rc = cursor_open(s, s->txn, DB_OUTBOX, &c, err, errlen);
    if (rc) return rc;
    rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
    if (rc == 0) assert(k.mv_size == 8 && get_be64(k.mv_data) <= m);
    mdb_cursor_close(c);
    if (rc != 0 && rc != MDB_NOTFOUND) return lmdb_fail(s, rc, "read", "outbox", err, errlen);
    s->out_last = *last = m;
    s->out_valid = 1;
    return 0;
}

/* outbox record: kind, key length (OUT_NOKEY = none), key \0, json length (u32), json \0 */
static int op_emit(void *ctx, enum eng_out_kind kind, const char *key, const char *json, size_t len,
                   char *err, size_t errlen) {
    struct store *s = ctx;
    uint8_t k[8], mb[1 + 8];
    uint64_t last = 0;
    struct wbuf b;
    assert(s->txn && (unsigned)kind <= ENG_OUT_REJECTED && json && len <= UINT32_MAX);
    if (s->emit_fn) {
        if (s->emit_fn(s->emit_arg, kind, key, json, len) == 0) return 0;
        return fail(err, errlen, "store %s: output hook failed", s->path);
    }
    size_t klen = key ? strlen(key) : 0;
    assert(klen < OUT_NOKEY);
    int rc = outbox_last(s, &last, err, errlen);
    if (rc) return rc;
    assert(last < UINT64_MAX);
    be64(k, last + 1);
    size_t vlen = 1 + 1 + 2 + (key ? klen + 1 : 0) + 4 + len + 1;
    MDB_val mk = { 8, k }, mv = { vlen, NULL };
    rc = mdb_put(s->txn, s->dbi[DB_OUTBOX], &mk, &mv, MDB_RESERVE | MDB_APPEND);
    if (rc) return lmdb_fail(s, rc, "append", "outbox", err, errlen);
    w_begin(&b, mv.mv_data, vlen);
    w_u8(&b, (unsigned)kind);
    w_u16(&b, key ? (unsigned)klen : OUT_NOKEY);
    if (key) { w_bytes(&b, key, klen); w_u8(&b, 0); }
    w_uint(&b, len, 4);
    w_bytes(&b, json, len);
    w_u8(&b, 0);
    assert(b.n == vlen);
    w_begin(&b, mb, sizeof(mb));
    w_u64(&b, last + 1);
    rc = db_put(s, DB_META, MK_OUTSEQ, strlen(MK_OUTSEQ), mb, b.n, err, errlen);
    if (!rc) s->out_last = last + 1;
    return rc;
}

static void dec_outbox(const MDB_val *v, enum eng_out_kind *kind, const char **key,
                       const char **json, size_t *len) {
    struct rbuf r;
    r_begin(&r, v);
    unsigned kd = r_u8(&r), kl = r_u16(&r);
    assert(kd <= ENG_OUT_REJECTED);
    *kind = (enum eng_out_kind)kd;
    *key = NULL;
    if (kl != OUT_NOKEY) {
        *key = (const char *)r_bytes(&r, kl + 1);
        assert((*key)[kl] == 0 && !memchr(*key, 0, kl));
    }
    *len = (size_t)r_uint(&r, 4);
    *json = (const char *)r_bytes(&r, *len + 1);
    assert((*json)[*len] == 0);
    r_end(&r);
}

int store_outbox_scan(struct store *s, uint64_t after, store_outbox_cb cb, void *arg,
                      char *err, size_t errlen) {
    uint8_t kb[8];
    MDB_val k = { 8, kb }, v;
    MDB_txn *t;
    MDB_cursor *c;
    int own;
    if (after == UINT64_MAX) return 0;
    int rc = rtxn_begin(s, &t, &own, err, errlen);
    if (rc) return rc;
    if ((rc = cursor_open(s, t, DB_OUTBOX, &c, err, errlen)) != 0) {
        rtxn_end(t, own);
        return rc;
    }
    be64(kb, after + 1);
    int mrc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    while (mrc == 0) {
        enum eng_out_kind kind;
        const char *key, *json;
        size_t len;
        assert(k.mv_size == 8);
        dec_outbox(&v, &kind, &key, &json, &len);
        rc = cb(arg, get_be64(k.mv_data), kind, key, json, len);
        if (rc) break;
        mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    if (!rc && mrc != 0 && mrc != MDB_NOTFOUND) rc = lmdb_fail(s, mrc, "read", "outbox", err, errlen);
    rtxn_end(t, own);
    return rc;
}

int store_outbox_delete_upto(struct store *s, uint64_t upto, char *err, size_t errlen) {
    MDB_cursor *c;
    MDB_val k, v;
    assert(s->txn);
    int rc = cursor_open(s, s->txn, DB_OUTBOX, &c, err, errlen);
    if (rc) return rc;
    while ((rc = mdb_cursor_get(c, &k, &v, MDB_FIRST)) == 0) {
        assert(k.mv_size == 8);
        if (get_be64(k.mv_data) > upto) break;
        if ((rc = mdb_cursor_del(c, 0)) != 0) break;
    }
    mdb_cursor_close(c);
    if (rc != 0 && rc != MDB_NOTFOUND) return pub_rc(s, lmdb_fail(s, rc, "delete", "outbox", err, errlen));
    return 0;
}

/* ---- offsets, counters, meta strings ----------------------------------- */

static size_t offset_key(uint8_t *k, const char *topic, int32_t partition) {
    size_t n = strlen(topic);
    assert(n > 0 && n <= NAME_MAX_B && partition >= 0);
    memcpy(k, topic, n);
    k[n] = 0;
    be32(k + n + 1, (uint32_t)partition);
    return n + 5;
}

int store_offset_get(struct store *s, const char *topic, int32_t partition, int64_t *next,
                     char *err, size_t errlen) {
    uint8_t k[NAME_MAX_B + 5];
    MDB_txn *t;
    MDB_val v;
    struct rbuf r;
    int own;
    int rc = rtxn_begin(s, &t, &own, err, errlen);
    if (rc) return rc;
    rc = db_get(s, t, DB_OFFSETS, k, offset_key(k, topic, partition), &v, err, errlen);
    if (rc == 0) {
        r_begin(&r, &v);
        *next = r_i64(&r);
        r_end(&r);
        assert(*next >= 0);
    }
    rtxn_end(t, own);
    return rc;
}

int store_offset_put(struct store *s, const char *topic, int32_t partition, int64_t next,
                     char *err, size_t errlen) {
    uint8_t k[NAME_MAX_B + 5], buf[1 + 8];
    struct wbuf b;
    assert(s->txn && next >= 0);
    w_begin(&b, buf, sizeof(buf));
    w_i64(&b, next);
    return pub_rc(s, db_put(s, DB_OFFSETS, k, offset_key(k, topic, partition), buf, b.n, err, errlen));
}

static int counters_read(struct store *s, MDB_txn *t, struct store_counters *c, char *err, size_t errlen) {
    MDB_val v;
    struct rbuf r;
    memset(c, 0, sizeof(*c));
    int rc = db_get(s, t, DB_META, MK_COUNTERS, strlen(MK_COUNTERS), &v, err, errlen);
    if (rc) return rc < 0 ? rc : 0;
    r_begin(&r, &v);
    c->applied = r_u64(&r);
    c->duplicates = r_u64(&r);
    c->rejected = r_u64(&r);
    r_end(&r);
    return 0;
}

int store_counters_add(struct store *s, const struct store_counters *delta, char *err, size_t errlen) {
    struct store_counters c;
    uint8_t buf[1 + 24];
    struct wbuf b;
    assert(s->txn);
    int rc = counters_read(s, s->txn, &c, err, errlen);
    if (rc) return rc;
    w_begin(&b, buf, sizeof(buf));
    w_u64(&b, c.applied + delta->applied);
    w_u64(&b, c.duplicates + delta->duplicates);
    w_u64(&b, c.rejected + delta->rejected);
    return pub_rc(s, db_put(s, DB_META, MK_COUNTERS, strlen(MK_COUNTERS), buf, b.n, err, errlen));
}

#define META_VAL_MAX 1024

static size_t user_key(char *k, const char *name) {
    size_t n = strlen(name), p = strlen(MK_USER);
    assert(n > 0 && n <= NAME_MAX_B);
    memcpy(k, MK_USER, p);
    memcpy(k + p, name, n);
    return p + n;
}

int store_meta_get(struct store *s, const char *name, char *val, size_t vallen, char *err, size_t errlen) {
    char k[sizeof(MK_USER) + NAME_MAX_B];
    MDB_txn *t;
    MDB_val v;
    int own;
    int rc = rtxn_begin(s, &t, &own, err, errlen);
    if (rc) return rc;
    rc = db_get(s, t, DB_META, k, user_key(k, name), &v, err, errlen);
    if (rc == 0) {
        const uint8_t *p = v.mv_data;
        assert(v.mv_size >= 1 && p[0] == STORE_FORMAT_VERSION && !memchr(p + 1, 0, v.mv_size - 1));
        if (v.mv_size > vallen)
            rc = fail(err, errlen, "store %s: meta %s: value of %zu bytes does not fit in %zu",
                      s->path, name, v.mv_size - 1, vallen);
        else {
            memcpy(val, p + 1, v.mv_size - 1);
            val[v.mv_size - 1] = 0;
        }
    }
    rtxn_end(t, own);
    return rc;
}

int store_meta_put(struct store *s, const char *name, const char *val, char *err, size_t errlen) {
    char k[sizeof(MK_USER) + NAME_MAX_B];
    uint8_t buf[1 + META_VAL_MAX];
    struct wbuf b;
    size_t n = strlen(val);
    assert(s->txn);
    if (n > META_VAL_MAX)
        return fail(err, errlen, "store %s: meta %s: value of %zu bytes (max %d)", s->path, name, n,
                    META_VAL_MAX);
    w_begin(&b, buf, sizeof(buf));
    w_bytes(&b, val, n);
    return pub_rc(s, db_put(s, DB_META, k, user_key(k, name), buf, b.n, err, errlen));
}

/* ---- open / close ------------------------------------------------------ */

static int mkdir_p(const char *path, char *err, size_t errlen) {
    char tmp[PATH_MAX];
    struct stat st;
    size_t n = strlen(path);
    assert(n > 0 && n < sizeof(tmp));
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; ; p++) {
        if (*p != '/' && *p != 0) continue;
        char c = *p;
        *p = 0;
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
            return fail(err, errlen, "store %s: mkdir %s: %s", path, tmp, strerror(errno));
        *p = c;
        if (!c) break;
    }
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return fail(err, errlen, "store %s: not a directory", path);
    return 0;
}

static int data_file(const struct store *s, char *buf, size_t len) {
    int n = snprintf(buf, len, "%s/data.mdb", s->path);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

static int env_open(struct store *s, const struct store_opts *o, char *err, size_t errlen) {
    unsigned flags = MDB_NORDAHEAD | (o->readonly ? MDB_RDONLY : 0) | (o->nosync ? MDB_NOSYNC : 0);
    char f[PATH_MAX + 16];
    struct stat st;
    if (o->readonly && (data_file(s, f, sizeof(f)) || stat(f, &st) != 0))
        return fail(err, errlen, "store %s: no store there (%s: %s)", s->path, f, strerror(errno));
    int rc = mdb_env_create(&s->env);
    if (rc) {
        s->env = NULL;
        return fail(err, errlen, "store %s: create LMDB env: %s", s->path, mdb_strerror(rc));
    }
    rc = mdb_env_set_maxdbs(s->env, DB_COUNT);
    if (!rc && !o->readonly) {
        size_t map = o->map_size ? o->map_size : DEFAULT_MAP_SIZE;
        map = (map + 65535) & ~(size_t)65535;  /* a multiple of any page size */
        rc = mdb_env_set_mapsize(s->env, map);
    }
    if (!rc) rc = mdb_env_open(s->env, s->path, flags, 0600);
    if (rc) return fail(err, errlen, "store %s: open LMDB env: %s", s->path, mdb_strerror(rc));
    if (!o->readonly) {
        int dead; /* slots of crashed readers would pin old pages */
        mdb_reader_check(s->env, &dead);
    }
    return 0;
}

/* A new store records the format and the result-changing config. */
static int meta_create(struct store *s, const struct store_opts *o, char *err, size_t errlen) {
    uint8_t buf[1 + 32];
    struct wbuf b;
    w_begin(&b, buf, sizeof(buf));
    int rc = db_put(s, DB_META, MK_FORMAT, strlen(MK_FORMAT), buf, b.n, err, errlen);
    w_begin(&b, buf, sizeof(buf));
    w_i64(&b, o->close_after_s);
    if (!rc) rc = db_put(s, DB_META, MK_CLOSE, strlen(MK_CLOSE), buf, b.n, err, errlen);
    w_begin(&b, buf, sizeof(buf));
    w_bytes(&b, o->currency, strlen(o->currency));
    if (!rc) rc = db_put(s, DB_META, MK_CURRENCY, strlen(MK_CURRENCY), buf, b.n, err, errlen);
    return rc;
}

/* close_after and currency recorded in t; missing records are an error. */
static int meta_config(struct store *s, MDB_txn *t, int64_t *close_after, char cur[32],
                       char *err, size_t errlen) {
    MDB_val v;
    struct rbuf r;
    int rc = db_get(s, t, DB_META, MK_CLOSE, strlen(MK_CLOSE), &v, err, errlen);
    if (rc == STORE_NOTFOUND) return fail(err, errlen, "store %s: meta close_after missing", s->path);
    if (rc) return rc;
    r_begin(&r, &v);
    *close_after = r_i64(&r);
    r_end(&r);
    rc = db_get(s, t, DB_META, MK_CURRENCY, strlen(MK_CURRENCY), &v, err, errlen);
    if (rc == STORE_NOTFOUND) return fail(err, errlen, "store %s: meta currency missing", s->path);
    if (rc) return rc;
    r_begin(&r, &v);
    size_t n = v.mv_size - 1;
    const uint8_t *p = r_bytes(&r, n);
    r_end(&r);
    assert(n < 32 && !memchr(p, 0, n));
    memcpy(cur, p, n);
    cur[n] = 0;
    return 0;
}

static int meta_check(struct store *s, MDB_txn *t, const struct store_opts *o, char *err, size_t errlen) {
    int64_t close_after;
    char cur[32];
    MDB_val v;
    int rc = db_get(s, t, DB_META, MK_FORMAT, strlen(MK_FORMAT), &v, err, errlen);
    if (rc < 0) return rc;
    if (rc == STORE_NOTFOUND) {
        if (s->readonly) return fail(err, errlen, "store %s: not initialised (no format record)", s->path);
        return meta_create(s, o, err, errlen);
    }
    const uint8_t *p = v.mv_data;
    if (v.mv_size != 1 || p[0] != STORE_FORMAT_VERSION) {
        fail(err, errlen, "store %s has format %u, this build reads format %d", s->path,
             v.mv_size ? p[0] : 0u, STORE_FORMAT_VERSION);
        return STORE_EMISMATCH;
    }
    if (!o->currency) return 0;
    if ((rc = meta_config(s, t, &close_after, cur, err, errlen)) != 0) return rc;
    if (close_after != o->close_after_s) {
        fail(err, errlen, "store %s was created with close_after=%lld, config says %lld", s->path,
             (long long)close_after, (long long)o->close_after_s);
        return STORE_EMISMATCH;
    }
    if (strcmp(cur, o->currency) != 0) {
        fail(err, errlen, "store %s was created with currency=%s, config says %s", s->path, cur,
             o->currency);
        return STORE_EMISMATCH;
    }
    return 0;
}

/* Open (or create) the named DBs and check or record meta, in one txn. */
static int dbs_open(struct store *s, const struct store_opts *o, char *err, size_t errlen) {
    MDB_txn *t;
    int rc = mdb_txn_begin(s->env, NULL, s->readonly ? MDB_RDONLY : 0, &t);
    if (rc) return lmdb_fail(s, rc, "begin", "setup txn", err, errlen);
    for (int i = 0; !rc && i < DB_COUNT; i++) {
        rc = mdb_dbi_open(t, db_names[i], s->readonly ? 0 : MDB_CREATE, &s->dbi[i]);
        if (rc == MDB_NOTFOUND)
            rc = fail(err, errlen, "store %s: not a creditd store (database %s missing)", s->path,
                      db_names[i]);
        else if (rc)
            rc = lmdb_fail(s, rc, "open database", db_names[i], err, errlen);
    }
    if (!rc) {
        if (!s->readonly) s->txn = t;
        rc = meta_check(s, t, o, err, errlen);
        s->txn = NULL;
    }
    if (rc) {
        mdb_txn_abort(t);
        return rc;
    }
    rc = mdb_txn_commit(t);  /* also for the read txn: keeps the DB handles */
    return rc ? lmdb_fail(s, rc, "commit", "setup txn", err, errlen) : 0;
}

int store_open(struct store **out, const struct store_opts *o, char *err, size_t errlen) {
    *out = NULL;
    assert(o && o->path && (o->readonly || o->currency));
    if (o->currency && strlen(o->currency) >= 32)
        return fail(err, errlen, "store %s: currency '%s' too long", o->path, o->currency);
    if (strlen(o->path) == 0 || strlen(o->path) >= PATH_MAX)
        return fail(err, errlen, "store: bad path '%s'", o->path);
    struct store *s = calloc(1, sizeof(*s));
    if (!s) return fail(err, errlen, "store %s: out of memory", o->path);
    strcpy(s->path, o->path);
    s->readonly = o->readonly;
    int rc = o->readonly ? 0 : mkdir_p(s->path, err, errlen);
    if (!rc) rc = env_open(s, o, err, errlen);
    if (!rc) rc = dbs_open(s, o, err, errlen);
    if (rc) {
        store_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

void store_close(struct store *s) {
    if (!s) return;
    if (s->txn) mdb_txn_abort(s->txn);
    if (s->env) mdb_env_close(s->env);
    free(s);
}

/* ---- batch transaction ------------------------------------------------- */

int store_begin(struct store *s, char *err, size_t errlen) {
    assert(!s->txn);
    if (s->readonly) return fail(err, errlen, "store %s: opened readonly", s->path);
    s->map_full = 0;
    s->out_valid = 0;
    int rc = s->grow_pending ? grow_map(s) : 0;
    if (rc) return fail(err, errlen, "store %s: growing the map: %s", s->path, mdb_strerror(rc));
    rc = mdb_txn_begin(s->env, NULL, 0, &s->txn);
    if (rc == MDB_MAP_RESIZED) {
        rc = mdb_env_set_mapsize(s->env, 0);
        if (!rc) rc = mdb_txn_begin(s->env, NULL, 0, &s->txn);
    }
    if (rc) {
        s->txn = NULL;
        return fail(err, errlen, "store %s: begin write txn: %s", s->path, mdb_strerror(rc));
    }
    return 0;
}

void store_abort(struct store *s) {
    if (s->txn) mdb_txn_abort(s->txn);
    s->txn = NULL;
    s->out_valid = 0;
    if (s->grow_pending) grow_map(s);  /* on failure store_begin retries and reports */
}

int store_commit(struct store *s, char *err, size_t errlen) {
    assert(s->txn);
    if (s->map_full) {
        store_abort(s);
        fail(err, errlen, "store %s: map was full: batch discarded, map grown, retry it", s->path);
        return STORE_EMAPFULL;
    }
    int rc = mdb_txn_commit(s->txn);  /* frees the txn, also on failure */
    s->txn = NULL;
    s->out_valid = 0;
    if (rc == MDB_MAP_FULL) {
        s->map_full = 1;
        s->grow_pending = 1;
        grow_map(s);
        fail(err, errlen, "store %s: commit: map full: batch discarded, map grown, retry it", s->path);
        return STORE_EMAPFULL;
    }
    return rc ? lmdb_fail(s, rc, "commit", "batch", err, errlen) : 0;
}

int store_map_full(const struct store *s) { return s->map_full; }

void store_set_emit_hook(struct store *s, store_emit_fn fn, void *arg) {
    s->emit_fn = fn;
    s->emit_arg = arg;
}

void store_engine_ops(struct store *s, struct engine_store *ops) {
    ops->ctx = s;
    ops->org_get = op_org_get;
    ops->org_put = op_org_put;
    ops->orgs_on_partition = op_orgs_on_partition;
    ops->clock_get = op_clock_get;
    ops->clock_put = op_clock_put;
    ops->dedupe_get = op_dedupe_get;
    ops->dedupe_put = op_dedupe_put;
    ops->emit = op_emit;
}

/* ---- read-only views --------------------------------------------------- */

int store_get_org(struct store *s, const char *id, struct eng_org *out, char *err, size_t errlen) {
    MDB_txn *t;
    int own;
    int rc = rtxn_begin(s, &t, &own, err, errlen);
    if (rc) return rc;
    rc = load_org(s, t, id, out, err, errlen);
    rtxn_end(t, own);
    return rc;
}

static int scan_orgs_txn(struct store *s, MDB_txn *t, struct eng_org *o, store_org_cb cb, void *arg,
                         char *err, size_t errlen) {
    char id[ENG_ID_MAX + 1];
    MDB_cursor *c;
    MDB_val k, v;
    int rc = cursor_open(s, t, DB_ORGS, &c, err, errlen);
    if (rc) return rc;
    int mrc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (mrc == 0) {
        assert(k.mv_size > 0 && k.mv_size <= ENG_ID_MAX && !memchr(k.mv_data, 0, k.mv_size));
        memcpy(id, k.mv_data, k.mv_size);
        id[k.mv_size] = 0;
        rc = load_org(s, t, id, o, err, errlen);
        assert(rc != ENG_NOTFOUND);
        if (!rc) rc = cb(arg, o);
        if (rc) break;
        mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    if (!rc && mrc != 0 && mrc != MDB_NOTFOUND) rc = lmdb_fail(s, mrc, "read", "orgs", err, errlen);
    return rc;
}

int store_scan_orgs(struct store *s, store_org_cb cb, void *arg, char *err, size_t errlen) {
    struct eng_org *o = malloc(sizeof(*o));
    MDB_txn *t;
    int own;
    if (!o) return fail(err, errlen, "store %s: scan orgs: out of memory", s->path);
    eng_org_init(o);
    int rc = rtxn_begin(s, &t, &own, err, errlen);
    if (!rc) {
        rc = scan_orgs_txn(s, t, o, cb, arg, err, errlen);
        rtxn_end(t, own);
    }
    eng_org_free(o);
    free(o);
    return rc;
}

static int stats_txn(struct store *s, MDB_txn *t, struct store_stats *st, char *err, size_t errlen) {
    MDB_envinfo info;
    MDB_stat ms;
    char f[PATH_MAX + 16];
    struct stat fst;
    for (int i = 0; i < DB_COUNT; i++) {
        int rc = mdb_stat(t, s->dbi[i], &ms);
        if (rc) return lmdb_fail(s, rc, "stat", db_names[i], err, errlen);
        st->db[i].name = db_names[i];
        st->db[i].entries = ms.ms_entries;
    }
    st->ndb = DB_COUNT;
    int rc = mdb_env_info(s->env, &info);
    if (!rc) rc = mdb_env_stat(s->env, &ms);
    if (rc) return lmdb_fail(s, rc, "stat", "env", err, errlen);
    st->map_size = info.me_mapsize;
    st->used_bytes = (uint64_t)(info.me_last_pgno + 1) * ms.ms_psize;
    if (data_file(s, f, sizeof(f)) || stat(f, &fst) != 0)
        return fail(err, errlen, "store %s: stat data.mdb: %s", s->path, strerror(errno));
    st->file_bytes = (uint64_t)fst.st_size;
    rc = counters_read(s, t, &st->counters, err, errlen);
    if (!rc) rc = meta_config(s, t, &st->close_after_s, st->currency, err, errlen);
    return rc;
}

int store_stats(struct store *s, struct store_stats *st, char *err, size_t errlen) {
    MDB_txn *t;
    int own;
    _Static_assert(DB_COUNT <= sizeof(st->db) / sizeof(st->db[0]), "stats db slots");
    memset(st, 0, sizeof(*st));
    int rc = rtxn_begin(s, &t, &own, err, errlen);
    if (rc) return rc;
    rc = stats_txn(s, t, st, err, errlen);
    rtxn_end(t, own);
    return rc;
}

static int dump_db(struct store *s, MDB_txn *t, int db, store_dump_cb cb, void *arg,
                   char *err, size_t errlen) {
    MDB_cursor *c;
    MDB_val k, v;
    int rc = cursor_open(s, t, db, &c, err, errlen);
    if (rc) return rc;
    int mrc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (mrc == 0) {
        rc = cb(arg, db_names[db], k.mv_data, k.mv_size, v.mv_data, v.mv_size);
        if (rc) break;
        mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    if (!rc && mrc != 0 && mrc != MDB_NOTFOUND) rc = lmdb_fail(s, mrc, "read", db_names[db], err, errlen);
    return rc;
}

int store_dump(struct store *s, store_dump_cb cb, void *arg, char *err, size_t errlen) {
    MDB_txn *t;
    int own;
    int rc = rtxn_begin(s, &t, &own, err, errlen);
    if (rc) return rc;
    for (int i = 0; !rc && i < DB_COUNT; i++) rc = dump_db(s, t, i, cb, arg, err, errlen);
    rtxn_end(t, own);
    return rc;
}
