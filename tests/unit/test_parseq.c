/* test_parseq.c -- unit tests for consumer/parseq.c (parse ahead, apply in
 * order), each with 0 (inline), 1, 4 and 32 parsing threads, and each twice:
 * with the trees in jansson's own allocator (counted, json_decref'd) and in
 * the chunks' arenas (jarena_install, as creditd and credit-replay run):
 *   - order: 100,000 messages of very different sizes (threads finish out of
 *     order), pushed and taken in random runs, come back in push order with
 *     their own number, tag and tree;
 *   - bounds: push refuses exactly when PARSEQ_SLOTS(n) chunks are waiting,
 *     and accepts again once a chunk was passed; the JSON trees alive at
 *     once stay below the ring's size during a long stream (jansson's
 *     allocator is counted);
 *   - errors: invalid JSON comes back as NULL with jansson's message; a
 *     source's error comes after every line it added before, with its text;
 *   - reset and shutdown mid-stream: parseq_reset forgets what was pushed
 *     and the queue works on; parseq_free with messages in flight, and with
 *     a source blocked in read until interrupted, returns (SIGALRM bounds
 *     the test). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>

#include <cmocka.h>

#include "consumer/jarena.h"
#include "consumer/parseq.h"
#include "engine/engine.h"

#define THREADS (*(int *)*state)
#define BOUND_S 60            /* a hang fails the test */
#define MSGS 100000

/* ---- counting jansson's allocations ---------------------------------------- */

static long live;             /* blocks jansson holds; atomics: parsing threads allocate */
static long live_max;

static void *count_malloc(size_t n) {
    long now = __atomic_add_fetch(&live, 1, __ATOMIC_RELAXED);
    long m = __atomic_load_n(&live_max, __ATOMIC_RELAXED);
    while (now > m && !__atomic_compare_exchange_n(&live_max, &m, now, 0, __ATOMIC_RELAXED,
                                                   __ATOMIC_RELAXED)) {}
    return malloc(n);
}

static void count_free(void *p) {
    if (p) __atomic_sub_fetch(&live, 1, __ATOMIC_RELAXED);
    free(p);
}

/* ---- messages ---------------------------------------------------------------- */

/* Message i: {"n":i,"pad":"xx..."} with a pad of 0..~4000 bytes, every 97th
 * invalid JSON.  Into buf (at least 4200 bytes); its length. */
static size_t message(char *buf, int64_t i) {
    if (i % 97 == 5) return (size_t)sprintf(buf, "{\"n\":%lld,", (long long)i);
    size_t pad = (size_t)((i * 7919) % 13 == 0 ? 4000 : (i * 31) % 64);
    int n = sprintf(buf, "{\"n\":%lld,\"pad\":\"", (long long)i);
    memset(buf + n, 'x', pad);
    return (size_t)n + pad + (size_t)sprintf(buf + n + pad, "\"}");
}

/* The messages stay in one array: push borrows them. */
struct msgs {
    char *text;
    size_t *off, *len;
};

static void msgs_make(struct msgs *m, int64_t n) {
    m->text = malloc((size_t)n * 4200);
    m->off = malloc((size_t)n * sizeof(size_t));
    m->len = malloc((size_t)n * sizeof(size_t));
    assert_non_null(m->text);
    size_t at = 0;
    for (int64_t i = 0; i < n; i++) {
        m->off[i] = at;
        m->len[i] = message(m->text + at, i);
        at += m->len[i];
    }
}

static void msgs_free(struct msgs *m) {
    free(m->text);
    free(m->off);
    free(m->len);
}

static int push(struct parseq *q, const struct msgs *m, int64_t i) {
    return parseq_push(q, m->text + m->off[i], m->len[i], i * 10, (void *)(uintptr_t)(i + 1));
}

