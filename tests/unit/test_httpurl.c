/* test_httpurl.c -- unit tests of consumer/httpurl.c: routing, percent-
 * decoding of organisation ids, the query of GET /v1/orgs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "consumer/httpurl.h"

static char err[256];

static enum httpurl_route route_of(const char *path) {
    struct httpurl u;
    err[0] = 0;
    assert_int_equal(httpurl_path(&u, path, err, sizeof err), 0);
    return u.route;
}

static void expect_400(const char *path, const char *want) {
    struct httpurl u;
    err[0] = 0;
    if (httpurl_path(&u, path, err, sizeof err) != 400) fail_msg("%s: not a 400", path);
    if (strcmp(err, want) != 0) fail_msg("%s: got \"%s\" want \"%s\"", path, err, want);
    assert_true(httpurl_utf8(err, strlen(err)));
}

static void test_routes(void **state) {
    (void)state;
    assert_int_equal(route_of("/healthz"), HTTPURL_HEALTHZ);
    assert_int_equal(route_of("/readyz"), HTTPURL_READYZ);
    assert_int_equal(route_of("/metrics"), HTTPURL_METRICS);
    assert_int_equal(route_of("/v1/orgs"), HTTPURL_ORGS);
    assert_int_equal(route_of("/v1/orgs/o1"), HTTPURL_ORG);
    const char *nf[] = {"/", "/healthz/", "//healthz", "/Healthz", "/%68ealthz", "/v1", "/v1/",
                        "/v1/orgs/", "/v1/orgs/a/b", "/v1/orgs/a/", "/v2/orgs/a", "/v1//orgs",
                        "/metrics.txt", "/v1/orgs/a%2Fb/c"};
    for (size_t i = 0; i < sizeof nf / sizeof nf[0]; i++)
        if (route_of(nf[i]) != HTTPURL_NOTFOUND) fail_msg("%s: routed", nf[i]);
}

static void test_malformed_paths(void **state) {
    (void)state;
    expect_400("healthz", "path: must start with '/' (origin form)");
    expect_400("http://h/healthz", "path: must start with '/' (origin form)");
    expect_400("*", "path: must start with '/' (origin form)");
    expect_400("", "path: must start with '/' (origin form)");
    expect_400("/v1/orgs/a b", "path: a space or control byte is not allowed");
    expect_400("/v1/orgs/a\tb", "path: a space or control byte is not allowed");
    expect_400("/v1/orgs/a\x7f", "path: a space or control byte is not allowed");
    expect_400("/v1/orgs/..", "path: \".\" and \"..\" segments are not allowed");
    expect_400("/v1/../healthz", "path: \".\" and \"..\" segments are not allowed");
    expect_400("/./healthz", "path: \".\" and \"..\" segments are not allowed");
    expect_400("/v1/orgs/.", "path: \".\" and \"..\" segments are not allowed");
    expect_400("/v1/orgs/%", "org: '%' not followed by two hex digits");
    expect_400("/v1/orgs/a%2", "org: '%' not followed by two hex digits");
    expect_400("/v1/orgs/a%zz", "org: '%' not followed by two hex digits");
    expect_400("/v1/orgs/a%00b", "org: %00 (a NUL byte) is not allowed");
    expect_400("/v1/orgs/%ff", "org: not UTF-8 once percent-decoded");
    expect_400("/v1/orgs/%c0%af", "org: not UTF-8 once percent-decoded");      /* overlong '/' */
    expect_400("/v1/orgs/%ed%a0%80", "org: not UTF-8 once percent-decoded");   /* a surrogate */
    expect_400("/v1/orgs/%f4%90%80%80", "org: not UTF-8 once percent-decoded"); /* > U+10FFFF */
}

static void test_org_ids(void **state) {
    (void)state;
    struct httpurl u;
    assert_int_equal(httpurl_path(&u, "/v1/orgs/a%2Fb%20c%25d+e", err, sizeof err), 0);
    assert_int_equal(u.route, HTTPURL_ORG);
    assert_string_equal(u.org, "a/b c%d+e");  /* '+' is itself in a path */
    assert_int_equal(httpurl_path(&u, "/v1/orgs/%2e%2e", err, sizeof err), 0);
    assert_string_equal(u.org, "..");          /* data, not a dot segment: looked up */
    assert_int_equal(httpurl_path(&u, "/v1/orgs/%C3%A9t%c3%a9", err, sizeof err), 0);
    assert_string_equal(u.org, "\xc3\xa9t\xc3\xa9");
    assert_int_equal(httpurl_path(&u, "/v1/orgs/\xc3\xa9", err, sizeof err), 0);  /* raw UTF-8 */
    assert_string_equal(u.org, "\xc3\xa9");
    assert_int_equal(httpurl_path(&u, "/v1/orgs/a%0Ab", err, sizeof err), 0);  /* JSON ids may hold one */
    assert_string_equal(u.org, "a\nb");
    char path[1024], want[ENG_ID_MAX + 1];
    memset(want, 'x', ENG_ID_MAX);
    want[ENG_ID_MAX] = 0;
    snprintf(path, sizeof path, "/v1/orgs/%s", want);
    assert_int_equal(httpurl_path(&u, path, err, sizeof err), 0);
    assert_string_equal(u.org, want);
    snprintf(path, sizeof path, "/v1/orgs/%sy", want);
    expect_400(path, "org: longer than 200 bytes (an organisation id is at most 200)");
    /* 200 bytes encoded as 600 characters is fine */
    char *p = path + snprintf(path, sizeof path, "/v1/orgs/");
    for (int i = 0; i < ENG_ID_MAX; i++) p += sprintf(p, "%%%02X", 'x');
    assert_int_equal(httpurl_path(&u, path, err, sizeof err), 0);
    assert_string_equal(u.org, want);
}

