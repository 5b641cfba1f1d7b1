/* handoff.c -- see handoff.h. */
#undef NDEBUG /* asserts (programmer errors only, never outside data) stay on */
#include "consumer/handoff.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CAP_MAX ((size_t)1 << 24)

struct handoff {
    pthread_mutex_t mu;
    pthread_cond_t cv;            /* the engine thread waits on it (handoff_wait) */
    struct handoff_slot *slots;   /* [cap] */
    size_t cap;
    void (*wake)(void *);
    void *wake_arg;
    /* Under mu; written by the thread named. */
    uint64_t head;                /* engine: first slot not released */
    uint64_t published;           /* relay: first slot not published */
    uint64_t complete;            /* relay */
    int64_t at_ms;                /* relay: time of the last publish that moved */
    uint64_t committed;           /* engine */
    int stop;                     /* engine */
    int relay_waits;              /* relay: a push found the ring full (engine clears) */
    int failed;                   /* relay */
    char why[HANDOFF_ERRLEN];
    /* The relay thread's own. */
    uint64_t tail;                /* next slot to push */
    uint64_t head_seen;           /* head as last read under mu */
};

int handoff_new(struct handoff **out, size_t cap, void (*wake)(void *), void *wake_arg,
                char *err, size_t errlen) {
    *out = NULL;
    if (cap < 1 || cap > CAP_MAX || !wake) {
        snprintf(err, errlen, "handoff: capacity %zu outside 1..%zu (or no wake function)", cap, CAP_MAX);
        return -1;
    }
    struct handoff *h = calloc(1, sizeof(*h));
    pthread_condattr_t ca;
    int ok = h && (h->slots = calloc(cap, sizeof(*h->slots))) != NULL;
    if (ok && pthread_condattr_init(&ca) == 0) {
        ok = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 && pthread_cond_init(&h->cv, &ca) == 0;
        pthread_condattr_destroy(&ca);
        if (ok && pthread_mutex_init(&h->mu, NULL) != 0) {
            pthread_cond_destroy(&h->cv);
            ok = 0;
        }
    } else ok = 0;
    if (!ok) {
        if (h) free(h->slots);
        free(h);
        snprintf(err, errlen, "handoff: out of memory (%zu slots)", cap);
        return -1;
    }
    h->cap = cap;
    h->wake = wake;
    h->wake_arg = wake_arg;
    *out = h;
    return 0;
}

void handoff_free(struct handoff *h) {
    if (!h) return;
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
    free(h->slots);
    free(h);
}

/* ---- relay thread ---------------------------------------------------------- */

void handoff_requests(struct handoff *h, uint64_t *committed, int *stop) {
    pthread_mutex_lock(&h->mu);
    *committed = h->committed;
    *stop = h->stop;
    pthread_mutex_unlock(&h->mu);
}

struct handoff_slot *handoff_push(struct handoff *h) {
    if (h->tail - h->head_seen >= h->cap) {  /* full as last seen: look again */
        pthread_mutex_lock(&h->mu);
        h->head_seen = h->head;
        int full = h->tail - h->head_seen >= h->cap;
        if (full) h->relay_waits = 1;
        pthread_mutex_unlock(&h->mu);
        if (full) return NULL;
    }
    struct handoff_slot *sl = &h->slots[h->tail % h->cap];
    memset(sl, 0, sizeof(*sl));
    h->tail++;
    return sl;
}

uint64_t handoff_tail(const struct handoff *h) { return h->tail; }

void handoff_unpush(struct handoff *h) {
    assert(h->tail > h->published && !h->slots[(h->tail - 1) % h->cap].done);
    h->tail--;
}

/* h->published is written by this thread only (under mu): reading it here
 * without the lock races with nothing. */
struct handoff_slot *handoff_slot(struct handoff *h, uint64_t idx) {
    if (idx < h->published || idx >= h->tail) return NULL;
    return &h->slots[idx % h->cap];
}

size_t handoff_publish(struct handoff *h, uint64_t complete, int64_t now_ms) {
    uint64_t p = h->published;
    while (p < h->tail && h->slots[p % h->cap].done) p++;
    size_t n = (size_t)(p - h->published);
    if (n == 0 && complete <= h->complete) return 0;
    pthread_mutex_lock(&h->mu);
    h->published = p;
    if (complete > h->complete) h->complete = complete;
    if (n) h->at_ms = now_ms;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    return n;
}

int handoff_all_published(const struct handoff *h) { return h->published == h->tail; }

void handoff_fail(struct handoff *h, const char *why) {
    pthread_mutex_lock(&h->mu);
    if (!h->failed) {
        snprintf(h->why, sizeof(h->why), "%s", why);
        h->failed = 1;
    }
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

/* ---- engine thread --------------------------------------------------------- */

void handoff_commit(struct handoff *h, uint64_t seq) {
    pthread_mutex_lock(&h->mu);
    int moved = seq > h->committed;
    if (moved) h->committed = seq;
    pthread_mutex_unlock(&h->mu);
    if (moved) h->wake(h->wake_arg);
}

void handoff_stop(struct handoff *h) {
    pthread_mutex_lock(&h->mu);
    h->stop = 1;
    pthread_mutex_unlock(&h->mu);
    h->wake(h->wake_arg);
}

uint64_t handoff_ready(struct handoff *h, uint64_t *head, uint64_t *complete, int64_t *at_ms) {
    pthread_mutex_lock(&h->mu);
    uint64_t end = h->published;
    *head = h->head;
    *complete = h->complete;
    *at_ms = h->at_ms;
    pthread_mutex_unlock(&h->mu);
    return end;
}

const struct handoff_slot *handoff_at(const struct handoff *h, uint64_t idx) {
    return &h->slots[idx % h->cap];
}

void handoff_release(struct handoff *h, uint64_t upto) {
    pthread_mutex_lock(&h->mu);
    assert(upto >= h->head && upto <= h->published);
    h->head = upto;
    int w = h->relay_waits;
    h->relay_waits = 0;
    pthread_mutex_unlock(&h->mu);
    if (w) h->wake(h->wake_arg);
}

int handoff_failed(struct handoff *h, char *err, size_t errlen) {
    pthread_mutex_lock(&h->mu);
    int f = h->failed;
    if (f) snprintf(err, errlen, "%s", h->why);
    pthread_mutex_unlock(&h->mu);
    return f;
}

int handoff_wait(struct handoff *h, uint64_t complete, int timeout_ms) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t ns = ts.tv_nsec + (int64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000;
    ts.tv_sec += (time_t)(ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    pthread_mutex_lock(&h->mu);
    int rc = 0, got;
    while (!(got = h->published > h->head || h->complete >= complete || h->failed) && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&h->cv, &h->mu, &ts);
    pthread_mutex_unlock(&h->mu);
    return got;
}
