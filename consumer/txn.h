/* txn.h -- group mode's transactional producer (Kafka exactly-once v2).
 *
 * One producer per instance, transactional.id fixed for the store (a
 * restarted instance fences its crashed predecessor's open transaction at
 * once: init_transactions aborts it).  A batch is one Kafka transaction:
 * its outputs (overage, ledger, rejected, alerts topics, keyed as the relay
 * keys them), its changelog records (changelog.h: partition = the input
 * partition whose state changed) and its input offsets, sent with the
 * consumer's group metadata (send_offsets_to_transaction) so that an
 * instance that is no longer a member of the current generation (a zombie)
 * cannot commit: its transaction fails and is aborted, and nothing it
 * produced becomes visible to read_committed readers.
 *
 * Not thread-safe: the pipeline thread only. */
#ifndef CREDITD_CONSUMER_TXN_H
#define CREDITD_CONSUMER_TXN_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <librdkafka/rdkafka.h>

#include "config/config.h"
#include "engine/state.h"

/* txn_commit: the transaction was aborted (an abortable error: a
 * rebalance fenced this generation, a broker refused a write, a timeout):
 * nothing of it is visible; apply the batch again from the committed
 * offsets. */
#define TXN_ABORTED 1

struct txn;

/* The producer (kafka.* of c, bootstrap overriding bootstrap.servers when
 * not NULL) with transactional.id tid (copied), after init_transactions
 * (bounded by KCLIENT_META_TIMEOUT_MS; an authentication failure or the
 * stop flag end it).  npart: the changelog's partition count.  0, -1 with
 * err, or KCLIENT_STOPPED. */
int txn_open(struct txn **out, const struct config *c, const char *bootstrap, const char *tid,
             int32_t npart, volatile sig_atomic_t *stop, char *err, size_t errlen);
/* Abort an open transaction and destroy the producer; NULL is fine. */
void txn_close(struct txn *t);

int txn_begin(struct txn *t, char *err, size_t errlen);
/* Produce into the open transaction (copied). */
int txn_output(struct txn *t, enum eng_out_kind kind, const char *key, const char *json, size_t len,
               char *err, size_t errlen);
/* A changelog record of input partition p (val NULL: tombstone). */
int txn_change(struct txn *t, int32_t partition, const uint8_t *key, size_t klen, const uint8_t *val,
               size_t vlen, char *err, size_t errlen);

/* Send offsets (the input's next offsets) with the consumer's group
 * metadata, then commit.  0: committed; clog_next[p] (npart entries) is
 * then the offset after this transaction's last changelog record of
 * partition p, or -1 where it wrote none.  TXN_ABORTED (err says why), or -1
 * on a fatal error (fenced by a newer producer with the same id, a fatal
 * librdkafka error, authorization): the instance must stop. */
int txn_commit(struct txn *t, rd_kafka_t *consumer, rd_kafka_topic_partition_list_t *offsets,
               int64_t *clog_next, char *err, size_t errlen);
/* Abort the open transaction (after a failure before txn_commit).  0, or
 * -1 (fatal: stop). */
int txn_abort(struct txn *t, char *err, size_t errlen);

#endif
