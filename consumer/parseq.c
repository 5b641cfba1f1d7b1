/* parseq.c -- see parseq.h.
 *
 * The ring.  Slots are used in order: w counts the slots filled (push: by
 * the caller; source: by the parsing thread that holds the source), r the
 * slots the caller took; slot i is q->slot[i % nslots], and the slots of
 * [r, w) hold messages not yet passed.  A slot's life:
 *
 *   FREE -> FILLING -> READY -> PARSING -> PARSED -> DONE -> CLEARING -> FREE
 *
 * FILLING: the caller (push) or the source reader owns it; READY: complete,
 * waiting for a parsing thread (push mode; a source's reader parses what it
 * read itself: FILLING -> PARSING); PARSED: the caller reads its items
 * without the lock (nobody writes them until DONE); DONE: the caller passed
 * it; CLEARING: a parsing thread frees its trees.  Every transition is made
 * under mu; the work between (filling, parsing, clearing) is done without
 * it, by whoever moved the slot into that state.  With no thread the caller
 * does that work itself instead of waiting (worker_step). */
#include "consumer/parseq.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "consumer/jarena.h"
#include "engine/engine.h"

_Static_assert(PARSEQ_THREADS_MAX == CONFIG_PARSE_THREADS_MAX, "input.parse_threads bound");

enum { S_FREE = 0, S_FILLING, S_READY, S_PARSING, S_PARSED, S_DONE, S_CLEARING };

struct qitem {
    const char *buf;             /* push: the caller's bytes; source: set from off once filled */
    size_t off, len;
    int64_t no;
    void *tag;
    json_t *root;
    json_error_t jerr;
    struct engine_pre pre;       /* engine_prepare of root */
};

struct parseq_chunk {
    int state;
    int n;
    int use_arena;               /* trees in arena (jarena installed), else json_decref'd */
    char *text;                  /* source mode: the chunk's lines, each NUL-terminated */
    size_t tlen, tcap;
    struct jarena arena;         /* the trees' memory: whoever holds the slot uses it */
    size_t arena_held;           /* arena.held as of the last transition (under mu) */
    struct qitem it[PARSEQ_CHUNK];
};

struct parseq {
    pthread_mutex_t mu;
    pthread_cond_t work;         /* parsing threads wait for work here */
    pthread_cond_t done;         /* the caller waits for a parse or a free slot here */
    pthread_t *th;
    int nth, started;
    struct parseq_source src;
    int has_src;
    struct parseq_chunk *slot;
    int nslots;                  /* the ring: window, plus PARSEQ_AHEAD for a source */
    int window;                  /* chunks parsed ahead of the caller, normally */
    int ahead;                   /* source: may use the whole ring (the caller is away) */
    uint64_t w, r;               /* under mu (the caller reads them without it: it alone moves r) */
    int filling;                 /* slot w is FILLING (push: the caller's; source: the reader's) */
    int holding, pos;            /* caller: it took slot r and passed pos of its items */
    int src_end, src_failed, stop;
    uint64_t pushed, taken;      /* messages (push mode): caller only */
    char src_err[512];
};

static struct parseq_chunk *at(struct parseq *q, uint64_t i) {
    return &q->slot[i % (uint64_t)q->nslots];
}

int parseq_add(struct parseq_chunk *c, const char *buf, size_t len, int64_t no) {
    if (c->n >= PARSEQ_CHUNK) return -1;
    if (c->tlen + len + 1 > c->tcap) {
        size_t cap = c->tcap ? c->tcap : 8192;
        while (cap < c->tlen + len + 1) cap *= 2;
        char *t = realloc(c->text, cap);
        if (!t) return -1;
        c->text = t;
        c->tcap = cap;
    }
    struct qitem *it = &c->it[c->n++];
    memcpy(c->text + c->tlen, buf, len);
    c->text[c->tlen + len] = 0;
    it->buf = NULL;
    it->off = c->tlen;
    it->len = len;
    it->no = no;
    it->tag = NULL;
    it->root = NULL;
    c->tlen += len + 1;
    return 0;
}

/* Without mu: free a slot's trees (CLEARING, or FILLING before a refill):
 * in an arena, drop the arena's contents at once (no walk, no free per
 * node; the arena keeps a few blocks for the next parse). */
