/* test_engine.c -- the credit engine driven over the in-memory store
 * (tests/unit/memstore.c), checked against ../shared/credit-semantics.md and
 * the documented choices where the semantics are silent.
 *
 * Messages are fed as file replay (topic NULL, partition 0, offset = line
 * number) unless a test needs partitions (topic "t").  Outputs are parsed
 * with jansson and compared field by field, every number exact.
 *
 * Run from the repository root (the worked examples are read from
 * tests/scenarios/ex_*.jsonl).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "engine/engine.h"
#include "engine/timeutil.h"
#include "tests/unit/engine_harness.h"
#include "tests/unit/memstore.h"

/* ---- worked examples (§9) ------------------------------------------------- */

static void test_example_A(void **state) {
    struct h *h = *state;
    size_t n;
    char **L = read_lines("tests/scenarios/ex_A.jsonl", &n);
    assert_int_equal(n, 4);
    /* 01-05 set o1 1000, fixed, expected 100 */
    assert_int_equal(feed(h, L[0]), ENG_APPLIED);
    assert_int_equal(nnew(h), 2);
    LEDGER(h, 0, "staff_grant", NULL, "org", "1000.000000", "1000.000000", "1000.000000", "2026-01", 0);
    TERMS(h, 1, NULL, "1000.000000", "1000.000000", "2026-01", 0,
          ORG_TERMS_FIXED("100.000000", "0", "null", "[]"));
    assert_int_equal(V(h, "o1"), U(1000));
    assert_int_equal(org_of(h, "o1")->open_month, MON("2026-01"));
    /* 01-20 usage 30 -> V 970 */
    assert_int_equal(feed(h, L[1]), ENG_APPLIED);
    assert_int_equal(nnew(h), 1);
    LEDGER(h, 0, "compensation", "p1", "org", "-30.000000", "970.000000", "970.000000", "2026-01", 0);
    assert_int_equal(V(h, "o1"), U(970));
    /* 02-03 usage 250: January closes (minimal_draw 70 -> 900), then -> 650 */
    assert_int_equal(feed(h, L[2]), ENG_APPLIED);
    assert_int_equal(nnew(h), 3);
    LEDGER(h, 0, "minimal_draw", NULL, "org", "-70.000000", "900.000000", "900.000000", "2026-01", 0);
    CLOSED(h, 1, NULL, "2026-01", "30.000000", "100.000000", "70.000000", "100.000000",
           "900.000000", "900.000000");
    LEDGER(h, 2, "compensation", "p1", "org", "-250.000000", "650.000000", "650.000000", "2026-02", 0);
    assert_int_equal(V(h, "o1"), U(650));
    assert_int_equal(org_of(h, "o1")->open_month, MON("2026-02"));
    /* 03-01 tick: February consumed 250 >= 100, no draw */
    assert_int_equal(feed(h, L[3]), ENG_APPLIED);
    assert_int_equal(nnew(h), 1);
    CLOSED(h, 0, NULL, "2026-02", "250.000000", "100.000000", "0.000000", "100.000000",
           "650.000000", "650.000000");
    assert_int_equal(V(h, "o1"), U(650));
    assert_int_equal(count_kind(h, ENG_OUT_OVERAGE), 0);
    assert_int_equal(count_kind(h, ENG_OUT_REJECTED), 0);
    check_seqs(h);
    free_lines(L, n);
}

static void test_example_B(void **state) {
    struct h *h = *state;
    size_t n;
    char **L = read_lines("tests/scenarios/ex_B.jsonl", &n);
    assert_int_equal(n, 8);
    /* 01-10 set o2 1200 linear end 07-01 -> expected(Jan) = 1200/6 = 200 */
    assert_int_equal(feed(h, L[0]), ENG_APPLIED);
    assert_int_equal(nnew(h), 2);
    LEDGER(h, 0, "staff_grant", NULL, "org", "1200.000000", "1200.000000", "1200.000000", "2026-01", 0);
    TERMS(h, 1, NULL, "1200.000000", "1200.000000", "2026-01", 0,
          "{'consumption_logic':'linear','expected_consumption':'200.000000','grace_coefficient':0,"
          "'apply_as_minimal_consumption':true,'end_date':'2026-07-01','reserve_allocations':true,"
          "'offerings':[]}");
    assert_int_equal(org_of(h, "o2")->terms.expected, U(200));
    /* 01-15 usage 50 -> 1150 */
    assert_int_equal(feed(h, L[1]), ENG_APPLIED);
    assert_int_equal(nnew(h), 1);
    LEDGER(h, 0, "compensation", "p1", "org", "-50.000000", "1150.000000", "1150.000000", "2026-01", 0);
    /* tick 02-01: Jan draw 150 -> 1000; expected(Feb) = 1000/5 = 200 */
    assert_int_equal(feed(h, L[2]), ENG_APPLIED);
    assert_int_equal(nnew(h), 2);
    LEDGER(h, 0, "minimal_draw", NULL, "org", "-150.000000", "1000.000000", "1000.000000", "2026-01", 0);
    CLOSED(h, 1, NULL, "2026-01", "50.000000", "200.000000", "150.000000", "200.000000",
           "1000.000000", "1000.000000");
    assert_int_equal(V(h, "o2"), U(1000));
    assert_int_equal(org_of(h, "o2")->terms.expected, U(200));
    /* 02-10 usage 500 -> 500 */
    assert_int_equal(feed(h, L[3]), ENG_APPLIED);
    assert_int_equal(nnew(h), 1);
    LEDGER(h, 0, "compensation", "p1", "org", "-500.000000", "500.000000", "500.000000", "2026-02", 0);
    /* tick 03-01: no draw; expected(Mar) = 500/4 = 125 */
    assert_int_equal(feed(h, L[4]), ENG_APPLIED);
    assert_int_equal(nnew(h), 1);
    CLOSED(h, 0, NULL, "2026-02", "500.000000", "200.000000", "0.000000", "125.000000",
           "500.000000", "500.000000");
    assert_int_equal(V(h, "o2"), U(500));
    /* tick 04-01: draw 125 -> 375; expected(Apr) = 375/3 = 125 */
    assert_int_equal(feed(h, L[5]), ENG_APPLIED);
    assert_int_equal(nnew(h), 2);
    LEDGER(h, 0, "minimal_draw", NULL, "org", "-125.000000", "375.000000", "375.000000", "2026-03", 0);
    CLOSED(h, 1, NULL, "2026-03", "0.000000", "125.000000", "125.000000", "125.000000",
           "375.000000", "375.000000");
    assert_int_equal(V(h, "o2"), U(375));
    /* tick 07-01 closes April (-> 250), May (-> 125), June (-> 0, last month), expires */
    assert_int_equal(feed(h, L[6]), ENG_APPLIED);
    assert_int_equal(nnew(h), 6);
    LEDGER(h, 0, "minimal_draw", NULL, "org", "-125.000000", "250.000000", "250.000000", "2026-04", 0);
    CLOSED(h, 1, NULL, "2026-04", "0.000000", "125.000000", "125.000000", "125.000000",
           "250.000000", "250.000000");
    LEDGER(h, 2, "minimal_draw", NULL, "org", "-125.000000", "125.000000", "125.000000", "2026-05", 0);
    CLOSED(h, 3, NULL, "2026-05", "0.000000", "125.000000", "125.000000", "125.000000",
           "125.000000", "125.000000");
    LEDGER(h, 4, "minimal_draw", NULL, "org", "-125.000000", "0.000000", "0.000000", "2026-06", 0);
    /* nothing left to expire: no expiry entry (choice 7); expected -> 0 */
    CLOSED(h, 5, NULL, "2026-06", "0.000000", "125.000000", "125.000000", "0.000000",
           "0.000000", "0.000000");
    assert_int_equal(V(h, "o2"), 0);
    assert_true(org_of(h, "o2")->has_credit);
    assert_int_equal(org_of(h, "o2")->terms.expected, 0);
    assert_int_equal(org_of(h, "o2")->open_month, MON("2026-07"));
    /* 07-05 usage 10 -> overage 10 credit_expired */
    assert_int_equal(feed(h, L[7]), ENG_APPLIED);
    assert_int_equal(nnew(h), 1);
    OVER(h, 0, "p1", "credit_expired", "10.000000", "0.000000", "10.000000", "2026-07", "2026-07", 0);
    /* amount form: quantity and unit_price are null (choice 12) */
    assert_true(json_is_null(json_object_get(json_object_get(NEW(h, 0), "data"), "quantity")));
    assert_true(json_is_null(json_object_get(json_object_get(NEW(h, 0), "data"), "unit_price")));
    assert_string_equal(dget(NEW(h, 0), "resource"), "r-p1");
    assert_string_equal(dget(NEW(h, 0), "offering"), "hpc");
    assert_string_equal(dget(NEW(h, 0), "component"), "cpu");
    assert_true(json_is_null(json_object_get(json_object_get(NEW(h, 0), "data"), "plan")));
    assert_string_equal(sget(NEW(h, 0), "id"), "overage/o2/1");
    check_seqs(h);
    free_lines(L, n);
}

static void test_example_C(void **state) {
    struct h *h = *state;
    size_t n;
    char **L = read_lines("tests/scenarios/ex_C.jsonl", &n);
    assert_int_equal(n, 7);
    /* 03-01 set o3 500, offerings [hpc] */
    assert_int_equal(feed(h, L[0]), ENG_APPLIED);
    assert_int_equal(nnew(h), 2);
    LEDGER(h, 0, "staff_grant", NULL, "org", "500.000000", "500.000000", "500.000000", "2026-03", 0);
    TERMS(h, 1, NULL, "500.000000", "500.000000", "2026-03", 0,
          ORG_TERMS_FIXED("0.000000", "0", "null", "['hpc']"));
    /* pA 200 (no fallback) */
    assert_int_equal(feed(h, L[1]), ENG_APPLIED);
    assert_int_equal(nnew(h), 2);
    LEDGER(h, 0, "allocation", "pA", "project", "200.000000", "200.000000", "500.000000", "2026-03", 0);
    TERMS(h, 1, "pA", "200.000000", "500.000000", "2026-03", 0,
          "{'consumption_logic':'fixed','expected_consumption':'0.000000','grace_coefficient':0,"
          "'apply_as_minimal_consumption':true,'end_date':null,'use_org_credit':false,"
          "'mark_unused_as_spent_on_termination':false}");
    /* pB 100 (use_org_credit) */
    assert_int_equal(feed(h, L[2]), ENG_APPLIED);
    assert_int_equal(nnew(h), 2);
    LEDGER(h, 0, "allocation", "pB", "project", "100.000000", "100.000000", "500.000000", "2026-03", 0);
    TERMS(h, 1, "pB", "100.000000", "500.000000", "2026-03", 0,
          "{'consumption_logic':'fixed','expected_consumption':'0.000000','grace_coefficient':0,"
          "'apply_as_minimal_consumption':true,'end_date':null,'use_org_credit':true,"
          "'mark_unused_as_spent_on_termination':false}");
    assert_int_equal(V(h, "o3"), U(500));
    assert_int_equal(P(h, "o3", "pA"), U(200));
    assert_int_equal(P(h, "o3", "pB"), U(100));
    /* usage pA hpc 250 -> pA 0, V 300, overage 50 project_credit_exhausted */
    assert_int_equal(feed(h, L[3]), ENG_APPLIED);
    assert_int_equal(nnew(h), 2);
    LEDGER(h, 0, "compensation", "pA", "project", "-200.000000", "0.000000", "300.000000", "2026-03", 0);
    OVER(h, 1, "pA", "project_credit_exhausted", "250.000000", "200.000000", "50.000000",
         "2026-03", "2026-03", 0);
    assert_int_equal(P(h, "o3", "pA"), 0);
    assert_int_equal(V(h, "o3"), U(300));
    /* usage pB hpc 180 -> pB 0 (100), fallback 80 from free (200) -> V 120 */
    assert_int_equal(feed(h, L[4]), ENG_APPLIED);
    assert_int_equal(nnew(h), 2);
    LEDGER(h, 0, "compensation", "pB", "project", "-100.000000", "0.000000", "200.000000", "2026-03", 0);
    LEDGER(h, 1, "compensation", "pB", "org", "-80.000000", "120.000000", "120.000000", "2026-03", 0);
    assert_int_equal(P(h, "o3", "pB"), 0);
    assert_int_equal(V(h, "o3"), U(120));
    /* usage pC hpc 150 (no allocation) -> 120 from free, V 0, overage 30 */
    assert_int_equal(feed(h, L[5]), ENG_APPLIED);
    assert_int_equal(nnew(h), 2);
    LEDGER(h, 0, "compensation", "pC", "org", "-120.000000", "0.000000", "0.000000", "2026-03", 0);
    OVER(h, 1, "pC", "org_credit_exhausted", "150.000000", "120.000000", "30.000000", "2026-03",
         "2026-03", 0);
    assert_int_equal(V(h, "o3"), 0);
    /* usage pA storage 40 -> overage 40 offering_not_eligible */
    assert_int_equal(feed(h, L[6]), ENG_APPLIED);
    assert_int_equal(nnew(h), 1);
    OVER(h, 0, "pA", "offering_not_eligible", "40.000000", "0.000000", "40.000000", "2026-03",
         "2026-03", 0);
    assert_string_equal(sget(NEW(h, 0), "id"), "overage/o3/3");
    assert_int_equal(V(h, "o3"), 0);
    check_seqs(h);
    free_lines(L, n);
}

static void test_example_D(void **state) {
    struct h *h = *state;
    size_t n;
    char **L = read_lines("tests/scenarios/ex_D.jsonl", &n);
    assert_int_equal(n, 4);
    assert_int_equal(feed(h, L[0]), ENG_APPLIED);
    assert_int_equal(nnew(h), 2);
    LEDGER(h, 0, "staff_grant", NULL, "org", "1000.000000", "1000.000000", "1000.000000", "2026-01", 0);
    TERMS(h, 1, NULL, "1000.000000", "1000.000000", "2026-01", 0,
          ORG_TERMS_FIXED("100.000000", "20", "'2026-04-01'", "[]"));
    /* Jan: draw 80 */
    assert_int_equal(feed(h, L[1]), ENG_APPLIED);
    assert_int_equal(nnew(h), 2);
    LEDGER(h, 0, "minimal_draw", NULL, "org", "-80.000000", "920.000000", "920.000000", "2026-01", 0);
    CLOSED(h, 1, NULL, "2026-01", "0.000000", "80.000000", "80.000000", "100.000000",
           "920.000000", "920.000000");
    /* Feb: draw 80 */
    assert_int_equal(feed(h, L[2]), ENG_APPLIED);
    assert_int_equal(nnew(h), 2);
    LEDGER(h, 0, "minimal_draw", NULL, "org", "-80.000000", "840.000000", "840.000000", "2026-02", 0);
    CLOSED(h, 1, NULL, "2026-02", "0.000000", "80.000000", "80.000000", "100.000000",
           "840.000000", "840.000000");
    /* Mar: last month, full 100; then expiry of the remaining 740 */
    assert_int_equal(feed(h, L[3]), ENG_APPLIED);
    assert_int_equal(nnew(h), 3);
    LEDGER(h, 0, "minimal_draw", NULL, "org", "-100.000000", "740.000000", "740.000000", "2026-03", 0);
    LEDGER(h, 1, "expiry", NULL, "org", "-740.000000", "0.000000", "0.000000", "2026-03", 0);
    CLOSED(h, 2, NULL, "2026-03", "0.000000", "100.000000", "100.000000", "0.000000",
           "0.000000", "0.000000");
    assert_int_equal(V(h, "o4"), 0);
    /* the credit still exists (choice 7): usage -> credit_expired, not no_credit */
    assert_true(org_of(h, "o4")->has_credit);
    assert_int_equal(usage(h, "u-after", "2026-04-02T00:00:00Z", "o4", "p1", "hpc", "5"), ENG_APPLIED);
    assert_int_equal(nnew(h), 1);
    OVER(h, 0, "p1", "credit_expired", "5.000000", "0.000000", "5.000000", "2026-04", "2026-04", 0);
    /* minimum of a month at/after the end_date month is 0 (choice 15) */
    assert_int_equal(tick(h, "2026-05-01T00:00:00Z"), ENG_APPLIED);
    assert_int_equal(nnew(h), 1);
    CLOSED(h, 0, NULL, "2026-04", "0.000000", "0.000000", "0.000000", "0.000000", "0.000000",
           "0.000000");
    check_seqs(h);
    free_lines(L, n);
}

