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
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------------- PRNG -- */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* Uniform in [0, n), n > 0. */
static uint64_t rng_below(uint64_t *s, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)rng_next(s) * n) >> 64);
}

/* Uniform in [0, 1). */
static double rng_unit(uint64_t *s)
{
    return (double)(rng_next(s) >> 11) * 0x1.0p-53;
}

static double rng_range(uint64_t *s, double lo, double hi)
{
    return lo + (hi - lo) * rng_unit(s);
}

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

static void civil_from_days(int64_t z, int *y, int *m, int *d)
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
static int64_t month_start(int32_t mi)
{
    return days_from_civil(mi / 12, (unsigned)(mi % 12) + 1, 1) * 86400;
}

static int32_t month_of(int64_t t)
{
    int y, m, d;
    civil_from_days(t / 86400, &y, &m, &d);
    return y * 12 + (m - 1);
}

#define YEAR0    2026
static const int32_t M0 = YEAR0 * 12;   /* 2026-01 */
#define HOUR     INT64_C(3600)
#define DAY      INT64_C(86400)

/* ------------------------------------------------------------- output -- */

/* A write buffer on fd.  put* and friends do not check room: the caller
 * flushes beforehand (render keeps 4 KiB free per line). */
typedef struct {
    int fd;
    char *buf;
    size_t len, cap;
    uint64_t bytes;
    int64_t day;          /* cached day of `date` */
    char date[11];        /* "YYYY-MM-DD" */
} Out;

static void out_flush(Out *o)
{
    size_t off = 0;
    while (off < o->len) {
        ssize_t n = write(o->fd, o->buf + off, o->len - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("gen-events: write");
            exit(1);
        }
        off += (size_t)n;
    }
    o->bytes += o->len;
    o->len = 0;
}

static inline void put(Out *o, const char *s, size_t n)
{
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}
#define PUTL(o, lit) put((o), (lit), sizeof(lit) - 1)

static inline void put_str(Out *o, const char *s) { put(o, s, strlen(s)); }

/* Unsigned decimal, zero-padded to at least `width` digits. */
static void put_u(Out *o, uint64_t v, int width)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n < width)
        tmp[n++] = '0';
    while (n)
        o->buf[o->len++] = tmp[--n];
}

/* A JSON string holding v / 10^dec with exactly dec fractional digits. */
static void put_dec(Out *o, int64_t v, int dec)
{
    uint64_t p = 1;
    for (int i = 0; i < dec; i++)
        p *= 10;
    o->buf[o->len++] = '"';
    uint64_t a = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    if (v < 0)
        o->buf[o->len++] = '-';
    put_u(o, a / p, 1);
    if (dec) {
        o->buf[o->len++] = '.';
        put_u(o, a % p, dec);
    }
    o->buf[o->len++] = '"';
}

static void fmt_date(char *b, int y, int m, int d)
{
    b[0] = (char)('0' + y / 1000); b[1] = (char)('0' + y / 100 % 10);
    b[2] = (char)('0' + y / 10 % 10); b[3] = (char)('0' + y % 10);
    b[4] = '-'; b[5] = (char)('0' + m / 10); b[6] = (char)('0' + m % 10);
    b[7] = '-'; b[8] = (char)('0' + d / 10); b[9] = (char)('0' + d % 10);
    b[10] = 0;
}

/* "YYYY-MM-DDTHH:MM:SSZ" with quotes. */
static void put_time(Out *o, int64_t t)
{
    int64_t day = t / DAY, sec = t % DAY;
    if (day != o->day) {
        int y, m, d;
        civil_from_days(day, &y, &m, &d);
        fmt_date(o->date, y, m, d);
        o->day = day;
    }
    o->buf[o->len++] = '"';
    put(o, o->date, 10);
    o->buf[o->len++] = 'T';
    put_u(o, (uint64_t)(sec / 3600), 2);
    o->buf[o->len++] = ':';
    put_u(o, (uint64_t)(sec / 60 % 60), 2);
    o->buf[o->len++] = ':';
    put_u(o, (uint64_t)(sec % 60), 2);
    PUTL(o, "Z\"");
}

static void put_month_date(Out *o, int32_t mi)
{
    char b[11];
    fmt_date(b, mi / 12, mi % 12 + 1, 1);
    o->buf[o->len++] = '"';
    put(o, b, 10);
    o->buf[o->len++] = '"';
}

/* ------------------------------------------------------------- model -- */

#define MAXPROJ 5
static const char *const OFFERINGS[] = {"hpc", "storage", "cloud", "gpu"};
#define NOFFER 4
static const char *const COMPONENTS[] = {"cpu", "ram", "storage", "gpu", "license"};
#define NCOMP 5
static const char *const PLANS[] = {"plan-small", "plan-medium", "plan-large"};
#define NPLAN 3
static const char *const QUNITS[] = {"hour", "core-hour", "GB-month"};
#define NQUNIT 3

