/* latency.h -- event-to-delivery latency: which input messages still have
 * outputs on their way, and when the last one was confirmed.
 *
 * An input message that caused outputs is tracked by (the outbox seq of its
 * last output, its Kafka timestamp).  The relay confirms outbox entries in
 * seq order (relay_delivered_upto), so once every seq up to a message's last
 * one is confirmed, all its outputs are delivered: the latency is then
 * (now - timestamp).  Messages are added while their batch is applied and
 * kept only once it commits (an aborted or retried batch adds nothing).
 *
 * Bounded: a ring of `cap` messages, allocated at latency_new (calloc: pages
 * are touched only as they are used).  Every tracked message has at least
 * one undelivered output in the outbox, and input pauses above
 * outbox.max_pending, so cap = outbox.max_pending + batch.max_messages is
 * never reached; a message that would not fit is counted as untracked.
 *
 * Pipeline thread only (no lock). */
#ifndef CREDITD_CONSUMER_LATENCY_H
#define CREDITD_CONSUMER_LATENCY_H

#include <stddef.h>
#include <stdint.h>

#define LATENCY_CAP_MAX ((size_t)1 << 22)   /* 64 MiB of ring at most */

struct latency;

/* cap messages at most (1..LATENCY_CAP_MAX, clamped).  0, or -1 with err. */
int latency_new(struct latency **out, size_t cap, char *err, size_t errlen);
void latency_free(struct latency *l);

/* The batch being applied: forget what it added (a new try starts). */
void latency_batch_reset(struct latency *l);
/* A message of the batch whose last output is outbox seq last_seq, Kafka
 * timestamp ts_ms (ms since the epoch; < 0: none, counted as untracked).
 * seqs must increase. */
void latency_batch_add(struct latency *l, uint64_t last_seq, int64_t ts_ms);
/* The batch committed: its messages wait for their delivery. */
void latency_batch_commit(struct latency *l);

/* Every seq <= upto is confirmed, at now_ms (wall clock, ms since the
 * epoch): the latencies (seconds) of the committed messages that are now
 * delivered go to out[0..max), oldest first; returns how many.  Call again
 * while it returns max. */
size_t latency_delivered(struct latency *l, uint64_t upto, int64_t now_ms, double *out, size_t max);

/* Messages with outputs not tracked (no timestamp, or the ring was full). */
uint64_t latency_untracked(const struct latency *l);

#endif
