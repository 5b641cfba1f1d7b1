/* view.c -- see view.h.  Moved from creditctl (show --json, balances
 * --json) so that creditd's HTTP API renders with the same code. */
#include "tools/view.h"

#include <stdio.h>

#include "engine/engine.h"
#include "engine/timeutil.h"

static const char *logic_name(uint8_t logic) { return logic == ENG_LINEAR ? "linear" : "fixed"; }

int view_org_check(const char *where, const struct eng_org *o, char *msg, size_t len) {
    char why[256];
    int bad = eng_org_check(o, why, sizeof(why));
    for (size_t i = 0; !bad && i < o->nproj; i++) bad = eng_project_check(o, &o->proj[i], why, sizeof(why));
    if (!bad) bad = eng_org_check_alloc_sum(o, why, sizeof(why));
    if (bad) snprintf(msg, len, "corrupt store %s: org %s: %s", where, o->id, why);
    return bad ? -1 : 0;
}

static void json_month(struct jsonw *w, const char *k, int32_t m) {
    char b[8];
    jsonw_key(w, k);
    if (m == ENG_NO_MONTH) jsonw_null(w);
    else { time_format_month(m, b); jsonw_str(w, b); }
}

static void json_date(struct jsonw *w, const char *k, int32_t m) {
    char b[11];
    jsonw_key(w, k);
    if (m == ENG_NO_MONTH) jsonw_null(w);
    else { time_format_month_date(m, b); jsonw_str(w, b); }
}

/* consumed .. apply_as_minimal_consumption: shared by org and project credits. */
static void json_terms(struct jsonw *w, const struct eng_terms *t, int64_t consumed, int32_t open) {
    jsonw_kmoney(w, "consumed", consumed);
    jsonw_kmoney(w, "minimum", engine_month_minimum(t, open));
    jsonw_kmoney(w, "expected", t->expected);
    json_date(w, "end_date", t->end_month);
    jsonw_kstr(w, "consumption_logic", logic_name(t->logic));
    jsonw_kint(w, "grace_coefficient", t->grace);
    jsonw_kbool(w, "apply_as_minimal_consumption", t->apply_min);
}

/* The org credit's fields from "value" on (open_month only in balances). */
static void json_org_credit(struct jsonw *w, const struct eng_org *o, int with_open) {
    jsonw_kmoney(w, "value", o->value);
    jsonw_kmoney(w, "free", engine_free_credit(o));
    if (with_open) json_month(w, "open_month", o->open_month);
    json_terms(w, &o->terms, engine_month_consumed(o->acct, o->nacct, o->open_month), o->open_month);
    jsonw_kbool(w, "reserve_allocations", o->terms.reserve);
    jsonw_key(w, "offerings");
    jsonw_arr_open(w);
    for (int i = 0; i < o->noff; i++) jsonw_str(w, o->off[i]);
    jsonw_arr_close(w);
}

static void json_project_credit(struct jsonw *w, const struct eng_project *p, int32_t open) {
    jsonw_kmoney(w, "value", p->value);
    json_terms(w, &p->terms, engine_month_consumed(p->acct, p->nacct, open), open);
    jsonw_kbool(w, "use_org_credit", p->terms.use_org_credit);
    jsonw_kbool(w, "mark_unused_as_spent_on_termination", p->terms.mark_unused);
}

void view_balance_org_json(struct jsonw *w, const struct eng_org *o) {
    jsonw_obj_open(w);
    jsonw_kstr(w, "org", o->id);
    json_org_credit(w, o, 1);
    jsonw_obj_close(w);
}

void view_balance_project_json(struct jsonw *w, const struct eng_org *o,
                               const struct eng_project *p) {
    jsonw_obj_open(w);
    jsonw_kstr(w, "org", o->id);
    jsonw_kstr(w, "project", p->id);
    json_project_credit(w, p, o->open_month);
    jsonw_obj_close(w);
}

