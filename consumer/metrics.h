/* metrics.h -- creditd's counters, gauges and histograms, shared by the
 * pipeline thread (the only writer) and the HTTP thread (readers).
 *
 * Everything the HTTP endpoints need about the daemon's state lives here, so
 * the HTTP thread never touches the pipeline, the consumer or the relay: the
 * pipeline publishes into a struct metrics under its mutex (after each
 * commit: an aborted batch publishes nothing), the HTTP thread renders or
 * judges a consistent copy.  No LMDB access in either direction.
 *
 * Every metric, its type, labels and meaning: README.md, "Metrics".
 * Counters count from the process start (Prometheus handles the reset at a
 * restart); the store's own persistent counters are gauges.
 *
 * Lifetime: created before the pipeline starts, freed after the HTTP server
 * has stopped (http_stop) and the pipeline has finished. */
#ifndef CREDITD_CONSUMER_METRICS_H
#define CREDITD_CONSUMER_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

struct metrics;

/* 0, or -1 with err (out of memory). */
int  metrics_new(struct metrics **out, char *err, size_t errlen);
void metrics_free(struct metrics *m);

/* ---- the HTTP thread (any thread) ---------------------------------------- */

/* HTTP thread.  The Prometheus text exposition format 0.0.4 of the current
 * values: *out is malloc'd (caller frees), *len its length.  0, or -1 (out
 * of memory). */
int metrics_render(struct metrics *m, char **out, size_t *len);

/* HTTP thread.  Readiness (GET /readyz): 1 when the store is open, the input
 * partitions are assigned, the consumer lag is below max_lag and the outbox
 * below its bound; else 0 with why = a short phrase naming the first failed
 * condition and its values ("consumer lag 12000 >= http.ready_max_lag
 * 10000").  why is plain text without quotes or control characters ("ready"
 * when 1).  A lag not known yet (no high watermark from the broker for some
 * partition) is not ready. */
int metrics_ready(struct metrics *m, int64_t max_lag, char *why, size_t whylen);

/* The max_lag the creditd_ready gauge is judged with (the HTTP server's
 * http.ready_max_lag; until set, INT64_MAX: only a known lag is needed). */
void metrics_set_ready_max_lag(struct metrics *m, int64_t max_lag);

/* ---- the pipeline thread (the only writer) -------------------------------- */

/* Facts fixed for the daemon's life; strings are copied (label values are
 * escaped at rendering, so any bytes are safe). */
struct metrics_info {
    const char *version;                 /* build_info */
    const char *librdkafka;              /* build_info: rd_kafka_version_str() */
    const char *topics[ENG_OUT_NKIND];   /* output topics by enum eng_out_kind */
    int64_t outbox_max_pending;          /* outbox.max_pending: readiness bound */
};
void metrics_set_info(struct metrics *m, const struct metrics_info *info);

/* The input partitions assigned, in the order metrics_publish_gauges gives
 * their lag (copied; n may be 0).  0, or -1 with err (out of memory). */
int metrics_set_partitions(struct metrics *m, const int32_t *parts, size_t n, char *err,
                           size_t errlen);
/* Group mode (group.c): a rebalance callback ("assigned" or "revoked"),
 * changelog records applied by a restore or by the standby reader. */
void metrics_add_rebalance(struct metrics *m, const char *kind);
void metrics_add_restored(struct metrics *m, uint64_t records);
void metrics_add_standby(struct metrics *m, uint64_t records);
/* 1 once the store is open, 0 when it is being closed (stop). */
void metrics_set_store_open(struct metrics *m, int open);

/* One batch's counts, kept by the pipeline while it applies the batch (no
 * lock: the pipeline's own memory) and published once the batch committed.
 * events[type][slot]: slot 0 applied, 1 duplicate, 2 + reason rejected. */
#define METRICS_NSLOTS (ENG_R_COUNT + 2)
struct metrics_batch {
    uint64_t events[ENG_T_COUNT][METRICS_NSLOTS];
    uint64_t outputs[ENG_OUT_NKIND];
    uint64_t alerts[ENG_ALERT_NKIND];
};
void metrics_batch_reset(struct metrics_batch *b);
void metrics_batch_add(struct metrics_batch *b, const struct engine_result *res);

/* After a successful store commit: b's counts (NULL: none, a commit of the
 * relay's bookkeeping alone) are added, last_commit = now_unix (seconds
 * since the epoch) and, when b is not NULL, txn_seconds is observed in the
 * batch commit histogram. */
void metrics_publish_commit(struct metrics *m, const struct metrics_batch *b, double txn_seconds,
                            double now_unix);

/* Gauges the pipeline refreshes every step. */
struct metrics_gauges {
    const int64_t *lag;                  /* [n of metrics_set_partitions]; -1 = unknown */
    uint64_t outbox;                     /* entries in the outbox */
    int paused;                          /* input paused (outbox above its bound) */
    uint64_t delivered[ENG_OUT_NKIND];   /* delivery reports since start, by kind */
    uint64_t untracked;                  /* messages left out of the delivery latency */
};
void metrics_publish_gauges(struct metrics *m, const struct metrics_gauges *g);

/* The store's figures (from store_stats, read every few seconds). */
struct metrics_store {
    uint64_t used_bytes, map_bytes, file_bytes;
    uint64_t remembered_keys;            /* dedupe entries */
    uint64_t applied, duplicates, rejected; /* the store's persistent counters */
};
void metrics_publish_store(struct metrics *m, const struct metrics_store *s);

/* Event-to-delivery latencies (seconds; negative ones count as 0). */
void metrics_observe_delivery(struct metrics *m, const double *seconds, size_t n);

#endif
