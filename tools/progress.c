/* progress.c -- see progress.h. */
#include "tools/progress.h"

#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ETA_MAX_S (100LL * 3600 - 1)   /* 99:59:59; beyond it ">99:59:59" */

const char *progress_fmt_size(uint64_t bytes, char buf[PROGRESS_FMT_MAX]) {
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    int u = 0;
    /* Switch units where the smaller one would print as 1024.0. */
    while (u < 4 && v >= 1023.95) {
        v /= 1024;
        u++;
    }
    if (u == 0) snprintf(buf, PROGRESS_FMT_MAX, "%" PRIu64 " B", bytes);
    else snprintf(buf, PROGRESS_FMT_MAX, u < 3 ? "%.1f %s" : "%.2f %s", v, unit[u]);
    return buf;
}

double progress_rate(uint64_t n, int64_t elapsed_ns) {
    if (elapsed_ns <= 0) return -1;
    return (double)n * 1e9 / (double)elapsed_ns;
}

const char *progress_fmt_rate(double per_s, char buf[PROGRESS_FMT_MAX]) {
    if (per_s < 0) snprintf(buf, PROGRESS_FMT_MAX, "--");
    else if (per_s < 999.5) snprintf(buf, PROGRESS_FMT_MAX, "%.0f", per_s);
    else if (per_s < 999.95e3) snprintf(buf, PROGRESS_FMT_MAX, "%.1fk", per_s / 1e3);
    else if (per_s < 999.995e6) snprintf(buf, PROGRESS_FMT_MAX, "%.2fM", per_s / 1e6);
    else snprintf(buf, PROGRESS_FMT_MAX, "%.2fG", per_s / 1e9);
    return buf;
}

int64_t progress_eta_s(uint64_t done, uint64_t total, int64_t elapsed_ns) {
    if (done >= total) return 0;
    if (done == 0 || elapsed_ns <= 0) return -1;
    /* In doubles: (total - done) * elapsed_ns overflows 64 bits for a
     * terabyte file after a few hours; a second's precision is enough. */
    double ns = (double)(total - done) * (double)elapsed_ns / (double)done;
    double s = ns / 1e9;
    if (s > (double)ETA_MAX_S) return ETA_MAX_S + 1;
    int64_t whole = (int64_t)s;
    return (double)whole < s ? whole + 1 : whole;
}

const char *progress_fmt_eta(int64_t s, char buf[PROGRESS_FMT_MAX]) {
    if (s < 0) snprintf(buf, PROGRESS_FMT_MAX, "--:--");
    else if (s > ETA_MAX_S) snprintf(buf, PROGRESS_FMT_MAX, ">99:59:59");
    else if (s < 3600)
        snprintf(buf, PROGRESS_FMT_MAX, "%d:%02d", (int)(s / 60), (int)(s % 60));
    else
        snprintf(buf, PROGRESS_FMT_MAX, "%d:%02d:%02d", (int)(s / 3600), (int)(s / 60 % 60),
                 (int)(s % 60));
    return buf;
}

/* "A/B (P%)" of done and total in the snapshot's unit, or "A" without a total. */
static void fmt_position(const struct progress_snap *s, char *buf, size_t len) {
    char a[PROGRESS_FMT_MAX], b[PROGRESS_FMT_MAX];
    uint64_t done = s->has_total && s->done > s->total ? s->total : s->done;
    if (s->unit == PROGRESS_BYTES) {
        progress_fmt_size(done, a);
        progress_fmt_size(s->total, b);
    } else {
        snprintf(a, sizeof a, "%" PRIu64, done);
        snprintf(b, sizeof b, "%" PRIu64 " messages", s->total);
    }
    if (!s->has_total) {
        snprintf(buf, len, "%s%s", a, s->unit == PROGRESS_BYTES ? "" : " messages");
        return;
    }
    /* Floor, so 100% means all of it; an empty input is all done. */
    int pct = s->total ? (int)((double)done * 100.0 / (double)s->total) : 100;
    snprintf(buf, len, "%s/%s (%d%%)", a, b, pct);
}

size_t progress_format(const struct progress_snap *s, char *buf, size_t len) {
    char pos[2 * PROGRESS_FMT_MAX + 16], rate[PROGRESS_FMT_MAX], eta[PROGRESS_FMT_MAX];
    if (len == 0) return 0;
    fmt_position(s, pos, sizeof pos);
    progress_fmt_rate(progress_rate(s->lines, s->elapsed_ns), rate);
    int n;
    if (s->has_total)
        n = snprintf(buf, len, "%" PRIu64 " lines, %s, %s events/s, ETA %s", s->lines, pos, rate,
                     progress_fmt_eta(progress_eta_s(s->done, s->total, s->elapsed_ns), eta));
    else
        n = snprintf(buf, len, "%" PRIu64 " lines, %s, %s events/s", s->lines, pos, rate);
    if (n < 0) {
        buf[0] = 0;
        return 0;
    }
    return (size_t)n < len ? (size_t)n : len - 1;
}

int progress_input_size(char *const *files, int nfiles, uint64_t *total) {
    uint64_t sum = 0;
    for (int i = 0; i < nfiles; i++) {
        struct stat st;
        int is_stdin = strcmp(files[i], "-") == 0;
        if ((is_stdin ? fstat(STDIN_FILENO, &st) : stat(files[i], &st)) != 0) return 0;
        if (!S_ISREG(st.st_mode)) return 0;
        off_t off = is_stdin ? lseek(STDIN_FILENO, 0, SEEK_CUR) : 0;
        if (off < 0 || off > st.st_size) off = 0;
        sum += (uint64_t)(st.st_size - off);
    }
    *total = sum;
    return 1;
}

int64_t progress_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void progress_init(struct progress *p, FILE *f, int on, int width, int64_t now_ns) {
    memset(p, 0, sizeof(*p));
    p->f = f;
    p->on = on;
    p->width = width > 0 ? width : 0;
    p->start_ns = p->last_ns = now_ns;
}

int progress_due(const struct progress *p, int64_t now_ns) {
    return p->on && now_ns - p->last_ns >= PROGRESS_INTERVAL_NS;
}

void progress_draw(struct progress *p, struct progress_snap *s, int64_t now_ns) {
    char line[PROGRESS_LINE_MAX];
    if (!p->on) return;
    s->elapsed_ns = now_ns - p->start_ns;
    size_t n = progress_format(s, line, sizeof line);
    /* A line longer than the terminal wraps, and "\r" then redraws only
     * its last row: keep it within the width. */
    if (p->width > 1 && n > (size_t)(p->width - 1)) n = (size_t)(p->width - 1);
    fputc('\r', p->f);
    fwrite(line, 1, n, p->f);
    fputs("\033[K", p->f);
    fflush(p->f);
    p->last_ns = now_ns;
}

void progress_end(struct progress *p, struct progress_snap *s, int64_t now_ns) {
    if (!p->on) return;
    progress_draw(p, s, now_ns);
    fputc('\n', p->f);
    fflush(p->f);
}