static void chunk_clear(struct parseq_chunk *c) {
    for (int k = 0; k < c->n; k++) {
        if (!c->use_arena) json_decref(c->it[k].root);
        c->it[k].root = NULL;
    }
    if (c->use_arena) jarena_reset(&c->arena);
    c->n = 0;
    c->tlen = 0;
}

/* Without mu: parse every message of a PARSING slot, its trees in its arena. */
static void chunk_parse(struct parseq_chunk *c) {
    if (c->use_arena) jarena_enter(&c->arena);
    for (int k = 0; k < c->n; k++) {
        struct qitem *it = &c->it[k];
        it->root = engine_parse(it->buf, it->len, &it->jerr);
        engine_prepare(it->root, &it->pre);
    }
    if (c->use_arena) jarena_leave();
}

/* Source mode, without mu (the reader owns slot s, FILLING, already
 * cleared): read into it.  Returns read's code. */
static int chunk_fill(struct parseq *q, struct parseq_chunk *s, char *err, size_t errlen) {
    int rc = q->src.read(q->src.arg, s, PARSEQ_CHUNK, err, errlen);
    for (int k = 0; k < s->n; k++) s->it[k].buf = s->text + s->it[k].off;
    return rc;
}

/* Under mu: a READY slot of [r, w), oldest first, or NULL. */
static struct parseq_chunk *ready_slot(struct parseq *q) {
    for (uint64_t i = q->r; i < q->w; i++)
        if (at(q, i)->state == S_READY) return at(q, i);
    return NULL;
}

static struct parseq_chunk *done_slot(struct parseq *q) {
    for (int i = 0; i < q->nslots; i++)
        if (q->slot[i].state == S_DONE) return &q->slot[i];
    return NULL;
}

/* Under mu, source mode: may the next slot be read into? */
static int can_read(struct parseq *q) {
    if (!q->has_src || q->filling || q->src_end || q->stop ||
        q->w - q->r >= (uint64_t)(q->ahead ? q->nslots : q->window))
        return 0;
    int st = at(q, q->w)->state;
    return st == S_FREE || st == S_DONE;
}

/* Under mu (released while working): slot s is `during` while work runs on
 * it, then `after`, with its arena's size noted, and the caller's thread is
 * told. */
static void slot_work(struct parseq *q, struct parseq_chunk *s, int during, int after,
                      void (*work)(struct parseq_chunk *)) {
    s->state = during;
    pthread_mutex_unlock(&q->mu);
    work(s);
    pthread_mutex_lock(&q->mu);
    s->state = after;
    s->arena_held = s->arena.held;
    pthread_cond_signal(&q->done);
}

/* Under mu (released while reading): read the next chunk and parse it. */
static void read_step(struct parseq *q) {
    struct parseq_chunk *s = at(q, q->w);
    int was_done = s->state == S_DONE;
    char err[sizeof(q->src_err)] = "";
    s->state = S_FILLING;
    q->filling = 1;
    pthread_mutex_unlock(&q->mu);
    if (was_done) chunk_clear(s);
    s->n = 0;
    s->tlen = 0;
    int rc = chunk_fill(q, s, err, sizeof(err));
    pthread_mutex_lock(&q->mu);
    q->filling = 0;
    if (rc != 0) {
        q->src_end = 1;
        q->src_failed = rc == -1;
        if (rc == -1) snprintf(q->src_err, sizeof(q->src_err), "%s", err[0] ? err : "read error");
    }
    s->arena_held = s->arena.held;
    if (s->n == 0) {
        s->state = S_FREE;
        pthread_cond_signal(&q->done);   /* maybe the end */
        return;
    }
    q->w++;
    slot_work(q, s, S_PARSING, S_PARSED, chunk_parse);
}

/* Under mu: one unit of work (free a DONE slot, parse a READY one, read
 * and parse the next chunk); 0 when there was none.  mu is released while
 * working.  Freeing comes first: the allocator hands the freed blocks to
 * the next parse, still in the cache. */
static int worker_step(struct parseq *q) {
    struct parseq_chunk *s = done_slot(q);
    if (s) {
        slot_work(q, s, S_CLEARING, S_FREE, chunk_clear);
        return 1;
    }
    if (!q->has_src && (s = ready_slot(q)) != NULL) {   /* a source's slots are never READY */
        slot_work(q, s, S_PARSING, S_PARSED, chunk_parse);
        return 1;
    }
    if (can_read(q)) {
        read_step(q);
        return 1;
    }
    return 0;
}