static void test_example_E(void **state) {
    struct h *h = *state;
    size_t n;
    char **L = read_lines("tests/scenarios/ex_E.jsonl", &n);
    assert_int_equal(n, 4);
    assert_int_equal(feed(h, L[0]), ENG_APPLIED);
    assert_int_equal(V(h, "o5"), U(1000));
    assert_int_equal(feed(h, L[1]), ENG_APPLIED);
    assert_int_equal(nnew(h), 1);
    LEDGER(h, 0, "compensation", "p1", "org", "-100.000000", "900.000000", "900.000000", "2026-01", 0);
    /* the same usage again: duplicate, draws once */
    assert_int_equal(feed(h, L[2]), ENG_DUPLICATE);
    assert_int_equal(nnew(h), 0);
    assert_int_equal(V(h, "o5"), U(900));
    /* same key, different amount: id_conflict, balances unchanged */
    assert_int_equal(feed(h, L[3]), ENG_REJECTED);
    assert_int_equal(h->res.reason, ENG_R_ID_CONFLICT);
    assert_int_equal(nnew(h), 1);
    REJ(h, 0, "id_conflict", "id");
    json_t *d = json_object_get(NEW(h, 0), "data");
    assert_string_equal(json_string_value(json_object_get(d, "raw")), L[3]);
    assert_string_equal(json_string_value(json_object_get(d, "raw_encoding")), "utf-8");
    assert_true(json_is_false(json_object_get(d, "raw_truncated")));
    assert_string_equal(json_string_value(json_object_get(d, "event_source")), "marketplace/usage");
    assert_string_equal(json_string_value(json_object_get(d, "event_id")), "u-1");
    assert_true(json_is_null(json_object_get(d, "topic")));
    assert_int_equal(json_integer_value(json_object_get(d, "partition")), 0);
    assert_int_equal(json_integer_value(json_object_get(d, "offset")), 4);
    assert_string_equal(sget(NEW(h, 0), "id"), "rejected/file/4");
    assert_string_equal(h->ms.out[h->mark].key, "o5");
    assert_int_equal(V(h, "o5"), U(900));
    /* an id_conflict is not remembered: it rejects again */
    assert_int_equal(feed(h, L[3]), ENG_REJECTED);
    REJ(h, 0, "id_conflict", "id");
    /* the original is still a duplicate */
    assert_int_equal(feed(h, L[1]), ENG_DUPLICATE);
    assert_int_equal(nnew(h), 0);
    assert_int_equal(V(h, "o5"), U(900));
    /* the stream goes on */
    assert_int_equal(usage(h, "u-2", "2026-01-11T10:00:00Z", "o5", "p1", "hpc", "50"), ENG_APPLIED);
    assert_int_equal(V(h, "o5"), U(850));
    check_seqs(h);
    free_lines(L, n);
}

/* ---- one test per rejection reason (§8) ---------------------------------- */

/* V of `org` did not change, and the stream goes on: a following usage of 10
 * (no allocation, free credit) applies. */
static void goes_on(struct h *h, const char *org, int64_t v_before) {
    static int n;
    char id[32];
    snprintf(id, sizeof(id), "go-on-%d", ++n);
    assert_int_equal(V(h, org), v_before);
    assert_int_equal(usage(h, id, "2026-01-25T10:00:00Z", org, "px", "hpc", "10"), ENG_APPLIED);
    assert_int_equal(nnew(h), 1);
    assert_string_equal(dget(NEW(h, 0), "entry"), "compensation");
    assert_string_equal(dget(NEW(h, 0), "delta"), "-10.000000");
    assert_int_equal(V(h, org), v_before - U(10));
}

static void test_reject_invalid_json(void **state) {
    struct h *h = *state;
    org_1000(h, "o");
    const char *bad = "{\"specversion\":\"1.0\",\"id\":\"x1\",\"source\":\"test\"";
    assert_int_equal(feed(h, bad), ENG_REJECTED);
    assert_int_equal(h->res.reason, ENG_R_INVALID_JSON);
    REJECTED_ONLY(h, "invalid_json", "JSON");
    json_t *o = NEW(h, 0), *d = json_object_get(o, "data");
    assert_true(json_is_null(json_object_get(d, "event_id")));
    assert_true(json_is_null(json_object_get(d, "event_source")));
    assert_string_equal(dget(o, "raw"), bad);
    assert_null(json_object_get(o, "time"));
    assert_null(h->ms.out[h->mark].key);
    /* not remembered: the same text rejects again */
    assert_int_equal(feed(h, bad), ENG_REJECTED);
    REJECTED_ONLY(h, "invalid_json", "JSON");
    /* duplicate keys in an object (choice 16) */
    const char *dup = "{\"specversion\":\"1.0\",\"id\":\"d1\",\"id\":\"d1\",\"source\":\"test\","
                      "\"type\":\"org_credit.adjust\",\"time\":\"2026-01-06T00:00:00Z\","
                      "\"data\":{\"org\":\"o\",\"delta\":\"5\"}}";
    assert_int_equal(feed(h, dup), ENG_REJECTED);
    REJECTED_ONLY(h, "invalid_json", "JSON");
    /* not UTF-8: raw is base64 */
    assert_int_equal(feed_raw(h, NULL, 0, "\xff{", 2), 0);
    assert_int_equal(h->res.outcome, ENG_REJECTED);
    REJECTED_ONLY(h, "invalid_json", "JSON");
    assert_string_equal(dget(NEW(h, 0), "raw_encoding"), "base64");
    assert_string_equal(dget(NEW(h, 0), "raw"), "/3s=");
    assert_string_equal(sget(NEW(h, 0), "id"), "rejected/file/5");
    goes_on(h, "o", U(1000));
}

static void test_reject_invalid_event(void **state) {
    struct h *h = *state;
    org_1000(h, "o");
    /* a JSON real amount; the message names the field */
    const char *real = "{\"specversion\":\"1.0\",\"id\":\"ie1\",\"source\":\"test\",\"type\":\"usage\","
                       "\"time\":\"2026-01-06T00:00:00Z\",\"data\":{\"org\":\"o\",\"project\":\"p\","
                       "\"resource\":\"r\",\"offering\":\"hpc\",\"component\":\"cpu\",\"amount\":1.0}}";
    assert_int_equal(feed(h, real), ENG_REJECTED);
    assert_int_equal(h->res.reason, ENG_R_INVALID_EVENT);
    REJECTED_ONLY(h, "invalid_event", "data.amount");
    assert_string_equal(dget(NEW(h, 0), "event_id"), "ie1");
    assert_string_equal(dget(NEW(h, 0), "event_source"), "test");
    assert_string_equal(h->ms.out[h->mark].key, "o");
    /* format rejects after the key are remembered (choice 2) */
    assert_int_equal(feed(h, real), ENG_DUPLICATE);
    assert_int_equal(nnew(h), 0);
    /* missing id: not remembered */
    const char *noid = "{\"specversion\":\"1.0\",\"source\":\"test\",\"type\":\"org_credit.adjust\","
                       "\"time\":\"2026-01-06T00:00:00Z\",\"data\":{\"org\":\"o\",\"delta\":\"5\"}}";
    assert_int_equal(feed(h, noid), ENG_REJECTED);
    REJECTED_ONLY(h, "invalid_event", "id");
    assert_true(json_is_null(json_object_get(json_object_get(NEW(h, 0), "data"), "event_id")));
    assert_int_equal(feed(h, noid), ENG_REJECTED);
    REJECTED_ONLY(h, "invalid_event", "id");
    /* empty source */
    assert_int_equal(evx(h, NULL, 0, "", "ie2", "org_credit.adjust", "2026-01-06T00:00:00Z",
                         "{'org':'o','delta':'5'}"),
                     ENG_REJECTED);
    REJECTED_ONLY(h, "invalid_event", "source");
    /* missing data.org: not remembered */
    assert_int_equal(EV(h, "ie3", "org_credit.adjust", "2026-01-06T00:00:00Z", "{'delta':'5'}"),
                     ENG_REJECTED);
    REJECTED_ONLY(h, "invalid_event", "data.org");
    assert_int_equal(EV(h, "ie3", "org_credit.adjust", "2026-01-06T00:00:00Z", "{'delta':'5'}"),
                     ENG_REJECTED);
    REJECTED_ONLY(h, "invalid_event", "data.org");
    /* non-object JSON (choice 16) */
    assert_int_equal(feed(h, "[1,2]"), ENG_REJECTED);
    assert_int_equal(h->res.reason, ENG_R_INVALID_EVENT);
    assert_int_equal(nnew(h), 1);
    assert_string_equal(dget(NEW(h, 0), "reason"), "invalid_event");
    assert_int_equal(feed(h, "42"), ENG_REJECTED);
    assert_int_equal(h->res.reason, ENG_R_INVALID_EVENT);
    REJ(h, 0, "invalid_event", "JSON object");
    assert_int_equal(feed(h, "\"usage\""), ENG_REJECTED);
    assert_int_equal(h->res.reason, ENG_R_INVALID_EVENT);
    assert_int_equal(feed(h, "null"), ENG_REJECTED);
    assert_int_equal(h->res.reason, ENG_R_INVALID_EVENT);
    /* bad time, bad specversion, missing required field, null = missing */
    assert_int_equal(EV(h, "ie4", "org_credit.adjust", "2026-13-06T00:00:00Z",
                        "{'org':'o','delta':'5'}"),
                     ENG_REJECTED);
    REJECTED_ONLY(h, "invalid_event", "time");
    assert_int_equal(feed(h, "{\"specversion\":\"0.3\",\"id\":\"ie5\",\"source\":\"test\","
                             "\"type\":\"org_credit.adjust\",\"time\":\"2026-01-06T00:00:00Z\","
                             "\"data\":{\"org\":\"o\",\"delta\":\"5\"}}"),
                     ENG_REJECTED);
    REJECTED_ONLY(h, "invalid_event", "specversion");
    assert_int_equal(EV(h, "ie6", "org_credit.set", "2026-01-06T00:00:00Z",
                        "{'org':'o','value':null}"),
                     ENG_REJECTED);
    REJECTED_ONLY(h, "invalid_event", "data.value");
    assert_int_equal(EV(h, "ie7", "usage", "2026-01-06T00:00:00Z",
                        "{'org':'o','project':'p','offering':'hpc','component':'cpu','amount':'1'}"),
                     ENG_REJECTED);
    REJECTED_ONLY(h, "invalid_event", "data.resource");
    assert_int_equal(EV(h, "ie8", "org_credit.set", "2026-01-06T00:00:00Z",
                        "{'org':'o','value':'100','end_date':'2026-03-15'}"),
                     ENG_REJECTED);
    REJECTED_ONLY(h, "invalid_event", "data.end_date");
    assert_int_equal(EV(h, "ie9", "org_credit.set", "2026-01-06T00:00:00Z",
                        "{'org':'o','value':'100','consumption_logic':'linear'}"),
                     ENG_REJECTED);
    REJECTED_ONLY(h, "invalid_event", "data.end_date");
    assert_int_equal(EV(h, "ie10", "org_credit.set", "2026-01-06T00:00:00Z",
                        "{'org':'o','value':'100','expected_consumption':'101'}"),
                     ENG_REJECTED);
    REJECTED_ONLY(h, "invalid_event", "data.expected_consumption");
    assert_int_equal(EV(h, "ie11", "org_credit.set", "2026-01-06T00:00:00Z",
                        "{'org':'o','value':'100','grace_coefficient':101}"),
                     ENG_REJECTED);
    REJECTED_ONLY(h, "invalid_event", "data.grace_coefficient");
    assert_int_equal(EV(h, "ie12", "org_credit.adjust", "2026-01-06T00:00:00Z",
                        "{'org':'o','delta':'0'}"),
                     ENG_REJECTED);
    REJECTED_ONLY(h, "invalid_event", "data.delta");
    goes_on(h, "o", U(1000));
    /* unknown attributes and data fields are ignored */
    assert_int_equal(EV(h, "ie13", "org_credit.adjust", "2026-01-26T00:00:00Z",
                        "{'org':'o','delta':'5','whatever':[1,2]}"),
                     ENG_APPLIED);
    assert_int_equal(V(h, "o"), U(995));
}

static void test_reject_unknown_type(void **state) {
    struct h *h = *state;
    org_1000(h, "o");
    /* with an org: remembered (choice 2) */
    assert_int_equal(EV(h, "ut1", "org_credit.frobnicate", "2026-01-06T00:00:00Z", "{'org':'o'}"),
                     ENG_REJECTED);
    assert_int_equal(h->res.reason, ENG_R_UNKNOWN_TYPE);
    REJECTED_ONLY(h, "unknown_type", "type");
    assert_string_equal(h->ms.out[h->mark].key, "o");
    assert_int_equal(EV(h, "ut1", "org_credit.frobnicate", "2026-01-06T00:00:00Z", "{'org':'o'}"),
                     ENG_DUPLICATE);
    assert_int_equal(nnew(h), 0);
    /* without a readable org: not remembered */
    assert_int_equal(EV(h, "ut2", "frobnicate", "2026-01-06T00:00:00Z", "{'x':1}"), ENG_REJECTED);
    REJECTED_ONLY(h, "unknown_type", "type");
    assert_int_equal(EV(h, "ut2", "frobnicate", "2026-01-06T00:00:00Z", "{'x':1}"), ENG_REJECTED);
    REJECTED_ONLY(h, "unknown_type", "type");
    goes_on(h, "o", U(1000));
}

static void test_reject_id_conflict(void **state) {
    struct h *h = *state;
    org_1000(h, "o");
    assert_int_equal(usage(h, "u1", "2026-01-06T00:00:00Z", "o", "p", "hpc", "100"), ENG_APPLIED);
    assert_int_equal(V(h, "o"), U(900));
    assert_int_equal(usage(h, "u1", "2026-01-06T00:00:00Z", "o", "p", "hpc", "200"), ENG_REJECTED);
    assert_int_equal(h->res.reason, ENG_R_ID_CONFLICT);
    REJECTED_ONLY(h, "id_conflict", "id");
    assert_string_equal(dget(NEW(h, 0), "event_id"), "u1");
    /* id_conflict is judged before the fields: even a malformed message */
    assert_int_equal(EV(h, "u1", "usage", "2026-01-06T00:00:00Z", "{'org':'o'}"), ENG_REJECTED);
    REJECTED_ONLY(h, "id_conflict", "id");
    goes_on(h, "o", U(900));
}

static void test_reject_wrong_partition(void **state) {
    struct h *h = *state;
    assert_int_equal(evx(h, "t", 0, "test", "s1", "org_credit.set", "2026-01-05T00:00:00Z",
                         "{'org':'o','value':'1000'}"),
                     ENG_APPLIED);
    assert_int_equal(org_of(h, "o")->partition, 0);
    assert_int_equal(evx(h, "t", 1, "test", "u1", "usage", "2026-01-06T00:00:00Z",
                         "{'org':'o','project':'p','resource':'r','offering':'hpc',"
                         "'component':'cpu','amount':'10'}"),
                     ENG_REJECTED);
    assert_int_equal(h->res.reason, ENG_R_WRONG_PARTITION);
    REJECTED_ONLY(h, "wrong_partition", "data.org");
    json_t *o = NEW(h, 0), *d = json_object_get(o, "data");
    assert_string_equal(sget(o, "id"), "rejected/1/2");
    assert_string_equal(dget(o, "topic"), "t");
    assert_int_equal(json_integer_value(json_object_get(d, "partition")), 1);
    assert_int_equal(json_integer_value(json_object_get(d, "offset")), 2);
    assert_string_equal(dget(o, "event_id"), "u1");
    assert_string_equal(dget(o, "event_source"), "test");
    assert_string_equal(sget(o, "time"), "2026-01-06T00:00:00Z");
    assert_string_equal(h->ms.out[h->mark].key, "o");
    assert_int_equal(V(h, "o"), U(1000));
    /* not remembered: rejected again, and accepted on the right partition */
    char *again = strdup(h->last);
    assert_int_equal(feed_t(h, "t", 1, again), ENG_REJECTED);
    REJECTED_ONLY(h, "wrong_partition", "data.org");
    assert_string_equal(sget(NEW(h, 0), "id"), "rejected/1/3");
    assert_int_equal(feed_t(h, "t", 0, again), ENG_APPLIED);
    assert_int_equal(nnew(h), 1);
    LEDGER(h, 0, "compensation", "p", "org", "-10.000000", "990.000000", "990.000000", "2026-01", 0);
    free(again);
    assert_int_equal(V(h, "o"), U(990));
}

