/* test_jarena.c -- unit tests for consumer/jarena.c (the parsing threads'
 * arenas for jansson trees):
 *   - allocations are 16-byte aligned and do not overlap; a reset hands the
 *     same memory out again (no new block);
 *   - an allocation larger than a block gets a block of its own, and a reset
 *     trims the arena back to JARENA_KEEP blocks; a long run of small ones
 *     grows in O(log) blocks;
 *   - the limit: past it allocation fails, and jansson's parse in that arena
 *     fails as on malloc failure (out-of-memory injection), then the arena
 *     works again after a reset;
 *   - the jansson contract: inside a scope the tree is the arena's (its frees
 *     are no-ops), outside a scope and on other threads jansson uses malloc
 *     and free, also for a block malloc'd before jarena_install;
 *   - AddressSanitizer builds: reset memory and redzones are poisoned. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#include <cmocka.h>
#include <jansson.h>

#include "consumer/jarena.h"

#if defined(__SANITIZE_ADDRESS__)
#define ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASAN 1
#endif
#endif
#ifdef ASAN
#include <sanitizer/asan_interface.h>
#endif

static json_t *before_install;   /* made with jansson's own malloc, freed after the install */

static void test_align_reuse(void **state) {
    (void)state;
    struct jarena a;
    jarena_init(&a, SIZE_MAX);
    char *p[200];
    size_t n[200];
    for (int i = 0; i < 200; i++) {
        n[i] = (size_t)(i * 37) % 700 + (i == 0);   /* 1..700 bytes */
        p[i] = jarena_alloc(&a, n[i]);
        assert_non_null(p[i]);
        assert_int_equal((uintptr_t)p[i] % 16, 0);
        assert_true(jarena_owns(&a, p[i]) && jarena_owns(&a, p[i] + n[i] - 1));
        memset(p[i], i, n[i]);
    }
    for (int i = 0; i < 200; i++)   /* nothing overwrote anything */
        for (size_t k = 0; k < n[i]; k++) assert_int_equal((unsigned char)p[i][k], i);
    size_t held = a.held;
    assert_true(held <= 10 * JARENA_BLOCK);
    jarena_reset(&a);
    assert_false(jarena_owns(&a, p[0]));
    assert_int_equal(a.held, held < JARENA_KEEP * JARENA_BLOCK ? held : JARENA_KEEP * JARENA_BLOCK);
    char *q = jarena_alloc(&a, n[0]);   /* the last block used, kept and handed out again */
    assert_non_null(q);
    assert_int_equal(a.held, held < JARENA_KEEP * JARENA_BLOCK ? held : JARENA_KEEP * JARENA_BLOCK);
    for (int round = 0; round < 1000; round++) {   /* the same work again: no growth */
        jarena_reset(&a);
        for (int i = 0; i < 20; i++) assert_non_null(jarena_alloc(&a, n[i]));
    }
    assert_true(a.held <= JARENA_KEEP * JARENA_BLOCK);
    jarena_destroy(&a);
    assert_int_equal(a.held, 0);
}

static void test_large_and_trim(void **state) {
    (void)state;
    struct jarena a;
    jarena_init(&a, SIZE_MAX);
    char *small = jarena_alloc(&a, 100);
    char *big = jarena_alloc(&a, 3 * JARENA_BLOCK);   /* larger than a block */
    assert_non_null(big);
    assert_int_equal((uintptr_t)big % 16, 0);
    memset(big, 7, 3 * JARENA_BLOCK);
    char *after = jarena_alloc(&a, 100);   /* still from the first block */
    assert_true(after > small && after < small + JARENA_BLOCK);
    assert_true(jarena_owns(&a, big + 3 * JARENA_BLOCK - 1));
    assert_true(a.held >= 4 * JARENA_BLOCK);
    /* 8 MiB in 100-byte pieces: the arena grows by half of what it holds */
    for (int i = 0; i < 80000; i++) assert_non_null(jarena_alloc(&a, 100));
    assert_true(a.held >= 8000000);
    if (a.nused > 40) fail_msg("%d blocks for 8 MiB", a.nused);
    jarena_reset(&a);
    assert_true(a.held <= JARENA_KEEP * JARENA_BLOCK);   /* trimmed back */
    jarena_destroy(&a);
}

static void test_limit(void **state) {
    (void)state;
    struct jarena a;
    jarena_init(&a, 2 * JARENA_BLOCK);
    int got = 0;
    while (jarena_alloc(&a, 1000)) got++;
    assert_true(got > 0 && got <= 2 * JARENA_BLOCK / 1000);
    assert_true(a.held <= 2 * JARENA_BLOCK);
    assert_null(jarena_alloc(&a, JARENA_BLOCK));   /* a block of its own: over the limit too */
    jarena_reset(&a);
    assert_non_null(jarena_alloc(&a, 1000));
    jarena_destroy(&a);
}

