/* test_metrics.c -- consumer/metrics.c (the Prometheus text of known
 * values, line by line; label escaping; cumulative histogram buckets; the
 * readiness rule and its reasons; a publisher and readers on threads) and
 * consumer/latency.c (the event-to-delivery tracking and its bound).
 *
 * METRICS_SAMPLE_OUT=FILE also writes a rendering of every metric to FILE,
 * for tests/scenarios/metrics_parse.sh (the Prometheus parser's check). */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "consumer/latency.h"
#include "consumer/metrics.h"

/* ---- helpers -------------------------------------------------------------------- */

static char *render(struct metrics *m) {
    char *buf = NULL;
    size_t len = 0;
    assert_int_equal(metrics_render(m, &buf, &len), 0);
    assert_non_null(buf);
    assert_int_equal(strlen(buf), len);
    return buf;
}

/* The text has `line` as a whole line. */
static int has_line(const char *text, const char *line) {
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n') return 1;
    return 0;
}
#define LINE(text, l)                                                            \
    do {                                                                         \
        if (!has_line(text, l)) fail_msg("no line \"%s\" in:\n%s", l, text);     \
    } while (0)
#define NO_LINE_START(text, l)                                                   \
    do {                                                                         \
        if (strstr(text, "\n" l)) fail_msg("unexpected \"%s\" in:\n%s", l, text); \
    } while (0)

/* The value of the sample line that starts with `prefix ` (-1 if none). */
static double value_of(const char *text, const char *prefix) {
    char pat[256];
    snprintf(pat, sizeof(pat), "\n%s ", prefix);
    const char *p = strstr(text, pat);
    return p ? strtod(p + strlen(pat), NULL) : -1;
}

/* Every sample line's metric family has HELP and TYPE lines before it (a
 * histogram's series are NAME_bucket, NAME_sum, NAME_count). */
static void check_type_lines(const char *t) {
    static const char *const suffixes[] = {"", "_bucket", "_sum", "_count"};
    for (const char *l = t; *l; l = strchr(l, '\n') + 1) {
        if (*l == '#') continue;
        int n = (int)strcspn(l, "{ "), found = 0;
        for (size_t i = 0; !found && i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
            int k = n - (int)strlen(suffixes[i]);
            if (k <= 0 || strncmp(l + k, suffixes[i], strlen(suffixes[i]))) continue;
            char type[200], help[200];
            snprintf(type, sizeof(type), "# TYPE %.*s %s", k, l, i ? "histogram" : "");
            snprintf(help, sizeof(help), "# HELP %.*s ", k, l);
            const char *ty = strstr(t, type), *he = strstr(t, help);
            found = ty && he && he < ty && ty < l;
        }
        if (!found) fail_msg("no HELP and TYPE before: %.*s", (int)strcspn(l, "\n"), l);
    }
}

static struct metrics *mk(void) {
    struct metrics *m;
    char err[128];
    assert_int_equal(metrics_new(&m, err, sizeof(err)), 0);
    return m;
}

static void info(struct metrics *m, const char *overage_topic, int64_t max_pending) {
    struct metrics_info mi = {"1.2.3", "2.0.2",
                              {overage_topic, "credit.ledger", "credit.rejected", "credit.alerts"},
                              max_pending};
    metrics_set_info(m, &mi);
}

static void parts(struct metrics *m, const int32_t *p, size_t n) {
    char err[128];
    assert_int_equal(metrics_set_partitions(m, p, n, err, sizeof(err)), 0);
}

static void gauges(struct metrics *m, const int64_t *lag, uint64_t outbox) {
    struct metrics_gauges g;
    memset(&g, 0, sizeof(g));
    g.lag = lag;
    g.outbox = outbox;
    metrics_publish_gauges(m, &g);
}

static struct engine_result result(int outcome, int reason, int type) {
    struct engine_result r;
    memset(&r, 0, sizeof(r));
    r.outcome = outcome;
    r.reason = reason;
    r.type = type;
    return r;
}

