/* store_codec.c -- the byte layout of every record the store writes.
 *
 * Every value starts with STORE_FORMAT_VERSION, then fixed little-endian
 * fields (i32/i64/u64), strings as u8/u16 length + bytes.
 *
 * Encoders assert what they are given (the engine's state: a violation is a
 * programmer error).  Decoders read bytes from the disk and assert nothing:
 * they check the same rules (version, length, ranges, ids) and return -1
 * with `why` (why[whylen]) saying what is wrong; the caller names the
 * database and key (st_corrupt).  To change a record's layout, change its
 * encoder and decoder pair here (and STORE_FORMAT_VERSION).
 */
#undef NDEBUG /* asserts (programmer errors only, never read data) stay on in release builds */
#include "store/store_int.h"
#include "engine/timeutil.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---- primitives ---------------------------------------------------------- */

struct wbuf { uint8_t *p; size_t n, cap; };
struct rbuf { const uint8_t *p; size_t n, pos; int bad; char *why; size_t whylen; };

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

/* Reading is checked, never asserted: the bytes come from the disk.  The
 * first problem found is kept in why (later reads return zeros and change
 * nothing), and r_end() reports it. */
static void r_fail(struct rbuf *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void r_fail(struct rbuf *r, const char *fmt, ...) {
    va_list ap;
    if (r->bad) return;
    r->bad = 1;
    va_start(ap, fmt);
    vsnprintf(r->why, r->whylen, fmt, ap);
    va_end(ap);
}
static int r_has(struct rbuf *r, size_t n) {
    if (r->bad) return 0;
    if (n <= r->n - r->pos) return 1;
    r_fail(r, "truncated: %zu-byte value, %zu more bytes needed at byte %zu", r->n, n, r->pos);
    return 0;
}
static uint64_t r_uint(struct rbuf *r, int bytes) {
    uint64_t v = 0;
    if (!r_has(r, (size_t)bytes)) return 0;
    for (int i = 0; i < bytes; i++) v |= (uint64_t)r->p[r->pos++] << (8 * i);
    return v;
}
static unsigned r_u8(struct rbuf *r)  { return (unsigned)r_uint(r, 1); }
static unsigned r_u16(struct rbuf *r) { return (unsigned)r_uint(r, 2); }
static int32_t r_i32(struct rbuf *r)  { return (int32_t)(uint32_t)r_uint(r, 4); }
static int64_t r_i64(struct rbuf *r)  { return (int64_t)r_uint(r, 8); }
static uint64_t r_u64(struct rbuf *r) { return r_uint(r, 8); }
/* n bytes in place; NULL (and r->bad) when the value is shorter. */
static const uint8_t *r_bytes(struct rbuf *r, size_t n) {
    if (!r_has(r, n)) return NULL;
    r->pos += n;
    return r->p + r->pos - n;
}
/* An id of n bytes (1..ENG_ID_MAX, no NUL) into out[ENG_ID_MAX + 1]. */
static void r_id(struct rbuf *r, size_t n, char *out, const char *what, int i) {
    if (n == 0 || n > ENG_ID_MAX) {
        r_fail(r, "%s %d: id of %zu bytes (1..%d)", what, i, n, ENG_ID_MAX);
        return;
    }
    const uint8_t *p = r_bytes(r, n);
    if (!p) return;
    if (memchr(p, 0, n)) r_fail(r, "%s %d: id contains a NUL byte", what, i);
    memcpy(out, p, n);
    out[n] = 0;
}
static void r_begin(struct rbuf *r, const MDB_val *v, char *why, size_t whylen) {
    r->p = v->mv_data; r->n = v->mv_size; r->pos = 0;
    r->bad = 0; r->why = why; r->whylen = whylen;
    if (r->n == 0) { r_fail(r, "empty value (no format version byte)"); return; }
    unsigned ver = r_u8(r);
    if (ver != STORE_FORMAT_VERSION)
        r_fail(r, "record format version %u, this build reads version %d", ver, STORE_FORMAT_VERSION);
}
/* 0, or -1 with why set: the first problem, else bytes left over. */
static int r_end(struct rbuf *r) {
    if (!r->bad && r->pos != r->n)
        r_fail(r, "%zu trailing bytes after a %zu-byte record", r->n - r->pos, r->pos);
    return r->bad ? -1 : 0;
}

/* ---- single values ------------------------------------------------------- */

size_t st_enc_bytes(uint8_t *buf, size_t cap, const void *p, size_t n) {
    struct wbuf b;
    w_begin(&b, buf, cap);
    w_bytes(&b, p, n);
    return b.n;
}
/* Text values (currency, user meta): no NUL inside. */
int st_dec_text(const MDB_val *v, const char **p, size_t *n, char *why, size_t whylen) {
    struct rbuf r;
    r_begin(&r, v, why, whylen);
    *n = r.bad ? 0 : v->mv_size - 1;
    *p = (const char *)r_bytes(&r, *n);
    if (*p && memchr(*p, 0, *n)) r_fail(&r, "text contains a NUL byte");
    return r_end(&r);
}

size_t st_enc_i64(uint8_t *buf, size_t cap, int64_t x) {
    struct wbuf b;
    w_begin(&b, buf, cap);
    w_i64(&b, x);
    return b.n;
}
int st_dec_i64(const MDB_val *v, int64_t *x, int64_t min, char *why, size_t whylen) {
    struct rbuf r;
    r_begin(&r, v, why, whylen);
    *x = r_i64(&r);
    if (*x < min) r_fail(&r, "value %lld < %lld", (long long)*x, (long long)min);
    return r_end(&r);
}

size_t st_enc_u64(uint8_t *buf, size_t cap, uint64_t x) {
    struct wbuf b;
    w_begin(&b, buf, cap);
    w_u64(&b, x);
    return b.n;
}
int st_dec_u64(const MDB_val *v, uint64_t *x, char *why, size_t whylen) {
    struct rbuf r;
    r_begin(&r, v, why, whylen);
    *x = r_u64(&r);
    return r_end(&r);
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
int st_dec_counters(const MDB_val *v, struct store_counters *c, char *why, size_t whylen) {
    struct rbuf r;
    r_begin(&r, v, why, whylen);
    c->applied = r_u64(&r);
    c->duplicates = r_u64(&r);
    c->rejected = r_u64(&r);
    return r_end(&r);
}

/* ---- org state ----------------------------------------------------------- */

/* terms: logic, grace, flags (apply_min, reserve, use_org_credit, mark_unused), end month, expected */
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
    unsigned logic = r_u8(r), grace = r_u8(r), f = r_u8(r);
    if (logic > ENG_LINEAR) r_fail(r, "terms: consumption logic %u (0..%d)", logic, ENG_LINEAR);
    if (grace > 100) r_fail(r, "terms: grace coefficient %u (0..100)", grace);
    if (f > 0xF) r_fail(r, "terms: flags 0x%02x (bits 0x0f only)", f);
    t->logic = (uint8_t)logic;
    t->grace = (uint8_t)grace;
    t->apply_min = f & 1;
    t->reserve = (f >> 1) & 1;
    t->use_org_credit = (f >> 2) & 1;
    t->mark_unused = (f >> 3) & 1;
    t->end_month = r_i32(r);
    t->expected = r_i64(r);
}

/* alert state (§12): thresholds (2 u64), armed (2 u64), reference, exhausted */
static void w_alerts(struct wbuf *b, const struct eng_alerts *a) {
    assert(a->reference >= 0 && a->exhausted <= 1);
    for (int i = 0; i < 2; i++) w_u64(b, a->thr[i]);
    for (int i = 0; i < 2; i++) w_u64(b, a->armed[i]);
    w_i64(b, a->reference);
    w_u8(b, a->exhausted);
}
static void r_alerts(struct rbuf *r, struct eng_alerts *a) {
    for (int i = 0; i < 2; i++) a->thr[i] = r_u64(r);
    for (int i = 0; i < 2; i++) a->armed[i] = r_u64(r);
    a->reference = r_i64(r);
    unsigned ex = r_u8(r);
    if ((a->thr[0] & 1) || (a->thr[1] >> (ENG_ALERT_PCT_MAX + 1 - 64)))
        r_fail(r, "alerts: a threshold outside 1..%d", ENG_ALERT_PCT_MAX);
    if ((a->armed[0] & ~a->thr[0]) || (a->armed[1] & ~a->thr[1]))
        r_fail(r, "alerts: an armed threshold that is not a threshold");
    if (a->reference < 0) r_fail(r, "alerts: reference %lld < 0", (long long)a->reference);
    if (ex > 1) r_fail(r, "alerts: exhausted flag %u (0..1)", ex);
    a->exhausted = (uint8_t)ex;
}

/* months: n (0..ENG_MAX_MONTHS), n * (month, consumed, overage started) */
static void w_acct(struct wbuf *b, const struct eng_acct *a, int n) {
    assert(n >= 0 && n <= ENG_MAX_MONTHS);
    w_u8(b, (unsigned)n);
    for (int i = 0; i < n; i++) {
        assert(a[i].month != ENG_NO_MONTH);
        assert(a[i].overage <= 1);
        w_i32(b, a[i].month);
        w_i64(b, a[i].consumed);
        w_u8(b, a[i].overage);
    }
}
/* Entries go to a[0..*n) only when there are some (none: a and *n are left
 * as the caller set them, the loader's defaults). */
static void r_acct(struct rbuf *r, struct eng_acct *a, int *n) {
    unsigned cnt = r_u8(r);
    struct eng_acct e[ENG_MAX_MONTHS];
    if (!r->bad && cnt > ENG_MAX_MONTHS) r_fail(r, "months: %u entries (0..%d)", cnt, ENG_MAX_MONTHS);
    for (unsigned i = 0; !r->bad && i < cnt; i++) {
        e[i].month = r_i32(r);
        e[i].consumed = r_i64(r);
        unsigned ov = r_u8(r);
        if (!r->bad && e[i].month == ENG_NO_MONTH) r_fail(r, "months: entry %u has no month", i);
        if (ov > 1) r_fail(r, "months: entry %u has overage flag %u (0..1)", i, ov);
        e[i].overage = (uint8_t)ov;
    }
    if (r->bad || cnt == 0) return;
    memcpy(a, e, cnt * sizeof(e[0]));
    *n = (int)cnt;
}

/* The credit flag of an org or project record: 0 or 1. */
static unsigned r_flag(struct rbuf *r) {
    unsigned f = r_u8(r);
    if (f > 1) r_fail(r, "credit flag %u (0..1)", f);
    return r->bad ? 0 : f;
}

/* orgs record (format 6: what orgs, sequences, org_credits and the org's own
 * months record held):
 *   partition, watermark, open month,
 *   last overage seq, last ledger seq, last alert seq, last credit serial,
 *   credit flag; with a credit: V, sum of P, terms, n offerings,
 *   n * (length, id), alert state, serial;
 *   months */
size_t st_enc_org(uint8_t *buf, size_t cap, const struct eng_org *o) {
    struct wbuf b;
    assert(o->partition >= 0 && o->has_credit <= 1);
    w_begin(&b, buf, cap);
    w_i32(&b, o->partition);
    w_i64(&b, o->watermark);
    w_i32(&b, o->open_month);
    w_u64(&b, o->seq[0]);
    w_u64(&b, o->seq[1]);
    w_u64(&b, o->alert_seq);
    w_u64(&b, o->credit_seq);
    w_u8(&b, o->has_credit);
    if (o->has_credit) {
        assert(o->value >= 0 && o->alloc_sum >= 0);
        assert(o->noff >= 0 && o->noff <= ENG_MAX_OFFERINGS);
        w_i64(&b, o->value);
        w_i64(&b, o->alloc_sum);
        w_terms(&b, &o->terms);
        w_u8(&b, (unsigned)o->noff);
        for (int i = 0; i < o->noff; i++) {
            size_t n = strnlen(o->off[i], ENG_ID_MAX + 1);
            assert(n > 0 && n <= ENG_ID_MAX);
            w_u8(&b, (unsigned)n);
            w_bytes(&b, o->off[i], n);
        }
        w_alerts(&b, &o->al);
        w_u64(&b, o->serial);
    }
    w_acct(&b, o->acct, o->nacct);
    return b.n;
}

/* The offerings: into off[0..n) (off NULL: checked, not kept). */
static int r_offerings(struct rbuf *r, char (*off)[ENG_ID_MAX + 1]) {
    char tmp[ENG_ID_MAX + 1];
    unsigned noff = r_u8(r);
    if (noff > ENG_MAX_OFFERINGS) r_fail(r, "%u offerings (at most %d)", noff, ENG_MAX_OFFERINGS);
    for (unsigned i = 0; !r->bad && i < noff; i++)
        r_id(r, r_u8(r), off ? off[i] : tmp, "offering", (int)i);
    return r->bad ? 0 : (int)noff;
}

/* An orgs record's fields but the offerings (those go to off[]). */
struct org_rec {
    int32_t partition, open_month;
    int64_t watermark;
    uint64_t seq[2], alert_seq, credit_seq;
    uint8_t has_credit;
    int64_t value, alloc_sum;
    struct eng_terms terms;
    int noff;
    struct eng_alerts al;
    uint64_t serial;
    int nacct;
    struct eng_acct acct[ENG_MAX_MONTHS];
};

/* An orgs record into f (zeroed first); off: where the offerings go (NULL:
 * checked, not kept). */
static int dec_org(const MDB_val *v, struct org_rec *f, char (*off)[ENG_ID_MAX + 1], char *why,
                   size_t whylen) {
    struct rbuf r;
    memset(f, 0, sizeof(*f));
    r_begin(&r, v, why, whylen);
    f->partition = r_i32(&r);
    f->watermark = r_i64(&r);
    f->open_month = r_i32(&r);
    if (f->partition < 0) r_fail(&r, "partition %d < 0", (int)f->partition);
    f->seq[0] = r_u64(&r);
    f->seq[1] = r_u64(&r);
    f->alert_seq = r_u64(&r);
    f->credit_seq = r_u64(&r);
    if (f->credit_seq > (uint64_t)INT64_MAX) r_fail(&r, "credit serial beyond 2^63-1");
    if (r_flag(&r)) {
        f->has_credit = 1;
        f->value = r_i64(&r);
        if (f->value < 0) r_fail(&r, "value %lld < 0", (long long)f->value);
        f->alloc_sum = r_i64(&r);
        if (f->alloc_sum < 0) r_fail(&r, "allocation sum %lld < 0", (long long)f->alloc_sum);
        r_terms(&r, &f->terms);
        f->noff = r_offerings(&r, off);
        r_alerts(&r, &f->al);
        f->serial = r_u64(&r); /* eng_org_check bounds it by the credit serial */
    }
    r_acct(&r, f->acct, &f->nacct);
    return r_end(&r);
}

int st_dec_org(const MDB_val *v, struct eng_org *o, char *why, size_t whylen) {
    struct org_rec f;
    int rc = dec_org(v, &f, o->off, why, whylen);
    o->partition = f.partition;
    o->watermark = f.watermark;
    o->open_month = f.open_month;
    memcpy(o->seq, f.seq, sizeof(o->seq));
    o->alert_seq = f.alert_seq;
    o->credit_seq = f.credit_seq;
    if (f.has_credit) {  /* else o keeps the loader's defaults */
        o->has_credit = 1;
        o->value = f.value;
        o->alloc_sum = f.alloc_sum;
        o->terms = f.terms;
        o->noff = f.noff;
        o->al = f.al;
        o->serial = f.serial;
    }
    if (f.nacct) {
        memcpy(o->acct, f.acct, (size_t)f.nacct * sizeof(f.acct[0]));
        o->nacct = f.nacct;
    }
    return rc;
}

int st_dec_org_partition(const MDB_val *v, int32_t *partition, char *why, size_t whylen) {
    struct org_rec f;
    int rc = dec_org(v, &f, NULL, why, whylen);
    *partition = f.partition;
    return rc;
}

/* project_credits record (format 6: what project_credits and the project's
 * months record held): credit flag; with a credit: P, terms, alert state,
 * serial; months.  A project with neither is no record (it is deleted). */
size_t st_enc_proj(uint8_t *buf, size_t cap, const struct eng_project *p) {
    struct wbuf b;
    assert(p->has_credit <= 1 && (p->has_credit || p->nacct > 0));
    w_begin(&b, buf, cap);
    w_u8(&b, p->has_credit);
    if (p->has_credit) {
        assert(p->value >= 0);
        w_i64(&b, p->value);
        w_terms(&b, &p->terms);
        w_alerts(&b, &p->al);
        w_u64(&b, p->serial);
    }
    w_acct(&b, p->acct, p->nacct);
    return b.n;
}
int st_dec_proj(const MDB_val *v, struct eng_project *p, char *why, size_t whylen) {
    struct rbuf r;
    int nacct = 0;
    r_begin(&r, v, why, whylen);
    unsigned credit = r_flag(&r);
    if (credit) {
        p->has_credit = 1;
        p->value = r_i64(&r);
        if (p->value < 0) r_fail(&r, "value %lld < 0", (long long)p->value);
        r_terms(&r, &p->terms);
        r_alerts(&r, &p->al);
        p->serial = r_u64(&r);
    }
    r_acct(&r, p->acct, &nacct);
    if (nacct) p->nacct = nacct;
    if (!r.bad && !credit && !nacct) r_fail(&r, "a project record with neither a credit nor months");
    return r_end(&r);
}

/* ---- dedupe -------------------------------------------------------------- */

/* Unsigned LEB128 (7 bits a byte, low first; at most 10 bytes, the shortest
 * form only): the usage block is stored with every applied usage, so its
 * small numbers take a byte or a few instead of eight. */
static void w_var(struct wbuf *b, uint64_t v) {
    do {
        w_u8(b, (unsigned)((v & 0x7F) | (v > 0x7F ? 0x80 : 0)));
        v >>= 7;
    } while (v);
}
static uint64_t r_var(struct rbuf *r, const char *what) {
    uint64_t v = 0;
    for (int i = 0; i < 10; i++) {
        if (!r_has(r, 1)) return 0;
        unsigned c = r->p[r->pos++];
        if (i == 9 && c > 1) break;                  /* beyond 64 bits */
        v |= (uint64_t)(c & 0x7F) << (7 * i);
        if (!(c & 0x80)) {
            if (i > 0 && c == 0) break;              /* not the shortest form */
            return v;
        }
    }
    r_fail(r, "%s: bad variable-length number", what);
    return 0;
}

/* A string of 1..max bytes without a NUL into out (w_str's counterpart). */
static void w_str(struct wbuf *b, const char *s, size_t max, int wide) {
    size_t n = strlen(s);
    assert(n > 0 && n <= max);
    if (wide) w_u16(b, (unsigned)n);
    else w_u8(b, (unsigned)n);
    w_bytes(b, s, n);
}
static void r_str(struct rbuf *r, char *out, size_t max, int wide, const char *what) {
    size_t n = wide ? r_u16(r) : r_u8(r);
    out[0] = 0;
    if (r->bad) return;
    if (n == 0 || n > max) {
        r_fail(r, "%s of %zu bytes (1..%zu)", what, n, max);
        return;
    }
    const uint8_t *p = r_bytes(r, n);
    if (!p) return;
    if (memchr(p, 0, n)) r_fail(r, "%s contains a NUL byte", what);
    memcpy(out, p, n);
    out[n] = 0;
}

/* §13 usage block: flags (bit 0 an applied usage, bit 1 voided); with bit 0:
 * billing month, org serial, project serial, d1, d2 (each LEB128), project
 * (u8 length), overage seq (LEB128); with an overage seq: its amount
 * (LEB128), resource (u16 length), offering (u8), component (u16). */
static void w_usage(struct wbuf *b, const struct eng_usage_rec *u) {
    assert(u->has <= 1 && u->voided <= u->has);
    w_u8(b, (unsigned)(u->has | u->voided << 1));
    if (!u->has) return;
    assert(u->d1 >= 0 && u->d2 >= 0 && u->ov_seq <= (uint64_t)INT64_MAX);
    assert(u->billing_month >= 0);
    w_var(b, (uint32_t)u->billing_month);
    w_var(b, u->org_serial);
    w_var(b, u->proj_serial);
    w_var(b, (uint64_t)u->d1);
    w_var(b, (uint64_t)u->d2);
    w_str(b, u->project, ENG_ID_MAX, 0);
    w_var(b, u->ov_seq);
    if (!u->ov_seq) return;
    assert(u->ov_amount > 0);
    w_var(b, (uint64_t)u->ov_amount);
    w_str(b, u->resource, ENG_KEYPART_MAX, 1);
    w_str(b, u->offering, ENG_ID_MAX, 0);
    w_str(b, u->component, ENG_KEYPART_MAX, 1);
}
static void r_usage(struct rbuf *r, struct eng_usage_rec *u, int rejected) {
    unsigned f = r_u8(r);
    memset(u, 0, sizeof(*u));
    if (f > 3 || f == 2) r_fail(r, "usage flags %u (0, 1 or 3)", f);
    if (f && rejected) r_fail(r, "usage data on a rejected key");
    if (r->bad || !(f & 1)) return;
    u->has = 1;
    u->voided = (uint8_t)(f >> 1);
    uint64_t bm = r_var(r, "usage billing month");
    u->billing_month = bm <= INT32_MAX ? (int32_t)bm : -1;
    u->org_serial = r_var(r, "usage org serial");
    u->proj_serial = r_var(r, "usage project serial");
    uint64_t d1 = r_var(r, "usage d1"), d2 = r_var(r, "usage d2");
    r_str(r, u->project, ENG_ID_MAX, 0, "usage project");
    u->ov_seq = r_var(r, "usage overage seq");
    if (!r->bad && !time_month_in_range(u->billing_month))
        r_fail(r, "usage billing month %" PRIu64 " out of range", bm);
    if (d1 > INT64_MAX || d2 > INT64_MAX) r_fail(r, "usage draw beyond 2^63-1");
    u->d1 = (int64_t)d1;
    u->d2 = (int64_t)d2;
    if (u->org_serial > (uint64_t)INT64_MAX || u->proj_serial > (uint64_t)INT64_MAX ||
        u->ov_seq > (uint64_t)INT64_MAX)
        r_fail(r, "usage serial or overage seq beyond 2^63-1");
    if (r->bad || !u->ov_seq) return;
    uint64_t amount = r_var(r, "usage overage amount");
    if (amount == 0 || amount > INT64_MAX) r_fail(r, "usage overage amount %" PRIu64 " (1..2^63-1)", amount);
    u->ov_amount = (int64_t)amount;
    r_str(r, u->resource, ENG_KEYPART_MAX, 1, "usage resource");
    r_str(r, u->offering, ENG_ID_MAX, 0, "usage offering");
    r_str(r, u->component, ENG_KEYPART_MAX, 1, "usage component");
}

/* dedupe record: hash, rejected, reason, partition (i32, -1 = kept),
 * time (i64 ns, INT64_MIN = kept), full key length (0 = key is raw), full
 * key, usage block (§13) */
size_t st_enc_dedupe(uint8_t *buf, size_t cap, const struct eng_dedupe *rec, const uint8_t *full,
                     size_t flen) {
    struct wbuf b;
    assert(rec->rejected <= 1 && rec->partition >= -1);
    assert(rec->time == ENG_NO_TIME || time_ns_in_range(rec->time));
    assert(!full || (flen > STORE_DKEY_RAW_MAX && flen <= ENG_DKEY_MAX));
    w_begin(&b, buf, cap);
    w_u64(&b, rec->hash);
    w_u8(&b, rec->rejected);
    w_u8(&b, rec->reason);
    w_i32(&b, rec->partition);
    w_i64(&b, rec->time);
    w_u16(&b, full ? (unsigned)flen : 0);
    if (full) w_bytes(&b, full, flen);
    w_usage(&b, &rec->u);
    return b.n;
}
int st_dec_dedupe(const MDB_val *v, struct eng_dedupe *d, const uint8_t **full, size_t *flen,
                  char *why, size_t whylen) {
    struct rbuf r;
    r_begin(&r, v, why, whylen);
    d->hash = r_u64(&r);
    unsigned rej = r_u8(&r);
    d->reason = (uint8_t)r_u8(&r);
    d->partition = r_i32(&r);
    d->time = r_i64(&r);
    *flen = r_u16(&r);
    if (rej > 1) r_fail(&r, "rejected flag %u (0..1)", rej);
    if (d->partition < -1) r_fail(&r, "partition %d (-1 or >= 0)", (int)d->partition);
    if (d->time != ENG_NO_TIME && !time_ns_in_range(d->time))
        r_fail(&r, "time %lld ns outside 1970..2261", (long long)d->time);
    if (*flen != 0 && (*flen <= STORE_DKEY_RAW_MAX || *flen > ENG_DKEY_MAX))
        r_fail(&r, "full key of %zu bytes (0 or %d..%d)", *flen, STORE_DKEY_RAW_MAX + 1, ENG_DKEY_MAX);
    d->rejected = (uint8_t)rej;
    *full = r.bad ? NULL : r_bytes(&r, *flen);
    r_usage(&r, &d->u, rej != 0);
    return r_end(&r);
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
    assert((unsigned)kind < ENG_OUT_NKIND && klen < OUT_NOKEY && len <= UINT32_MAX);
    w_begin(&b, buf, vlen);
    w_u8(&b, (unsigned)kind);
    w_u16(&b, key ? (unsigned)klen : OUT_NOKEY);
    if (key) { w_bytes(&b, key, klen); w_u8(&b, 0); }
    w_uint(&b, len, 4);
    w_bytes(&b, json, len);
    w_u8(&b, 0);
    assert(b.n == vlen);
}
/* A string of n bytes followed by a NUL, none inside. */
static const char *r_cstr(struct rbuf *r, size_t n, const char *what) {
    const char *p = (const char *)r_bytes(r, n + 1);
    if (!p) return NULL;
    if (p[n] != 0) r_fail(r, "%s is not NUL-terminated", what);
    else if (memchr(p, 0, n)) r_fail(r, "%s contains a NUL byte", what);
    return p;
}
int st_dec_outbox(const MDB_val *v, enum eng_out_kind *kind, const char **key, const char **json,
                  size_t *len, char *why, size_t whylen) {
    struct rbuf r;
    r_begin(&r, v, why, whylen);
    unsigned kd = r_u8(&r), kl = r_u16(&r);
    if (kd >= ENG_OUT_NKIND) r_fail(&r, "output kind %u (0..%d)", kd, ENG_OUT_NKIND - 1);
    *kind = (enum eng_out_kind)kd;
    *key = kl != OUT_NOKEY ? r_cstr(&r, kl, "key") : NULL;
    *len = (size_t)r_uint(&r, 4);
    *json = r_cstr(&r, *len, "json");
    return r_end(&r);
}
