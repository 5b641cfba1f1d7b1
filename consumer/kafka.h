/* kafka.h -- librdkafka plumbing shared by creditd's input consumer, outbox
 * relay and embedded broker: a client configuration built from the loaded
 * config (kafka.* passed through, then creditd's own required settings), and
 * the error callback that records fatal errors instead of aborting.
 *
 * Each rd_kafka_t created from kafka_conf_new() gets its own struct
 * kafka_health as opaque; the owner checks kafka_health_fatal() in its loop. */
#ifndef CREDITD_CONSUMER_KAFKA_H
#define CREDITD_CONSUMER_KAFKA_H

#include <stddef.h>
#include <librdkafka/rdkafka.h>

#include "config/config.h"

#define KAFKA_ERRLEN 512

struct kafka_health {
    const char *who;              /* "consumer", "relay", ... for messages */
    int fatal;                    /* set by the error callback */
    char reason[KAFKA_ERRLEN];    /* the fatal error, once fatal is set */
};

/* A name = value pair creditd forces after the kafka.* pass-through. */
struct kafka_prop { const char *name, *value; };

/* A new configuration: kafka.* from c (in order), bootstrap.servers =
 * bootstrap when not NULL, then the `forced` pairs (NULL-terminated by a
 * NULL name).  `defaults` are applied first, so kafka.* may override them.
 * h is the error callback's opaque (must outlive the handle).  NULL with err
 * on a rejected property (naming it). */
rd_kafka_conf_t *kafka_conf_new(const struct config *c, const char *bootstrap,
                                const struct kafka_prop *defaults,
                                const struct kafka_prop *forced, struct kafka_health *h,
                                char *err, size_t errlen);

/* 1 (with the reason in err) when the handle hit a fatal error. */
int kafka_health_fatal(const struct kafka_health *h, char *err, size_t errlen);

#endif
