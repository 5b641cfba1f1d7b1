/* view.h -- the JSON views of one organisation, shared by creditctl
 * (`show --json`, `balances --json`) and creditd's HTTP API
 * (GET /v1/orgs/{org}, GET /v1/orgs), so that both give the same bytes by
 * construction.
 *
 * Pure: no I/O, no store, no clock.  The org comes loaded whole (every
 * project: store_get_org, store_view_get_org) and must pass view_org_check
 * first: the renderers compute with it (free credit, minimums) and trust
 * its invariants.  Money is a string with 6 fractional digits; keys come
 * in a fixed order; projects in byte order of their ids. */
#ifndef CREDITD_TOOLS_VIEW_H
#define CREDITD_TOOLS_VIEW_H

#include <stddef.h>

#include "engine/jsonw.h"
#include "engine/state.h"

/* A record that decodes may still break the rules' invariants together (a
 * stored sum of P that is not the sum, a month outside open..watermark):
 * the whole org is checked as the engine checks it (eng_org_check,
 * eng_project_check, eng_org_check_alloc_sum).  0, or -1 with msg
 * "corrupt store WHERE: org ID: why" (WHERE: the store's path). */
int view_org_check(const char *where, const struct eng_org *o, char *msg, size_t len);

/* `show --json`: one object with everything about the org (partition,
 * watermark, open month, sequences, credit with terms and alert state,
 * consumption, projects), appended to w as a value. */
void view_show_json(struct jsonw *w, const struct eng_org *o);

/* `balances --json`: the org's object (org, value, free, open month,
 * consumed, minimum, terms, offerings), appended to w as a value.  Only for
 * an org with a credit (o->has_credit). */
void view_balance_org_json(struct jsonw *w, const struct eng_org *o);

/* `balances --json`: the object of project p of o (p->has_credit), appended
 * to w as a value. */
void view_balance_project_json(struct jsonw *w, const struct eng_org *o,
                               const struct eng_project *p);

/* The n month records a (consumption) sorted by month into out; returns
 * how many (at most ENG_MAX_MONTHS).  The store keeps no order. */
int view_sorted_acct(const struct eng_acct *a, int n, struct eng_acct out[ENG_MAX_MONTHS]);

#endif
