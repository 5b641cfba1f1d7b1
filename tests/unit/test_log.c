/* test_log.c -- unit tests for consumer/log.c: text lines exactly as before,
 * JSON lines that jansson reads back whatever the bytes, bounds, level
 * filtering, and whole lines under concurrent writers. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "config/config.h"
#include "consumer/log.h"

#define T0 INT64_C(1764569282123)   /* 2025-12-01T06:08:02.123Z */

static size_t render(enum log_format f, const struct log_rec *r, char *buf, size_t cap) {
    size_t n = log_render(f, r, buf, cap);
    assert_int_equal(n, strlen(buf));
    assert_true(n < cap);
    return n;
}

/* Parse one rendered JSON line (without its '\n') strictly: valid UTF-8,
 * no duplicate keys, an object. */
static json_t *parse_line(const char *line, size_t n) {
    json_error_t e;
    assert_true(n > 0 && line[n - 1] == '\n');
    assert_null(memchr(line, '\n', n - 1));
    json_t *j = json_loadb(line, n - 1, JSON_REJECT_DUPLICATES, &e);
    if (!j) fail_msg("not JSON (%s): %.200s", e.text, line);
    assert_true(json_is_object(j));
    return j;
}

static const char *jstr(json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    if (!json_is_string(v)) fail_msg("key %s is not a string", k);
    return json_string_value(v);
}

/* ---- text ------------------------------------------------------------- */

static void test_text_is_unchanged(void **state) {
    (void)state;
    char buf[LOG_LINE_MAX];
    struct log_rec r = {T0, LOG_LEVEL_WARN, "creditd", "relay", NULL, 0, "purging: x", 0};
    render(LOG_FORMAT_TEXT, &r, buf, sizeof buf);
    assert_string_equal(buf, "creditd: relay: purging: x\n");
    struct log_field f[] = {LOG_S("error", "e"), LOG_I("partition", 3)};
    r = (struct log_rec){T0, LOG_LEVEL_INFO, "credit-tick", NULL, f, 2, "stats events/s=3", 0};
    render(LOG_FORMAT_TEXT, &r, buf, sizeof buf);
    assert_string_equal(buf, "credit-tick: stats events/s=3\n");   /* fields: JSON only */
    /* The bytes as formatted, as fprintf wrote them. */
    r.message = "a\tb\xff\"\\";
    render(LOG_FORMAT_TEXT, &r, buf, sizeof buf);
    assert_string_equal(buf, "credit-tick: a\tb\xff\"\\\n");
    /* A long message is cut, the line still ends in '\n'. */
    char big[3 * LOG_LINE_MAX];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    r.message = big;
    size_t n = render(LOG_FORMAT_TEXT, &r, buf, sizeof buf);
    assert_int_equal(n, sizeof buf - 1);
    assert_int_equal(buf[n - 1], '\n');
}

/* ---- JSON ------------------------------------------------------------- */

static void test_json_fields(void **state) {
    (void)state;
    char buf[LOG_LINE_MAX];
    struct log_field f[] = {LOG_S("error", "_TRANSPORT"), LOG_I("partition", -7),
                            LOG_S("message", "reserved: skipped"), LOG_I("offset", INT64_MAX)};
    struct log_rec r = {T0, LOG_LEVEL_ERROR, "creditd", "consumer", f, 4, "fatal: x", 0};
    size_t n = render(LOG_FORMAT_JSON, &r, buf, sizeof buf);
    /* Key order and the time's form are part of the format. */
    assert_string_equal(buf, "{\"time\":\"2025-12-01T06:08:02.123Z\",\"level\":\"error\","
                             "\"message\":\"fatal: x\",\"component\":\"consumer\","
                             "\"error\":\"_TRANSPORT\",\"partition\":-7,"
                             "\"offset\":9223372036854775807}\n");
    json_t *j = parse_line(buf, n);
    assert_int_equal(json_integer_value(json_object_get(j, "offset")), INT64_MAX);
    assert_null(json_object_get(j, "truncated"));
    json_decref(j);
    /* No component, every level name, a time before the epoch's millisecond 1000. */
    for (int l = LOG_LEVEL_DEBUG; l <= LOG_LEVEL_ERROR; l++) {
        r = (struct log_rec){5, (enum log_level)l, "p", NULL, NULL, 0, "m", 0};
        n = render(LOG_FORMAT_JSON, &r, buf, sizeof buf);
        j = parse_line(buf, n);
        assert_string_equal(jstr(j, "level"), log_level_name((enum log_level)l));
        assert_string_equal(jstr(j, "time"), "1970-01-01T00:00:00.005Z");
        assert_null(json_object_get(j, "component"));
        assert_int_equal(json_object_size(j), 3);
        json_decref(j);
    }
    /* A message cut before rendering says so. */
    r.cut = 1;
    n = render(LOG_FORMAT_JSON, &r, buf, sizeof buf);
    j = parse_line(buf, n);
    assert_true(json_is_true(json_object_get(j, "truncated")));
    json_decref(j);
}

