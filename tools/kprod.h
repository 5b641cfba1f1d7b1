/* kprod -- the librdkafka producer set-up shared by credit-produce and
 * credit-tick: configuration (bootstrap, the tool's defaults, -X key=value
 * overrides), a delivery-report callback that counts delivered and failed
 * messages, and an error callback that prints Kafka errors and flags a fatal
 * one.  Every message is prefixed with k->prog.
 *
 * Ownership: the caller owns struct kprod and must keep it alive (and at the
 * same address) until rd_kafka_destroy() of the producer, since it is the
 * producer's opaque, updated from rd_kafka_poll()/rd_kafka_flush().  kprod_new
 * keeps no pointer to bootstrap, defs or xs after it returns.  The returned
 * producer belongs to the caller (rd_kafka_destroy). */
#ifndef TOOLS_KPROD_H
#define TOOLS_KPROD_H

#include <stddef.h>

#include <librdkafka/rdkafka.h>

struct kprod;

/* Reports one failed delivery; called after k->failed has counted it. */
typedef void kprod_fail_fn(const struct kprod *k, const rd_kafka_message_t *m);

struct kprod {
    const char *prog;        /* message prefix, e.g. "credit-tick" (not owned) */
    kprod_fail_fn *on_fail;  /* NULL: "PROG: delivery to partition P failed: ERR" */
    unsigned long delivered, failed;
    int fatal;               /* set by a fatal Kafka error (idempotence) */
};

/* A producer with bootstrap.servers=bootstrap, then the ndefs defaults
 * defs[i] = {key, value}, then the nx "key=value" strings xs (so -X overrides
 * a default).  On a bad property or failure to create it, prints why and
 * returns NULL. */
rd_kafka_t *kprod_new(struct kprod *k, const char *bootstrap, const char *const (*defs)[2],
                      size_t ndefs, const char *const *xs, int nx);

#endif