static void test_reject_overflow(void **state) {
    struct h *h = *state;
    assert_int_equal(EV(h, "s1", "org_credit.set", "2026-01-05T00:00:00Z",
                        "{'org':'o','value':'9223372036854'}"),
                     ENG_APPLIED);
    assert_int_equal(V(h, "o"), U(9223372036854));
    assert_int_equal(EV(h, "a1", "org_credit.adjust", "2026-01-06T00:00:00Z",
                        "{'org':'o','delta':'1'}"),
                     ENG_REJECTED);
    assert_int_equal(h->res.reason, ENG_R_OVERFLOW);
    REJECTED_ONLY(h, "overflow", "data.delta");
    assert_int_equal(V(h, "o"), U(9223372036854));
    /* quantity x unit_price does not fit */
    assert_int_equal(EV(h, "u1", "usage", "2026-01-07T00:00:00Z",
                        "{'org':'o','project':'p','resource':'r','offering':'hpc','component':'cpu',"
                        "'quantity':'9223372036','unit_price':'9223372036'}"),
                     ENG_REJECTED);
    REJECTED_ONLY(h, "overflow", "data.quantity");
    goes_on(h, "o", U(9223372036854));
}

static void test_reject_no_org_credit(void **state) {
    struct h *h = *state;
    assert_int_equal(EV(h, "a1", "org_credit.adjust", "2026-01-05T00:00:00Z",
                        "{'org':'o','delta':'100'}"),
                     ENG_REJECTED);
    assert_int_equal(h->res.reason, ENG_R_NO_ORG_CREDIT);
    REJECTED_ONLY(h, "no_org_credit", "data.org");
    assert_false(org_of(h, "o")->has_credit);
    assert_int_equal(EV(h, "d1", "org_credit.delete", "2026-01-05T00:00:01Z", "{'org':'o'}"),
                     ENG_REJECTED);
    REJECTED_ONLY(h, "no_org_credit", "data.org");
    assert_int_equal(EV(h, "p1", "project_credit.set", "2026-01-05T00:00:02Z",
                        "{'org':'o','project':'p','value':'0'}"),
                     ENG_REJECTED);
    REJECTED_ONLY(h, "no_org_credit", "data.org");
    assert_false(org_of(h, "o")->has_credit);
    assert_int_equal(V(h, "o"), 0);
    org_1000(h, "o");
    goes_on(h, "o", U(1000));
}

static void test_reject_no_project_credit(void **state) {
    struct h *h = *state;
    org_1000(h, "o");
    assert_int_equal(EV(h, "pd1", "project_credit.delete", "2026-01-06T00:00:00Z",
                        "{'org':'o','project':'pZ'}"),
                     ENG_REJECTED);
    assert_int_equal(h->res.reason, ENG_R_NO_PROJECT_CREDIT);
    REJECTED_ONLY(h, "no_project_credit", "data.project");
    goes_on(h, "o", U(1000));
}

static void test_reject_allocation_exceeds(void **state) {
    struct h *h = *state;
    org_1000(h, "o");
    assert_int_equal(EV(h, "pA1", "project_credit.set", "2026-01-06T00:00:00Z",
                        "{'org':'o','project':'pA','value':'600'}"),
                     ENG_APPLIED);
    assert_int_equal(EV(h, "pB1", "project_credit.set", "2026-01-06T00:00:01Z",
                        "{'org':'o','project':'pB','value':'500'}"),
                     ENG_REJECTED);
    assert_int_equal(h->res.reason, ENG_R_ALLOCATION_EXCEEDS);
    REJECTED_ONLY(h, "allocation_exceeds_org_credit", "data.value");
    struct eng_project *pb = eng_org_find_project(org_of(h, "o"), "pB");
    assert_true(pb == NULL || !pb->has_credit);
    /* a sum equal to V is allowed */
    assert_int_equal(EV(h, "pB2", "project_credit.set", "2026-01-06T00:00:02Z",
                        "{'org':'o','project':'pB','value':'400'}"),
                     ENG_APPLIED);
    assert_int_equal(EV(h, "pA2", "project_credit.set", "2026-01-06T00:00:03Z",
                        "{'org':'o','project':'pA','value':'600.000001'}"),
                     ENG_REJECTED);
    REJECTED_ONLY(h, "allocation_exceeds_org_credit", "data.value");
    assert_int_equal(P(h, "o", "pA"), U(600));
    /* lowering is always allowed, even when V < sum of P */
    assert_int_equal(EV(h, "a1", "org_credit.adjust", "2026-01-06T00:00:04Z",
                        "{'org':'o','delta':'-900'}"),
                     ENG_APPLIED);
    assert_int_equal(V(h, "o"), U(100));
    assert_int_equal(EV(h, "pA3", "project_credit.set", "2026-01-06T00:00:05Z",
                        "{'org':'o','project':'pA','value':'500'}"),
                     ENG_APPLIED);
    assert_int_equal(nnew(h), 2);
    LEDGER(h, 0, "allocation", "pA", "project", "-100.000000", "500.000000", "100.000000", "2026-01", 0);
    assert_int_equal(EV(h, "pA4", "project_credit.set", "2026-01-06T00:00:06Z",
                        "{'org':'o','project':'pA','value':'501'}"),
                     ENG_REJECTED);
    REJECTED_ONLY(h, "allocation_exceeds_org_credit", "data.value");
    assert_int_equal(P(h, "o", "pA"), U(500));
    assert_int_equal(P(h, "o", "pB"), U(400));
    assert_int_equal(V(h, "o"), U(100));
    /* the stream goes on (free credit is 0 now: the project draws) */
    assert_int_equal(usage(h, "u1", "2026-01-07T00:00:00Z", "o", "pA", "hpc", "10"), ENG_APPLIED);
    LEDGER(h, 0, "compensation", "pA", "project", "-10.000000", "490.000000", "90.000000", "2026-01", 0);
}

static void test_reject_value_changed(void **state) {
    struct h *h = *state;
    /* if_value without a credit (choice 4) */
    assert_int_equal(EV(h, "s0", "org_credit.set", "2026-01-05T00:00:00Z",
                        "{'org':'o','value':'1000','if_value':'0'}"),
                     ENG_REJECTED);
    assert_int_equal(h->res.reason, ENG_R_VALUE_CHANGED);
    REJECTED_ONLY(h, "value_changed", "data.if_value");
    assert_false(org_of(h, "o")->has_credit);
    org_1000(h, "o");
    assert_int_equal(EV(h, "s2", "org_credit.set", "2026-01-06T00:00:00Z",
                        "{'org':'o','value':'2000','if_value':'999'}"),
                     ENG_REJECTED);
    REJECTED_ONLY(h, "value_changed", "data.if_value");
    assert_int_equal(V(h, "o"), U(1000));
    assert_int_equal(EV(h, "s3", "org_credit.set", "2026-01-06T00:00:01Z",
                        "{'org':'o','value':'2000','if_value':'1000'}"),
                     ENG_APPLIED);
    assert_int_equal(nnew(h), 2);
    LEDGER(h, 0, "staff_grant", NULL, "org", "1000.000000", "2000.000000", "2000.000000", "2026-01", 0);
    goes_on(h, "o", U(2000));
}

static void test_reject_insufficient_credit(void **state) {
    struct h *h = *state;
    org_1000(h, "o");
    assert_int_equal(EV(h, "a1", "org_credit.adjust", "2026-01-06T00:00:00Z",
                        "{'org':'o','delta':'-1000.000001'}"),
                     ENG_REJECTED);
    assert_int_equal(h->res.reason, ENG_R_INSUFFICIENT_CREDIT);
    REJECTED_ONLY(h, "insufficient_credit", "data.delta");
    assert_int_equal(V(h, "o"), U(1000));
    assert_int_equal(EV(h, "a2", "org_credit.adjust", "2026-01-06T00:00:01Z",
                        "{'org':'o','delta':'-1000'}"),
                     ENG_APPLIED);
    assert_int_equal(nnew(h), 1);
    LEDGER(h, 0, "staff_grant", NULL, "org", "-1000.000000", "0.000000", "0.000000", "2026-01", 0);
    assert_int_equal(EV(h, "a3", "org_credit.adjust", "2026-01-06T00:00:02Z",
                        "{'org':'o','delta':'100'}"),
                     ENG_APPLIED);
    LEDGER(h, 0, "staff_grant", NULL, "org", "100.000000", "100.000000", "100.000000", "2026-01", 0);
    goes_on(h, "o", U(100));
}

/* ---- money through events (§2) ------------------------------------------- */

static int usage_qty(struct h *h, const char *id, const char *org, const char *q, const char *p) {
    return EV(h, id, "usage", "2026-01-10T00:00:00Z",
              "{'org':'%s','project':'p','resource':'r','offering':'hpc','component':'cpu',"
              "'quantity':'%s','unit_price':'%s'}",
              org, q, p);
}

static void test_money_json_forms(void **state) {
    struct h *h = *state;
    /* integer amounts are accepted */
    assert_int_equal(EV(h, "s1", "org_credit.set", "2026-01-05T00:00:00Z",
                        "{'org':'o','value':1000,'expected_consumption':0}"),
                     ENG_APPLIED);
    LEDGER(h, 0, "staff_grant", NULL, "org", "1000.000000", "1000.000000", "1000.000000", "2026-01", 0);
    assert_int_equal(V(h, "o"), U(1000));
    assert_int_equal(EV(h, "u1", "usage", "2026-01-06T00:00:00Z",
                        "{'org':'o','project':'p','resource':'r','offering':'hpc','component':'cpu',"
                        "'amount':30}"),
                     ENG_APPLIED);
    LEDGER(h, 0, "compensation", "p", "org", "-30.000000", "970.000000", "970.000000", "2026-01", 0);
    assert_int_equal(EV(h, "a1", "org_credit.adjust", "2026-01-06T00:00:01Z",
                        "{'org':'o','delta':-5}"),
                     ENG_APPLIED);
    LEDGER(h, 0, "staff_grant", NULL, "org", "-5.000000", "965.000000", "965.000000", "2026-01", 0);
    /* a JSON real, even 1.0, is rejected naming the field */
    assert_int_equal(EV(h, "u2", "usage", "2026-01-06T00:00:02Z",
                        "{'org':'o','project':'p','resource':'r','offering':'hpc','component':'cpu',"
                        "'amount':1.0}"),
                     ENG_REJECTED);
    REJECTED_ONLY(h, "invalid_event", "data.amount");
    assert_int_equal(EV(h, "s2", "org_credit.set", "2026-01-06T00:00:03Z",
                        "{'org':'o','value':1.0}"),
                     ENG_REJECTED);
    REJECTED_ONLY(h, "invalid_event", "data.value");
    /* booleans */
    assert_int_equal(EV(h, "u3", "usage", "2026-01-06T00:00:04Z",
                        "{'org':'o','project':'p','resource':'r','offering':'hpc','component':'cpu',"
                        "'amount':true}"),
                     ENG_REJECTED);
    REJECTED_ONLY(h, "invalid_event", "data.amount");
    /* 7 fractional digits (even zeros); 6 are fine */
    assert_int_equal(usage(h, "u4", "2026-01-06T00:00:05Z", "o", "p", "hpc", "0.0000001"), ENG_REJECTED);
    REJECTED_ONLY(h, "invalid_event", "data.amount");
    assert_int_equal(usage(h, "u5", "2026-01-06T00:00:06Z", "o", "p", "hpc", "1.0000000"), ENG_REJECTED);
    REJECTED_ONLY(h, "invalid_event", "data.amount");
    assert_int_equal(EV(h, "a2", "org_credit.adjust", "2026-01-06T00:00:07Z",
                        "{'org':'o','delta':'1.1234567'}"),
                     ENG_REJECTED);
    REJECTED_ONLY(h, "invalid_event", "data.delta");
    assert_int_equal(usage(h, "u6", "2026-01-06T00:00:08Z", "o", "p", "hpc", "0.123456"), ENG_APPLIED);
    LEDGER(h, 0, "compensation", "p", "org", "-0.123456", "964.876544", "964.876544", "2026-01", 0);
    /* negative where none is allowed */
    assert_int_equal(EV(h, "s3", "org_credit.set", "2026-01-06T00:00:09Z",
                        "{'org':'o','value':'-1'}"),
                     ENG_REJECTED);
    REJECTED_ONLY(h, "invalid_event", "data.value");
    assert_int_equal(usage(h, "u7", "2026-01-06T00:00:10Z", "o", "p", "hpc", "-5"), ENG_REJECTED);
    REJECTED_ONLY(h, "invalid_event", "data.amount");
    assert_int_equal(EV(h, "u8", "usage", "2026-01-06T00:00:11Z",
                        "{'org':'o','project':'p','resource':'r','offering':'hpc','component':'cpu',"
                        "'amount':-5}"),
                     ENG_REJECTED);
    REJECTED_ONLY(h, "invalid_event", "data.amount");
    assert_int_equal(EV(h, "s4", "org_credit.set", "2026-01-06T00:00:12Z",
                        "{'org':'o','value':'10','expected_consumption':'-1'}"),
                     ENG_REJECTED);
    REJECTED_ONLY(h, "invalid_event", "data.expected_consumption");
    assert_int_equal(EV(h, "s5", "project_credit.set", "2026-01-06T00:00:13Z",
                        "{'org':'o','project':'p','value':'-0.000001'}"),
                     ENG_REJECTED);
    REJECTED_ONLY(h, "invalid_event", "data.value");
    /* out of range, and not plain decimals */
    assert_int_equal(EV(h, "s6", "org_credit.set", "2026-01-06T00:00:14Z",
                        "{'org':'o','value':'9223372036855'}"),
                     ENG_REJECTED);
    REJECTED_ONLY(h, "invalid_event", "data.value");
    assert_int_equal(usage(h, "u9", "2026-01-06T00:00:15Z", "o", "p", "hpc", "1e3"), ENG_REJECTED);
    REJECTED_ONLY(h, "invalid_event", "data.amount");
    assert_int_equal(usage(h, "u10", "2026-01-06T00:00:16Z", "o", "p", "hpc", ""), ENG_REJECTED);
    REJECTED_ONLY(h, "invalid_event", "data.amount");
    /* nothing above changed the balance */
    assert_int_equal(V(h, "o"), 964876544);
}