struct hostile { const char *in, *want; };

static void test_json_hostile_bytes(void **state) {
    (void)state;
    static const struct hostile cases[] = {
        {"\x01\x1f\x7f", "\x01\x1f\x7f"},            /* escaped as \u00XX, read back */
        {"\"\\/\n\r\t\b\f", "\"\\/\n\r\t\b\f"},
        {"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"}, /* é € 😀 */
        {"a\xff" "b", "a\xef\xbf\xbd" "b"},            /* not UTF-8 at all */
        {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},     /* overlong '/' */
        {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},   /* a surrogate */
        {"\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* > U+10FFFF */
        {"\x80x", "\xef\xbf\xbdx"},                   /* stray continuation byte */
        {"\xe2\x82", "\xef\xbf\xbd\xef\xbf\xbd"},     /* cut at the end */
        {"\xe2\x82" "A", "\xef\xbf\xbd\xef\xbf\xbd" "A"},
        {"\xf0\x9f\x98", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
    };
    char buf[LOG_LINE_MAX];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct log_field f[] = {LOG_S("org", cases[i].in)};
        struct log_rec r = {T0, LOG_LEVEL_INFO, "creditd", cases[i].in, f, 1, cases[i].in, 0};
        size_t n = render(LOG_FORMAT_JSON, &r, buf, sizeof buf);
        json_t *j = parse_line(buf, n);
        if (strcmp(jstr(j, "message"), cases[i].want) != 0) fail_msg("case %zu: %s", i, buf);
        assert_string_equal(jstr(j, "component"), cases[i].want);
        assert_string_equal(jstr(j, "org"), cases[i].want);
        json_decref(j);
    }
    /* Every byte value but NUL, in one message: one valid line, and no raw
     * control byte in it. */
    char all[256];
    for (int b = 1; b < 256; b++) all[b - 1] = (char)b;
    all[255] = '\0';
    struct log_rec r = {T0, LOG_LEVEL_INFO, "creditd", NULL, NULL, 0, all, 0};
    size_t n = render(LOG_FORMAT_JSON, &r, buf, sizeof buf);
    for (size_t i = 0; i + 1 < n; i++)
        if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f) fail_msg("raw byte %02x at %zu", buf[i], i);
    json_t *j = parse_line(buf, n);
    const char *m = jstr(j, "message");
    assert_memory_equal(m, all, 127);   /* ASCII, unchanged */
    json_decref(j);
}

/* A line that does not fit is cut at a character, stays one valid object
 * and says "truncated"; fields after the cut are left out. */
