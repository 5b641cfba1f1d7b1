/* spool.h -- a batch's output lines, held until they are delivered.
 *
 * credit-replay writes a batch's outputs to --out before it commits the
 * batch (so a commit never happens without its outputs on disk), and must
 * hold them while the batch is applied.  One event can produce millions of
 * outputs (a far clock.tick over many organisations), so memory must not
 * grow with them: the first `mem_max` bytes are kept in memory and the rest
 * goes to an unlinked temporary file in `dir`.
 *
 * Not thread-safe.  Errors come back as -1 with text in err.
 */
#ifndef CREDITD_SPOOL_H
#define CREDITD_SPOOL_H

#include <stddef.h>
#include <stdio.h>

#define SPOOL_WBUF (64 * 1024)

struct spool {
    char *mem;             /* owned, mem_max bytes */
    size_t mem_len, mem_max;
    int fd;                /* overflow file (unlinked), -1 until first needed */
    size_t file_len;       /* bytes in the file */
    char *wbuf;            /* owned, SPOOL_WBUF bytes: lines bound for the file, written
                              in one pwrite when full (a tick's 100k outputs were 200k calls) */
    size_t wlen;
    const char *dir;       /* borrowed: where the overflow file is made */
    unsigned long long lines;
};

/* dir is borrowed for the spool's life. */
int  spool_init(struct spool *s, const char *dir, size_t mem_max, char *err, size_t errlen);
void spool_free(struct spool *s);

/* Append json and a newline. */
int  spool_add(struct spool *s, const char *json, size_t len, char *err, size_t errlen);
/* Forget everything added (the batch was aborted, or delivered). */
void spool_reset(struct spool *s);
/* Write everything added to out, in order (out is flushed first, then
 * written with write(2)), and fsync it when it is a regular file: on return
 * 0 the lines are durable.  On failure a regular file is cut back to its
 * length before the call, so it holds no part of an undelivered batch. */
int  spool_deliver(struct spool *s, FILE *out, char *err, size_t errlen);

#endif
