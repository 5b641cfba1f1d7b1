/* credit.c -- the credit rules (semantics §4-6).
 *
 * Every rule checks everything that can fail (state rules, overflow) before
 * it changes anything, so a reject leaves the org exactly as the closes left
 * it.  Ledger entries are emitted as changes are made, in the order of §8.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "engine/engine_int.h"
#include "engine/money.h"
#include "engine/timeutil.h"

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* ---- per-month consumption ---------------------------------------------- */

static int64_t acct_get(const struct eng_acct *a, int n, int32_t month) {
    for (int i = 0; i < n; i++)
        if (a[i].month == month) return a[i].consumed;
    return 0;
}

/* Would adding d to `month` overflow?  (Checked before any change.) */
static int acct_can_add(const struct eng_acct *a, int n, int32_t month, int64_t d) {
    int64_t r;
    return money_add(acct_get(a, n, month), d, &r) == 0;
}

static void acct_add(struct eng_acct *a, int *n, int32_t month, int64_t d) {
    int i;
    for (i = 0; i < *n && a[i].month < month; i++) {}
    if (i == *n || a[i].month != month) {
        /* Months held are >= the open month and <= the watermark's month
         * (stored ones are checked so), and closes ran first: with
         * close_after <= 90 days that is at most 5 months, so they fit. */
        assert(*n < ENG_MAX_MONTHS);
        memmove(&a[i + 1], &a[i], (size_t)(*n - i) * sizeof(*a));
        (*n)++;
        a[i].month = month;
        a[i].consumed = 0;
        a[i].overage = 0;
    }
    int rc = money_add(a[i].consumed, d, &a[i].consumed);
    assert(rc == 0); /* the caller checked it with acct_can_add */
    (void)rc;
}

/* Drop months <= m; 1 if anything was dropped. */
static int acct_drop(struct eng_acct *a, int *n, int32_t m) {
    int k = 0;
    while (k < *n && a[k].month <= m) k++;
    if (!k) return 0;
    memmove(a, a + k, (size_t)(*n - k) * sizeof(*a));
    *n -= k;
    return 1;
}

/* ---- overage_started flags (§12) ------------------------------------------ */

/* Oldest billing month whose flag is kept: the open month (older ones are
 * closed and their flags dropped with them); an organisation that never
 * had a credit has no closes, so its flags are kept for the watermark's
 * month and the two before it (README, choices). */
static int32_t flag_floor(const struct eng_org *o) {
    return o->open_month != ENG_NO_MONTH ? o->open_month : time_month_of(o->watermark) - 2;
}

/* Drop entries that hold only a flag for a month below floor. */
static int flag_prune(struct eng_project *p, int32_t floor) {
    int k = 0, dropped = 0;
    for (int i = 0; i < p->nacct; i++) {
        if (p->acct[i].month < floor && p->acct[i].consumed == 0) { dropped = 1; continue; }
        p->acct[k++] = p->acct[i];
    }
    p->nacct = k;
    if (dropped) p->dirty |= ENG_DIRTY_ACCT;
    return dropped;
}

/* ---- terms --------------------------------------------------------------- */

/* Minimum consumption of month m (§6).  t's expected is >= 0 and its grace
 * <= 100 (decoded so; stored terms are checked), so 0 <= r <= expected. */
static int64_t minimum_of(const struct eng_terms *t, int32_t m) {
    if (!t->apply_min) return 0;
    if (t->end_month != ENG_NO_MONTH) {
        if (m >= t->end_month) return 0;
        if (m == t->end_month - 1) return t->expected;
    }
    int64_t r;
    int rc = money_muldiv(t->expected, 100 - t->grace, 100, &r);
    assert(rc == 0 && r >= 0 && r <= t->expected);
    (void)rc;
    return r;
}

int64_t engine_month_minimum(const struct eng_terms *t, int32_t month) {
    return minimum_of(t, month);
}

int64_t engine_month_consumed(const struct eng_acct *a, int n, int32_t month) {
    return acct_get(a, n, month);
}

static int expired_by(const struct eng_terms *t, int32_t m) {
    return t->end_month != ENG_NO_MONTH && t->end_month <= m;
}

/* Linear expected for month `from`: (balance + consumed) / months left.
 * end > from: org_set and project_set checked the end date is after the
 * open month (which an org with credit has) and the event's month;
 * close_linear skips expired terms, and linear terms have an end month. */
static int linear_expected(int64_t balance, int64_t consumed, int32_t from, int32_t end,
                           int64_t *out) {
    int64_t sum;
    assert(end > from);
    if (money_add(balance, consumed, &sum)) return ENG_R_OVERFLOW;
    int rc = money_muldiv(sum, 1, end - from, out);
    assert(rc == 0);
    (void)rc;
    return 0;
}

/* ---- projects ------------------------------------------------------------ */

/* "corrupt store: org O[ project P]: why"; ids are printed up to their
 * bound, so an id without its NUL is no overread. */
