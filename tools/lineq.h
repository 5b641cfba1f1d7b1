/* lineq.h -- JSON Lines input for credit-replay: a reader thread reads the
 * files and parses each line with jansson (engine_parse), handing lines over
 * in order in small chunks.
 *
 * Why small chunks: a jansson tree that lives long is expensive.  Parsing
 * 10,000 lines before freeing any runs at ~40% of the speed of parsing and
 * freeing one at a time (allocator and cache effects); up to 16 at a time
 * costs nothing.  So the trees of at most LINEQ_SLOTS chunks of LINEQ_CHUNK
 * lines are alive at once, and they are freed on the reader thread, which
 * allocated them.
 */
#ifndef CREDITD_LINEQ_H
#define CREDITD_LINEQ_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define LINEQ_CHUNK 16
#define LINEQ_SLOTS 8

struct lineq;

/* One input line.  Borrowed: valid until the next lineq_next call. */
struct lineq_line {
    const char *buf;            /* the line without its newline, NUL-terminated */
    size_t len;
    int64_t no;                 /* 1-based, counted across all files */
    json_t *root;               /* the parse, or NULL (then jerr says why) */
    const json_error_t *jerr;
};

/* Start reading files ("-" = stdin) in order.  With has_until, reading stops
 * before the first line whose CloudEvents time is later than until.  files
 * is borrowed until lineq_stop.  0, or -1 with err. */
int lineq_start(struct lineq **out, char **files, int nfiles, int has_until, int64_t until,
                char *err, size_t errlen);

/* The next line: 1 with *l, 0 at the end of the input, -1 on a read error
 * (err names the file). */
int lineq_next(struct lineq *q, struct lineq_line *l, char *err, size_t errlen);

/* Stop reading (also before the end), join the thread, free everything. */
void lineq_stop(struct lineq *q);

#endif
