/* output.c -- output CloudEvents (semantics §8): credit.ledger,
 * credit.overage and credit.rejected, built with jsonw in a fixed key order
 * and appended to the store's outbox. */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "engine/engine_int.h"
#include "engine/money.h"
#include "engine/timeutil.h"

#define RAW_MAX (64 * 1024)

static void envelope(struct engine *e, const char *type, const char *id, const char *subject,
                     const char *time_str) {
    struct jsonw *w = &e->w;
    jsonw_reset(w);
    jsonw_obj_open(w);
    jsonw_kstr(w, "specversion", "1.0");
    jsonw_kstr(w, "id", id);
    jsonw_kstr(w, "source", "creditd");
    jsonw_kstr(w, "type", type);
    if (time_str) jsonw_kstr(w, "time", time_str);
    if (subject) jsonw_kstr(w, "subject", subject);
    jsonw_kstr(w, "datacontenttype", "application/json");
    jsonw_key(w, "data");
    jsonw_obj_open(w);
}

static int finish(struct engine *e, enum eng_out_kind kind, const char *key) {
    struct jsonw *w = &e->w;
    jsonw_obj_close(w);
    jsonw_obj_close(w);
    if (!jsonw_ok(w)) {
        snprintf(e->err, e->errlen, "out of memory building an output event");
        return ENG_ESTORE;
    }
    int rc = e->st->emit(e->st->ctx, kind, key, w->buf, w->len, e->err, e->errlen);
    if (rc == 0) e->res->outputs[kind]++;
    return rc;
}

/* The next sequence number of o's outputs of `kind`.  Stored sequences are
 * checked <= INT64_MAX (eng_org_check); one that reached it cannot grow
 * (ids and "seq" are int64 in the outputs). */
static int next_seq(struct engine *e, struct eng_org *o, enum eng_out_kind kind, uint64_t *seq) {
    assert(kind == ENG_OUT_OVERAGE || kind == ENG_OUT_LEDGER || kind == ENG_OUT_ALERT);
    uint64_t *last = kind == ENG_OUT_ALERT ? &o->alert_seq : &o->seq[kind];
    if (*last >= (uint64_t)INT64_MAX) {
        snprintf(e->err, e->errlen, "org %s: the %s sequence is exhausted", o->id,
                 kind == ENG_OUT_OVERAGE ? "overage" : kind == ENG_OUT_LEDGER ? "ledger" : "alert");
        return ENG_ESTORE;
    }
    *seq = ++*last;
    o->dirty |= ENG_DIRTY_SEQ;
    return 0;
}

/* "<kind>/<org>/<seq>" into id (>= ENG_ID_MAX + 48 bytes); no snprintf on
 * the per-output path.  org is a checked id, seq comes from next_seq. */
static void output_id(char *id, const char *kind, const char *org, uint64_t seq) {
    size_t k = strlen(kind), n = strlen(org);
    assert(n <= ENG_ID_MAX && seq <= INT64_MAX);
    memcpy(id, kind, k);
    memcpy(id + k, org, n);
    id[k + n] = '/';
    money_format((int64_t)seq, 0, id + k + n + 1);
}

static void kmonth(struct jsonw *w, const char *k, int32_t month) {
    char b[16];
    time_format_month(month, b);
    jsonw_kstr(w, k, b);
}

static void terms_obj(struct jsonw *w, const struct eng_org *o, const struct ledger *l) {
    const struct eng_terms *t = l->terms;
    char b[16];
    jsonw_key(w, "terms");
    jsonw_obj_open(w);
    jsonw_kstr(w, "consumption_logic", t->logic == ENG_LINEAR ? "linear" : "fixed");
    jsonw_kmoney(w, "expected_consumption", t->expected);
    jsonw_kint(w, "grace_coefficient", t->grace);
    jsonw_kbool(w, "apply_as_minimal_consumption", t->apply_min);
    jsonw_key(w, "end_date");
    if (t->end_month == ENG_NO_MONTH) {
        jsonw_null(w);
    } else {
        time_format_month_date(t->end_month, b);
        jsonw_str(w, b);
    }
    if (l->account_project) {
        jsonw_kbool(w, "use_org_credit", t->use_org_credit);
        jsonw_kbool(w, "mark_unused_as_spent_on_termination", t->mark_unused);
    } else {
        jsonw_kbool(w, "reserve_allocations", t->reserve);
        jsonw_key(w, "offerings");
        jsonw_arr_open(w);
        for (int i = 0; i < o->noff; i++) jsonw_str(w, o->off[i]);
        jsonw_arr_close(w);
    }
    jsonw_obj_close(w);
}

