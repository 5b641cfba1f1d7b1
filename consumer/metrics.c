/* metrics.c -- see metrics.h.
 *
 * All values live in one struct mstate (fixed size) plus the per-partition
 * lag array, both under the mutex.  Readers copy them under the mutex and
 * format outside it, so a scrape holds the lock for a memcpy, and the
 * pipeline never waits on a slow HTTP client. */
#include "consumer/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STR_MAX 256   /* label values kept (topic names are <= 249 bytes) */
#define HIST_MAXB 20  /* finite buckets of a histogram at most */

/* Bucket bounds (seconds).  A batch commit is an LMDB write txn with an
 * fsync: sub-millisecond to seconds.  Event to delivery spans the consumer's
 * batching, the commit and a produce round trip (acks=all), up to minutes
 * when creditd catches up on a backlog. */
static const double commit_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                       0.1,    0.25,  0.5,    1,     2.5,  5,    10};
static const double delivery_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                         2.5,   5,    10,    30,   60,  120,  300, 600};
#define NB(a) (sizeof(a) / sizeof((a)[0]))
_Static_assert(NB(commit_bounds) <= HIST_MAXB && NB(delivery_bounds) <= HIST_MAXB, "HIST_MAXB");

struct hist {
    uint64_t bucket[HIST_MAXB + 1];  /* [i]: in (bounds[i-1], bounds[i]]; [nb]: above the last */
    double sum;
    uint64_t count;
};

/* Everything a reader copies. */
struct mstate {
    char version[STR_MAX], librdkafka[STR_MAX], topics[ENG_OUT_NKIND][STR_MAX];
    int64_t outbox_max_pending;      /* 0 until metrics_set_info */
    int64_t ready_max_lag;
    int store_open;
    struct metrics_batch total;      /* since start */
    uint64_t delivered[ENG_OUT_NKIND], untracked;
    uint64_t outbox;
    int paused;
    double last_commit;              /* 0: none yet */
    int has_store;
    struct metrics_store store;
    struct hist commit, delivery;
    /* group mode (group.c) */
    uint64_t rebalances[2];          /* assigned, revoked */
    uint64_t restored, standby;      /* changelog records applied */
};

struct metrics {
    pthread_mutex_t mu;
    struct mstate s;
    size_t nparts;
    int32_t *parts;                  /* [nparts] */
    int64_t *lag;                    /* [nparts], -1 unknown */
};

static const char *const kind_names[ENG_OUT_NKIND] = {"overage", "ledger", "rejected", "alert"};

int metrics_new(struct metrics **out, char *err, size_t errlen) {
    struct metrics *m = calloc(1, sizeof(*m));
    if (!m || pthread_mutex_init(&m->mu, NULL)) {
        free(m);
        snprintf(err, errlen, "out of memory (metrics)");
        return -1;
    }
    m->s.ready_max_lag = INT64_MAX;
    *out = m;
    return 0;
}

void metrics_free(struct metrics *m) {
    if (!m) return;
    pthread_mutex_destroy(&m->mu);
    free(m->parts);
    free(m->lag);
    free(m);
}

/* ---- writers ---------------------------------------------------------------- */

static void copy_str(char *dst, const char *src) { snprintf(dst, STR_MAX, "%s", src ? src : ""); }

void metrics_set_info(struct metrics *m, const struct metrics_info *info) {
    pthread_mutex_lock(&m->mu);
    copy_str(m->s.version, info->version);
    copy_str(m->s.librdkafka, info->librdkafka);
    for (int k = 0; k < ENG_OUT_NKIND; k++) copy_str(m->s.topics[k], info->topics[k]);
    m->s.outbox_max_pending = info->outbox_max_pending;
    pthread_mutex_unlock(&m->mu);
}

void metrics_set_ready_max_lag(struct metrics *m, int64_t max_lag) {
    pthread_mutex_lock(&m->mu);
    m->s.ready_max_lag = max_lag;
    pthread_mutex_unlock(&m->mu);
}

