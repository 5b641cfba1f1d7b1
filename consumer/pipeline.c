/* pipeline.c -- see pipeline.h. */
#include "consumer/pipeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "consumer/consumer.h"
#include "consumer/http.h"
#include "consumer/kclient.h"
#include "consumer/latency.h"
#include "consumer/log.h"
#include "consumer/metrics.h"
#include "consumer/mock.h"
#include "consumer/relay.h"
#include "engine/engine.h"
#include "store/store.h"

#define ERRLEN 1024
#define PUBLISH_REFRESH_MS 5000   /* re-send every stored offset to the group this often */
#define DUMP_BYTES 64             /* of a message that made the engine fail */
#define PATH_MAX_TEST 4000        /* CREDITD_TEST_METRICS_FILE bytes at most */
#define STORE_STATS_MS 5000       /* store figures for the metrics this often (store_stats) */
#define LAT_CHUNK 256             /* delivery latencies published per call */
#ifndef CREDITD_VERSION
#define CREDITD_VERSION "dev"     /* creditd_build_info{version} */
#endif

/* start() passes on the stop of a Kafka wait (KCLIENT_STOPPED) next to -1
 * from store calls: the codes must not meet. */
_Static_assert(KCLIENT_STOPPED != STORE_OK && KCLIENT_STOPPED != STORE_NOTFOUND &&
                   KCLIENT_STOPPED != STORE_EMAPFULL && KCLIENT_STOPPED != STORE_EMISMATCH &&
                   KCLIENT_STOPPED != STORE_ERR,
               "KCLIENT_STOPPED must differ from the STORE_* codes");

struct pipeline {
    const struct config *c;
    volatile sig_atomic_t *stop;
    struct mock *mock;
    const char *bootstrap;        /* embedded broker's, or NULL (kafka.bootstrap.servers) */
    struct store *store;
    struct engine *eng;
    struct consumer *in;
    struct relay *relay;
    struct metrics *metrics;      /* published for the HTTP endpoints (metrics.h) */
    struct http *http;            /* the HTTP endpoint (http.listen), or NULL */
    struct metrics_batch mb;      /* this batch's counts: published once it committed */
    struct latency *lat;          /* event-to-delivery tracking (latency.h) */
    struct parseq *pq;            /* the batch's messages parsed ahead (parseq.h) */
    int64_t *lag;                 /* [nparts]: scratch for the lag gauges */
    int64_t store_stats_ms;       /* last store_stats for the metrics */
    int committed;                /* a commit happened in this step */
    rd_kafka_message_t **batch;   /* [batch.max_messages] */
    size_t n;
    int32_t *parts;               /* assigned input partitions */
    size_t nparts;
    int64_t *bnext;               /* [partition count]: next offset after this batch, or -1 */
    uint64_t outbox;              /* entries in the store's outbox after the last commit */
#ifdef CREDITD_TEST_HOOKS
    const char *fail_on;          /* CREDITD_TEST_FAIL_ON (test builds only), or NULL */
    const char *metrics_file;     /* CREDITD_TEST_METRICS_FILE (test builds only), or NULL */
    int64_t ready_max_lag;        /* CREDITD_TEST_READY_MAX_LAG, for metrics_file */
    int64_t metrics_file_ms;
#endif
    int64_t published_ms;         /* last full publish of the group offsets (0: not yet) */
    int64_t stop_deadline;        /* after a stop request: shutdown.flush_timeout_ms from then */
    int halted;                   /* the crash-loop guard stopped the pipeline */
    struct {                      /* since the last stats line */
        int64_t at_ms;
        uint64_t events, batches;
    } st;
    char err[ERRLEN];
};

static int refresh_outbox(struct pipeline *p) {
    return store_outbox_count(p->store, &p->outbox, p->err, sizeof(p->err)) ? -1 : 0;
}

