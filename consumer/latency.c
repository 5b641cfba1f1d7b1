/* latency.c -- see latency.h. */
#include "consumer/latency.h"

#include <stdio.h>
#include <stdlib.h>

struct pending {
    uint64_t last_seq;
    int64_t ts_ms;
};

struct latency {
    struct pending *ring;   /* [cap]; absolute index % cap */
    size_t cap;
    uint64_t head;          /* oldest committed message */
    uint64_t committed;     /* end of the committed messages, start of the batch's */
    uint64_t tail;          /* end of the batch's */
    uint64_t untracked, batch_untracked;
};

int latency_new(struct latency **out, size_t cap, char *err, size_t errlen) {
    struct latency *l = calloc(1, sizeof(*l));
    if (cap < 1) cap = 1;
    if (cap > LATENCY_CAP_MAX) cap = LATENCY_CAP_MAX;
    if (!l || !(l->ring = calloc(cap, sizeof(*l->ring)))) {
        free(l);
        snprintf(err, errlen, "out of memory (delivery latency ring of %zu)", cap);
        return -1;
    }
    l->cap = cap;
    *out = l;
    return 0;
}

void latency_free(struct latency *l) {
    if (!l) return;
    free(l->ring);
    free(l);
}

void latency_batch_reset(struct latency *l) {
    l->tail = l->committed;
    l->batch_untracked = 0;
}

void latency_batch_add(struct latency *l, uint64_t last_seq, int64_t ts_ms) {
    if (ts_ms < 0 || l->tail - l->head >= l->cap) {
        l->batch_untracked++;
        return;
    }
    l->ring[l->tail % l->cap] = (struct pending){last_seq, ts_ms};
    l->tail++;
}

void latency_batch_commit(struct latency *l) {
    l->committed = l->tail;
    l->untracked += l->batch_untracked;
    l->batch_untracked = 0;
}

size_t latency_delivered(struct latency *l, uint64_t upto, int64_t now_ms, double *out, size_t max) {
    size_t n = 0;
    while (n < max && l->head < l->committed && l->ring[l->head % l->cap].last_seq <= upto) {
        int64_t d = now_ms - l->ring[l->head % l->cap].ts_ms;
        out[n++] = d > 0 ? (double)d / 1000.0 : 0.0;
        l->head++;
    }
    return n;
}

uint64_t latency_untracked(const struct latency *l) { return l->untracked; }