static void test_json_bounds(void **state) {
    (void)state;
    static const char *const units[] = {"\"", "\x01", "\xe2\x82\xac", "x"};
    char buf[LOG_LINE_MAX], msg[LOG_MSG_MAX];
    for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
        size_t k = strlen(units[u]), n = 0;
        while (n + k < sizeof msg) { memcpy(msg + n, units[u], k); n += k; }
        msg[n] = '\0';
        struct log_field f[] = {LOG_S("after", "gone?")};
        struct log_rec r = {T0, LOG_LEVEL_INFO, "creditd", "c", f, 1, msg, 0};
        for (size_t cap = LOG_RENDER_MIN; cap <= sizeof buf; cap += cap < 512 ? 1 : 509) {
            size_t len = render(LOG_FORMAT_JSON, &r, buf, cap);
            json_t *j = parse_line(buf, len);
            const char *m = jstr(j, "message");
            int cut = json_is_true(json_object_get(j, "truncated"));
            /* what is there is a prefix of whole units */
            if (strncmp(m, msg, strlen(m)) != 0 || strlen(m) % k) fail_msg("unit %zu cap %zu", u, cap);
            if (!cut && (strcmp(m, msg) != 0 || !json_object_get(j, "after")))
                fail_msg("unit %zu cap %zu: shortened without \"truncated\"", u, cap);
            if (cut && json_object_get(j, "after") && strcmp(m, msg) != 0)
                fail_msg("unit %zu cap %zu: a field after the cut", u, cap);
            json_decref(j);
        }
    }
    /* Too small a buffer: nothing at all rather than a broken line. */
    struct log_rec r = {T0, LOG_LEVEL_INFO, "creditd", NULL, NULL, 0, "m", 0};
    assert_int_equal(log_render(LOG_FORMAT_JSON, &r, buf, LOG_RENDER_MIN - 1), 0);
    assert_string_equal(buf, "");
}

/* ---- the writer -------------------------------------------------------- */

static int tmp_fd(void) {
    char path[] = "/tmp/test_log_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    return fd;
}

/* Everything written to fd so far (malloc'ed, NUL-terminated); truncates it. */
static char *drain(int fd) {
    off_t end = lseek(fd, 0, SEEK_END);
    char *s = malloc((size_t)end + 1);
    assert_non_null(s);
    assert_int_equal(pread(fd, s, (size_t)end, 0), end);
    s[end] = '\0';
    assert_int_equal(ftruncate(fd, 0), 0);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    return s;
}

static void init_ok(const char *prog, const char *format, const char *level, int fd) {
    char err[128] = "";
    struct log_opts o = {prog, format, level, fd};
    if (log_init(&o, err, sizeof err)) fail_msg("%s", err);
}

static void test_levels(void **state) {
    (void)state;
    int fd = tmp_fd();
    init_ok("creditd", "text", "warn", fd);
    assert_false(log_enabled(LOG_LEVEL_INFO));
    assert_true(log_enabled(LOG_LEVEL_WARN));
    log_debug("c", "d");
    log_info("c", "i");
    log_warn("c", "w %d", 1);
    log_error(NULL, "e");
    log_msg(LOG_LEVEL_INFO, NULL, LOG_FIELDS(LOG_I("n", 1)), "i2");
    log_msg_as("kmock", LOG_LEVEL_ERROR, "r", NULL, 0, "x");
    char *s = drain(fd);
    assert_string_equal(s, "creditd: c: w 1\ncreditd: e\nkmock: r: x\n");
    free(s);
    init_ok(NULL, NULL, "debug", fd);   /* defaults: creditd, text */
    log_debug("c", "d");
    s = drain(fd);
    assert_string_equal(s, "creditd: c: d\n");
    free(s);
    init_ok("creditd", NULL, "error", fd);
    log_warn(NULL, "w");
    s = drain(fd);
    assert_string_equal(s, "");
    free(s);
    close(fd);
}