typedef struct {
    /* generated terms */
    int64_t set_t;
    int64_t value;          /* micro-units */
    int64_t expected;       /* fixed: expected_consumption, micro-units */
    int64_t pval[MAXPROJ];  /* project allocations, micro-units */
    uint32_t n_usage;
    uint32_t mean_cents;    /* mean usage cost */
    int32_t end_month;      /* month index of end_date, or -1 */
    uint8_t linear, grace, apply_min, reserve, offer_mask, nproj;
    uint8_t puse[MAXPROJ];  /* use_org_credit */
    uint8_t pmain[MAXPROJ + 1]; /* main offering per project (+ unallocated) */
    uint8_t pplan[MAXPROJ + 1];
    uint8_t pshare[MAXPROJ + 1]; /* usage weights; last = unallocated */
    uint8_t has_adjust;
    /* simulation state */
    uint8_t sim_credit;
    uint8_t sim_pset[MAXPROJ];
    int64_t V, cons, exp_cur;
    int64_t P[MAXPROJ];
} Org;

enum { K_TICK, K_ORGSET, K_PROJSET, K_ADJUST, K_USAGE, K_N };
static const char *const KNAME[K_N] = {"clock.tick", "org_credit.set", "project_credit.set",
                                       "org_credit.adjust", "usage"};

typedef struct {
    int64_t t;
    uint32_t seq;   /* generation order: the tie-breaker, keeps sorting deterministic */
    uint32_t org;
    uint8_t kind;
    uint8_t proj;   /* project index; == nproj means a project without allocation */
} Ev;