int view_sorted_acct(const struct eng_acct *in, int n, struct eng_acct out[ENG_MAX_MONTHS]) {
    if (n > ENG_MAX_MONTHS) n = ENG_MAX_MONTHS;
    for (int i = 0; i < n; i++) {
        int j = i;
        for (; j > 0 && out[j - 1].month > in[i].month; j--) out[j] = out[j - 1];
        out[j] = in[i];
    }
    return n;
}

/* proj: a project's months also say whether overage_started fired (§12). */
static void json_acct(struct jsonw *w, const struct eng_acct *a, int n, int proj) {
    struct eng_acct s[ENG_MAX_MONTHS];
    n = view_sorted_acct(a, n, s);
    jsonw_key(w, "consumption");
    jsonw_arr_open(w);
    for (int i = 0; i < n; i++) {
        jsonw_obj_open(w);
        json_month(w, "month", s[i].month);
        jsonw_kmoney(w, "consumed", s[i].consumed);
        if (proj) jsonw_kbool(w, "overage_started", s[i].overage);
        jsonw_obj_close(w);
    }
    jsonw_arr_close(w);
}

static int al_bit(const uint64_t m[2], int k) { return (int)((m[k / 64] >> (k % 64)) & 1); }

/* Percentages of a threshold mask, descending (the order they fire in). */
static void json_pcts(struct jsonw *w, const char *k, const uint64_t m[2]) {
    jsonw_key(w, k);
    jsonw_arr_open(w);
    for (int i = ENG_ALERT_PCT_MAX; i >= 1; i--)
        if (al_bit(m, i)) jsonw_int(w, i);
    jsonw_arr_close(w);
}

/* A credit's alert state (§12): thresholds, reference, armed, exhausted. */
static void json_alerts(struct jsonw *w, const struct eng_alerts *a) {
    jsonw_key(w, "alerts");
    jsonw_obj_open(w);
    json_pcts(w, "thresholds", a->thr);
    jsonw_kmoney(w, "reference", a->reference);
    json_pcts(w, "armed", a->armed);
    jsonw_kbool(w, "exhausted", a->exhausted);
    jsonw_obj_close(w);
}

static void json_show_projects(struct jsonw *w, const struct eng_org *o) {
    jsonw_key(w, "projects");
    jsonw_arr_open(w);
    for (size_t i = 0; i < o->nproj; i++) {
        const struct eng_project *p = &o->proj[i];
        jsonw_obj_open(w);
        jsonw_kstr(w, "project", p->id);
        jsonw_key(w, "credit");
        if (!p->has_credit) jsonw_null(w);
        else {
            jsonw_obj_open(w);
            json_project_credit(w, p, o->open_month);
            json_alerts(w, &p->al);
            jsonw_obj_close(w);
        }
        json_acct(w, p->acct, p->nacct, 1);
        jsonw_obj_close(w);
    }
    jsonw_arr_close(w);
}

void view_show_json(struct jsonw *w, const struct eng_org *o) {
    char wm[40];
    jsonw_obj_open(w);
    jsonw_kstr(w, "org", o->id);
    jsonw_kint(w, "partition", o->partition);
    jsonw_key(w, "watermark");
    if (o->watermark == ENG_NO_TIME) jsonw_null(w);
    else { time_format(o->watermark, wm); jsonw_str(w, wm); }
    json_month(w, "open_month", o->open_month);
    jsonw_key(w, "sequences");
    jsonw_obj_open(w);
    jsonw_kint(w, "overage", (int64_t)o->seq[ENG_OUT_OVERAGE]);
    jsonw_kint(w, "ledger", (int64_t)o->seq[ENG_OUT_LEDGER]);
    jsonw_kint(w, "alert", (int64_t)o->alert_seq);
    jsonw_obj_close(w);
    jsonw_key(w, "credit");
    if (!o->has_credit) jsonw_null(w);
    else {
        jsonw_obj_open(w);
        json_org_credit(w, o, 0);
        json_alerts(w, &o->al);
        jsonw_obj_close(w);
    }
    json_acct(w, o->acct, o->nacct, 0);
    json_show_projects(w, o);
    jsonw_obj_close(w);
}
