/* relay.h -- the outbox relay: delivers the store's outbox, in seq order, to
 * the output topics with an idempotent producer, and tells the batch loop
 * what may leave the outbox.
 *
 * Every output message is keyed by the entry's key (org) and carries the
 * headers creditd-outbox-seq (decimal seq) and creditd-instance (the store's
 * random instance id, so that stores sharing output topics never mistake each
 * other's messages for their own).
 *
 * Exactly-once hand-over (no loss, no duplicate across crashes):
 *   - an entry leaves the outbox (store_outbox_delete_upto, in the next batch
 *     transaction) only once it and every lower seq have a successful
 *     delivery report;
 *   - the same transaction records, per output partition, the offset after
 *     the last message confirmed for the deleted entries (meta relay.KIND.P);
 *   - at start-up, before sending anything, the relay reads every output
 *     partition from that offset to its end (outscan.h) and treats the seqs
 *     found there as delivered.
 * Any failed delivery report stops creditd (the outbox keeps the entry; the
 * next start finds out whether it was written).
 *
 * Threads.  After relay_start the relay has a thread of its own ("relay"):
 * it reads the committed outbox in store views (store.h: a read txn of its
 * own, so the engine thread's write txn goes on meanwhile), produces, and
 * serves the producer's delivery reports and errors (rd_kafka_poll); it
 * never writes the store.  What it confirmed goes back to the engine thread
 * through consumer/handoff.h in seq order (at most RELAY_WINDOW entries
 * out between the two); the engine thread (every other relay_* call)
 * deletes confirmed entries inside its batch txns (relay_txn_write) and
 * tells the relay what it committed (relay_committed), which wakes it.
 * Before relay_start and after relay_close everything is the caller's. */
#ifndef CREDITD_CONSUMER_RELAY_H
#define CREDITD_CONSUMER_RELAY_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "store/store.h"

#define RELAY_WINDOW 65536            /* entries between the two threads at most (handoff ring) */
#define RELAY_SCAN_TIMEOUT_MS 120000  /* start-up read-back of the outputs */

struct relay;

/* Producer, output topic metadata (all three topics must exist) and their
 * current ends.  stop is the daemon's stop flag, kept for the relay's life:
 * the start-up waits end on it (and on an authentication failure).
 * 0; -1 with err; KCLIENT_STOPPED when *stop was set while waiting. */
int relay_open(struct relay **out, const struct config *c, const char *bootstrap,
               volatile sig_atomic_t *stop, char *err, size_t errlen);
void relay_close(struct relay *r);

/* Inside the start-up write txn: load (or, on a fresh store, create) the
 * instance id and the per-partition confirmed offsets (a fresh store starts
 * at the ends seen by relay_open), and the last outbox seq.  No network
 * waits. */
int relay_prepare(struct relay *r, struct store *s, int fresh, char *err, size_t errlen);

/* After the start-up txn committed: read the outputs back (see above).
 * 0; -1 with err; KCLIENT_STOPPED when *stop was set meanwhile. */
int relay_recover(struct relay *r, const struct config *c, const char *bootstrap,
                  char *err, size_t errlen);

/* After relay_recover: start the relay thread, reading s in store views
 * (s outlives the relay: relay_close before store_close).  0, or -1 with err. */
int relay_start(struct relay *r, struct store *s, char *err, size_t errlen);

/* Take what the relay thread confirmed (no wait).  -1 (err) when a
 * delivery failed or the producer hit a fatal error. */
int relay_check(struct relay *r, char *err, size_t errlen);
/* relay_check, waiting up to timeout_ms (in slices, ending early on the
 * stop flag) for every committed entry to be confirmed.  0, or -1 (err). */
int relay_wait(struct relay *r, int timeout_ms, char *err, size_t errlen);
/* After a batch txn committed: the outbox holds seqs up to seq (wakes the
 * relay thread when it grew). */
void relay_committed(struct relay *r, uint64_t seq);

/* Inside a batch txn: delete what was confirmed (and taken) and record the
 * confirmed offsets.  After the commit, call relay_txn_done(r, committed). */
int relay_txn_write(struct relay *r, struct store *s, char *err, size_t errlen);
void relay_txn_done(struct relay *r, int committed);
/* 1 when relay_txn_write() has something to write. */
int relay_txn_needed(const struct relay *r);

/* For the metrics: every outbox seq <= the returned one is confirmed
 * (delivered now, or found delivered by an earlier run at start-up), as
 * the relay thread published at *at_ms (wall clock, ms since the epoch);
 * and the successful delivery reports taken since relay_open, by enum
 * eng_out_kind, added to out[]. */
uint64_t relay_delivered_upto(const struct relay *r, int64_t *at_ms);
void relay_delivered_add(const struct relay *r, uint64_t out[ENG_OUT_NKIND]);

/* Shutdown: wait up to timeout_ms for every committed outbox entry to be
 * confirmed; on timeout stop the relay thread and drop what is left from
 * the producer (the outbox keeps it: the next start reads the outputs back
 * and sends only what is missing).  0 when everything was confirmed, 1 on
 * timeout, -1 on a delivery error.  Commit the result with
 * relay_txn_write() afterwards. */
int relay_drain(struct relay *r, int timeout_ms, char *err, size_t errlen);

#endif