static int corrupt(struct engine *e, const struct eng_org *o, const struct eng_project *p,
                   const char *why) {
    if (p)
        snprintf(e->err, e->errlen, "corrupt store: org %.*s project %.*s: %s", ENG_ID_MAX, o->id,
                 ENG_ID_MAX, p->id, why);
    else
        snprintf(e->err, e->errlen, "corrupt store: org %.*s: %s", ENG_ID_MAX, o->id, why);
    return ENG_ESTORE;
}

int credit_check_org(struct engine *e, const struct eng_org *o) {
    char why[256];
    return eng_org_check(o, why, sizeof(why)) ? corrupt(e, o, NULL, why) : ENG_OK;
}

static int check_project(struct engine *e, const struct eng_org *o, const struct eng_project *p) {
    char why[256];
    return eng_project_check(o, p, why, sizeof(why)) ? corrupt(e, o, p, why) : ENG_OK;
}

/* Project `id` of o, loaded from the store when o does not hold it yet;
 * *out NULL when the organisation has no such project. */
static int find_project(struct engine *e, struct eng_org *o, const char *id,
                        struct eng_project **out) {
    const struct engine_store *st = e->st;
    struct eng_project tmp;
    *out = eng_org_find_project(o, id);
    if (*out || o->all_projects) return 0;
    memset(&tmp, 0, sizeof(tmp));
    int rc = st->project_get(st->ctx, o->id, id, &tmp, e->err, e->errlen);
    if (rc == ENG_NOTFOUND) return 0;
    if (rc) return ENG_ESTORE;
    strcpy(tmp.id, id);
    if ((rc = check_project(e, o, &tmp))) return rc;
    struct eng_project *p = eng_org_add_project(o, id);
    if (!p) {
        snprintf(e->err, e->errlen, "out of memory loading project %s of %s", id, o->id);
        return ENG_ESTORE;
    }
    *p = tmp;
    p->dirty = 0;
    *out = p;
    return 0;
}

/* Every project of o (a month close or a delete visits them all).  The
 * projects o does not hold yet come from the store and are checked; then,
 * all of them held, so is o's sum of P (org_delete relies on it). */
static int load_all_projects(struct engine *e, struct eng_org *o) {
    const struct engine_store *st = e->st;
    struct eng_org *s = &e->scratch;
    char why[256];
    int rc;
    if (o->all_projects) return 0;
    s->nproj = 0;
    if (st->projects_get(st->ctx, o->id, s, e->err, e->errlen)) return ENG_ESTORE;
    for (size_t i = 0; i < s->nproj; i++) {
        const struct eng_project *p = &s->proj[i];
        if (strnlen(p->id, ENG_ID_MAX + 1) > ENG_ID_MAX) {
            snprintf(why, sizeof(why), "id of more than %d bytes", ENG_ID_MAX);
            return corrupt(e, o, p, why);
        }
        if (i > 0 && strcmp(s->proj[i - 1].id, p->id) >= 0)
            return corrupt(e, o, p, "projects not in ascending order of id");
        if (!eng_org_find_project(o, p->id) && (rc = check_project(e, o, p))) return rc;
    }
    if (eng_org_merge_projects(o, s)) {
        snprintf(e->err, e->errlen, "out of memory loading the projects of %s", o->id);
        return ENG_ESTORE;
    }
    o->all_projects = 1;
    return eng_org_check_alloc_sum(o, why, sizeof(why)) ? corrupt(e, o, NULL, why) : 0;
}

/* P of p (a project with credit) becomes v, which is at most P unless the
 * caller checked the new sum: o->alloc_sum follows.  ENG_ESTORE when the
 * stored sum is below the project's own value (stored data is checked,
 * never asserted on). */
static int project_value(struct engine *e, struct eng_org *o, struct eng_project *p, int64_t v) {
    /* Stored P is checked >= 0; callers pass 0, a decoded value, or P less
     * a draw of at most P. */
    assert(p->has_credit && v >= 0 && p->value >= 0);
    int64_t sum = o->alloc_sum;
    if (sum < p->value) {
        snprintf(e->err, e->errlen,
                 "corrupt store: org %s: allocation sum %lld is below project %s's value %lld",
                 o->id, (long long)sum, p->id, (long long)p->value);
        return ENG_ESTORE;
    }
    if (money_add(sum - p->value, v, &o->alloc_sum)) {
        snprintf(e->err, e->errlen, "org %s: allocation sum overflows", o->id);
        return ENG_ESTORE;
    }
    p->value = v;
    p->dirty |= ENG_DIRTY_CREDIT;
    o->dirty |= ENG_DIRTY_CREDIT;
    return 0;
}

/* ---- closes -------------------------------------------------------------- */

/* An entry on p's account (the org's when p is NULL), balance after. */
static struct ledger ledger_on(const struct eng_org *o, const struct eng_project *p,
                               const char *entry, int32_t month, int late) {
    struct ledger l = {0};
    l.entry = entry;
    l.project = p ? p->id : NULL;
    l.account_project = p != NULL;
    l.balance = p ? p->value : o->value;
    l.month = month;
    l.late = late;
    return l;
}

static int ledger_simple(struct engine *e, struct eng_org *o, const char *entry,
                         struct eng_project *p, int64_t delta, int32_t month, int late) {
    struct ledger l = ledger_on(o, p, entry, month, late);
    l.delta = delta;
    return out_ledger(e, o, &l);
}

