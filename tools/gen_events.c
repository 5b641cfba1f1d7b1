/* gen_events.c -- deterministic synthetic event stream for `make bench`.
 *
 *   gen-events [--orgs N] [--events N] [--seed S] [--months M] [--out FILE]
 *
 * Writes exactly --events JSON Lines CloudEvents (default 1,000,000 for
 * 10,000 organisations) following docs/credit-semantics (v1.2), in
 * non-decreasing time order over 2026-01-01 .. the start of the month after
 * --months months (default 3: .. 2026-04-01; 24 gives a two-year stream of
 * steady load, as the bounded-memory scenario uses):
 *
 *   - one org_credit.set per organisation, most in the first week, some
 *     onboarding later (until end of February): fixed (many with
 *     expected_consumption) or linear (with end_date); some with grace,
 *     end_date, offerings lists, apply_as_minimal_consumption false or
 *     reserve_allocations false;
 *   - 1..5 project_credit.set per organisation within the hour after its set
 *     (about half with use_org_credit);
 *   - occasional org_credit.adjust (top-ups, some claw-backs);
 *   - usage events for the rest (amount form or quantity + unit_price, with
 *     plan/unit), ~15% of them on projects without an allocation;
 *   - clock.tick at the start of every month after the first, and at the end
 *     (02-01, 03-01 and 04-01 by default; source "clock", one id per tick:
 *     everything is meant for partition 0, as credit-replay uses);
 *   - 1% of the lines are exact re-sends of the line before them (same id,
 *     same bytes), which keeps the time order non-decreasing.
 *
 * Amounts are sized so that roughly 5% of the usage events end in overage
 * (organisations whose credit runs out, projects without fallback that run
 * out, a few expired credits and non-eligible offerings).  The generator runs
 * a simplified model of the semantics while writing and prints its estimate
 * with the per-type counts on stderr; the engine is the authority.
 *
 * Deterministic: own PRNG (splitmix64), no rand(), no wall clock; the same
 * arguments give byte-identical output on any host.  Floating point is used
 * only to shape distributions, never in the emitted amounts' arithmetic.
 *
 * This file: the options, the generator's steps 1..3 (onboarding, each
 * organisation's terms, the time-ordered base events), the summary and main.
 * The PRNG, calendar, organisation model and simulation are
 * tools/gen_model.h; the output buffer and the rendering of the events
 * (step 4) are tools/gen_render.h.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/gen_model.h"
#include "tools/gen_render.h"

/* ------------------------------------------------------------ options -- */

struct args {
    uint64_t norgs, nevents, seed;
    uint64_t months;        /* the stream's length in months, from 2026-01 */
    const char *outpath;    /* NULL or "-": stdout */
};

static void usage_exit(int code)
{
    fprintf(code ? stderr : stdout,
            "usage: gen-events [--orgs N] [--events N] [--seed S] [--months M] [--out FILE]\n"
            "  --orgs N    organisations (default 10000)\n"
            "  --events N  total lines written, ticks and duplicates included (default 1000000)\n"
            "  --seed S    PRNG seed (default 1); same arguments -> same bytes\n"
            "  --months M  months from 2026-01, 2..120 (default 3); a clock.tick starts\n"
            "              every month after the first and ends the stream\n"
            "  --out FILE  output file (default stdout)\n"
            "Summary (counts per type, estimated overage) on stderr.\n");
    exit(code);
}

/* The decimal integer s in lo..hi; anything else exits 2 naming option opt. */
static uint64_t parse_num(const char *opt, const char *s, uint64_t lo, uint64_t hi)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < lo || v > hi) {
        fprintf(stderr, "gen-events: %s: expected an integer in %llu..%llu, got '%s'\n", opt,
                (unsigned long long)lo, (unsigned long long)hi, s);
        exit(2);
    }
    return v;
}

/* Fills *a from the command line; --help exits 0, a bad argument exits 2. */
static void parse_args(int argc, char **argv, struct args *a)
{
    *a = (struct args){.norgs = 10000, .nevents = 1000000, .seed = 1, .months = 3, .outpath = NULL};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help"))
            usage_exit(0);
        if (i + 1 >= argc)
            usage_exit(2);
        if (!strcmp(arg, "--orgs"))
            a->norgs = parse_num(arg, argv[++i], 1, 1000000);
        else if (!strcmp(arg, "--events"))
            a->nevents = parse_num(arg, argv[++i], 1, 1000000000);
        else if (!strcmp(arg, "--seed"))
            a->seed = parse_num(arg, argv[++i], 0, UINT64_MAX);
        else if (!strcmp(arg, "--months"))
            a->months = parse_num(arg, argv[++i], 2, 120);
        else if (!strcmp(arg, "--out"))
            a->outpath = argv[++i];
        else
            usage_exit(2);
    }
}

