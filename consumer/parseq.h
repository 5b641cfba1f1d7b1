/* parseq.h -- parse ahead, apply in order: the input pipeline shared by
 * creditd (static and group mode) and credit-replay.
 *
 * Messages are parsed (engine_parse: jansson) and their content hashed
 * (engine_hash, which the idempotency check needs) on `nthreads` parsing
 * threads
 * while the caller applies earlier ones through the engine and the store on
 * its own thread; the caller gets the parses back in exactly the order the
 * messages came in.  The engine, the store and LMDB stay on the caller's
 * thread: a parsing thread touches nothing but the message bytes and the
 * JSON trees it makes.  nthreads 0 parses on the caller's thread (inline,
 * no thread at all): the same results, the old cost.
 *
 * Two ways in:
 *   - push (source NULL): the caller pushes messages (parseq_push) and takes
 *     them back parsed (parseq_next).  The bytes are borrowed, not copied:
 *     they must stay valid until their item was taken and passed, or until
 *     parseq_reset.  creditd pushes the payloads of the batch's Kafka
 *     messages as it applies the batch.
 *   - source: a parsing thread pulls the input itself through the source's
 *     read function (one call at a time, in order), which copies lines in
 *     with parseq_add; credit-replay's files (tools/lineq.c).
 *
 * Bounded: a ring of PARSEQ_SLOTS(n) chunks of PARSEQ_CHUNK messages
 * (a source's: PARSEQ_AHEAD more, used only while parseq_ahead is on),
 * allocated at parseq_new; at most that many trees are alive at once.  Why
 * chunks of 16: a jansson tree that lives long is expensive (parsing 10,000
 * lines before freeing any runs at ~40% of the speed of parsing and freeing
 * one at a time), and locking per message would cost as much as parsing
 * small ones.  Nothing is allocated per message by this module (a
 * source's chunk text grows geometrically and is reused).
 *
 * Trees: when the program called jarena_install() (consumer/jarena.h:
 * creditd and credit-replay do, first thing in main), each chunk has an
 * arena and its trees are allocated there by the parsing thread; once the
 * caller passed the chunk its arena is reset (no json_decref walk, no free
 * per node; a few blocks kept, the rest freed).  The trees are read-only to
 * the caller: never json_decref, json_incref or change them (their memory
 * is not malloc's).  Without jarena_install the trees come from jansson's
 * allocator and are json_decref'd on a parsing thread, as before.
 *
 * Threads: parseq_push, parseq_next, parseq_flush, parseq_reset and
 * parseq_free are for one thread (the caller's); parseq_new seeds jansson's
 * hash before any parsing thread starts. */
#ifndef CREDITD_CONSUMER_PARSEQ_H
#define CREDITD_CONSUMER_PARSEQ_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct engine_pre;   /* engine/engine.h */

#define PARSEQ_CHUNK 16
#define PARSEQ_THREADS_MAX 32           /* input.parse_threads is bounded by this */
#define PARSEQ_SLOTS(n) (8 + 4 * (n))    /* chunks parsed ahead for n parsing threads */
#define PARSEQ_AHEAD 128                 /* a source's extra chunks, parsed while the caller commits */

struct parseq;
struct parseq_chunk;   /* a chunk being filled by a source's read function */

/* One message, parsed.  Borrowed from the queue: valid until the next
 * parseq_next, parseq_reset or parseq_free. */
struct parseq_item {
    const char *buf;             /* the message (push: the caller's bytes; source: NUL-terminated) */
    size_t len;
    int64_t no;                  /* the caller's number (line, offset) */
    void *tag;                   /* the caller's (push), NULL for a source */
    json_t *root;                /* engine_parse's tree, or NULL: invalid JSON, jerr says why */
    const json_error_t *jerr;
    /* engine_prepare of root (content hash, time, decoded fields),
     * computed on the parsing thread; NULL when root is: hand it to
     * engine_apply_prepared. */
    const struct engine_pre *pre;
};

/* A source of input, called on a parsing thread (never two calls at
 * once, always in order).  read adds up to `room` (>= 1) lines to c with
 * parseq_add and returns 0 when more may follow, 1 at the end of the input
 * (after adding its last lines), -1 on an error (err filled; the lines it
 * added before still count) or PARSEQ_STOPPED when interrupt made it
 * return.  A read that waits (a pipe) should add what it has and return:
 * the caller cannot take lines still in a chunk being filled.  interrupt is
 * called by parseq_free from the caller's thread: a blocked read must
 * return soon after. */
struct parseq_source {
    int (*read)(void *arg, struct parseq_chunk *c, int room, char *err, size_t errlen);
    void (*interrupt)(void *arg);
    void *arg;
};
#define PARSEQ_STOPPED (-2)

/* Copy one line (without its newline) into chunk c: 0, or -1 when out of
 * memory.  Only from a source's read function. */
int parseq_add(struct parseq_chunk *c, const char *buf, size_t len, int64_t no);

/* A queue with nthreads (0..PARSEQ_THREADS_MAX) parsing threads, in push
 * mode (src NULL) or reading src (copied; src->arg borrowed until
 * parseq_free).  0, or -1 with err. */
int parseq_new(struct parseq **out, int nthreads, const struct parseq_source *src, char *err,
               size_t errlen);

/* Push mode: queue buf[0..len) (borrowed) for parsing.  1 when queued; 0
 * when the ring is full of messages not yet taken (take one with
 * parseq_next, then push again).  Never waits for the caller itself: it
 * only waits while a parsing thread frees the trees of passed chunks. */
int parseq_push(struct parseq *q, const char *buf, size_t len, int64_t no, void *tag);

/* Push mode: hand a partly filled chunk to the parsing threads now
 * (parseq_next does it when it needs a message of that chunk). */
void parseq_flush(struct parseq *q);

/* The next message in order, parsed: 1 with *it; 0 when there is none
 * (push: everything pushed was taken; source: the end of the input); -1
 * when the source failed (err says why; every line before was returned). */
int parseq_next(struct parseq *q, struct parseq_item *it, char *err, size_t errlen);

/* Push mode: forget every message pushed and not yet taken (after an
 * aborted batch, before applying it again); the queue is empty after. */
void parseq_reset(struct parseq *q);

/* Source mode: on (1), the source is read and parsed up to PARSEQ_AHEAD
 * chunks further than PARSEQ_SLOTS(n) while the caller is busy elsewhere
 * (credit-replay: during a commit); off (0) again, reading resumes only
 * once the caller is back within PARSEQ_SLOTS(n) chunks of the reader.
 * Push mode: no effect. */
void parseq_ahead(struct parseq *q, int on);

/* Messages pushed and not yet taken (push mode). */
size_t parseq_pending(const struct parseq *q);
/* Messages the ring holds: PARSEQ_SLOTS(nthreads) * PARSEQ_CHUNK (a
 * source's ring: PARSEQ_AHEAD chunks more). */
size_t parseq_capacity(const struct parseq *q);
/* Bytes the chunks' arenas hold (as of their last parse or clear; 0
 * without jarena_install). */
size_t parseq_arena_bytes(struct parseq *q);

/* Stop the threads (a source is interrupted), free every tree and q.
 * NULL is ignored. */
void parseq_free(struct parseq *q);

#endif
