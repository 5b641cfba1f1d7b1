/* pipeline.h -- creditd's daemon loop: input consumer -> engine -> store
 * (one LMDB write txn per bounded batch) -> outbox relay.
 *
 * Start-up: embedded broker when no bootstrap is configured, store, engine,
 * input consumer (cluster id and partition count checked against the store),
 * relay (outputs read back), then assignment at the stored offsets.
 * Each batch: relay bookkeeping + engine_apply per message + next offset per
 * partition + counters, committed together; a full map is grown and the same
 * messages are applied again.  The messages are parsed ahead on
 * input.parse_threads threads (consumer/parseq.h) while the engine applies
 * earlier ones, in order, on the pipeline's thread.  Group offsets are published after the commit.
 * The relay produces the committed outputs and serves their delivery reports on a thread
 * of its own (relay.h); the pipeline's thread deletes what it confirmed in the next batch.
 * Stop: the current batch is finished and committed, the relay drains within
 * shutdown.flush_timeout_ms, and what it confirmed is committed. */
#ifndef CREDITD_CONSUMER_PIPELINE_H
#define CREDITD_CONSUMER_PIPELINE_H

#include <signal.h>
#include <stddef.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "config/config.h"
#include "consumer/parseq.h"
#include "engine/engine.h"
#include "store/store.h"

#define PIPELINE_TOPIC_MAX 200   /* the store's limit on topic names (offsets) */

/* The crash-loop guard stopped the pipeline: the engine failed on a message
 * (not a reject); a restart would stop at the same message. */
#define PIPELINE_HALTED (-2)

/* Run until *stop is set (0) or a fatal error (-1 with err; PIPELINE_HALTED
 * with err naming the message). */
int pipeline_run(const struct config *c, volatile sig_atomic_t *stop, char *err, size_t errlen);

/* Shared with group mode (group.c). */

/* Open the store (c's store.path, map size and pinned config) and the
 * engine.  0, or -1 with err. */
int pipeline_open_store(const struct config *c, struct store **s, struct engine **e, char *err,
                        size_t errlen);
/* Check (or, on a fresh store, record) one meta value the store depends on,
 * in the current write txn.  0, or -1 with err naming it (what). */
int pipeline_pin(struct store *s, const struct config *c, const char *name, const char *want,
                 const char *what, char *err, size_t errlen);
/* The batch's message i, parsed (batch[0..n) in order, i counting from 0 by
 * one: the loop that applies them).  First, when q is at most half full,
 * pushes as many of batch[*pushed..n) as fit; the payloads are borrowed
 * until the batch's messages were all taken or parseq_reset.  0 with *it,
 * or -1 with err. */
int pipeline_next_parsed(struct parseq *q, rd_kafka_message_t *const *batch, size_t n,
                         size_t *pushed, size_t i, struct parseq_item *it, char *err,
                         size_t errlen);
/* The store's figures (store_stats, which reads every database and the
 * file's size: every few seconds, not per batch) into *st and m's store
 * metrics; a failure is logged under what and leaves the metrics as they
 * were.  0, or -1. */
struct metrics;
int pipeline_publish_store(struct store *s, struct metrics *m, struct store_stats *st,
                           const char *what);
/* clock_gettime(id) in seconds. */
double pipeline_clock_s(clockid_t id);
/* The crash-loop guard's message for m (first bytes in hex). */
void pipeline_halt_text(const struct config *c, const rd_kafka_message_t *m, const char *why,
                        char *err, size_t errlen);

#endif