/* The item is message i, parsed as it should be. */
static void check_item(const struct parseq_item *it, const struct msgs *m, int64_t i) {
    if (it->no != i * 10) fail_msg("got message %lld, want %lld", (long long)(it->no / 10), (long long)i);
    assert_ptr_equal(it->tag, (void *)(uintptr_t)(i + 1));
    assert_ptr_equal(it->buf, m->text + m->off[i]);
    assert_int_equal(it->len, m->len[i]);
    if (i % 97 == 5) {
        assert_null(it->root);
        assert_null(it->pre);
        assert_true(strlen(it->jerr->text) > 0);
        return;
    }
    assert_non_null(it->root);
    assert_int_equal(json_integer_value(json_object_get(it->root, "n")), i);
    uint64_t h;   /* the content hash came along, the engine's */
    assert_non_null(it->pre);
    assert_true(it->pre->hashed);
    assert_int_equal(engine_hash(it->root, &h), 0);
    assert_true(it->pre->hash == h);
}

static void take(struct parseq *q, const struct msgs *m, int64_t i) {
    struct parseq_item it;
    char err[256];
    assert_int_equal(parseq_next(q, &it, err, sizeof(err)), 1);
    check_item(&it, m, i);
}

/* ---- push mode ------------------------------------------------------------- */

static void test_order(void **state) {
    struct msgs m;
    struct parseq *q;
    char err[256];
    msgs_make(&m, MSGS);
    assert_int_equal(parseq_new(&q, THREADS, NULL, err, sizeof(err)), 0);
    alarm(BOUND_S);
    srand(7);
    int64_t pushed = 0, taken = 0;
    while (taken < MSGS) {
        int64_t want = rand() % 300;     /* sometimes more than the ring holds */
        for (int64_t k = 0; k < want && pushed < MSGS && push(q, &m, pushed); k++) pushed++;
        if (rand() % 3 == 0) parseq_flush(q);
        int64_t n = rand() % 200 + 1;
        for (int64_t k = 0; k < n && taken < pushed; k++) take(q, &m, taken++);
        assert_int_equal(parseq_pending(q), (size_t)(pushed - taken));
    }
    struct parseq_item it;
    assert_int_equal(parseq_next(q, &it, err, sizeof(err)), 0);
    alarm(0);
    parseq_free(q);
    msgs_free(&m);
}

static void test_bounded(void **state) {
    struct msgs m;
    struct parseq *q;
    char err[256];
    int64_t cap = (int64_t)PARSEQ_SLOTS(THREADS) * PARSEQ_CHUNK, i;
    msgs_make(&m, 4 * cap + 20000);
    assert_int_equal(parseq_new(&q, THREADS, NULL, err, sizeof(err)), 0);
    alarm(BOUND_S);
    for (i = 0; i < cap; i++) assert_int_equal(push(q, &m, i), 1);
    assert_int_equal(push(q, &m, i), 0);           /* full: nothing was taken */
    assert_int_equal(parseq_pending(q), (size_t)cap);
    assert_int_equal(parseq_capacity(q), (size_t)cap);
    for (int64_t k = 0; k < PARSEQ_CHUNK; k++) take(q, &m, k);
    assert_int_equal(push(q, &m, i), 0);           /* the first chunk is still the caller's */
    take(q, &m, PARSEQ_CHUNK);                     /* passes it */
    for (int64_t k = 0; k < PARSEQ_CHUNK; k++) assert_int_equal(push(q, &m, i++), 1);
    assert_int_equal(push(q, &m, i), 0);
    /* A long stream: the trees alive stay bounded by the ring. */
    int64_t t = PARSEQ_CHUNK + 1;
    __atomic_store_n(&live_max, __atomic_load_n(&live, __ATOMIC_RELAXED), __ATOMIC_RELAXED);
    long base = __atomic_load_n(&live, __ATOMIC_RELAXED);
    for (; i < 4 * cap + 20000; i++)
        while (!push(q, &m, i)) take(q, &m, t++);
    while (t < i) take(q, &m, t++);
    /* each tree of message i: the object, its two keys' values and a
     * hashtable bucket array: a handful of blocks; 8 per message bounds it */
    long bound = (long)(cap + PARSEQ_CHUNK) * 8;
    if (live_max - base > bound) fail_msg("%ld blocks alive at once, more than %ld", live_max - base, bound);
    /* arenas: each chunk keeps at most JARENA_KEEP blocks once cleared, and
     * parses no more than 16 messages of < 4.2 KB (trees < 3 blocks more) */
    size_t abound = (size_t)PARSEQ_SLOTS(THREADS) * (JARENA_KEEP + 3) * JARENA_BLOCK;
    if (parseq_arena_bytes(q) > abound) fail_msg("arenas hold %zu bytes", parseq_arena_bytes(q));
    if (jarena_installed() && parseq_arena_bytes(q) == 0) fail_msg("no arena used");
    alarm(0);
    parseq_free(q);
    assert_int_equal(__atomic_load_n(&live, __ATOMIC_RELAXED), 0);  /* every tree freed */
    msgs_free(&m);
}

