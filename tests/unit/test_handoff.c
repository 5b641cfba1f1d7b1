/* test_handoff.c -- unit tests for consumer/handoff.c (the outbox relay
 * thread's hand-over to the engine thread):
 *   - order: slots confirmed out of order are published only as a done
 *     prefix, in push order; complete only grows; the publish time is kept;
 *   - bounds: push refuses exactly when cap slots are out, and a release
 *     after that wakes the relay (once); released slots are reused; an
 *     unpushed slot is pushed again;
 *   - requests: commit wakes the relay only when the seq grows, stop wakes
 *     it; the first failure is kept and ends a wait; a wait times out;
 *   - threads: a relay thread pushing 200,000 entries through a ring of 64
 *     slots, confirming them out of order and waiting on its wake when the
 *     ring is full, and an engine thread taking them: every seq arrives
 *     once, in order, done, and complete reaches the last one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "consumer/handoff.h"

#define WAIT_S 30          /* bound of every wait for the other thread */
#define STREAM 200000
#define STREAM_CAP 64

/* The relay's wake: counted, and a condition the relay thread waits on. */
struct waker {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned long n;
};

static void wake(void *arg) {
    struct waker *w = arg;
    pthread_mutex_lock(&w->mu);
    w->n++;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static unsigned long wakes(struct waker *w) {
    pthread_mutex_lock(&w->mu);
    unsigned long n = w->n;
    pthread_mutex_unlock(&w->mu);
    return n;
}

static struct handoff *new_h(size_t cap, struct waker *w) {
    struct handoff *h;
    char err[256];
    assert_int_equal(handoff_new(&h, cap, wake, w, err, sizeof(err)), 0);
    return h;
}

static struct handoff_slot *push(struct handoff *h, uint64_t seq) {
    struct handoff_slot *sl = handoff_push(h);
    assert_non_null(sl);
    assert_int_equal(sl->done, 0);  /* zeroed, also when reused */
    sl->seq = seq;
    return sl;
}

static void test_order(void **state) {
    struct waker w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    struct handoff *h = new_h(8, &w);
    uint64_t head, complete;
    int64_t at;
    (void)state;
    assert_int_equal(handoff_ready(h, &head, &complete, &at), 0);
    assert_int_equal(at, 0);
    push(h, 10);
    push(h, 11);
    push(h, 12);
    assert_int_equal(handoff_tail(h), 3);
    handoff_slot(h, 2)->done = 1;   /* the last first */
    assert_int_equal(handoff_publish(h, 0, 111), 0);
    assert_int_equal(handoff_ready(h, &head, &complete, &at), 0);  /* none: 10 is not done */
    assert_int_equal(at, 0);
    handoff_slot(h, 0)->done = 1;
    handoff_slot(h, 0)->reported = 1;
    assert_int_equal(handoff_publish(h, 10, 222), 1);
    assert_null(handoff_slot(h, 0));             /* published: the relay's no more */
    assert_non_null(handoff_slot(h, 1));
    assert_int_equal(handoff_all_published(h), 0);
    assert_int_equal(handoff_ready(h, &head, &complete, &at), 1);
    assert_int_equal(head, 0);
    assert_int_equal(complete, 10);
    assert_int_equal(at, 222);
    assert_int_equal(handoff_at(h, 0)->seq, 10);
    assert_int_equal(handoff_at(h, 0)->reported, 1);
    handoff_slot(h, 1)->done = 1;
    assert_int_equal(handoff_publish(h, 5, 333), 2);  /* 11 and 12 */
    assert_int_equal(handoff_all_published(h), 1);
    assert_int_equal(handoff_ready(h, &head, &complete, &at), 3);
    assert_int_equal(head, 0);
    assert_int_equal(complete, 10);               /* not lowered */
    assert_int_equal(at, 333);
    assert_int_equal(handoff_publish(h, 12, 444), 0);  /* complete alone moves */
    assert_int_equal(handoff_ready(h, &head, &complete, &at), 3);
    assert_int_equal(complete, 12);
    assert_int_equal(at, 333);                    /* no slot published: time kept */
    handoff_release(h, 3);
    assert_int_equal(handoff_ready(h, &head, &complete, &at), 3);
    assert_int_equal(head, 3);
    assert_int_equal(wakes(&w), 0);               /* the ring never filled */
    handoff_free(h);
}

static void test_bounds(void **state) {
    struct waker w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    struct handoff *h;
    uint64_t head, complete;
    int64_t at;
    char err[64];
    (void)state;
    assert_int_equal(handoff_new(&h, 0, wake, &w, err, sizeof(err)), -1);
    assert_null(h);
    h = new_h(4, &w);
    for (uint64_t i = 1; i <= 4; i++) push(h, i)->done = 1;
    assert_null(handoff_push(h));                 /* 4 out of 4 */
    assert_int_equal(handoff_publish(h, 4, 1), 4);
    assert_null(handoff_push(h));                 /* published is not released */
    assert_int_equal(handoff_ready(h, &head, &complete, &at), 4);
    handoff_release(h, 1);
    assert_int_equal(wakes(&w), 1);               /* the relay waited: woken */
    handoff_release(h, 2);
    assert_int_equal(wakes(&w), 1);               /* once */
    struct handoff_slot *sl = push(h, 5);         /* reuses slot 0 */
    assert_ptr_equal(sl, handoff_at(h, 4));
    push(h, 6);
    assert_null(handoff_push(h));
    handoff_unpush(h);                            /* 6 could not be produced */
    assert_int_equal(handoff_tail(h), 5);
    assert_ptr_equal(push(h, 7), handoff_at(h, 5));
    assert_null(handoff_slot(h, 6));
    handoff_free(h);
}

static void test_requests(void **state) {
    struct waker w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    struct handoff *h = new_h(4, &w);
    uint64_t committed;
    int stop;
    char err[HANDOFF_ERRLEN];
    (void)state;
    handoff_requests(h, &committed, &stop);
    assert_int_equal(committed, 0);
    assert_int_equal(stop, 0);
    handoff_commit(h, 5);
    assert_int_equal(wakes(&w), 1);
    handoff_commit(h, 5);                         /* nothing new: no wake */
    handoff_commit(h, 3);
    assert_int_equal(wakes(&w), 1);
    handoff_requests(h, &committed, &stop);
    assert_int_equal(committed, 5);
    handoff_stop(h);
    assert_int_equal(wakes(&w), 2);
    handoff_requests(h, &committed, &stop);
    assert_int_equal(stop, 1);
    /* a wait with nothing to wait for times out (bounded) */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(handoff_wait(h, UINT64_MAX, 30), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_true((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 >= 29);
    assert_int_equal(handoff_wait(h, 0, 0), 1);   /* complete 0 >= 0 */
    assert_int_equal(handoff_failed(h, err, sizeof(err)), 0);
    handoff_fail(h, "first");
    handoff_fail(h, "second");
    assert_int_equal(handoff_failed(h, err, sizeof(err)), 1);
    assert_string_equal(err, "first");
    assert_int_equal(handoff_wait(h, UINT64_MAX, WAIT_S * 1000), 1);
    handoff_free(h);
}

/* ---- two threads ------------------------------------------------------------ */

struct stream {
    struct handoff *h;
    struct waker w;
    int fail;                      /* set by the relay thread: what went wrong */
};

/* Waits for a wake after `seen` wakes; -1 after WAIT_S. */
static int wait_wake(struct waker *w, unsigned long seen) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += WAIT_S;
    int rc = 0;
    pthread_mutex_lock(&w->mu);
    while (w->n == seen && rc == 0) rc = pthread_cond_timedwait(&w->cv, &w->mu, &ts);
    int ok = w->n != seen;
    pthread_mutex_unlock(&w->mu);
    return ok ? 0 : -1;
}

/* Pushes STREAM seqs (1..), confirms each run of pushed slots back to
 * front (out of order), publishes; waits for a wake when the ring is full. */
static void *relay_thread(void *arg) {
    struct stream *s = arg;
    uint64_t seq = 1, first = 0;
    while (seq <= STREAM) {
        unsigned long seen = wakes(&s->w);
        int pushed = 0;
        struct handoff_slot *sl;
        while (seq <= STREAM && pushed < 7 && (sl = handoff_push(s->h)) != NULL) {
            sl->seq = seq++;
            pushed++;
        }
        for (uint64_t i = handoff_tail(s->h); i-- > first;) {
            sl = handoff_slot(s->h, i);
            if (!sl) { s->fail = 1; return NULL; }
            sl->done = 1;
        }
        first = handoff_tail(s->h);
        handoff_publish(s->h, seq - 1, (int64_t)seq);
        if (!handoff_all_published(s->h)) { s->fail = 2; return NULL; }
        if (pushed == 0 && wait_wake(&s->w, seen)) { s->fail = 3; return NULL; }
    }
    return NULL;
}

static void test_threads(void **state) {
    struct stream s = {.w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0}};
    pthread_t th;
    uint64_t want = 1, complete = 0;
    (void)state;
    s.h = new_h(STREAM_CAP, &s.w);
    assert_int_equal(pthread_create(&th, NULL, relay_thread, &s), 0);
    while (want <= STREAM) {
        uint64_t head;
        int64_t at;
        if (!handoff_wait(s.h, UINT64_MAX, WAIT_S * 1000)) break;
        uint64_t end = handoff_ready(s.h, &head, &complete, &at);
        for (uint64_t i = head; i < end; i++) {
            const struct handoff_slot *sl = handoff_at(s.h, i);
            if (sl->seq != want || !sl->done) break;
            want++;
        }
        if (want != head + (end - head) + 1) break;  /* out of order or not done */
        handoff_release(s.h, end);
    }
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(s.fail, 0);
    assert_int_equal(want, STREAM + 1);
    assert_int_equal(complete, STREAM);
    assert_true(wakes(&s.w) > 0);                 /* the ring did fill */
    handoff_free(s.h);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_requests),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
