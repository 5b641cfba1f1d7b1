/* test_robust.c -- hostile but well-formed input (issue 6): every field at
 * exactly its maximum length and one byte over, numbers beyond 64 bits,
 * reject messages that quote long multi-byte input.  Each case runs over
 * the in-memory store and the LMDB store, and every output of every case
 * must be valid UTF-8 that jansson reads back as a JSON object.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/engine.h"
#include "store/store.h"
#include "tests/unit/dualstore.h"

/* ---- harness: one engine over one store, outputs collected ---------------- */

struct rb {
    struct dualstore d;
    char *out[64];             /* outputs of the last message (owned) */
    int kind[64];
    size_t nout;
    int64_t line;
    struct engine_result res;
};

static int hook(void *arg, enum eng_out_kind kind, const char *key, const char *json, size_t len) {
    struct rb *r = arg;
    (void)key;
    if (r->nout == 64) return -1;
    r->kind[r->nout] = kind;
    r->out[r->nout++] = strndup(json, len);
    return 0;
}

static void rb_open(struct rb *r, int lmdb) {
    memset(r, 0, sizeof(*r));
    dualstore_open(&r->d, lmdb, "test_robust", NULL);
    if (lmdb) store_set_emit_hook(r->d.s, hook, r);
}

static void rb_clear(struct rb *r) {
    for (size_t i = 0; i < r->nout; i++) free(r->out[i]);
    r->nout = 0;
}

static void rb_close(struct rb *r) {
    rb_clear(r);
    dualstore_close(&r->d);
}

/* Strict UTF-8 (RFC 3629): no overlongs, surrogates or code points > U+10FFFF. */
static int utf8_ok(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i], need;
        uint32_t cp, min;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) { need = 1; cp = c & 0x1F; min = 0x80; }
        else if (c >= 0xE0 && c <= 0xEF) { need = 2; cp = c & 0x0F; min = 0x800; }
        else if (c >= 0xF0 && c <= 0xF4) { need = 3; cp = c & 0x07; min = 0x10000; }
        else return 0;
        if (i + need >= n) return 0;
        for (unsigned k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += need + 1;
    }
    return 1;
}

/* Apply msg in its own batch; every output must be valid UTF-8 JSON. */
static int feed(struct rb *r, const char *msg) {
    char err[512];
    rb_clear(r);
    size_t mark = r->d.ms.nout;
    dualstore_begin(&r->d);
    struct engine_msg m = {msg, strlen(msg), NULL, 0, ++r->line};
    int rc = engine_apply(r->d.e, &r->d.ops, &m, &r->res, err, sizeof(err));
    if (rc) fail_msg("engine_apply: rc %d (%s) for %.200s", rc, err, msg);
    dualstore_commit(&r->d);
    for (size_t i = mark; !r->d.lmdb && i < r->d.ms.nout; i++) hook(r, r->d.ms.out[i].kind, NULL,
                                                               r->d.ms.out[i].json, strlen(r->d.ms.out[i].json));
    for (size_t i = 0; i < r->nout; i++) {
        if (!utf8_ok((const unsigned char *)r->out[i], strlen(r->out[i])))
            fail_msg("output %zu is not valid UTF-8: %.300s", i, r->out[i]);
        json_error_t je;
        json_t *j = json_loads(r->out[i], JSON_REJECT_DUPLICATES, &je);
        if (!json_is_object(j)) fail_msg("output %zu is not a JSON object (%s): %.300s", i, je.text, r->out[i]);
        json_decref(j);
    }
    return (int)r->res.outcome;
}

/* The data of the only credit.rejected output of the last message (new ref). */
static json_t *rejected(struct rb *r) {
    json_t *got = NULL;
    for (size_t i = 0; i < r->nout; i++) {
        if (r->kind[i] != ENG_OUT_REJECTED) continue;
        if (got) fail_msg("two rejects for one message");
        json_t *j = json_loads(r->out[i], 0, NULL);
        got = json_incref(json_object_get(j, "data"));
        json_decref(j);
    }
    if (!got) fail_msg("no credit.rejected output");
    return got;
}

/* Expect a reject with `reason` whose message starts with `field`. */
static void expect_reject(struct rb *r, const char *msg, const char *reason, const char *field,
                          int event_id_null) {
    if (feed(r, msg) != ENG_REJECTED) fail_msg("not rejected: %.300s", msg);
    json_t *d = rejected(r);
    const char *got = json_string_value(json_object_get(d, "reason"));
    const char *m = json_string_value(json_object_get(d, "message"));
    if (!got || strcmp(got, reason)) fail_msg("reason %s, want %s for %.200s", got, reason, msg);
    if (!m || strncmp(m, field, strlen(field)))
        fail_msg("message \"%s\" does not start with \"%s\"", m, field);
    if (event_id_null) assert_true(json_is_null(json_object_get(d, "event_id")));
    json_decref(d);
}