static void *worker_main(void *arg) {
    struct parseq *q = arg;
    pthread_setname_np(pthread_self(), "parseq");   /* top -H, perf: where parsing runs */
    pthread_mutex_lock(&q->mu);
    while (!q->stop)
        if (!worker_step(q) && !q->stop) pthread_cond_wait(&q->work, &q->mu);
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

/* Under mu: wait for a change (or, without threads, make one). */
static void wait_change(struct parseq *q) {
    if (q->nth == 0) worker_step(q);
    else pthread_cond_wait(&q->done, &q->mu);
}

static void stop_threads(struct parseq *q) {
    pthread_mutex_lock(&q->mu);
    q->stop = 1;
    pthread_cond_broadcast(&q->work);
    pthread_mutex_unlock(&q->mu);
    if (q->has_src && q->src.interrupt) q->src.interrupt(q->src.arg);
    for (int i = 0; i < q->started; i++) pthread_join(q->th[i], NULL);
    q->started = 0;
}

int parseq_new(struct parseq **out, int nthreads, const struct parseq_source *src, char *err,
               size_t errlen) {
    if (nthreads < 0 || nthreads > PARSEQ_THREADS_MAX) {
        snprintf(err, errlen, "parse threads: %d is not in 0..%d", nthreads, PARSEQ_THREADS_MAX);
        return -1;
    }
    struct parseq *q = calloc(1, sizeof(*q));
    if (q) q->window = PARSEQ_SLOTS(nthreads);
    if (q) q->nslots = q->window + (src ? PARSEQ_AHEAD : 0);
    if (q) q->slot = calloc((size_t)q->nslots, sizeof(*q->slot));
    if (q) q->th = calloc(nthreads ? (size_t)nthreads : 1, sizeof(*q->th));
    if (!q || !q->slot || !q->th) {
        if (q) free(q->slot);
        if (q) free(q->th);
        free(q);
        snprintf(err, errlen, "out of memory (parse queue)");
        return -1;
    }
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->work, NULL);
    pthread_cond_init(&q->done, NULL);
    if (src) {
        q->src = *src;
        q->has_src = 1;
    }
    int arena = jarena_installed();   /* else jansson's own allocator: trees are decref'd */
    for (int i = 0; i < q->nslots; i++) {
        q->slot[i].use_arena = arena;
        jarena_init(&q->slot[i].arena, SIZE_MAX);
    }
    q->nth = nthreads;
    json_object_seed(0); /* jansson seeds its hash once: before a second thread parses */
    for (; q->started < nthreads; q->started++)
        if (pthread_create(&q->th[q->started], NULL, worker_main, q)) {
            snprintf(err, errlen, "cannot start parse thread %d of %d", q->started + 1, nthreads);
            parseq_free(q);
            return -1;
        }
    *out = q;
    return 0;
}

/* Push mode, under mu: make slot w the caller's to fill; 1, or 0 when the
 * ring is full of messages not taken. */
static int start_slot(struct parseq *q) {
    for (;;) {
        if (q->w - q->r >= (uint64_t)q->nslots) return 0;
        struct parseq_chunk *s = at(q, q->w);
        if (s->state == S_FREE) {
            s->state = S_FILLING;
            s->n = 0;
            q->filling = 1;
            return 1;
        }
        if (s->state == S_DONE && q->nth) pthread_cond_signal(&q->work);
        wait_change(q);  /* DONE or CLEARING: a parsing thread frees it */
    }
}

/* Under mu: slot w is complete: to the parsing threads. */
static void publish(struct parseq *q) {
    struct parseq_chunk *s = at(q, q->w);
    s->state = S_READY;
    q->filling = 0;
    q->w++;
    pthread_cond_signal(&q->work);
}

int parseq_push(struct parseq *q, const char *buf, size_t len, int64_t no, void *tag) {
    if (!q->filling) {
        pthread_mutex_lock(&q->mu);
        int ok = start_slot(q);
        pthread_mutex_unlock(&q->mu);
        if (!ok) return 0;
    }
    struct parseq_chunk *s = at(q, q->w);  /* FILLING: the caller's alone */
    struct qitem *it = &s->it[s->n++];
    it->buf = buf;
    it->len = len;
    it->no = no;
    it->tag = tag;
    it->root = NULL;
    q->pushed++;
    if (s->n == PARSEQ_CHUNK) {
        pthread_mutex_lock(&q->mu);
        publish(q);
        pthread_mutex_unlock(&q->mu);
    }
    return 1;
}