/* The start every output of an organisation shares: its next sequence of
 * `kind`, the id "<prefix><org>/<seq>" and the envelope of `type`, timed as
 * the causing event.  *seq receives the sequence. */
static int org_output(struct engine *e, struct eng_org *o, enum eng_out_kind kind,
                      const char *prefix, const char *type, uint64_t *seq) {
    char id[ENG_ID_MAX + 48];
    int rc = next_seq(e, o, kind, seq);
    if (rc) return rc;
    output_id(id, prefix, o->id, *seq);
    envelope(e, type, id, o->id, e->ev.time_str);
    return 0;
}

int out_ledger(struct engine *e, struct eng_org *o, const struct ledger *l) {
    /* Every caller skips a zero change (org_credit.adjust rejects delta 0). */
    assert(l->delta != 0 || strcmp(l->entry, "terms") == 0 || strcmp(l->entry, "month_closed") == 0);
    uint64_t seq;
    int rc = org_output(e, o, ENG_OUT_LEDGER, "ledger/", "credit.ledger", &seq);
    if (rc) return rc;
    struct jsonw *w = &e->w;
    jsonw_kstr(w, "org", o->id);
    jsonw_kstr(w, "project", l->project);
    jsonw_kstr(w, "account", l->account_project ? "project" : "org");
    jsonw_kstr(w, "entry", l->entry);
    jsonw_kmoney(w, "delta", l->delta);
    jsonw_kmoney(w, "balance", l->balance);
    jsonw_kmoney(w, "org_balance", o->value);
    kmonth(w, "month", l->month);
    jsonw_kbool(w, "late", l->late);
    jsonw_kint(w, "seq", (int64_t)seq);
    jsonw_kstr(w, "event_source", e->ev.source);
    jsonw_kstr(w, "event_id", e->ev.id);
    if (l->terms) terms_obj(w, o, l);
    if (l->has_close) {
        jsonw_kmoney(w, "consumed", l->consumed);
        jsonw_kmoney(w, "minimum", l->minimum);
        jsonw_kmoney(w, "draw", l->draw);
        jsonw_kmoney(w, "expected_next", l->expected_next);
    }
    return finish(e, ENG_OUT_LEDGER, o->id);
}

static const char *const alert_names[ENG_ALERT_NKIND] = {
    "low_balance", "exhausted", "recovered", "overage_started", "expired", "projected_exhaustion"};

const char *engine_alert_name(int kind) {
    return kind >= 0 && kind < ENG_ALERT_NKIND ? alert_names[kind] : "unknown";
}

/* credit.alert (§12): data in the order of the semantics. */
int out_alert(struct engine *e, struct eng_org *o, const struct alert_q *a) {
    assert(a->kind <= AL_PROJECTED);
    uint64_t seq;
    int rc = org_output(e, o, ENG_OUT_ALERT, "alert/", "credit.alert", &seq);
    if (rc) return rc;
    struct jsonw *w = &e->w;
    jsonw_kstr(w, "org", o->id);
    jsonw_kstr(w, "project", a->has_project ? a->project : NULL);
    jsonw_kstr(w, "account", a->account_project ? "project" : "org");
    jsonw_kstr(w, "alert", alert_names[a->kind]);
    jsonw_key(w, "balance");
    if (a->has_balance) jsonw_money(w, a->balance);
    else jsonw_null(w);
    int low = a->kind == AL_LOW_BALANCE;
    jsonw_key(w, "reference");
    if (low) jsonw_money(w, a->reference);
    else jsonw_null(w);
    jsonw_key(w, "threshold");
    if (low) jsonw_int(w, a->pct);
    else jsonw_null(w);
    kmonth(w, "month", a->month);
    jsonw_key(w, "projected_month");
    if (a->kind == AL_PROJECTED) {
        char b[16];
        time_format_month((int32_t)a->projected, b);
        jsonw_str(w, b);
    } else {
        jsonw_null(w);
    }
    jsonw_kint(w, "seq", (int64_t)seq);
    jsonw_kstr(w, "event_source", e->ev.source);
    jsonw_kstr(w, "event_id", e->ev.id);
    rc = finish(e, ENG_OUT_ALERT, o->id);
    if (rc == 0) e->res->alerts[a->kind]++;
    return rc;
}

