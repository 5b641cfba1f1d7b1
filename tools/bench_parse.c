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

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fprintf(argc == 2 ? stdout : stderr, "usage: bench-parse FILE\n"
                "  times json_loadb + json_decref over every line of the JSON Lines FILE\n");
        return argc == 2 ? 0 : 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    size_t cap = (size_t)1 << 26, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            fputs("bench-parse: out of memory\n", stderr);
            return 1;
        }
        len += fread(buf + len, 1, cap - len, f);
        if (len < cap)
            break;
        cap *= 2;
        buf = realloc(buf, cap);
    }
    if (ferror(f)) {
        perror(argv[1]);
        return 1;
    }
    fclose(f);

    /* Index the lines first so the timed loop does nothing but parse. */
    size_t nl = 0, lcap = 1 << 20;
    size_t *off = malloc(lcap * sizeof *off), *ln = malloc(lcap * sizeof *ln);
    for (size_t p = 0; p < len;) {
        char *nlp = memchr(buf + p, '\n', len - p);
        size_t e = nlp ? (size_t)(nlp - buf) : len;
        if (e > p) {
            if (nl == lcap) {
                lcap *= 2;
                off = realloc(off, lcap * sizeof *off);
                ln = realloc(ln, lcap * sizeof *ln);
            }
            if (!off || !ln) {
                fputs("bench-parse: out of memory\n", stderr);
                return 1;
            }
            off[nl] = p;
            ln[nl++] = e - p;
        }
        p = e + 1;
    }

    size_t bad = 0;
    json_error_t err;
    double t0 = now_s();
    for (size_t i = 0; i < nl; i++) {
        json_t *j = json_loadb(buf + off[i], ln[i], 0, &err);
        if (!j) {
            if (bad++ < 5)
                fprintf(stderr, "bench-parse: line %zu: %s\n", i + 1, err.text);
            continue;
        }
        json_decref(j);
    }
    double s = now_s() - t0;
    printf("parse: %zu events in %.3f s = %.0f events/s\n", nl, s, s > 0 ? (double)nl / s : 0.0);
    if (bad)
        fprintf(stderr, "bench-parse: %zu lines failed to parse\n", bad);
    free(off);
    free(ln);
    free(buf);
    return bad ? 1 : 0;
}
