/* metrics.h -- creditd's counters, gauges and histograms, shared by the
 * pipeline thread (the only writer) and the HTTP thread (readers).
 *
 * Everything the HTTP endpoints need about the daemon's state lives here, so
 * the HTTP thread never touches the pipeline, the consumer or the relay: the
 * pipeline publishes into a struct metrics under its mutex (after each
 * commit: an aborted batch publishes nothing), the HTTP thread renders or
 * judges a consistent copy.  No LMDB access in either direction.
 *
 * Lifetime: created before the pipeline starts, freed after the HTTP server
 * has stopped (http_stop) and the pipeline has finished. */
#ifndef CREDITD_CONSUMER_METRICS_H
#define CREDITD_CONSUMER_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct metrics;

/* 0, or -1 with err (out of memory). */
int  metrics_new(struct metrics **out, char *err, size_t errlen);
void metrics_free(struct metrics *m);

/* HTTP thread.  The Prometheus text exposition format 0.0.4 of the current
 * values: *out is malloc'd (caller frees), *len its length.  0, or -1 (out
 * of memory). */
int metrics_render(struct metrics *m, char **out, size_t *len);

/* HTTP thread.  Readiness (GET /readyz): 1 when the store is open, the input
 * partitions are assigned, the consumer lag is below max_lag and the outbox
 * below its bound; else 0 with why = a short phrase naming the first failed
 * condition and its values ("consumer lag 12000 >= http.ready_max_lag
 * 10000").  why is plain text without quotes or control characters. */
int metrics_ready(struct metrics *m, int64_t max_lag, char *why, size_t whylen);

#endif
