/* store_codec.c -- the byte layout of every record the store writes.
 *
 * Every value starts with STORE_FORMAT_VERSION, then fixed little-endian
 * fields (i32/i64/u64), strings as u8/u16 length + bytes.  Data is checked
 * with assertions before it is written and after it is read back.
 */
#undef NDEBUG /* the data checks below must stay on in release builds */
#include "store/store_int.h"

#include <assert.h>
#include <string.h>

/* ---- primitives ---------------------------------------------------------- */

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

/* ---- single values ------------------------------------------------------- */

size_t st_enc_bytes(uint8_t *buf, size_t cap, const void *p, size_t n) {
    struct wbuf b;
    w_begin(&b, buf, cap);
    w_bytes(&b, p, n);
    return b.n;
}
const uint8_t *st_dec_bytes(const MDB_val *v, size_t *n) {
    struct rbuf r;
    r_begin(&r, v);
    *n = v->mv_size - 1;
    const uint8_t *p = r_bytes(&r, *n);
    r_end(&r);
    return p;
}

size_t st_enc_i64(uint8_t *buf, size_t cap, int64_t x) {
    struct wbuf b;
    w_begin(&b, buf, cap);
    w_i64(&b, x);
    return b.n;
}
int64_t st_dec_i64(const MDB_val *v) {
    struct rbuf r;
    r_begin(&r, v);
    int64_t x = r_i64(&r);
    r_end(&r);
    return x;
}

size_t st_enc_u64(uint8_t *buf, size_t cap, uint64_t x) {
    struct wbuf b;
    w_begin(&b, buf, cap);
    w_u64(&b, x);
    return b.n;
}
uint64_t st_dec_u64(const MDB_val *v) {
    struct rbuf r;
    r_begin(&r, v);
    uint64_t x = r_u64(&r);
    r_end(&r);
    return x;
}

/* counters: applied, duplicates, rejected */
size_t st_enc_counters(uint8_t *buf, size_t cap, const struct store_counters *c) {
    struct wbuf b;
    w_begin(&b, buf, cap);
    w_u64(&b, c->applied);
    w_u64(&b, c->duplicates);
    w_u64(&b, c->rejected);
    return b.n;
}
void st_dec_counters(const MDB_val *v, struct store_counters *c) {
    struct rbuf r;
    r_begin(&r, v);
    c->applied = r_u64(&r);
    c->duplicates = r_u64(&r);
    c->rejected = r_u64(&r);
    r_end(&r);
}

/* ---- org state ----------------------------------------------------------- */

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
size_t st_enc_acct(uint8_t *buf, size_t cap, const struct eng_acct *a, int n) {
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
int st_dec_acct(const MDB_val *v, struct eng_acct *a) {
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
size_t st_enc_org_meta(uint8_t *buf, size_t cap, const struct eng_org *o) {
    struct wbuf b;
    assert(o->partition >= 0);
    w_begin(&b, buf, cap);
    w_i32(&b, o->partition);
    w_i64(&b, o->watermark);
    w_i32(&b, o->open_month);
    return b.n;
}
void st_dec_org_meta(const MDB_val *v, int32_t *partition, int64_t *watermark, int32_t *open_month) {
    struct rbuf r;
    r_begin(&r, v);
    *partition = r_i32(&r);
    *watermark = r_i64(&r);
    *open_month = r_i32(&r);
    r_end(&r);
    assert(*partition >= 0);
}

/* sequences record: last overage seq, last ledger seq */
size_t st_enc_seq(uint8_t *buf, size_t cap, const uint64_t seq[2]) {
    struct wbuf b;
    w_begin(&b, buf, cap);
    w_u64(&b, seq[0]);
    w_u64(&b, seq[1]);
    return b.n;
}
void st_dec_seq(const MDB_val *v, uint64_t seq[2]) {
    struct rbuf r;
    r_begin(&r, v);
    seq[0] = r_u64(&r);
    seq[1] = r_u64(&r);
    r_end(&r);
}

/* org_credits record: V, terms, offerings */
size_t st_enc_org_credit(uint8_t *buf, size_t cap, const struct eng_org *o) {
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
void st_dec_org_credit(const MDB_val *v, struct eng_org *o) {
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
size_t st_enc_proj_credit(uint8_t *buf, size_t cap, const struct eng_project *p) {
    struct wbuf b;
    assert(p->value >= 0);
    w_begin(&b, buf, cap);
    w_i64(&b, p->value);
    w_terms(&b, &p->terms);
    return b.n;
}
void st_dec_proj_credit(const MDB_val *v, struct eng_project *p) {
    struct rbuf r;
    r_begin(&r, v);
    p->has_credit = 1;
    p->value = r_i64(&r);
    assert(p->value >= 0);
    r_terms(&r, &p->terms);
    r_end(&r);
}

/* ---- dedupe -------------------------------------------------------------- */

/* dedupe record: hash, rejected, reason, full key length (0 = key is raw), full key */
size_t st_enc_dedupe(uint8_t *buf, size_t cap, const struct eng_dedupe *rec, const uint8_t *full,
                     size_t flen) {
    struct wbuf b;
    assert(rec->rejected <= 1);
    w_begin(&b, buf, cap);
    w_u64(&b, rec->hash);
    w_u8(&b, rec->rejected);
    w_u8(&b, rec->reason);
    w_u16(&b, full ? (unsigned)flen : 0);
    if (full) w_bytes(&b, full, flen);
    return b.n;
}
void st_dec_dedupe(const MDB_val *v, struct eng_dedupe *d, const uint8_t **full, size_t *flen) {
    struct rbuf r;
    r_begin(&r, v);
    d->hash = r_u64(&r);
    d->rejected = (uint8_t)r_u8(&r);
    d->reason = (uint8_t)r_u8(&r);
    *flen = r_u16(&r);
    *full = r_bytes(&r, *flen);
    r_end(&r);
    assert(d->rejected <= 1 && (*flen == 0 || (*flen > STORE_DKEY_RAW_MAX && *flen <= ENG_DKEY_MAX)));
}

/* ---- outbox -------------------------------------------------------------- */

/* outbox record: kind, key length (OUT_NOKEY = none), key \0, json length (u32), json \0 */
size_t st_outbox_len(const char *key, size_t len) {
    return 1 + 1 + 2 + (key ? strlen(key) + 1 : 0) + 4 + len + 1;
}
void st_enc_outbox(uint8_t *buf, size_t vlen, enum eng_out_kind kind, const char *key,
                   const char *json, size_t len) {
    struct wbuf b;
    size_t klen = key ? strlen(key) : 0;
    assert((unsigned)kind <= ENG_OUT_REJECTED && klen < OUT_NOKEY && len <= UINT32_MAX);
    w_begin(&b, buf, vlen);
    w_u8(&b, (unsigned)kind);
    w_u16(&b, key ? (unsigned)klen : OUT_NOKEY);
    if (key) { w_bytes(&b, key, klen); w_u8(&b, 0); }
    w_uint(&b, len, 4);
    w_bytes(&b, json, len);
    w_u8(&b, 0);
    assert(b.n == vlen);
}
void st_dec_outbox(const MDB_val *v, enum eng_out_kind *kind, const char **key, const char **json,
                   size_t *len) {
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
