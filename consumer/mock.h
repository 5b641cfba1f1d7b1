/* mock.h -- the embedded broker: librdkafka's in-process mock cluster, used
 * when no kafka.bootstrap.servers is configured (demo and tests).  It keeps
 * data in memory only: a restart of creditd starts an empty cluster (with a
 * new cluster id, which the store then refuses: use a fresh store).  The test
 * broker tests/kafka/kmock.c is the same cluster with fault injection. */
#ifndef CREDITD_CONSUMER_MOCK_H
#define CREDITD_CONSUMER_MOCK_H

#include <stddef.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "config/config.h"

#define MOCK_PARTITIONS 4   /* partitions of every topic creditd's embedded broker creates */

struct mock;

/* Start a one-broker cluster with the config's input and output topics
 * (MOCK_PARTITIONS partitions each).  0, or -1 with err. */
int mock_start(struct mock **out, const struct config *c, char *err, size_t errlen);

/* Start a one-broker cluster with topics[i] of partitions[i] partitions. */
int mock_start_topics(struct mock **out, const char *prog, const char *const *topics,
                      const int *partitions, size_t n, char *err, size_t errlen);

/* "HOST:PORT" of the cluster, valid until mock_stop(). */
const char *mock_bootstrap(const struct mock *m);

/* The cluster, for fault injection (rd_kafka_mock_*); valid until mock_stop(). */
rd_kafka_mock_cluster_t *mock_cluster(const struct mock *m);

void mock_stop(struct mock *m);

#endif