static int grow_draws(struct engine *e, size_t n) {
    if (n <= e->cap_draws) return 0;
    int64_t *d = realloc(e->draws, n * sizeof(*d));
    if (!d) {
        snprintf(e->err, e->errlen, "out of memory");
        return ENG_ESTORE;
    }
    e->draws = d;
    e->cap_draws = n;
    return 0;
}

/* Steps 1-2: minimal draws.  mins[i]/draws[i] per project, mins[n]/draws[n]
 * for the org (n = o->nproj). */
static int close_minimums(struct engine *e, struct eng_org *o, int32_t m, int64_t *mins,
                          int64_t *draws) {
    int rc;
    size_t n = o->nproj;
    for (size_t i = 0; i <= n; i++) mins[i] = draws[i] = 0;
    for (size_t i = 0; i < n; i++) {
        struct eng_project *p = &o->proj[i];
        if (!p->has_credit) continue;
        mins[i] = minimum_of(&p->terms, m);
        int64_t d = min64(max64(0, mins[i] - acct_get(p->acct, p->nacct, m)), p->value);
        if (d == 0) continue;
        int64_t before = p->value;
        if ((rc = project_value(e, o, p, p->value - d))) return rc;
        draws[i] = d;
        if ((rc = ledger_simple(e, o, "minimal_draw", p, -d, m, 0))) return rc;
        if ((rc = alert_check(e, o, p, before, m))) return rc;
    }
    if (!o->has_credit) return 0;
    mins[n] = minimum_of(&o->terms, m);
    int64_t d = min64(max64(0, mins[n] - acct_get(o->acct, o->nacct, m)), o->value);
    if (d == 0) return 0;
    int64_t before = o->value;
    o->value -= d;
    o->dirty |= ENG_DIRTY_CREDIT;
    draws[n] = d;
    if ((rc = ledger_simple(e, o, "minimal_draw", NULL, -d, m, 0))) return rc;
    return alert_check(e, o, NULL, before, m);
}

/* Step 3: expiry at the start of month `next`; projects first.  A credit
 * that reaches its own end date now gets an `expired` alert whatever its
 * balance (§12); projects zeroed only by the org's expiry get none. */
static int close_expiry(struct engine *e, struct eng_org *o, int32_t m, int32_t next) {
    int rc, org_expires = o->has_credit && expired_by(&o->terms, next);
    for (size_t i = 0; i < o->nproj; i++) {
        struct eng_project *p = &o->proj[i];
        if (!p->has_credit || !(org_expires || expired_by(&p->terms, next))) continue;
        if (p->terms.expected || p->value) p->dirty |= ENG_DIRTY_CREDIT;
        p->terms.expected = 0;
        int64_t d = p->value;
        if (d && (rc = project_value(e, o, p, 0))) return rc;
        if (d && (rc = ledger_simple(e, o, "expiry", p, -d, m, 0))) return rc;
        if (p->terms.end_month == next && (rc = alert_expired(e, o, p, m))) return rc;
    }
    if (!org_expires) return 0;
    if (o->terms.expected || o->value) o->dirty |= ENG_DIRTY_CREDIT;
    o->terms.expected = 0;
    int64_t d = o->value;
    o->value = 0;
    if (d && (rc = ledger_simple(e, o, "expiry", NULL, -d, m, 0))) return rc;
    return o->terms.end_month == next ? alert_expired(e, o, NULL, m) : 0;
}

/* Step 4: linear expected for month `next` (expired credits were zeroed). */
static void close_linear(struct eng_terms *t, int64_t balance, int32_t next, unsigned *dirty) {
    if (t->logic != ENG_LINEAR || expired_by(t, next)) return;
    int rc = linear_expected(balance, 0, next, t->end_month, &t->expected);
    assert(rc == 0);
    (void)rc;
    *dirty |= ENG_DIRTY_CREDIT;
}

static int month_closed(struct engine *e, struct eng_org *o, struct eng_project *p, int32_t m,
                        int64_t minimum, int64_t draw) {
    struct ledger l = ledger_on(o, p, "month_closed", m, 0);
    l.has_close = 1;
    l.consumed = p ? acct_get(p->acct, p->nacct, m) : acct_get(o->acct, o->nacct, m);
    l.minimum = minimum;
    l.draw = draw;
    l.expected_next = p ? p->terms.expected : o->terms.expected;
    return out_ledger(e, o, &l);
}

/* projected_exhaustion at the close of m (§12): projects, then the org. */
static int close_projections(struct engine *e, struct eng_org *o, int32_t m, const int64_t *mins) {
    int rc;
    for (size_t i = 0; i < o->nproj; i++) {
        struct eng_project *p = &o->proj[i];
        if (p->has_credit &&
            (rc = alert_projection(e, o, p, m, acct_get(p->acct, p->nacct, m), mins[i])))
            return rc;
    }
    if (!o->has_credit) return 0;
    return alert_projection(e, o, NULL, m, acct_get(o->acct, o->nacct, m), mins[o->nproj]);
}

