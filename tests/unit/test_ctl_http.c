/* test_ctl_http.c -- unit tests of tools/ctl_http.c: URLs and request
 * targets of creditctl --http, and its errors without a server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tools/ctl_http.h"

static char host[256], target[2048], err[512];
static int port;

static int tgt(const char *url, const char *org) {
    err[0] = 0;
    return ctlhttp_target(url, org, host, sizeof host, &port, target, sizeof target, err, sizeof err);
}

static void test_targets(void **state) {
    (void)state;
    assert_int_equal(tgt("http://127.0.0.1:8080", "o1"), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 8080);
    assert_string_equal(target, "/v1/orgs/o1");
    assert_int_equal(tgt("HTTP://example.org/", "a/b c.%+"), 0);
    assert_string_equal(host, "example.org");
    assert_int_equal(port, 80);
    assert_string_equal(target, "/v1/orgs/a%2Fb%20c%2E%25%2B");
    assert_int_equal(tgt("http://[::1]:9/api/credit//", ".."), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 9);
    assert_string_equal(target, "/api/credit/v1/orgs/%2E%2E");
    assert_int_equal(tgt("http://h", "\xc3\xa9-_~"), 0);
    assert_string_equal(target, "/v1/orgs/%C3%A9-_~");
    const char *bad[] = {"https://h", "h:80", "http://", "http://:80", "http://h:0", "http://h:65536",
                         "http://h:8x", "http://[::1", "http://[::1]x", "http://h/p?q=1", "http://h#f"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (tgt(bad[i], "o") == 0) fail_msg("%s accepted", bad[i]);
    assert_non_null(strstr(err, "--http http://h#f"));
}

/* A port where nothing listens: a connection error naming host and port. */
static void test_refused(void **state) {
    (void)state;
    struct sockaddr_in a = {0};
    socklen_t sl = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &sl), 0);
    close(fd);  /* bound, then closed: nothing listens there now */
    char url[64];
    int has = 7;
    int64_t v;
    snprintf(url, sizeof url, "http://127.0.0.1:%d", ntohs(a.sin_port));
    assert_int_equal(ctlhttp_org_value(url, "o1", 2000, &has, &v, err, sizeof err), -1);
    assert_int_equal(has, 0);
    assert_non_null(strstr(err, "connect to 127.0.0.1 port"));
}

/* A server that accepts and never answers: the timeout bounds the wait. */
static void test_timeout(void **state) {
    (void)state;
    struct sockaddr_in a = {0};
    socklen_t sl = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 4), 0);  /* the kernel accepts; nobody reads */
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &sl), 0);
    char url[64];
    int has;
    int64_t v;
    snprintf(url, sizeof url, "http://127.0.0.1:%d", ntohs(a.sin_port));
    assert_int_equal(ctlhttp_org_value(url, "o1", 300, &has, &v, err, sizeof err), -1);
    assert_non_null(strstr(err, "timed out"));
    close(fd);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_targets),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