/* Reset mid-stream: forget what was pushed, go on with new messages. */
static void test_reset(void **state) {
    struct msgs m;
    struct parseq *q;
    char err[256];
    struct parseq_item it;
    msgs_make(&m, 3000);
    assert_int_equal(parseq_new(&q, THREADS, NULL, err, sizeof(err)), 0);
    alarm(BOUND_S);
    int64_t i = 0;
    while (i < 1000 && push(q, &m, i)) i++;
    for (int64_t k = 0; k < 10; k++) take(q, &m, k);
    parseq_reset(q);
    assert_int_equal(parseq_pending(q), 0);
    assert_int_equal(parseq_next(q, &it, err, sizeof(err)), 0);
    /* Again from 0 (an aborted batch applied again), then on to the end. */
    int64_t t = 0;
    for (i = 0; i < 3000; i++)
        while (!push(q, &m, i)) take(q, &m, t++);
    parseq_reset(q);   /* with a chunk partly filled, some parsed, some not */
    for (i = 2000, t = 2000; i < 3000; i++)
        while (!push(q, &m, i)) take(q, &m, t++);
    while (t < 3000) take(q, &m, t++);
    assert_int_equal(parseq_next(q, &it, err, sizeof(err)), 0);
    alarm(0);
    parseq_free(q);
    msgs_free(&m);
}

/* Stop with messages pushed and being parsed. */
static void test_free_mid_stream(void **state) {
    struct msgs m;
    struct parseq *q;
    char err[256];
    msgs_make(&m, 2000);
    assert_int_equal(parseq_new(&q, THREADS, NULL, err, sizeof(err)), 0);
    alarm(BOUND_S);
    int64_t i = 0, t = 0;
    for (; i < 1000; i++)
        while (!push(q, &m, i)) take(q, &m, t++);
    parseq_free(q);
    alarm(0);
    assert_int_equal(__atomic_load_n(&live, __ATOMIC_RELAXED), 0);
    msgs_free(&m);
}

static void test_bad_threads(void **state) {
    (void)state;
    struct parseq *q;
    char err[256];
    assert_int_equal(parseq_new(&q, -1, NULL, err, sizeof(err)), -1);
    assert_int_equal(parseq_new(&q, PARSEQ_THREADS_MAX + 1, NULL, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "33 is not in 0..32"));
}

/* ---- source mode ----------------------------------------------------------- */

/* Lines "{"n":K}" for K = 1..; fails at fail_at (the lines before it
 * count) or ends after last; with block, waits after `last` lines until
 * interrupted. */
