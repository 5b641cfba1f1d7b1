/* progress.h -- credit-replay's progress line on a terminal (issue 8):
 * lines, how far through the input, events/s and an ETA, redrawn in place
 * at most PROGRESS_INTERVAL_NS apart.
 *
 * Two parts.  The formatters (progress_fmt_*, progress_rate, progress_eta_s,
 * progress_format) are pure: the caller passes the counts and the elapsed
 * time, so they are tested without a clock.  struct progress is the redraw
 * state: it decides when a line is due and writes it as "\r" LINE "\033[K"
 * (clear to end of line), and progress_end() writes the last line and a
 * newline, so a summary printed after it starts on a line of its own.
 * Times are nanoseconds of the caller's monotonic clock (progress_now_ns);
 * a tool's progress, never the engine's time (the engine's only clock is
 * the events' own `time`).
 *
 * The caller decides whether to draw at all (credit-replay: stderr is a
 * terminal, or --progress); a struct progress that is off writes nothing.
 * Not thread-safe; the FILE is borrowed. */
#ifndef CREDITD_PROGRESS_H
#define CREDITD_PROGRESS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PROGRESS_INTERVAL_NS 250000000LL  /* at most ~4 redraws a second */
#define PROGRESS_FMT_MAX     32           /* one formatted size, rate or ETA */
#define PROGRESS_LINE_MAX    160          /* one whole progress line */

/* What `done` and `total` count. */
enum progress_unit {
    PROGRESS_BYTES = 0,   /* file replay: bytes of the input files */
    PROGRESS_MESSAGES     /* --from-kafka: offsets of the partitions to read */
};

/* One moment of a run. */
struct progress_snap {
    enum progress_unit unit;
    uint64_t lines;       /* lines (messages) handed to the engine */
    uint64_t done;        /* bytes, or messages, of the input behind us */
    uint64_t total;       /* what there is to read; meaningful only with has_total */
    int has_total;        /* 0: stdin or a pipe among the files, no ETA */
    int64_t elapsed_ns;   /* since the start of the run */
};

struct progress {
    FILE *f;              /* borrowed: where the line goes (stderr) */
    int on;               /* 0: every call is a no-op */
    int width;            /* terminal columns; a line is cut to width - 1; 0: no limit */
    int64_t start_ns, last_ns;
};

/* Bytes as "512 B", "1.5 KiB", "45.2 MiB", "1.23 GiB", "2.00 TiB". */
const char *progress_fmt_size(uint64_t bytes, char buf[PROGRESS_FMT_MAX]);

/* n per second over elapsed_ns; -1 when elapsed_ns <= 0 (no rate yet). */
double progress_rate(uint64_t n, int64_t elapsed_ns);

/* A rate as "950", "12.3k", "1.23M"; a negative rate (unknown) as "--". */
const char *progress_fmt_rate(double per_s, char buf[PROGRESS_FMT_MAX]);

/* Seconds left at the average rate so far: (total - done) * elapsed / done,
 * rounded up.  0 when done >= total; -1 (unknown) when done is 0 or
 * elapsed_ns <= 0. */
int64_t progress_eta_s(uint64_t done, uint64_t total, int64_t elapsed_ns);

/* Seconds as "m:ss" (under an hour) or "h:mm:ss"; negative (unknown) as
 * "--:--"; 100 hours or more as ">99:59:59". */
const char *progress_fmt_eta(int64_t s, char buf[PROGRESS_FMT_MAX]);

/* The line, without "\r" or newline, e.g.
 *   "1234567 lines, 45.2 MiB/120.0 MiB (37%), 65.2k events/s, ETA 1:23"
 *   "1234567 lines, 45.2 MiB, 65.2k events/s"                  (no total)
 *   "1234567 lines, 30000/40000 messages (75%), 65.2k events/s, ETA 0:04"
 * done is shown capped at total (a last line without a newline, offsets
 * read past what was captured).  events/s is lines over elapsed_ns.
 * Returns the length written to buf (cut to len - 1). */
size_t progress_format(const struct progress_snap *s, char *buf, size_t len);

/* Sum of the sizes of files ("-" is stdin: what is left of it from its
 * offset).  1 with *total when every one is a regular file; 0 when one is
 * not (a pipe, a terminal, a device, a missing file: the reader names it). */
int progress_input_size(char *const *files, int nfiles, uint64_t *total);

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t progress_now_ns(void);

/* Start: on or off, the terminal width (0: no limit), the start time. */
void progress_init(struct progress *p, FILE *f, int on, int width, int64_t now_ns);

/* 1 when a line should be drawn now: p is on and the last line (or the
 * start: a rate over the first milliseconds says little) is at least
 * PROGRESS_INTERVAL_NS old.  Cheap: call it as often as you like, build a
 * snapshot only when it says 1.  A run shorter than that draws only the
 * line of progress_end(). */
int progress_due(const struct progress *p, int64_t now_ns);

/* Draw s (elapsed_ns is set from now_ns) over the current line. */
void progress_draw(struct progress *p, struct progress_snap *s, int64_t now_ns);

/* The final line (s as it ends) and a newline; nothing when p is off. */
void progress_end(struct progress *p, struct progress_snap *s, int64_t now_ns);

#endif