/* A JSON array of n strings: a tree far larger than a block. */
static char *big_json(int n, size_t *len) {
    char *s = malloc((size_t)n * 16 + 2);
    assert_non_null(s);
    size_t at = 0;
    s[at++] = '[';
    for (int i = 0; i < n; i++) at += (size_t)sprintf(s + at, "%s\"s%d\"", i ? "," : "", i);
    s[at++] = ']';
    *len = at;
    return s;
}

static void test_json_oom(void **state) {
    (void)state;
    struct jarena a;
    size_t len;
    char *text = big_json(20000, &len);
    json_error_t e;
    jarena_init(&a, 4 * JARENA_BLOCK);   /* the injected failure: the tree needs more */
    jarena_enter(&a);
    json_t *t = json_loadb(text, len, 0, &e);
    jarena_leave();
    assert_null(t);   /* as when malloc fails (jansson leaves e.text empty on some paths) */
    assert_true(a.held <= 4 * JARENA_BLOCK);
    jarena_reset(&a);
    jarena_enter(&a);
    t = json_loadb("{\"n\":5,\"s\":\"x\"}", 15, 0, &e);
    jarena_leave();
    assert_non_null(t);
    assert_true(jarena_owns(&a, t));
    assert_int_equal(json_integer_value(json_object_get(t, "n")), 5);
    jarena_destroy(&a);
    /* Without the limit the same text parses, into many blocks, trimmed after. */
    jarena_init(&a, SIZE_MAX);
    jarena_enter(&a);
    t = json_loadb(text, len, 0, &e);
    jarena_leave();
    assert_non_null(t);
    assert_int_equal(json_array_size(t), 20000);
    assert_string_equal(json_string_value(json_array_get(t, 19999)), "s19999");
    assert_true(a.held > JARENA_KEEP * JARENA_BLOCK);
    jarena_reset(&a);
    assert_true(a.held <= JARENA_KEEP * JARENA_BLOCK);
    jarena_destroy(&a);
    free(text);
}

static void *other_thread(void *arg) {
    struct jarena *a = arg;
    json_t *o = json_pack("{s:i}", "k", 1);   /* malloc: this thread has no scope */
    int owned = o && jarena_owns(a, o);
    json_decref(o);
    return (void *)(intptr_t)(o && !owned);
}

static void test_json_scope(void **state) {
    (void)state;
    assert_true(jarena_installed());
    json_decref(before_install);   /* malloc'd before the install: freed with free() */
    struct jarena a;
    json_error_t e;
    jarena_init(&a, SIZE_MAX);
    json_t *out = json_pack("{s:s}", "a", "b");   /* no scope: malloc */
    assert_false(jarena_owns(&a, out));
    jarena_enter(&a);
    json_t *t = json_loadb("{\"a\":[1,2,{\"b\":\"c\"}],\"d\":1.5}", 29, 0, &e);
    assert_non_null(t);
    assert_true(jarena_owns(&a, t));
    size_t held = a.held;
    pthread_t th;
    void *ok = NULL;
    assert_int_equal(pthread_create(&th, NULL, other_thread, &a), 0);
    assert_int_equal(pthread_join(th, &ok), 0);
    assert_true(ok != NULL);
    json_decref(t);   /* a no-op in the arena (the engine never does it; jansson does on errors) */
    json_decref(out); /* inside the scope, but malloc'd: freed with free() */
    jarena_leave();
    assert_int_equal(a.held, held);
    json_t *o = json_pack("[i]", 3);
    char *s = json_dumps(o, 0);
    assert_non_null(s);
    free(s);   /* json_dumps's result is malloc's outside a scope */
    json_decref(o);
    jarena_destroy(&a);
}

static void test_poison(void **state) {
    (void)state;
#ifdef ASAN
    struct jarena a;
    jarena_init(&a, SIZE_MAX);
    char *p = jarena_alloc(&a, 24);
    assert_false(__asan_address_is_poisoned(p));
    assert_false(__asan_address_is_poisoned(p + 23));
    assert_true(__asan_address_is_poisoned(p + 24));   /* the redzone */
    char *q = jarena_alloc(&a, 8);
    assert_true(q >= p + 40);
    jarena_reset(&a);
    assert_true(__asan_address_is_poisoned(p));   /* a use after reset is reported */
    assert_true(__asan_address_is_poisoned(q));
    char *r = jarena_alloc(&a, 24);
    assert_ptr_equal(r, p);
    assert_false(__asan_address_is_poisoned(r));
    assert_true(__asan_address_is_poisoned(q));
    jarena_destroy(&a);
#else
    skip();   /* only the build/asan binary can see poisoning */
#endif
}

int main(void) {
    before_install = json_pack("{s:[i,i]}", "x", 1, 2);
    jarena_install();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_align_reuse),
        cmocka_unit_test(test_large_and_trim),
        cmocka_unit_test(test_limit),
        cmocka_unit_test(test_json_oom),
        cmocka_unit_test(test_json_scope),
        cmocka_unit_test(test_poison),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