static int param(struct httpurl *u, const char *k, const char *v) {
    err[0] = 0;
    int rc = httpurl_param(u, k, v, err, sizeof err);
    assert_true(httpurl_utf8(err, strlen(err)));
    return rc;
}

static void test_query(void **state) {
    (void)state;
    struct httpurl u;
    assert_int_equal(httpurl_path(&u, "/v1/orgs", err, sizeof err), 0);
    assert_int_equal(u.limit, HTTPURL_LIMIT_DEFAULT);
    assert_string_equal(u.after, "");
    assert_int_equal(param(&u, "after", "a%2Bb c"), 0);
    assert_string_equal(u.after, "a+b c");
    assert_int_equal(param(&u, "limit", "1000"), 0);
    assert_int_equal(u.limit, 1000);
    assert_int_equal(param(&u, "", NULL), 0);  /* "&&" */
    assert_int_equal(param(&u, "limit", "5"), 400);
    assert_string_equal(err, "limit: given twice");
    assert_int_equal(param(&u, "after", "x"), 400);
    assert_string_equal(err, "after: given twice");

    const char *bad_limits[] = {"0", "1001", "-1", "", "1e3", "10 ", "99999999999999999999", "0x10"};
    for (size_t i = 0; i < sizeof bad_limits / sizeof bad_limits[0]; i++) {
        assert_int_equal(httpurl_path(&u, "/v1/orgs", err, sizeof err), 0);
        if (param(&u, "limit", bad_limits[i]) != 400) fail_msg("limit=%s accepted", bad_limits[i]);
        assert_string_equal(err, "limit: not an integer from 1 to 1000");
    }
    assert_int_equal(httpurl_path(&u, "/v1/orgs", err, sizeof err), 0);
    assert_int_equal(param(&u, "%6Cimit", "1"), 0);  /* keys are decoded too */
    assert_int_equal(u.limit, 1);
    assert_int_equal(param(&u, "limit", NULL), 400);
    assert_string_equal(err, "limit: given twice");
    assert_int_equal(httpurl_path(&u, "/v1/orgs", err, sizeof err), 0);
    assert_int_equal(param(&u, "limit", NULL), 400);
    assert_string_equal(err, "limit: no value (write limit=...)");
    assert_int_equal(param(&u, "after", "%00"), 400);
    assert_string_equal(err, "after: %00 (a NUL byte) is not allowed");
    assert_int_equal(param(&u, "sort", "x"), 400);
    assert_string_equal(err, "query: unknown parameter (GET /v1/orgs takes after and limit)");
    assert_int_equal(param(&u, "", "x"), 400);

    assert_int_equal(httpurl_path(&u, "/v1/orgs/o1", err, sizeof err), 0);
    assert_int_equal(param(&u, "limit", "5"), 400);
    assert_string_equal(err, "query: unknown parameter (this path takes none)");
    assert_int_equal(httpurl_path(&u, "/metrics", err, sizeof err), 0);
    assert_int_equal(param(&u, "name[]", "%zz"), 0);  /* probes' own parameters are ignored */
}

static void test_decode_and_utf8(void **state) {
    (void)state;
    char out[8];
    size_t n;
    const char *why = NULL;
    assert_int_equal(httpurl_decode("a%41%7e", out, sizeof out, &n, &why), 0);
    assert_string_equal(out, "aA~");
    assert_int_equal(n, 3);
    assert_int_equal(httpurl_decode("1234567", out, sizeof out, &n, &why), 0);
    assert_int_equal(httpurl_decode("12345678", out, sizeof out, &n, &why), -1);
    assert_string_equal(why, "too long");
    assert_int_equal(httpurl_decode("a\x01", out, sizeof out, &n, &why), -1);
    assert_int_equal(httpurl_decode("%4", out, sizeof out, &n, &why), -1);
    assert_true(httpurl_utf8("", 0));
    assert_true(httpurl_utf8("\xf0\x9f\x98\x80", 4));
    assert_false(httpurl_utf8("\xf0\x9f\x98", 3));
    assert_false(httpurl_utf8("\xe0\x80\x80", 3));
    assert_false(httpurl_utf8("\x80", 1));
    assert_false(httpurl_utf8("\xf5\x80\x80\x80", 4));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_malformed_paths),
        cmocka_unit_test(test_org_ids),
        cmocka_unit_test(test_query),
        cmocka_unit_test(test_decode_and_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
