/* lineq.c -- see lineq.h.  The reading half: a parseq source (read_chunk)
 * that reads the files in order, line by line, into parseq's chunks.
 *
 * Stopping a reader that waits for input.  On a pipe or a terminal the
 * reader can wait in read(2) for as long as the writer likes; lineq_stop()
 * must still return (credit-replay stops on a store or output error while
 * its stdin stays open).  So the reader reads with read(2), never stdio, and
 * first poll(2)s the input together with a self-pipe that lineq_stop()
 * writes to (parseq calls the source's interrupt).  Not joining such a
 * reader instead would leave a thread that still uses q (and the allocator,
 * jansson) while the process frees q and exits: a use after free. */
#include "tools/lineq.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "consumer/parseq.h"
#include "engine/engine.h"

#define READ_MIN (64 * 1024)   /* read(2) at least this much at a time */

struct lineq {
    struct parseq *pq;
    char **files;
    int nfiles, has_until;
    int64_t until;
    int wake[2];                     /* self-pipe: lineq_stop() wakes a reader blocked in poll */
    int ended;                       /* consumer: --until ended the input */
    /* Reader side (parseq calls read_chunk one call at a time). */
    int file;                        /* files[file] is open (fd), or the next to open */
    int fd, eof, is_stdin, regular;
    int64_t no;
    char *buf;
    size_t cap, start, end;          /* unread bytes: buf[start, end) */
};

/* Wait until fd has input (or EOF/error) or lineq_stop() was called:
 * 1, 0 when stopped, -1 on a poll error. */
static int wait_input(struct lineq *q) {
    struct pollfd pf[2] = {{.fd = q->fd, .events = POLLIN}, {.fd = q->wake[0], .events = POLLIN}};
    for (;;) {
        int n = poll(pf, 2, -1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -1;
        if (pf[1].revents) return 0;
        if (pf[0].revents) return 1;   /* POLLIN, POLLHUP or POLLERR: read(2) tells which */
    }
}

/* Room for READ_MIN more bytes (and a NUL) after the unread ones. */
static int make_room(struct lineq *q) {
    if (q->start > 0) {
        memmove(q->buf, q->buf + q->start, q->end - q->start);
        q->end -= q->start;
        q->start = 0;
    }
    if (q->cap - q->end > READ_MIN) return 0;
    size_t cap = q->cap ? q->cap * 2 : 4 * READ_MIN;
    char *b = realloc(q->buf, cap);
    if (!b) return -1;
    q->buf = b;
    q->cap = cap;
    return 0;
}

/* A complete line (or the last one, at EOF) is buffered. */
static int line_buffered(const struct lineq *q) {
    return (q->end > q->start && memchr(q->buf + q->start, '\n', q->end - q->start)) ||
           (q->eof && q->start < q->end);
}

/* The next line, without its newline and NUL-terminated in q->buf (valid
 * until the next call): 1, 0 at the end, -1 on error (errno), -2 stopped. */
static int next_line(struct lineq *q, char **line, size_t *len) {
    for (;;) {
        char *nl = q->end > q->start ? memchr(q->buf + q->start, '\n', q->end - q->start) : NULL;
        if (nl || (q->eof && q->start < q->end)) {
            *line = q->buf + q->start;
            *len = nl ? (size_t)(nl - *line) : q->end - q->start;
            (*line)[*len] = 0;         /* the newline, or the NUL room make_room keeps */
            q->start += *len + (nl != NULL);
            return 1;
        }
        if (q->eof) return 0;
        if (make_room(q)) {
            errno = ENOMEM;
            return -1;
        }
        int w = wait_input(q);
        if (w <= 0) return w == 0 ? -2 : -1;
        ssize_t n = read(q->fd, q->buf + q->end, q->cap - q->end - 1);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n < 0) return -1;
        if (n == 0) q->eof = 1;
        q->end += (size_t)n;
    }
}

/* Open files[q->file]: 0, or -1 with err. */
static int open_next(struct lineq *q, char *err, size_t errlen) {
    const char *path = q->files[q->file];
    struct stat st;
    q->is_stdin = strcmp(path, "-") == 0;
    q->fd = q->is_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    if (q->fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    q->regular = fstat(q->fd, &st) == 0 && S_ISREG(st.st_mode);
    q->eof = 0;
    q->start = q->end = 0;
    return 0;
}

static void close_file(struct lineq *q) {
    if (q->fd >= 0 && !q->is_stdin) close(q->fd);
    q->fd = -1;
    q->file++;
}

/* parseq source: up to room lines of the files, in order.  A pipe or a
 * terminal may pause between lines: there the chunk ends with the lines
 * already buffered, or the caller could wait for a chunk that never fills. */
static int read_chunk(void *arg, struct parseq_chunk *c, int room, char *err, size_t errlen) {
    struct lineq *q = arg;
    for (int added = 0; added < room;) {
        if (q->fd < 0 && q->file >= q->nfiles) return 1;
        if (q->fd < 0 && open_next(q, err, errlen)) return -1;
        if (added > 0 && !q->regular && !line_buffered(q)) return 0;
        char *line;
        size_t len;
        int got = next_line(q, &line, &len);
        if (got == -2) return PARSEQ_STOPPED;
        if (got < 0) {
            snprintf(err, errlen, "%s: read error: %s", q->files[q->file], strerror(errno));
            return -1;
        }
        if (got == 0) {
            close_file(q);
            continue;
        }
        if (parseq_add(c, line, len, ++q->no)) {
            snprintf(err, errlen, "out of memory reading line %lld", (long long)q->no);
            return -1;
        }
        added++;
    }
    return 0;
}

static void interrupt(void *arg) {
    struct lineq *q = arg;
    /* The byte stays, so a reader that polls only later sees it too.  The
     * pipe cannot be full (at most one byte per stop). */
    while (write(q->wake[1], "", 1) < 0 && errno == EINTR) {}
}

int lineq_start(struct lineq **out, char **files, int nfiles, int has_until, int64_t until,
                int nthreads, char *err, size_t errlen) {
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
    q->files = files;
    q->nfiles = nfiles;
    q->has_until = has_until;
    q->until = until;
    q->fd = -1;
    struct parseq_source src = {read_chunk, interrupt, q};
    if (parseq_new(&q->pq, nthreads, &src, err, errlen)) {
        close(q->wake[0]);
        close(q->wake[1]);
        free(q);
        return -1;
    }
    *out = q;
    return 0;
}

int lineq_next(struct lineq *q, struct lineq_line *l, char *err, size_t errlen) {
    struct parseq_item it;
    if (q->ended) return 0;
    int rc = parseq_next(q->pq, &it, err, errlen);
    if (rc != 1) return rc;
    int64_t t;
    if (q->has_until && engine_time_of(it.root, &t) == 0 && t > q->until) {
        q->ended = 1;
        return 0;
    }
    l->buf = it.buf;
    l->len = it.len;
    l->no = it.no;
    l->root = it.root;
    l->jerr = it.jerr;
    l->pre = it.pre;
    return 1;
}

void lineq_ahead(struct lineq *q, int on) {
    parseq_ahead(q->pq, on);
}

void lineq_stop(struct lineq *q) {
    if (!q) return;
    parseq_free(q->pq);   /* interrupts and joins the reader first */
    if (q->fd >= 0 && !q->is_stdin) close(q->fd);
    close(q->wake[0]);
    close(q->wake[1]);
    free(q->buf);
    free(q);
}
