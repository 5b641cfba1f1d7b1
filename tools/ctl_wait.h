/* ctl_wait -- creditctl --wait: the outcome of one event, read from creditd's
 * output topics (ledger, overage and rejected).
 *
 * ctlwait_start() must run BEFORE the event is produced: it takes every
 * partition's high watermark of the three topics and assigns the consumer
 * there, so no outcome written after it can be missed.  ctlwait_run() then
 * reads (read_committed) until the event's outcome is seen or the time is up:
 *   - applied: every output whose data.event_id and data.event_source are the
 *     event's -- its credit.ledger entries and, for a usage.void, its
 *     credit.overage.void (a void of an overage-only usage has no ledger
 *     entry) -- printed one JSON object per line after "applied".  Once the
 *     first is read (its batch is committed), the others are either still in
 *     the outbox of the store at db (read then: waited for by output id) or
 *     were delivered before, so below the ledger and overage high watermarks
 *     queried after that read: reading goes on until both hold.  Without db,
 *     the watermarks alone: an output delivered after them is not printed
 *     (the outcome stands);
 *   - rejected: the credit.rejected entry for the event; "rejected REASON:
 *     MESSAGE" is printed and its reason copied out.
 * An event applied without any such output (a duplicate, a usage of 0, a
 * delete of nothing) has no visible outcome: the wait then times out.
 * Alerts (credit.alert) are not read.
 *
 * Ownership: struct ctlwait owns its consumer; one owner thread. */
#ifndef TOOLS_CTL_WAIT_H
#define TOOLS_CTL_WAIT_H

#include <stddef.h>

#include "config/config.h"

#define CTLWAIT_APPLIED  0
#define CTLWAIT_REJECTED 1
#define CTLWAIT_TIMEOUT  2
#define CTLWAIT_REASON_MAX 64

struct ctlwait;

/* A consumer on bootstrap with cfg's kafka.* (creditctl's --config and -X:
 * the producer's), assigned at the end of the three topics (names borrowed:
 * they outlive the wait).  0, or -1 with err naming the topic or property. */
int ctlwait_start(struct ctlwait **out, const char *bootstrap, const struct config *cfg,
                  const char *ledger, const char *overage, const char *rejected, char *err,
                  size_t errlen);

/* Wait up to timeout_ms for the outcome of (source, id); print it.  db:
 * creditd's store (read-only, for the outputs still in its outbox), or NULL.
 * CTLWAIT_APPLIED, CTLWAIT_REJECTED (reason in reason[CTLWAIT_REASON_MAX]),
 * CTLWAIT_TIMEOUT, or -1 with err (Kafka failure, output error). */
int ctlwait_run(struct ctlwait *w, const char *db, const char *source, const char *id,
                int timeout_ms, char reason[CTLWAIT_REASON_MAX], char *err, size_t errlen);

void ctlwait_destroy(struct ctlwait *w);

#endif
