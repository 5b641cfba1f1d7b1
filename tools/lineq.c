/* lineq.c -- see lineq.h.  A ring of LINEQ_SLOTS chunks: the reader fills a
 * FREE (or DONE: it first frees that chunk's trees) slot and marks it FULL;
 * the consumer takes FULL slots in ring order and marks them DONE.
 *
 * Stopping a reader that waits for input.  On a pipe or a terminal the
 * reader can wait in read(2) for as long as the writer likes; lineq_stop()
 * must still return (credit-replay stops on a store or output error while
 * its stdin stays open).  So the reader reads with read(2), never stdio, and
 * first poll(2)s the input together with a self-pipe that lineq_stop()
 * writes to.  Not joining such a reader instead would leave a thread that
 * still uses q (and the allocator, jansson) while the process frees q and
 * exits: a use after free. */
#include "tools/lineq.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define READ_MIN (64 * 1024)   /* read(2) at least this much at a time */

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
    int wake[2];                     /* self-pipe: lineq_stop() wakes a reader blocked in poll */
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

/* Reader side: buffered lines of one file descriptor. */
struct lreader {
    int fd, eof;
    char *buf;
    size_t cap, start, end;          /* unread bytes: buf[start, end) */
};

/* Wait until fd has input (or EOF/error) or lineq_stop() was called:
 * 1, 0 when stopped, -1 on a poll error. */
static int wait_input(struct lineq *q, int fd) {
    struct pollfd pf[2] = {{.fd = fd, .events = POLLIN}, {.fd = q->wake[0], .events = POLLIN}};
    for (;;) {
        int n = poll(pf, 2, -1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -1;
        if (pf[1].revents) return 0;
        if (pf[0].revents) return 1;   /* POLLIN, POLLHUP or POLLERR: read(2) tells which */
    }
}

/* Room for READ_MIN more bytes (and a NUL) after the unread ones. */
static int make_room(struct lreader *r) {
    if (r->start > 0) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
    }
    if (r->cap - r->end > READ_MIN) return 0;
    size_t cap = r->cap ? r->cap * 2 : 4 * READ_MIN;
    char *b = realloc(r->buf, cap);
    if (!b) return -1;
    r->buf = b;
    r->cap = cap;
    return 0;
}

/* The next line, without its newline and NUL-terminated in r->buf (valid
 * until the next call): 1, 0 at the end, -1 on error (errno), -2 stopped. */
static int next_line(struct lineq *q, struct lreader *r, char **line, size_t *len) {
    for (;;) {
        char *nl = r->end > r->start ? memchr(r->buf + r->start, '\n', r->end - r->start) : NULL;
        if (nl || (r->eof && r->start < r->end)) {
            *line = r->buf + r->start;
            *len = nl ? (size_t)(nl - *line) : r->end - r->start;
            (*line)[*len] = 0;         /* the newline, or the NUL room make_room keeps */
            r->start += *len + (nl != NULL);
            return 1;
        }
        if (r->eof) return 0;
        if (make_room(r)) {
            errno = ENOMEM;
            return -1;
        }
        int w = wait_input(q, r->fd);
        if (w <= 0) return w == 0 ? -2 : -1;
        ssize_t n = read(r->fd, r->buf + r->end, r->cap - r->end - 1);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n < 0) return -1;
        if (n == 0) r->eof = 1;
        r->end += (size_t)n;
    }
}

/* Reader: one file; 1 when --until stopped it, -1 on error or stop. */
static int read_file(struct lineq *q, struct lreader *r, const char *path, int64_t *no, int *w,
                     int *filling) {
    /* A pipe or terminal may pause between lines: hand each line over at
     * once there, or a consumer could wait for a chunk that never fills. */
    struct stat st;
    int chunk = fstat(r->fd, &st) == 0 && S_ISREG(st.st_mode) ? LINEQ_CHUNK : 1;
    char *line;
    size_t len;
    int rc = 0, got = 0;
    while (rc == 0 && (got = next_line(q, r, &line, &len)) == 1) {
        if (!*filling && slot_acquire(q, *w)) return -1;
        *filling = 1;
        if ((rc = slot_add(q, &q->slot[*w], line, len, ++*no)) != 0) break;
        if (q->slot[*w].n >= chunk) {
            slot_publish(q, *w);
            *w = (*w + 1) % LINEQ_SLOTS;
            *filling = 0;
        }
    }
    if (rc == 0 && got == -1) {
        snprintf(q->err, sizeof(q->err), "%s: read error: %s", path, strerror(errno));
        rc = -1;
    }
    return rc == 0 && got == -2 ? -1 : rc;
}

/* Reader: every file in order; 1 when --until stopped it, -1 on error. */
static int read_files(struct lineq *q) {
    struct lreader r = {0};
    int64_t no = 0;
    int w = 0, filling = 0, rc = 0;
    for (int i = 0; rc == 0 && i < q->nfiles; i++) {
        const char *path = q->files[i];
        int is_stdin = strcmp(path, "-") == 0;
        r.fd = is_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
        if (r.fd < 0) {
            snprintf(q->err, sizeof(q->err), "%s: %s", path, strerror(errno));
            rc = -1;
            break;
        }
        r.eof = 0;
        r.start = r.end = 0;
        rc = read_file(q, &r, path, &no, &w, &filling);
        if (!is_stdin) close(r.fd);
    }
    if (rc >= 0 && filling && q->slot[w].n) slot_publish(q, w);
    free(r.buf);
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
    if (pipe2(q->wake, O_CLOEXEC)) {
        snprintf(err, errlen, "cannot create the reader's wake-up pipe: %s", strerror(errno));
        free(q);
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
        close(q->wake[0]);
        close(q->wake[1]);
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
    /* Wakes a reader waiting for input; the byte stays, so a reader that
     * polls only later sees it too.  The pipe cannot be full (one byte). */
    while (write(q->wake[1], "", 1) < 0 && errno == EINTR) {}
    pthread_join(q->th, NULL);
    close(q->wake[0]);
    close(q->wake[1]);
    for (int i = 0; i < LINEQ_SLOTS; i++) {
        slot_clear(&q->slot[i]);
        free(q->slot[i].text);
    }
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    free(q);
}
