/* metrics.c -- see metrics.h.  (Stub: the interface the HTTP server is built
 * against; the pipeline's counters come next.) */
#include "consumer/metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct metrics {
    pthread_mutex_t mu;
};

int metrics_new(struct metrics **out, char *err, size_t errlen) {
    struct metrics *m = calloc(1, sizeof(*m));
    if (!m || pthread_mutex_init(&m->mu, NULL)) {
        free(m);
        snprintf(err, errlen, "out of memory (metrics)");
        return -1;
    }
    *out = m;
    return 0;
}

void metrics_free(struct metrics *m) {
    if (!m) return;
    pthread_mutex_destroy(&m->mu);
    free(m);
}

int metrics_render(struct metrics *m, char **out, size_t *len) {
    (void)m;
    *out = strdup("");
    *len = 0;
    return *out ? 0 : -1;
}

int metrics_ready(struct metrics *m, int64_t max_lag, char *why, size_t whylen) {
    (void)m;
    (void)max_lag;
    snprintf(why, whylen, "not implemented");
    return 0;
}
