/* gen_model -- gen-events' organisation model (prefix gm_): the PRNG, the
 * calendar, what an organisation and a base event are, the counters of a run,
 * and the simplified model of the semantics that the generator runs while
 * writing to estimate overage and rejects (the engine is the authority).
 *
 * Deterministic: splitmix64, no rand(), no wall clock.  Everything random in
 * a run comes from the one stream gm_run.rs, drawn in a fixed order by the
 * generator (tools/gen_events.c) and the renderer (tools/gen_render.h): the
 * order of the gm_rng_* calls is part of the output format.
 *
 * Ownership: no state of its own.  struct gm_run is owned by gen_events.c
 * (generate), which allocates orgs and ev and frees them; the renderer borrows
 * it for the duration of gr_render.  The gm_sim_* functions change only the
 * organisation they are given. */
#ifndef TOOLS_GEN_MODEL_H
#define TOOLS_GEN_MODEL_H

#include <stdint.h>

/* ---------------------------------------------------------------- PRNG -- */

/* The next splitmix64 output of state *s.  Inline: it runs ~10 times a line. */
static inline uint64_t gm_rng_next(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* Uniform in [0, n), n > 0. */
static inline uint64_t gm_rng_below(uint64_t *s, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)gm_rng_next(s) * n) >> 64);
}

/* Uniform in [0, 1). */
static inline double gm_rng_unit(uint64_t *s)
{
    return (double)(gm_rng_next(s) >> 11) * 0x1.0p-53;
}

/* Uniform in [lo, hi). */
static inline double gm_rng_range(uint64_t *s, double lo, double hi)
{
    return lo + (hi - lo) * gm_rng_unit(s);
}

/* ---------------------------------------------------------------- time -- */

#define GM_YEAR0 2026
#define GM_M0    (GM_YEAR0 * 12)    /* month index of 2026-01, the stream's start */
#define GM_HOUR  INT64_C(3600)
#define GM_DAY   INT64_C(86400)

/* The civil date of day z (days since 1970-01-01). */
void gm_civil_from_days(int64_t z, int *y, int *m, int *d);

/* Month index = year*12 + (month-1), as engine/timeutil.h counts them:
 * its first second, and the month of second t. */
int64_t gm_month_start(int32_t mi);
int32_t gm_month_of(int64_t t);

/* --------------------------------------------------------------- model -- */

/* The catalogue: offer_mask bits and pmain index gm_offering, pplan gm_plan. */
#define GM_MAXPROJ 5
#define GM_NOFFER  4
#define GM_NCOMP   5
#define GM_NPLAN   3
#define GM_NQUNIT  3
extern const char *const gm_offering[GM_NOFFER];
extern const char *const gm_component[GM_NCOMP];
extern const char *const gm_plan[GM_NPLAN];
extern const char *const gm_qunit[GM_NQUNIT];

/* An organisation: its drawn terms (amounts in micro-units) and the state of
 * its simulated credit. */
struct gm_org {
    /* generated terms */
    int64_t set_t;
    int64_t value;          /* micro-units */
    int64_t expected;       /* fixed: expected_consumption, micro-units */
    int64_t pval[GM_MAXPROJ];  /* project allocations, micro-units */
    uint32_t n_usage;
    uint32_t mean_cents;    /* mean usage cost */
    int32_t end_month;      /* month index of end_date, or -1 */
    uint8_t linear, grace, apply_min, reserve, offer_mask, nproj;
    uint8_t puse[GM_MAXPROJ];  /* use_org_credit */
    uint8_t pmain[GM_MAXPROJ + 1]; /* main offering per project (+ unallocated) */
    uint8_t pplan[GM_MAXPROJ + 1];
    uint8_t pshare[GM_MAXPROJ + 1]; /* usage weights; last = unallocated */
    uint8_t has_adjust;
    /* simulation state */
    uint8_t sim_credit;
    uint8_t sim_pset[GM_MAXPROJ];
    int64_t V, cons, exp_cur;
    int64_t P[GM_MAXPROJ];
};

/* Event kinds, and their CloudEvents types (gm_kind_name). */
enum { GM_K_TICK, GM_K_ORGSET, GM_K_PROJSET, GM_K_ADJUST, GM_K_USAGE, GM_K_N };
extern const char *const gm_kind_name[GM_K_N];

/* A base event (everything but the re-sends), before rendering. */
struct gm_ev {
    int64_t t;
    uint32_t seq;   /* generation order: the tie-breaker, keeps sorting deterministic */
    uint32_t org;
    uint8_t kind;
    uint8_t proj;   /* project index; == nproj means a project without allocation */
};

/* The simulated overage reasons (gm_reason_name: the engine's names). */
enum { GM_R_NONE, GM_R_NO_CREDIT, GM_R_EXPIRED, GM_R_NOT_ELIGIBLE, GM_R_PROJ_EXH, GM_R_ORG_EXH,
       GM_R_N };
extern const char *const gm_reason_name[GM_R_N];

/* The counters of a run, printed in the summary. */
struct gm_stats {
    uint64_t lines, dups, kind[GM_K_N], usage_amount, usage_qty, usage_zero;
    uint64_t over[GM_R_N], over_total, rej_alloc, rej_adjust, set_linear, set_fixed_exp,
        set_grace, set_offerings, set_end, set_noreserve, set_nomin, proj_fallback;
    int64_t over_micro, covered_micro;
};

/* One run of the generator: the PRNG stream, the organisations, the base
 * events in time order and the counters (ownership: see the top). */
struct gm_run {
    uint64_t rs;            /* PRNG state */
    int64_t t0, tend;       /* the stream's window, 2026-01-01 .. + months */
    uint64_t norgs;
    struct gm_org *orgs;    /* norgs of them */
    uint64_t nticks;        /* clock ticks */
    uint64_t ndups;         /* exact re-sends: 1% of --events */
    uint64_t nusage;        /* usage events over all organisations */
    uint64_t nbase;         /* events before the re-sends */
    struct gm_ev *ev;       /* the nbase base events, in time order */
    struct gm_stats st;
};

static inline int64_t gm_min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t gm_max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* Whole cents (as micro-units) of a positive double amount of micro-units,
 * at least one cent. */
int64_t gm_cents_micro(double micro);

/* round_half_even(n / d), n >= 0, d > 0. */
int64_t gm_div_half_even(int64_t n, int64_t d);

/* ---------------------------------------------------------- simulation -- */

/* Close month `mi` for every organisation with a credit (all organisations
 * share partition 0, so each tick moves every watermark). */
void gm_sim_close(struct gm_org *orgs, uint32_t norgs, int32_t mi);

/* Apply a usage of cost c (micro-units) on project proj (== nproj: one
 * without allocation) and offering index offer at time t.  Returns the
 * overage reason (GM_R_NONE if covered) and the uncovered part in *over. */
int gm_sim_usage(struct gm_org *g, int proj, int offer, int64_t t, int64_t c, int64_t *over);

/* An org_credit.set at time t: the credit starts afresh with no consumption
 * this month. */
void gm_sim_org_set(struct gm_org *g, int64_t t);

/* A project_credit.set of project p: 1 when it takes effect, 0 when the
 * engine would reject it (allocation_exceeds_org_credit). */
int gm_sim_project_set(struct gm_org *g, int p);

/* An org_credit.adjust by `cents`: 1 when applied, 0 when the engine would
 * reject it (insufficient_credit). */
int gm_sim_adjust(struct gm_org *g, int64_t cents);

#endif