/* ---------------------------------------------------------- generator -- */

/* Time order; generation order among events at the same time. */
static int ev_cmp(const void *a, const void *b)
{
    const struct gm_ev *x = a, *y = b;
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* One run of the generator.  Everything random comes from the single stream
 * r.rs, drawn in a fixed order by the steps below (onboarding, terms, event
 * times, then rendering, event by event): the order of the gm_rng_* calls is
 * part of the output format, so moving one changes the bytes for every seed.
 * Owns r.orgs, r.ev and the output (freed by main). */
struct gen {
    struct args a;
    struct gm_run r;
    struct gr_out o;
};

/* Step 1: onboarding time, project count and adjust flag of every
 * organisation, and its activity weight eff[i] (heavy-tailed, scaled by the
 * share of the stream it is onboard for).  Sets *nsetup to the number of set
 * and adjust events this implies; returns the sum of the weights. */
static double draw_onboarding(struct gen *gen, double *eff, uint64_t *nsetup)
{
    uint64_t *rs = &gen->r.rs;
    const int64_t t0 = gen->r.t0, tend = gen->r.tend;
    double effsum = 0;
    *nsetup = 0;
    for (uint64_t i = 0; i < gen->a.norgs; i++) {
        struct gm_org *g = &gen->r.orgs[i];
        if (gm_rng_below(rs, 100) < 85)
            g->set_t = t0 + 6 * GM_HOUR + (int64_t)gm_rng_below(rs, 7 * GM_DAY);
        else
            g->set_t = t0 + 7 * GM_DAY
                + (int64_t)gm_rng_below(rs, (uint64_t)(gm_month_start(GM_M0 + 2) - t0 - 8 * GM_DAY));
        g->nproj = (uint8_t)(1 + gm_rng_below(rs, GM_MAXPROJ));
        g->has_adjust = gm_rng_below(rs, 100) < 8 && g->set_t + GM_DAY < tend - GM_HOUR;
        *nsetup += 1u + g->nproj + g->has_adjust;
        double w = 1.0 / (0.01 + gm_rng_unit(rs));        /* heavy-tailed activity */
        eff[i] = w * (double)(tend - g->set_t - 2 * GM_HOUR) / (double)(tend - t0);
        effsum += eff[i];
    }
    return effsum;
}

/* Splits --events into ticks, re-sends, the nsetup set/adjust events and
 * usage.  Returns 2 (with a message) when that leaves fewer usage events than
 * organisations -- every organisation gets at least one -- else 0. */
static int plan_counts(struct gen *gen, uint64_t nsetup)
{
    const uint64_t norgs = gen->a.norgs, nevents = gen->a.nevents;
    gen->r.nticks = gen->a.months;
    gen->r.ndups = nevents / 100;
    if (nevents < nsetup + gen->r.nticks + gen->r.ndups + norgs) {
        fprintf(stderr,
                "gen-events: --events %llu too small for %llu organisations (need at least %llu)\n",
                (unsigned long long)nevents, (unsigned long long)norgs,
                (unsigned long long)(nsetup + gen->r.nticks + gen->r.ndups + norgs));
        return 2;
    }
    gen->r.nusage = nevents - nsetup - gen->r.nticks - gen->r.ndups;
    gen->r.nbase = nevents - gen->r.ndups;
    return 0;
}

/* Step 2a: shares the usage events out in proportion to the weights; the
 * rounding remainder goes one by one to the first organisations. */
static void assign_usage(struct gen *gen, const double *eff, double effsum)
{
    const uint64_t norgs = gen->a.norgs, nusage = gen->r.nusage;
    uint64_t assigned = 0;
    for (uint64_t i = 0; i < norgs; i++) {
        gen->r.orgs[i].n_usage = (uint32_t)((double)nusage * eff[i] / effsum);
        assigned += gen->r.orgs[i].n_usage;
    }
    for (uint64_t i = 0; assigned < nusage; i = (i + 1) % norgs, assigned++)
        gen->r.orgs[i].n_usage++;
}

/* Consumption logic (30% linear with an end_date; fixed, 60% of them with
 * expected_consumption, some with an end_date, 3% expiring inside the stream)
 * for an organisation expected to spend `spend` micro-units. */
static void draw_logic(struct gen *gen, struct gm_org *g, double spend)
{
    uint64_t *rs = &gen->r.rs;
    struct gm_stats *st = &gen->r.st;
    double months = (double)(gen->r.tend - g->set_t) / (30.0 * GM_DAY);
    int32_t sm = gm_month_of(g->set_t);
    g->linear = gm_rng_below(rs, 100) < 30;
    g->end_month = -1;
    if (g->linear) {
        static const int span[] = {3, 4, 6, 6, 9, 12, 12};
        g->end_month = sm + span[gm_rng_below(rs, 7)];
        st->set_linear++;
    } else {
        if (gm_rng_below(rs, 100) < 60) {
            g->expected =
                gm_min64(g->value, gm_cents_micro(spend / months * gm_rng_range(rs, 0.2, 0.9)));
            st->set_fixed_exp++;
        }
        uint64_t r = gm_rng_below(rs, 1000);
        if (r < 30)
            g->end_month = sm + 2;                 /* expires inside the stream */
        else if (r < 250)
            g->end_month = sm + 3 + (int32_t)gm_rng_below(rs, 10);
    }
    if (g->end_month >= 0)
        st->set_end++;
}

/* The optional terms: grace (20%), apply_as_minimal_consumption false (10%),
 * reserve_allocations false (10%), a two-offering list (5%). */
static void draw_options(struct gen *gen, struct gm_org *g)
{
    uint64_t *rs = &gen->r.rs;
    struct gm_stats *st = &gen->r.st;
    g->grace = 0;
    if (gm_rng_below(rs, 100) < 20) {
        static const uint8_t gr[] = {10, 20, 25, 50};
        g->grace = gr[gm_rng_below(rs, 4)];
        st->set_grace++;
    }
    g->apply_min = gm_rng_below(rs, 100) >= 10;
    g->reserve = gm_rng_below(rs, 100) >= 10;
    st->set_nomin += !g->apply_min;
    st->set_noreserve += !g->reserve;
    g->offer_mask = 0;
    if (gm_rng_below(rs, 100) < 5) {
        unsigned a = (unsigned)gm_rng_below(rs, GM_NOFFER),
                 b = (a + 1 + (unsigned)gm_rng_below(rs, GM_NOFFER - 1)) % GM_NOFFER;
        g->offer_mask = (uint8_t)((1u << a) | (1u << b));
        st->set_offerings++;
    }
}

/* Projects: usage shares (the project without allocation gets about 15%),
 * main offering (an eligible one) and plan per project; allocations sized on
 * the project's share of `spend` (9% short of it), scaled down to 90% of the
 * organisation's credit at most; use_org_credit on about half. */
static void draw_projects(struct gen *gen, struct gm_org *g, double spend)
{
    uint64_t *rs = &gen->r.rs;
    unsigned wsum = 0;
    for (int p = 0; p <= g->nproj; p++) {
        g->pshare[p] = (uint8_t)(1 + gm_rng_below(rs, 10));
        wsum += g->pshare[p];
        unsigned m;
        do
            m = (unsigned)gm_rng_below(rs, GM_NOFFER);
        while (g->offer_mask && !(g->offer_mask & (1u << m)));
        g->pmain[p] = (uint8_t)m;
        g->pplan[p] = (uint8_t)gm_rng_below(rs, GM_NPLAN);
    }
    unsigned alloc_w = wsum - g->pshare[g->nproj];
    g->pshare[g->nproj] =
        (uint8_t)(alloc_w * 15 / 85 < 1 ? 1 : (alloc_w * 15 / 85 > 255 ? 255 : alloc_w * 15 / 85));
    wsum = alloc_w + g->pshare[g->nproj];
    double psum = 0;
    double pv[GM_MAXPROJ];
    for (int p = 0; p < g->nproj; p++) {
        double kp = gm_rng_below(rs, 100) < 9 ? gm_rng_range(rs, 0.3, 0.9)
                                              : gm_rng_range(rs, 1.2, 2.0);
        pv[p] = spend * g->pshare[p] / wsum * kp;
        psum += pv[p];
        g->puse[p] = gm_rng_below(rs, 100) < 50;
        gen->r.st.proj_fallback += g->puse[p];
    }
    double cap = 0.9 * (double)g->value;
    for (int p = 0; p < g->nproj; p++)
        g->pval[p] = gm_cents_micro(psum > cap ? pv[p] * cap / psum : pv[p]);
}

/* Step 2b: the terms of one organisation, sized on its usage volume: mean
 * usage cost, credit value (~9% of organisations get less credit than they
 * will use), then logic, options and projects. */
static void draw_org_terms(struct gen *gen, struct gm_org *g)
{
    uint64_t *rs = &gen->r.rs;
    double u = gm_rng_unit(rs);
    g->mean_cents = 20 + (uint32_t)(u * u * 5000.0);            /* 0.20 .. 50.20 */
    double spend = (double)g->n_usage * g->mean_cents * 10000.0; /* micro */
    double k = gm_rng_below(rs, 1000) < 90 ? gm_rng_range(rs, 0.25, 0.9)
                                           : gm_rng_range(rs, 1.3, 3.0);
    g->value = gm_cents_micro(spend * k + 100e6);
    draw_logic(gen, g, spend);
    draw_options(gen, g);
    draw_projects(gen, g, spend);
}

/* Appends a base event at ev[*ne].  seq is its index, so events at the same
 * time keep generation order through the sort.  Writes nothing past nbase
 * (build_events reports the miscount). */
static void push_ev(struct gen *gen, uint64_t *ne, int64_t t, uint64_t org, int kind, int proj)
{
    if (*ne < gen->r.nbase)
        gen->r.ev[*ne] =
            (struct gm_ev){t, (uint32_t)*ne, (uint32_t)org, (uint8_t)kind, (uint8_t)proj};
    (*ne)++;
}

/* Organisation i's events: its set, project sets 10..20 minutes apart in the
 * hour after it, maybe an adjust (a day after the set at the earliest), and
 * its usage from two hours after the set, spread over projects by share. */
static void schedule_org(struct gen *gen, uint64_t i, uint64_t *ne)
{
    uint64_t *rs = &gen->r.rs;
    const struct gm_org *g = &gen->r.orgs[i];
    push_ev(gen, ne, g->set_t, i, GM_K_ORGSET, 0);
    for (int p = 0; p < g->nproj; p++) {
        int64_t t = g->set_t + 600 * (p + 1) + (int64_t)gm_rng_below(rs, 600);
        push_ev(gen, ne, t, i, GM_K_PROJSET, p);
    }
    if (g->has_adjust) {
        int64_t lo = g->set_t + GM_DAY;
        int64_t t = lo + (int64_t)gm_rng_below(rs, (uint64_t)(gen->r.tend - GM_HOUR - lo));
        push_ev(gen, ne, t, i, GM_K_ADJUST, 0);
    }
    unsigned wsum = 0;
    for (int p = 0; p <= g->nproj; p++)
        wsum += g->pshare[p];
    int64_t lo = g->set_t + 2 * GM_HOUR;
    for (uint32_t k = 0; k < g->n_usage; k++) {
        int64_t t = lo + (int64_t)gm_rng_below(rs, (uint64_t)(gen->r.tend - lo));
        unsigned r = (unsigned)gm_rng_below(rs, wsum);
        int p = 0;
        while (r >= g->pshare[p])
            r -= g->pshare[p++];
        push_ev(gen, ne, t, i, GM_K_USAGE, p);
    }
}

/* Step 3: the base events (everything but the re-sends) -- a tick at each
 * month start after the first, then every organisation's -- in time order.
 * Returns 1 (with a message) when out of memory or miscounted, else 0. */
static int build_events(struct gen *gen)
{
    gen->r.ev = malloc(gen->r.nbase * sizeof *gen->r.ev);
    if (!gen->r.ev) {
        fputs("gen-events: out of memory\n", stderr);
        return 1;
    }
    uint64_t ne = 0;
    for (uint64_t m = 1; m <= gen->r.nticks; m++)
        push_ev(gen, &ne, gm_month_start(GM_M0 + (int32_t)m), 0, GM_K_TICK, 0);
    for (uint64_t i = 0; i < gen->a.norgs; i++)
        schedule_org(gen, i, &ne);
    if (ne != gen->r.nbase) {
        fprintf(stderr, "gen-events: internal error: %llu base events, expected %llu\n",
                (unsigned long long)ne, (unsigned long long)gen->r.nbase);
        return 1;
    }
    qsort(gen->r.ev, gen->r.nbase, sizeof *gen->r.ev, ev_cmp);
    return 0;
}

/* The per-type counts and the model's estimates, on stderr. */
static void print_summary(const struct gen *gen)
{
    const struct gm_stats *st = &gen->r.st;
    uint64_t nu = st->kind[GM_K_USAGE];
    int32_t me = GM_M0 + (int32_t)gen->a.months;
    fprintf(stderr,
            "gen-events: %llu lines, %.1f MiB, %llu organisations, seed %llu, %s .. %04d-%02d-01\n",
            (unsigned long long)st->lines, (double)gen->o.bytes / 1048576.0,
            (unsigned long long)gen->a.norgs, (unsigned long long)gen->a.seed, "2026-01-01",
            (int)(me / 12), (int)(me % 12 + 1));
    fprintf(stderr, "  distinct events by type (re-sends counted under duplicates):\n");
    for (int k = GM_K_ORGSET; k < GM_K_N; k++)
        fprintf(stderr, "  %-20s %9llu\n", gm_kind_name[k], (unsigned long long)st->kind[k]);
    fprintf(stderr, "  %-20s %9llu\n", gm_kind_name[GM_K_TICK],
            (unsigned long long)st->kind[GM_K_TICK]);
    fprintf(stderr, "  %-20s %9llu (exact re-sends, same id)\n", "duplicates",
            (unsigned long long)st->dups);
    fprintf(stderr,
            "  org sets: %llu linear, %llu fixed with expected_consumption, %llu with end_date,"
            " %llu with grace, %llu with offerings, %llu apply_as_minimal_consumption=false,"
            " %llu reserve_allocations=false\n",
            (unsigned long long)st->set_linear, (unsigned long long)st->set_fixed_exp,
            (unsigned long long)st->set_end, (unsigned long long)st->set_grace,
            (unsigned long long)st->set_offerings, (unsigned long long)st->set_nomin,
            (unsigned long long)st->set_noreserve);
    fprintf(stderr, "  project sets with use_org_credit: %llu\n",
            (unsigned long long)st->proj_fallback);
    fprintf(stderr, "  usage: %llu amount form, %llu quantity+unit_price form, %llu zero cost\n",
            (unsigned long long)st->usage_amount, (unsigned long long)st->usage_qty,
            (unsigned long long)st->usage_zero);
    fprintf(stderr, "  estimated overage (simplified model): %llu usage events = %.2f%%",
            (unsigned long long)st->over_total,
            nu ? 100.0 * (double)st->over_total / (double)nu : 0.0);
    for (int r = 1; r < GM_R_N; r++)
        fprintf(stderr, "%s %s %llu", r == 1 ? " (" : ",", gm_reason_name[r],
                (unsigned long long)st->over[r]);
    fprintf(stderr, "); %.2f covered, %.2f overage\n", (double)st->covered_micro / 1e6,
            (double)st->over_micro / 1e6);
    fprintf(stderr, "  estimated rejects: %llu allocation_exceeds_org_credit, %llu insufficient_credit\n",
            (unsigned long long)st->rej_alloc, (unsigned long long)st->rej_adjust);
}

/* Steps 1..4 and the summary, in the order that fixes the PRNG stream.
 * Returns the exit status: 0, 1 (out of memory, I/O) or 2 (--events too
 * small).  Nothing is written, not even --out created, before step 4. */
static int generate(struct gen *gen)
{
    gen->r.t0 = gm_month_start(GM_M0);
    gen->r.tend = gm_month_start(GM_M0 + (int32_t)gen->a.months);
    gen->r.rs = gen->a.seed ^ UINT64_C(0x6372656469746421); /* "credit!" */
    gm_rng_next(&gen->r.rs);
    gen->r.norgs = gen->a.norgs;
    gen->r.orgs = calloc(gen->a.norgs, sizeof *gen->r.orgs);
    double *eff = calloc(gen->a.norgs, sizeof *eff);
    if (!gen->r.orgs || !eff) {
        free(eff);
        fputs("gen-events: out of memory\n", stderr);
        return 1;
    }
    uint64_t nsetup;
    double effsum = draw_onboarding(gen, eff, &nsetup);
    int rc = plan_counts(gen, nsetup);
    if (rc == 0)
        assign_usage(gen, eff, effsum);
    free(eff);
    if (rc)
        return rc;
    for (uint64_t i = 0; i < gen->a.norgs; i++)
        draw_org_terms(gen, &gen->r.orgs[i]);
    if (build_events(gen) || gr_open(&gen->o, gen->a.outpath))
        return 1;
    gr_render(&gen->o, &gen->r);
    if (gr_close(&gen->o, gen->a.outpath))
        return 1;
    print_summary(gen);
    return 0;
}

int main(int argc, char **argv)
{
    struct gen gen;
    memset(&gen, 0, sizeof gen);
    gen.o.fd = -1;
    parse_args(argc, argv, &gen.a);
    int rc = generate(&gen);
    gr_free(&gen.o);
    free(gen.r.ev);
    free(gen.r.orgs);
    return rc;
}