static void test_money_quantity_rounding(void **state) {
    struct h *h = *state;
    assert_int_equal(EV(h, "s1", "org_credit.set", "2026-01-05T00:00:00Z", "{'org':'o','value':'1'}"),
                     ENG_APPLIED);
    /* 0.0000005 -> cost 0.000000: no draw, nothing emitted */
    assert_int_equal(usage_qty(h, "q1", "o", "0.0000005", "1"), ENG_APPLIED);
    assert_int_equal(nnew(h), 0);
    assert_int_equal(V(h, "o"), 1000000);
    /* 0.0000015 -> 0.000002; 0.0000025 -> 0.000002; 0.0000035 -> 0.000004 (half-even) */
    assert_int_equal(usage_qty(h, "q2", "o", "0.0000015", "1"), ENG_APPLIED);
    assert_int_equal(nnew(h), 1);
    LEDGER(h, 0, "compensation", "p", "org", "-0.000002", "0.999998", "0.999998", "2026-01", 0);
    assert_int_equal(usage_qty(h, "q3", "o", "1", "0.0000025"), ENG_APPLIED);
    LEDGER(h, 0, "compensation", "p", "org", "-0.000002", "0.999996", "0.999996", "2026-01", 0);
    assert_int_equal(usage_qty(h, "q4", "o", "0.0000035", "1"), ENG_APPLIED);
    LEDGER(h, 0, "compensation", "p", "org", "-0.000004", "0.999992", "0.999992", "2026-01", 0);
    assert_int_equal(usage_qty(h, "q5", "o", "0.5", "0.000003"), ENG_APPLIED);
    LEDGER(h, 0, "compensation", "p", "org", "-0.000002", "0.999990", "0.999990", "2026-01", 0);
    assert_int_equal(V(h, "o"), 999990);
    /* overage output of the quantity form: 9-digit strings (choice 12) */
    assert_int_equal(usage_qty(h, "q6", "nc", "0.0000015", "1"), ENG_APPLIED);
    assert_int_equal(nnew(h), 1);
    OVER(h, 0, "p", "no_credit", "0.000002", "0.000000", "0.000002", "2026-01", "2026-01", 0);
    assert_string_equal(dget(NEW(h, 0), "quantity"), "0.000001500");
    assert_string_equal(dget(NEW(h, 0), "unit_price"), "1.000000000");
    assert_int_equal(usage_qty(h, "q7", "nc", "3", "0.5"), ENG_APPLIED);
    OVER(h, 0, "p", "no_credit", "1.500000", "0.000000", "1.500000", "2026-01", "2026-01", 0);
    assert_string_equal(dget(NEW(h, 0), "quantity"), "3.000000000");
    assert_string_equal(dget(NEW(h, 0), "unit_price"), "0.500000000");
    assert_int_equal(usage_qty(h, "q8", "nc", "9223372036.854775807", "0.000000001"), ENG_APPLIED);
    OVER(h, 0, "p", "no_credit", "9.223372", "0.000000", "9.223372", "2026-01", "2026-01", 0);
    assert_string_equal(dget(NEW(h, 0), "quantity"), "9223372036.854775807");
    /* c = 0 draws and emits nothing, even without a credit */
    assert_int_equal(usage_qty(h, "q6b", "nc", "0.0000005", "1"), ENG_APPLIED);
    assert_int_equal(nnew(h), 0);
    assert_int_equal(usage(h, "q6c", "2026-01-10T00:00:00Z", "nc", "p", "hpc", "0"), ENG_APPLIED);
    assert_int_equal(nnew(h), 0);
    assert_int_equal(usage(h, "q6d", "2026-01-10T00:00:00Z", "o", "p", "hpc", "0.000000"), ENG_APPLIED);
    assert_int_equal(nnew(h), 0);
    assert_int_equal(V(h, "o"), 999990);
    /* format rejects of the pair */
    assert_int_equal(usage_qty(h, "q9", "o", "0.0000000001", "1"), ENG_REJECTED);
    REJECTED_ONLY(h, "invalid_event", "data.quantity");
    assert_int_equal(usage_qty(h, "q10", "o", "9223372036.854775808", "1"), ENG_REJECTED);
    REJECTED_ONLY(h, "invalid_event", "data.quantity");
    assert_int_equal(usage_qty(h, "q11", "o", "1", "-1"), ENG_REJECTED);
    REJECTED_ONLY(h, "invalid_event", "data.unit_price");
    assert_int_equal(EV(h, "q12", "usage", "2026-01-10T00:00:00Z",
                        "{'org':'o','project':'p','resource':'r','offering':'hpc','component':'cpu',"
                        "'quantity':'1'}"),
                     ENG_REJECTED);
    REJECTED_ONLY(h, "invalid_event", "data.unit_price");
    assert_int_equal(EV(h, "q13", "usage", "2026-01-10T00:00:00Z",
                        "{'org':'o','project':'p','resource':'r','offering':'hpc','component':'cpu',"
                        "'unit_price':'1'}"),
                     ENG_REJECTED);
    REJECTED_ONLY(h, "invalid_event", "data.quantity");
    assert_int_equal(EV(h, "q14", "usage", "2026-01-10T00:00:00Z",
                        "{'org':'o','project':'p','resource':'r','offering':'hpc','component':'cpu',"
                        "'amount':'1','quantity':'1','unit_price':'1'}"),
                     ENG_REJECTED);
    REJECTED_ONLY(h, "invalid_event", "data.amount");
    assert_int_equal(EV(h, "q15", "usage", "2026-01-10T00:00:00Z",
                        "{'org':'o','project':'p','resource':'r','offering':'hpc','component':'cpu'}"),
                     ENG_REJECTED);
    REJECTED_ONLY(h, "invalid_event", "data.amount");
    /* quantity x unit_price overflow -> overflow, nothing changes */
    assert_int_equal(usage_qty(h, "q16", "o", "9223372036", "9223372036"), ENG_REJECTED);
    assert_int_equal(h->res.reason, ENG_R_OVERFLOW);
    REJECTED_ONLY(h, "overflow", "data.quantity");
    assert_int_equal(V(h, "o"), 999990);
}

/* Minimums and linear expectations are divided exactly and rounded half-even. */
static void test_money_minimum_and_linear_rounding(void **state) {
    struct h *h = *state;
    /* a: expected 0.000005, grace 50 -> minimum 0.0000025 -> 0.000002 */
    assert_int_equal(EV(h, "s1", "org_credit.set", "2026-01-05T00:00:00Z",
                        "{'org':'a','value':'1','expected_consumption':'0.000005','grace_coefficient':50}"),
                     ENG_APPLIED);
    /* b: linear 100 over Jan..Mar -> 33.333333 */
    assert_int_equal(EV(h, "s2", "org_credit.set", "2026-01-05T00:00:00Z",
                        "{'org':'b','value':'100','consumption_logic':'linear','end_date':'2026-04-01'}"),
                     ENG_APPLIED);
    TERMS(h, 1, NULL, "100.000000", "100.000000", "2026-01", 0,
          "{'consumption_logic':'linear','expected_consumption':'33.333333','grace_coefficient':0,"
          "'apply_as_minimal_consumption':true,'end_date':'2026-04-01','reserve_allocations':true,"
          "'offerings':[]}");
    /* c: linear 0.000003 over Jan..Feb -> 0.0000015 -> 0.000002 */
    assert_int_equal(EV(h, "s3", "org_credit.set", "2026-01-05T00:00:00Z",
                        "{'org':'c','value':'0.000003','consumption_logic':'linear','end_date':'2026-03-01'}"),
                     ENG_APPLIED);
    assert_int_equal(org_of(h, "c")->terms.expected, 2);
    /* d: no minimum when apply_as_minimal_consumption is false */
    assert_int_equal(EV(h, "s4", "org_credit.set", "2026-01-05T00:00:00Z",
                        "{'org':'d','value':'1000','expected_consumption':'100',"
                        "'apply_as_minimal_consumption':false}"),
                     ENG_APPLIED);
    assert_int_equal(tick(h, "2026-02-01T00:00:00Z"), ENG_APPLIED);
    assert_int_equal(nnew(h), 7);
    CLOSED(h, 6, NULL, "2026-01", "0.000000", "0.000000", "0.000000", "100.000000", "1000.000000",
           "1000.000000");
    assert_string_equal(dget(NEW(h, 6), "org"), "d");
    assert_int_equal(V(h, "d"), U(1000));
    LEDGER(h, 0, "minimal_draw", NULL, "org", "-0.000002", "0.999998", "0.999998", "2026-01", 0);
    CLOSED(h, 1, NULL, "2026-01", "0.000000", "0.000002", "0.000002", "0.000005", "0.999998", "0.999998");
    assert_string_equal(dget(NEW(h, 1), "org"), "a");
    LEDGER(h, 2, "minimal_draw", NULL, "org", "-33.333333", "66.666667", "66.666667", "2026-01", 0);
    /* expected(Feb) = 66.666667 / 2 = 33.3333335 -> 33.333334 (half-even) */
    CLOSED(h, 3, NULL, "2026-01", "0.000000", "33.333333", "33.333333", "33.333334", "66.666667",
           "66.666667");
    assert_string_equal(dget(NEW(h, 3), "org"), "b");
    LEDGER(h, 4, "minimal_draw", NULL, "org", "-0.000002", "0.000001", "0.000001", "2026-01", 0);
    CLOSED(h, 5, NULL, "2026-01", "0.000000", "0.000002", "0.000002", "0.000001", "0.000001", "0.000001");
    assert_string_equal(dget(NEW(h, 5), "org"), "c");
}

/* ---- idempotency (§7) ------------------------------------------------------ */

static void test_idem_duplicate_and_canonical_content(void **state) {
    struct h *h = *state;
    org_1000(h, "o");
    org_1000(h, "o2");
    const char *m = "{\"specversion\":\"1.0\",\"id\":\"u1\",\"source\":\"mk\",\"type\":\"usage\","
                    "\"time\":\"2026-01-06T00:00:00Z\",\"data\":{\"org\":\"o\",\"project\":\"p\","
                    "\"resource\":\"r\",\"offering\":\"hpc\",\"component\":\"cpu\",\"amount\":\"100\"}}";
    assert_int_equal(feed(h, m), ENG_APPLIED);
    assert_int_equal(nnew(h), 1);
    assert_int_equal(feed(h, m), ENG_DUPLICATE);
    assert_int_equal(nnew(h), 0);
    assert_int_equal(feed(h, m), ENG_DUPLICATE);
    assert_int_equal(nnew(h), 0);
    assert_int_equal(V(h, "o"), U(900));
    /* the same content, keys reordered and spaced: a duplicate */
    const char *m2 = "{ \"data\" : {\"amount\":\"100\",\"component\":\"cpu\",\"offering\":\"hpc\","
                     "\"resource\":\"r\",\"project\":\"p\",\"org\":\"o\"}, \"type\":\"usage\","
                     "\"time\":\"2026-01-06T00:00:00Z\", \"source\":\"mk\", \"id\":\"u1\", "
                     "\"specversion\":\"1.0\" }";
    assert_int_equal(feed(h, m2), ENG_DUPLICATE);
    assert_int_equal(nnew(h), 0);
    /* an ignored attribute is content too: a conflict */
    const char *m3 = "{\"specversion\":\"1.0\",\"id\":\"u1\",\"source\":\"mk\",\"type\":\"usage\","
                     "\"subject\":\"x\",\"time\":\"2026-01-06T00:00:00Z\",\"data\":{\"org\":\"o\","
                     "\"project\":\"p\",\"resource\":\"r\",\"offering\":\"hpc\",\"component\":\"cpu\","
                     "\"amount\":\"100\"}}";
    assert_int_equal(feed(h, m3), ENG_REJECTED);
    REJECTED_ONLY(h, "id_conflict", "id");
    assert_int_equal(V(h, "o"), U(900));
    /* another source, or another org: another key */
    assert_int_equal(evx(h, NULL, 0, "mk2", "u1", "usage", "2026-01-06T00:00:00Z",
                         "{'org':'o','project':'p','resource':'r','offering':'hpc','component':'cpu',"
                         "'amount':'100'}"),
                     ENG_APPLIED);
    assert_int_equal(V(h, "o"), U(800));
    assert_int_equal(evx(h, NULL, 0, "mk", "u1", "usage", "2026-01-06T00:00:00Z",
                         "{'org':'o2','project':'p','resource':'r','offering':'hpc','component':'cpu',"
                         "'amount':'100'}"),
                     ENG_APPLIED);
    assert_int_equal(V(h, "o2"), U(900));
    assert_int_equal(V(h, "o"), U(800));
}

static void test_idem_tick_keys_per_partition(void **state) {
    struct h *h = *state;
    assert_int_equal(evx(h, "t", 0, "test", "sa", "org_credit.set", "2026-01-05T00:00:00Z",
                         "{'org':'a','value':'1000','expected_consumption':'100'}"),
                     ENG_APPLIED);
    assert_int_equal(evx(h, "t", 1, "test", "sb", "org_credit.set", "2026-01-05T00:00:00Z",
                         "{'org':'b','value':'1000','expected_consumption':'100'}"),
                     ENG_APPLIED);
    /* tick on partition 0 closes only a */
    assert_int_equal(evx(h, "t", 0, "clock", "tk", "clock.tick", "2026-02-01T00:00:00Z", NULL),
                     ENG_APPLIED);
    assert_int_equal(nnew(h), 2);
    LEDGER(h, 0, "minimal_draw", NULL, "org", "-100.000000", "900.000000", "900.000000", "2026-01", 0);
    assert_string_equal(dget(NEW(h, 0), "org"), "a");
    CLOSED(h, 1, NULL, "2026-01", "0.000000", "100.000000", "100.000000", "100.000000",
           "900.000000", "900.000000");
    assert_int_equal(V(h, "a"), U(900));
    assert_int_equal(V(h, "b"), U(1000));
    /* the same tick id on partition 1 is another key */
    assert_int_equal(evx(h, "t", 1, "clock", "tk", "clock.tick", "2026-02-01T00:00:00Z", NULL),
                     ENG_APPLIED);
    assert_int_equal(nnew(h), 2);
    LEDGER(h, 0, "minimal_draw", NULL, "org", "-100.000000", "900.000000", "900.000000", "2026-01", 0);
    assert_string_equal(dget(NEW(h, 0), "org"), "b");
    assert_int_equal(V(h, "b"), U(900));
    /* re-sent on partition 0: duplicate */
    assert_int_equal(evx(h, "t", 0, "clock", "tk", "clock.tick", "2026-02-01T00:00:00Z", NULL),
                     ENG_DUPLICATE);
    assert_int_equal(nnew(h), 0);
    /* same key, other time: conflict (and no close) */
    assert_int_equal(evx(h, "t", 1, "clock", "tk", "clock.tick", "2026-03-01T00:00:00Z", NULL),
                     ENG_REJECTED);
    assert_int_equal(h->res.reason, ENG_R_ID_CONFLICT);
    REJECTED_ONLY(h, "id_conflict", "id");
    assert_int_equal(org_of(h, "b")->open_month, MON("2026-02"));
    assert_int_equal(V(h, "b"), U(900));
}

static void test_idem_rejected_resent_is_duplicate(void **state) {
    struct h *h = *state;
    org_1000(h, "o");
    /* state-rule reject */
    assert_int_equal(EV(h, "adj", "org_credit.adjust", "2026-01-06T00:00:00Z",
                        "{'org':'o','delta':'-2000'}"),
                     ENG_REJECTED);
    REJECTED_ONLY(h, "insufficient_credit", "data.delta");
    assert_int_equal(EV(h, "adj2", "org_credit.adjust", "2026-01-06T00:00:01Z",
                        "{'org':'o','delta':'5000'}"),
                     ENG_APPLIED);
    assert_int_equal(V(h, "o"), U(6000));
    /* it would apply now, but one key has one outcome */
    assert_int_equal(EV(h, "adj", "org_credit.adjust", "2026-01-06T00:00:00Z",
                        "{'org':'o','delta':'-2000'}"),
                     ENG_DUPLICATE);
    assert_int_equal(nnew(h), 0);
    assert_int_equal(V(h, "o"), U(6000));
    /* format reject after the key */
    assert_int_equal(EV(h, "bad", "org_credit.adjust", "2026-01-06T00:00:02Z",
                        "{'org':'o','delta':1.5}"),
                     ENG_REJECTED);
    REJECTED_ONLY(h, "invalid_event", "data.delta");
    assert_int_equal(EV(h, "bad", "org_credit.adjust", "2026-01-06T00:00:02Z",
                        "{'org':'o','delta':1.5}"),
                     ENG_DUPLICATE);
    assert_int_equal(nnew(h), 0);
    /* retried with a new id, it applies */
    assert_int_equal(EV(h, "bad-2", "org_credit.adjust", "2026-01-06T00:00:03Z",
                        "{'org':'o','delta':'1.5'}"),
                     ENG_APPLIED);
    assert_int_equal(V(h, "o"), U(6000) + 1500000);
}

/* ---- months, close_after, late ------------------------------------------- */

static void test_close_after(void **state) {
    struct h *h = *state;
    h_reset(h, 86400);
    assert_int_equal(EV(h, "s1", "org_credit.set", "2026-01-05T00:00:00Z",
                        "{'org':'o','value':'1000','expected_consumption':'100'}"),
                     ENG_APPLIED);
    assert_int_equal(usage(h, "u1", "2026-01-20T00:00:00Z", "o", "p1", "hpc", "10"), ENG_APPLIED);
    assert_int_equal(V(h, "o"), U(990));
    /* the 1st of the next month, before close_after: its own month, Jan still open */
    assert_int_equal(usage(h, "u2", "2026-02-01T10:00:00Z", "o", "p1", "hpc", "20"), ENG_APPLIED);
    assert_int_equal(nnew(h), 1);
    LEDGER(h, 0, "compensation", "p1", "org", "-20.000000", "970.000000", "970.000000", "2026-02", 0);
    assert_int_equal(org_of(h, "o")->open_month, MON("2026-01"));
    assert_int_equal(tick(h, "2026-02-01T23:59:59Z"), ENG_APPLIED);
    assert_int_equal(nnew(h), 0);
    assert_int_equal(org_of(h, "o")->open_month, MON("2026-01"));
    /* start of Feb + close_after: Jan closes with Jan's consumption only (10) */
    assert_int_equal(tick(h, "2026-02-02T00:00:00Z"), ENG_APPLIED);
    assert_int_equal(nnew(h), 2);
    LEDGER(h, 0, "minimal_draw", NULL, "org", "-90.000000", "880.000000", "880.000000", "2026-01", 0);
    CLOSED(h, 1, NULL, "2026-01", "10.000000", "100.000000", "90.000000", "100.000000",
           "880.000000", "880.000000");
    assert_int_equal(org_of(h, "o")->open_month, MON("2026-02"));
    /* late usage: counts for the open month, late = true */
    assert_int_equal(usage(h, "u3", "2026-01-31T12:00:00Z", "o", "p1", "hpc", "900"), ENG_APPLIED);
    assert_int_equal(nnew(h), 2);
    LEDGER(h, 0, "compensation", "p1", "org", "-880.000000", "0.000000", "0.000000", "2026-02", 1);
    OVER(h, 1, "p1", "org_credit_exhausted", "900.000000", "880.000000", "20.000000", "2026-01",
         "2026-02", 1);
    assert_int_equal(V(h, "o"), 0);
    assert_int_equal(tick(h, "2026-03-01T12:00:00Z"), ENG_APPLIED);
    assert_int_equal(nnew(h), 0);
    /* Feb consumed 20 + 880 (late) */
    assert_int_equal(tick(h, "2026-03-02T00:00:00Z"), ENG_APPLIED);
    assert_int_equal(nnew(h), 1);
    CLOSED(h, 0, NULL, "2026-02", "900.000000", "100.000000", "0.000000", "100.000000", "0.000000",
           "0.000000");
    /* a late adjust acts in the open month */
    assert_int_equal(EV(h, "a1", "org_credit.adjust", "2026-02-20T00:00:00Z",
                        "{'org':'o','delta':'50'}"),
                     ENG_APPLIED);
    LEDGER(h, 0, "staff_grant", NULL, "org", "50.000000", "50.000000", "50.000000", "2026-03", 1);
}