int metrics_set_partitions(struct metrics *m, const int32_t *parts, size_t n, char *err,
                           size_t errlen) {
    int32_t *p = malloc((n ? n : 1) * sizeof(*p));
    int64_t *lag = malloc((n ? n : 1) * sizeof(*lag));
    if (!p || !lag) {
        free(p);
        free(lag);
        snprintf(err, errlen, "out of memory (metrics: %zu partitions)", n);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        p[i] = parts[i];
        lag[i] = -1;
    }
    pthread_mutex_lock(&m->mu);
    free(m->parts);
    free(m->lag);
    m->parts = p;
    m->lag = lag;
    m->nparts = n;
    pthread_mutex_unlock(&m->mu);
    return 0;
}

void metrics_add_rebalance(struct metrics *m, const char *kind) {
    pthread_mutex_lock(&m->mu);
    m->s.rebalances[strcmp(kind, "assigned") == 0 ? 0 : 1]++;
    pthread_mutex_unlock(&m->mu);
}

void metrics_add_restored(struct metrics *m, uint64_t records) {
    pthread_mutex_lock(&m->mu);
    m->s.restored += records;
    pthread_mutex_unlock(&m->mu);
}

void metrics_add_standby(struct metrics *m, uint64_t records) {
    pthread_mutex_lock(&m->mu);
    m->s.standby += records;
    pthread_mutex_unlock(&m->mu);
}

void metrics_set_store_open(struct metrics *m, int open) {
    pthread_mutex_lock(&m->mu);
    m->s.store_open = open;
    pthread_mutex_unlock(&m->mu);
}

void metrics_batch_reset(struct metrics_batch *b) { memset(b, 0, sizeof(*b)); }

void metrics_batch_add(struct metrics_batch *b, const struct engine_result *res) {
    int t = res->type > 0 && res->type < ENG_T_COUNT ? res->type : ENG_T_UNKNOWN;
    int slot = res->outcome == ENG_APPLIED ? 0 : res->outcome == ENG_DUPLICATE ? 1 : -1;
    if (slot < 0) slot = 2 + (res->reason >= 0 && res->reason < ENG_R_COUNT ? res->reason : 0);
    b->events[t][slot]++;
    for (int k = 0; k < ENG_OUT_NKIND; k++) b->outputs[k] += res->outputs[k];
    for (int k = 0; k < ENG_ALERT_NKIND; k++) b->alerts[k] += res->alerts[k];
}

static void hist_observe(struct hist *h, const double *bounds, size_t nb, double v) {
    size_t i = 0;
    if (!(v > 0)) v = 0;  /* negative (clock skew) and NaN count as 0 */
    while (i < nb && v > bounds[i]) i++;
    h->bucket[i]++;
    h->sum += v;
    h->count++;
}

void metrics_publish_commit(struct metrics *m, const struct metrics_batch *b, double txn_seconds,
                            double now_unix) {
    pthread_mutex_lock(&m->mu);
    struct mstate *s = &m->s;
    s->last_commit = now_unix;
    if (b) {
        for (int t = 0; t < ENG_T_COUNT; t++)
            for (int k = 0; k < METRICS_NSLOTS; k++) {
                uint64_t v = b->events[t][k];
                s->total.events[t][k] += v;
                /* the store's counters move with the same commit */
                if (k == 0) s->store.applied += v;
                else if (k == 1) s->store.duplicates += v;
                else s->store.rejected += v;
            }
        for (int k = 0; k < ENG_OUT_NKIND; k++) s->total.outputs[k] += b->outputs[k];
        for (int k = 0; k < ENG_ALERT_NKIND; k++) s->total.alerts[k] += b->alerts[k];
        hist_observe(&s->commit, commit_bounds, NB(commit_bounds), txn_seconds);
    }
    pthread_mutex_unlock(&m->mu);
}

void metrics_publish_gauges(struct metrics *m, const struct metrics_gauges *g) {
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; g->lag && i < m->nparts; i++) m->lag[i] = g->lag[i] < 0 ? -1 : g->lag[i];
    m->s.outbox = g->outbox;
    m->s.paused = g->paused;
    memcpy(m->s.delivered, g->delivered, sizeof(m->s.delivered));
    m->s.untracked = g->untracked;
    pthread_mutex_unlock(&m->mu);
}