static char *rep(char c, size_t n) {
    static char b[16][1024]; /* a ring: up to 16 results alive at once */
    static int k;
    char *s = b[k++ & 15];
    assert_true(n < sizeof(b[0]));
    memset(s, c, n);
    s[n] = 0;
    return s;
}

static char *evf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *evf(const char *fmt, ...) {
    static char b[2][8192];
    static int k;
    char *s = b[k++ & 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s, sizeof(b[0]), fmt, ap);
    va_end(ap);
    for (char *p = s; *p; p++)
        if (*p == '\'') *p = '"';
    return s;
}

#define HDR "'specversion':'1.0','time':'2026-01-05T10:00:00Z'"

static int run_both(void (*fn)(struct rb *)) {
    for (int lmdb = 0; lmdb <= 1; lmdb++) {
        struct rb r;
        rb_open(&r, lmdb);
        fn(&r);
        rb_close(&r);
    }
    return 0;
}

/* ---- 1: every field at its maximum length, and one byte over -------------- */

static void max_lengths(struct rb *r) {
    char id[300], src[300], org[300];
    strcpy(id, rep('i', 256));
    strcpy(src, rep('s', 256));
    strcpy(org, rep('o', 200));
    char *set = evf("{" HDR ",'id':'%s','source':'%s','type':'org_credit.set',"
                    "'data':{'org':'%s','value':'100','offerings':['%s']}}", id, src, org, rep('f', 200));
    char copy[8192];
    strcpy(copy, set);
    assert_int_equal(feed(r, copy), ENG_APPLIED);
    assert_int_equal(feed(r, copy), ENG_DUPLICATE);
    /* usage: every string field at its maximum */
    char *u = evf("{" HDR ",'id':'%s','source':'%s','type':'usage','data':{'org':'%s',"
                  "'project':'%s','resource':'%s','offering':'%s','component':'%s','plan':'%s',"
                  "'unit':'%s','amount':'1'}}", rep('j', 256), src, org, rep('p', 200),
                  rep('r', 256), rep('f', 200), rep('c', 256), rep('n', 256), rep('u', 256));
    assert_int_equal(feed(r, u), ENG_APPLIED);
    /* a tick with a 256-byte id and source */
    if (feed(r, evf("{" HDR ",'id':'%s','source':'%s','type':'clock.tick'}", rep('t', 256), src)) !=
        ENG_APPLIED)
        fail_msg("tick: %.200s", r->nout ? r->out[0] : "no output");
    /* one byte over: rejected, naming the field */
    expect_reject(r, evf("{" HDR ",'id':'%s','source':'s','type':'usage','data':{'org':'o'}}",
                         rep('i', 257)), "invalid_event", "id:", 1);
    expect_reject(r, evf("{" HDR ",'id':'x','source':'%s','type':'usage','data':{'org':'o'}}",
                         rep('s', 257)), "invalid_event", "source:", 1);
    expect_reject(r, evf("{" HDR ",'id':'x','source':'s','type':'usage','data':{'org':'%s'}}",
                         rep('o', 201)), "invalid_event", "data.org:", 0);
    static const struct { const char *f; size_t max; } fields[] = {
        {"project", 200}, {"resource", 256}, {"offering", 200}, {"component", 256},
        {"plan", 256}, {"unit", 256},
    };
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        char d[1200] = "", name[32];
        for (size_t k = 0; k < sizeof(fields) / sizeof(fields[0]); k++) {
            size_t n = strlen(d);
            snprintf(d + n, sizeof(d) - n, "%s'%s':'%s'", k ? "," : "", fields[k].f,
                     k == i ? rep('x', fields[k].max + 1) : "v");
        }
        snprintf(name, sizeof(name), "data.%s:", fields[i].f);
        expect_reject(r, evf("{" HDR ",'id':'over-%zu','source':'s','type':'usage',"
                             "'data':{'org':'%s',%s,'amount':'1'}}", i, org, d),
                      "invalid_event", name, 0);
    }
    expect_reject(r, evf("{" HDR ",'id':'off','source':'s','type':'org_credit.set',"
                         "'data':{'org':'%s','value':'1','offerings':['%s']}}", org, rep('f', 201)),
                  "invalid_event", "data.offerings[0]:", 0);
}

static void test_max_lengths(void **state) {
    (void)state;
    run_both(max_lengths);
}

/* ---- 3: reject messages stay valid UTF-8 ---------------------------------- */