int pipeline_pin(struct store *s, const struct config *c, const char *name, const char *want,
                 const char *what, char *err, size_t errlen) {
    char have[256];
    int rc = store_meta_get(s, name, have, sizeof(have), err, errlen);
    if (rc == STORE_NOTFOUND) return store_meta_put(s, name, want, err, errlen) ? -1 : 0;
    if (rc) return -1;
    if (strcmp(have, want) == 0) return 0;
    snprintf(err, errlen, "store %.300s was built from %s %.255s, but now %s is %.255s: refusing to start "
             "(offsets and org partitions would not match; use a fresh --db to start over)",
             c->store_path, what, have, what, want);
    return -1;
}

static int meta_pin(struct pipeline *p, const char *name, const char *want, const char *what,
                    char *err, size_t errlen) {
    return pipeline_pin(p->store, p->c, name, want, what, err, errlen);
}

static int startup_meta(struct pipeline *p, int *fresh, char *err, size_t errlen) {
    char buf[256], np[16];
    int rc = store_meta_get(p->store, "kafka.cluster_id", buf, sizeof(buf), err, errlen);
    if (rc != 0 && rc != STORE_NOTFOUND) return -1;
    *fresh = rc == STORE_NOTFOUND;
    snprintf(np, sizeof(np), "%d", (int)consumer_partition_count(p->in));
    if (meta_pin(p, "kafka.cluster_id", consumer_cluster_id(p->in), "Kafka cluster id", err, errlen) ||
        meta_pin(p, "input.topic", p->c->topic_input, "input topic", err, errlen) ||
        meta_pin(p, "input.partitions", np, "the input topic's partition count", err, errlen))
        return -1;
    return 0;
}

