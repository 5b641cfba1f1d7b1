/* group.h -- creditd in group mode (input.assignment = group): instances
 * with the same group.id share the input partitions through the consumer
 * group protocol (cooperative-sticky); each batch's outputs, the changes of
 * its state (the changelog, changelog.h) and its input offsets are written
 * in one Kafka transaction (exactly-once v2: the consumer's group metadata
 * fences a zombie); the local store is a cache of the changelog, restored on
 * every assignment.  consumer/README.md "Group mode" has the argument. */
#ifndef CREDITD_CONSUMER_GROUP_H
#define CREDITD_CONSUMER_GROUP_H

#include <signal.h>
#include <stddef.h>

#include "config/config.h"

/* Run until *stop is set (0) or a fatal error (-1 with err; PIPELINE_HALTED
 * (pipeline.h) when the crash-loop guard stopped it). */
int group_run(const struct config *c, volatile sig_atomic_t *stop, char *err, size_t errlen);

#endif