/* n copies of "é" (2 bytes each): any cut at an odd byte splits a character. */
static char *accents(size_t n) {
    static char b[2048];
    assert_true(2 * n < sizeof(b));
    for (size_t i = 0; i < n; i++) memcpy(b + 2 * i, "\xc3\xa9", 2);
    b[2 * n] = 0;
    return b;
}

static void utf8_messages(struct rb *r) {
    char t1[900] = "x";
    strcat(t1, accents(400));
    /* unknown type, no org: quoted before the idempotency step */
    expect_reject(r, evf("{" HDR ",'id':'a','source':'s','type':'%s'}", t1), "unknown_type", "type:", 0);
    /* unknown type with an org: after the idempotency step */
    expect_reject(r, evf("{" HDR ",'id':'b','source':'s','type':'x%s','data':{'org':'o'}}", accents(20)),
                  "unknown_type", "type:", 0);
    /* id conflict quoting a 256-byte id and source made of 2- and 3-byte characters */
    char id[300], src[300];
    strcpy(id, accents(128));
    for (int i = 0; i < 85; i++) memcpy(src + 3 * i, "\xe2\x82\xac", 3); /* euro signs */
    src[255] = 0;
    assert_int_equal(feed(r, evf("{" HDR ",'id':'%s','source':'%s','type':'org_credit.set',"
                                 "'data':{'org':'o','value':'1'}}", id, src)), ENG_APPLIED);
    expect_reject(r, evf("{" HDR ",'id':'%s','source':'%s','type':'org_credit.set',"
                         "'data':{'org':'o','value':'2'}}", id, src), "id_conflict", "id:", 0);
    /* a time string quoted in the message */
    expect_reject(r, evf("{'specversion':'1.0','time':'%s','id':'c','source':'s','type':'usage',"
                         "'data':{'org':'o'}}", accents(32)), "invalid_event", "time:", 0);
    /* invalid JSON whose jansson error quotes bytes that are not UTF-8 */
    const char bad[] = "{\"id\":\"x\",\"a\":\xff\xfe}";
    expect_reject(r, bad, "invalid_json", "invalid JSON", 1);
}

static void test_utf8_messages(void **state) {
    (void)state;
    run_both(utf8_messages);
}

/* ---- 12: numbers beyond 64 bits are invalid_event naming the field -------- */

static void big_numbers(struct rb *r) {
    assert_int_equal(feed(r, evf("{" HDR ",'id':'s1','source':'s','type':'org_credit.set',"
                                 "'data':{'org':'o','value':'100'}}")), ENG_APPLIED);
    static const char *const nums[] = {"1e400", "-1e400", "123456789012345678901234567890",
                                       "-123456789012345678901234567890", "1E+999"};
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        char *adj = evf("{" HDR ",'id':'adj-%zu','source':'s','type':'org_credit.adjust',"
                        "'data':{'org':'o','delta':%s}}", i, nums[i]);
        char copy[1024];
        strcpy(copy, adj);
        expect_reject(r, copy, "invalid_event", "data.delta: out of range", 0);
        /* remembered like any field error: the same message is a duplicate */
        assert_int_equal(feed(r, copy), ENG_DUPLICATE);
    }
    expect_reject(r, evf("{" HDR ",'id':'u1','source':'s','type':'usage','data':{'org':'o',"
                         "'project':'p','resource':'r','offering':'f','component':'c',"
                         "'quantity':99999999999999999999999,'unit_price':'1'}}"),
                  "invalid_event", "data.quantity: out of range", 0);
    expect_reject(r, evf("{" HDR ",'id':'s2','source':'s','type':'org_credit.set',"
                         "'data':{'org':'o','value':'1','grace_coefficient':1e999}}"),
                  "invalid_event", "data.grace_coefficient:", 0);
    /* in a key attribute: not a string, so not a key */
    expect_reject(r, evf("{" HDR ",'id':1e400,'source':'s','type':'usage','data':{'org':'o'}}"),
                  "invalid_event", "id:", 1);
    expect_reject(r, evf("{" HDR ",'id':'p1','source':'s','type':'usage','data':{'org':'o',"
                         "'project':123456789012345678901234567890}}"),
                  "invalid_event", "data.project: must be a string", 0);
    /* two of them, and one in an ignored attribute: the message is still judged */
    expect_reject(r, evf("{" HDR ",'id':'adj-x','source':'s','type':'org_credit.adjust',"
                         "'x':1e400,'data':{'org':'o','delta':1e401}}"),
                  "invalid_event", "data.delta: out of range", 0);
    /* still invalid JSON: a \u0000 of the sender's own, or a syntax error */
    expect_reject(r, evf("{" HDR ",'id':'n1','source':'s\\u0000','type':'x','d':1e400}"),
                  "invalid_json", "invalid JSON", 1);
    expect_reject(r, evf("{" HDR ",'id':'n2','source':'s','type':'x','d':1e400"),
                  "invalid_json", "invalid JSON", 1);
}

