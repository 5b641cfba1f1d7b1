/* consumer.h -- creditd's input: one librdkafka consumer on the input topic,
 * manually assigned (no group rebalancing) at the offsets kept in the store.
 *
 * The consumer group (group.id) is only used to publish committed offsets
 * for monitoring, asynchronously and only after the store committed them:
 * the store is the authority on where to resume.  Never auto-commits, never
 * resets offsets: an offset out of range (a retention gap) stops creditd. */
#ifndef CREDITD_CONSUMER_CONSUMER_H
#define CREDITD_CONSUMER_CONSUMER_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <librdkafka/rdkafka.h>

#include "config/config.h"

#define CONSUMER_PARTITIONS_MAX 100000   /* input partitions creditd accepts */
#define CONSUMER_NEVER (-1)              /* a partition never consumed */

struct consumer;

/* Create the consumer and read the input topic's partition count and the
 * cluster id (waiting up to KCLIENT_META_TIMEOUT_MS for a broker; an
 * authentication failure ends the wait at once).  bootstrap overrides
 * kafka.bootstrap.servers when not NULL.  0; -1 with err; KCLIENT_STOPPED
 * when *stop was set while waiting (stop is kept for the consumer's life). */
int consumer_open(struct consumer **out, const struct config *c, const char *bootstrap,
                  volatile sig_atomic_t *stop, char *err, size_t errlen);
/* Unassign and close within timeout_ms (offsets not yet published to the
 * group are given up after it: the store holds them; failures are logged);
 * NULL is ignored. */
void consumer_close(struct consumer *k, int timeout_ms);

int32_t consumer_partition_count(const struct consumer *k);
const char *consumer_cluster_id(const struct consumer *k);

/* Start-up, before consumer_assign: may creditd's principal use its group?
 * Reads the group's offsets of parts[0..n) (needs Describe on the group)
 * and, for the partitions whose next[i] the store knows, commits next[i]
 * (needs Read; the same offsets creditd publishes at every start anyway).
 * A refusal is -1 with err naming the principal, the operation and the
 * group or topic; a coordinator that does not answer within
 * KCLIENT_META_TIMEOUT_MS is only logged (the group serves monitoring).
 * On a fresh store (no offsets) Read is first used by the first batch's
 * publish: a refusal then stops creditd from consumer_poll_batch, after
 * that batch was committed to the store.  0, -1 or KCLIENT_STOPPED. */
int consumer_check_group(struct consumer *k, const int32_t *parts, const int64_t *next, size_t n,
                         char *err, size_t errlen);

/* Assign parts[0..n) of the input topic, each from next[i] (the next offset
 * to apply) or the beginning when next[i] == CONSUMER_NEVER. */
int consumer_assign(struct consumer *k, const int32_t *parts, const int64_t *next, size_t n,
                    char *err, size_t errlen);

/* Collect up to max messages, for at most max_ms after the call (less when
 * *stop becomes set); once there is one, the batch also ends when no
 * further message came for linger_ms (0: as soon as none is waiting).
 * Messages are returned in msgs[0..*n) and must be given back with
 * consumer_release().  0, or -1 with err on a condition that must
 * stop creditd (offset out of range, topic gone, fatal Kafka error). */
int consumer_poll_batch(struct consumer *k, rd_kafka_message_t **msgs, size_t max, int max_ms,
                        int linger_ms, volatile sig_atomic_t *stop, size_t *n, char *err,
                        size_t errlen);
void consumer_release(rd_kafka_message_t **msgs, size_t n);

/* An error event or errored message of an input consumer (kc; its input
 * topic and group.id, for messages): 0 when it is transient or
 * informational (logged), -1 with err when creditd must stop (offset out
 * of range, topic gone, authorization, fatal).  Shared with group mode. */
struct kclient;
int consumer_message_error(struct kclient *kc, const char *topic, const char *group,
                           const rd_kafka_message_t *m, char *err, size_t errlen);

/* After the store committed a batch: partition's next offset is now next.
 * consumer_commit_async() publishes the advanced offsets to the group; with
 * all, also those already sent (a commit can be lost without a callback, e.g.
 * across a broker restart, and lag tools would show lag that never clears). */
void consumer_advance(struct consumer *k, int32_t partition, int64_t next);
void consumer_commit_async(struct consumer *k, int all);

/* Pause (1) or resume (0) every assigned partition; idempotent. */
int consumer_pause(struct consumer *k, int pause, char *err, size_t errlen);
int consumer_paused(const struct consumer *k);

/* Messages between the committed offsets and the high watermarks last seen
 * (cached, no broker round trip); -1 when unknown. */
int64_t consumer_lag(struct consumer *k);
/* The same for one partition: high watermark last seen minus the next
 * offset the store committed (its low watermark when never consumed), 0 at
 * least; -1 when unknown (no fetch response for it yet) or not a partition
 * of the topic.  The cached watermark is refreshed by every fetch response,
 * empty ones included, so it reaches 0 once the partition is caught up; it
 * is not refreshed while input is paused (no fetches). */
int64_t consumer_partition_lag(struct consumer *k, int32_t partition);
/* The same for any consumer rk of topic (group mode's too): from next (the
 * next offset committed; < 0: none, from the low watermark). */
int64_t consumer_lag_of(rd_kafka_t *rk, const char *topic, int32_t partition, int64_t next);

/* How long the next poll of a batch may wait at now: until deadline, and
 * once the batch holds messages (n > 0, the last polled at last) until
 * linger_ms after the last.  -1: the deadline has passed.  Shared by
 * consumer_poll_batch and group mode's batch. */
static inline int64_t consumer_batch_wait(int64_t now, int64_t deadline, size_t n, int64_t last,
                                          int64_t linger_ms) {
    int64_t left = deadline - now;
    if (left < 0) return -1;
    if (n > 0 && last + linger_ms - now < left) /* lingering: polled at least once */
        left = last + linger_ms > now ? last + linger_ms - now : 0;
    return left;
}

#endif