struct gen {
    int64_t next, last, fail_at;
    int block, interrupted;
    int busy, overlapped, add_failed;   /* checked on the test's thread */
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

static int gen_read(void *arg, struct parseq_chunk *c, int room, char *err, size_t errlen) {
    struct gen *g = arg;
    if (__atomic_exchange_n(&g->busy, 1, __ATOMIC_SEQ_CST)) g->overlapped = 1;
    int rc = 0;
    for (int k = 0; k < room && rc == 0; k++) {
        char line[64];
        if (g->next == g->fail_at) {
            snprintf(err, errlen, "boom at %lld", (long long)g->next);
            rc = -1;
        } else if (g->next > g->last && g->block) {
            if (k > 0) break;   /* hand over what there is first */
            pthread_mutex_lock(&g->mu);
            while (!g->interrupted) pthread_cond_wait(&g->cv, &g->mu);
            pthread_mutex_unlock(&g->mu);
            rc = PARSEQ_STOPPED;
        } else if (g->next > g->last) {
            rc = 1;
        } else {
            int n = snprintf(line, sizeof(line), "{\"n\":%lld}", (long long)g->next);
            if (parseq_add(c, line, (size_t)n, g->next)) g->add_failed = 1;
            __atomic_store_n(&g->next, g->next + 1, __ATOMIC_RELAXED);   /* the test polls it */
        }
    }
    __atomic_store_n(&g->busy, 0, __ATOMIC_SEQ_CST);
    return rc;
}

static void gen_interrupt(void *arg) {
    struct gen *g = arg;
    pthread_mutex_lock(&g->mu);
    g->interrupted = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static struct parseq *gen_start(struct gen *g, int threads, int64_t last, int64_t fail_at, int block) {
    struct parseq *q;
    char err[256];
    memset(g, 0, sizeof(*g));
    g->next = 1;
    g->last = last;
    g->fail_at = fail_at;
    g->block = block;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    struct parseq_source src = {gen_read, gen_interrupt, g};
    assert_int_equal(parseq_new(&q, threads, &src, err, sizeof(err)), 0);
    return q;
}

static void gen_stop(struct parseq *q, struct gen *g) {
    parseq_free(q);
    assert_int_equal(g->overlapped, 0);
    assert_int_equal(g->add_failed, 0);
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
}

static void expect_lines(struct parseq *q, int64_t from, int64_t to) {
    struct parseq_item it;
    char err[256];
    for (int64_t i = from; i <= to; i++) {
        assert_int_equal(parseq_next(q, &it, err, sizeof(err)), 1);
        if (it.no != i) fail_msg("line %lld, want %lld", (long long)it.no, (long long)i);
        assert_non_null(it.root);
        assert_int_equal(json_integer_value(json_object_get(it.root, "n")), i);
        assert_int_equal(it.buf[it.len], 0);
    }
}

static void test_source_order_end(void **state) {
    struct gen g;
    struct parseq_item it;
    char err[256];
    alarm(BOUND_S);
    struct parseq *q = gen_start(&g, THREADS, 50000, -1, 0);
    expect_lines(q, 1, 50000);
    assert_int_equal(parseq_next(q, &it, err, sizeof(err)), 0);
    assert_int_equal(parseq_next(q, &it, err, sizeof(err)), 0);
    gen_stop(q, &g);
    alarm(0);
}

static void test_source_error(void **state) {
    struct gen g;
    struct parseq_item it;
    char err[256] = "";
    alarm(BOUND_S);
    struct parseq *q = gen_start(&g, THREADS, 50000, 1000, 0);
    expect_lines(q, 1, 999);
    assert_int_equal(parseq_next(q, &it, err, sizeof(err)), -1);
    assert_string_equal(err, "boom at 1000");
    gen_stop(q, &g);
    alarm(0);
}

/* A source that waits for input (a pipe whose writer stays open): the
 * lines it has come through; parseq_free interrupts it and returns. */
static void test_source_blocked_free(void **state) {
    struct gen g;
    if (THREADS == 0) return;   /* inline, the caller itself would wait in read */
    alarm(BOUND_S);
    struct parseq *q = gen_start(&g, THREADS, 40, -1, 1);
    expect_lines(q, 1, 40);
    gen_stop(q, &g);
    alarm(0);
    assert_int_equal(g.interrupted, 1);
}

/* Stop while the reader is far ahead of the caller. */
static void test_source_free_mid_stream(void **state) {
    struct gen g;
    alarm(BOUND_S);
    struct parseq *q = gen_start(&g, THREADS, 1000000, -1, 0);
    expect_lines(q, 1, 100);
    gen_stop(q, &g);
    alarm(0);
    /* the reader stays within the ring: no further than its chunks ahead */
    int64_t ahead = g.next - 1 - 100;
    if (ahead > (int64_t)(PARSEQ_SLOTS(THREADS) + 1) * PARSEQ_CHUNK)
        fail_msg("the source was read %lld lines ahead", (long long)ahead);
    assert_int_equal(__atomic_load_n(&live, __ATOMIC_RELAXED), 0);
}

/* Ahead (a commit): the reader fills the whole ring, no further; off
 * again, it stays within PARSEQ_SLOTS(n) chunks of the caller. */
static void test_source_ahead(void **state) {
    struct gen g;
    if (THREADS == 0) return;   /* inline: nothing reads while the caller is away */
    alarm(BOUND_S);
    struct parseq *q = gen_start(&g, THREADS, 1000000, -1, 0);
    int64_t window = (int64_t)PARSEQ_SLOTS(THREADS) * PARSEQ_CHUNK;
    int64_t full = window + (int64_t)PARSEQ_AHEAD * PARSEQ_CHUNK;
    expect_lines(q, 1, 10);   /* the caller holds the first chunk */
    parseq_ahead(q, 1);
    while (__atomic_load_n(&g.next, __ATOMIC_RELAXED) - 1 < full) sched_yield();   /* alarm bounds it */
    parseq_ahead(q, 0);
    expect_lines(q, 11, full + 100);   /* reading went on once the caller came back */
    parseq_free(q);
    alarm(0);
    int64_t read = g.next - 1, ahead = read - (full + 100);
    if (ahead > window + PARSEQ_CHUNK) fail_msg("read %lld lines ahead after ahead off", (long long)ahead);
    assert_int_equal(g.overlapped, 0);
    pthread_mutex_destroy(&g.mu);
    pthread_cond_destroy(&g.cv);
}

/* ---- arenas ------------------------------------------------------------- */

/* A chunk's trees stay intact until the caller passes the chunk, while
 * other chunks are parsed and cleared: every tree of a chunk is checked
 * again when its last item is taken.  The ring is kept full, so chunks are
 * full (16 messages from message 0). */
static void test_arena_trees_kept(void **state) {
    struct msgs m;
    struct parseq *q;
    char err[256];
    enum { N = 312 * PARSEQ_CHUNK };
    json_t *roots[PARSEQ_CHUNK];
    msgs_make(&m, N);
    assert_int_equal(parseq_new(&q, THREADS, NULL, err, sizeof(err)), 0);
    alarm(BOUND_S);
    int64_t pushed = 0;
    for (int64_t t = 0; t < N; t++) {
        while (pushed < N && push(q, &m, pushed)) pushed++;
        struct parseq_item it;
        assert_int_equal(parseq_next(q, &it, err, sizeof(err)), 1);
        check_item(&it, &m, t);
        roots[t % PARSEQ_CHUNK] = it.root;
        if (t % PARSEQ_CHUNK != PARSEQ_CHUNK - 1) continue;
        for (int64_t k = 0; k < PARSEQ_CHUNK; k++) {
            int64_t i = t - (PARSEQ_CHUNK - 1) + k;
            if (i % 97 == 5) continue;   /* invalid JSON: no tree */
            assert_int_equal(json_integer_value(json_object_get(roots[k], "n")), i);
            const char *pad = json_string_value(json_object_get(roots[k], "pad"));
            assert_non_null(pad);
            assert_int_equal(strlen(pad) + 15, m.len[i] - (size_t)snprintf(NULL, 0, "%lld", (long long)i));
        }
    }
    alarm(0);
    parseq_free(q);
    msgs_free(&m);
}

/* A message whose tree is far larger than an arena block parses; its
 * chunk's arena is trimmed back once the chunk is cleared. */
static void test_arena_big_message(void **state) {
    struct parseq *q;
    char err[256], small[64];
    enum { ELEMS = 400000 };
    char *big = malloc((size_t)ELEMS * 12 + 16);
    assert_non_null(big);
    size_t len = (size_t)sprintf(big, "{\"a\":[");
    for (int i = 0; i < ELEMS; i++) len += (size_t)sprintf(big + len, "%s\"s%d\"", i ? "," : "", i);
    len += (size_t)sprintf(big + len, "]}");
    assert_int_equal(parseq_new(&q, THREADS, NULL, err, sizeof(err)), 0);
    alarm(BOUND_S);
    struct parseq_item it;
    assert_int_equal(parseq_push(q, big, len, 0, NULL), 1);
    assert_int_equal(parseq_next(q, &it, err, sizeof(err)), 1);
    assert_int_equal(json_array_size(json_object_get(it.root, "a")), ELEMS);
    assert_string_equal(json_string_value(json_array_get(json_object_get(it.root, "a"), ELEMS - 1)),
                        "s399999");
    size_t kept = (size_t)PARSEQ_SLOTS(THREADS) * JARENA_KEEP * JARENA_BLOCK;
    assert_true(parseq_arena_bytes(q) > (size_t)ELEMS * 32);   /* the tree is in the arena */
    assert_true((size_t)ELEMS * 32 > kept);
    /* Small messages through every slot, twice: each chunk is cleared, the
     * big one's arena trimmed. */
    int64_t n = 2 * (int64_t)parseq_capacity(q) + 1, t = 1;
    int len1 = snprintf(small, sizeof(small), "{\"n\":1}");
    for (int64_t i = 1; i <= n; i++)
        while (!parseq_push(q, small, (size_t)len1, i, NULL)) assert_int_equal(parseq_next(q, &it, err, sizeof(err)), 1), t++;
    while (t <= n) assert_int_equal(parseq_next(q, &it, err, sizeof(err)), 1), t++;
    if (parseq_arena_bytes(q) > kept) fail_msg("arenas hold %zu bytes after the big message", parseq_arena_bytes(q));
    alarm(0);
    parseq_free(q);
    free(big);
}

#define EACH(f)                                                                                   \
    cmocka_unit_test_prestate(f, &nthreads[0]), cmocka_unit_test_prestate(f, &nthreads[1]),       \
        cmocka_unit_test_prestate(f, &nthreads[2]), cmocka_unit_test_prestate(f, &nthreads[3])

static int malloc_mode(void **state) {
    (void)state;
    json_set_alloc_funcs(count_malloc, count_free);
    return jarena_installed();
}

static int arena_mode(void **state) {
    (void)state;
    jarena_install();
    return !jarena_installed();
}

int main(void) {
    static int nthreads[] = {0, 1, 4, 32};
    const struct CMUnitTest tests[] = {
        EACH(test_order),
        EACH(test_bounded),
        EACH(test_reset),
        EACH(test_free_mid_stream),
        cmocka_unit_test(test_bad_threads),
        EACH(test_source_order_end),
        EACH(test_source_error),
        EACH(test_source_blocked_free),
        EACH(test_source_free_mid_stream),
        EACH(test_source_ahead),
    };
    const struct CMUnitTest arena[] = {
        EACH(test_arena_trees_kept),
        EACH(test_arena_big_message),
    };
    int failed = cmocka_run_group_tests_name("malloc", tests, malloc_mode, NULL);
    failed += cmocka_run_group_tests_name("arena", tests, arena_mode, NULL);
    return failed + cmocka_run_group_tests_name("arena only", arena, arena_mode, NULL);
}