/* Late set / adjust / delete / usage act in the open month and are marked late. */
static void test_late_events(void **state) {
    struct h *h = *state;
    org_1000(h, "o");
    assert_int_equal(EV(h, "pa", "project_credit.set", "2026-01-06T00:00:00Z",
                        "{'org':'o','project':'pA','value':'100'}"),
                     ENG_APPLIED);
    assert_int_equal(tick(h, "2026-02-01T00:00:00Z"), ENG_APPLIED);
    assert_int_equal(nnew(h), 2);
    assert_int_equal(EV(h, "a1", "org_credit.adjust", "2026-01-20T00:00:00Z",
                        "{'org':'o','delta':'50'}"),
                     ENG_APPLIED);
    assert_int_equal(nnew(h), 1);
    LEDGER(h, 0, "staff_grant", NULL, "org", "50.000000", "1050.000000", "1050.000000", "2026-02", 1);
    assert_int_equal(EV(h, "s2", "org_credit.set", "2026-01-21T00:00:00Z",
                        "{'org':'o','value':'1050','expected_consumption':'10'}"),
                     ENG_APPLIED);
    assert_int_equal(nnew(h), 1);
    TERMS(h, 0, NULL, "1050.000000", "1050.000000", "2026-02", 1,
          ORG_TERMS_FIXED("10.000000", "0", "null", "[]"));
    assert_int_equal(usage(h, "u1", "2026-01-22T00:00:00Z", "o", "pA", "hpc", "30"), ENG_APPLIED);
    LEDGER(h, 0, "compensation", "pA", "project", "-30.000000", "70.000000", "1020.000000", "2026-02", 1);
    assert_int_equal(EV(h, "pd", "project_credit.delete", "2026-01-23T00:00:00Z",
                        "{'org':'o','project':'pA'}"),
                     ENG_APPLIED);
    LEDGER(h, 0, "revoked", "pA", "project", "-70.000000", "0.000000", "1020.000000", "2026-02", 1);
    /* a late end_date not after the open month is rejected */
    assert_int_equal(EV(h, "s3", "org_credit.set", "2026-01-24T00:00:00Z",
                        "{'org':'o','value':'1050','end_date':'2026-02-01'}"),
                     ENG_REJECTED);
    REJECTED_ONLY(h, "invalid_event", "data.end_date");
    assert_int_equal(V(h, "o"), U(1020));
}

/* §6: "re-sending the same set changes nothing" for a linear credit. */
static void test_linear_set_resent(void **state) {
    struct h *h = *state;
    assert_int_equal(EV(h, "s1", "org_credit.set", "2026-01-10T00:00:00Z",
                        "{'org':'o','value':'1200','consumption_logic':'linear','end_date':'2026-07-01'}"),
                     ENG_APPLIED);
    assert_int_equal(org_of(h, "o")->terms.expected, U(200));
    /* identical data, new id, no usage in between: only a terms entry, same expected */
    assert_int_equal(EV(h, "s1b", "org_credit.set", "2026-01-11T00:00:00Z",
                        "{'org':'o','value':'1200','consumption_logic':'linear','end_date':'2026-07-01'}"),
                     ENG_APPLIED);
    assert_int_equal(nnew(h), 1);
    assert_string_equal(dget(NEW(h, 0), "entry"), "terms");
    assert_int_equal(org_of(h, "o")->terms.expected, U(200));
    assert_int_equal(usage(h, "u1", "2026-01-15T00:00:00Z", "o", "p", "hpc", "300"), ENG_APPLIED);
    assert_int_equal(V(h, "o"), U(900));
    /* the same set restating the balance mid-month: (900 + 300) / 6 = 200 */
    assert_int_equal(EV(h, "s2", "org_credit.set", "2026-01-20T00:00:00Z",
                        "{'org':'o','value':'900','consumption_logic':'linear','end_date':'2026-07-01'}"),
                     ENG_APPLIED);
    assert_int_equal(nnew(h), 1);
    TERMS(h, 0, NULL, "900.000000", "900.000000", "2026-01", 0,
          "{'consumption_logic':'linear','expected_consumption':'200.000000','grace_coefficient':0,"
          "'apply_as_minimal_consumption':true,'end_date':'2026-07-01','reserve_allocations':true,"
          "'offerings':[]}");
    assert_int_equal(org_of(h, "o")->terms.expected, U(200));
    assert_int_equal(tick(h, "2026-02-01T00:00:00Z"), ENG_APPLIED);
    assert_int_equal(nnew(h), 1);
    CLOSED(h, 0, NULL, "2026-01", "300.000000", "200.000000", "0.000000", "180.000000",
           "900.000000", "900.000000");
    assert_int_equal(usage(h, "u2", "2026-02-05T00:00:00Z", "o", "p", "hpc", "100"), ENG_APPLIED);
    assert_int_equal(EV(h, "s3", "org_credit.set", "2026-02-06T00:00:00Z",
                        "{'org':'o','value':'800','consumption_logic':'linear','end_date':'2026-07-01'}"),
                     ENG_APPLIED);
    assert_int_equal(nnew(h), 1);
    assert_string_equal(dget(NEW(h, 0), "entry"), "terms");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_object_get(NEW(h, 0), "data"), "terms"),
                            "expected_consumption")),
                        "180.000000");
    /* a real change of value does change it: (1000 + 100) / 5 = 220 */
    assert_int_equal(EV(h, "s4", "org_credit.set", "2026-02-07T00:00:00Z",
                        "{'org':'o','value':'1000','consumption_logic':'linear','end_date':'2026-07-01'}"),
                     ENG_APPLIED);
    assert_int_equal(nnew(h), 2);
    LEDGER(h, 0, "staff_grant", NULL, "org", "200.000000", "1000.000000", "1000.000000", "2026-02", 0);
    assert_int_equal(org_of(h, "o")->terms.expected, U(220));
}

/* Choice 8: value change entry before terms; no value change -> only terms. */
static void test_set_entries(void **state) {
    struct h *h = *state;
    assert_int_equal(EV(h, "s1", "org_credit.set", "2026-01-05T00:00:00Z",
                        "{'org':'o','value':'1000','offerings':['hpc','cloud']}"),
                     ENG_APPLIED);
    TERMS(h, 1, NULL, "1000.000000", "1000.000000", "2026-01", 0,
          ORG_TERMS_FIXED("0.000000", "0", "null", "['hpc','cloud']"));
    assert_int_equal(EV(h, "s2", "org_credit.set", "2026-01-06T00:00:00Z",
                        "{'org':'o','value':'1000','expected_consumption':'50','grace_coefficient':10,"
                        "'apply_as_minimal_consumption':false,'reserve_allocations':false}"),
                     ENG_APPLIED);
    assert_int_equal(nnew(h), 1);
    TERMS(h, 0, NULL, "1000.000000", "1000.000000", "2026-01", 0,
          "{'consumption_logic':'fixed','expected_consumption':'50.000000','grace_coefficient':10,"
          "'apply_as_minimal_consumption':false,'end_date':null,'reserve_allocations':false,"
          "'offerings':[]}");
    assert_int_equal(EV(h, "s3", "org_credit.set", "2026-01-07T00:00:00Z",
                        "{'org':'o','value':'1200'}"),
                     ENG_APPLIED);
    assert_int_equal(nnew(h), 2);
    LEDGER(h, 0, "staff_grant", NULL, "org", "200.000000", "1200.000000", "1200.000000", "2026-01", 0);
    TERMS(h, 1, NULL, "1200.000000", "1200.000000", "2026-01", 0,
          ORG_TERMS_FIXED("0.000000", "0", "null", "[]"));
    assert_int_equal(EV(h, "s4", "org_credit.set", "2026-01-08T00:00:00Z",
                        "{'org':'o','value':'900'}"),
                     ENG_APPLIED);
    assert_int_equal(nnew(h), 2);
    LEDGER(h, 0, "staff_grant", NULL, "org", "-300.000000", "900.000000", "900.000000", "2026-01", 0);
    assert_int_equal(EV(h, "p1", "project_credit.set", "2026-01-09T00:00:00Z",
                        "{'org':'o','project':'pA','value':'100'}"),
                     ENG_APPLIED);
    assert_int_equal(EV(h, "p2", "project_credit.set", "2026-01-09T00:00:01Z",
                        "{'org':'o','project':'pA','value':'100','use_org_credit':true}"),
                     ENG_APPLIED);
    assert_int_equal(nnew(h), 1);
    TERMS(h, 0, "pA", "100.000000", "900.000000", "2026-01", 0,
          "{'consumption_logic':'fixed','expected_consumption':'0.000000','grace_coefficient':0,"
          "'apply_as_minimal_consumption':true,'end_date':null,'use_org_credit':true,"
          "'mark_unused_as_spent_on_termination':false}");
    assert_int_equal(EV(h, "p3", "project_credit.set", "2026-01-09T00:00:02Z",
                        "{'org':'o','project':'pA','value':'50','end_date':'2026-03-01',"
                        "'consumption_logic':'linear'}"),
                     ENG_APPLIED);
    assert_int_equal(nnew(h), 2);
    LEDGER(h, 0, "allocation", "pA", "project", "-50.000000", "50.000000", "900.000000", "2026-01", 0);
    /* linear project: 50 / 2 months = 25 */
    TERMS(h, 1, "pA", "50.000000", "900.000000", "2026-01", 0,
          "{'consumption_logic':'linear','expected_consumption':'25.000000','grace_coefficient':0,"
          "'apply_as_minimal_consumption':true,'end_date':'2026-03-01','use_org_credit':false,"
          "'mark_unused_as_spent_on_termination':false}");
    assert_int_equal(V(h, "o"), U(900));
    assert_int_equal(P(h, "o", "pA"), U(50));
    /* the linear project closes: Jan minimum 25 off P only, expected(Feb) = 25 / 1 */
    assert_int_equal(tick(h, "2026-02-01T00:00:00Z"), ENG_APPLIED);
    assert_int_equal(nnew(h), 3);
    LEDGER(h, 0, "minimal_draw", "pA", "project", "-25.000000", "25.000000", "900.000000", "2026-01", 0);
    CLOSED(h, 1, "pA", "2026-01", "0.000000", "25.000000", "25.000000", "25.000000", "25.000000",
           "900.000000");
    CLOSED(h, 2, NULL, "2026-01", "0.000000", "0.000000", "0.000000", "0.000000", "900.000000",
           "900.000000");
    /* Feb is its last month: full expected; then it expires (nothing left: no entry) */
    assert_int_equal(tick(h, "2026-03-01T00:00:00Z"), ENG_APPLIED);
    assert_int_equal(nnew(h), 3);
    LEDGER(h, 0, "minimal_draw", "pA", "project", "-25.000000", "0.000000", "900.000000", "2026-02", 0);
    CLOSED(h, 1, "pA", "2026-02", "0.000000", "25.000000", "25.000000", "0.000000", "0.000000",
           "900.000000");
    assert_int_equal(V(h, "o"), U(900));
}

/* ---- balances (§4, §5) ----------------------------------------------------- */

static void test_reserve_allocations_false(void **state) {
    struct h *h = *state;
    assert_int_equal(EV(h, "s1", "org_credit.set", "2026-01-05T00:00:00Z",
                        "{'org':'o','value':'1000','reserve_allocations':false}"),
                     ENG_APPLIED);
    assert_int_equal(EV(h, "p1", "project_credit.set", "2026-01-05T00:00:01Z",
                        "{'org':'o','project':'pA','value':'600'}"),
                     ENG_APPLIED);
    /* free credit is the whole V */
    assert_int_equal(usage(h, "u1", "2026-01-06T00:00:00Z", "o", "pX", "hpc", "800"), ENG_APPLIED);
    assert_int_equal(nnew(h), 1);
    LEDGER(h, 0, "compensation", "pX", "org", "-800.000000", "200.000000", "200.000000", "2026-01", 0);
    assert_int_equal(V(h, "o"), U(200));
    assert_int_equal(P(h, "o", "pA"), U(600));
    /* pA's spending is capped by V: project_credit_exhausted */
    assert_int_equal(usage(h, "u2", "2026-01-07T00:00:00Z", "o", "pA", "hpc", "300"), ENG_APPLIED);
    assert_int_equal(nnew(h), 2);
    LEDGER(h, 0, "compensation", "pA", "project", "-200.000000", "400.000000", "0.000000", "2026-01", 0);
    OVER(h, 1, "pA", "project_credit_exhausted", "300.000000", "200.000000", "100.000000",
         "2026-01", "2026-01", 0);
    assert_int_equal(V(h, "o"), 0);
    assert_int_equal(P(h, "o", "pA"), U(400));
    /* the same with reserved allocations (default): free is V - sum(P) */
    assert_int_equal(EV(h, "s2", "org_credit.set", "2026-01-05T00:00:00Z",
                        "{'org':'r','value':'1000'}"),
                     ENG_APPLIED);
    assert_int_equal(EV(h, "p2", "project_credit.set", "2026-01-05T00:00:01Z",
                        "{'org':'r','project':'pA','value':'600'}"),
                     ENG_APPLIED);
    assert_int_equal(usage(h, "u3", "2026-01-06T00:00:00Z", "r", "pX", "hpc", "800"), ENG_APPLIED);
    assert_int_equal(nnew(h), 2);
    LEDGER(h, 0, "compensation", "pX", "org", "-400.000000", "600.000000", "600.000000", "2026-01", 0);
    OVER(h, 1, "pX", "org_credit_exhausted", "800.000000", "400.000000", "400.000000", "2026-01",
         "2026-01", 0);
    assert_int_equal(V(h, "r"), U(600));
    assert_int_equal(P(h, "r", "pA"), U(600));
}

/* Shared (unreserved) free credit is V after the project draw: a fallback
 * can never take V below 0. */
static void test_reserve_false_fallback_capped_by_v(void **state) {
    struct h *h = *state;
    assert_int_equal(EV(h, "s1", "org_credit.set", "2026-01-05T00:00:00Z",
                        "{'org':'o','value':'150','reserve_allocations':false}"),
                     ENG_APPLIED);
    assert_int_equal(EV(h, "p1", "project_credit.set", "2026-01-05T00:00:01Z",
                        "{'org':'o','project':'pA','value':'100','use_org_credit':true}"),
                     ENG_APPLIED);
    /* d1 = 100 -> V 50; d2 = min(100, 50) */
    assert_int_equal(usage(h, "u1", "2026-01-06T00:00:00Z", "o", "pA", "hpc", "200"), ENG_APPLIED);
    assert_int_equal(nnew(h), 3);
    LEDGER(h, 0, "compensation", "pA", "project", "-100.000000", "0.000000", "50.000000", "2026-01", 0);
    LEDGER(h, 1, "compensation", "pA", "org", "-50.000000", "0.000000", "0.000000", "2026-01", 0);
    OVER(h, 2, "pA", "org_credit_exhausted", "200.000000", "150.000000", "50.000000", "2026-01",
         "2026-01", 0);
    assert_int_equal(V(h, "o"), 0);
    /* V < P: d1 = V, nothing left to fall back on */
    assert_int_equal(EV(h, "s2", "org_credit.set", "2026-01-05T00:00:00Z",
                        "{'org':'q','value':'1000','reserve_allocations':false}"),
                     ENG_APPLIED);
    assert_int_equal(EV(h, "p2", "project_credit.set", "2026-01-05T00:00:01Z",
                        "{'org':'q','project':'pA','value':'800','use_org_credit':true}"),
                     ENG_APPLIED);
    assert_int_equal(EV(h, "a1", "org_credit.adjust", "2026-01-05T00:00:02Z",
                        "{'org':'q','delta':'-900'}"),
                     ENG_APPLIED);
    assert_int_equal(usage(h, "u2", "2026-01-06T00:00:00Z", "q", "pA", "hpc", "300"), ENG_APPLIED);
    assert_int_equal(nnew(h), 2);
    LEDGER(h, 0, "compensation", "pA", "project", "-100.000000", "700.000000", "0.000000", "2026-01", 0);
    OVER(h, 1, "pA", "org_credit_exhausted", "300.000000", "100.000000", "200.000000", "2026-01",
         "2026-01", 0);
    assert_int_equal(V(h, "q"), 0);
    assert_int_equal(P(h, "q", "pA"), U(700));
}