void metrics_publish_store(struct metrics *m, const struct metrics_store *st) {
    pthread_mutex_lock(&m->mu);
    m->s.store = *st;
    m->s.has_store = 1;
    pthread_mutex_unlock(&m->mu);
}

void metrics_observe_delivery(struct metrics *m, const double *seconds, size_t n) {
    if (!n) return;
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < n; i++)
        hist_observe(&m->s.delivery, delivery_bounds, NB(delivery_bounds), seconds[i]);
    pthread_mutex_unlock(&m->mu);
}

/* ---- readers ------------------------------------------------------------------ */

/* A consistent copy: *s, and the partitions and their lag in *parts / *lag
 * (malloc'd, caller frees).  0, or -1 (out of memory). */
static int snapshot(struct metrics *m, struct mstate *s, int32_t **parts, int64_t **lag, size_t *n) {
    pthread_mutex_lock(&m->mu);
    size_t k = m->nparts;
    *parts = malloc((k ? k : 1) * sizeof(**parts));
    *lag = malloc((k ? k : 1) * sizeof(**lag));
    if (*parts && *lag) {
        *s = m->s;
        if (k) memcpy(*parts, m->parts, k * sizeof(**parts));
        if (k) memcpy(*lag, m->lag, k * sizeof(**lag));
        *n = k;
    }
    pthread_mutex_unlock(&m->mu);
    if (*parts && *lag) return 0;
    free(*parts);
    free(*lag);
    return -1;
}

/* The readiness rule of metrics.h on a copy. */
static int judge(const struct mstate *s, const int32_t *parts, const int64_t *lag, size_t n,
                 int64_t max_lag, char *why, size_t whylen) {
    int64_t total = 0;
    if (!s->store_open) {
        snprintf(why, whylen, "store not open");
        return 0;
    }
    if (n == 0) {
        snprintf(why, whylen, "no input partitions assigned");
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (lag[i] < 0) {
            snprintf(why, whylen, "consumer lag of input partition %d not known yet", (int)parts[i]);
            return 0;
        }
        total = lag[i] > INT64_MAX - total ? INT64_MAX : total + lag[i];
    }
    if (total >= max_lag) {
        snprintf(why, whylen, "consumer lag %lld >= http.ready_max_lag %lld", (long long)total,
                 (long long)max_lag);
        return 0;
    }
    if (s->outbox >= (uint64_t)s->outbox_max_pending) {
        snprintf(why, whylen, "outbox %llu entries >= outbox.max_pending %lld",
                 (unsigned long long)s->outbox, (long long)s->outbox_max_pending);
        return 0;
    }
    snprintf(why, whylen, "ready");
    return 1;
}

int metrics_ready(struct metrics *m, int64_t max_lag, char *why, size_t whylen) {
    struct mstate *s = malloc(sizeof(*s));
    int32_t *parts;
    int64_t *lag;
    size_t n;
    if (!s || snapshot(m, s, &parts, &lag, &n)) {
        free(s);
        snprintf(why, whylen, "out of memory");
        return 0;
    }
    int ok = judge(s, parts, lag, n, max_lag, why, whylen);
    free(parts);
    free(lag);
    free(s);
    return ok;
}

/* ---- the text format ------------------------------------------------------------- */

