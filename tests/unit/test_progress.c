/* test_progress.c -- unit tests for tools/progress.c (credit-replay's
 * progress line): sizes, rates and ETAs formatted, the ETA arithmetic with
 * its edge cases (zero elapsed, nothing done, done past the total, totals
 * beyond 64-bit products), whole lines with and without a total, the input
 * size of regular files and not of a pipe, and the redraw: "\r", clear to
 * end of line, at most one line per interval, cut to the terminal width,
 * a newline at the end, nothing at all when off. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tools/progress.h"

#define MS 1000000LL
#define S  1000000000LL

static void test_sizes(void **state) {
    (void)state;
    char b[PROGRESS_FMT_MAX];
    assert_string_equal(progress_fmt_size(0, b), "0 B");
    assert_string_equal(progress_fmt_size(1023, b), "1023 B");
    assert_string_equal(progress_fmt_size(1024, b), "1.0 KiB");
    assert_string_equal(progress_fmt_size(1536, b), "1.5 KiB");
    /* Never "1024.0 KiB": a unit up where the smaller one would round to it. */
    assert_string_equal(progress_fmt_size(1024 * 1024 - 1, b), "1.0 MiB");
    assert_string_equal(progress_fmt_size(47395635, b), "45.2 MiB");
    assert_string_equal(progress_fmt_size(1320702444ULL, b), "1.23 GiB");
    assert_string_equal(progress_fmt_size(2ULL << 40, b), "2.00 TiB");
    assert_string_equal(progress_fmt_size(UINT64_MAX, b), "16777216.00 TiB");
}

static void test_rates(void **state) {
    (void)state;
    char b[PROGRESS_FMT_MAX];
    assert_true(progress_rate(100, 0) < 0);            /* zero elapsed: no rate */
    assert_true(progress_rate(100, -5) < 0);
    assert_true(progress_rate(0, S) == 0.0);
    assert_true(progress_rate(500, S / 2) == 1000.0);
    assert_string_equal(progress_fmt_rate(-1, b), "--");
    assert_string_equal(progress_fmt_rate(0, b), "0");
    assert_string_equal(progress_fmt_rate(950.4, b), "950");
    assert_string_equal(progress_fmt_rate(999.6, b), "1.0k");
    assert_string_equal(progress_fmt_rate(65234, b), "65.2k");
    assert_string_equal(progress_fmt_rate(999960, b), "1.00M");
    assert_string_equal(progress_fmt_rate(1234567, b), "1.23M");
    assert_string_equal(progress_fmt_rate(5e9, b), "5.00G");
}

static void test_eta(void **state) {
    (void)state;
    char b[PROGRESS_FMT_MAX];
    assert_int_equal(progress_eta_s(0, 100, 10 * S), -1);      /* nothing done yet */
    assert_int_equal(progress_eta_s(10, 100, 0), -1);          /* zero elapsed */
    assert_int_equal(progress_eta_s(50, 100, 10 * S), 10);     /* half in 10 s: 10 s left */
    assert_int_equal(progress_eta_s(3, 10, 1 * S), 3);         /* 2.33 s: rounded up */
    assert_int_equal(progress_eta_s(100, 100, 10 * S), 0);     /* done */
    assert_int_equal(progress_eta_s(101, 100, 10 * S), 0);     /* done > total */
    assert_int_equal(progress_eta_s(0, 0, 0), 0);              /* an empty input is done */
    /* A terabyte after an hour: (total - done) * elapsed_ns overflows 64 bits. */
    assert_int_equal(progress_eta_s(1ULL << 39, 1ULL << 40, 3600 * S), 3600);
    /* Beyond 99:59:59, capped. */
    assert_string_equal(progress_fmt_eta(progress_eta_s(1, UINT64_MAX, S), b), ">99:59:59");
    assert_string_equal(progress_fmt_eta(-1, b), "--:--");
    assert_string_equal(progress_fmt_eta(0, b), "0:00");
    assert_string_equal(progress_fmt_eta(83, b), "1:23");
    assert_string_equal(progress_fmt_eta(3599, b), "59:59");
    assert_string_equal(progress_fmt_eta(3600, b), "1:00:00");
    assert_string_equal(progress_fmt_eta(100 * 3600 - 1, b), "99:59:59");
    assert_string_equal(progress_fmt_eta(100 * 3600, b), ">99:59:59");
}