void parseq_flush(struct parseq *q) {
    if (q->has_src || !q->filling) return;
    pthread_mutex_lock(&q->mu);
    publish(q);
    pthread_mutex_unlock(&q->mu);
}

/* Under mu: the caller passed slot r.  A source's reader may wait for
 * that room: it is woken once half the window is free, then refills it in
 * one go (a wake-up per chunk cost the caller's thread a futex call per 16
 * messages).  In push mode the trees are freed when a parsing thread wakes
 * for the next chunk (or when start_slot needs the slot): no wake-up here. */
static void pass_slot(struct parseq *q) {
    at(q, q->r)->state = S_DONE;
    q->r++;
    q->holding = 0;
    q->pos = 0;
    if (q->has_src && q->w - q->r <= (uint64_t)q->window / 2) pthread_cond_signal(&q->work);
}

/* Under mu: wait until slot r is parsed: 1; 0 at the end; -1 failed. */
static int wait_parsed(struct parseq *q) {
    for (;;) {
        if (q->r < q->w && at(q, q->r)->state == S_PARSED) return 1;
        if (q->r == q->w && !q->has_src) {
            if (!q->filling) return 0;
            publish(q);   /* the caller wants a message of its partly filled slot */
            continue;
        }
        if (q->r == q->w && q->src_end && !q->filling) return q->src_failed ? -1 : 0;
        wait_change(q);
    }
}

int parseq_next(struct parseq *q, struct parseq_item *it, char *err, size_t errlen) {
    if (!q->holding || q->pos >= at(q, q->r)->n) {
        pthread_mutex_lock(&q->mu);
        if (q->holding) pass_slot(q);
        int rc = wait_parsed(q);
        if (rc < 0) snprintf(err, errlen, "%s", q->src_err);
        q->holding = rc == 1;
        pthread_mutex_unlock(&q->mu);
        if (rc != 1) return rc;
    }
    const struct qitem *x = &at(q, q->r)->it[q->pos++];
    it->buf = x->buf;
    it->len = x->len;
    it->no = x->no;
    it->tag = x->tag;
    it->root = x->root;
    it->jerr = &x->jerr;
    it->pre = x->root ? &x->pre : NULL;
    q->taken++;
    return 1;
}

void parseq_reset(struct parseq *q) {
    if (q->has_src) return;
    pthread_mutex_lock(&q->mu);
    if (q->filling) publish(q);
    for (uint64_t i = q->r; i < q->w; i++) {
        struct parseq_chunk *s = at(q, i);
        while (s->state == S_PARSING) wait_change(q);
        s->state = S_DONE;   /* READY ones were not parsed: their roots are NULL */
    }
    q->r = q->w;
    q->holding = 0;
    q->pos = 0;
    q->taken = q->pushed;
    pthread_cond_broadcast(&q->work);
    pthread_mutex_unlock(&q->mu);
}

void parseq_ahead(struct parseq *q, int on) {
    if (!q->has_src) return;
    pthread_mutex_lock(&q->mu);
    q->ahead = on;
    if (on) pthread_cond_broadcast(&q->work);
    pthread_mutex_unlock(&q->mu);
}

size_t parseq_pending(const struct parseq *q) {
    return (size_t)(q->pushed - q->taken);
}

size_t parseq_capacity(const struct parseq *q) {
    return (size_t)q->nslots * PARSEQ_CHUNK;
}

size_t parseq_arena_bytes(struct parseq *q) {
    size_t n = 0;
    pthread_mutex_lock(&q->mu);
    for (int i = 0; i < q->nslots; i++) n += q->slot[i].arena_held;
    pthread_mutex_unlock(&q->mu);
    return n;
}

void parseq_free(struct parseq *q) {
    if (!q) return;
    stop_threads(q);
    for (int i = 0; i < q->nslots; i++) {
        chunk_clear(&q->slot[i]);
        jarena_destroy(&q->slot[i].arena);
        free(q->slot[i].text);
    }
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->work);
    pthread_cond_destroy(&q->done);
    free(q->slot);
    free(q->th);
    free(q);
}