static void test_init_errors(void **state) {
    (void)state;
    char err[128] = "";
    int fd = tmp_fd();
    init_ok("creditd", "json", "info", fd);
    struct log_opts bad[] = {{"creditd", "xml", NULL, fd}, {"creditd", NULL, "verbose", fd},
                             {"", NULL, NULL, fd}, {"creditd", "JSON", NULL, fd}};
    const char *want[] = {"log.format: \"xml\": not text or json",
                          "log.level: \"verbose\": not debug, info, warn or error",
                          "log: the program name must be 1..63 bytes",
                          "log.format: \"JSON\": not text or json"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(log_init(&bad[i], err, sizeof err), -1);
        assert_string_equal(err, want[i]);
    }
    log_info(NULL, "still json");   /* a failed init changed nothing */
    char *s = drain(fd);
    json_t *j = parse_line(s, strlen(s));
    assert_string_equal(jstr(j, "message"), "still json");
    json_decref(j);
    free(s);
    close(fd);
}

static void test_json_writer(void **state) {
    (void)state;
    int fd = tmp_fd();
    init_ok("creditd", "json", "info", fd);
    struct timespec t0, t1;
    clock_gettime(CLOCK_REALTIME, &t0);
    errno = 4242;
    log_msg(LOG_LEVEL_WARN, "relay", LOG_FIELDS(LOG_S("topic", "credit.ledger"), LOG_I("partition", 2)),
            "output %s [%d]: gap", "credit.ledger", 2);
    assert_int_equal(errno, 4242);   /* logging keeps the caller's errno */
    clock_gettime(CLOCK_REALTIME, &t1);
    char *s = drain(fd);
    json_t *j = parse_line(s, strlen(s));
    assert_string_equal(jstr(j, "level"), "warn");
    assert_string_equal(jstr(j, "message"), "output credit.ledger [2]: gap");
    assert_string_equal(jstr(j, "component"), "relay");
    assert_string_equal(jstr(j, "topic"), "credit.ledger");
    assert_int_equal(json_integer_value(json_object_get(j, "partition")), 2);
    /* The time is now, to the millisecond, in UTC. */
    char lo[32], hi[32];
    strftime(lo, sizeof lo, "%Y-%m-%dT%H:%M:%S", gmtime(&t0.tv_sec));
    strftime(hi, sizeof hi, "%Y-%m-%dT%H:%M:%S", gmtime(&t1.tv_sec));
    const char *t = jstr(j, "time");
    assert_int_equal(strlen(t), 24);
    assert_true(strncmp(t, lo, 19) >= 0 && strncmp(t, hi, 19) <= 0);
    assert_true(t[19] == '.' && t[23] == 'Z');
    json_decref(j);
    free(s);
    /* A message beyond LOG_MSG_MAX is cut and marked. */
    char big[2 * LOG_MSG_MAX];
    memset(big, 'y', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    log_info(NULL, "%s", big);
    s = drain(fd);
    j = parse_line(s, strlen(s));
    assert_int_equal(strlen(jstr(j, "message")), LOG_MSG_MAX - 1);
    assert_true(json_is_true(json_object_get(j, "truncated")));
    json_decref(j);
    free(s);
    close(fd);
}

/* config.c validates log.format and log.level with its own list of names:
 * both modules accept the same ones. */
static void test_config_names_agree(void **state) {
    (void)state;
    static const char *const formats[] = {"text", "json", "xml", "Text", ""};
    static const char *const levels[] = {"debug", "info", "warn", "error", "warning", "trace", ""};
    char err[256];
    for (size_t i = 0; i < sizeof formats / sizeof formats[0] + sizeof levels / sizeof levels[0]; i++) {
        int is_fmt = i < sizeof formats / sizeof formats[0];
        const char *v = is_fmt ? formats[i] : levels[i - sizeof formats / sizeof formats[0]];
        struct config c;
        config_init(&c);
        int by_config = config_set(&c, is_fmt ? "log.format" : "log.level", v, "-X", err, sizeof err);
        config_free(&c);
        struct log_opts o = {"creditd", is_fmt ? v : NULL, is_fmt ? NULL : v, 0};
        int by_log = log_init(&o, err, sizeof err);
        if (by_config != by_log) fail_msg("\"%s\": config %d, log_init %d", v, by_config, by_log);
    }
    init_ok("creditd", "text", "info", 2);
}

/* ---- threads ----------------------------------------------------------- */

#define THREADS 4
#define LINES 300
#define MSG_LEN 4060

static void *writer(void *arg) {
    char msg[MSG_LEN + 1];   /* lines above PIPE_BUF: a pipe could interleave them */
    int id = (int)(intptr_t)arg;
    memset(msg, 'a' + id, sizeof msg - 1);
    msg[sizeof msg - 1] = '\0';
    for (int i = 0; i < LINES; i++)
        log_msg(LOG_LEVEL_INFO, NULL, LOG_FIELDS(LOG_I("thread", id), LOG_I("i", i)), "%s", msg);
    return NULL;
}

struct sink { int fd; char *buf; size_t len, cap; };

static void *reader(void *arg) {
    struct sink *k = arg;
    for (;;) {
        if (k->cap - k->len < 65536) {
            k->cap = k->cap * 2 + 65536;
            k->buf = realloc(k->buf, k->cap);
            if (!k->buf) abort();
        }
        ssize_t n = read(k->fd, k->buf + k->len, k->cap - k->len);
        if (n <= 0) return NULL;
        k->len += (size_t)n;
    }
}

static void test_threads_whole_lines(void **state) {
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    struct sink k = {p[0], NULL, 0, 0};
    pthread_t rd, th[THREADS];
    assert_int_equal(pthread_create(&rd, NULL, reader, &k), 0);
    init_ok("creditd", "json", "info", p[1]);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, writer, (void *)(intptr_t)i), 0);
    for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
    init_ok("creditd", "text", "info", 2);
    close(p[1]);
    pthread_join(rd, NULL);
    close(p[0]);
    int seen[THREADS] = {0};
    size_t lines = 0;
    for (size_t at = 0; at < k.len;) {
        char *nl = memchr(k.buf + at, '\n', k.len - at);
        assert_non_null(nl);
        size_t n = (size_t)(nl - (k.buf + at)) + 1;
        json_t *j = parse_line(k.buf + at, n);
        int id = (int)json_integer_value(json_object_get(j, "thread"));
        assert_true(id >= 0 && id < THREADS);
        assert_int_equal(json_integer_value(json_object_get(j, "i")), seen[id]++);   /* in order */
        assert_int_equal(strspn(jstr(j, "message"), (char[]){(char)('a' + id), 0}), MSG_LEN);
        json_decref(j);
        lines++;
        at += n;
    }
    assert_int_equal(lines, THREADS * LINES);
    free(k.buf);
}

