/* lineq.c -- see lineq.h.  A ring of LINEQ_SLOTS chunks: the reader fills a
 * FREE (or DONE: it first frees that chunk's trees) slot and marks it FULL;
 * the consumer takes FULL slots in ring order and marks them DONE. */
#include "tools/lineq.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/engine.h"

enum { SLOT_FREE = 0, SLOT_FULL, SLOT_DONE };

struct qline {
    size_t off, len;
    int64_t no;
    json_t *root;
    json_error_t jerr;
};

struct slot {
    int state;
    int n;
    char *text;                      /* the chunk's lines, each NUL-terminated */
    size_t tlen, tcap;
    struct qline line[LINEQ_CHUNK];
};

struct lineq {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t th;
    char **files;
    int nfiles, has_until;
    int64_t until;
    struct slot slot[LINEQ_SLOTS];
    int eof, failed, stop;           /* under mu */
    char err[512];                   /* written by the reader before eof */
    int cur, pos, holding;           /* consumer side only */
};

/* Reader: drop a slot's trees and lines so it can be filled again. */
static void slot_clear(struct slot *s) {
    for (int k = 0; k < s->n; k++) json_decref(s->line[k].root);
    s->n = 0;
    s->tlen = 0;
}

/* Reader: wait until slot w can be filled; 0, or -1 if told to stop. */
static int slot_acquire(struct lineq *q, int w) {
    pthread_mutex_lock(&q->mu);
    while (q->slot[w].state == SLOT_FULL && !q->stop) pthread_cond_wait(&q->cv, &q->mu);
    int stop = q->stop;
    pthread_mutex_unlock(&q->mu);
    if (!stop) slot_clear(&q->slot[w]);
    return stop ? -1 : 0;
}

static void slot_publish(struct lineq *q, int w) {
    pthread_mutex_lock(&q->mu);
    q->slot[w].state = SLOT_FULL;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

/* Reader: copy and parse one line into slot s; 1 when --until says stop. */
static int slot_add(struct lineq *q, struct slot *s, const char *buf, size_t len, int64_t no) {
    if (s->tlen + len + 1 > s->tcap) {
        size_t cap = s->tcap ? s->tcap : 8192;
        while (cap < s->tlen + len + 1) cap *= 2;
        char *t = realloc(s->text, cap);
        if (!t) {
            snprintf(q->err, sizeof(q->err), "out of memory reading line %lld", (long long)no);
            return -1;
        }
        s->text = t;
        s->tcap = cap;
    }
    struct qline *l = &s->line[s->n];
    memcpy(s->text + s->tlen, buf, len);
    s->text[s->tlen + len] = 0;
    l->off = s->tlen;
    l->len = len;
    l->no = no;
    l->root = engine_parse(s->text + s->tlen, len, &l->jerr);
    int64_t t;
    if (q->has_until && engine_time_of(l->root, &t) == 0 && t > q->until) {
        json_decref(l->root);
        return 1;
    }
    s->tlen += len + 1;
    s->n++;
    return 0;
}

/* Reader: every file in order; 1 when --until stopped it, -1 on error. */
static int read_files(struct lineq *q) {
    char *buf = NULL;
    size_t cap = 0;
    int64_t no = 0;
    int w = 0, filling = 0, rc = 0;
    for (int i = 0; rc == 0 && i < q->nfiles; i++) {
        const char *path = q->files[i];
        FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
        if (!f) {
            snprintf(q->err, sizeof(q->err), "%s: %s", path, strerror(errno));
            return -1;
        }
        /* A pipe or terminal may pause between lines: hand each line over at
         * once there, or a consumer could wait for a chunk that never fills. */
        struct stat st;
        int chunk = fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) ? LINEQ_CHUNK : 1;
        ssize_t len;
        while (rc == 0 && (len = getline(&buf, &cap, f)) >= 0) {
            if (len > 0 && buf[len - 1] == '\n') len--;
            if (!filling && slot_acquire(q, w)) { rc = -1; break; }
            filling = 1;
            if ((rc = slot_add(q, &q->slot[w], buf, (size_t)len, ++no)) != 0) break;
            if (q->slot[w].n >= chunk) {
                slot_publish(q, w);
                w = (w + 1) % LINEQ_SLOTS;
                filling = 0;
            }
        }
        if (rc == 0 && ferror(f)) {
            snprintf(q->err, sizeof(q->err), "%s: read error: %s", path, strerror(errno));
            rc = -1;
        }
        if (f != stdin) fclose(f);
    }
    if (rc >= 0 && filling && q->slot[w].n) slot_publish(q, w);
    free(buf);
    return rc;
}

static void *reader_main(void *arg) {
    struct lineq *q = arg;
    int rc = read_files(q);
    pthread_mutex_lock(&q->mu);
    q->failed = rc < 0 && !q->stop;
    q->eof = 1;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

int lineq_start(struct lineq **out, char **files, int nfiles, int has_until, int64_t until,
                char *err, size_t errlen) {
    struct lineq *q = calloc(1, sizeof(*q));
    if (!q) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    q->files = files;
    q->nfiles = nfiles;
    q->has_until = has_until;
    q->until = until;
    json_object_seed(0); /* jansson seeds its hash once: before a second thread parses */
    if (pthread_create(&q->th, NULL, reader_main, q)) {
        snprintf(err, errlen, "cannot start the reader thread");
        pthread_mutex_destroy(&q->mu);
        pthread_cond_destroy(&q->cv);
        free(q);
        return -1;
    }
    *out = q;
    return 0;
}

int lineq_next(struct lineq *q, struct lineq_line *l, char *err, size_t errlen) {
    struct slot *s = &q->slot[q->cur];
    pthread_mutex_lock(&q->mu);
    if (q->holding && q->pos == s->n) {         /* hand the chunk back */
        s->state = SLOT_DONE;
        pthread_cond_broadcast(&q->cv);
        q->cur = (q->cur + 1) % LINEQ_SLOTS;
        q->pos = 0;
        q->holding = 0;
        s = &q->slot[q->cur];
    }
    while (!q->holding && s->state != SLOT_FULL && !q->eof) pthread_cond_wait(&q->cv, &q->mu);
    int rc = q->holding || s->state == SLOT_FULL ? 1 : q->failed ? -1 : 0;
    pthread_mutex_unlock(&q->mu);
    if (rc < 0) snprintf(err, errlen, "%s", q->err);
    if (rc <= 0) return rc;
    q->holding = 1;
    const struct qline *ql = &s->line[q->pos++];
    l->buf = s->text + ql->off;
    l->len = ql->len;
    l->no = ql->no;
    l->root = ql->root;
    l->jerr = &ql->jerr;
    return 1;
}

void lineq_stop(struct lineq *q) {
    if (!q) return;
    pthread_mutex_lock(&q->mu);
    q->stop = 1;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    pthread_join(q->th, NULL);
    for (int i = 0; i < LINEQ_SLOTS; i++) {
        slot_clear(&q->slot[i]);
        free(q->slot[i].text);
    }
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    free(q);
}