/* A fully published state: the values test_render checks. */
static void publish_known(struct metrics *m) {
    static const int32_t p[] = {0, 2};
    static const int64_t lag[] = {5, -1};
    info(m, "credit.overage", 1000);
    parts(m, p, 2);
    metrics_set_store_open(m, 1);
    struct metrics_store st = {4096, 1 << 20, 8192, 42, 100, 7, 3};
    metrics_publish_store(m, &st);
    struct metrics_batch b;
    metrics_batch_reset(&b);
    struct engine_result r = result(ENG_APPLIED, ENG_R_NONE, ENG_T_USAGE);
    r.outputs[ENG_OUT_OVERAGE] = 1;
    r.outputs[ENG_OUT_LEDGER] = 2;
    r.outputs[ENG_OUT_ALERT] = 3;
    r.alerts[1] = 2;  /* exhausted */
    r.alerts[5] = 1;  /* projected_exhaustion */
    for (int i = 0; i < 3; i++) metrics_batch_add(&b, &r);
    r = result(ENG_DUPLICATE, ENG_R_NONE, ENG_T_USAGE);
    metrics_batch_add(&b, &r);
    r = result(ENG_REJECTED, ENG_R_INVALID_JSON, ENG_T_UNKNOWN);
    r.outputs[ENG_OUT_REJECTED] = 1;
    metrics_batch_add(&b, &r);
    metrics_batch_add(&b, &r);
    r = result(ENG_REJECTED, ENG_R_TOO_LATE, ENG_T_TICK);
    r.outputs[ENG_OUT_REJECTED] = 1;
    metrics_batch_add(&b, &r);
    metrics_publish_commit(m, &b, 0.003, 1700000000.5);
    metrics_publish_commit(m, NULL, 99, 1700000001.25);  /* relay bookkeeping only */
    struct metrics_gauges g;
    memset(&g, 0, sizeof(g));
    g.lag = lag;
    g.outbox = 12;
    g.paused = 1;
    g.delivered[ENG_OUT_LEDGER] = 4;
    g.untracked = 2;
    metrics_publish_gauges(m, &g);
    static const double d[] = {0.004, 0.3, 1000};
    metrics_observe_delivery(m, d, 3);
}

/* ---- rendering -------------------------------------------------------------------- */

