/* handoff.h -- what the outbox relay's thread and creditd's engine thread
 * hand each other (consumer/relay.c): one mutex, one condition variable,
 * fixed size (a ring of `cap` slots and a few words).
 *
 * Relay thread -> engine thread: the outbox entries it handed to the
 * producer, in seq order, one slot each.  The relay thread fills slots at
 * the tail (handoff_push), marks them done when their delivery is confirmed
 * (or found delivered at start-up), and publishes the done prefix
 * (handoff_publish).  The engine thread reads the published slots
 * (handoff_ready, handoff_at) and gives them back (handoff_release).  A slot
 * is written only by the relay thread until published and only read by the
 * engine thread from then until released, so slots need no lock; the
 * indexes move under the mutex (which orders the slot writes before their
 * reads).  At most cap slots are out: a full ring stops the relay from
 * producing until the engine thread releases (bounded in-flight window).
 *
 * Engine thread -> relay thread: the last outbox seq committed
 * (handoff_commit) and a stop request (handoff_stop).  Both call the wake
 * function given at handoff_new (outside the lock), which ends the relay
 * thread's wait; so does handoff_release after a push found the ring full.
 *
 * Relay thread -> engine thread, besides the slots: `complete`, every
 * outbox seq <= it is in a published slot (or left the outbox before), the
 * time of the last publish, and a failure text.  The engine thread waits
 * for them with handoff_wait.
 *
 * Exactly one relay thread and one engine thread use a handoff; which
 * functions are whose is said below.  Indexes are absolute (slot idx %
 * cap). */
#ifndef CREDITD_CONSUMER_HANDOFF_H
#define CREDITD_CONSUMER_HANDOFF_H

#include <stddef.h>
#include <stdint.h>

#define HANDOFF_ERRLEN 512

struct handoff_slot {
    uint64_t seq;        /* outbox seq */
    int64_t offset;      /* the output message's offset, when done */
    int32_t partition;   /* its partition, when done */
    uint8_t kind;        /* enum eng_out_kind */
    uint8_t done;        /* confirmed (relay thread sets it before publishing) */
    uint8_t reported;    /* confirmed by a delivery report of this run (not found at start-up) */
};

struct handoff;

/* cap slots (1..2^24).  wake(wake_arg) is called from the engine thread to
 * end the relay thread's wait; it must not call back into the handoff.
 * 0, or -1 with err. */
int handoff_new(struct handoff **out, size_t cap, void (*wake)(void *), void *wake_arg,
                char *err, size_t errlen);
void handoff_free(struct handoff *h);  /* NULL is fine; no thread may use it any more */

/* ---- relay thread ---- */

/* The last seq committed (handoff_commit) and whether to stop. */
void handoff_requests(struct handoff *h, uint64_t *committed, int *stop);
/* A zeroed slot at the tail, or NULL when the ring is full (the next
 * handoff_release wakes the relay thread).  Its index: handoff_tail() - 1. */
struct handoff_slot *handoff_push(struct handoff *h);
uint64_t handoff_tail(const struct handoff *h);
/* Take back the slot the last handoff_push returned (not done, not
 * published): its entry could not be handed to the producer after all. */
void handoff_unpush(struct handoff *h);
/* A slot pushed and not yet published (idx in [published, tail)), else NULL. */
struct handoff_slot *handoff_slot(struct handoff *h, uint64_t idx);
/* Publish the done slots at the front of the unpublished ones, and
 * complete (kept when lower than before), with the wall-clock time now_ms;
 * wakes the engine thread when anything moved.  Returns the slots
 * published by this call. */
size_t handoff_publish(struct handoff *h, uint64_t complete, int64_t now_ms);
/* 1 when every pushed slot is published. */
int handoff_all_published(const struct handoff *h);
/* A failure for the engine thread (the first one is kept). */
void handoff_fail(struct handoff *h, const char *why);

/* ---- engine thread ---- */

/* After a commit: the outbox holds seqs up to `seq` (wakes the relay
 * thread when it grew). */
void handoff_commit(struct handoff *h, uint64_t seq);
/* Ask the relay thread to stop (wakes it). */
void handoff_stop(struct handoff *h);
/* Published slots not yet released: [*head, returned index); *complete and
 * *at_ms (time of the last publish, 0: none yet) as published. */
uint64_t handoff_ready(struct handoff *h, uint64_t *head, uint64_t *complete, int64_t *at_ms);
const struct handoff_slot *handoff_at(const struct handoff *h, uint64_t idx);
/* Slots before upto are read: the relay thread may reuse them. */
void handoff_release(struct handoff *h, uint64_t upto);
/* 1 with the relay thread's failure in err, else 0. */
int handoff_failed(struct handoff *h, char *err, size_t errlen);
/* Wait up to timeout_ms until a slot is published and not released, the
 * published complete is >= complete, or a failure; 1 when one of them
 * holds, 0 on timeout. */
int handoff_wait(struct handoff *h, uint64_t complete, int timeout_ms);

#endif
