/* pipeline.h -- creditd's daemon loop: input consumer -> engine -> store
 * (one LMDB write txn per bounded batch) -> outbox relay.
 *
 * Start-up: embedded broker when no bootstrap is configured, store, engine,
 * input consumer (cluster id and partition count checked against the store),
 * relay (outputs read back), then assignment at the stored offsets.
 * Each batch: relay bookkeeping + engine_apply per message + next offset per
 * partition + counters, committed together; a full map is grown and the same
 * messages are applied again.  Group offsets are published after the commit.
 * Stop: the current batch is finished and committed, the relay drains within
 * shutdown.flush_timeout_ms, and what it confirmed is committed. */
#ifndef CREDITD_CONSUMER_PIPELINE_H
#define CREDITD_CONSUMER_PIPELINE_H

#include <signal.h>
#include <stddef.h>

#include "config/config.h"

#define PIPELINE_TOPIC_MAX 200   /* the store's limit on topic names (offsets) */

/* The crash-loop guard stopped the pipeline: the engine failed on a message
 * (not a reject); a restart would stop at the same message. */
#define PIPELINE_HALTED (-2)

/* Run until *stop is set (0) or a fatal error (-1 with err; PIPELINE_HALTED
 * with err naming the message). */
int pipeline_run(const struct config *c, volatile sig_atomic_t *stop, char *err, size_t errlen);

#endif
