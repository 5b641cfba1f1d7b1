/* jarena.h -- arenas for the JSON trees of the parsing threads (consumer/parseq.c).
 *
 * Why: a parsing thread makes ~9 jansson allocations per event, and its trees
 * live until the engine has passed their chunk, then are freed in bulk: the
 * allocator's per-thread caches do not recycle them and malloc + free cost as
 * much as the parse itself.  An arena gives a chunk's trees bump-allocated
 * memory from a few reused blocks and drops them all at once (jarena_reset):
 * no free per node, no json_decref walk.
 *
 * The contract with jansson (process-wide: jansson has one pair of
 * allocation functions and no context argument):
 *   - jarena_install() makes jansson allocate through this module.  Outside
 *     a jarena_enter .. jarena_leave scope on the calling thread its functions
 *     ARE malloc and free: every thread that is not parsing (configuration,
 *     HTTP, creditctl code, the engine thread) gets malloc'd blocks exactly as
 *     before, so a block jansson malloc'd before the install is freed right
 *     after it, and json_dumps's result may still be freed with free().
 *     Call it at start-up (main), before a second thread uses jansson:
 *     jansson's two function pointers are plain globals.
 *   - Between jarena_enter(a) and jarena_leave() on one thread, jansson's
 *     allocations on that thread come from arena a, and its frees of a's
 *     memory are no-ops (anything else it frees goes to free()).  The trees
 *     made there are valid until jarena_reset(a) or jarena_destroy(a), and
 *     must never be json_decref'd, changed (json_object_set...) or increfed
 *     outside such a scope: their blocks are not malloc's (free() of one
 *     aborts).  parseq's trees are read-only to the engine (parseq.h).
 *   - An arena is used by one thread at a time (hand it over under a lock).
 *   - Allocation failure (a block malloc fails, or the arena's limit is
 *     reached) returns NULL to jansson, which fails that parse as it does
 *     when malloc fails (NULL; on some paths jansson leaves the error text
 *     empty).  parseq's arenas have no limit (SIZE_MAX): only malloc's.
 *
 * Memory: blocks of JARENA_BLOCK bytes, 16-byte aligned allocations (json_t
 * holds int64, double and pointers).  An allocation over JARENA_BLOCK / 2
 * gets a block of its own, and an arena already holding JARENA_KEEP blocks
 * grows by half of what it holds: a huge message costs O(log size) blocks.
 * jarena_reset keeps at most JARENA_KEEP standard blocks for the next use
 * and frees the others: after a huge message the arena is trimmed back.
 *
 * AddressSanitizer builds: each allocation is followed by a poisoned 16-byte
 * redzone, and memory is poisoned while not handed out (free tails, reset
 * blocks): an overflow within an arena or a use after jarena_reset is
 * reported as under malloc. */
#ifndef CREDITD_CONSUMER_JARENA_H
#define CREDITD_CONSUMER_JARENA_H

#include <stddef.h>

#define JARENA_BLOCK (16 * 1024)   /* standard block, header included */
#define JARENA_KEEP 4              /* standard blocks an arena keeps across a reset */

struct jarena_block;

struct jarena {
    struct jarena_block *used;   /* blocks handed out since the last reset, current first */
    struct jarena_block *spare;  /* standard blocks kept for reuse */
    char *cur;                   /* the current block's free room: cur[0, room) */
    size_t room;
    size_t held;                 /* bytes of blocks held (used and spare, headers included) */
    size_t limit;                /* held never exceeds this: beyond it allocation fails */
    int nused, nspare;
};

/* An empty arena holding nothing; limit bounds the bytes it may hold
 * (SIZE_MAX: only malloc's failure limits it). */
void jarena_init(struct jarena *a, size_t limit);

/* n bytes, 16-byte aligned, valid until jarena_reset/destroy; NULL when
 * the limit or malloc refuses. */
void *jarena_alloc(struct jarena *a, size_t n);

/* Drop everything handed out (every pointer from a is invalid after), keep
 * up to JARENA_KEEP standard blocks, free the rest. */
void jarena_reset(struct jarena *a);

/* Free every block; a is empty (jarena_init state) after. */
void jarena_destroy(struct jarena *a);

/* Does p point into memory a handed out since its last reset? */
int jarena_owns(const struct jarena *a, const void *p);

/* Make jansson allocate through this module (see the contract above). */
void jarena_install(void);

/* 1 when jarena_install was called (jansson's functions are this module's). */
int jarena_installed(void);

/* This thread's jansson allocations come from a until jarena_leave. */
void jarena_enter(struct jarena *a);
void jarena_leave(void);

#endif