/* ---- secrets ---------------------------------------------------------- */

/* Registered secrets never reach a line: message and string fields, text
 * and JSON, whole values, their words and '=' parts (librdkafka's
 * "Unrecognized sasl.oauthbearer.config beginning at: ..."), a PEM line, a
 * short secret, the beginning of one at the end of a cut message. */
static void test_secrets_scrubbed(void **state) {
    (void)state;
    static const char pem[] = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n"
                              "BKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----";
    int fd = tmp_fd();
    init_ok("creditd", "text", "debug", fd);
    assert_int_equal(log_add_secret("hunter2-pw"), 0);
    assert_int_equal(log_add_secret("principal=admin bogus=OAUTHSECRET1"), 0);
    assert_int_equal(log_add_secret(pem), 0);
    assert_int_equal(log_add_secret("q7"), 0);
    assert_int_equal(log_add_secret(""), 0);      /* ignored */
    assert_int_equal(log_add_secret(NULL), 0);
    assert_int_equal(log_add_secret("hunter2-pw"), 0);   /* counted once */
    log_info("relay", "auth with hunter2-pw failed");
    log_msg_as("credit-tick", LOG_LEVEL_ERROR, "producer", NULL, 0,
               "kafka: _AUTHENTICATION: Failed to acquire SASL OAUTHBEARER token: Unrecognized "
               "sasl.oauthbearer.config beginning at: bogus=OAUTHSECRET1");
    log_debug(NULL, "line MIIEvQIBADANBgkqhkiG9w0BAQEFAASC and OAUTHSECRET1.");
    log_warn(NULL, "xq7x");
    char *s = drain(fd);
    assert_string_equal(s, "creditd: relay: auth with ******** failed\n"
                           "credit-tick: producer: kafka: _AUTHENTICATION: Failed to acquire SASL "
                           "OAUTHBEARER token: Unrecognized sasl.oauthbearer.config beginning at: "
                           "********\n"
                           "creditd: line ******** and ********.\n"
                           "creditd: x********x\n");
    free(s);
    /* JSON: the fields too. */
    init_ok("creditd", "json", "info", fd);
    log_msg(LOG_LEVEL_WARN, "consumer", LOG_FIELDS(LOG_S("error", "bad hunter2-pw"), LOG_I("n", 7),
                                                   LOG_S("facility", "CONF")),
            "%s", pem);
    s = drain(fd);
    json_t *j = parse_line(s, strlen(s));
    assert_string_equal(jstr(j, "message"), "********");
    assert_string_equal(jstr(j, "error"), "bad ********");
    assert_string_equal(jstr(j, "facility"), "CONF");
    assert_int_equal(json_integer_value(json_object_get(j, "n")), 7);
    json_decref(j);
    free(s);
    /* A message cut at LOG_MSG_MAX in the middle of a secret: its start is masked. */
    char big[LOG_MSG_MAX + 16];
    memset(big, 'y', LOG_MSG_MAX - 4);
    strcpy(big + LOG_MSG_MAX - 4, "hunter2-pw");
    log_info(NULL, "%s", big);
    s = drain(fd);
    assert_null(strstr(s, "hun"));
    j = parse_line(s, strlen(s));
    /* "hun" became the mask, cut to the bytes left */
    assert_int_equal(strlen(jstr(j, "message")), LOG_MSG_MAX - 1);
    assert_non_null(strstr(jstr(j, "message"), "yyy***"));
    assert_true(json_is_true(json_object_get(j, "truncated")));
    json_decref(j);
    free(s);
    /* log_scrub: in place, for text printed without the writer. */
    char buf[64] = "kafka consumer: token: bogus=OAUTHSECRET1";
    assert_int_equal(log_scrub(buf, sizeof buf), 1);
    assert_string_equal(buf, "kafka consumer: token: ********");
    char small[8] = "hunter2";   /* "hunter2" alone is no secret: a prefix, not cut */
    assert_int_equal(log_scrub(small, sizeof small), 0);
    log_forget_secrets();
    log_info(NULL, "hunter2-pw");
    s = drain(fd);
    assert_non_null(strstr(s, "\"hunter2-pw\""));
    free(s);
    init_ok("creditd", "text", "info", 2);
    close(fd);
}

/* The registry is bounded: beyond LOG_SECRETS_MAX strings, -1. */
static void test_secrets_bounded(void **state) {
    (void)state;
    char v[32];
    log_forget_secrets();
    for (int i = 0; i < LOG_SECRETS_MAX; i++) {
        snprintf(v, sizeof v, "s%d", i);
        assert_int_equal(log_add_secret(v), 0);
    }
    assert_int_equal(log_add_secret("one-more"), -1);
    assert_int_equal(log_add_secret("s7"), 0);   /* already there */
    char buf[32] = "a s7 b s511";
    assert_int_equal(log_scrub(buf, sizeof buf), 1);
    assert_string_equal(buf, "a ******** b ********");
    log_forget_secrets();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_is_unchanged),
        cmocka_unit_test(test_json_fields),
        cmocka_unit_test(test_json_hostile_bytes),
        cmocka_unit_test(test_json_bounds),
        cmocka_unit_test(test_levels),
        cmocka_unit_test(test_init_errors),
        cmocka_unit_test(test_json_writer),
        cmocka_unit_test(test_config_names_agree),
        cmocka_unit_test(test_threads_whole_lines),
        cmocka_unit_test(test_secrets_scrubbed),
        cmocka_unit_test(test_secrets_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