static void kqty(struct jsonw *w, const char *k, int has, int64_t v) {
    char b[MONEY_FMT_MAX];
    jsonw_key(w, k);
    if (!has) { jsonw_null(w); return; }
    money_format(v, QTY_DIGITS, b);
    jsonw_str(w, b);
}

int out_overage(struct engine *e, struct eng_org *o, int64_t covered, int64_t amount,
                const char *reason, int32_t billing_month, int late) {
    /* usage() passes the cost (> 0: decoded >= 0, 0 returns early) or its
     * uncovered rest (draws are >= 0 and at most the cost). */
    assert(amount > 0);
    const struct eng_event *ev = &e->ev;
    uint64_t seq;
    int rc = org_output(e, o, ENG_OUT_OVERAGE, "overage/", "credit.overage", &seq);
    if (rc) return rc;
    struct jsonw *w = &e->w;
    jsonw_kstr(w, "org", o->id);
    jsonw_kstr(w, "project", ev->project);
    jsonw_kstr(w, "resource", ev->resource);
    jsonw_kstr(w, "offering", ev->offering);
    jsonw_kstr(w, "component", ev->component);
    jsonw_kstr(w, "plan", ev->plan);
    jsonw_kstr(w, "unit", ev->unit);
    kqty(w, "quantity", ev->has_qty, ev->quantity);
    kqty(w, "unit_price", ev->has_qty, ev->unit_price);
    jsonw_kmoney(w, "cost", ev->amount);
    jsonw_kmoney(w, "covered", covered);
    jsonw_kmoney(w, "amount", amount);
    jsonw_kstr(w, "currency", e->currency);
    jsonw_kstr(w, "reason", reason);
    kmonth(w, "period", time_month_of(ev->time));
    kmonth(w, "billing_month", billing_month);
    jsonw_kbool(w, "late", late);
    jsonw_kint(w, "seq", (int64_t)seq);
    jsonw_kstr(w, "usage_source", ev->source);
    jsonw_kstr(w, "usage_id", ev->id);
    return finish(e, ENG_OUT_OVERAGE, o->id);
}

/* credit.overage.void (§13): the next overage seq; data in the order of the
 * semantics.  The voided overage's fields come from the usage's record. */
int out_overage_void(struct engine *e, struct eng_org *o, const struct eng_usage_rec *u,
                     int64_t usage_time) {
    const struct eng_event *ev = &e->ev;
    char voids[ENG_ID_MAX + 48];
    uint64_t seq;
    assert(u->ov_seq > 0 && u->ov_seq <= (uint64_t)INT64_MAX && u->ov_amount > 0);
    int rc = org_output(e, o, ENG_OUT_OVERAGE, "overage/", "credit.overage.void", &seq);
    if (rc) return rc;
    output_id(voids, "overage/", o->id, u->ov_seq);
    struct jsonw *w = &e->w;
    jsonw_kstr(w, "voids", voids);
    jsonw_kmoney(w, "amount", u->ov_amount);
    jsonw_kstr(w, "org", o->id);
    jsonw_kstr(w, "project", u->project);
    jsonw_kstr(w, "resource", u->resource);
    jsonw_kstr(w, "offering", u->offering);
    jsonw_kstr(w, "component", u->component);
    jsonw_kstr(w, "currency", e->currency);
    kmonth(w, "period", time_month_of(usage_time));
    kmonth(w, "billing_month", u->billing_month);
    jsonw_kstr(w, "usage_source", ev->usage_source);
    jsonw_kstr(w, "usage_id", ev->usage_id);
    jsonw_kstr(w, "reason", ev->reason);
    jsonw_kint(w, "seq", (int64_t)seq);
    jsonw_kstr(w, "event_source", ev->source);
    jsonw_kstr(w, "event_id", ev->id);
    return finish(e, ENG_OUT_OVERAGE, o->id);
}