static void test_big_numbers(void **state) {
    (void)state;
    run_both(big_numbers);
}

/* ---- 11: an event loads only what it touches ------------------------------ */

/* alloc_sum is the sum of P over the org's projects with credit. */
static void check_alloc_sum(struct rb *r, const char *org) {
    struct eng_org *o = memstore_org(&r->d.ms, org);
    int64_t sum = 0;
    for (size_t i = 0; i < o->nproj; i++)
        if (o->proj[i].has_credit) sum += o->proj[i].value;
    assert_int_equal(o->alloc_sum, sum);
}

static void test_project_count(void **state) {
    (void)state;
    struct rb r;
    rb_open(&r, 0);
    assert_int_equal(feed(&r, evf("{" HDR ",'id':'s','source':'s','type':'org_credit.set',"
                                  "'data':{'org':'o','value':'1000','expected_consumption':'10'}}")),
                     ENG_APPLIED);
    /* 2,000 zero-value allocations pass the allocation check */
    for (int i = 0; i < 2000; i++)
        assert_int_equal(feed(&r, evf("{" HDR ",'id':'z%d','source':'s','type':'project_credit.set',"
                                      "'data':{'org':'o','project':'z%04d','value':'0'}}", i, i)),
                         ENG_APPLIED);
    assert_int_equal(feed(&r, evf("{" HDR ",'id':'pa','source':'s','type':'project_credit.set',"
                                  "'data':{'org':'o','project':'pa','value':'300'}}")), ENG_APPLIED);
    check_alloc_sum(&r, "o");
    static const char *const uses[] = {"pa", "px"}; /* allocated, and without allocation */
    for (int i = 0; i < 2; i++) {
        r.d.ms.project_gets = r.d.ms.projects_gets = 0;
        assert_int_equal(feed(&r, evf("{" HDR ",'id':'u%d','source':'s','type':'usage','data':{"
                                      "'org':'o','project':'%s','resource':'r','offering':'f',"
                                      "'component':'c','amount':'50'}}", i, uses[i])), ENG_APPLIED);
        assert_int_equal(r.d.ms.project_gets, 1);
        assert_int_equal(r.d.ms.projects_gets, 0);
    }
    /* free credit = V - sum(P) without loading the projects: 900 - 250 = 650 */
    r.d.ms.project_gets = 0;
    assert_int_equal(feed(&r, evf("{" HDR ",'id':'u9','source':'s','type':'usage','data':{"
                                  "'org':'o','project':'py','resource':'r','offering':'f',"
                                  "'component':'c','amount':'700'}}")), ENG_APPLIED);
    size_t last = r.nout - 1; /* the overage (an overage_started alert follows it) */
    while (last > 0 && r.kind[last] != ENG_OUT_OVERAGE) last--;
    json_t *ov = json_loads(r.out[last], 0, NULL);
    assert_string_equal(json_string_value(json_object_get(json_object_get(ov, "data"), "amount")),
                        "50.000000");
    json_decref(ov);
    assert_int_equal(r.d.ms.project_gets, 1);
    /* a project allocation loads that project only */
    r.d.ms.project_gets = r.d.ms.projects_gets = 0;
    assert_int_equal(feed(&r, evf("{" HDR ",'id':'pb','source':'s','type':'project_credit.set',"
                                  "'data':{'org':'o','project':'pb','value':'0'}}")), ENG_APPLIED);
    assert_int_equal(r.d.ms.project_gets, 1);
    assert_int_equal(r.d.ms.projects_gets, 0);
    check_alloc_sum(&r, "o");
    /* a month close visits every project, once */
    r.d.ms.projects_gets = 0;
    assert_int_equal(feed(&r, evf("{'specversion':'1.0','time':'2026-02-01T00:00:00Z','id':'t',"
                                  "'source':'clock','type':'clock.tick'}")), ENG_APPLIED);
    assert_int_equal(r.d.ms.projects_gets, 1);
    check_alloc_sum(&r, "o");
    /* a delete ends every project credit */
    assert_int_equal(feed(&r, evf("{" HDR ",'id':'d','source':'s','type':'org_credit.delete',"
                                  "'data':{'org':'o'}}")), ENG_APPLIED);
    assert_int_equal(memstore_org(&r.d.ms, "o")->alloc_sum, 0);
    check_alloc_sum(&r, "o");
    rb_close(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_max_lengths),
        cmocka_unit_test(test_utf8_messages),
        cmocka_unit_test(test_big_numbers),
        cmocka_unit_test(test_project_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