static void head(FILE *f, const char *name, const char *type, const char *help) {
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value with \, " and newline escaped (format 0.0.4). */
static void esc(FILE *f, const char *v) {
    for (; *v; v++) {
        if (*v == '\\') fputs("\\\\", f);
        else if (*v == '"') fputs("\\\"", f);
        else if (*v == '\n') fputs("\\n", f);
        else fputc(*v, f);
    }
}

static void num(FILE *f, double v) {
    if (isnan(v)) fputs("NaN", f);
    else if (isinf(v)) fputs(v > 0 ? "+Inf" : "-Inf", f);
    else fprintf(f, "%.15g", v);
}

static void gauge(FILE *f, const char *name, const char *help, double v) {
    head(f, name, "gauge", help);
    fprintf(f, "%s ", name);
    num(f, v);
    fputc('\n', f);
}

static void render_info(FILE *f, const struct mstate *s, int ready) {
    gauge(f, "creditd_up", "1 while creditd runs and serves its metrics.", 1);
    head(f, "creditd_build_info", "gauge", "Always 1; the labels name the build.");
    fputs("creditd_build_info{version=\"", f);
    esc(f, s->version);
    fputs("\",librdkafka=\"", f);
    esc(f, s->librdkafka);
    fputs("\"} 1\n", f);
    gauge(f, "creditd_ready", "1 when GET /readyz answers 200 (store open, partitions assigned, "
          "lag below http.ready_max_lag, outbox below outbox.max_pending), else 0.", ready);
    gauge(f, "creditd_store_open", "1 while the LMDB store is open.", s->store_open);
    gauge(f, "creditd_input_paused", "1 while input is paused because the outbox is above "
          "outbox.max_pending.", s->paused);
    head(f, "creditd_rebalances_total", "counter", "Group mode: rebalance callbacks since start, "
         "by kind (assigned, revoked; lost partitions count as revoked).");
    fprintf(f, "creditd_rebalances_total{kind=\"assigned\"} %llu\n", (unsigned long long)s->rebalances[0]);
    fprintf(f, "creditd_rebalances_total{kind=\"revoked\"} %llu\n", (unsigned long long)s->rebalances[1]);
    head(f, "creditd_changelog_records_total", "counter", "Group mode: changelog records applied to "
         "the local store since start, by use (restore: on assignment; standby: kept warm).");
    fprintf(f, "creditd_changelog_records_total{use=\"restore\"} %llu\n", (unsigned long long)s->restored);
    fprintf(f, "creditd_changelog_records_total{use=\"standby\"} %llu\n", (unsigned long long)s->standby);
}

static void render_events(FILE *f, const struct mstate *s) {
    head(f, "creditd_events_total", "counter", "Input messages committed since start, by CloudEvents "
         "type (unknown: not ours or unreadable), outcome and reject reason.");
    for (int t = 0; t < ENG_T_COUNT; t++)
        for (int k = 0; k < METRICS_NSLOTS; k++) {
            uint64_t v = s->total.events[t][k];
            if (!v) continue;
            fputs("creditd_events_total{type=\"", f);
            esc(f, event_type_name(t));
            fputs(k == 0 ? "\",outcome=\"applied\"" : k == 1 ? "\",outcome=\"duplicate\""
                                                             : "\",outcome=\"rejected\",reason=\"", f);
            if (k >= 2) {
                esc(f, event_reason_name(k - 2));
                fputc('"', f);
            }
            fprintf(f, "} %llu\n", (unsigned long long)v);
        }
    if (!s->has_store) return;
    head(f, "creditd_store_events", "gauge", "Input messages the store has counted since it was "
         "created (persistent across restarts), by outcome.");
    fprintf(f, "creditd_store_events{outcome=\"applied\"} %llu\n"
            "creditd_store_events{outcome=\"duplicate\"} %llu\n"
            "creditd_store_events{outcome=\"rejected\"} %llu\n",
            (unsigned long long)s->store.applied, (unsigned long long)s->store.duplicates,
            (unsigned long long)s->store.rejected);
}

static void by_topic(FILE *f, const struct mstate *s, const char *name, const uint64_t *v) {
    for (int k = 0; k < ENG_OUT_NKIND; k++) {
        fprintf(f, "%s{topic=\"", name);
        esc(f, s->topics[k]);
        fprintf(f, "\",kind=\"%s\"} %llu\n", kind_names[k], (unsigned long long)v[k]);
    }
}

static void render_outputs(FILE *f, const struct mstate *s) {
    head(f, "creditd_outputs_total", "counter",
         "Outputs committed into the outbox since start, by topic and kind.");
    by_topic(f, s, "creditd_outputs_total", s->total.outputs);
    head(f, "creditd_outputs_delivered_total", "counter",
         "Outputs confirmed by a delivery report since start, by topic and kind.");
    by_topic(f, s, "creditd_outputs_delivered_total", s->delivered);
    head(f, "creditd_alerts_total", "counter", "credit.alert outputs committed since start, by kind.");
    for (int k = 0; k < ENG_ALERT_NKIND; k++)
        fprintf(f, "creditd_alerts_total{kind=\"%s\"} %llu\n", engine_alert_name(k),
                (unsigned long long)s->total.alerts[k]);
    gauge(f, "creditd_outbox_entries", "Outputs in the outbox, not yet delivered and confirmed.",
          (double)s->outbox);
    gauge(f, "creditd_outbox_max_pending", "outbox.max_pending: input pauses above it.",
          (double)s->outbox_max_pending);
}

static void render_input(FILE *f, const struct mstate *s, const int32_t *parts,
                         const int64_t *lag, size_t n) {
    gauge(f, "creditd_partitions_assigned", "Input partitions assigned to this creditd.", (double)n);
    head(f, "creditd_consumer_lag", "gauge", "Messages between the offset the store committed and "
         "the partition's high watermark last seen, by input partition (absent while unknown).");
    for (size_t i = 0; i < n; i++)
        if (lag[i] >= 0)
            fprintf(f, "creditd_consumer_lag{partition=\"%d\"} %lld\n", (int)parts[i], (long long)lag[i]);
    gauge(f, "creditd_last_commit_timestamp_seconds",
          "Wall-clock time of the last store commit (0: none since start).", s->last_commit);
    if (!s->has_store) return;
    gauge(f, "creditd_store_used_bytes", "Bytes of the LMDB map in use (pages up to the last "
          "used one, free pages included).", (double)s->store.used_bytes);
    gauge(f, "creditd_store_map_bytes", "Size of the LMDB map (grows when full).",
          (double)s->store.map_bytes);
    gauge(f, "creditd_store_file_bytes", "Disk blocks of the store's data file, in bytes.",
          (double)s->store.file_bytes);
    gauge(f, "creditd_store_remembered_keys", "Idempotency keys the store remembers (dedupe "
          "entries).", (double)s->store.remembered_keys);
}

static void render_hist(FILE *f, const char *name, const char *help, const struct hist *h,
                        const double *bounds, size_t nb) {
    uint64_t cum = 0;
    head(f, name, "histogram", help);
    for (size_t i = 0; i < nb; i++) {
        cum += h->bucket[i];
        fprintf(f, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i], (unsigned long long)cum);
    }
    fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum ", name, (unsigned long long)h->count, name);
    num(f, h->sum);
    fprintf(f, "\n%s_count %llu\n", name, (unsigned long long)h->count);
}