/* Close the open month of o (§6 steps 1-5), then open the next one. */
static int close_month(struct engine *e, struct eng_org *o) {
    int32_t m = o->open_month, next = m + 1;
    int rc;
    if ((rc = load_all_projects(e, o))) return rc;
    size_t n = o->nproj;
    if ((rc = grow_draws(e, 2 * (n + 1)))) return rc;
    int64_t *mins = e->draws, *draws = e->draws + n + 1;
    if ((rc = close_minimums(e, o, m, mins, draws))) return rc;
    if ((rc = close_expiry(e, o, m, next))) return rc;
    for (size_t i = 0; i < n; i++)
        if (o->proj[i].has_credit)
            close_linear(&o->proj[i].terms, o->proj[i].value, next, &o->proj[i].dirty);
    if (o->has_credit) close_linear(&o->terms, o->value, next, &o->dirty);
    for (size_t i = 0; i < n; i++) {
        struct eng_project *p = &o->proj[i];
        if (p->has_credit && (rc = month_closed(e, o, p, m, mins[i], draws[i]))) return rc;
    }
    if (o->has_credit && (rc = month_closed(e, o, NULL, m, mins[n], draws[n]))) return rc;
    if ((rc = close_projections(e, o, m, mins))) return rc;
    for (size_t i = 0; i < n; i++)
        if (acct_drop(o->proj[i].acct, &o->proj[i].nacct, m)) o->proj[i].dirty |= ENG_DIRTY_ACCT;
    if (acct_drop(o->acct, &o->nacct, m)) o->dirty |= ENG_DIRTY_ACCT;
    o->open_month = next;
    o->dirty |= ENG_DIRTY_META;
    /* Alerts wait for the end of the event, unless a long run of closes
     * has queued many: then they go out after this close (bounded queue). */
    return e->naq >= ALERT_QUEUE_FLUSH ? alert_flush(e, o) : 0;
}

/* Close every month the watermark has passed (plus close_after). */
int credit_closes(struct engine *e, struct eng_org *o) {
    while (o->open_month != ENG_NO_MONTH && o->watermark != ENG_NO_TIME) {
        int64_t due;
        if (__builtin_add_overflow(time_month_start(o->open_month + 1), e->close_after_ns, &due))
            return 0;
        if (o->watermark < due) return 0;
        int rc = close_month(e, o);
        if (rc) return rc;
    }
    return 0;
}

int credit_advance(struct engine *e, struct eng_org *o, int64_t t) {
    if (t > o->watermark) {
        o->watermark = t;
        o->dirty |= ENG_DIRTY_META;
    }
    return credit_closes(e, o);
}

/* ---- events -------------------------------------------------------------- */

/* Month an event acts in: its own, or the open month when its own is
 * already closed (then it is late). */
static int32_t event_month(const struct engine *e, const struct eng_org *o, int *late) {
    int32_t m = time_month_of(e->ev.time);
    *late = o->open_month != ENG_NO_MONTH && m < o->open_month;
    return *late ? o->open_month : m;
}

static int reject(struct engine *e, int reason, const char *fmt, const char *arg) {
    snprintf(e->msg, sizeof(e->msg), fmt, arg);
    return reason;
}

/* end_date must lie after the org's open month too (§3). */
static int check_end_after_open(struct engine *e, const struct eng_org *o) {
    int32_t end = e->ev.terms.end_month;
    if (end == ENG_NO_MONTH || o->open_month == ENG_NO_MONTH || end > o->open_month) return 0;
    char b[16];
    time_format_month(o->open_month, b);
    return reject(e, ENG_R_INVALID_EVENT,
                  "data.end_date: not after the organisation's open month %s", b);
}

/* §13: the serial of a new credit of o (org or project), from o's counter,
 * which survives deletes: a credit deleted and set again is another one. */
static int new_serial(struct engine *e, struct eng_org *o, uint64_t *serial) {
    if (o->credit_seq >= (uint64_t)INT64_MAX) {
        snprintf(e->err, e->errlen, "org %s: the credit serial is exhausted", o->id);
        return ENG_ESTORE;
    }
    *serial = ++o->credit_seq;
    o->dirty |= ENG_DIRTY_SEQ;
    return 0;
}

static int terms_entry(struct engine *e, struct eng_org *o, struct eng_project *p,
                       int32_t month, int late) {
    struct ledger l = ledger_on(o, p, "terms", month, late);
    l.terms = p ? &p->terms : &o->terms;
    return out_ledger(e, o, &l);
}