static void test_render(void **state) {
    (void)state;
    struct metrics *m = mk();
    publish_known(m);
    char *t = render(m);
    LINE(t, "# HELP creditd_up 1 while creditd runs and serves its metrics.");
    LINE(t, "# TYPE creditd_up gauge");
    LINE(t, "creditd_up 1");
    LINE(t, "creditd_build_info{version=\"1.2.3\",librdkafka=\"2.0.2\"} 1");
    LINE(t, "creditd_ready 0");  /* partition 2's lag is not known */
    LINE(t, "creditd_store_open 1");
    LINE(t, "creditd_input_paused 1");
    LINE(t, "# TYPE creditd_events_total counter");
    LINE(t, "creditd_events_total{type=\"usage\",outcome=\"applied\"} 3");
    LINE(t, "creditd_events_total{type=\"usage\",outcome=\"duplicate\"} 1");
    LINE(t, "creditd_events_total{type=\"unknown\",outcome=\"rejected\",reason=\"invalid_json\"} 2");
    LINE(t, "creditd_events_total{type=\"clock.tick\",outcome=\"rejected\",reason=\"too_late\"} 1");
    NO_LINE_START(t, "creditd_events_total{type=\"org_credit.set\"");  /* zero: left out */
    LINE(t, "# TYPE creditd_store_events gauge");
    LINE(t, "creditd_store_events{outcome=\"applied\"} 103");  /* 100 + the batch's 3 */
    LINE(t, "creditd_store_events{outcome=\"duplicate\"} 8");
    LINE(t, "creditd_store_events{outcome=\"rejected\"} 6");
    LINE(t, "creditd_outputs_total{topic=\"credit.overage\",kind=\"overage\"} 3");
    LINE(t, "creditd_outputs_total{topic=\"credit.ledger\",kind=\"ledger\"} 6");
    LINE(t, "creditd_outputs_total{topic=\"credit.rejected\",kind=\"rejected\"} 3");
    LINE(t, "creditd_outputs_total{topic=\"credit.alerts\",kind=\"alert\"} 9");
    LINE(t, "creditd_outputs_delivered_total{topic=\"credit.ledger\",kind=\"ledger\"} 4");
    LINE(t, "creditd_outputs_delivered_total{topic=\"credit.overage\",kind=\"overage\"} 0");
    LINE(t, "creditd_alerts_total{kind=\"exhausted\"} 6");
    LINE(t, "creditd_alerts_total{kind=\"projected_exhaustion\"} 3");
    LINE(t, "creditd_alerts_total{kind=\"low_balance\"} 0");
    LINE(t, "creditd_outbox_entries 12");
    LINE(t, "creditd_outbox_max_pending 1000");
    LINE(t, "creditd_partitions_assigned 2");
    LINE(t, "creditd_consumer_lag{partition=\"0\"} 5");
    NO_LINE_START(t, "creditd_consumer_lag{partition=\"2\"}");
    LINE(t, "creditd_last_commit_timestamp_seconds 1700000001.25");
    LINE(t, "creditd_store_used_bytes 4096");
    LINE(t, "creditd_store_map_bytes 1048576");
    LINE(t, "creditd_store_file_bytes 8192");
    LINE(t, "creditd_store_remembered_keys 42");
    LINE(t, "# TYPE creditd_batch_commit_seconds histogram");
    LINE(t, "creditd_batch_commit_seconds_bucket{le=\"0.0025\"} 0");
    LINE(t, "creditd_batch_commit_seconds_bucket{le=\"0.005\"} 1");
    LINE(t, "creditd_batch_commit_seconds_bucket{le=\"+Inf\"} 1");
    LINE(t, "creditd_batch_commit_seconds_sum 0.003");
    LINE(t, "creditd_batch_commit_seconds_count 1");  /* the NULL commit is not a batch */
    LINE(t, "creditd_event_to_delivery_seconds_bucket{le=\"0.005\"} 1");
    LINE(t, "creditd_event_to_delivery_seconds_bucket{le=\"0.25\"} 1");
    LINE(t, "creditd_event_to_delivery_seconds_bucket{le=\"0.5\"} 2");
    LINE(t, "creditd_event_to_delivery_seconds_bucket{le=\"600\"} 2");
    LINE(t, "creditd_event_to_delivery_seconds_bucket{le=\"+Inf\"} 3");
    LINE(t, "creditd_event_to_delivery_seconds_sum 1000.304");
    LINE(t, "creditd_event_to_delivery_seconds_count 3");
    LINE(t, "creditd_event_to_delivery_untracked_total 2");
    check_type_lines(t);
    assert_int_equal(t[strlen(t) - 1], '\n');
    free(t);
    metrics_free(m);
}

/* Before anything is published: no store figures, no commit, not ready. */
static void test_render_empty(void **state) {
    (void)state;
    struct metrics *m = mk();
    char *t = render(m);
    LINE(t, "creditd_up 1");
    LINE(t, "creditd_ready 0");
    LINE(t, "creditd_store_open 0");
    LINE(t, "creditd_partitions_assigned 0");
    LINE(t, "creditd_last_commit_timestamp_seconds 0");
    LINE(t, "creditd_batch_commit_seconds_count 0");
    LINE(t, "creditd_batch_commit_seconds_bucket{le=\"+Inf\"} 0");
    LINE(t, "# TYPE creditd_events_total counter");
    NO_LINE_START(t, "creditd_events_total{");
    NO_LINE_START(t, "creditd_store_used_bytes");
    NO_LINE_START(t, "creditd_store_events");
    free(t);
    metrics_free(m);
}

/* Label values: backslash, double quote and newline escaped, nothing else. */
static void test_escaping(void **state) {
    (void)state;
    struct metrics *m = mk();
    info(m, "a\"b\\c\nd'e", 10);
    char *t = render(m);
    LINE(t, "creditd_outputs_total{topic=\"a\\\"b\\\\c\\nd'e\",kind=\"overage\"} 0");
    LINE(t, "creditd_outputs_delivered_total{topic=\"a\\\"b\\\\c\\nd'e\",kind=\"overage\"} 0");
    free(t);
    struct metrics_info mi = {"v\"1\n", "x\\y", {"o", "l", "r", "a"}, 1};
    metrics_set_info(m, &mi);
    t = render(m);
    LINE(t, "creditd_build_info{version=\"v\\\"1\\n\",librdkafka=\"x\\\\y\"} 1");
    free(t);
    metrics_free(m);
}

