/* spool.c -- see spool.h. */
#include "tools/spool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int spool_init(struct spool *s, const char *dir, size_t mem_max, char *err, size_t errlen) {
    memset(s, 0, sizeof(*s));
    s->fd = -1;
    s->dir = dir;
    s->mem_max = mem_max;
    s->mem = malloc(mem_max ? mem_max : 1);
    s->wbuf = malloc(SPOOL_WBUF);
    if (!s->mem || !s->wbuf) {
        free(s->mem);
        free(s->wbuf);
        s->mem = s->wbuf = NULL;
        snprintf(err, errlen, "out of memory (output spool of %zu bytes)", mem_max);
        return -1;
    }
    return 0;
}

void spool_free(struct spool *s) {
    free(s->mem);
    free(s->wbuf);
    if (s->fd >= 0) close(s->fd);
    memset(s, 0, sizeof(*s));
    s->fd = -1;
}

/* An unlinked file in dir: the kernel frees it when we exit, even on a crash. */
static int open_overflow(struct spool *s, char *err, size_t errlen) {
    s->fd = open(s->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (s->fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
        char path[4200];
        snprintf(path, sizeof(path), "%s/spool.XXXXXX", s->dir);
        s->fd = mkostemp(path, O_CLOEXEC);
        if (s->fd >= 0) unlink(path);
    }
    if (s->fd < 0) {
        snprintf(err, errlen, "output spool in %s: %s", s->dir, strerror(errno));
        return -1;
    }
    return 0;
}

static int write_all(int fd, const char *p, size_t n, off_t at) {
    while (n) {
        ssize_t w = pwrite(fd, p, n, at);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
        at += w;
    }
    return 0;
}

/* wbuf's lines to the end of the file. */
static int wbuf_flush(struct spool *s, char *err, size_t errlen) {
    if (s->wlen == 0) return 0;
    if (write_all(s->fd, s->wbuf, s->wlen, (off_t)s->file_len)) {
        snprintf(err, errlen, "output spool in %s: %s", s->dir, strerror(errno));
        return -1;
    }
    s->file_len += s->wlen;
    s->wlen = 0;
    return 0;
}

int spool_add(struct spool *s, const char *json, size_t len, char *err, size_t errlen) {
    s->lines++;
    if (s->file_len == 0 && s->wlen == 0 && s->mem_len + len + 1 <= s->mem_max) {
        memcpy(s->mem + s->mem_len, json, len);
        s->mem[s->mem_len + len] = '\n';
        s->mem_len += len + 1;
        return 0;
    }
    /* Once anything is bound for the file, everything after is too: order
     * is kept (memory, then the file, then wbuf). */
    if (s->fd < 0 && open_overflow(s, err, errlen)) return -1;
    if (s->wlen + len + 1 > SPOOL_WBUF && wbuf_flush(s, err, errlen)) return -1;
    if (len + 1 > SPOOL_WBUF) {   /* a line larger than the buffer goes straight to the file */
        if (write_all(s->fd, json, len, (off_t)s->file_len) ||
            write_all(s->fd, "\n", 1, (off_t)(s->file_len + len))) {
            snprintf(err, errlen, "output spool in %s: %s", s->dir, strerror(errno));
            return -1;
        }
        s->file_len += len + 1;
        return 0;
    }
    memcpy(s->wbuf + s->wlen, json, len);
    s->wbuf[s->wlen + len] = '\n';
    s->wlen += len + 1;
    return 0;
}

void spool_reset(struct spool *s) {
    s->mem_len = 0;
    s->file_len = 0;
    s->wlen = 0;
    s->lines = 0;
    /* Give the file's blocks back: one huge batch must not pin disk space. */
    if (s->fd >= 0 && ftruncate(s->fd, 0) != 0) {
        close(s->fd);
        s->fd = -1;
    }
}

static int write_fd(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int copy_file_part(struct spool *s, int out) {
    char buf[1 << 16];
    for (size_t at = 0; at < s->file_len;) {
        size_t want = s->file_len - at < sizeof(buf) ? s->file_len - at : sizeof(buf);
        ssize_t n = pread(s->fd, buf, want, (off_t)at);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0 || write_fd(out, buf, (size_t)n)) return -1;
        at += (size_t)n;
    }
    return 0;
}

/* Written with write(2), not stdio, so that a failure leaves nothing
 * buffered to be written later: a regular file is cut back to where the
 * batch began, and holds exactly the outputs of committed batches. */
int spool_deliver(struct spool *s, FILE *out, char *err, size_t errlen) {
    struct stat st;
    int fd = fileno(out), rc = 0;
    errno = 0;
    if (fflush(out) != 0) rc = 1;
    int reg = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    off_t start = reg ? lseek(fd, 0, SEEK_CUR) : -1;
    if (!rc && (write_fd(fd, s->mem, s->mem_len) || copy_file_part(s, fd) ||
                write_fd(fd, s->wbuf, s->wlen)))
        rc = 1;
    if (!rc && reg && fsync(fd) != 0) rc = 2;
    if (!rc) return 0;
    snprintf(err, errlen, "writing output: %s%s", rc == 2 ? "fsync: " : "",
             errno ? strerror(errno) : "short write");
    if (start >= 0 && ftruncate(fd, start) == 0) lseek(fd, start, SEEK_SET);
    return -1;
}
