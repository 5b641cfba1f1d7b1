/* alert.c -- alerts for cost policies (semantics §12).
 *
 * The rules decide when a credit's balance changes; this module keeps each
 * credit's alert state (struct eng_alerts: thresholds, reference, armed
 * thresholds, exhausted flag) and queues credit.alert outputs in the order
 * of their causes.  engine.c empties the queue at the end of each event
 * (after all its ledger and overage outputs); credit.c may empty it after a
 * close when it has grown to ALERT_QUEUE_FLUSH.
 *
 * Levels are exact: reference x pct / 100 rounded half-to-even in micro-units
 * (money_muldiv), never a double.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_int.h"
#include "engine/money.h"

static int has_bit(const uint64_t m[2], unsigned k) { return (m[k / 64] >> (k % 64)) & 1; }
static void clear_bit(uint64_t m[2], unsigned k) { m[k / 64] &= ~(UINT64_C(1) << (k % 64)); }
static void set_bit(uint64_t m[2], unsigned k) { m[k / 64] |= UINT64_C(1) << (k % 64); }

/* Level of threshold pct (1..99) of a reference >= 0: at most the
 * reference, so it cannot overflow. */
static int64_t level(int64_t reference, unsigned pct) {
    int64_t r;
    int rc = money_muldiv(reference, pct, 100, &r);
    assert(rc == 0);
    (void)rc;
    return r;
}

static struct eng_alerts *state_of(struct eng_org *o, struct eng_project *p) {
    return p ? &p->al : &o->al;
}

static int64_t balance_of(const struct eng_org *o, const struct eng_project *p) {
    return p ? p->value : o->value;
}

/* The alert state is part of the credit record. */
static void mark(struct eng_org *o, struct eng_project *p) {
    if (p) p->dirty |= ENG_DIRTY_CREDIT;
    o->dirty |= ENG_DIRTY_CREDIT;
}

/* A new queue slot for credit p (NULL = the org), filled with its account
 * and balance; NULL when out of memory (err set). */
static struct alert_q *push(struct engine *e, struct eng_org *o, struct eng_project *p,
                            enum alert_kind kind, int32_t month) {
    if (e->naq == e->cap_aq) {
        size_t cap = e->cap_aq ? 2 * e->cap_aq : 16;
        struct alert_q *q = realloc(e->aq, cap * sizeof(*q));
        if (!q) {
            snprintf(e->err, e->errlen, "out of memory queueing an alert of org %s", o->id);
            return NULL;
        }
        e->aq = q;
        e->cap_aq = cap;
    }
    struct alert_q *a = &e->aq[e->naq++];
    memset(a, 0, sizeof(*a));
    a->kind = (uint8_t)kind;
    a->month = month;
    a->account_project = p != NULL;
    a->has_project = p != NULL;
    if (p) strcpy(a->project, p->id);
    a->has_balance = 1;
    a->balance = balance_of(o, p);
    return a;
}

static int queue(struct engine *e, struct eng_org *o, struct eng_project *p, enum alert_kind kind,
                 int32_t month) {
    return push(e, o, p, kind, month) ? ENG_OK : ENG_ESTORE;
}

int alert_rearm(struct engine *e, struct eng_org *o, struct eng_project *p, const uint64_t thr[2],
                int32_t month) {
    struct eng_alerts *a = state_of(o, p);
    int64_t bal = balance_of(o, p);
    a->thr[0] = thr[0];
    a->thr[1] = thr[1];
    a->armed[0] = a->armed[1] = 0;
    a->reference = bal;
    for (unsigned k = 1; k <= ENG_ALERT_PCT_MAX; k++)
        if (has_bit(thr, k) && level(bal, k) < bal) set_bit(a->armed, k);
    mark(o, p);
    return alert_recover(e, o, p, month);
}

int alert_recover(struct engine *e, struct eng_org *o, struct eng_project *p, int32_t month) {
    struct eng_alerts *a = state_of(o, p);
    if (!a->exhausted || balance_of(o, p) <= 0) return ENG_OK;
    a->exhausted = 0;
    mark(o, p);
    return queue(e, o, p, AL_RECOVERED, month);
}

int alert_check(struct engine *e, struct eng_org *o, struct eng_project *p, int64_t before,
                int32_t month) {
    struct eng_alerts *a = state_of(o, p);
    int64_t bal = balance_of(o, p);
    for (unsigned k = ENG_ALERT_PCT_MAX; k >= 1; k--) {  /* higher percent first */
        if (!has_bit(a->armed, k) || bal > level(a->reference, k)) continue;
        clear_bit(a->armed, k);
        mark(o, p);
        struct alert_q *q = push(e, o, p, AL_LOW_BALANCE, month);
        if (!q) return ENG_ESTORE;
        q->pct = (uint8_t)k;
        q->reference = a->reference;
    }
    if (bal != 0 || before <= 0 || a->exhausted) return ENG_OK;
    a->exhausted = 1;
    mark(o, p);
    return queue(e, o, p, AL_EXHAUSTED, month);
}

int alert_expired(struct engine *e, struct eng_org *o, struct eng_project *p, int32_t month) {
    return queue(e, o, p, AL_EXPIRED, month);
}

int alert_projection(struct engine *e, struct eng_org *o, struct eng_project *p, int32_t m,
                     int64_t consumed, int64_t minimum) {
    int64_t bal = balance_of(o, p), rate = consumed > minimum ? consumed : minimum;
    const struct eng_terms *t = p ? &p->terms : &o->terms;
    if (bal <= 0 || rate <= 0) return ENG_OK;
    int64_t n = bal / rate + (bal % rate != 0);  /* ceil, no overflow */
    if (n > INT64_MAX - m) return ENG_OK;        /* beyond any end date, and n > 3 */
    int64_t at = (int64_t)m + n;
    int fires = t->end_month != ENG_NO_MONTH ? at < (int64_t)t->end_month - 1 : n <= 3;
    if (!fires) return ENG_OK;
    struct alert_q *q = push(e, o, p, AL_PROJECTED, m);
    if (!q) return ENG_ESTORE;
    q->projected = at;
    return ENG_OK;
}

int alert_overage_started(struct engine *e, struct eng_org *o, const char *project,
                          int32_t billing_month) {
    struct alert_q *q = push(e, o, NULL, AL_OVERAGE_STARTED, billing_month);
    if (!q) return ENG_ESTORE;
    q->account_project = 1;
    q->has_project = 1;
    strcpy(q->project, project);
    q->has_balance = o->has_credit;   /* V after the usage; null without a credit */
    q->balance = o->value;
    return ENG_OK;
}

int alert_flush(struct engine *e, struct eng_org *o) {
    int rc = ENG_OK;
    for (size_t i = 0; i < e->naq && rc == ENG_OK; i++) rc = out_alert(e, o, &e->aq[i]);
    e->naq = 0;
    return rc;
}