static int ev_cmp(const void *a, const void *b)
{
    const Ev *x = a, *y = b;
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

enum { R_NONE, R_NO_CREDIT, R_EXPIRED, R_NOT_ELIGIBLE, R_PROJ_EXH, R_ORG_EXH, R_N };
static const char *const RNAME[R_N] = {"", "no_credit", "credit_expired", "offering_not_eligible",
                                       "project_credit_exhausted", "org_credit_exhausted"};

typedef struct {
    uint64_t lines, dups, kind[K_N], usage_amount, usage_qty, usage_zero;
    uint64_t over[R_N], over_total, rej_alloc, rej_adjust, set_linear, set_fixed_exp,
        set_grace, set_offerings, set_end, set_noreserve, set_nomin, proj_fallback;
    int64_t over_micro, covered_micro;
} Stats;

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* Whole cents (as micro-units) of a positive double amount of micro-units. */
static int64_t cents_micro(double micro)
{
    int64_t c = (int64_t)(micro / 10000.0);
    return (c < 1 ? 1 : c) * 10000;
}

/* round_half_even(n / d), n >= 0, d > 0. */
static int64_t div_half_even(int64_t n, int64_t d)
{
    int64_t q = n / d, r = n % d;
    if (2 * r > d || (2 * r == d && (q & 1)))
        q++;
    return q;
}

/* ---------------------------------------------------------- simulation -- */

/* Close month `mi` for every organisation with a credit (all organisations
 * share partition 0, so each tick moves every watermark). */
static void sim_close(Org *orgs, uint32_t norgs, int32_t mi)
{
    for (uint32_t i = 0; i < norgs; i++) {
        Org *g = &orgs[i];
        if (!g->sim_credit)
            continue;
        int last = g->end_month >= 0 && mi == g->end_month - 1;
        int64_t minimum = 0;
        if (g->apply_min)
            minimum = last ? g->exp_cur : g->exp_cur * (100 - g->grace) / 100;
        int64_t draw = min64(max64(0, minimum - g->cons), g->V);
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

/* Apply a usage of cost c; returns the overage reason (R_NONE if covered). */
static int sim_usage(Org *g, int proj, int offer, int64_t t, int64_t c, int64_t *over)
{
    *over = c;
    if (c == 0)
        return R_NONE;
    if (!g->sim_credit)
        return R_NO_CREDIT;
    if (g->end_month >= 0 && t >= month_start(g->end_month))
        return R_EXPIRED;
    if (g->offer_mask && !(g->offer_mask & (1u << offer)))
        return R_NOT_ELIGIBLE;
    int64_t sumP = 0;
    for (int p = 0; p < g->nproj; p++)
        sumP += g->P[p];
    int64_t free_ = g->reserve ? max64(0, g->V - sumP) : g->V;
    int64_t left = c;
    int reason = R_ORG_EXH;
    if (proj < g->nproj && g->sim_pset[proj]) {
        int64_t d1 = min64(c, min64(g->P[proj], g->V));
        g->P[proj] -= d1;
        g->V -= d1;
        left -= d1;
        if (left > 0 && g->puse[proj]) {
            free_ = g->reserve ? max64(0, g->V - (sumP - d1)) : g->V;
            int64_t d2 = min64(left, free_);
            g->V -= d2;
            left -= d2;
        } else {
            reason = R_PROJ_EXH;
        }
    } else {
        int64_t d = min64(c, free_);
        g->V -= d;
        left -= d;
    }
    g->cons += c - left;
    *over = left;
    return left > 0 ? reason : R_NONE;
}

/* An org_credit.set at time t: the credit starts afresh with no consumption
 * this month; a linear credit spreads its value over the months up to
 * end_date, a fixed one expects expected_consumption per month. */
static void sim_org_set(Org *g, int64_t t)
{
    g->sim_credit = 1;
    g->V = g->value;
    g->cons = 0;
    g->exp_cur = g->linear ? g->V / (g->end_month - month_of(t)) : g->expected;
}

/* A project_credit.set of project p.  Returns 0 (the engine's
 * allocation_exceeds_org_credit) without a credit or when the allocations
 * would exceed what is left of it; 1 when it takes effect. */
static int sim_project_set(Org *g, int p)
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
static int sim_adjust(Org *g, int64_t cents)
{
    if (!g->sim_credit || g->V + cents * 10000 < 0)
        return 0;
    g->V += cents * 10000;
    return 1;
}

/* ------------------------------------------------------------ options -- */

typedef struct {
    uint64_t norgs, nevents, seed;
    uint64_t months;        /* the stream's length in months, from 2026-01 */
    const char *outpath;    /* NULL or "-": stdout */
} Args;

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
static void parse_args(int argc, char **argv, Args *a)
{
    *a = (Args){.norgs = 10000, .nevents = 1000000, .seed = 1, .months = 3, .outpath = NULL};
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

/* One run of the generator.  Everything random comes from the single stream
 * `rs`, drawn in a fixed order by the steps below (onboarding, terms, event
 * times, then rendering, event by event): the order of the rng_* calls is
 * part of the output format, so moving one changes the bytes for every seed. */
typedef struct {
    Args a;
    uint64_t rs;            /* PRNG state */
    int64_t t0, tend;       /* the stream's window, 2026-01-01 .. + a.months months */
    Org *orgs;              /* a.norgs of them */
    uint64_t nticks;        /* clock ticks */
    uint64_t ndups;         /* exact re-sends: 1% of --events */
    uint64_t nusage;        /* usage events over all organisations */
    uint64_t nbase;         /* events before the re-sends */
    Ev *ev;                 /* the nbase base events, in time order */
    Out o;
    Stats st;
    /* rendering */
    uint64_t usage_id;      /* number of the last "u-N" id written */
    int32_t closed_upto;    /* last month index the simulation has closed */
    uint64_t dup_pool;      /* non-tick lines not yet written */
    uint64_t dup_need;      /* re-sends still to place among them */
} Gen;

/* Step 1: onboarding time, project count and adjust flag of every
 * organisation, and its activity weight eff[i] (heavy-tailed, scaled by the
 * share of the stream it is onboard for).  Sets *nsetup to the number of set
 * and adjust events this implies; returns the sum of the weights. */
static double draw_onboarding(Gen *gen, double *eff, uint64_t *nsetup)
{
    uint64_t *rs = &gen->rs;
    const int64_t t0 = gen->t0, tend = gen->tend;
    double effsum = 0;
    *nsetup = 0;
    for (uint64_t i = 0; i < gen->a.norgs; i++) {
        Org *g = &gen->orgs[i];
        if (rng_below(rs, 100) < 85)
            g->set_t = t0 + 6 * HOUR + (int64_t)rng_below(rs, 7 * DAY);
        else
            g->set_t = t0 + 7 * DAY + (int64_t)rng_below(rs, (uint64_t)(month_start(M0 + 2) - t0 - 8 * DAY));
        g->nproj = (uint8_t)(1 + rng_below(rs, MAXPROJ));
        g->has_adjust = rng_below(rs, 100) < 8 && g->set_t + DAY < tend - HOUR;
        *nsetup += 1u + g->nproj + g->has_adjust;
        double w = 1.0 / (0.01 + rng_unit(rs));           /* heavy-tailed activity */
        eff[i] = w * (double)(tend - g->set_t - 2 * HOUR) / (double)(tend - t0);
        effsum += eff[i];
    }
    return effsum;
}

/* Splits --events into ticks, re-sends, the nsetup set/adjust events and
 * usage.  Returns 2 (with a message) when that leaves fewer usage events than
 * organisations -- every organisation gets at least one -- else 0. */
static int plan_counts(Gen *gen, uint64_t nsetup)
{
    const uint64_t norgs = gen->a.norgs, nevents = gen->a.nevents;
    gen->nticks = gen->a.months;
    gen->ndups = nevents / 100;
    if (nevents < nsetup + gen->nticks + gen->ndups + norgs) {
        fprintf(stderr,
                "gen-events: --events %llu too small for %llu organisations (need at least %llu)\n",
                (unsigned long long)nevents, (unsigned long long)norgs,
                (unsigned long long)(nsetup + gen->nticks + gen->ndups + norgs));
        return 2;
    }
    gen->nusage = nevents - nsetup - gen->nticks - gen->ndups;
    gen->nbase = nevents - gen->ndups;
    return 0;
}

/* Step 2a: shares the usage events out in proportion to the weights; the
 * rounding remainder goes one by one to the first organisations. */
static void assign_usage(Gen *gen, const double *eff, double effsum)
{
    const uint64_t norgs = gen->a.norgs, nusage = gen->nusage;
    uint64_t assigned = 0;
    for (uint64_t i = 0; i < norgs; i++) {
        gen->orgs[i].n_usage = (uint32_t)((double)nusage * eff[i] / effsum);
        assigned += gen->orgs[i].n_usage;
    }
    for (uint64_t i = 0; assigned < nusage; i = (i + 1) % norgs, assigned++)
        gen->orgs[i].n_usage++;
}

/* Consumption logic (30% linear with an end_date; fixed, 60% of them with
 * expected_consumption, some with an end_date, 3% expiring inside the stream)
 * for an organisation expected to spend `spend` micro-units. */
static void draw_logic(Gen *gen, Org *g, double spend)
{
    uint64_t *rs = &gen->rs;
    Stats *st = &gen->st;
    double months = (double)(gen->tend - g->set_t) / (30.0 * DAY);
    int32_t sm = month_of(g->set_t);
    g->linear = rng_below(rs, 100) < 30;
    g->end_month = -1;
    if (g->linear) {
        static const int span[] = {3, 4, 6, 6, 9, 12, 12};
        g->end_month = sm + span[rng_below(rs, 7)];
        st->set_linear++;
    } else {
        if (rng_below(rs, 100) < 60) {
            g->expected = min64(g->value, cents_micro(spend / months * rng_range(rs, 0.2, 0.9)));
            st->set_fixed_exp++;
        }
        uint64_t r = rng_below(rs, 1000);
        if (r < 30)
            g->end_month = sm + 2;                 /* expires inside the stream */
        else if (r < 250)
            g->end_month = sm + 3 + (int32_t)rng_below(rs, 10);
    }
    if (g->end_month >= 0)
        st->set_end++;
}

/* The optional terms: grace (20%), apply_as_minimal_consumption false (10%),
 * reserve_allocations false (10%), a two-offering list (5%). */
static void draw_options(Gen *gen, Org *g)
{
    uint64_t *rs = &gen->rs;
    Stats *st = &gen->st;
    g->grace = 0;
    if (rng_below(rs, 100) < 20) {
        static const uint8_t gr[] = {10, 20, 25, 50};
        g->grace = gr[rng_below(rs, 4)];
        st->set_grace++;
    }
    g->apply_min = rng_below(rs, 100) >= 10;
    g->reserve = rng_below(rs, 100) >= 10;
    st->set_nomin += !g->apply_min;
    st->set_noreserve += !g->reserve;
    g->offer_mask = 0;
    if (rng_below(rs, 100) < 5) {
        unsigned a = (unsigned)rng_below(rs, NOFFER), b = (a + 1 + (unsigned)rng_below(rs, NOFFER - 1)) % NOFFER;
        g->offer_mask = (uint8_t)((1u << a) | (1u << b));
        st->set_offerings++;
    }
}

/* Projects: usage shares (the project without allocation gets about 15%),
 * main offering (an eligible one) and plan per project; allocations sized on
 * the project's share of `spend` (9% short of it), scaled down to 90% of the
 * organisation's credit at most; use_org_credit on about half. */
static void draw_projects(Gen *gen, Org *g, double spend)
{
    uint64_t *rs = &gen->rs;
    unsigned wsum = 0;
    for (int p = 0; p <= g->nproj; p++) {
        g->pshare[p] = (uint8_t)(1 + rng_below(rs, 10));
        wsum += g->pshare[p];
        unsigned m;
        do
            m = (unsigned)rng_below(rs, NOFFER);
        while (g->offer_mask && !(g->offer_mask & (1u << m)));
        g->pmain[p] = (uint8_t)m;
        g->pplan[p] = (uint8_t)rng_below(rs, NPLAN);
    }
    unsigned alloc_w = wsum - g->pshare[g->nproj];
    g->pshare[g->nproj] = (uint8_t)(alloc_w * 15 / 85 < 1 ? 1 : (alloc_w * 15 / 85 > 255 ? 255 : alloc_w * 15 / 85));
    wsum = alloc_w + g->pshare[g->nproj];
    double psum = 0;
    double pv[MAXPROJ];
    for (int p = 0; p < g->nproj; p++) {
        double kp = rng_below(rs, 100) < 9 ? rng_range(rs, 0.3, 0.9) : rng_range(rs, 1.2, 2.0);
        pv[p] = spend * g->pshare[p] / wsum * kp;
        psum += pv[p];
        g->puse[p] = rng_below(rs, 100) < 50;
        gen->st.proj_fallback += g->puse[p];
    }
    double cap = 0.9 * (double)g->value;
    for (int p = 0; p < g->nproj; p++)
        g->pval[p] = cents_micro(psum > cap ? pv[p] * cap / psum : pv[p]);
}

/* Step 2b: the terms of one organisation, sized on its usage volume: mean
 * usage cost, credit value (~9% of organisations get less credit than they
 * will use), then logic, options and projects. */
static void draw_org_terms(Gen *gen, Org *g)
{
    uint64_t *rs = &gen->rs;
    double u = rng_unit(rs);
    g->mean_cents = 20 + (uint32_t)(u * u * 5000.0);            /* 0.20 .. 50.20 */
    double spend = (double)g->n_usage * g->mean_cents * 10000.0; /* micro */
    double k = rng_below(rs, 1000) < 90 ? rng_range(rs, 0.25, 0.9) : rng_range(rs, 1.3, 3.0);
    g->value = cents_micro(spend * k + 100e6);
    draw_logic(gen, g, spend);
    draw_options(gen, g);
    draw_projects(gen, g, spend);
}

/* Appends a base event at ev[*ne].  seq is its index, so events at the same
 * time keep generation order through the sort.  Writes nothing past nbase
 * (build_events reports the miscount). */
static void push_ev(Gen *gen, uint64_t *ne, int64_t t, uint64_t org, int kind, int proj)
{
    if (*ne < gen->nbase)
        gen->ev[*ne] = (Ev){t, (uint32_t)*ne, (uint32_t)org, (uint8_t)kind, (uint8_t)proj};
    (*ne)++;
}

/* Organisation i's events: its set, project sets 10..20 minutes apart in the
 * hour after it, maybe an adjust (a day after the set at the earliest), and
 * its usage from two hours after the set, spread over projects by share. */
static void schedule_org(Gen *gen, uint64_t i, uint64_t *ne)
{
    uint64_t *rs = &gen->rs;
    const Org *g = &gen->orgs[i];
    push_ev(gen, ne, g->set_t, i, K_ORGSET, 0);
    for (int p = 0; p < g->nproj; p++) {
        int64_t t = g->set_t + 600 * (p + 1) + (int64_t)rng_below(rs, 600);
        push_ev(gen, ne, t, i, K_PROJSET, p);
    }
    if (g->has_adjust) {
        int64_t lo = g->set_t + DAY;
        int64_t t = lo + (int64_t)rng_below(rs, (uint64_t)(gen->tend - HOUR - lo));
        push_ev(gen, ne, t, i, K_ADJUST, 0);
    }
    unsigned wsum = 0;
    for (int p = 0; p <= g->nproj; p++)
        wsum += g->pshare[p];
    int64_t lo = g->set_t + 2 * HOUR;
    for (uint32_t k = 0; k < g->n_usage; k++) {
        int64_t t = lo + (int64_t)rng_below(rs, (uint64_t)(gen->tend - lo));
        unsigned r = (unsigned)rng_below(rs, wsum);
        int p = 0;
        while (r >= g->pshare[p])
            r -= g->pshare[p++];
        push_ev(gen, ne, t, i, K_USAGE, p);
    }
}

/* Step 3: the base events (everything but the re-sends) -- a tick at each
 * month start after the first, then every organisation's -- in time order.
 * Returns 1 (with a message) when out of memory or miscounted, else 0. */
static int build_events(Gen *gen)
{
    gen->ev = malloc(gen->nbase * sizeof *gen->ev);
    if (!gen->ev) {
        fputs("gen-events: out of memory\n", stderr);
        return 1;
    }
    uint64_t ne = 0;
    for (uint64_t m = 1; m <= gen->nticks; m++)
        push_ev(gen, &ne, month_start(M0 + (int32_t)m), 0, K_TICK, 0);
    for (uint64_t i = 0; i < gen->a.norgs; i++)
        schedule_org(gen, i, &ne);
    if (ne != gen->nbase) {
        fprintf(stderr, "gen-events: internal error: %llu base events, expected %llu\n",
                (unsigned long long)ne, (unsigned long long)gen->nbase);
        return 1;
    }
    qsort(gen->ev, gen->nbase, sizeof *gen->ev, ev_cmp);
    return 0;
}

/* ------------------------------------------------------------ rendering -- */

/* Opens --out (stdout when absent or "-") and the 8 MiB line buffer.
 * Returns 1 (with a message) on failure, else 0. */
static int open_output(Gen *gen)
{
    const char *path = gen->a.outpath;
    gen->o = (Out){.fd = 1, .cap = (size_t)8 << 20, .day = -1};
    if (path && strcmp(path, "-")) {
        gen->o.fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (gen->o.fd < 0) {
            fprintf(stderr, "gen-events: %s: %s\n", path, strerror(errno));
            return 1;
        }
    }
    gen->o.buf = malloc(gen->o.cap);
    if (!gen->o.buf) {
        fputs("gen-events: out of memory\n", stderr);
        return 1;
    }
    return 0;
}

/* A clock.tick line (after the common prefix).  Closes the simulated months
 * before the tick's month first: the tick moves every watermark. */
static void write_tick(Gen *gen, const Ev *e)
{
    Out *o = &gen->o;
    int32_t mi = month_of(e->t);
    for (int32_t m = gen->closed_upto + 1; m < mi; m++)
        sim_close(gen->orgs, (uint32_t)gen->a.norgs, m);
    gen->closed_upto = mi - 1;
    char b[11];
    int y, mo, d;
    civil_from_days(e->t / DAY, &y, &mo, &d);
    fmt_date(b, y, mo, d);
    PUTL(o, "tick-");
    put(o, b, 10);
    PUTL(o, "\",\"source\":\"clock\",\"type\":\"clock.tick\",\"time\":");
    put_time(o, e->t);
    PUTL(o, "}\n");
    gen->st.kind[K_TICK]++;
    gen->st.lines++;
}

/* "org-NNNNN", the organisation's id in subject and data. */
static void put_org(Out *o, uint32_t org)
{
    PUTL(o, "org-");
    put_u(o, org, 5);
}

/* The rest of the envelope of a non-tick event (id, source, type, time,
 * subject) and the start of its data, up to and including "org". */
static void write_head(Gen *gen, const Ev *e)
{
    Out *o = &gen->o;
    switch (e->kind) {
    case K_ORGSET:
        PUTL(o, "os-");
        put_u(o, e->org, 5);
        PUTL(o, "\",\"source\":\"staff/credits\",\"type\":\"org_credit.set\"");
        break;
    case K_PROJSET:
        PUTL(o, "ps-");
        put_u(o, e->org, 5);
        PUTL(o, "-p");
        put_u(o, (uint64_t)e->proj + 1, 1);
        PUTL(o, "\",\"source\":\"owners/credits\",\"type\":\"project_credit.set\"");
        break;
    case K_ADJUST:
        PUTL(o, "adj-");
        put_u(o, e->org, 5);
        PUTL(o, "\",\"source\":\"staff/credits\",\"type\":\"org_credit.adjust\"");
        break;
    default:
        PUTL(o, "u-");
        put_u(o, ++gen->usage_id, 1);
        PUTL(o, "\",\"source\":\"marketplace/usage\",\"type\":\"usage\"");
        break;
    }
    PUTL(o, ",\"time\":");
    put_time(o, e->t);
    PUTL(o, ",\"subject\":\"");
    put_org(o, e->org);
    PUTL(o, "\",\"data\":{\"org\":\"");
    put_org(o, e->org);
    o->buf[o->len++] = '"';
}

/* ,"offerings":["a","b"] in OFFERINGS order, for a non-empty mask. */
static void put_offerings(Out *o, uint8_t mask)
{
    PUTL(o, ",\"offerings\":[");
    int first = 1;
    for (int f = 0; f < NOFFER; f++) {
        if (!(mask & (1u << f)))
            continue;
        if (!first)
            o->buf[o->len++] = ',';
        first = 0;
        o->buf[o->len++] = '"';
        put_str(o, OFFERINGS[f]);
        o->buf[o->len++] = '"';
    }
    o->buf[o->len++] = ']';
}

/* org_credit.set data: the drawn terms, optional keys only when not default. */
static void write_org_set(Gen *gen, const Ev *e)
{
    Out *o = &gen->o;
    Org *g = &gen->orgs[e->org];
    PUTL(o, ",\"value\":");
    put_dec(o, g->value / 10000, 2);
    PUTL(o, ",\"consumption_logic\":");
    if (g->linear) {
        PUTL(o, "\"linear\"");
    } else {
        PUTL(o, "\"fixed\"");
        if (g->expected) {
            PUTL(o, ",\"expected_consumption\":");
            put_dec(o, g->expected / 10000, 2);
        }
    }
    if (g->end_month >= 0) {
        PUTL(o, ",\"end_date\":");
        put_month_date(o, g->end_month);
    }
    if (g->grace) {
        PUTL(o, ",\"grace_coefficient\":");
        put_u(o, g->grace, 1);
    }
    if (!g->apply_min)
        PUTL(o, ",\"apply_as_minimal_consumption\":false");
    if (!g->reserve)
        PUTL(o, ",\"reserve_allocations\":false");
    if (g->offer_mask)
        put_offerings(o, g->offer_mask);
    sim_org_set(g, e->t);
}

/* project_credit.set data: project, allocation, maybe use_org_credit. */
static void write_project_set(Gen *gen, const Ev *e)
{
    Out *o = &gen->o;
    Org *g = &gen->orgs[e->org];
    int p = e->proj;
    PUTL(o, ",\"project\":\"p");
    put_u(o, (uint64_t)p + 1, 1);
    PUTL(o, "\",\"value\":");
    put_dec(o, g->pval[p] / 10000, 2);
    if (g->puse[p])
        PUTL(o, ",\"use_org_credit\":true");
    if (!sim_project_set(g, p))
        gen->st.rej_alloc++;
}

/* org_credit.adjust data.  Staff top up (10..49% of the value); an
 * organisation with more than 1.00 left gets a claw-back (5..19% of what is
 * left) one time in four instead. */
static void write_adjust(Gen *gen, const Ev *e)
{
    uint64_t *rs = &gen->rs;
    Org *g = &gen->orgs[e->org];
    int64_t cents;
    if (g->V > 1000000 && rng_below(rs, 100) < 25)
        cents = -(int64_t)(1 + (g->V / 10000) * (int64_t)(5 + rng_below(rs, 15)) / 100);
    else
        cents = 1 + (g->value / 10000) * (int64_t)(10 + rng_below(rs, 40)) / 100;
    PUTL(&gen->o, ",\"delta\":");
    put_dec(&gen->o, cents, 2);
    if (!sim_adjust(g, cents))
        gen->st.rej_adjust++;
}

/* The priced part of a usage: its cost in whole cents around the
 * organisation's mean (0.5% zero), written 60% as "amount" (half of them with
 * unit "month"), else as quantity (1e-3) x unit_price (1e-4).  Returns the
 * cost in micro-units as the engine computes it: the product rounded half to
 * even to the micro-unit. */
static int64_t write_charge(Gen *gen, const Org *g)
{
    uint64_t *rs = &gen->rs;
    Out *o = &gen->o;
    int64_t cost;
    uint64_t cents = 0;
    if (rng_below(rs, 1000) >= 5)
        cents = (uint64_t)((double)g->mean_cents * rng_range(rs, 0.2, 1.8) + 0.5);
    if (rng_below(rs, 100) < 60) {
        if (rng_below(rs, 100) < 50)
            PUTL(o, ",\"unit\":\"month\"");
        PUTL(o, ",\"amount\":");
        put_dec(o, (int64_t)cents, 2);
        cost = (int64_t)cents * 10000;
        gen->st.usage_amount++;
    } else {
        int64_t qm = 1000 + (int64_t)rng_below(rs, 99000);      /* 1.000..99.999 */
        int64_t up = (int64_t)cents * 100000 / qm;                  /* 1e-4 units */
        PUTL(o, ",\"unit\":\"");
        put_str(o, QUNITS[rng_below(rs, NQUNIT)]);
        PUTL(o, "\",\"quantity\":");
        put_dec(o, qm, 3);
        PUTL(o, ",\"unit_price\":");
        put_dec(o, up, 4);
        cost = div_half_even(qm * up, 10);
        gen->st.usage_qty++;
    }
    return cost;
}

/* usage data: project, resource, offering (the project's main one, else a
 * random one -- 15% of the time, 5% under an offerings list), component,
 * plan, then the charge; simulates it and counts the estimated overage. */
static void write_usage(Gen *gen, const Ev *e)
{
    uint64_t *rs = &gen->rs;
    Out *o = &gen->o;
    Stats *st = &gen->st;
    Org *g = &gen->orgs[e->org];
    int p = e->proj;
    unsigned off = g->pmain[p];
    if (rng_below(rs, 100) < (g->offer_mask ? 5u : 15u))
        off = (unsigned)rng_below(rs, NOFFER);
    unsigned comp = (unsigned)rng_below(rs, NCOMP);
    PUTL(o, ",\"project\":\"p");
    put_u(o, (uint64_t)p + 1, 1);
    PUTL(o, "\",\"resource\":\"r-");
    put_u(o, e->org, 5);
    PUTL(o, "-");
    put_u(o, (uint64_t)p + 1, 1);
    PUTL(o, "-");
    put_u(o, rng_below(rs, 3), 1);
    PUTL(o, "\",\"offering\":\"");
    put_str(o, OFFERINGS[off]);
    PUTL(o, "\",\"component\":\"");
    put_str(o, COMPONENTS[comp]);
    PUTL(o, "\",\"plan\":\"");
    put_str(o, PLANS[g->pplan[p]]);
    o->buf[o->len++] = '"';
    int64_t cost = write_charge(gen, g);
    if (cost == 0)
        st->usage_zero++;
    int64_t over;
    int r = sim_usage(g, p, (int)off, e->t, cost, &over);
    if (r != R_NONE) {
        st->over[r]++;
        st->over_total++;
        st->over_micro += over;
    }
    st->covered_micro += cost - over;
}

/* A non-tick line (after the common prefix), by kind. */
static void write_event(Gen *gen, const Ev *e)
{
    write_head(gen, e);
    switch (e->kind) {
    case K_ORGSET:
        write_org_set(gen, e);
        break;
    case K_PROJSET:
        write_project_set(gen, e);
        break;
    case K_ADJUST:
        write_adjust(gen, e);
        break;
    default:
        write_usage(gen, e);
        break;
    }
    PUTL(&gen->o, "}}\n");
    gen->st.kind[e->kind]++;
    gen->st.lines++;
}

/* Selection sampling over the non-tick lines: the line just written (from
 * `start`) is re-sent right after itself with probability need/pool, which
 * places exactly ndups re-sends and keeps the time order non-decreasing. */
static void maybe_resend(Gen *gen, size_t start)
{
    Out *o = &gen->o;
    if (gen->dup_need && rng_below(&gen->rs, gen->dup_pool) < gen->dup_need) {
        size_t n1 = o->len - start;
        memcpy(o->buf + o->len, o->buf + start, n1);
        o->len += n1;
        gen->dup_need--;
        gen->st.dups++;
        gen->st.lines++;
    }
    gen->dup_pool--;
}

/* Step 4: renders the sorted events, running the simplified model alongside,
 * and places the re-sends.  The buffer is flushed whenever less than 4 KiB is
 * free: the put_* helpers do not check room, and a line and its re-send fit. */
static void render(Gen *gen)
{
    Out *o = &gen->o;
    gen->dup_pool = gen->nbase - gen->nticks;
    gen->dup_need = gen->ndups;
    gen->usage_id = 0;
    gen->closed_upto = M0 - 1;
    for (uint64_t n = 0; n < gen->nbase; n++) {
        const Ev *e = &gen->ev[n];
        if (o->cap - o->len < 4096)
            out_flush(o);
        size_t start = o->len;
        PUTL(o, "{\"specversion\":\"1.0\",\"id\":\"");
        if (e->kind == K_TICK) {
            write_tick(gen, e);
        } else {
            write_event(gen, e);
            maybe_resend(gen, start);
        }
    }
}

/* Flushes and closes the output (stdout stays open).  Returns 1 (with a
 * message) when the close fails -- a full disk can show only here. */
static int close_output(Gen *gen)
{
    out_flush(&gen->o);
    if (gen->o.fd == 1)
        return 0;
    int rc = close(gen->o.fd);
    gen->o.fd = -1;
    if (rc != 0) {
        fprintf(stderr, "gen-events: %s: %s\n", gen->a.outpath, strerror(errno));
        return 1;
    }
    return 0;
}

/* The per-type counts and the model's estimates, on stderr. */
static void print_summary(const Gen *gen)
{
    const Stats *st = &gen->st;
    uint64_t nu = st->kind[K_USAGE];
    int32_t me = M0 + (int32_t)gen->a.months;
    fprintf(stderr,
            "gen-events: %llu lines, %.1f MiB, %llu organisations, seed %llu, %s .. %04d-%02d-01\n",
            (unsigned long long)st->lines, (double)gen->o.bytes / 1048576.0,
            (unsigned long long)gen->a.norgs, (unsigned long long)gen->a.seed, "2026-01-01",
            (int)(me / 12), (int)(me % 12 + 1));
    fprintf(stderr, "  distinct events by type (re-sends counted under duplicates):\n");
    for (int k = K_ORGSET; k < K_N; k++)
        fprintf(stderr, "  %-20s %9llu\n", KNAME[k], (unsigned long long)st->kind[k]);
    fprintf(stderr, "  %-20s %9llu\n", KNAME[K_TICK], (unsigned long long)st->kind[K_TICK]);
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
    for (int r = 1; r < R_N; r++)
        fprintf(stderr, "%s %s %llu", r == 1 ? " (" : ",", RNAME[r], (unsigned long long)st->over[r]);
    fprintf(stderr, "); %.2f covered, %.2f overage\n", (double)st->covered_micro / 1e6,
            (double)st->over_micro / 1e6);
    fprintf(stderr, "  estimated rejects: %llu allocation_exceeds_org_credit, %llu insufficient_credit\n",
            (unsigned long long)st->rej_alloc, (unsigned long long)st->rej_adjust);
}

/* Steps 1..4 and the summary, in the order that fixes the PRNG stream.
 * Returns the exit status: 0, 1 (out of memory, I/O) or 2 (--events too
 * small).  Nothing is written, not even --out created, before step 4. */
static int generate(Gen *gen)
{
    gen->t0 = month_start(M0);
    gen->tend = month_start(M0 + (int32_t)gen->a.months);
    gen->rs = gen->a.seed ^ UINT64_C(0x6372656469746421); /* "credit!" */
    rng_next(&gen->rs);
    gen->orgs = calloc(gen->a.norgs, sizeof *gen->orgs);
    double *eff = calloc(gen->a.norgs, sizeof *eff);
    if (!gen->orgs || !eff) {
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
        draw_org_terms(gen, &gen->orgs[i]);
    if (build_events(gen) || open_output(gen))
        return 1;
    render(gen);
    if (close_output(gen))
        return 1;
    print_summary(gen);
    return 0;
}

int main(int argc, char **argv)
{
    Gen gen;
    memset(&gen, 0, sizeof gen);
    gen.o.fd = -1;
    parse_args(argc, argv, &gen.a);
    int rc = generate(&gen);
    if (gen.o.fd > 2)
        close(gen.o.fd);    /* only after a failure: close_output sets -1 */
    free(gen.o.buf);
    free(gen.ev);
    free(gen.orgs);
    return rc;
}
