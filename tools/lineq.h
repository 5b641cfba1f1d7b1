/* lineq.h -- JSON Lines input for credit-replay: the files are read and
 * their lines parsed with jansson (engine_parse) on parsing threads
 * (consumer/parseq.h, the queue creditd's input goes through too), and
 * handed over in order.
 *
 * The files are read by whichever parsing thread holds the source (one at a
 * time, in order, LINEQ's read function below parseq), a chunk of up to
 * PARSEQ_CHUNK lines at a time, which that thread then parses: with one
 * parsing thread it reads and parses in turn, with more they parse
 * consecutive chunks at once.  With 0 the caller's thread does both. */
#ifndef CREDITD_LINEQ_H
#define CREDITD_LINEQ_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct engine_pre;   /* engine/engine.h */

struct lineq;

/* One input line.  Borrowed: valid until the next lineq_next call. */
struct lineq_line {
    const char *buf;            /* the line without its newline, NUL-terminated */
    size_t len;
    int64_t no;                 /* 1-based, counted across all files */
    json_t *root;               /* the parse, or NULL (then jerr says why) */
    const json_error_t *jerr;
    const struct engine_pre *pre; /* engine_prepare of root (parseq.h), or NULL */
};

/* Start reading files ("-" = stdin) in order on nthreads parsing threads
 * (0..PARSEQ_THREADS_MAX).  With has_until, the input ends before the first
 * line whose CloudEvents time is later than until.  files is borrowed until
 * lineq_stop.  0, or -1 with err. */
int lineq_start(struct lineq **out, char **files, int nfiles, int has_until, int64_t until,
                int nthreads, char *err, size_t errlen);

/* The next line: 1 with *l, 0 at the end of the input, -1 on a read error
 * (err names the file). */
int lineq_next(struct lineq *q, struct lineq_line *l, char *err, size_t errlen);

/* While the caller commits (on 1 .. off 0): read and parse further ahead,
 * up to PARSEQ_AHEAD more chunks (parseq_ahead). */
void lineq_ahead(struct lineq *q, int on);

/* Stop reading (also before the end), join the threads, free everything. */
void lineq_stop(struct lineq *q);

#endif