static void test_use_org_credit_fallback_reasons(void **state) {
    struct h *h = *state;
    org_1000(h, "o");
    assert_int_equal(EV(h, "p1", "project_credit.set", "2026-01-06T00:00:00Z",
                        "{'org':'o','project':'pA','value':'100','use_org_credit':true}"),
                     ENG_APPLIED);
    assert_int_equal(EV(h, "p2", "project_credit.set", "2026-01-06T00:00:01Z",
                        "{'org':'o','project':'pB','value':'100'}"),
                     ENG_APPLIED);
    /* own 100, then 200 from free (1000 - 200 = 800) */
    assert_int_equal(usage(h, "u1", "2026-01-07T00:00:00Z", "o", "pA", "hpc", "300"), ENG_APPLIED);
    assert_int_equal(nnew(h), 2);
    LEDGER(h, 0, "compensation", "pA", "project", "-100.000000", "0.000000", "900.000000", "2026-01", 0);
    LEDGER(h, 1, "compensation", "pA", "org", "-200.000000", "700.000000", "700.000000", "2026-01", 0);
    /* fallback runs dry: free is 700 - 100 (pB) = 600 */
    assert_int_equal(usage(h, "u2", "2026-01-07T00:00:01Z", "o", "pA", "hpc", "900"), ENG_APPLIED);
    assert_int_equal(nnew(h), 2);
    LEDGER(h, 0, "compensation", "pA", "org", "-600.000000", "100.000000", "100.000000", "2026-01", 0);
    OVER(h, 1, "pA", "org_credit_exhausted", "900.000000", "600.000000", "300.000000", "2026-01",
         "2026-01", 0);
    /* no fallback: project_credit_exhausted */
    assert_int_equal(usage(h, "u3", "2026-01-07T00:00:02Z", "o", "pB", "hpc", "150"), ENG_APPLIED);
    assert_int_equal(nnew(h), 2);
    LEDGER(h, 0, "compensation", "pB", "project", "-100.000000", "0.000000", "0.000000", "2026-01", 0);
    OVER(h, 1, "pB", "project_credit_exhausted", "150.000000", "100.000000", "50.000000", "2026-01",
         "2026-01", 0);
    assert_int_equal(V(h, "o"), 0);
    /* V is the cap, no fallback: project_credit_exhausted */
    org_1000(h, "q");
    assert_int_equal(EV(h, "p3", "project_credit.set", "2026-01-06T00:00:00Z",
                        "{'org':'q','project':'pA','value':'800'}"),
                     ENG_APPLIED);
    assert_int_equal(EV(h, "a1", "org_credit.adjust", "2026-01-06T00:00:01Z",
                        "{'org':'q','delta':'-900'}"),
                     ENG_APPLIED);
    assert_int_equal(usage(h, "u4", "2026-01-07T00:00:00Z", "q", "pA", "hpc", "300"), ENG_APPLIED);
    assert_int_equal(nnew(h), 2);
    LEDGER(h, 0, "compensation", "pA", "project", "-100.000000", "700.000000", "0.000000", "2026-01", 0);
    OVER(h, 1, "pA", "project_credit_exhausted", "300.000000", "100.000000", "200.000000", "2026-01",
         "2026-01", 0);
    /* V is the cap, with a fallback that has nothing (reserved): org_credit_exhausted */
    org_1000(h, "r");
    assert_int_equal(EV(h, "p4", "project_credit.set", "2026-01-06T00:00:00Z",
                        "{'org':'r','project':'pA','value':'800','use_org_credit':true}"),
                     ENG_APPLIED);
    assert_int_equal(EV(h, "a2", "org_credit.adjust", "2026-01-06T00:00:01Z",
                        "{'org':'r','delta':'-900'}"),
                     ENG_APPLIED);
    assert_int_equal(usage(h, "u5", "2026-01-07T00:00:00Z", "r", "pA", "hpc", "300"), ENG_APPLIED);
    assert_int_equal(nnew(h), 2);
    LEDGER(h, 0, "compensation", "pA", "project", "-100.000000", "700.000000", "0.000000", "2026-01", 0);
    OVER(h, 1, "pA", "org_credit_exhausted", "300.000000", "100.000000", "200.000000", "2026-01",
         "2026-01", 0);
    assert_int_equal(V(h, "r"), 0);
    assert_int_equal(P(h, "r", "pA"), U(700));
}

/* A project's own end_date: no draws from it at/after the date; expiry at the
 * close; its last month has the full expected as minimum. */
static void test_project_end_date(void **state) {
    struct h *h = *state;
    h_reset(h, 86400);
    org_1000(h, "o");
    assert_int_equal(EV(h, "p1", "project_credit.set", "2026-01-06T00:00:00Z",
                        "{'org':'o','project':'pA','value':'200','end_date':'2026-02-01',"
                        "'expected_consumption':'100','grace_coefficient':50}"),
                     ENG_APPLIED);
    assert_int_equal(EV(h, "p2", "project_credit.set", "2026-01-06T00:00:01Z",
                        "{'org':'o','project':'pB','value':'100','end_date':'2026-02-01',"
                        "'use_org_credit':true}"),
                     ENG_APPLIED);
    assert_int_equal(usage(h, "u1", "2026-01-10T00:00:00Z", "o", "pA", "hpc", "50"), ENG_APPLIED);
    LEDGER(h, 0, "compensation", "pA", "project", "-50.000000", "150.000000", "950.000000", "2026-01", 0);
    /* Feb 1: Jan not closed yet (close_after), but pA has ended */
    assert_int_equal(usage(h, "u2", "2026-02-01T10:00:00Z", "o", "pA", "hpc", "30"), ENG_APPLIED);
    assert_int_equal(nnew(h), 1);
    OVER(h, 0, "pA", "project_credit_exhausted", "30.000000", "0.000000", "30.000000", "2026-02",
         "2026-02", 0);
    assert_int_equal(P(h, "o", "pA"), U(150));
    assert_int_equal(V(h, "o"), U(950));
    /* pB has ended too; its fallback draws from free (950 - 250 = 700) */
    assert_int_equal(usage(h, "u3", "2026-02-01T11:00:00Z", "o", "pB", "hpc", "40"), ENG_APPLIED);
    assert_int_equal(nnew(h), 1);
    LEDGER(h, 0, "compensation", "pB", "org", "-40.000000", "910.000000", "910.000000", "2026-02", 0);
    assert_int_equal(P(h, "o", "pB"), U(100));
    /* Jan closes: pA's last month -> full expected 100 (not 50): draw 50 off P only;
     * then both projects expire */
    assert_int_equal(tick(h, "2026-02-02T00:00:00Z"), ENG_APPLIED);
    assert_int_equal(nnew(h), 6);
    LEDGER(h, 0, "minimal_draw", "pA", "project", "-50.000000", "100.000000", "910.000000", "2026-01", 0);
    LEDGER(h, 1, "expiry", "pA", "project", "-100.000000", "0.000000", "910.000000", "2026-01", 0);
    LEDGER(h, 2, "expiry", "pB", "project", "-100.000000", "0.000000", "910.000000", "2026-01", 0);
    CLOSED(h, 3, "pA", "2026-01", "50.000000", "100.000000", "50.000000", "0.000000", "0.000000",
           "910.000000");
    CLOSED(h, 4, "pB", "2026-01", "0.000000", "0.000000", "0.000000", "0.000000", "0.000000",
           "910.000000");
    CLOSED(h, 5, NULL, "2026-01", "50.000000", "0.000000", "0.000000", "0.000000", "910.000000",
           "910.000000");
    assert_int_equal(V(h, "o"), U(910));
    assert_true(proj_of(h, "o", "pA")->has_credit);
    assert_int_equal(P(h, "o", "pA"), 0);
}

/* Project minimums are taken off P only: the value becomes free again. */
static void test_project_minimums(void **state) {
    struct h *h = *state;
    h_reset(h, 86400);
    org_1000(h, "o");
    assert_int_equal(EV(h, "p1", "project_credit.set", "2026-01-06T00:00:00Z",
                        "{'org':'o','project':'pA','value':'300','expected_consumption':'100'}"),
                     ENG_APPLIED);
    assert_int_equal(EV(h, "p2", "project_credit.set", "2026-01-06T00:00:01Z",
                        "{'org':'o','project':'pB','value':'100','expected_consumption':'100'}"),
                     ENG_APPLIED);
    assert_int_equal(usage(h, "u1", "2026-01-10T00:00:00Z", "o", "pA", "hpc", "40"), ENG_APPLIED);
    /* counts for February (close_after): pB has 10 left */
    assert_int_equal(usage(h, "u2", "2026-02-01T10:00:00Z", "o", "pB", "hpc", "90"), ENG_APPLIED);
    assert_int_equal(P(h, "o", "pA"), U(260));
    assert_int_equal(P(h, "o", "pB"), U(10));
    assert_int_equal(V(h, "o"), U(870));
    assert_int_equal(tick(h, "2026-02-02T00:00:00Z"), ENG_APPLIED);
    assert_int_equal(nnew(h), 5);
    /* pA: 100 - 40 = 60; pB: 100 - 0 capped by P = 10; V unchanged */
    LEDGER(h, 0, "minimal_draw", "pA", "project", "-60.000000", "200.000000", "870.000000", "2026-01", 0);
    LEDGER(h, 1, "minimal_draw", "pB", "project", "-10.000000", "0.000000", "870.000000", "2026-01", 0);
    CLOSED(h, 2, "pA", "2026-01", "40.000000", "100.000000", "60.000000", "100.000000", "200.000000",
           "870.000000");
    CLOSED(h, 3, "pB", "2026-01", "0.000000", "100.000000", "10.000000", "100.000000", "0.000000",
           "870.000000");
    CLOSED(h, 4, NULL, "2026-01", "40.000000", "0.000000", "0.000000", "0.000000", "870.000000",
           "870.000000");
    assert_int_equal(V(h, "o"), U(870));
    assert_int_equal(P(h, "o", "pA"), U(200));
    assert_int_equal(P(h, "o", "pB"), 0);
    /* free is now 870 - 200 = 670 */
    assert_int_equal(usage(h, "u3", "2026-02-03T00:00:00Z", "o", "pX", "hpc", "700"), ENG_APPLIED);
    assert_int_equal(nnew(h), 2);
    LEDGER(h, 0, "compensation", "pX", "org", "-670.000000", "200.000000", "200.000000", "2026-02", 0);
    OVER(h, 1, "pX", "org_credit_exhausted", "700.000000", "670.000000", "30.000000", "2026-02",
         "2026-02", 0);
}

static void test_org_expiry_zeroes_projects(void **state) {
    struct h *h = *state;
    assert_int_equal(EV(h, "s1", "org_credit.set", "2026-01-05T00:00:00Z",
                        "{'org':'o','value':'1000','end_date':'2026-03-01'}"),
                     ENG_APPLIED);
    assert_int_equal(EV(h, "p1", "project_credit.set", "2026-01-06T00:00:00Z",
                        "{'org':'o','project':'pA','value':'300'}"),
                     ENG_APPLIED);
    assert_int_equal(EV(h, "p2", "project_credit.set", "2026-01-06T00:00:01Z",
                        "{'org':'o','project':'pB','value':'100','expected_consumption':'100',"
                        "'consumption_logic':'fixed'}"),
                     ENG_APPLIED);
    assert_int_equal(usage(h, "u1", "2026-01-10T00:00:00Z", "o", "pB", "hpc", "100"), ENG_APPLIED);
    assert_int_equal(tick(h, "2026-02-01T00:00:00Z"), ENG_APPLIED);
    assert_int_equal(nnew(h), 3);
    CLOSED(h, 0, "pA", "2026-01", "0.000000", "0.000000", "0.000000", "0.000000", "300.000000",
           "900.000000");
    CLOSED(h, 1, "pB", "2026-01", "100.000000", "100.000000", "0.000000", "100.000000", "0.000000",
           "900.000000");
    CLOSED(h, 2, NULL, "2026-01", "100.000000", "0.000000", "0.000000", "0.000000", "900.000000",
           "900.000000");
    assert_int_equal(tick(h, "2026-03-01T00:00:00Z"), ENG_APPLIED);
    assert_int_equal(nnew(h), 5);
    /* pB: minimum 100, nothing left to draw; org expires, zeroing pA (pB is at 0) */
    LEDGER(h, 0, "expiry", "pA", "project", "-300.000000", "0.000000", "900.000000", "2026-02", 0);
    LEDGER(h, 1, "expiry", NULL, "org", "-900.000000", "0.000000", "0.000000", "2026-02", 0);
    CLOSED(h, 2, "pA", "2026-02", "0.000000", "0.000000", "0.000000", "0.000000", "0.000000",
           "0.000000");
    CLOSED(h, 3, "pB", "2026-02", "0.000000", "100.000000", "0.000000", "0.000000", "0.000000",
           "0.000000");
    CLOSED(h, 4, NULL, "2026-02", "0.000000", "0.000000", "0.000000", "0.000000", "0.000000",
           "0.000000");
    assert_int_equal(V(h, "o"), 0);
    assert_int_equal(P(h, "o", "pA"), 0);
    assert_int_equal(proj_of(h, "o", "pB")->terms.expected, 0);
    assert_int_equal(usage(h, "u2", "2026-03-02T00:00:00Z", "o", "pA", "hpc", "10"), ENG_APPLIED);
    assert_int_equal(nnew(h), 1);
    OVER(h, 0, "pA", "credit_expired", "10.000000", "0.000000", "10.000000", "2026-03", "2026-03", 0);
}

