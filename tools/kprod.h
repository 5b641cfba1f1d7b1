/* kprod -- the producer of credit-produce, credit-tick and creditctl, on the
 * shared Kafka client set-up (consumer/kclient.h): the tool's defaults, then
 * the kafka.* of its configuration (--config, then -X key=value); a
 * delivery-report callback that counts delivered and failed messages.  Messages go through the log writer (consumer/log.h) with
 * k->prog as their prefix, at level error.
 *
 * The tools have no stop flag: their waits (kprod_flush, the tools' own
 * queue-full retries) end on a fatal error, an authentication failure, or all
 * brokers down for KCLIENT_DOWN_GRACE_MS (kprod_failed).
 *
 * Ownership: the caller owns struct kprod and must keep it alive (and at the
 * same address) until kprod_destroy(), since it is the delivery callback's
 * opaque, updated from the polls.  kprod_new keeps no pointer to bootstrap,
 * defs or cfg after it returns. */
#ifndef TOOLS_KPROD_H
#define TOOLS_KPROD_H

#include <stddef.h>

#include <librdkafka/rdkafka.h>

#include "consumer/kclient.h"

struct kprod;

/* Reports one failed delivery; called after k->failed has counted it. */
typedef void kprod_fail_fn(const struct kprod *k, const rd_kafka_message_t *m);

struct kprod {
    const char *prog;        /* message prefix, e.g. "credit-tick" (not owned) */
    kprod_fail_fn *on_fail;  /* NULL: "PROG: delivery to partition P failed: ERR" */
    unsigned long delivered, failed;
    struct kclient *kc;      /* set by kprod_new */
    int gave_up;             /* kprod_failed() said so (and printed why) */
};

/* A producer with the defaults defs (NULL-name terminated), then cfg's
 * kafka.* (so --config and -X override a default; cfg may be NULL), then
 * bootstrap.servers=bootstrap.  0, or -1 after printing why (a bad
 * property, no client). */
int kprod_new(struct kprod *k, const char *bootstrap, const struct kclient_prop *defs,
              const struct config *cfg);

rd_kafka_t *kprod_rk(const struct kprod *k);

/* 1 once the producer must give up (see above); the cause is printed once. */
int kprod_failed(struct kprod *k);

/* Serve delivery reports until every message has one, for up to timeout_ms.
 * 0, or -1 after printing why. */
int kprod_flush(struct kprod *k, int timeout_ms);

void kprod_destroy(struct kprod *k);

#endif