/* Buckets: le is inclusive, cumulative, +Inf equals the count; negative and
 * NaN observations count as 0. */
static void test_histogram(void **state) {
    (void)state;
    struct metrics *m = mk();
    static const double d[] = {0.005, 0.0051, -3, NAN, 0.01, 601, 0.0};
    metrics_observe_delivery(m, d, sizeof(d) / sizeof(d[0]));
    char *t = render(m);
    LINE(t, "creditd_event_to_delivery_seconds_bucket{le=\"0.005\"} 4");  /* 0.005 -3 NaN 0 */
    LINE(t, "creditd_event_to_delivery_seconds_bucket{le=\"0.01\"} 6");
    LINE(t, "creditd_event_to_delivery_seconds_bucket{le=\"600\"} 6");
    LINE(t, "creditd_event_to_delivery_seconds_bucket{le=\"+Inf\"} 7");
    LINE(t, "creditd_event_to_delivery_seconds_count 7");
    assert_true(fabs(value_of(t, "creditd_event_to_delivery_seconds_sum") - 601.0201) < 1e-9);
    /* cumulative: never decreasing along the buckets */
    double prev = 0;
    for (const char *p = t; (p = strstr(p, "\ncreditd_event_to_delivery_seconds_bucket{")); p++) {
        double v = strtod(strchr(p, '}') + 2, NULL);
        assert_true(v >= prev);
        prev = v;
    }
    assert_true(prev == 7);
    free(t);
    metrics_free(m);
}

/* ---- readiness ---------------------------------------------------------------------- */

static void expect_ready(struct metrics *m, int64_t max_lag, int want, const char *why_want) {
    char why[256];
    assert_int_equal(metrics_ready(m, max_lag, why, sizeof(why)), want);
    assert_string_equal(why, why_want);
}

static void test_ready(void **state) {
    (void)state;
    struct metrics *m = mk();
    static const int32_t p[] = {3, 1};
    expect_ready(m, 100, 0, "store not open");
    metrics_set_store_open(m, 1);
    expect_ready(m, 100, 0, "no input partitions assigned");
    info(m, "o", 50);
    parts(m, p, 2);
    expect_ready(m, 100, 0, "consumer lag of input partition 3 not known yet");
    gauges(m, (const int64_t[]){60, 40}, 0);
    expect_ready(m, 100, 0, "consumer lag 100 >= http.ready_max_lag 100");
    expect_ready(m, 101, 1, "ready");
    gauges(m, (const int64_t[]){0, 0}, 50);
    expect_ready(m, 100, 0, "outbox 50 entries >= outbox.max_pending 50");
    gauges(m, (const int64_t[]){0, 0}, 49);
    expect_ready(m, 1, 1, "ready");
    /* the gauge follows metrics_set_ready_max_lag */
    char *t = render(m);
    LINE(t, "creditd_ready 1");
    free(t);
    gauges(m, (const int64_t[]){7, 0}, 0);
    metrics_set_ready_max_lag(m, 7);
    t = render(m);
    LINE(t, "creditd_ready 0");
    free(t);
    /* back under lag: ready again */
    gauges(m, (const int64_t[]){3, 3}, 0);
    expect_ready(m, 7, 1, "ready");
    /* stopping: the store closes first */
    metrics_set_store_open(m, 0);
    expect_ready(m, 7, 0, "store not open");
    /* why is cut to its buffer, NUL-terminated */
    char small[6];
    assert_int_equal(metrics_ready(m, 7, small, sizeof(small)), 0);
    assert_string_equal(small, "store");
    metrics_free(m);
}

/* ---- batch counts --------------------------------------------------------------------- */