static int org_set(struct engine *e, struct eng_org *o) {
    const struct eng_event *ev = &e->ev;
    int rc, late;
    if ((rc = check_end_after_open(e, o))) return rc;
    if (ev->has_if_value && (!o->has_credit || o->value != ev->if_value))
        return reject(e, ENG_R_VALUE_CHANGED, "data.if_value: %s",
                      o->has_credit ? "the balance has changed" : "the organisation has no credit");
    struct eng_terms t = ev->terms;
    int32_t om = o->open_month == ENG_NO_MONTH ? time_month_of(ev->time) : o->open_month;
    if (t.logic == ENG_LINEAR &&
        linear_expected(ev->value, acct_get(o->acct, o->nacct, om), om, t.end_month, &t.expected))
        return reject(e, ENG_R_OVERFLOW, "data.value: %s", "expected consumption overflows");
    if (o->open_month == ENG_NO_MONTH) {
        o->open_month = om;
        o->dirty |= ENG_DIRTY_META;
    }
    int32_t month = event_month(e, o, &late);
    int64_t delta = ev->value - (o->has_credit ? o->value : 0);
    if (!o->has_credit) { /* a new credit: its own alert state and serial (§13) */
        memset(&o->al, 0, sizeof(o->al));
        if ((rc = new_serial(e, o, &o->serial))) return rc;
    }
    o->has_credit = 1;
    o->value = ev->value;
    o->terms = t;
    o->noff = ev->noff;
    for (int i = 0; i < ev->noff; i++) strcpy(o->off[i], ev->off[i]);
    o->dirty |= ENG_DIRTY_CREDIT;
    if (delta && (rc = ledger_simple(e, o, "staff_grant", NULL, delta, month, late))) return rc;
    if ((rc = terms_entry(e, o, NULL, month, late))) return rc;
    if ((rc = alert_rearm(e, o, NULL, ev->thr, month))) return rc;
    return credit_closes(e, o); /* a first set dated behind the watermark */
}

static int org_adjust(struct engine *e, struct eng_org *o) {
    int64_t v;
    int late;
    if (!o->has_credit) return reject(e, ENG_R_NO_ORG_CREDIT, "data.org: %s has no credit", o->id);
    if (money_add(o->value, e->ev.delta, &v))
        return reject(e, ENG_R_OVERFLOW, "data.delta: %s", "the balance would overflow");
    if (v < 0)
        return reject(e, ENG_R_INSUFFICIENT_CREDIT, "data.delta: %s",
                      "the balance would go below 0");
    int32_t month = event_month(e, o, &late);
    o->value = v;
    o->dirty |= ENG_DIRTY_CREDIT;
    int rc = ledger_simple(e, o, "staff_grant", NULL, e->ev.delta, month, late);
    /* The adjust keeps the thresholds and moves the reference (§12). */
    return rc ? rc : alert_rearm(e, o, NULL, o->al.thr, month);
}

/* End project p's credit: revoked, or spent_on_termination (§3). */
static int project_end(struct engine *e, struct eng_org *o, struct eng_project *p, int spend,
                       int32_t month, int late) {
    int64_t d = p->value, before = o->value;
    int rc = project_value(e, o, p, 0);
    if (rc) return rc;
    p->has_credit = 0;
    p->serial = 0;
    memset(&p->al, 0, sizeof(p->al)); /* the credit ends, its alert state with it */
    if (d == 0) return 0;
    if (spend) {
        o->value -= min64(d, o->value);
        o->dirty |= ENG_DIRTY_CREDIT;
    }
    rc = ledger_simple(e, o, spend ? "spent_on_termination" : "revoked", p, -d, month, late);
    /* §12: the terminated project is not checked, the organisation is. */
    return rc || !spend ? rc : alert_check(e, o, NULL, before, month);
}

static int org_delete(struct engine *e, struct eng_org *o) {
    int rc, late;
    if (!o->has_credit) return reject(e, ENG_R_NO_ORG_CREDIT, "data.org: %s has no credit", o->id);
    if ((rc = load_all_projects(e, o))) return rc;
    int32_t month = event_month(e, o, &late);
    for (size_t i = 0; i < o->nproj; i++)
        if (o->proj[i].has_credit && (rc = project_end(e, o, &o->proj[i], 0, month, late)))
            return rc;
    assert(o->alloc_sum == 0); /* load_all_projects checked it is the sum of P */
    int64_t d = o->value;
    o->value = 0;
    o->has_credit = 0;
    o->serial = 0;
    memset(&o->al, 0, sizeof(o->al));
    memset(&o->terms, 0, sizeof(o->terms));
    o->terms.end_month = ENG_NO_MONTH;
    o->noff = 0;
    o->dirty |= ENG_DIRTY_CREDIT;
    return d ? ledger_simple(e, o, "revoked", NULL, -d, month, late) : 0;
}

