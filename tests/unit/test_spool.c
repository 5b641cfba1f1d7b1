/* test_spool.c -- credit-replay's output spool (tools/spool.c): whatever the
 * memory bound, the lines come out exactly in the order they were added,
 * across the memory part, the overflow file and its write buffer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tools/spool.h"

/* A line of n bytes ('a' + i % 26 repeated, then i), never containing \n. */
static size_t make_line(char *buf, size_t n, unsigned i) {
    for (size_t k = 0; k < n; k++) buf[k] = (char)('a' + (i + k) % 26);
    if (n >= 12) snprintf(buf + n - 12, 12, "%011u", i), buf[n - 1] = '#';
    return n;
}

/* Lengths that mix short and long lines, some larger than the write buffer:
 * a short line after one that did not fit must not jump ahead of it. */
static size_t len_of(unsigned i) {
    static const size_t L[] = {5, 300, 17, 4000, 1, 70000, 12, 900, 64 * 1024, 3, 131072, 40};
    return L[i % (sizeof(L) / sizeof(L[0]))];
}

static void run(size_t mem_max, unsigned nlines, int batches) {
    char err[256];
    struct spool s;
    char dir[] = "/tmp/test_spool.XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_int_equal(spool_init(&s, dir, mem_max, err, sizeof(err)), 0);
    char *line = malloc(200000);
    assert_non_null(line);
    for (int b = 0; b < batches; b++) {
        char *want = NULL, *got = NULL;
        size_t wantlen = 0, gotlen = 0;
        FILE *w = open_memstream(&want, &wantlen);
        FILE *out = tmpfile();
        assert_non_null(w);
        assert_non_null(out);
        for (unsigned i = 0; i < nlines; i++) {
            size_t n = make_line(line, len_of(i + (unsigned)b), i + (unsigned)b * 1000);
            assert_int_equal(spool_add(&s, line, n, err, sizeof(err)), 0);
            fwrite(line, 1, n, w);
            fputc('\n', w);
        }
        fclose(w);
        assert_int_equal(s.lines, nlines);
        assert_int_equal(spool_deliver(&s, out, err, sizeof(err)), 0);
        fflush(out);
        gotlen = (size_t)ftell(out);
        assert_int_equal(gotlen, wantlen);
        got = malloc(gotlen + 1);
        rewind(out);
        assert_int_equal(fread(got, 1, gotlen, out), gotlen);
        assert_memory_equal(got, want, wantlen);
        spool_reset(&s);
        fclose(out);
        free(got);
        free(want);
    }
    free(line);
    spool_free(&s);
    rmdir(dir);
}

static void test_all_in_memory(void **state) { (void)state; run(4 << 20, 30, 2); }
static void test_spill_small_memory(void **state) { (void)state; run(1000, 200, 3); }
static void test_spill_no_memory(void **state) { (void)state; run(0, 100, 2); }
static void test_spill_mid_line(void **state) { (void)state; run(70000, 120, 3); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_in_memory),
        cmocka_unit_test(test_spill_small_memory),
        cmocka_unit_test(test_spill_no_memory),
        cmocka_unit_test(test_spill_mid_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