static void test_batch_add(void **state) {
    (void)state;
    struct metrics_batch b;
    metrics_batch_reset(&b);
    struct engine_result r = result(ENG_REJECTED, ENG_R_ALREADY_VOIDED, ENG_T_USAGE_VOID);
    metrics_batch_add(&b, &r);
    assert_int_equal(b.events[ENG_T_USAGE_VOID][2 + ENG_R_ALREADY_VOIDED], 1);
    r = result(ENG_APPLIED, ENG_R_NONE, 999);  /* a type out of range is unknown */
    metrics_batch_add(&b, &r);
    assert_int_equal(b.events[ENG_T_UNKNOWN][0], 1);
    r = result(ENG_REJECTED, 999, ENG_T_USAGE);  /* so is a reason */
    metrics_batch_add(&b, &r);
    assert_int_equal(b.events[ENG_T_USAGE][2], 1);
    metrics_batch_reset(&b);
    assert_int_equal(b.events[ENG_T_USAGE][2], 0);
}

/* ---- threads ------------------------------------------------------------------------- */

#define ROUNDS 20000

/* The pipeline's side: one commit, gauges and a delivery per round (no
 * cmocka asserts: they are not for other threads). */
static void *publisher(void *arg) {
    struct metrics *m = arg;
    char err[64];
    struct metrics_batch b;
    struct engine_result r = result(ENG_APPLIED, ENG_R_NONE, ENG_T_USAGE);
    r.outputs[ENG_OUT_LEDGER] = 1;
    for (int i = 0; i < ROUNDS; i++) {
        metrics_batch_reset(&b);
        metrics_batch_add(&b, &r);
        metrics_publish_commit(m, &b, 0.001, 1700000000.0 + i);
        int64_t lag[2] = {i, ROUNDS - i};
        struct metrics_gauges g;
        memset(&g, 0, sizeof(g));
        g.lag = lag;
        g.outbox = (uint64_t)i;
        metrics_publish_gauges(m, &g);
        double d = 0.01;
        metrics_observe_delivery(m, &d, 1);
        if (i % 500 == 0) {  /* the partitions change under the readers too */
            static const int32_t p[] = {0, 1};
            if (metrics_set_partitions(m, p, 2, err, sizeof(err))) return (void *)1;
        }
    }
    return NULL;
}

/* Every rendering is one consistent state: the batch's three counts move
 * together (the publisher adds one of each per commit).  No cmocka asserts
 * off the main thread: a failure is printed and returned. */
static void *renderer(void *arg) {
    struct metrics *m = arg;
    double last = -1;
    for (;;) {
        char *t = NULL, why[128];
        size_t len;
        if (metrics_render(m, &t, &len) || strlen(t) != len) {
            print_error("render failed\n");
            free(t);
            return (void *)1;
        }
        double ev = value_of(t, "creditd_events_total{type=\"usage\",outcome=\"applied\"}");
        double out = value_of(t, "creditd_outputs_total{topic=\"credit.ledger\",kind=\"ledger\"}");
        double cnt = value_of(t, "creditd_batch_commit_seconds_count");
        free(t);
        if (ev < 0) ev = 0;  /* none yet: the series is absent */
        if (ev != out || ev != cnt || ev < last) {
            print_error("torn snapshot: events %g (before %g), ledger %g, commits %g\n", ev, last,
                        out, cnt);
            return (void *)1;
        }
        last = ev;
        metrics_ready(m, 10, why, sizeof(why));
        if (ev == ROUNDS) return NULL;
    }
}

static void test_threads(void **state) {
    (void)state;
    struct metrics *m = mk();
    info(m, "credit.overage", 10);
    metrics_set_store_open(m, 1);
    pthread_t w, r1, r2;
    void *f1, *f2;
    assert_int_equal(pthread_create(&r1, NULL, renderer, m), 0);
    assert_int_equal(pthread_create(&r2, NULL, renderer, m), 0);
    assert_int_equal(pthread_create(&w, NULL, publisher, m), 0);
    assert_int_equal(pthread_join(w, NULL), 0);
    assert_int_equal(pthread_join(r1, &f1), 0);
    assert_int_equal(pthread_join(r2, &f2), 0);
    assert_null(f1);
    assert_null(f2);
    char *t = render(m);
    LINE(t, "creditd_event_to_delivery_seconds_count 20000");
    LINE(t, "creditd_consumer_lag{partition=\"1\"} 1");
    free(t);
    metrics_free(m);
}