static int project_set(struct engine *e, struct eng_org *o) {
    const struct eng_event *ev = &e->ev;
    int rc, late;
    if (!o->has_credit) return reject(e, ENG_R_NO_ORG_CREDIT, "data.org: %s has no credit", o->id);
    if ((rc = check_end_after_open(e, o))) return rc;
    struct eng_project *p;
    if ((rc = find_project(e, o, ev->project, &p))) return rc;
    int64_t old = p && p->has_credit ? p->value : 0, sum;
    if (ev->value > old) {
        /* alloc_sum >= old: the new sum is alloc_sum - old + value. */
        if (money_add(o->alloc_sum - old, ev->value, &sum)) sum = INT64_MAX;
        if (sum > o->value)
            return reject(e, ENG_R_ALLOCATION_EXCEEDS, "data.value: %s",
                          "the project allocations would exceed the organisation's credit");
    }
    struct eng_terms t = ev->terms;
    int32_t om = o->open_month;
    if (t.logic == ENG_LINEAR &&
        linear_expected(ev->value, p ? acct_get(p->acct, p->nacct, om) : 0, om, t.end_month,
                        &t.expected))
        return reject(e, ENG_R_OVERFLOW, "data.value: %s", "expected consumption overflows");
    if (!p && !(p = eng_org_add_project(o, ev->project))) {
        snprintf(e->err, e->errlen, "out of memory");
        return ENG_ESTORE;
    }
    int32_t month = event_month(e, o, &late);
    if (!p->has_credit) {
        p->value = 0;
        memset(&p->al, 0, sizeof(p->al)); /* a new credit */
        if ((rc = new_serial(e, o, &p->serial))) return rc;
    }
    p->has_credit = 1;
    if ((rc = project_value(e, o, p, ev->value))) return rc;
    p->terms = t;
    if (ev->value != old &&
        (rc = ledger_simple(e, o, "allocation", p, ev->value - old, month, late))) return rc;
    if ((rc = terms_entry(e, o, p, month, late))) return rc;
    return alert_rearm(e, o, p, ev->thr, month);
}

static int project_delete(struct engine *e, struct eng_org *o, int terminate) {
    int late, rc;
    struct eng_project *p;
    if ((rc = find_project(e, o, e->ev.project, &p))) return rc;
    if (!p || !p->has_credit)
        return terminate ? 0 : reject(e, ENG_R_NO_PROJECT_CREDIT,
                                      "data.project: %s has no credit", e->ev.project);
    int32_t month = event_month(e, o, &late);
    return project_end(e, o, p, terminate && p->terms.mark_unused, month, late);
}

static int eligible(const struct eng_org *o, const char *offering) {
    if (o->noff == 0) return 1;
    for (int i = 0; i < o->noff; i++)
        if (strcmp(o->off[i], offering) == 0) return 1;
    return 0;
}

static int ended_at(const struct eng_terms *t, int64_t time) {
    return t->end_month != ENG_NO_MONTH && time >= time_month_start(t->end_month);
}

/* Free credit (§4): V - sum(P) when allocations are reserved, else V. */
int64_t engine_free_credit(const struct eng_org *o) {
    if (!o->terms.reserve) return o->value;
    return max64(0, o->value - o->alloc_sum);
}

static int compensation(struct engine *e, struct eng_org *o, const char *project,
                        int account_project, int64_t d, int32_t month, int late) {
    struct ledger l = {0};
    l.entry = "compensation";
    l.project = project;
    l.account_project = account_project;
    l.delta = -d;
    l.balance = account_project ? eng_org_find_project(o, project)->value : o->value;
    l.month = month;
    l.late = late;
    return out_ledger(e, o, &l);
}

/* The overage of a usage (p: its project, when found says usage() has
 * looked it up already), then overage_started when it is the first of
 * (org, project, billing month) (§12).  The flag is kept on the project's
 * month entry (a flag-only entry when the project has no credit or no
 * consumption that month), so it is dropped when the month closes. */
static int overage(struct engine *e, struct eng_org *o, int64_t covered, int64_t amount,
                   const char *reason, int32_t bm, int late, int found, struct eng_project *p) {
    int rc = out_overage(e, o, covered, amount, reason, bm, late);
    if (!rc) { /* §13: what the overage void repeats */
        struct eng_usage_rec *u = &e->urec;
        u->ov_seq = o->seq[ENG_OUT_OVERAGE];
        u->ov_amount = amount;
        strcpy(u->resource, e->ev.resource);
        strcpy(u->offering, e->ev.offering);
        strcpy(u->component, e->ev.component);
    }
    if (rc || (!found && (rc = find_project(e, o, e->ev.project, &p)))) return rc;
    for (int i = 0; p && i < p->nacct; i++)
        if (p->acct[i].month == bm && p->acct[i].overage) return 0;
    int32_t floor = flag_floor(o);
    if (bm >= floor) { /* else too old to remember: it fires (README, choices) */
        if (!p && !(p = eng_org_add_project(o, e->ev.project))) {
            snprintf(e->err, e->errlen, "out of memory");
            return ENG_ESTORE;
        }
        flag_prune(p, floor);
        int i;
        for (i = 0; i < p->nacct && p->acct[i].month != bm; i++) {}
        if (i == p->nacct) {
            if (p->nacct == ENG_MAX_MONTHS)
                return corrupt(e, o, p, "months: no room for an overage flag");
            acct_add(p->acct, &p->nacct, bm, 0);
            for (i = 0; p->acct[i].month != bm; i++) {}
        }
        p->acct[i].overage = 1;
        p->dirty |= ENG_DIRTY_ACCT; /* o is dirty: the overage took a sequence number */
    }
    return alert_overage_started(e, o, e->ev.project, bm);
}

/* §13: an applied usage is remembered with what a void needs (usage()
 * fills in draws and the overage as it makes them). */