/* The partitions to assign: input.partitions, or all of them. */
static int choose_partitions(struct pipeline *p) {
    int32_t np = consumer_partition_count(p->in);
    size_t n = p->c->input_npartitions ? p->c->input_npartitions : (size_t)np;
    p->parts = malloc(n * sizeof(*p->parts));
    p->bnext = malloc((size_t)np * sizeof(*p->bnext));
    if (!p->parts || !p->bnext) {
        snprintf(p->err, sizeof(p->err), "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        p->parts[i] = p->c->input_npartitions ? p->c->input_partitions[i] : (int32_t)i;
    for (int32_t i = 0; i < np; i++) p->bnext[i] = -1;
    p->nparts = n;
    return 0;
}

/* The start-up transaction: meta checks, relay state, stored offsets. */
static int startup_txn(struct pipeline *p, int64_t *next) {
    char *err = p->err;
    size_t errlen = sizeof(p->err);
    for (;;) {
        int fresh = 0, rc = store_begin(p->store, err, errlen);
        if (rc) return -1;
        rc = startup_meta(p, &fresh, err, errlen);
        if (rc == 0) rc = relay_prepare(p->relay, p->store, fresh, err, errlen);
        for (size_t i = 0; rc == 0 && i < p->nparts; i++) {
            rc = store_offset_get(p->store, p->c->topic_input, p->parts[i], &next[i], err, errlen);
            if (rc == STORE_NOTFOUND) { next[i] = CONSUMER_NEVER; rc = 0; }
        }
        if (rc == 0) rc = store_commit(p->store, err, errlen);
        else if (store_map_full(p->store)) { store_abort(p->store); rc = STORE_EMAPFULL; }
        else store_abort(p->store);
        if (rc == STORE_EMAPFULL) continue;
        if (rc == 0 && fresh)
            log_info(NULL, "new store %s for cluster %s, topic %s (%d partitions)",
                    p->c->store_path, consumer_cluster_id(p->in), p->c->topic_input,
                    (int)consumer_partition_count(p->in));
        return rc ? -1 : 0;
    }
}

/* ---- metrics (metrics.h): this thread is their only writer ---------------- */

double pipeline_clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The facts fixed for the run, and the delivery-latency ring (its bound:
 * latency.h). */
static int metrics_start(struct pipeline *p) {
    const struct config *c = p->c;
    struct metrics_info mi = {CREDITD_VERSION, rd_kafka_version_str(),
                              {c->topic_overage, c->topic_ledger, c->topic_rejected, c->topic_alerts},
                              c->outbox_max_pending};
    _Static_assert(ENG_OUT_OVERAGE == 0 && ENG_OUT_LEDGER == 1 && ENG_OUT_REJECTED == 2 &&
                       ENG_OUT_ALERT == 3, "metrics_info.topics order");
    metrics_set_info(p->metrics, &mi);
    return latency_new(&p->lat, (size_t)(c->outbox_max_pending + c->batch_max_messages), p->err,
                       sizeof(p->err));
}

/* After consumer_assign: the partitions whose lag is published. */
static int metrics_assigned(struct pipeline *p) {
    p->lag = malloc((p->nparts ? p->nparts : 1) * sizeof(*p->lag));
    if (!p->lag) {
        snprintf(p->err, sizeof(p->err), "out of memory");
        return -1;
    }
    return metrics_set_partitions(p->metrics, p->parts, p->nparts, p->err, sizeof(p->err));
}

/* The store's figures into *st and the metrics, at start, every
 * STORE_STATS_MS and for each stats line: store_stats reads every
 * database's stat and the file's size, too much for every batch.  A failure
 * is logged (under what) and leaves the metrics as they were.  0, or -1. */
int pipeline_publish_store(struct store *s, struct metrics *m, struct store_stats *st,
                           const char *what) {
    char e[ERRLEN];
    if (store_stats(s, st, e, sizeof(e))) {
        log_warn(NULL, "%s: %s", what, e);
        return -1;
    }
    struct metrics_store ms = {st->used_bytes, st->map_size, st->file_bytes, 0, st->counters.applied,
                               st->counters.duplicates, st->counters.rejected};
    for (int i = 0; i < st->ndb; i++)
        if (strcmp(st->db[i].name, "dedupe") == 0) ms.remembered_keys = st->db[i].entries;
    metrics_publish_store(m, &ms);
    return 0;
}

static int publish_store(struct pipeline *p, int64_t now, struct store_stats *st, const char *what) {
    p->store_stats_ms = now;
    return pipeline_publish_store(p->store, p->metrics, st, what);
}

/* Every step: lag per partition (cached watermarks, no round trip), outbox,
 * pause, delivery reports. */
static void publish_gauges(struct pipeline *p) {
    struct metrics_gauges g;
    memset(&g, 0, sizeof(g));
    for (size_t i = 0; i < p->nparts; i++) p->lag[i] = consumer_partition_lag(p->in, p->parts[i]);
    g.lag = p->lag;
    g.outbox = p->outbox;
    g.paused = consumer_paused(p->in);
    relay_delivered_add(p->relay, g.delivered);
    g.untracked = latency_untracked(p->lat);
    metrics_publish_gauges(p->metrics, &g);
}

/* The latencies of the messages whose outputs are now all confirmed, as
 * of when the relay thread published their confirmation. */
static void observe_delivered(struct pipeline *p) {
    double buf[LAT_CHUNK];
    int64_t at;
    uint64_t upto = relay_delivered_upto(p->relay, &at);
    size_t n;
    while ((n = latency_delivered(p->lat, upto, at, buf, LAT_CHUNK)) > 0) {
        metrics_observe_delivery(p->metrics, buf, n);
        if (n < LAT_CHUNK) break;
    }
}

/* What the relay thread confirmed (waiting up to timeout_ms for all of the
 * outbox, 0: not at all), then the latencies it completed. */
static int take_relay(struct pipeline *p, int timeout_ms) {
    int rc = timeout_ms ? relay_wait(p->relay, timeout_ms, p->err, sizeof(p->err))
                        : relay_check(p->relay, p->err, sizeof(p->err));
    observe_delivered(p);
    return rc;
}

#ifdef CREDITD_TEST_HOOKS
static void write_file(const char *path, const char *buf, size_t len) {
    char tmp[PATH_MAX_TEST + 8];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    int ok = f && fwrite(buf, 1, len, f) == len;
    if (f && fclose(f)) ok = 0;
    if (!ok || rename(tmp, path))
        log_warn(NULL, "TEST BUILD: writing %s failed", path);
}

/* Test builds only: CREDITD_TEST_METRICS_FILE=F writes metrics_render() to
 * F and metrics_ready(CREDITD_TEST_READY_MAX_LAG) to F.ready ("200 ready" or
 * "503 WHY") after every step with a commit, else every 200 ms, each through
 * a rename (a reader never sees half a file): the tests check the metrics
 * without the HTTP endpoint. */
static void test_metrics_file(struct pipeline *p, int force) {
    char *buf, why[256], line[300], path[PATH_MAX_TEST + 8];
    size_t len;
    int64_t now = kclient_now_ms();
    if (!p->metrics_file || (!force && !p->committed && now - p->metrics_file_ms < 200)) return;
    p->metrics_file_ms = now;
    if (metrics_render(p->metrics, &buf, &len) == 0) {
        write_file(p->metrics_file, buf, len);
        free(buf);
    }
    int ok = metrics_ready(p->metrics, p->ready_max_lag, why, sizeof(why));
    int n = snprintf(line, sizeof(line), "%d %s\n", ok ? 200 : 503, why);
    snprintf(path, sizeof(path), "%s.ready", p->metrics_file);
    write_file(path, line, (size_t)n);
}

static void test_hooks_env(struct pipeline *p) {
    const char *lag = getenv("CREDITD_TEST_READY_MAX_LAG");
    p->fail_on = getenv("CREDITD_TEST_FAIL_ON");
    if (p->fail_on && !*p->fail_on) p->fail_on = NULL;
    if (p->fail_on)
        log_warn(NULL, "TEST BUILD: a message containing '%s' fails the engine", p->fail_on);
    p->metrics_file = getenv("CREDITD_TEST_METRICS_FILE");
    if (p->metrics_file && (!*p->metrics_file || strlen(p->metrics_file) > PATH_MAX_TEST))
        p->metrics_file = NULL;
    p->ready_max_lag = lag && *lag ? strtoll(lag, NULL, 10) : p->c->http_ready_max_lag;
    metrics_set_ready_max_lag(p->metrics, p->ready_max_lag);
}
#endif

int pipeline_open_store(const struct config *c, struct store **s, struct engine **e, char *err,
                        size_t errlen) {
    struct store_opts so = {0};
    struct engine_config ec = {c->credit_close_after_s, c->credit_currency,
                               c->credit_max_future_s, {c->sources[0], c->sources[1],
                                                        c->sources[2], c->sources[3]},
                               c->credit_retention_days};
    so.path = c->store_path;
    so.map_size = c->store_map_size;
    so.close_after_s = c->credit_close_after_s;
    so.max_future_s = c->credit_max_future_s;
    so.retention_days = c->credit_retention_days;
    so.currency = c->credit_currency;
    if (store_open(s, &so, err, errlen)) return -1;
    return engine_new(e, &ec, err, errlen);
}

static int open_store(struct pipeline *p) {
    return pipeline_open_store(p->c, &p->store, &p->eng, p->err, sizeof(p->err));
}

/* 0, -1 with p->err, or KCLIENT_STOPPED: the stop flag was set while
 * waiting for Kafka (nothing was sent; the store holds no batch). */
static int start(struct pipeline *p) {
    const struct config *c = p->c;
#ifdef CREDITD_TEST_HOOKS
    test_hooks_env(p);
#endif
    if (strlen(c->topic_input) > PIPELINE_TOPIC_MAX) {
        snprintf(p->err, sizeof(p->err), "topic.input: longer than %d bytes", PIPELINE_TOPIC_MAX);
        return -1;
    }
    p->batch = malloc((size_t)c->batch_max_messages * sizeof(*p->batch));
    if (!p->batch) {
        snprintf(p->err, sizeof(p->err), "out of memory (batch.max_messages)");
        return -1;
    }
    if (parseq_new(&p->pq, (int)c->input_parse_threads, NULL, p->err, sizeof(p->err))) return -1;
    if (metrics_start(p)) return -1;
    if (!config_has_bootstrap(c)) {
        if (mock_start(&p->mock, c, p->err, sizeof(p->err))) return -1;
        p->bootstrap = mock_bootstrap(p->mock);
        printf("creditd: embedded broker at %s\n", p->bootstrap);
        fflush(stdout);
    }
    if (open_store(p)) return -1;
    /* HTTP from here on: /healthz answers and /readyz says why not yet
     * while creditd waits for Kafka. */
    if (http_start(&p->http, c, p->store, p->metrics, p->err, sizeof(p->err))) return -1;
    metrics_set_store_open(p->metrics, 1);
    int rc = consumer_open(&p->in, c, p->bootstrap, p->stop, p->err, sizeof(p->err));
    if (rc == 0) rc = relay_open(&p->relay, c, p->bootstrap, p->stop, p->err, sizeof(p->err));
    if (rc) return rc == KCLIENT_STOPPED ? KCLIENT_STOPPED : -1;
    if (choose_partitions(p)) return -1;
    int64_t *next = malloc(p->nparts * sizeof(*next));
    if (!next) {
        snprintf(p->err, sizeof(p->err), "out of memory");
        return -1;
    }
    rc = startup_txn(p, next);
    if (rc == 0) rc = relay_recover(p->relay, c, p->bootstrap, p->err, sizeof(p->err));
    if (rc == 0) rc = consumer_check_group(p->in, p->parts, next, p->nparts, p->err, sizeof(p->err));
    if (rc == KCLIENT_STOPPED) {
        free(next);
        return rc;
    }
    if (rc == 0) rc = consumer_assign(p->in, p->parts, next, p->nparts, p->err, sizeof(p->err));
    free(next);
    if (rc == 0) rc = metrics_assigned(p);
    if (rc == 0) rc = refresh_outbox(p);
    if (rc == 0) rc = relay_start(p->relay, p->store, p->err, sizeof(p->err));
    if (rc == 0) {
        struct store_stats st;
        publish_store(p, kclient_now_ms(), &st, "metrics");
        publish_gauges(p);
    }
    if (rc == 0)
        log_info(NULL, "consuming %s (%zu of %d partitions), store %s, outbox %llu",
                c->topic_input, p->nparts, (int)consumer_partition_count(p->in), c->store_path,
                (unsigned long long)p->outbox);
    p->st.at_ms = kclient_now_ms();
    return rc;
}

/* Close everything.  After a stop request the consumer's close (its last
 * group-offset commits) gets what is left of the shutdown budget. */
static void stop_all(struct pipeline *p) {
    int64_t left = p->stop_deadline ? p->stop_deadline - kclient_now_ms() : KCLIENT_CLOSE_MS;
    http_stop(p->http);  /* first: it reads the store and the metrics */
    p->http = NULL;
    char e[64];
    metrics_set_store_open(p->metrics, 0);  /* not ready from here on */
    metrics_set_partitions(p->metrics, NULL, 0, e, sizeof(e));
    parseq_free(p->pq);  /* before the messages go: its threads may be parsing their payloads */
    p->pq = NULL;
    consumer_release(p->batch, p->n);
    p->n = 0;
    relay_close(p->relay);
    consumer_close(p->in, left > KCLIENT_POLL_MS ? (int)left : KCLIENT_POLL_MS);
    engine_free(p->eng);
    store_close(p->store);
    mock_stop(p->mock);
    free(p->batch);
    free(p->parts);
    free(p->bnext);
    free(p->lag);
    latency_free(p->lat);
}

#ifdef CREDITD_TEST_HOOKS
/* Test builds only: a message whose payload contains CREDITD_TEST_FAIL_ON
 * fails as if the engine had failed, after the engine applied it inside the
 * batch transaction (so a test sees that the abort undoes its effects). */
static int test_fault(const struct pipeline *p, const rd_kafka_message_t *m, char *err, size_t errlen) {
    if (!p->fail_on || !m->payload || !memmem(m->payload, m->len, p->fail_on, strlen(p->fail_on)))
        return 0;
    snprintf(err, errlen, "injected engine failure (CREDITD_TEST_FAIL_ON=%s)", p->fail_on);
    return -1;
}
#endif

/* The crash-loop guard.  engine_apply failed on m in a way that is not a
 * reject (those return 0): unless the map is full (the batch is retried),
 * the batch is aborted and creditd stops, naming the message so that an
 * operator can find it (a restart would stop at it again). */
void pipeline_halt_text(const struct config *c, const rd_kafka_message_t *m, const char *why,
                        char *err, size_t errlen) {
    char hex[DUMP_BYTES * 3 + 1] = "";
    const unsigned char *b = m->payload;
    size_t n = m->len < DUMP_BYTES ? m->len : DUMP_BYTES;
    for (size_t i = 0, w = 0; b && i < n; i++)
        w += (size_t)snprintf(hex + w, sizeof(hex) - w, "%s%02x", i ? " " : "", b[i]);
    snprintf(err, errlen,
             "input %s [%d] offset %lld: the engine failed on this message (not a reject): %.400s; "
             "the batch is not applied and creditd stops (it stops here again until the cause is "
             "fixed); message (%zu bytes) starts: %s%s",
             c->topic_input, (int)m->partition, (long long)m->offset, why, m->len, hex,
             m->len > n ? " ..." : "");
}

int pipeline_next_parsed(struct parseq *q, rd_kafka_message_t *const *batch, size_t n,
                         size_t *pushed, size_t i, struct parseq_item *it, char *err,
                         size_t errlen) {
    /* Refilled when half empty: the parsing threads get several chunks per
     * wake-up rather than one. */
    if (*pushed < n && parseq_pending(q) * 2 <= parseq_capacity(q)) {
        for (; *pushed < n; ++*pushed) {
            const rd_kafka_message_t *m = batch[*pushed];
            if (!parseq_push(q, m->payload ? m->payload : "", m->len, m->offset, batch[*pushed]))
                break;
        }
    }
    int rc = parseq_next(q, it, err, errlen);
    if (rc == 1 && it->tag == batch[i]) return 0;
    if (rc >= 0) /* a bug, not the message's fault: not the crash-loop guard */
        snprintf(err, errlen, "parse queue: message %zu of the batch is not next (%s)", i,
                 rc ? "another one is" : "none is");
    return -1;
}

static int engine_failed(struct pipeline *p, const rd_kafka_message_t *m, const char *why) {
    if (store_map_full(p->store)) {
        snprintf(p->err, sizeof(p->err), "%s", why);
        return -1;
    }
    p->halted = 1;
    pipeline_halt_text(p->c, m, why, p->err, sizeof(p->err));
    return -1;
}

/* Inside the batch txn: every message through the engine (parsed ahead),
 * then the next offset of each partition it touched and the counters. */
static int apply_messages(struct pipeline *p, struct store_counters *cnt) {
    struct engine_store ops;
    uint64_t seq;   /* the last outbox seq so far: the batch's outputs follow it */
    size_t pushed = 0;
    store_engine_ops(p->store, &ops);
    memset(cnt, 0, sizeof(*cnt));
    if (store_outbox_last_seq(p->store, &seq, p->err, sizeof(p->err))) return -1;
    for (size_t i = 0; i < p->n; i++) {
        const rd_kafka_message_t *m = p->batch[i];
        struct parseq_item it;
        if (pipeline_next_parsed(p->pq, p->batch, p->n, &pushed, i, &it, p->err, sizeof(p->err)))
            return -1;
        struct engine_msg em = {it.buf, it.len, p->c->topic_input, m->partition, m->offset};
        struct engine_result res;
        char why[ERRLEN];
        int rc = engine_apply_prepared(p->eng, &ops, &em, it.root, it.jerr, it.pre, &res, why,
                                     sizeof(why));
#ifdef CREDITD_TEST_HOOKS
        if (rc == 0) rc = test_fault(p, m, why, sizeof(why));
#endif
        if (rc) return engine_failed(p, m, why);
        metrics_batch_add(&p->mb, &res);
        uint64_t nout = 0;
        for (int k = 0; k < ENG_OUT_NKIND; k++) nout += res.outputs[k];
        if (nout) {
            seq += nout;
            latency_batch_add(p->lat, seq, rd_kafka_message_timestamp(m, NULL));
        }
        if (res.outcome == ENG_APPLIED) cnt->applied++;
        else if (res.outcome == ENG_DUPLICATE) cnt->duplicates++;
        else cnt->rejected++;
        p->bnext[m->partition] = m->offset + 1;
    }
    for (size_t i = 0; i < p->nparts; i++) {
        int32_t part = p->parts[i];
        if (p->bnext[part] >= 0 &&
            store_offset_put(p->store, p->c->topic_input, part, p->bnext[part], p->err, sizeof(p->err)))
            return -1;
    }
    return store_counters_add(p->store, cnt, p->err, sizeof(p->err));
}

/* One txn: relay bookkeeping and the batch's messages.  A full map is grown
 * by the store and the same messages are applied again. */
static int commit_batch(struct pipeline *p) {
    struct store_counters cnt;
    uint64_t last = 0;    /* the outbox's last seq in the txn */
    double t0 = pipeline_clock_s(CLOCK_MONOTONIC);
    for (;;) {
        metrics_batch_reset(&p->mb);  /* a retried batch counts once */
        latency_batch_reset(p->lat);
        for (size_t i = 0; i < p->nparts; i++) p->bnext[p->parts[i]] = -1;
        int rc = store_begin(p->store, p->err, sizeof(p->err));
        if (rc) return -1;
        rc = relay_txn_write(p->relay, p->store, p->err, sizeof(p->err));
        if (rc == 0) rc = apply_messages(p, &cnt);
        parseq_reset(p->pq);   /* after a failure: what was parsed ahead is not taken */
        if (rc == 0) rc = store_outbox_last_seq(p->store, &last, p->err, sizeof(p->err));
        if (rc == 0) rc = store_commit(p->store, p->err, sizeof(p->err));
        else if (store_map_full(p->store)) { store_abort(p->store); rc = STORE_EMAPFULL; }
        else store_abort(p->store);
        relay_txn_done(p->relay, rc == 0);
        if (rc == STORE_EMAPFULL) continue;
        if (rc) return -1;
        break;
    }
    relay_committed(p->relay, last);  /* wakes the relay thread for the batch's outputs */
    /* Committed: the counts are published now and only now. */
    metrics_publish_commit(p->metrics, p->n ? &p->mb : NULL, pipeline_clock_s(CLOCK_MONOTONIC) - t0,
                           pipeline_clock_s(CLOCK_REALTIME));
    latency_batch_commit(p->lat);
    p->committed = 1;
    for (size_t i = 0; i < p->nparts; i++)
        if (p->bnext[p->parts[i]] >= 0) consumer_advance(p->in, p->parts[i], p->bnext[p->parts[i]]);
    consumer_commit_async(p->in, 0);
    p->st.events += p->n;
    p->st.batches += p->n > 0;
    consumer_release(p->batch, p->n);
    p->n = 0;
    return refresh_outbox(p);
}

static void stats_line(struct pipeline *p) {
    int64_t now = kclient_now_ms(), dt = now - p->st.at_ms;
    if (p->c->stats_interval_ms <= 0 || dt < p->c->stats_interval_ms) return;
    struct store_stats st;
    if (publish_store(p, now, &st, "stats")) memset(&st, 0, sizeof(st));
    log_info(NULL, "stats events/s=%.0f batch=%.0f lag=%lld outbox=%llu "
            "duplicates=%llu rejects=%llu%s",
            (double)p->st.events * 1000.0 / (double)dt,
            p->st.batches ? (double)p->st.events / (double)p->st.batches : 0.0,
            (long long)consumer_lag(p->in), (unsigned long long)p->outbox,
            (unsigned long long)st.counters.duplicates, (unsigned long long)st.counters.rejected,
            consumer_paused(p->in) ? " paused" : "");
    p->st.at_ms = now;
    p->st.events = p->st.batches = 0;
}

/* Pause the input while the outbox holds more than outbox.max_pending
 * entries; resume once it is down to half of that. */
static int flow_control(struct pipeline *p) {
    uint64_t max = (uint64_t)p->c->outbox_max_pending;
    if (!consumer_paused(p->in) && p->outbox > max) {
        log_warn(NULL, "outbox holds %llu entries (> outbox.max_pending): pausing input",
                (unsigned long long)p->outbox);
        return consumer_pause(p->in, 1, p->err, sizeof(p->err));
    }
    if (consumer_paused(p->in) && p->outbox <= max / 2) {
        log_info(NULL, "outbox down to %llu entries: resuming input",
                (unsigned long long)p->outbox);
        return consumer_pause(p->in, 0, p->err, sizeof(p->err));
    }
    return 0;
}

static int step(struct pipeline *p) {
    char *err = p->err;
    size_t errlen = sizeof(p->err);
    if (take_relay(p, 0) || flow_control(p)) return -1;
    if (consumer_paused(p->in)) {
        if (take_relay(p, (int)p->c->batch_max_ms)) return -1;
    } else if (consumer_poll_batch(p->in, p->batch, (size_t)p->c->batch_max_messages,
                                   (int)p->c->batch_max_ms, (int)p->c->batch_linger_ms, p->stop,
                                   &p->n, err, errlen)) {
        return -1;
    }
    if (take_relay(p, 0)) return -1;
    if ((p->n > 0 || relay_txn_needed(p->relay)) && commit_batch(p)) return -1;
    stats_line(p);
    int64_t now = kclient_now_ms();
    if (now - p->published_ms >= PUBLISH_REFRESH_MS) { /* the first step too: after a restart */
        consumer_commit_async(p->in, 1);
        p->published_ms = now;
    }
    struct store_stats st;
    if (now - p->store_stats_ms >= STORE_STATS_MS) publish_store(p, now, &st, "metrics");
    publish_gauges(p);
#ifdef CREDITD_TEST_HOOKS
    test_metrics_file(p, 0);
#endif
    p->committed = 0;
    return 0;
}

/* Stop requested: deliver what the outbox holds within the flush timeout and
 * record what was confirmed. */
static int finish(struct pipeline *p) {
    p->stop_deadline = kclient_now_ms() + p->c->shutdown_flush_timeout_ms;
    int rc = relay_drain(p->relay, (int)p->c->shutdown_flush_timeout_ms, p->err, sizeof(p->err));
    observe_delivered(p);
    if (rc < 0) return -1;
    if (relay_txn_needed(p->relay) && commit_batch(p)) return -1;
    publish_gauges(p);
#ifdef CREDITD_TEST_HOOKS
    test_metrics_file(p, 1);
#endif
    consumer_commit_async(p->in, 1);
    log_info(NULL, "stopped; outbox %llu entries%s", (unsigned long long)p->outbox,
            rc ? " (flush timed out: they are sent on the next start)" : "");
    return 0;
}

int pipeline_run(const struct config *c, volatile sig_atomic_t *stop, char *err, size_t errlen) {
    struct pipeline p;
    memset(&p, 0, sizeof(p));
    p.c = c;
    p.stop = stop;
    if (metrics_new(&p.metrics, err, errlen)) return -1;
    metrics_set_ready_max_lag(p.metrics, c->http_ready_max_lag); /* creditd_ready as /readyz */
    int rc = start(&p);
    if (rc == KCLIENT_STOPPED) {
        log_info(NULL, "stopped during start-up");
        rc = 0;
    } else {
        while (rc == 0 && !*stop) rc = step(&p);
        if (rc == 0) rc = finish(&p);
    }
    if (rc) snprintf(err, errlen, "%s", p.err);
    stop_all(&p);
    metrics_free(p.metrics);
    return rc && p.halted ? PIPELINE_HALTED : rc;
}
