/* gen_model.c -- gen-events' calendar, catalogue and simplified model of
 * the semantics (tools/gen_model.h). */
#include "tools/gen_model.h"

/* ---------------------------------------------------------------- time -- */

/* Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

void gm_civil_from_days(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)((int64_t)yoe + era * 400 + (*m <= 2));
}

/* Month index = year*12 + (month-1), as engine/timeutil.h counts them. */
int64_t gm_month_start(int32_t mi)
{
    return days_from_civil(mi / 12, (unsigned)(mi % 12) + 1, 1) * 86400;
}

int32_t gm_month_of(int64_t t)
{
    int y, m, d;
    gm_civil_from_days(t / 86400, &y, &m, &d);
    return y * 12 + (m - 1);
}

/* --------------------------------------------------------------- model -- */

const char *const gm_offering[GM_NOFFER] = {"hpc", "storage", "cloud", "gpu"};
const char *const gm_component[GM_NCOMP] = {"cpu", "ram", "storage", "gpu", "license"};
const char *const gm_plan[GM_NPLAN] = {"plan-small", "plan-medium", "plan-large"};
const char *const gm_qunit[GM_NQUNIT] = {"hour", "core-hour", "GB-month"};
const char *const gm_kind_name[GM_K_N] = {"clock.tick", "org_credit.set", "project_credit.set",
                                          "org_credit.adjust", "usage"};
const char *const gm_reason_name[GM_R_N] = {"", "no_credit", "credit_expired",
                                            "offering_not_eligible", "project_credit_exhausted",
                                            "org_credit_exhausted"};

/* Whole cents (as micro-units) of a positive double amount of micro-units. */
int64_t gm_cents_micro(double micro)
{
    int64_t c = (int64_t)(micro / 10000.0);
    return (c < 1 ? 1 : c) * 10000;
}

/* round_half_even(n / d), n >= 0, d > 0. */
int64_t gm_div_half_even(int64_t n, int64_t d)
{
    int64_t q = n / d, r = n % d;
    if (2 * r > d || (2 * r == d && (q & 1)))
        q++;
    return q;
}

/* ---------------------------------------------------------- simulation -- */

/* Close month `mi` for every organisation with a credit (all organisations
 * share partition 0, so each tick moves every watermark). */
void gm_sim_close(struct gm_org *orgs, uint32_t norgs, int32_t mi)
{
    for (uint32_t i = 0; i < norgs; i++) {
        struct gm_org *g = &orgs[i];
        if (!g->sim_credit)
            continue;
        int last = g->end_month >= 0 && mi == g->end_month - 1;
        int64_t minimum = 0;
        if (g->apply_min)
            minimum = last ? g->exp_cur : g->exp_cur * (100 - g->grace) / 100;
        int64_t draw = gm_min64(gm_max64(0, minimum - g->cons), g->V);
        g->V -= draw;
        if (g->end_month >= 0 && g->end_month <= mi + 1) {
            g->V = 0;
            for (int p = 0; p < g->nproj; p++)
                g->P[p] = 0;
        } else if (g->linear) {
            g->exp_cur = g->V / (g->end_month - (mi + 1));
        }
        g->cons = 0;
    }
}

/* Apply a usage of cost c; returns the overage reason (GM_R_NONE if covered). */
int gm_sim_usage(struct gm_org *g, int proj, int offer, int64_t t, int64_t c, int64_t *over)
{
    *over = c;
    if (c == 0)
        return GM_R_NONE;
    if (!g->sim_credit)
        return GM_R_NO_CREDIT;
    if (g->end_month >= 0 && t >= gm_month_start(g->end_month))
        return GM_R_EXPIRED;
    if (g->offer_mask && !(g->offer_mask & (1u << offer)))
        return GM_R_NOT_ELIGIBLE;
    int64_t sumP = 0;
    for (int p = 0; p < g->nproj; p++)
        sumP += g->P[p];
    int64_t free_ = g->reserve ? gm_max64(0, g->V - sumP) : g->V;
    int64_t left = c;
    int reason = GM_R_ORG_EXH;
    if (proj < g->nproj && g->sim_pset[proj]) {
        int64_t d1 = gm_min64(c, gm_min64(g->P[proj], g->V));
        g->P[proj] -= d1;
        g->V -= d1;
        left -= d1;
        if (left > 0 && g->puse[proj]) {
            free_ = g->reserve ? gm_max64(0, g->V - (sumP - d1)) : g->V;
            int64_t d2 = gm_min64(left, free_);
            g->V -= d2;
            left -= d2;
        } else {
            reason = GM_R_PROJ_EXH;
        }
    } else {
        int64_t d = gm_min64(c, free_);
        g->V -= d;
        left -= d;
    }
    g->cons += c - left;
    *over = left;
    return left > 0 ? reason : GM_R_NONE;
}

/* An org_credit.set at time t: the credit starts afresh with no consumption
 * this month; a linear credit spreads its value over the months up to
 * end_date, a fixed one expects expected_consumption per month. */
void gm_sim_org_set(struct gm_org *g, int64_t t)
{
    g->sim_credit = 1;
    g->V = g->value;
    g->cons = 0;
    g->exp_cur = g->linear ? g->V / (g->end_month - gm_month_of(t)) : g->expected;
}

/* A project_credit.set of project p.  Returns 0 (the engine's
 * allocation_exceeds_org_credit) without a credit or when the allocations
 * would exceed what is left of it; 1 when it takes effect. */
int gm_sim_project_set(struct gm_org *g, int p)
{
    int64_t sum = g->pval[p];
    for (int q = 0; q < g->nproj; q++)
        if (q != p)
            sum += g->P[q];
    if (!g->sim_credit || sum > g->V)
        return 0;
    g->P[p] = g->pval[p];
    g->sim_pset[p] = 1;
    return 1;
}

/* An org_credit.adjust by `cents`.  Returns 0 (insufficient_credit) without a
 * credit or when it would take the credit below zero; 1 when applied. */
int gm_sim_adjust(struct gm_org *g, int64_t cents)
{
    if (!g->sim_credit || g->V + cents * 10000 < 0)
        return 0;
    g->V += cents * 10000;
    return 1;
}