static void render_all(FILE *f, const struct mstate *s, const int32_t *parts, const int64_t *lag,
                       size_t n) {
    char why[256];
    render_info(f, s, judge(s, parts, lag, n, s->ready_max_lag, why, sizeof(why)));
    render_events(f, s);
    render_outputs(f, s);
    render_input(f, s, parts, lag, n);
    render_hist(f, "creditd_batch_commit_seconds", "Duration of a batch's store transaction, from "
                "its begin to the end of its commit (engine work and fsync included, map-full "
                "retries too).", &s->commit, commit_bounds, NB(commit_bounds));
    render_hist(f, "creditd_event_to_delivery_seconds", "From an input message's Kafka timestamp "
                "to creditd's receipt of the delivery report of the last output it caused.",
                &s->delivery, delivery_bounds, NB(delivery_bounds));
    head(f, "creditd_event_to_delivery_untracked_total", "counter",
         "Messages with outputs left out of creditd_event_to_delivery_seconds (no Kafka "
         "timestamp, or the tracking bound was reached).");
    fprintf(f, "creditd_event_to_delivery_untracked_total %llu\n", (unsigned long long)s->untracked);
}

int metrics_render(struct metrics *m, char **out, size_t *len) {
    struct mstate *s = malloc(sizeof(*s));
    int32_t *parts = NULL;
    int64_t *lag = NULL;
    size_t n = 0;
    char *buf = NULL;
    size_t blen = 0;
    FILE *f = NULL;
    int rc = -1;
    if (s && snapshot(m, s, &parts, &lag, &n) == 0) {
        f = open_memstream(&buf, &blen);
        if (f) {
            render_all(f, s, parts, lag, n);
            rc = ferror(f) ? -1 : 0;
            if (fclose(f)) rc = -1;
        }
        free(parts);
        free(lag);
    }
    free(s);
    if (rc) {
        free(buf);
        return -1;
    }
    *out = buf;
    *len = blen;
    return 0;
}
