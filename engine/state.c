/* state.c -- helpers for the in-memory organisation state (see state.h). */
#include "engine/state.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/money.h"
#include "engine/timeutil.h"

/* Zeroes everything but the offerings table (13 KB, read only up to noff):
 * the engine re-inits an org for every event, and a whole-struct memset was
 * 18% of replay's main thread. */
void eng_org_init(struct eng_org *o) {
    memset(o, 0, offsetof(struct eng_org, off));
    memset((char *)o + offsetof(struct eng_org, off) + sizeof(o->off), 0,
           sizeof(*o) - offsetof(struct eng_org, off) - sizeof(o->off));
    o->watermark = ENG_NO_TIME;
    o->open_month = ENG_NO_MONTH;
    o->partition = -1;
    o->terms.end_month = ENG_NO_MONTH;
}

void eng_org_free(struct eng_org *o) {
    free(o->proj);
    o->proj = NULL;
    o->nproj = o->capproj = 0;
}

int eng_org_copy(struct eng_org *dst, const struct eng_org *src) {
    struct eng_project *p = dst->proj;
    size_t cap = dst->capproj;
    if (cap < src->nproj) {
        p = realloc(p, src->nproj * sizeof(*p));
        if (!p) return -1;
        cap = src->nproj;
    }
    memcpy(dst, src, sizeof(*dst));
    dst->proj = p;
    dst->capproj = cap;
    if (src->nproj) memcpy(p, src->proj, src->nproj * sizeof(*p));
    return 0;
}

/* Binary search; *pos receives the insertion point. */
static struct eng_project *find(struct eng_org *o, const char *id, size_t *pos) {
    size_t lo = 0, hi = o->nproj;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(o->proj[mid].id, id);
        if (c == 0) { *pos = mid; return &o->proj[mid]; }
        if (c < 0) lo = mid + 1; else hi = mid;
    }
    *pos = lo;
    return NULL;
}

struct eng_project *eng_org_find_project(struct eng_org *o, const char *id) {
    size_t pos;
    return find(o, id, &pos);
}

struct eng_project *eng_org_add_project(struct eng_org *o, const char *id) {
    size_t pos;
    struct eng_project *p = find(o, id, &pos);
    if (p) return p;
    assert(strlen(id) <= ENG_ID_MAX);
    if (o->nproj == o->capproj) {
        size_t cap = o->capproj ? o->capproj * 2 : 4;
        struct eng_project *np = realloc(o->proj, cap * sizeof(*np));
        if (!np) return NULL;
        o->proj = np;
        o->capproj = cap;
    }
    memmove(&o->proj[pos + 1], &o->proj[pos], (o->nproj - pos) * sizeof(*o->proj));
    o->nproj++;
    p = &o->proj[pos];
    memset(p, 0, sizeof(*p));
    strcpy(p->id, id);
    p->terms.end_month = ENG_NO_MONTH;
    return p;
}

int eng_org_merge_projects(struct eng_org *o, const struct eng_org *from) {
    size_t n = o->nproj + from->nproj, i = 0, j = 0, k = 0;
    if (n == 0) return 0;
    struct eng_project *m = malloc(n * sizeof(*m));
    if (!m) return -1;
    /* A merge of two sorted lists; on equal ids o's copy wins. */
    while (i < o->nproj || j < from->nproj) {
        int c = i == o->nproj ? 1 : j == from->nproj ? -1 : strcmp(o->proj[i].id, from->proj[j].id);
        if (c <= 0) m[k++] = o->proj[i++];
        else m[k++] = from->proj[j++];
        if (c == 0) j++;
    }
    free(o->proj);
    o->proj = m;
    o->nproj = k;
    o->capproj = n;
    return 0;
}

/* ---- checks of state read from the store (see state.h) ------------------- */

