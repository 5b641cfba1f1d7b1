/* gen_render.c -- gen-events' output buffer and the rendering of the base
 * events as CloudEvents JSON Lines (tools/gen_render.h). */
#include "tools/gen_render.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------- output -- */

/* put* and friends do not check room: the caller flushes beforehand (render
 * keeps 4 KiB free per line).  A write error exits 1: nothing can be done
 * with half a stream. */
static void out_flush(struct gr_out *o)
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

static inline void put(struct gr_out *o, const char *s, size_t n)
{
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}
#define PUTL(o, lit) put((o), (lit), sizeof(lit) - 1)

static inline void put_str(struct gr_out *o, const char *s) { put(o, s, strlen(s)); }

/* Unsigned decimal, zero-padded to at least `width` digits. */
static void put_u(struct gr_out *o, uint64_t v, int width)
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
static void put_dec(struct gr_out *o, int64_t v, int dec)
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
static void put_time(struct gr_out *o, int64_t t)
{
    int64_t day = t / GM_DAY, sec = t % GM_DAY;
    if (day != o->day) {
        int y, m, d;
        gm_civil_from_days(day, &y, &m, &d);
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

static void put_month_date(struct gr_out *o, int32_t mi)
{
    char b[11];
    fmt_date(b, mi / 12, mi % 12 + 1, 1);
    o->buf[o->len++] = '"';
    put(o, b, 10);
    o->buf[o->len++] = '"';
}

/* ---------------------------------------------------------- rendering -- */

/* One rendering: the output, the run being rendered (both borrowed), and
 * where the rendering is. */
struct rend {
    struct gr_out *o;
    struct gm_run *r;
    uint64_t usage_id;      /* number of the last "u-N" id written */
    int32_t closed_upto;    /* last month index the simulation has closed */
    uint64_t dup_pool;      /* non-tick lines not yet written */
    uint64_t dup_need;      /* re-sends still to place among them */
};

/* A clock.tick line (after the common prefix).  Closes the simulated months
 * before the tick's month first: the tick moves every watermark. */
static void write_tick(struct rend *rd, const struct gm_ev *e)
{
    struct gr_out *o = rd->o;
    int32_t mi = gm_month_of(e->t);
    for (int32_t m = rd->closed_upto + 1; m < mi; m++)
        gm_sim_close(rd->r->orgs, (uint32_t)rd->r->norgs, m);
    rd->closed_upto = mi - 1;
    char b[11];
    int y, mo, d;
    gm_civil_from_days(e->t / GM_DAY, &y, &mo, &d);
    fmt_date(b, y, mo, d);
    PUTL(o, "tick-");
    put(o, b, 10);
    PUTL(o, "\",\"source\":\"clock\",\"type\":\"clock.tick\",\"time\":");
    put_time(o, e->t);
    PUTL(o, "}\n");
    rd->r->st.kind[GM_K_TICK]++;
    rd->r->st.lines++;
}

/* "org-NNNNN", the organisation's id in subject and data. */
static void put_org(struct gr_out *o, uint32_t org)
{
    PUTL(o, "org-");
    put_u(o, org, 5);
}

/* The rest of the envelope of a non-tick event (id, source, type, time,
 * subject) and the start of its data, up to and including "org". */
static void write_head(struct rend *rd, const struct gm_ev *e)
{
    struct gr_out *o = rd->o;
    switch (e->kind) {
    case GM_K_ORGSET:
        PUTL(o, "os-");
        put_u(o, e->org, 5);
        PUTL(o, "\",\"source\":\"staff/credits\",\"type\":\"org_credit.set\"");
        break;
    case GM_K_PROJSET:
        PUTL(o, "ps-");
        put_u(o, e->org, 5);
        PUTL(o, "-p");
        put_u(o, (uint64_t)e->proj + 1, 1);
        PUTL(o, "\",\"source\":\"owners/credits\",\"type\":\"project_credit.set\"");
        break;
    case GM_K_ADJUST:
        PUTL(o, "adj-");
        put_u(o, e->org, 5);
        PUTL(o, "\",\"source\":\"staff/credits\",\"type\":\"org_credit.adjust\"");
        break;
    default:
        PUTL(o, "u-");
        put_u(o, ++rd->usage_id, 1);
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

/* ,"offerings":["a","b"] in gm_offering order, for a non-empty mask. */
static void put_offerings(struct gr_out *o, uint8_t mask)
{
    PUTL(o, ",\"offerings\":[");
    int first = 1;
    for (int f = 0; f < GM_NOFFER; f++) {
        if (!(mask & (1u << f)))
            continue;
        if (!first)
            o->buf[o->len++] = ',';
        first = 0;
        o->buf[o->len++] = '"';
        put_str(o, gm_offering[f]);
        o->buf[o->len++] = '"';
    }
    o->buf[o->len++] = ']';
}

/* org_credit.set data: the drawn terms, optional keys only when not default. */
static void write_org_set(struct rend *rd, const struct gm_ev *e)
{
    struct gr_out *o = rd->o;
    struct gm_org *g = &rd->r->orgs[e->org];
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
    gm_sim_org_set(g, e->t);
}

/* project_credit.set data: project, allocation, maybe use_org_credit. */
static void write_project_set(struct rend *rd, const struct gm_ev *e)
{
    struct gr_out *o = rd->o;
    struct gm_org *g = &rd->r->orgs[e->org];
    int p = e->proj;
    PUTL(o, ",\"project\":\"p");
    put_u(o, (uint64_t)p + 1, 1);
    PUTL(o, "\",\"value\":");
    put_dec(o, g->pval[p] / 10000, 2);
    if (g->puse[p])
        PUTL(o, ",\"use_org_credit\":true");
    if (!gm_sim_project_set(g, p))
        rd->r->st.rej_alloc++;
}

/* org_credit.adjust data.  Staff top up (10..49% of the value); an
 * organisation with more than 1.00 left gets a claw-back (5..19% of what is
 * left) one time in four instead. */
static void write_adjust(struct rend *rd, const struct gm_ev *e)
{
    uint64_t *rs = &rd->r->rs;
    struct gm_org *g = &rd->r->orgs[e->org];
    int64_t cents;
    if (g->V > 1000000 && gm_rng_below(rs, 100) < 25)
        cents = -(int64_t)(1 + (g->V / 10000) * (int64_t)(5 + gm_rng_below(rs, 15)) / 100);
    else
        cents = 1 + (g->value / 10000) * (int64_t)(10 + gm_rng_below(rs, 40)) / 100;
    PUTL(rd->o, ",\"delta\":");
    put_dec(rd->o, cents, 2);
    if (!gm_sim_adjust(g, cents))
        rd->r->st.rej_adjust++;
}

/* The priced part of a usage: its cost in whole cents around the
 * organisation's mean (0.5% zero), written 60% as "amount" (half of them with
 * unit "month"), else as quantity (1e-3) x unit_price (1e-4).  Returns the
 * cost in micro-units as the engine computes it: the product rounded half to
 * even to the micro-unit. */
static int64_t write_charge(struct rend *rd, const struct gm_org *g)
{
    uint64_t *rs = &rd->r->rs;
    struct gr_out *o = rd->o;
    int64_t cost;
    uint64_t cents = 0;
    if (gm_rng_below(rs, 1000) >= 5)
        cents = (uint64_t)((double)g->mean_cents * gm_rng_range(rs, 0.2, 1.8) + 0.5);
    if (gm_rng_below(rs, 100) < 60) {
        if (gm_rng_below(rs, 100) < 50)
            PUTL(o, ",\"unit\":\"month\"");
        PUTL(o, ",\"amount\":");
        put_dec(o, (int64_t)cents, 2);
        cost = (int64_t)cents * 10000;
        rd->r->st.usage_amount++;
    } else {
        int64_t qm = 1000 + (int64_t)gm_rng_below(rs, 99000);      /* 1.000..99.999 */
        int64_t up = (int64_t)cents * 100000 / qm;                  /* 1e-4 units */
        PUTL(o, ",\"unit\":\"");
        put_str(o, gm_qunit[gm_rng_below(rs, GM_NQUNIT)]);
        PUTL(o, "\",\"quantity\":");
        put_dec(o, qm, 3);
        PUTL(o, ",\"unit_price\":");
        put_dec(o, up, 4);
        cost = gm_div_half_even(qm * up, 10);
        rd->r->st.usage_qty++;
    }
    return cost;
}

/* usage data: project, resource, offering (the project's main one, else a
 * random one -- 15% of the time, 5% under an offerings list), component,
 * plan, then the charge; simulates it and counts the estimated overage. */
static void write_usage(struct rend *rd, const struct gm_ev *e)
{
    uint64_t *rs = &rd->r->rs;
    struct gr_out *o = rd->o;
    struct gm_stats *st = &rd->r->st;
    struct gm_org *g = &rd->r->orgs[e->org];
    int p = e->proj;
    unsigned off = g->pmain[p];
    if (gm_rng_below(rs, 100) < (g->offer_mask ? 5u : 15u))
        off = (unsigned)gm_rng_below(rs, GM_NOFFER);
    unsigned comp = (unsigned)gm_rng_below(rs, GM_NCOMP);
    PUTL(o, ",\"project\":\"p");
    put_u(o, (uint64_t)p + 1, 1);
    PUTL(o, "\",\"resource\":\"r-");
    put_u(o, e->org, 5);
    PUTL(o, "-");
    put_u(o, (uint64_t)p + 1, 1);
    PUTL(o, "-");
    put_u(o, gm_rng_below(rs, 3), 1);
    PUTL(o, "\",\"offering\":\"");
    put_str(o, gm_offering[off]);
    PUTL(o, "\",\"component\":\"");
    put_str(o, gm_component[comp]);
    PUTL(o, "\",\"plan\":\"");
    put_str(o, gm_plan[g->pplan[p]]);
    o->buf[o->len++] = '"';
    int64_t cost = write_charge(rd, g);
    if (cost == 0)
        st->usage_zero++;
    int64_t over;
    int r = gm_sim_usage(g, p, (int)off, e->t, cost, &over);
    if (r != GM_R_NONE) {
        st->over[r]++;
        st->over_total++;
        st->over_micro += over;
    }
    st->covered_micro += cost - over;
}

/* A non-tick line (after the common prefix), by kind. */
static void write_event(struct rend *rd, const struct gm_ev *e)
{
    write_head(rd, e);
    switch (e->kind) {
    case GM_K_ORGSET:
        write_org_set(rd, e);
        break;
    case GM_K_PROJSET:
        write_project_set(rd, e);
        break;
    case GM_K_ADJUST:
        write_adjust(rd, e);
        break;
    default:
        write_usage(rd, e);
        break;
    }
    PUTL(rd->o, "}}\n");
    rd->r->st.kind[e->kind]++;
    rd->r->st.lines++;
}

/* Selection sampling over the non-tick lines: the line just written (from
 * `start`) is re-sent right after itself with probability need/pool, which
 * places exactly ndups re-sends and keeps the time order non-decreasing. */
static void maybe_resend(struct rend *rd, size_t start)
{
    struct gr_out *o = rd->o;
    if (rd->dup_need && gm_rng_below(&rd->r->rs, rd->dup_pool) < rd->dup_need) {
        size_t n1 = o->len - start;
        memcpy(o->buf + o->len, o->buf + start, n1);
        o->len += n1;
        rd->dup_need--;
        rd->r->st.dups++;
        rd->r->st.lines++;
    }
    rd->dup_pool--;
}

/* Step 4: renders the sorted events, running the simplified model alongside,
 * and places the re-sends.  The buffer is flushed whenever less than 4 KiB is
 * free: the put_* helpers do not check room, and a line and its re-send fit. */
void gr_render(struct gr_out *o, struct gm_run *r)
{
    struct rend rend = {.o = o, .r = r, .usage_id = 0, .closed_upto = GM_M0 - 1,
                        .dup_pool = r->nbase - r->nticks, .dup_need = r->ndups};
    struct rend *rd = &rend;
    for (uint64_t n = 0; n < r->nbase; n++) {
        const struct gm_ev *e = &r->ev[n];
        if (o->cap - o->len < 4096)
            out_flush(o);
        size_t start = o->len;
        PUTL(o, "{\"specversion\":\"1.0\",\"id\":\"");
        if (e->kind == GM_K_TICK) {
            write_tick(rd, e);
        } else {
            write_event(rd, e);
            maybe_resend(rd, start);
        }
    }
}

/* ---------------------------------------------------------- open/close -- */

int gr_open(struct gr_out *o, const char *path)
{
    *o = (struct gr_out){.fd = 1, .cap = (size_t)8 << 20, .day = -1};
    if (path && strcmp(path, "-")) {
        o->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o->fd < 0) {
            fprintf(stderr, "gen-events: %s: %s\n", path, strerror(errno));
            return 1;
        }
    }
    o->buf = malloc(o->cap);
    if (!o->buf) {
        fputs("gen-events: out of memory\n", stderr);
        return 1;
    }
    return 0;
}

int gr_close(struct gr_out *o, const char *path)
{
    out_flush(o);
    if (o->fd == 1)
        return 0;
    int rc = close(o->fd);
    o->fd = -1;
    if (rc != 0) {
        fprintf(stderr, "gen-events: %s: %s\n", path, strerror(errno));
        return 1;
    }
    return 0;
}

void gr_free(struct gr_out *o)
{
    if (o->fd > 2)
        close(o->fd);    /* only after a failure: gr_close sets -1 */
    o->fd = -1;
    free(o->buf);
    o->buf = NULL;
}