static void test_lines(void **state) {
    (void)state;
    char b[PROGRESS_LINE_MAX];
    struct progress_snap s = {PROGRESS_BYTES, 1234567, 47395635, 125829120, 1, 19 * S};
    progress_format(&s, b, sizeof b);
    assert_string_equal(b, "1234567 lines, 45.2 MiB/120.0 MiB (37%), 65.0k events/s, ETA 0:32");
    s.has_total = 0; /* stdin or a pipe */
    progress_format(&s, b, sizeof b);
    assert_string_equal(b, "1234567 lines, 45.2 MiB, 65.0k events/s");
    /* done > total (a last line without its newline): shown as all of it. */
    struct progress_snap over = {PROGRESS_BYTES, 3, 31, 30, 1, 2 * S};
    progress_format(&over, b, sizeof b);
    assert_string_equal(b, "3 lines, 30 B/30 B (100%), 2 events/s, ETA 0:00");
    struct progress_snap almost = {PROGRESS_BYTES, 2, 999, 1000, 1, S};
    progress_format(&almost, b, sizeof b);
    assert_string_equal(b, "2 lines, 999 B/1000 B (99%), 2 events/s, ETA 0:01"); /* floor, not 100% */
    struct progress_snap zero = {PROGRESS_BYTES, 0, 0, 0, 1, 0};
    progress_format(&zero, b, sizeof b);
    assert_string_equal(b, "0 lines, 0 B/0 B (100%), -- events/s, ETA 0:00");
    struct progress_snap start = {PROGRESS_BYTES, 0, 0, 500, 1, 0};
    progress_format(&start, b, sizeof b);
    assert_string_equal(b, "0 lines, 0 B/500 B (0%), -- events/s, ETA --:--");
    struct progress_snap k = {PROGRESS_MESSAGES, 30000, 30000, 40000, 1, 3 * S};
    progress_format(&k, b, sizeof b);
    assert_string_equal(b, "30000 lines, 30000/40000 messages (75%), 10.0k events/s, ETA 0:01");
    k.done = 40007; /* offsets past what was captured */
    progress_format(&k, b, sizeof b);
    assert_string_equal(b, "30000 lines, 40000/40000 messages (100%), 10.0k events/s, ETA 0:00");
    /* Cut to the buffer. */
    assert_int_equal(progress_format(&k, b, 8), 7);
    assert_string_equal(b, "30000 l");
}

static void test_input_size(void **state) {
    (void)state;
    char dir[] = "/tmp/test_progress.XXXXXX", a[64], c[64], cmd[96];
    assert_non_null(mkdtemp(dir));
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(c, sizeof c, "%s/c", dir);
    FILE *f = fopen(a, "w");
    assert_non_null(f);
    fputs("0123456789", f);
    assert_int_equal(fclose(f), 0);
    assert_non_null(f = fopen(c, "w"));
    fputs("abc\n", f);
    assert_int_equal(fclose(f), 0);
    uint64_t total = 99;
    char *two[] = {a, c};
    assert_int_equal(progress_input_size(two, 2, &total), 1);
    assert_int_equal(total, 14);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    char fifo[64];
    snprintf(fifo, sizeof fifo, "/dev/fd/%d", fds[0]);
    char *with_pipe[] = {a, fifo};
    assert_int_equal(progress_input_size(with_pipe, 2, &total), 0);
    char *missing[] = {a, "/nonexistent/x"};
    assert_int_equal(progress_input_size(missing, 2, &total), 0);
    close(fds[0]);
    close(fds[1]);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* What a struct progress wrote to a memory stream. */
struct sink {
    FILE *f;
    char *buf;
    size_t len;
};

static void sink_open(struct sink *k) {
    k->buf = NULL;
    k->len = 0;
    k->f = open_memstream(&k->buf, &k->len);
    assert_non_null(k->f);
}

static void sink_close(struct sink *k) {
    fclose(k->f);
    free(k->buf);
}

static void test_redraw(void **state) {
    (void)state;
    struct sink k;
    struct progress p;
    struct progress_snap s = {PROGRESS_BYTES, 10, 100, 400, 1, 0};
    sink_open(&k);
    progress_init(&p, k.f, 1, 0, 1000 * S);
    assert_false(progress_due(&p, 1000 * S));                     /* not at the start */
    assert_false(progress_due(&p, 1000 * S + PROGRESS_INTERVAL_NS - 1));
    assert_true(progress_due(&p, 1000 * S + PROGRESS_INTERVAL_NS));
    progress_draw(&p, &s, 1001 * S);
    fflush(k.f);
    assert_string_equal(k.buf, "\r10 lines, 100 B/400 B (25%), 10 events/s, ETA 0:03\033[K");
    assert_true(s.elapsed_ns == S);                               /* set from the start */
    assert_false(progress_due(&p, 1001 * S + 100 * MS));          /* at most 4 a second */
    assert_true(progress_due(&p, 1001 * S + PROGRESS_INTERVAL_NS));
    s.lines = 40;
    s.done = 400;
    progress_end(&p, &s, 1002 * S);
    fflush(k.f);
    assert_string_equal(k.buf, "\r10 lines, 100 B/400 B (25%), 10 events/s, ETA 0:03\033[K"
                               "\r40 lines, 400 B/400 B (100%), 20 events/s, ETA 0:00\033[K\n");
    sink_close(&k);
}

static void test_width_and_off(void **state) {
    (void)state;
    struct sink k;
    struct progress p;
    struct progress_snap s = {PROGRESS_BYTES, 10, 100, 400, 1, 0};
    sink_open(&k);
    progress_init(&p, k.f, 1, 12, 0);                             /* a 12-column terminal */
    progress_draw(&p, &s, S);
    fflush(k.f);
    assert_string_equal(k.buf, "\r10 lines, 1\033[K");            /* 11 columns, no wrap */
    sink_close(&k);

    sink_open(&k);
    progress_init(&p, k.f, 0, 80, 0);                             /* off: not a terminal */
    assert_false(progress_due(&p, 10 * S));
    progress_draw(&p, &s, 10 * S);
    progress_end(&p, &s, 11 * S);
    fflush(k.f);
    assert_int_equal(k.len, 0);
    sink_close(&k);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_rates),
        cmocka_unit_test(test_eta),
        cmocka_unit_test(test_lines),
        cmocka_unit_test(test_input_size),
        cmocka_unit_test(test_redraw),
        cmocka_unit_test(test_width_and_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
