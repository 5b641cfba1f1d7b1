/* test_lineq.c -- unit tests for tools/lineq.c (credit-replay's file
 * input, read and parsed by consumer/parseq.c): lines in order across files,
 * with and without a final newline, longer than the read buffer; a read
 * error names the file; --until ends the input before the first later
 * line; and lineq_stop() returns while the reader waits for input on a pipe
 * whose writer stays open (a SIGALRM ends the test if it hangs).  Every
 * test runs with 0 (inline), 1 and 3 parsing threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "consumer/jarena.h"
#include "engine/timeutil.h"
#include "tools/lineq.h"

#define BOUND_S 10   /* lineq_stop must return well within this */
#define LONG_LINE (600 * 1024)

static char dir[64];
#define THREADS (*(int *)*state)   /* the test's parsing threads */

static int setup(void **state) {
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/test_lineq.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
    char cmd[128];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static char *write_file(const char *name, const char *text, size_t len) {
    static char path[2][128];
    static int k;
    char *p = path[k++ % 2];
    snprintf(p, sizeof(path[0]), "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    return p;
}

static void expect_line(struct lineq *q, const char *want, size_t len, int64_t no, int json) {
    struct lineq_line l;
    char err[256];
    assert_int_equal(lineq_next(q, &l, err, sizeof(err)), 1);
    assert_int_equal(l.len, len);
    assert_memory_equal(l.buf, want, len);
    assert_int_equal(l.buf[len], 0);
    assert_int_equal(l.no, no);
    if (json) assert_non_null(l.root);
    else assert_null(l.root);
}

/* Two files: empty lines kept, no final newline, a line longer than the
 * reader's buffer, numbering across files. */
static void test_lines_in_order(void **state) {
    const char ev[] = "{\"specversion\":\"1.0\",\"id\":\"e1\"}";
    char *one = write_file("one", "a\n\n{\"specversion\":\"1.0\",\"id\":\"e1\"}\nlast", 39);
    char *big = malloc(LONG_LINE + 3);
    assert_non_null(big);
    memset(big, 'x', LONG_LINE);
    memcpy(big + LONG_LINE, "\nz\n", 3);
    char *two = write_file("two", big, LONG_LINE + 3);
    char *files[] = {one, two};
    struct lineq *q;
    char err[256];
    assert_int_equal(lineq_start(&q, files, 2, 0, 0, THREADS, err, sizeof(err)), 0);
    expect_line(q, "a", 1, 1, 0);
    expect_line(q, "", 0, 2, 0);
    expect_line(q, ev, sizeof(ev) - 1, 3, 1);
    expect_line(q, "last", 4, 4, 0);
    expect_line(q, big, LONG_LINE, 5, 0);
    expect_line(q, "z", 1, 6, 0);
    struct lineq_line l;
    assert_int_equal(lineq_next(q, &l, err, sizeof(err)), 0);
    lineq_stop(q);
    free(big);
}

static void test_missing_file_is_named(void **state) {
    char path[128];
    snprintf(path, sizeof(path), "%s/missing", dir);
    char *files[] = {path};
    struct lineq *q;
    struct lineq_line l;
    char err[256];
    assert_int_equal(lineq_start(&q, files, 1, 0, 0, THREADS, err, sizeof(err)), 0);
    assert_int_equal(lineq_next(q, &l, err, sizeof(err)), -1);
    assert_non_null(strstr(err, path));
    lineq_stop(q);
}

/* The reader waits for the next line of a pipe whose writer stays open:
 * lineq_stop() must not wait with it. */
static void test_stop_while_reader_waits(void **state) {
    int fds[2];
    char path[64], err[256];
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(write(fds[1], "x\n", 2), 2);
    snprintf(path, sizeof(path), "/dev/fd/%d", fds[0]);
    char *files[] = {path};
    struct lineq *q;
    assert_int_equal(lineq_start(&q, files, 1, 0, 0, THREADS, err, sizeof(err)), 0);
    expect_line(q, "x", 1, 1, 0); /* a pipe hands each line over at once */
    alarm(BOUND_S);               /* default action: the test dies if stop hangs */
    lineq_stop(q);
    alarm(0);
    close(fds[0]);
    close(fds[1]);
}

/* End of a pipe's input once its writer closes. */
static void test_pipe_eof(void **state) {
    int fds[2];
    char path[64], err[256];
    assert_int_equal(pipe(fds), 0);
    snprintf(path, sizeof(path), "/dev/fd/%d", fds[0]);
    char *files[] = {path};
    struct lineq *q;
    struct lineq_line l;
    assert_int_equal(lineq_start(&q, files, 1, 0, 0, THREADS, err, sizeof(err)), 0);
    assert_int_equal(write(fds[1], "p1\np2", 5), 5);
    expect_line(q, "p1", 2, 1, 0);
    close(fds[1]);
    expect_line(q, "p2", 2, 2, 0);
    assert_int_equal(lineq_next(q, &l, err, sizeof(err)), 0);
    lineq_stop(q);
    close(fds[0]);
}

/* --until: the input ends before the first line later than until (an
 * unreadable time does not end it), and stays ended. */
static void test_until(void **state) {
    static const char text[] =
        "{\"time\":\"2026-01-01T00:00:00Z\"}\n"
        "not json\n"
        "{\"time\":\"2026-01-02T00:00:00Z\"}\n"
        "{\"time\":\"2026-01-02T00:00:01Z\"}\n"
        "{\"time\":\"2026-01-01T00:00:00Z\"}\n";
    char *one = write_file("until", text, sizeof(text) - 1);
    char *files[] = {one};
    struct lineq *q;
    struct lineq_line l;
    char err[256];
    int64_t until;
    assert_int_equal(time_parse_rfc3339("2026-01-02T00:00:00Z", &until), 0);
    assert_int_equal(lineq_start(&q, files, 1, 1, until, THREADS, err, sizeof(err)), 0);
    expect_line(q, "{\"time\":\"2026-01-01T00:00:00Z\"}", 31, 1, 1);
    expect_line(q, "not json", 8, 2, 0);
    expect_line(q, "{\"time\":\"2026-01-02T00:00:00Z\"}", 31, 3, 1);
    assert_int_equal(lineq_next(q, &l, err, sizeof(err)), 0);
    assert_int_equal(lineq_next(q, &l, err, sizeof(err)), 0);
    lineq_stop(q);
}

#define EACH(f) \
    cmocka_unit_test_prestate(f, &nthreads[0]), cmocka_unit_test_prestate(f, &nthreads[1]), \
    cmocka_unit_test_prestate(f, &nthreads[2])

int main(void) {
    static int nthreads[] = {0, 1, 3};
    jarena_install();   /* as credit-replay does: the trees in the parsing threads' arenas */
    const struct CMUnitTest tests[] = {
        EACH(test_lines_in_order),
        EACH(test_missing_file_is_named),
        EACH(test_stop_while_reader_waits),
        EACH(test_pipe_eof),
        EACH(test_until),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
