/* jarena.c -- see jarena.h.
 *
 * An arena is a list of blocks handed out since the last reset (`used`, the
 * current one first, bump-allocated from cur) and a few standard blocks kept
 * for reuse (`spare`).  A block is a header and its data, one malloc each. */
#include "consumer/jarena.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

#if defined(__SANITIZE_ADDRESS__)
#define JARENA_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define JARENA_ASAN 1
#endif
#endif

#ifdef JARENA_ASAN
#include <sanitizer/asan_interface.h>
#define REDZONE 16   /* poisoned bytes after each allocation */
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define REDZONE 0
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define ALIGN 16
#define GROW 8   /* with this many blocks in use, new blocks grow by half of what is held */

struct jarena_block {
    struct jarena_block *next;
    size_t size;                 /* bytes, header included */
};
#define HDR sizeof(struct jarena_block)
_Static_assert(HDR % ALIGN == 0, "block data must start 16-byte aligned");
_Static_assert(JARENA_BLOCK % ALIGN == 0 && JARENA_BLOCK > 2 * HDR, "block size");

static size_t round_up(size_t n) {
    return (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
}

static char *data_of(struct jarena_block *b) {
    return (char *)b + HDR;
}

void jarena_init(struct jarena *a, size_t limit) {
    a->used = a->spare = NULL;
    a->cur = NULL;
    a->room = 0;
    a->held = 0;
    a->limit = limit;
    a->nused = a->nspare = 0;
}

/* A block of size bytes (a multiple of ALIGN), its data poisoned; NULL
 * past the limit or when malloc fails. */
static struct jarena_block *block_new(struct jarena *a, size_t size) {
    if (size > a->limit || a->held > a->limit - size) return NULL;
    struct jarena_block *b = aligned_alloc(ALIGN, size);
    if (!b) return NULL;
    b->next = NULL;
    b->size = size;
    a->held += size;
    POISON(data_of(b), size - HDR);
    return b;
}

static void block_free(struct jarena *a, struct jarena_block *b) {
    a->held -= b->size;
    UNPOISON(data_of(b), b->size - HDR);
    free(b);
}

/* The current block has less than need bytes of room: a block of its own
 * for a large allocation (linked behind the current one, whose room stays
 * usable), else a new current block (a spare, or a new one). */
static char *alloc_slow(struct jarena *a, size_t need) {
    struct jarena_block *b;
    if (need > JARENA_BLOCK / 2) {
        if (need > SIZE_MAX - HDR - ALIGN || !(b = block_new(a, round_up(HDR + need)))) return NULL;
        if (a->used) {
            b->next = a->used->next;
            a->used->next = b;
        } else {
            a->used = b;   /* current, and full */
            a->cur = NULL;
            a->room = 0;
        }
        a->nused++;
        return data_of(b);
    }
    if (a->spare) {
        b = a->spare;
        a->spare = b->next;
        a->nspare--;
    } else {
        size_t size = JARENA_BLOCK;
        if (a->nused >= GROW && a->held / 2 > size) size = round_up(a->held / 2);
        if (!(b = block_new(a, size))) return NULL;
    }
    b->next = a->used;
    a->used = b;
    a->nused++;
    a->cur = data_of(b) + need;
    a->room = b->size - HDR - need;
    return data_of(b);
}

void *jarena_alloc(struct jarena *a, size_t n) {
    if (n > SIZE_MAX / 2) return NULL;
    size_t need = round_up(n ? n : 1) + REDZONE;
    char *p;
    if (a->room >= need) {
        p = a->cur;
        a->cur += need;
        a->room -= need;
    } else if (!(p = alloc_slow(a, need))) {
        return NULL;
    }
    UNPOISON(p, n);
    return p;
}

int jarena_owns(const struct jarena *a, const void *p) {
    uintptr_t x = (uintptr_t)p;
    for (struct jarena_block *b = a->used; b; b = b->next)
        if (x >= (uintptr_t)data_of(b) && x < (uintptr_t)b + b->size) return 1;
    return 0;
}

void jarena_reset(struct jarena *a) {
    struct jarena_block *b = a->used, *next;
    for (; b; b = next) {
        next = b->next;
        if (b->size == JARENA_BLOCK && a->nspare < JARENA_KEEP) {
            POISON(data_of(b), b->size - HDR);
            b->next = a->spare;
            a->spare = b;
            a->nspare++;
        } else {
            block_free(a, b);
        }
    }
    a->used = NULL;
    a->nused = 0;
    a->cur = NULL;
    a->room = 0;
}

void jarena_destroy(struct jarena *a) {
    jarena_reset(a);
    struct jarena_block *b = a->spare, *next;
    for (; b; b = next) {
        next = b->next;
        block_free(a, b);
    }
    jarena_init(a, a->limit);
}

/* ---- jansson's allocation functions --------------------------------------- */

/* The arena of this thread's current jarena_enter scope, or NULL.  The one
 * piece of mutable static state here, per thread: jansson's allocation
 * functions take no argument, so the scope is how they find the arena. */
static _Thread_local struct jarena *scope;

static void *json_alloc(size_t n) {
    struct jarena *a = scope;
    return a ? jarena_alloc(a, n) : malloc(n);
}

static void json_release(void *p) {
    struct jarena *a = scope;
    if (a && jarena_owns(a, p)) return;   /* dropped with the arena */
    free(p);
}

void jarena_install(void) {
    json_set_alloc_funcs(json_alloc, json_release);
}

int jarena_installed(void) {
    json_malloc_t m;
    json_free_t f;
    json_get_alloc_funcs(&m, &f);
    return m == json_alloc && f == json_release;
}

void jarena_enter(struct jarena *a) {
    scope = a;
}

void jarena_leave(void) {
    scope = NULL;
}
