/* changelog.h -- reading the state changelog (group mode) into a store:
 * restore on assignment, standby replicas, creditctl --from-kafka.
 *
 * The changelog topic (state.changelog.topic, compacted, as many partitions
 * as the input) holds, in partition p, every change of the engine state of
 * input partition p: one record per LMDB record (store.h "Change capture
 * and the state changelog"), written by the owner of p in the same Kafka
 * transaction as the batch's outputs and input offsets (group.c).  It is
 * read with isolation.level=read_committed only, so a batch is seen whole
 * or not at all, and a fenced zombie's batch never.
 *
 * Every changelog message carries the header CHANGELOG_HDR_CONFIG with
 * changelog_fingerprint() of its writer: a reader whose own fingerprint
 * differs refuses the record (a store built with another format or pinned
 * config must not be mixed in).
 *
 * One reader: a librdkafka consumer without a group (assign only),
 * read_committed, its own client (role given at open).  Not thread-safe:
 * one thread uses it, the same that writes the store. */
#ifndef CREDITD_CONSUMER_CHANGELOG_H
#define CREDITD_CONSUMER_CHANGELOG_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "store/store.h"

#define CHANGELOG_HDR_CONFIG "creditd-config"
#define CHANGELOG_FINGERPRINT_MAX 200
/* Records applied per store write txn while restoring. */
#define CHANGELOG_TXN_RECORDS 20000

/* "format=5 close_after=S max_future=S retention_days=D currency=C" from
 * the pinned configuration c and STORE_FORMAT_VERSION, into buf (at least
 * CHANGELOG_FINGERPRINT_MAX bytes). */
void changelog_fingerprint(const struct config *c, char *buf, size_t len);

struct changelog;

/* A reader of c->state_changelog_topic (kafka.* of c; bootstrap overrides
 * kafka.bootstrap.servers when not NULL).  Waits up to KCLIENT_META_TIMEOUT_MS
 * for the topic's metadata; a missing topic is an error naming it.  role
 * names the client in logs ("restore", "creditctl").  stop is kept for the
 * reader's life (may be NULL).  0, -1 with err, or KCLIENT_STOPPED. */
int changelog_open(struct changelog **out, const struct config *c, const char *bootstrap,
                   const char *role, volatile sig_atomic_t *stop, char *err, size_t errlen);
void changelog_close(struct changelog *cl);   /* NULL is fine */

int32_t changelog_partition_count(const struct changelog *cl);

/* Bring the store's state of partitions parts[0..n) up to the changelog's
 * committed end (the last stable offset, asked when the call starts): read
 * each from the offset the store holds for it (store_changelog_get; the
 * beginning when none) and apply every record (store_change_apply), in
 * write txns of at most CHANGELOG_TXN_RECORDS records, each also storing the
 * partitions' next offsets (store_changelog_put).  Must be called outside
 * a write txn; the store's capture must be off.  A store offset beyond the
 * partition's end (the topic was recreated) or below its start (records
 * deleted) drops the partition (store_partition_drop) and restores it from
 * the start, with a warning.  Logs progress (records, records/s) at most
 * every few seconds and a summary line.  *records: records applied.
 * 0, -1 with err (naming topic, partition and offset of a bad record), or
 * KCLIENT_STOPPED. */
int changelog_restore(struct changelog *cl, struct store *s, const int32_t *parts, size_t n,
                      uint64_t *records, char *err, size_t errlen);

/* Standby replicas: follow parts[0..n) (replaces the followed set; n 0
 * stops following), each from the offset the store holds.  Records of a
 * partition no longer followed are never applied after this call; the new
 * set is assigned by changelog_follow_poll once a second has passed since
 * the last assignment (librdkafka #5573: a partition removed, added and
 * removed again before its fetcher stopped fails an assertion).  Use a
 * reader for standbys and another for restores. */
int changelog_follow(struct changelog *cl, struct store *s, const int32_t *parts, size_t n,
                     char *err, size_t errlen);
/* Apply what arrived for the followed partitions within max_ms (at most
 * CHANGELOG_TXN_RECORDS records) in one write txn with their next offsets.
 * Outside a write txn.  *records: records applied.  0, -1 or KCLIENT_STOPPED. */
int changelog_follow_poll(struct changelog *cl, struct store *s, int max_ms, uint64_t *records,
                          char *err, size_t errlen);

#endif