static void test_delete_and_terminate(void **state) {
    struct h *h = *state;
    org_1000(h, "o");
    assert_int_equal(EV(h, "p1", "project_credit.set", "2026-01-06T00:00:00Z",
                        "{'org':'o','project':'pa','value':'200'}"),
                     ENG_APPLIED);
    assert_int_equal(EV(h, "p2", "project_credit.set", "2026-01-06T00:00:01Z",
                        "{'org':'o','project':'pB','value':'100','mark_unused_as_spent_on_termination':true}"),
                     ENG_APPLIED);
    assert_int_equal(EV(h, "p3", "project_credit.set", "2026-01-06T00:00:02Z",
                        "{'org':'o','project':'pc','value':'300','mark_unused_as_spent_on_termination':true}"),
                     ENG_APPLIED);
    /* terminate with mark_unused: spent_on_termination, V -= P */
    assert_int_equal(EV(h, "t1", "project.terminate", "2026-01-07T00:00:00Z",
                        "{'org':'o','project':'pc'}"),
                     ENG_APPLIED);
    assert_int_equal(nnew(h), 1);
    LEDGER(h, 0, "spent_on_termination", "pc", "project", "-300.000000", "0.000000", "700.000000",
           "2026-01", 0);
    assert_int_equal(V(h, "o"), U(700));
    assert_false(has_project_credit(h, "o", "pc"));
    /* terminating a project without credit: accepted, nothing */
    assert_int_equal(EV(h, "t2", "project.terminate", "2026-01-07T00:00:01Z",
                        "{'org':'o','project':'pZ'}"),
                     ENG_APPLIED);
    assert_int_equal(nnew(h), 0);
    assert_int_equal(EV(h, "t3", "project.terminate", "2026-01-07T00:00:02Z",
                        "{'org':'o','project':'pc'}"),
                     ENG_APPLIED);
    assert_int_equal(nnew(h), 0);
    /* delete: revoked, V unchanged */
    assert_int_equal(EV(h, "d1", "project_credit.delete", "2026-01-07T00:00:03Z",
                        "{'org':'o','project':'pa'}"),
                     ENG_APPLIED);
    assert_int_equal(nnew(h), 1);
    LEDGER(h, 0, "revoked", "pa", "project", "-200.000000", "0.000000", "700.000000", "2026-01", 0);
    assert_int_equal(V(h, "o"), U(700));
    assert_int_equal(EV(h, "d2", "project_credit.delete", "2026-01-07T00:00:04Z",
                        "{'org':'o','project':'pa'}"),
                     ENG_REJECTED);
    REJECTED_ONLY(h, "no_project_credit", "data.project");
    /* usage of a deleted project draws from free credit */
    assert_int_equal(usage(h, "u1", "2026-01-07T00:00:05Z", "o", "pa", "hpc", "10"), ENG_APPLIED);
    LEDGER(h, 0, "compensation", "pa", "org", "-10.000000", "690.000000", "690.000000", "2026-01", 0);
    /* terminate without mark_unused: revoked */
    assert_int_equal(EV(h, "p4", "project_credit.set", "2026-01-07T00:00:06Z",
                        "{'org':'o','project':'pa','value':'200'}"),
                     ENG_APPLIED);
    LEDGER(h, 0, "allocation", "pa", "project", "200.000000", "200.000000", "690.000000", "2026-01", 0);
    assert_int_equal(EV(h, "t4", "project.terminate", "2026-01-07T00:00:07Z",
                        "{'org':'o','project':'pa'}"),
                     ENG_APPLIED);
    assert_int_equal(nnew(h), 1);
    LEDGER(h, 0, "revoked", "pa", "project", "-200.000000", "0.000000", "690.000000", "2026-01", 0);
    assert_int_equal(V(h, "o"), U(690));
    /* org delete: projects (ascending byte order) then the org */
    assert_int_equal(EV(h, "p5", "project_credit.set", "2026-01-07T00:00:08Z",
                        "{'org':'o','project':'pa','value':'150'}"),
                     ENG_APPLIED);
    assert_int_equal(EV(h, "od", "org_credit.delete", "2026-01-08T00:00:00Z", "{'org':'o'}"),
                     ENG_APPLIED);
    assert_int_equal(nnew(h), 3);
    LEDGER(h, 0, "revoked", "pB", "project", "-100.000000", "0.000000", "690.000000", "2026-01", 0);
    LEDGER(h, 1, "revoked", "pa", "project", "-150.000000", "0.000000", "690.000000", "2026-01", 0);
    LEDGER(h, 2, "revoked", NULL, "org", "-690.000000", "0.000000", "0.000000", "2026-01", 0);
    assert_false(org_of(h, "o")->has_credit);
    assert_false(has_project_credit(h, "o", "pa"));
    assert_false(has_project_credit(h, "o", "pB"));
    assert_int_equal(usage(h, "u2", "2026-01-09T00:00:00Z", "o", "pa", "hpc", "10"), ENG_APPLIED);
    OVER(h, 0, "pa", "no_credit", "10.000000", "0.000000", "10.000000", "2026-01", "2026-01", 0);
    assert_int_equal(EV(h, "od2", "org_credit.delete", "2026-01-09T00:00:01Z", "{'org':'o'}"),
                     ENG_REJECTED);
    REJECTED_ONLY(h, "no_org_credit", "data.org");
    /* terminate with P > V: delta -P, V reduced by min(P, V) */
    org_1000(h, "q");
    assert_int_equal(EV(h, "q1", "project_credit.set", "2026-01-06T00:00:00Z",
                        "{'org':'q','project':'pA','value':'800','mark_unused_as_spent_on_termination':true}"),
                     ENG_APPLIED);
    assert_int_equal(EV(h, "q2", "org_credit.adjust", "2026-01-06T00:00:01Z",
                        "{'org':'q','delta':'-900'}"),
                     ENG_APPLIED);
    assert_int_equal(EV(h, "q3", "project.terminate", "2026-01-07T00:00:00Z",
                        "{'org':'q','project':'pA'}"),
                     ENG_APPLIED);
    assert_int_equal(nnew(h), 1);
    LEDGER(h, 0, "spent_on_termination", "pA", "project", "-800.000000", "0.000000", "0.000000",
           "2026-01", 0);
    assert_int_equal(V(h, "q"), 0);
}

/* Closes visit orgs and projects in ascending byte order; month_closed only
 * for credits that exist (choice 6); the open month survives a delete. */
static void test_close_order_and_existing_credits(void **state) {
    struct h *h = *state;
    org_1000(h, "b");
    org_1000(h, "a");
    org_1000(h, "d");
    assert_int_equal(EV(h, "p1", "project_credit.set", "2026-01-06T00:00:00Z",
                        "{'org':'b','project':'pa','value':'10'}"),
                     ENG_APPLIED);
    assert_int_equal(EV(h, "p2", "project_credit.set", "2026-01-06T00:00:01Z",
                        "{'org':'b','project':'pB','value':'20'}"),
                     ENG_APPLIED);
    assert_int_equal(EV(h, "p3", "project_credit.set", "2026-01-06T00:00:02Z",
                        "{'org':'b','project':'pc','value':'30'}"),
                     ENG_APPLIED);
    assert_int_equal(EV(h, "p4", "project_credit.delete", "2026-01-06T00:00:03Z",
                        "{'org':'b','project':'pc'}"),
                     ENG_APPLIED);
    assert_int_equal(EV(h, "dd", "org_credit.delete", "2026-01-06T00:00:04Z", "{'org':'d'}"),
                     ENG_APPLIED);
    /* c never had a credit */
    assert_int_equal(usage(h, "u1", "2026-01-07T00:00:00Z", "c", "p", "hpc", "5"), ENG_APPLIED);
    OVER(h, 0, "p", "no_credit", "5.000000", "0.000000", "5.000000", "2026-01", "2026-01", 0);
    assert_int_equal(tick(h, "2026-02-01T00:00:00Z"), ENG_APPLIED);
    assert_int_equal(nnew(h), 4);
    CLOSED(h, 0, NULL, "2026-01", "0.000000", "0.000000", "0.000000", "0.000000", "1000.000000",
           "1000.000000");
    assert_string_equal(dget(NEW(h, 0), "org"), "a");
    CLOSED(h, 1, "pB", "2026-01", "0.000000", "0.000000", "0.000000", "0.000000", "20.000000",
           "1000.000000");
    CLOSED(h, 2, "pa", "2026-01", "0.000000", "0.000000", "0.000000", "0.000000", "10.000000",
           "1000.000000");
    CLOSED(h, 3, NULL, "2026-01", "0.000000", "0.000000", "0.000000", "0.000000", "1000.000000",
           "1000.000000");
    for (size_t k = 1; k < 4; k++) assert_string_equal(dget(NEW(h, k), "org"), "b");
    assert_int_equal(org_of(h, "d")->open_month, MON("2026-02"));
    assert_int_equal(org_of(h, "c")->open_month, ENG_NO_MONTH);
    /* a set after the delete keeps d's open month */
    assert_int_equal(EV(h, "ds", "org_credit.set", "2026-02-03T00:00:00Z",
                        "{'org':'d','value':'5'}"),
                     ENG_APPLIED);
    LEDGER(h, 0, "staff_grant", NULL, "org", "5.000000", "5.000000", "5.000000", "2026-02", 0);
    assert_int_equal(org_of(h, "d")->open_month, MON("2026-02"));
}

/* Choice 3: a new org's watermark starts at its partition's clock; a first set
 * dated behind it closes its months right after it is applied (§6). */
static void test_new_org_starts_at_partition_clock(void **state) {
    struct h *h = *state;
    assert_int_equal(tick(h, "2026-03-01T00:00:00Z"), ENG_APPLIED);
    assert_int_equal(nnew(h), 0);
    assert_int_equal(EV(h, "s1", "org_credit.set", "2026-01-10T00:00:00Z",
                        "{'org':'o','value':'1000','expected_consumption':'100'}"),
                     ENG_APPLIED);
    assert_int_equal(nnew(h), 6);
    LEDGER(h, 0, "staff_grant", NULL, "org", "1000.000000", "1000.000000", "1000.000000", "2026-01", 0);
    TERMS(h, 1, NULL, "1000.000000", "1000.000000", "2026-01", 0,
          ORG_TERMS_FIXED("100.000000", "0", "null", "[]"));
    LEDGER(h, 2, "minimal_draw", NULL, "org", "-100.000000", "900.000000", "900.000000", "2026-01", 0);
    CLOSED(h, 3, NULL, "2026-01", "0.000000", "100.000000", "100.000000", "100.000000",
           "900.000000", "900.000000");
    LEDGER(h, 4, "minimal_draw", NULL, "org", "-100.000000", "800.000000", "800.000000", "2026-02", 0);
    CLOSED(h, 5, NULL, "2026-02", "0.000000", "100.000000", "100.000000", "100.000000",
           "800.000000", "800.000000");
    int64_t ns;
    assert_int_equal(time_parse_rfc3339("2026-03-01T00:00:00Z", &ns), 0);
    assert_int_equal(org_of(h, "o")->watermark, ns);
    assert_int_equal(org_of(h, "o")->open_month, MON("2026-03"));
    assert_int_equal(V(h, "o"), U(800));
}

/* Choice 1: an org is pinned when its first event passes the format checks. */
static void test_partition_pinning(void **state) {
    struct h *h = *state;
    assert_int_equal(evx(h, "t", 1, "test", "u0", "usage", "2026-01-05T00:00:00Z",
                         "{'org':'o9','project':'p','resource':'r','offering':'hpc','component':'cpu',"
                         "'amount':1.0}"),
                     ENG_REJECTED);
    REJECTED_ONLY(h, "invalid_event", "data.amount");
    assert_null(memstore_org(&h->ms, "o9"));
    assert_int_equal(evx(h, "t", 2, "test", "s1", "org_credit.set", "2026-01-05T00:00:01Z",
                         "{'org':'o9','value':'1000'}"),
                     ENG_APPLIED);
    assert_int_equal(org_of(h, "o9")->partition, 2);
    assert_int_equal(evx(h, "t", 1, "test", "u1", "usage", "2026-01-06T00:00:00Z",
                         "{'org':'o9','project':'p','resource':'r','offering':'hpc','component':'cpu',"
                         "'amount':'1'}"),
                     ENG_REJECTED);
    REJECTED_ONLY(h, "wrong_partition", "data.org");
    assert_string_equal(sget(NEW(h, 0), "id"), "rejected/1/3");
    /* a state-rule reject pins */
    assert_int_equal(evx(h, "t", 3, "test", "a1", "org_credit.adjust", "2026-01-06T00:00:00Z",
                         "{'org':'o8','delta':'1'}"),
                     ENG_REJECTED);
    REJECTED_ONLY(h, "no_org_credit", "data.org");
    assert_int_equal(org_of(h, "o8")->partition, 3);
    assert_int_equal(evx(h, "t", 4, "test", "s2", "org_credit.set", "2026-01-06T00:00:01Z",
                         "{'org':'o8','value':'1000'}"),
                     ENG_REJECTED);
    REJECTED_ONLY(h, "wrong_partition", "data.org");
    assert_int_equal(evx(h, "t", 3, "test", "s2", "org_credit.set", "2026-01-06T00:00:01Z",
                         "{'org':'o8','value':'1000'}"),
                     ENG_APPLIED);
    assert_int_equal(V(h, "o8"), U(1000));
}

/* Choice 11 and UTC months: output time is the event's string verbatim. */
static void test_time_verbatim_and_utc_months(void **state) {
    struct h *h = *state;
    assert_int_equal(EV(h, "s1", "org_credit.set", "2026-01-05T11:00:00+01:00",
                        "{'org':'o','value':'1000','expected_consumption':'100'}"),
                     ENG_APPLIED);
    assert_string_equal(sget(NEW(h, 0), "time"), "2026-01-05T11:00:00+01:00");
    assert_string_equal(sget(NEW(h, 1), "time"), "2026-01-05T11:00:00+01:00");
    /* 2026-01-31T23:30Z: still January, no close */
    assert_int_equal(usage(h, "u1", "2026-02-01T00:30:00+01:00", "o", "p", "hpc", "10"), ENG_APPLIED);
    assert_int_equal(nnew(h), 1);
    LEDGER(h, 0, "compensation", "p", "org", "-10.000000", "990.000000", "990.000000", "2026-01", 0);
    assert_string_equal(sget(NEW(h, 0), "time"), "2026-02-01T00:30:00+01:00");
    /* 2026-02-01T00:30Z: February, January closes */
    assert_int_equal(usage(h, "u2", "2026-01-31T23:30:00-01:00", "o", "p", "hpc", "10"), ENG_APPLIED);
    assert_int_equal(nnew(h), 3);
    LEDGER(h, 0, "minimal_draw", NULL, "org", "-90.000000", "900.000000", "900.000000", "2026-01", 0);
    CLOSED(h, 1, NULL, "2026-01", "10.000000", "100.000000", "90.000000", "100.000000", "900.000000",
           "900.000000");
    LEDGER(h, 2, "compensation", "p", "org", "-10.000000", "890.000000", "890.000000", "2026-02", 0);
    assert_string_equal(sget(NEW(h, 2), "time"), "2026-01-31T23:30:00-01:00");
    assert_int_equal(usage(h, "u3", "2026-02-02T10:00:00.123456789Z", "o", "p", "hpc", "10"), ENG_APPLIED);
    assert_string_equal(sget(NEW(h, 0), "time"), "2026-02-02T10:00:00.123456789Z");
}

/* A format reject does not move the watermark; a state-rule reject comes
 * after the closes its time triggered (§6, §7). */
static void test_watermark_and_rejects(void **state) {
    struct h *h = *state;
    assert_int_equal(EV(h, "s1", "org_credit.set", "2026-01-05T00:00:00Z",
                        "{'org':'o','value':'1000','expected_consumption':'100'}"),
                     ENG_APPLIED);
    assert_int_equal(EV(h, "u1", "usage", "2026-02-03T00:00:00Z",
                        "{'org':'o','project':'p','resource':'r','offering':'hpc','component':'cpu',"
                        "'amount':1.0}"),
                     ENG_REJECTED);
    REJECTED_ONLY(h, "invalid_event", "data.amount");
    assert_int_equal(org_of(h, "o")->open_month, MON("2026-01"));
    assert_int_equal(V(h, "o"), U(1000));
    assert_int_equal(EV(h, "d1", "project_credit.delete", "2026-02-04T00:00:00Z",
                        "{'org':'o','project':'pZ'}"),
                     ENG_REJECTED);
    assert_int_equal(nnew(h), 3);
    LEDGER(h, 0, "minimal_draw", NULL, "org", "-100.000000", "900.000000", "900.000000", "2026-01", 0);
    CLOSED(h, 1, NULL, "2026-01", "0.000000", "100.000000", "100.000000", "100.000000",
           "900.000000", "900.000000");
    REJ(h, 2, "no_project_credit", "data.project");
    assert_string_equal(sget(NEW(h, 2), "time"), "2026-02-04T00:00:00Z");
    assert_int_equal(org_of(h, "o")->open_month, MON("2026-02"));
    assert_int_equal(V(h, "o"), U(900));
}

/* Choice 14: an overflow rejects the event; the closes its time triggered stay. */
static void test_overflow_keeps_closes(void **state) {
    struct h *h = *state;
    assert_int_equal(EV(h, "s1", "org_credit.set", "2026-01-05T00:00:00Z",
                        "{'org':'o','value':'9223372036854','expected_consumption':'100'}"),
                     ENG_APPLIED);
    assert_int_equal(EV(h, "a1", "org_credit.adjust", "2026-02-03T00:00:00Z",
                        "{'org':'o','delta':'1000'}"),
                     ENG_REJECTED);
    assert_int_equal(h->res.reason, ENG_R_OVERFLOW);
    assert_int_equal(nnew(h), 3);
    LEDGER(h, 0, "minimal_draw", NULL, "org", "-100.000000", "9223372036754.000000",
           "9223372036754.000000", "2026-01", 0);
    CLOSED(h, 1, NULL, "2026-01", "0.000000", "100.000000", "100.000000", "100.000000",
           "9223372036754.000000", "9223372036754.000000");
    REJ(h, 2, "overflow", "data.delta");
    assert_int_equal(V(h, "o"), U(9223372036754));
    assert_int_equal(org_of(h, "o")->open_month, MON("2026-02"));
    assert_int_equal(EV(h, "u1", "usage", "2026-03-02T00:00:00Z",
                        "{'org':'o','project':'p','resource':'r','offering':'hpc','component':'cpu',"
                        "'quantity':'9223372036','unit_price':'9223372036'}"),
                     ENG_REJECTED);
    assert_int_equal(nnew(h), 3);
    LEDGER(h, 0, "minimal_draw", NULL, "org", "-100.000000", "9223372036654.000000",
           "9223372036654.000000", "2026-02", 0);
    REJ(h, 2, "overflow", "data.quantity");
    assert_int_equal(V(h, "o"), U(9223372036654));
}