static int bad(char *why, size_t whylen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(char *why, size_t whylen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    return -1;
}

/* "YYYY-MM", or "month index N" when the year does not have 4 digits
 * (time_format_month asserts on it). */
static const char *month_text(int32_t m, char buf[32]) {
    if (m >= 0 && m < 10000 * 12) time_format_month(m, buf);
    else snprintf(buf, 32, "month index %" PRId32, m);
    return buf;
}

static const char *money_text(int64_t v, char buf[MONEY_FMT_MAX]) {
    money_format(v, MONEY_DIGITS, buf);
    return buf;
}

static int id_ok(const char *id) {
    size_t n = strnlen(id, ENG_ID_MAX + 1);
    return n > 0 && n <= ENG_ID_MAX;
}

static int terms_check(const struct eng_terms *t, char *why, size_t whylen) {
    char b[32];
    if (t->logic > ENG_LINEAR) return bad(why, whylen, "terms: consumption logic %u", t->logic);
    if (t->grace > 100) return bad(why, whylen, "terms: grace coefficient %u (0..100)", t->grace);
    if ((t->apply_min | t->reserve | t->use_org_credit | t->mark_unused) > 1)
        return bad(why, whylen, "terms: a flag is neither 0 nor 1");
    if (t->end_month != ENG_NO_MONTH && !time_month_in_range(t->end_month))
        return bad(why, whylen, "terms: end month %s is outside 1970-01..2261-12",
                   month_text(t->end_month, b));
    if (t->logic == ENG_LINEAR && t->end_month == ENG_NO_MONTH)
        return bad(why, whylen, "terms: linear consumption without an end date");
    if (t->expected < 0)
        return bad(why, whylen, "terms: expected consumption %s < 0",
                   money_text(t->expected, b));
    return 0;
}

/* Months are added at the month an event acts in (its own, or the open
 * month when late), which lies between the open month and the watermark's
 * month, and dropped when closed: with close_after bounded that is at most
 * 5 months, so acct_add (credit.c) always finds room. */
/* An entry holding only an overage_started flag (§12, credit.c flag_floor)
 * may lie before the open month (kept from before the first set, dropped
 * at the first close) or in an org that never opened a month; it is never
 * after the watermark's month. */
static int acct_check(const struct eng_org *o, const struct eng_acct *a, int n, char *why,
                      size_t whylen) {
    char b1[32], b2[32], b3[32];
    if (n < 0 || n > ENG_MAX_MONTHS)
        return bad(why, whylen, "months: %d entries (0..%d)", n, ENG_MAX_MONTHS);
    if (n == 0) return 0;
    if (o->watermark == ENG_NO_TIME)
        return bad(why, whylen, "months: entries but no watermark");
    int32_t last = time_month_of(o->watermark);
    for (int i = 0; i < n; i++) {
        if (a[i].overage > 1)
            return bad(why, whylen, "months: overage flag %u in %s", a[i].overage,
                       month_text(a[i].month, b1));
        int flag_only = a[i].overage && a[i].consumed == 0;
        if (flag_only && (a[i].month < 0 || a[i].month > last))
            return bad(why, whylen, "months: overage flag in %s, outside 1970-01 .. the "
                       "watermark's month %s", month_text(a[i].month, b1), month_text(last, b2));
        if (!flag_only && o->open_month == ENG_NO_MONTH)
            return bad(why, whylen, "months: consumption recorded but no month was ever opened");
        if (!flag_only && (a[i].month < o->open_month || a[i].month > last))
            return bad(why, whylen, "months: consumption in %s, outside the open month %s .. "
                       "the watermark's month %s", month_text(a[i].month, b1),
                       month_text(o->open_month, b2), month_text(last, b3));
        if (i > 0 && a[i].month <= a[i - 1].month)
            return bad(why, whylen, "months: %s after %s (not ascending)",
                       month_text(a[i].month, b1), month_text(a[i - 1].month, b2));
        if (a[i].consumed < 0)
            return bad(why, whylen, "months: consumption %s < 0 in %s",
                       money_text(a[i].consumed, b1), month_text(a[i].month, b2));
    }
    return 0;
}

/* Watermark, open month and sequences. */
static int meta_check(const struct eng_org *o, char *why, size_t whylen) {
    char b1[32], b2[32];
    if (o->partition < 0) return bad(why, whylen, "partition %" PRId32 " < 0", o->partition);
    if (o->watermark != ENG_NO_TIME && !time_ns_in_range(o->watermark))
        return bad(why, whylen, "watermark %" PRId64 " ns is outside 1970..2261", o->watermark);
    if (o->open_month != ENG_NO_MONTH) {
        if (o->watermark == ENG_NO_TIME)
            return bad(why, whylen, "open month %s without a watermark",
                       month_text(o->open_month, b1));
        int32_t last = time_month_of(o->watermark);
        if (!time_month_in_range(o->open_month) || o->open_month > last)
            return bad(why, whylen, "open month %s is outside 1970-01 .. the watermark's month %s",
                       month_text(o->open_month, b1), month_text(last, b2));
    }
    for (int k = 0; k < 2; k++)
        if (o->seq[k] > (uint64_t)INT64_MAX)
            return bad(why, whylen, "%s sequence %" PRIu64 " exceeds 2^63-1",
                       k == ENG_OUT_OVERAGE ? "overage" : "ledger", o->seq[k]);
    if (o->alert_seq > (uint64_t)INT64_MAX)
        return bad(why, whylen, "alert sequence %" PRIu64 " exceeds 2^63-1", o->alert_seq);
    if (o->credit_seq > (uint64_t)INT64_MAX)
        return bad(why, whylen, "credit serial %" PRIu64 " exceeds 2^63-1", o->credit_seq);
    return 0;
}

/* §13 credit serial: at most the org's last one handed out, 0 without a credit. */
static int serial_check(const struct eng_org *o, uint64_t serial, int has_credit, char *why,
                        size_t whylen) {
    if (!has_credit && serial)
        return bad(why, whylen, "no credit, yet credit serial %" PRIu64, serial);
    if (serial > o->credit_seq)
        return bad(why, whylen, "credit serial %" PRIu64 " beyond the last one handed out %" PRIu64,
                   serial, o->credit_seq);
    return 0;
}

/* §12 alert state: thresholds 1..99 only, armed ones among them, reference
 * >= 0, exhausted 0/1; all zero without a credit. */
static int alerts_check(const struct eng_alerts *a, int has_credit, char *why, size_t whylen) {
    char b[MONEY_FMT_MAX];
    if (!has_credit) {
        static const struct eng_alerts zero;
        if (memcmp(a, &zero, sizeof(zero)) != 0)
            return bad(why, whylen, "alert state without a credit");
        return 0;
    }
    /* bit 0 (0 %) and bits 100..127 are never thresholds */
    if ((a->thr[0] & 1) || (a->thr[1] >> (ENG_ALERT_PCT_MAX + 1 - 64)))
        return bad(why, whylen, "alert thresholds outside 1..%d", ENG_ALERT_PCT_MAX);
    if ((a->armed[0] & ~a->thr[0]) || (a->armed[1] & ~a->thr[1]))
        return bad(why, whylen, "an armed alert threshold that is not a threshold");
    if (a->reference < 0)
        return bad(why, whylen, "alert reference %s < 0", money_text(a->reference, b));
    if (a->exhausted > 1) return bad(why, whylen, "exhausted flag %u", a->exhausted);
    return 0;
}

int eng_org_check(const struct eng_org *o, char *why, size_t whylen) {
    char b1[MONEY_FMT_MAX], b2[MONEY_FMT_MAX];
    if (!id_ok(o->id)) return bad(why, whylen, "id of 0 or more than %d bytes", ENG_ID_MAX);
    if (meta_check(o, why, whylen)) return -1;
    if (o->has_credit > 1) return bad(why, whylen, "credit flag %u", o->has_credit);
    if (o->value < 0) return bad(why, whylen, "value %s < 0", money_text(o->value, b1));
    if (o->alloc_sum < 0)
        return bad(why, whylen, "allocation sum %s < 0", money_text(o->alloc_sum, b1));
    if (o->noff < 0 || o->noff > ENG_MAX_OFFERINGS)
        return bad(why, whylen, "%d offerings (0..%d)", o->noff, ENG_MAX_OFFERINGS);
    for (int i = 0; i < o->noff; i++)
        if (!id_ok(o->off[i])) return bad(why, whylen, "offering %d: id of 0 or more than %d bytes",
                                          i, ENG_ID_MAX);
    if (!o->has_credit && (o->value || o->alloc_sum))
        return bad(why, whylen, "no credit, yet value %s and allocation sum %s",
                   money_text(o->value, b1), money_text(o->alloc_sum, b2));
    if (o->has_credit && o->open_month == ENG_NO_MONTH)
        return bad(why, whylen, "a credit but no open month");
    if (o->has_credit && terms_check(&o->terms, why, whylen)) return -1;
    if (alerts_check(&o->al, o->has_credit, why, whylen)) return -1;
    if (serial_check(o, o->serial, o->has_credit, why, whylen)) return -1;
    return acct_check(o, o->acct, o->nacct, why, whylen);
}

int eng_project_check(const struct eng_org *o, const struct eng_project *p, char *why,
                      size_t whylen) {
    char b1[MONEY_FMT_MAX], b2[MONEY_FMT_MAX];
    if (!id_ok(p->id)) return bad(why, whylen, "id of 0 or more than %d bytes", ENG_ID_MAX);
    if (p->has_credit > 1) return bad(why, whylen, "credit flag %u", p->has_credit);
    if (p->value < 0) return bad(why, whylen, "value %s < 0", money_text(p->value, b1));
    if (!p->has_credit && p->value)
        return bad(why, whylen, "no credit, yet value %s", money_text(p->value, b1));
    if (p->has_credit) {
        if (!o->has_credit) return bad(why, whylen, "a credit, but the organisation has none");
        if (p->value > o->alloc_sum)
            return bad(why, whylen, "value %s exceeds the organisation's allocation sum %s",
                       money_text(p->value, b1), money_text(o->alloc_sum, b2));
        if (terms_check(&p->terms, why, whylen)) return -1;
    }
    if (alerts_check(&p->al, p->has_credit, why, whylen)) return -1;
    if (serial_check(o, p->serial, p->has_credit, why, whylen)) return -1;
    return acct_check(o, p->acct, p->nacct, why, whylen);
}

int eng_org_check_alloc_sum(const struct eng_org *o, char *why, size_t whylen) {
    char b1[MONEY_FMT_MAX], b2[MONEY_FMT_MAX];
    int64_t sum = 0;
    for (size_t i = 0; i < o->nproj; i++)
        if (o->proj[i].has_credit && __builtin_add_overflow(sum, o->proj[i].value, &sum))
            return bad(why, whylen, "the project credits' sum overflows");
    if (sum != o->alloc_sum)
        return bad(why, whylen, "allocation sum %s, but the project credits add up to %s",
                   money_text(o->alloc_sum, b1), money_text(sum, b2));
    return 0;
}
