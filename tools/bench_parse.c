/* bench_parse.c -- the JSON parse-only baseline for `make bench`.
 *
 *   bench-parse FILE
 *
 * Reads the JSON Lines FILE into memory, then times (CLOCK_MONOTONIC) parsing
 * every non-empty line with jansson's json_loadb(line, len, 0, &err) followed
 * by json_decref -- nothing else.  Prints on stdout:
 *
 *   parse: N events in S s = R events/s
 *
 * This is the floor any consumer of the stream pays per event; tools/bench.sh
 * compares credit-replay's rate to it.  Lines that fail to parse are counted
 * and reported on stderr (exit status 1), since the benchmark stream must be
 * valid JSON throughout.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The non-empty lines of a buffer: line i is buf[off[i] .. off[i] + len[i]),
 * without its newline. */
typedef struct {
    size_t *off, *len;
    size_t n, cap;
} Lines;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Reads the whole of `path` into a malloc'ed *buf of *len bytes (the buffer
 * doubles from 64 MiB).  Returns 0, or 1 with a message on stderr. */
static int read_file(const char *path, char **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return 1;
    }
    size_t cap = (size_t)1 << 26;
    char *b = malloc(cap);
    *len = 0;
    for (;;) {
        if (!b) {
            fputs("bench-parse: out of memory\n", stderr);
            fclose(f);
            return 1;
        }
        *len += fread(b + *len, 1, cap - *len, f);
        if (*len < cap)
            break;
        cap *= 2;
        char *nb = realloc(b, cap);
        if (!nb)
            free(b);
        b = nb;
    }
    *buf = b;
    if (ferror(f)) {
        perror(path);
        fclose(f);
        return 1;
    }
    fclose(f);
    return 0;
}

/* Appends one line to *l, doubling the arrays when full.  Returns 0, or 1
 * with a message when out of memory. */
static int lines_push(Lines *l, size_t off, size_t len)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : (size_t)1 << 20;
        size_t *o = realloc(l->off, cap * sizeof *o);
        if (o)
            l->off = o;
        size_t *n = realloc(l->len, cap * sizeof *n);
        if (n)
            l->len = n;
        if (!o || !n) {
            fputs("bench-parse: out of memory\n", stderr);
            return 1;
        }
        l->cap = cap;
    }
    l->off[l->n] = off;
    l->len[l->n++] = len;
    return 0;
}

/* Indexes the non-empty lines of buf[0..len) (the last one may lack its
 * newline) so that the timed loop does nothing but parse. */
static int index_lines(const char *buf, size_t len, Lines *l)
{
    for (size_t p = 0; p < len;) {
        const char *nlp = memchr(buf + p, '\n', len - p);
        size_t e = nlp ? (size_t)(nlp - buf) : len;
        if (e > p && lines_push(l, p, e - p))
            return 1;
        p = e + 1;
    }
    return 0;
}

/* Parses and frees every line; returns the seconds taken.  *bad counts the
 * lines jansson rejects, the first five reported on stderr. */
static double time_parse(const char *buf, const Lines *l, size_t *bad)
{
    json_error_t err;
    *bad = 0;
    double t0 = now_s();
    for (size_t i = 0; i < l->n; i++) {
        json_t *j = json_loadb(buf + l->off[i], l->len[i], 0, &err);
        if (!j) {
            if ((*bad)++ < 5)
                fprintf(stderr, "bench-parse: line %zu: %s\n", i + 1, err.text);
            continue;
        }
        json_decref(j);
    }
    return now_s() - t0;
}

int main(int argc, char **argv)
{
    if (argc != 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fprintf(argc == 2 ? stdout : stderr, "usage: bench-parse FILE\n"
                "  times json_loadb + json_decref over every line of the JSON Lines FILE\n");
        return argc == 2 ? 0 : 2;
    }
    char *buf = NULL;
    size_t len = 0, bad = 0;
    Lines l = {0};
    int rc = 1;
    if (read_file(argv[1], &buf, &len) == 0 && index_lines(buf, len, &l) == 0) {
        double s = time_parse(buf, &l, &bad);
        printf("parse: %zu events in %.3f s = %.0f events/s\n", l.n, s,
               s > 0 ? (double)l.n / s : 0.0);
        if (bad)
            fprintf(stderr, "bench-parse: %zu lines failed to parse\n", bad);
        rc = bad ? 1 : 0;
    }
    free(l.off);
    free(l.len);
    free(buf);
    return rc;
}