static void usage_rec_start(struct engine *e, int32_t bm) {
    struct eng_usage_rec *u = &e->urec;
    u->has = 1;
    u->voided = 0;
    u->billing_month = bm;
    u->org_serial = u->proj_serial = u->ov_seq = 0;
    u->d1 = u->d2 = u->ov_amount = 0;
    strcpy(u->project, e->ev.project);
    u->resource[0] = u->offering[0] = u->component[0] = 0;
}

/* §5: draw the usage's cost from project credit, fallback or free credit;
 * the rest is overage. */
static int usage(struct engine *e, struct eng_org *o) {
    const struct eng_event *ev = &e->ev;
    int late, rc;
    if (ev->amount_overflow)
        return reject(e, ENG_R_OVERFLOW, "data.quantity: %s", "quantity x unit_price overflows");
    int64_t c = ev->amount, d1 = 0, d2 = 0;
    int32_t bm = event_month(e, o, &late);
    usage_rec_start(e, bm);
    if (c == 0) return 0;
    if (!o->has_credit) return overage(e, o, 0, c, "no_credit", bm, late, 0, NULL);
    if (ended_at(&o->terms, ev->time))
        return overage(e, o, 0, c, "credit_expired", bm, late, 0, NULL);
    if (!eligible(o, ev->offering))
        return overage(e, o, 0, c, "offering_not_eligible", bm, late, 0, NULL);
    struct eng_project *p;
    if ((rc = find_project(e, o, ev->project, &p))) return rc;
    const char *reason = "org_credit_exhausted";
    int64_t free = engine_free_credit(o);
    if (p && p->has_credit) {
        if (!ended_at(&p->terms, ev->time)) d1 = min64(c, min64(p->value, o->value));
        /* Reserved: free is unchanged by d1 (V and P_p fall together);
         * shared: free is V itself, which d1 lowered. */
        if (!o->terms.reserve) free -= d1;
        if (c - d1 > 0 && p->terms.use_org_credit) d2 = min64(c - d1, free);
        else reason = "project_credit_exhausted";
    } else {
        d2 = min64(c, free);
    }
    if (!acct_can_add(o->acct, o->nacct, bm, d1 + d2) ||
        (d1 && !acct_can_add(p->acct, p->nacct, bm, d1)))
        return reject(e, ENG_R_OVERFLOW, "data.amount: %s", "monthly consumption overflows");
    /* Room for this month's entry: flags of months before the open one
     * (kept from before the first set) can never be read again. */
    if (d1) flag_prune(p, o->open_month);
    if (d1) {
        int64_t before_p = p->value, before_v = o->value;
        if ((rc = project_value(e, o, p, p->value - d1))) return rc;
        o->value -= d1;
        acct_add(p->acct, &p->nacct, bm, d1);
        p->dirty |= ENG_DIRTY_ACCT;
        if ((rc = compensation(e, o, p->id, 1, d1, bm, late))) return rc;
        /* A project draw lowers P and V: the project, then the org (§12). */
        if ((rc = alert_check(e, o, p, before_p, bm)) ||
            (rc = alert_check(e, o, NULL, before_v, bm)))
            return rc;
    }
    if (d2) {
        int64_t before_v = o->value;
        o->value -= d2;
        if ((rc = compensation(e, o, ev->project, 0, d2, bm, late))) return rc;
        if ((rc = alert_check(e, o, NULL, before_v, bm))) return rc;
    }
    if (d1) e->urec.proj_serial = p->serial;
    e->urec.d1 = d1;
    e->urec.d2 = d2;
    if (d1 + d2) {
        e->urec.org_serial = o->serial;
        acct_add(o->acct, &o->nacct, bm, d1 + d2);
        o->dirty |= ENG_DIRTY_CREDIT | ENG_DIRTY_ACCT;
    }
    /* d1 <= min(P, V), d2 <= the free credit left (P <= sum of P, all >= 0:
     * stored values are checked), so V stays >= 0. */
    assert(o->value >= 0 && d1 + d2 <= c);
    return c - d1 - d2 ? overage(e, o, d1 + d2, c - d1 - d2, reason, bm, late, 1, p) : 0;
}

/* ---- usage.void (§13) ------------------------------------------------------ */

/* The idempotency key of usage (source, id) of org (engine.c make_key). */
static size_t usage_key(uint8_t *k, const char *source, const char *id, const char *org) {
    size_t n = 0, l;
    k[n++] = 'o';
    l = strlen(source); memcpy(k + n, source, l); n += l; k[n++] = 0;
    l = strlen(id); memcpy(k + n, id, l); n += l; k[n++] = 0;
    l = strlen(org); memcpy(k + n, org, l); n += l;
    assert(n <= ENG_DKEY_MAX);
    return n;
}