/* Length of the longest prefix of s[0..n) that is valid UTF-8 (RFC 3629:
 * no overlongs, no surrogates, <= U+10FFFF). */
static size_t utf8_valid_prefix(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i], need, min;
        uint32_t cp;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) { need = 1; cp = c & 0x1F; min = 0x80; }
        else if (c >= 0xE0 && c <= 0xEF) { need = 2; cp = c & 0x0F; min = 0x800; }
        else if (c >= 0xF0 && c <= 0xF4) { need = 3; cp = c & 0x07; min = 0x10000; }
        else return i;
        if (i + need >= n) return i;
        for (unsigned k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
        i += need + 1;
    }
    return i;
}

/* Replaces every byte that does not start a valid UTF-8 sequence with '?',
 * in place: reject messages quote input and jansson's error text, and a cut
 * (snprintf's bound) can fall inside a character.  Every output must be
 * valid UTF-8 JSON. */
static void utf8_sanitize(char *s) {
    size_t n = strlen(s), i = 0;
    while (i < n) {
        i += utf8_valid_prefix((const unsigned char *)s + i, n - i);
        if (i < n) s[i++] = '?';
    }
}

static void kbase64(struct jsonw *w, const char *k, const unsigned char *s, size_t n) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char out[4 * (RAW_MAX / 3 + 1) + 1];
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (i + 1 < n) v |= (uint32_t)s[i + 1] << 8;
        if (i + 2 < n) v |= s[i + 2];
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    jsonw_key(w, k);
    jsonw_strn(w, out, o);
}

int out_rejected(struct engine *e, int reason, const char *key, const char *source,
                 const char *id, const char *time_str) {
    const struct engine_msg *m = e->m;
    char oid[64];
    if (m->topic) snprintf(oid, sizeof(oid), "rejected/%" PRId32 "/%" PRId64, m->partition, m->offset);
    else snprintf(oid, sizeof(oid), "rejected/file/%" PRId64, m->offset);
    envelope(e, "credit.rejected", oid, key, time_str);
    struct jsonw *w = &e->w;
    jsonw_kstr(w, "reason", event_reason_name(reason));
    utf8_sanitize(e->msg);
    jsonw_kstr(w, "message", e->msg);
    size_t n = m->len < RAW_MAX ? m->len : RAW_MAX;
    size_t valid = utf8_valid_prefix((const unsigned char *)m->buf, n);
    /* A cut inside a multi-byte character at the 64 KiB bound is not "not UTF-8". */
    int utf8 = valid == n || (n < m->len && n - valid < 4 &&
                              utf8_valid_prefix((const unsigned char *)m->buf,
                                                m->len < n + 3 ? m->len : n + 3) > valid);
    if (utf8) {
        jsonw_key(w, "raw");
        jsonw_strn(w, m->buf, valid);
    } else {
        kbase64(w, "raw", (const unsigned char *)m->buf, n);
    }
    jsonw_kstr(w, "raw_encoding", utf8 ? "utf-8" : "base64");
    jsonw_kbool(w, "raw_truncated", n < m->len);
    jsonw_kstr(w, "event_source", source);
    jsonw_kstr(w, "event_id", id);
    jsonw_kstr(w, "topic", m->topic);
    jsonw_kint(w, "partition", m->partition);
    jsonw_kint(w, "offset", m->offset);
    return finish(e, ENG_OUT_REJECTED, key);
}