/* ---- latency tracking --------------------------------------------------------------- */

static struct latency *lat_new(size_t cap) {
    struct latency *l;
    char err[128];
    assert_int_equal(latency_new(&l, cap, err, sizeof(err)), 0);
    return l;
}

static void test_latency(void **state) {
    (void)state;
    struct latency *l = lat_new(8);
    double out[8];
    latency_batch_reset(l);
    latency_batch_add(l, 3, 1000);
    latency_batch_add(l, 5, 1500);
    latency_batch_add(l, 9, -1);  /* no timestamp: untracked */
    /* not committed yet: nothing is observed, whatever is delivered */
    assert_int_equal(latency_delivered(l, 100, 2000, out, 8), 0);
    latency_batch_commit(l);
    assert_int_equal(latency_untracked(l), 1);
    assert_int_equal(latency_delivered(l, 2, 2000, out, 8), 0);  /* seq 3 not confirmed */
    assert_int_equal(latency_delivered(l, 4, 2000, out, 8), 1);
    assert_true(out[0] == 1.0);
    assert_int_equal(latency_delivered(l, 5, 1400, out, 8), 1);   /* clock behind: 0 */
    assert_true(out[0] == 0.0);
    assert_int_equal(latency_delivered(l, 100, 3000, out, 8), 0);
    /* an aborted try adds nothing; the retry counts once */
    latency_batch_reset(l);
    latency_batch_add(l, 12, 1000);
    latency_batch_reset(l);
    latency_batch_add(l, 12, 1000);
    latency_batch_commit(l);
    assert_int_equal(latency_delivered(l, 12, 1250, out, 8), 1);
    assert_true(out[0] == 0.25);
    assert_int_equal(latency_delivered(l, 12, 1250, out, 8), 0);
    latency_free(l);
}

/* The ring's bound: beyond cap messages in flight they are untracked, and
 * the ring is reused once they are delivered; max bounds each call. */
static void test_latency_bound(void **state) {
    (void)state;
    struct latency *l = lat_new(4);
    double out[8];
    latency_batch_reset(l);
    for (uint64_t s = 1; s <= 6; s++) latency_batch_add(l, s, 0);
    latency_batch_commit(l);
    assert_int_equal(latency_untracked(l), 2);
    assert_int_equal(latency_delivered(l, 10, 1000, out, 3), 3);
    assert_int_equal(latency_delivered(l, 10, 1000, out, 3), 1);
    assert_int_equal(latency_delivered(l, 10, 1000, out, 3), 0);
    latency_batch_reset(l);
    for (uint64_t s = 11; s <= 14; s++) latency_batch_add(l, s, 0);
    latency_batch_commit(l);
    assert_int_equal(latency_untracked(l), 2);
    assert_int_equal(latency_delivered(l, 14, 1000, out, 8), 4);
    latency_free(l);
}

/* ---- a sample for the Prometheus parser (tests/scenarios/metrics_parse.sh) ---------- */

static int write_sample(const char *path) {
    struct metrics *m = mk();
    publish_known(m);
    static const int64_t lag[] = {5, 9};
    gauges(m, lag, 12);
    info(m, "weird \"topic\\\nname", 1000);
    char *t = render(m);
    FILE *f = fopen(path, "w");
    int rc = !f || fputs(t, f) < 0;
    if (f && fclose(f)) rc = 1;
    free(t);
    metrics_free(m);
    return rc;
}

int main(void) {
    const char *sample = getenv("METRICS_SAMPLE_OUT");
    if (sample && *sample) return write_sample(sample);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render),        cmocka_unit_test(test_render_empty),
        cmocka_unit_test(test_escaping),      cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_ready),         cmocka_unit_test(test_batch_add),
        cmocka_unit_test(test_threads),       cmocka_unit_test(test_latency),
        cmocka_unit_test(test_latency_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