/* The voided usage's record into e->vrec: ENG_OK, a reason, or an error. */
static int void_find(struct engine *e, struct eng_org *o, uint8_t *k, size_t *kn) {
    const struct eng_event *ev = &e->ev;
    const struct engine_store *st = e->st;
    struct eng_dedupe *r = &e->vrec;
    *kn = usage_key(k, ev->usage_source, ev->usage_id, o->id);
    int rc = st->dedupe_get(st->ctx, k, *kn, r, e->err, e->errlen);
    if (rc < 0) return rc;
    /* A matching time is at or after the retention horizon (engine.c
     * guard_late rejected an earlier usage_time), so the key still counts. */
    if (rc == ENG_NOTFOUND || r->rejected || !r->u.has || r->time != ev->usage_time)
        return reject(e, ENG_R_UNKNOWN_USAGE,
                      "data.usage_id: \"%s\" with data.usage_source and data.usage_time names no "
                      "applied usage of this organisation", ev->usage_id);
    if (r->u.voided)
        return reject(e, ENG_R_ALREADY_VOIDED, "data.usage_id: usage \"%s\" was voided already",
                      ev->usage_id);
    return 0;
}

/* A refund entry of d on p's account (NULL: the org's, naming project). */
static int refund_entry(struct engine *e, struct eng_org *o, struct eng_project *p,
                        const char *project, int64_t d, int32_t month, int late) {
    struct ledger l = ledger_on(o, p, "refund", month, late);
    l.project = project;
    l.delta = d;
    int rc = out_ledger(e, o, &l);
    /* §12: recovered when an exhausted credit is above 0 again; project first. */
    if (!rc && p) rc = alert_recover(e, o, p, month);
    return rc ? rc : alert_recover(e, o, NULL, month);
}

static void acct_sub(struct eng_acct *a, int n, int32_t month, int64_t d) {
    for (int i = 0; i < n; i++)
        if (a[i].month == month) a[i].consumed -= min64(d, a[i].consumed);
}

/* Take back an applied usage: refunds to the credits it drew from when they
 * still exist, its open month's consumption, and its overage (§13). */
static int usage_void(struct engine *e, struct eng_org *o) {
    const struct eng_event *ev = &e->ev;
    uint8_t k[ENG_DKEY_MAX];
    size_t kn;
    int rc = void_find(e, o, k, &kn);
    if (rc) return rc;
    struct eng_usage_rec *u = &e->vrec.u;
    struct eng_project *p = NULL;
    int closed = o->open_month != ENG_NO_MONTH && u->billing_month < o->open_month;
    int32_t month = closed ? o->open_month : u->billing_month;
    /* Nothing goes back to an org credit deleted since (another serial) or ended. */
    int org_ok = o->has_credit && u->org_serial == o->serial && !ended_at(&o->terms, ev->time);
    int64_t r1 = org_ok ? u->d1 : 0, r2 = org_ok ? u->d2 : 0, v, x;
    if (r1 && (rc = find_project(e, o, u->project, &p))) return rc;
    /* §13: the project draw goes back to P_p and V, or to V alone "when that
     * project credit no longer exists" (deleted, terminated, or another
     * credit since).  A project credit past its own end_date still exists
     * (choice 7): it gets its draw back. */
    int proj_ok = r1 && p && p->has_credit && p->serial == u->proj_serial;
    if (money_add(o->value, r1, &v) || money_add(v, r2, &v) ||
        (proj_ok && (money_add(p->value, r1, &x) || money_add(o->alloc_sum, r1, &x))))
        return reject(e, ENG_R_OVERFLOW, "data.usage_id: %s", "the refund would overflow a balance");
    if (r1) {
        if (proj_ok && (rc = project_value(e, o, p, p->value + r1))) return rc;
        o->value += r1;
        o->dirty |= ENG_DIRTY_CREDIT;
        if ((rc = refund_entry(e, o, proj_ok ? p : NULL, u->project, r1, month, closed))) return rc;
    }
    if (r2) {
        o->value += r2;
        o->dirty |= ENG_DIRTY_CREDIT;
        if ((rc = refund_entry(e, o, NULL, u->project, r2, month, closed))) return rc;
    }
    if (!closed && r1 + r2) { /* the open month's consumption falls by the refunds */
        acct_sub(o->acct, o->nacct, u->billing_month, r1 + r2);
        o->dirty |= ENG_DIRTY_ACCT;
        if (r1 && p) {
            acct_sub(p->acct, p->nacct, u->billing_month, r1);
            p->dirty |= ENG_DIRTY_ACCT;
        }
    }
    if (u->ov_seq && (rc = out_overage_void(e, o, u, e->vrec.time))) return rc;
    u->voided = 1; /* stays remembered: a re-send of the usage is a duplicate */
    const struct engine_store *st = e->st;
    return st->dedupe_put(st->ctx, k, kn, &e->vrec, e->err, e->errlen);
}

int credit_apply(struct engine *e, struct eng_org *o) {
    switch (e->ev.type) {
    case ENG_T_ORG_SET: return org_set(e, o);
    case ENG_T_ORG_ADJUST: return org_adjust(e, o);
    case ENG_T_ORG_DELETE: return org_delete(e, o);
    case ENG_T_PROJECT_SET: return project_set(e, o);
    case ENG_T_PROJECT_DELETE: return project_delete(e, o, 0);
    case ENG_T_PROJECT_TERMINATE: return project_delete(e, o, 1);
    case ENG_T_USAGE: return usage(e, o);
    case ENG_T_USAGE_VOID: return usage_void(e, o);
    default: assert(!"credit_apply: not an org event"); return 0;
    }
}