/* Choice 13: credit.rejected data, including truncation of a large raw. */
static void test_rejected_output_fields(void **state) {
    struct h *h = *state;
    size_t pad = 70000;
    const char *head = "{\"specversion\":\"1.0\",\"id\":\"big\",\"source\":\"test\",\"type\":\"usage\","
                       "\"time\":\"2026-01-06T00:00:00Z\",\"pad\":\"";
    const char *tail = "\",\"data\":{\"org\":\"o\",\"project\":\"p\",\"resource\":\"r\","
                       "\"offering\":\"hpc\",\"component\":\"cpu\",\"amount\":1.5}}";
    size_t n = strlen(head) + pad + strlen(tail);
    char *m = malloc(n + 1);
    assert_non_null(m);
    strcpy(m, head);
    memset(m + strlen(head), 'x', pad);
    strcpy(m + strlen(head) + pad, tail);
    assert_int_equal(feed_t(h, "t", 7, m), ENG_REJECTED);
    REJECTED_ONLY(h, "invalid_event", "data.amount");
    json_t *o = NEW(h, 0), *d = json_object_get(o, "data");
    assert_string_equal(sget(o, "id"), "rejected/7/1");
    assert_true(json_is_true(json_object_get(d, "raw_truncated")));
    assert_string_equal(dget(o, "raw_encoding"), "utf-8");
    const char *raw = dget(o, "raw");
    assert_int_equal(strlen(raw), 64 * 1024);
    assert_memory_equal(raw, m, 64 * 1024);
    assert_string_equal(dget(o, "event_id"), "big");
    assert_string_equal(dget(o, "event_source"), "test");
    assert_string_equal(dget(o, "topic"), "t");
    assert_int_equal(json_integer_value(json_object_get(d, "partition")), 7);
    assert_int_equal(json_integer_value(json_object_get(d, "offset")), 1);
    assert_string_equal(sget(o, "type"), "credit.rejected");
    assert_string_equal(sget(o, "source"), "creditd");
    assert_string_equal(sget(o, "time"), "2026-01-06T00:00:00Z");
    /* every documented key is there */
    const char *keys[] = {"reason", "message", "raw", "raw_encoding", "raw_truncated",
                          "event_source", "event_id", "topic", "partition", "offset"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (!json_object_get(d, keys[i])) fail_msg("credit.rejected data has no %s", keys[i]);
    free(m);
}

/* ---- determinism (§7) ------------------------------------------------------ */

static void feed_examples(struct h *h) {
    const char *files[] = {"tests/scenarios/ex_A.jsonl", "tests/scenarios/ex_B.jsonl",
                           "tests/scenarios/ex_C.jsonl", "tests/scenarios/ex_D.jsonl",
                           "tests/scenarios/ex_E.jsonl"};
    for (size_t f = 0; f < 5; f++) {
        size_t n;
        char **L = read_lines(files[f], &n);
        for (size_t i = 0; i < n; i++) feed(h, L[i]);
        free_lines(L, n);
    }
    feed(h, "{not json");
    usage(h, "late-1", "2026-01-02T00:00:00Z", "o1", "p9", "hpc", "1.5");
    tick(h, "2026-09-01T00:00:00Z");
}

static void test_determinism(void **state) {
    (void)state;
    struct h a, b;
    h_open(&a, 0);
    h_open(&b, 0);
    feed_examples(&a);
    feed_examples(&b);
    assert_true(a.ms.nout > 40);
    assert_int_equal(a.ms.nout, b.ms.nout);
    for (size_t i = 0; i < a.ms.nout; i++) {
        assert_int_equal(a.ms.out[i].kind, b.ms.out[i].kind);
        assert_true(streq(a.ms.out[i].key, b.ms.out[i].key));
        assert_string_equal(a.ms.out[i].json, b.ms.out[i].json);
    }
    const char *orgs[] = {"o1", "o2", "o3", "o4", "o5"};
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(V(&a, orgs[i]), V(&b, orgs[i]));
        assert_int_equal(org_of(&a, orgs[i])->seq[ENG_OUT_LEDGER], org_of(&b, orgs[i])->seq[ENG_OUT_LEDGER]);
    }
    /* the examples' final balances, in one stream */
    assert_int_equal(V(&a, "o3"), 0);
    assert_int_equal(V(&a, "o5"), U(900));
    check_seqs(&a);
    h_close(&a);
    h_close(&b);
}

/* ---- store failure --------------------------------------------------------- */

static void prep_store_case(struct h *h) {
    assert_int_equal(EV(h, "s1", "org_credit.set", "2026-01-05T00:00:00Z",
                        "{'org':'o','value':'1000','expected_consumption':'100'}"),
                     ENG_APPLIED);
    assert_int_equal(EV(h, "p1", "project_credit.set", "2026-01-06T00:00:00Z",
                        "{'org':'o','project':'pA','value':'100','expected_consumption':'50'}"),
                     ENG_APPLIED);
    assert_int_equal(usage(h, "u1", "2026-01-07T00:00:00Z", "o", "pA", "hpc", "10"), ENG_APPLIED);
}

/* Fail the n-th store call for n = 0, 1, ... until the message goes through:
 * every failure returns ENG_ESTORE with a message, and none is swallowed. */
static void store_failure_case(const char *msg, int with_prep) {
    long first_ok = -1;
    for (long n = 0; n < 1000 && first_ok < 0; n++) {
        struct h x;
        h_open(&x, 0);
        if (with_prep) prep_store_case(&x);
        x.ms.fail_after = n;
        int rc = feed_raw(&x, NULL, 0, msg, strlen(msg));
        if (rc == 0) {
            /* no failure was injected (and so none was ignored) */
            assert_true(x.ms.fail_after >= 0);
            first_ok = n;
        } else {
            assert_int_equal(rc, ENG_ESTORE);
            assert_true(rc < 0);
            assert_int_equal(x.ms.fail_after, -1);
            assert_non_null(strstr(x.err, "injected"));
        }
        h_close(&x);
    }
    assert_true(first_ok >= 1);
}

static void test_store_failure(void **state) {
    (void)state;
    /* a usage that closes January (minimal draws of pA and o) then draws */
    store_failure_case("{\"specversion\":\"1.0\",\"id\":\"u2\",\"source\":\"test\",\"type\":\"usage\","
                       "\"time\":\"2026-02-03T00:00:00Z\",\"data\":{\"org\":\"o\",\"project\":\"pA\","
                       "\"resource\":\"r\",\"offering\":\"hpc\",\"component\":\"cpu\",\"amount\":\"500\"}}",
                       1);
    /* a tick that closes the org's month */
    store_failure_case("{\"specversion\":\"1.0\",\"id\":\"tk\",\"source\":\"clock\",\"type\":\"clock.tick\","
                       "\"time\":\"2026-03-01T00:00:00Z\"}",
                       1);
    /* a first set, a state-rule reject, a pre-key reject */
    store_failure_case("{\"specversion\":\"1.0\",\"id\":\"s\",\"source\":\"test\",\"type\":\"org_credit.set\","
                       "\"time\":\"2026-01-05T00:00:00Z\",\"data\":{\"org\":\"n\",\"value\":\"1\"}}",
                       0);
    store_failure_case("{\"specversion\":\"1.0\",\"id\":\"a\",\"source\":\"test\",\"type\":\"org_credit.adjust\","
                       "\"time\":\"2026-01-05T00:00:00Z\",\"data\":{\"org\":\"o\",\"delta\":\"-5000\"}}",
                       1);
    struct h x;
    h_open(&x, 0);
    x.ms.fail_after = 0;
    assert_int_equal(feed_raw(&x, NULL, 0, "{oops", 5), ENG_ESTORE);
    assert_non_null(strstr(x.err, "injected"));
    h_close(&x);
}

/* engine_apply_prepared (issue 11: the hash, time and fields read on a
 * parsing thread) compares the hash it is given: the right one is a
 * duplicate, a wrong one an id_conflict; engine_hash is what the engine
 * computes itself. */
static void test_hash_given(void **state) {
    struct h *h = *state;
    size_t n;
    char **L = read_lines("tests/scenarios/ex_E.jsonl", &n);
    assert_int_equal(n, 4);
    assert_int_equal(feed(h, L[0]), ENG_APPLIED);
    assert_int_equal(feed(h, L[1]), ENG_APPLIED);
    json_error_t jerr;
    json_t *same = engine_parse(L[2], strlen(L[2]), &jerr), *other = engine_parse(L[3], strlen(L[3]), &jerr);
    struct engine_pre ps, po;
    uint64_t wrong;
    engine_prepare(same, &ps);
    engine_prepare(other, &po);
    assert_true(ps.hashed && po.hashed && ps.decoded && ps.timed);
    assert_true(ps.hash != po.hash);
    assert_int_equal(engine_hash(NULL, &wrong), -1);
    struct engine_msg m = {L[2], strlen(L[2]), NULL, 0, 3};
    assert_int_equal(engine_apply_prepared(h->e, &h->ops, &m, same, &jerr, &ps, &h->res, h->err, sizeof(h->err)), 0);
    assert_int_equal(h->res.outcome, ENG_DUPLICATE);
    struct engine_pre bad = ps;
    bad.hash = ps.hash + 1;
    assert_int_equal(engine_apply_prepared(h->e, &h->ops, &m, same, &jerr, &bad, &h->res, h->err, sizeof(h->err)), 0);
    assert_int_equal(h->res.outcome, ENG_REJECTED);
    assert_int_equal(h->res.reason, ENG_R_ID_CONFLICT);
    struct engine_msg m3 = {L[3], strlen(L[3]), NULL, 0, 4};
    bad = po;
    bad.hash = ps.hash;
    assert_int_equal(engine_apply_prepared(h->e, &h->ops, &m3, other, &jerr, &bad, &h->res, h->err, sizeof(h->err)), 0);
    assert_int_equal(h->res.outcome, ENG_DUPLICATE);   /* the given hash, not the tree's */
    assert_int_equal(engine_apply_prepared(h->e, &h->ops, &m3, other, &jerr, NULL, &h->res, h->err, sizeof(h->err)), 0);
    assert_int_equal(h->res.reason, ENG_R_ID_CONFLICT);
    json_decref(same);
    json_decref(other);
    free_lines(L, n);
}

/* The prepared path is the same function: every line of the scenario and
 * hostile-input files, applied by one engine from the tree alone
 * (engine_apply) and by another from engine_prepare's reading, with the
 * guards and retention on, gives the same result, error and outputs, in
 * the same order.  And the reading is used: a prepared time that differs
 * from the tree's moves the key's time (seen as a too_late reject). */
static void test_prepared_same(void **state) {
    (void)state;
    static const char *files[] = {"tests/scenarios/ex_A.jsonl", "tests/scenarios/ex_B.jsonl",
        "tests/scenarios/ex_C.jsonl", "tests/scenarios/ex_D.jsonl", "tests/scenarios/ex_E.jsonl",
        "tests/scenarios/ex_F.jsonl", "tests/scenarios/ex_G.jsonl", "tests/scenarios/ex_H.jsonl",
        "tests/scenarios/bad_input.jsonl", "tests/scenarios/hostile.jsonl",
        "tests/fuzz/corpus/limits.jsonl", "tests/fuzz/corpus/partitions.jsonl",
        "tests/fuzz/corpus/timeline.jsonl", "tests/fuzz/corpus/voids.jsonl",
        "tests/fuzz/regress/json_number_range-int.jsonl",
        "tests/fuzz/regress/json_number_range-real.jsonl", "tests/fuzz/regress/key_add_bound.jsonl",
        "tests/fuzz/regress/output_utf8.jsonl"};
    struct engine_config cfg = {.close_after_s = 3600, .currency = "EUR",
                                .max_future_s = 31 * 86400, .retention_days = 35};
    size_t total = 0, decoded = 0;
    for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
        struct h a, b;
        h_open_cfg(&a, &cfg);
        h_open_cfg(&b, &cfg);
        size_t n;
        char **L = read_lines(files[f], &n);
        for (size_t i = 0; i < n; i++) {
            struct engine_msg m = {L[i], strlen(L[i]), NULL, 0, (int64_t)i + 1};
            int ra = engine_apply(a.e, &a.ops, &m, &a.res, a.err, sizeof(a.err));
            json_error_t jerr;
            json_t *root = engine_parse(L[i], strlen(L[i]), &jerr);
            struct engine_pre pre;
            engine_prepare(root, &pre);
            decoded += pre.decoded;
            int rb = engine_apply_prepared(b.e, &b.ops, &m, root, &jerr, &pre, &b.res, b.err,
                                           sizeof(b.err));
            json_decref(root);
            if (ra != rb || memcmp(&a.res, &b.res, sizeof(a.res)) != 0 || (ra && strcmp(a.err, b.err)))
                fail_msg("%s line %zu: results differ (%d/%d, %s / %s)", files[f], i + 1, ra, rb,
                         a.err, b.err);
        }
        total += n;
        assert_int_equal(a.ms.nout, b.ms.nout);
        assert_int_equal(a.ms.nalerts, b.ms.nalerts);
        for (size_t k = 0; k < a.ms.nout; k++) {
            assert_int_equal(a.ms.out[k].kind, b.ms.out[k].kind);
            assert_string_equal(a.ms.out[k].key ? a.ms.out[k].key : "(none)",
                                b.ms.out[k].key ? b.ms.out[k].key : "(none)");
            assert_string_equal(a.ms.out[k].json, b.ms.out[k].json);
        }
        for (size_t k = 0; k < a.ms.nalerts; k++) assert_string_equal(a.ms.alerts[k].json, b.ms.alerts[k].json);
        free_lines(L, n);
        h_close(&a);
        h_close(&b);
    }
    assert_true(total > 120);
    assert_true(decoded > 60);   /* the prepared fields were the ones applied */

    /* A prepared reading is what the engine uses (not the tree again). */
    struct h c;
    h_open_cfg(&c, &cfg);
    size_t n;
    char **L = read_lines("tests/scenarios/ex_E.jsonl", &n);
    assert_int_equal(feed(&c, L[0]), ENG_APPLIED);
    json_error_t jerr;
    json_t *root = engine_parse(L[1], strlen(L[1]), &jerr);
    struct engine_pre pre;
    engine_prepare(root, &pre);
    pre.time_ns -= INT64_C(400) * 86400 * 1000000000;  /* 400 days earlier: past retention */
    struct engine_msg m = {L[1], strlen(L[1]), NULL, 0, 2};
    assert_int_equal(engine_apply_prepared(c.e, &c.ops, &m, root, &jerr, &pre, &c.res, c.err,
                                           sizeof(c.err)), 0);
    assert_int_equal(c.res.outcome, ENG_REJECTED);
    assert_int_equal(c.res.reason, ENG_R_TOO_LATE);
    json_decref(root);
    free_lines(L, n);
    h_close(&c);
}

/* ---- main ------------------------------------------------------------------ */

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(test_example_A),
        T(test_example_B),
        T(test_example_C),
        T(test_example_D),
        T(test_example_E),
        T(test_hash_given),
        T(test_prepared_same),
        T(test_reject_invalid_json),
        T(test_reject_invalid_event),
        T(test_reject_unknown_type),
        T(test_reject_id_conflict),
        T(test_reject_wrong_partition),
        T(test_reject_overflow),
        T(test_reject_no_org_credit),
        T(test_reject_no_project_credit),
        T(test_reject_allocation_exceeds),
        T(test_reject_value_changed),
        T(test_reject_insufficient_credit),
        T(test_money_json_forms),
        T(test_money_quantity_rounding),
        T(test_money_minimum_and_linear_rounding),
        T(test_idem_duplicate_and_canonical_content),
        T(test_idem_tick_keys_per_partition),
        T(test_idem_rejected_resent_is_duplicate),
        T(test_close_after),
        T(test_late_events),
        T(test_linear_set_resent),
        T(test_set_entries),
        T(test_reserve_allocations_false),
        T(test_reserve_false_fallback_capped_by_v),
        T(test_use_org_credit_fallback_reasons),
        T(test_project_end_date),
        T(test_project_minimums),
        T(test_org_expiry_zeroes_projects),
        T(test_delete_and_terminate),
        T(test_close_order_and_existing_credits),
        T(test_new_org_starts_at_partition_clock),
        T(test_partition_pinning),
        T(test_time_verbatim_and_utc_months),
        T(test_watermark_and_rejects),
        T(test_overflow_keeps_closes),
        T(test_rejected_output_fields),
        T(test_determinism),
        T(test_store_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
