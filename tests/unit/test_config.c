/* test_config.c -- unit tests for config/config.c (run from the repo root:
 * one test reads config/creditd.conf.example). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"

#define EXAMPLE "config/creditd.conf.example"

/* Write text to a fresh temporary file; path receives its name. */
static void write_tmp(char path[64], const char *text) {
    strcpy(path, "/tmp/test_config_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* Load text as a file into a fresh config c; returns config_load_file's rc,
 * err holds the message with the temporary path replaced by "F". */
static int load_text(struct config *c, const char *text, char *err, size_t errlen) {
    char path[64], raw[512];
    write_tmp(path, text);
    config_init(c);
    raw[0] = '\0';
    int rc = config_load_file(c, path, raw, sizeof raw);
    unlink(path);
    /* Every occurrence of the path becomes "F". */
    size_t n = strlen(path), o = 0;
    for (const char *r = raw; *r && o + 1 < errlen;) {
        if (strncmp(r, path, n) == 0) {
            err[o++] = 'F';
            r += n;
        } else {
            err[o++] = *r++;
        }
    }
    err[o] = '\0';
    return rc;
}

/* The dump of c as a malloc'ed string. */
static char *dump(const struct config *c) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    config_dump(c, f);
    assert_int_equal(fclose(f), 0);
    return buf;
}

static void expect_set_error(const char *key, const char *value, const char *want) {
    struct config c;
    char err[256] = "";
    config_init(&c);
    if (config_set(&c, key, value, "t.conf:7", err, sizeof err) == 0)
        fail_msg("%s = \"%s\" accepted", key, value);
    if (strcmp(err, want) != 0) fail_msg("%s = \"%s\": got \"%s\" want \"%s\"", key, value, err, want);
    config_free(&c);
}

static void expect_set_ok(struct config *c, const char *key, const char *value) {
    char err[256] = "";
    if (config_set(c, key, value, "t.conf:1", err, sizeof err) != 0)
        fail_msg("%s = \"%s\": %s", key, value, err);
}

static void test_defaults(void **state) {
    (void)state;
    struct config c;
    char err[256] = "";
    config_init(&c);
    assert_string_equal(c.store_path, "./creditd-data");
    assert_int_equal(c.store_map_size, 1073741824);
    assert_string_equal(c.topic_input, "credit.events");
    assert_string_equal(c.topic_overage, "credit.overage");
    assert_string_equal(c.topic_ledger, "credit.ledger");
    assert_string_equal(c.topic_rejected, "credit.rejected");
    assert_string_equal(c.topic_alerts, "credit.alerts");
    assert_int_equal(c.input_npartitions, 0);
    assert_string_equal(c.group_id, "creditd");
    assert_int_equal(c.batch_max_messages, 10000);
    assert_int_equal(c.batch_max_ms, 100);
    assert_int_equal(c.outbox_max_pending, 100000);
    assert_int_equal(c.shutdown_flush_timeout_ms, 10000);
    assert_int_equal(c.stats_interval_ms, 10000);
    assert_int_equal(c.credit_close_after_s, 0);
    assert_string_equal(c.credit_currency, "EUR");
    assert_string_equal(c.ctl_source_staff, "staff/creditctl");
    assert_string_equal(c.ctl_source_owner, "owners/creditctl");
    assert_int_equal(c.credit_max_future_s, 2678400);
    assert_int_equal(c.credit_retention_days, 35);
    assert_string_equal(c.log_format, "text");
    assert_string_equal(c.log_level, "info");
    for (int i = 0; i < CONFIG_SOURCES; i++) assert_null(c.sources[i]);
    assert_int_equal(c.nkafka, 0);
    assert_int_equal(config_has_bootstrap(&c), 0);
    assert_int_equal(config_validate(&c, err, sizeof err), 0);
    config_free(&c);
    config_free(&c); /* twice is safe */
    assert_null(c.kafka);
}

/* The example file documents every default: loading it changes nothing. */
static void test_example_is_defaults(void **state) {
    (void)state;
    struct config def, ex;
    char err[256] = "";
    config_init(&def);
    config_init(&ex);
    if (config_load_file(&ex, EXAMPLE, err, sizeof err) != 0) fail_msg("%s", err);
    assert_int_equal(config_validate(&ex, err, sizeof err), 0);
    char *a = dump(&def), *b = dump(&ex);
    assert_string_equal(a, b);
    free(a);
    free(b);
    config_free(&ex);
}

/* credit.max_future and sources.* (v1.3 §11): values, bounds, and errors
 * naming file, line and key. */
static void test_guard_keys(void **state) {
    (void)state;
    struct config c;
    char err[256] = "";
    int rc = load_text(&c,
                       "credit.max_future = 0\n"
                       "sources.grant = staff/credits\n"
                       "sources.allocate = \"owners/*, staff/credits\"\n"
                       "sources.usage = \"\"\n",
                       err, sizeof err);
    if (rc) fail_msg("%s", err);
    assert_int_equal(config_validate(&c, err, sizeof err), 0);
    assert_int_equal(c.credit_max_future_s, 0);
    assert_string_equal(c.sources[0], "staff/credits");   /* grant */
    assert_string_equal(c.sources[1], "owners/*, staff/credits");
    assert_string_equal(c.sources[2], "");                /* usage: none */
    assert_null(c.sources[3]);                            /* clock: not set, any */
    char *d = dump(&c);
    assert_non_null(strstr(d, "\nsources.usage = \"\"\n"));
    assert_non_null(strstr(d, "\nsources.allocate = owners/*, staff/credits\n"));
    assert_null(strstr(d, "sources.clock"));
    assert_non_null(strstr(d, "\ncredit.max_future = 0\n"));
    free(d);
    /* -X overrides the file */
    assert_int_equal(config_set_arg(&c, "sources.usage=billing/*", err, sizeof err), 0);
    assert_string_equal(c.sources[2], "billing/*");
    config_free(&c);
    assert_null(c.sources[0]);
    config_init(&c);
    expect_set_ok(&c, "credit.max_future", "31622400");
    assert_int_equal(c.credit_max_future_s, 366 * 86400);
    /* the semantics' own names are aliases of the credit.* keys (one key:
     * both spellings in one file are a duplicate) */
    config_free(&c);
    config_init(&c);
    expect_set_ok(&c, "max_future", "3600");
    assert_int_equal(c.credit_max_future_s, 3600);
    expect_set_ok(&c, "retention_days", "90");
    assert_int_equal(c.credit_retention_days, 90);
    expect_set_ok(&c, "close_after", "86400");
    assert_int_equal(c.credit_close_after_s, 86400);
    config_free(&c);
    assert_int_not_equal(load_text(&c, "max_future = 1\ncredit.max_future = 2\n", err, sizeof err), 0);
    assert_non_null(strstr(err, "credit.max_future: duplicate key"));
    config_free(&c);
    expect_set_error("credit.max_future", "31622401",
                     "t.conf:7: credit.max_future: 31622401 is outside 0..31622400");
    expect_set_error("credit.max_future", "-1", "t.conf:7: credit.max_future: -1 is outside 0..31622400");
    expect_set_error("credit.max_future", "31d", "t.conf:7: credit.max_future: not an integer");
    /* credit.retention_days (v1.3 §14): 0 = forever .. 3660 */
    config_init(&c);
    expect_set_ok(&c, "credit.retention_days", "0");
    assert_int_equal(c.credit_retention_days, 0);
    config_free(&c);
    config_init(&c);
    expect_set_ok(&c, "credit.retention_days", "3660");
    assert_int_equal(c.credit_retention_days, 3660);
    config_free(&c);
    expect_set_error("credit.retention_days", "3661",
                     "t.conf:7: credit.retention_days: 3661 is outside 0..3660");
    expect_set_error("credit.retention_days", "-1",
                     "t.conf:7: credit.retention_days: -1 is outside 0..3660");
    expect_set_error("sources.usage", "a,,b",
                     "t.conf:7: sources.usage: empty entry in the list (write \"\" for no source at all)");
    expect_set_error("sources.clock", "cl*ck",
                     "t.conf:7: sources.clock: entry \"cl*ck\": '*' is allowed only at the end (a prefix)");
    char many[65 * 3 + 1] = "";
    for (int i = 0; i < 65; i++) strcat(many, i ? ",s" : "s");
    expect_set_error("sources.grant", many, "t.conf:7: sources.grant: more than 64 entries");
    char big[300];
    memset(big, 'x', 257);
    big[257] = 0;
    expect_set_error("sources.allocate", big,
                     "t.conf:7: sources.allocate: entry \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...\" is longer than 256 bytes");
    /* in a file: the line of the bad key; a duplicate names both lines */
    rc = load_text(&c, "sources.grant = a\n\nsources.usage = x,\n", err, sizeof err);
    assert_int_equal(rc, -1);
    assert_string_equal(err, "F:3: sources.usage: empty entry in the list (write \"\" for no source at all)");
    config_free(&c);
    rc = load_text(&c, "sources.grant = a\nsources.grant = b\n", err, sizeof err);
    assert_int_equal(rc, -1);
    assert_string_equal(err, "F:2: sources.grant: duplicate key (already set at F:1)");
    config_free(&c);
    rc = load_text(&c, "sources.grnat = a\n", err, sizeof err);
    assert_int_equal(rc, -1);
    assert_string_equal(err, "F:1: sources.grnat: unknown key");
    config_free(&c);
}

static void test_file_syntax(void **state) {
    (void)state;
    struct config c;
    char err[256] = "";
    int rc = load_text(&c,
                       "# a comment\n"
                       "\n"
                       "   # indented comment\n"
                       "store.path =   /var/lib/creditd   \n"
                       "group.id=g#1\n"                         /* '#' inside a word stays */
                       "topic.input = in.events # trailing comment\n"
                       "kafka.sasl.password = \" p #w \"  # quoted\n"
                       "kafka.client.id = \"\"\n"
                       "kafka.x = \"a\\\"b\\\\c\\d\"\n"          /* a"b\c\d */
                       "kafka.y = a\"b\\\"\n"                    /* unquoted: as is */
                       "credit.currency = USD\r\n"              /* CRLF */
                       "kafka.debug = # nothing but a comment\n"
                       "batch.max_ms = 50",                     /* no final newline */
                       err, sizeof err);
    if (rc != 0) fail_msg("%s", err);
    assert_string_equal(c.store_path, "/var/lib/creditd");
    assert_string_equal(c.group_id, "g#1");
    assert_string_equal(c.topic_input, "in.events");
    assert_string_equal(config_kafka_get(&c, "sasl.password"), " p #w ");
    assert_string_equal(config_kafka_get(&c, "client.id"), "");
    assert_string_equal(config_kafka_get(&c, "x"), "a\"b\\c\\d");
    assert_string_equal(config_kafka_get(&c, "y"), "a\"b\\\"");
    assert_string_equal(c.credit_currency, "USD");
    assert_string_equal(config_kafka_get(&c, "debug"), "");
    assert_int_equal(c.batch_max_ms, 50);
    config_free(&c);
}

static void test_file_errors(void **state) {
    (void)state;
    static const struct { const char *text, *want; } cases[] = {
        {"# ok\n\nbatch.max_msgs = 5\n", "F:3: batch.max_msgs: unknown key"},
        {"bootstrap.servers = x:9092\n",
         "F:1: bootstrap.servers: unknown key (librdkafka properties take the kafka. prefix)"},
        {"batch.max_messages = 12x\n", "F:1: batch.max_messages: not an integer"},
        {"\n\nbatch.max_messages\n", "F:3: expected key = value"},
        {" = 5\n", "F:1: missing key before '='"},
        {"store.path = \"abc\n", "F:1: store.path: unterminated quoted value"},
        {"store.path = \"a\"b\n", "F:1: store.path: unexpected text after the closing quote"},
        {"ba tch.max_ms = 5\n", "F:1: ba tch.max_ms: not a valid key (letters, digits, '.', '_', '-')"},
        {"kafka. = 5\n", "F:1: kafka.: not a valid property name"},
        {"kafka.group.id = g\n", "F:1: kafka.group.id: set creditd's group.id instead"},
        {"store.path = \"a\\\"\n", "F:1: store.path: unterminated quoted value"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct config c;
        char err[256] = "";
        if (load_text(&c, cases[i].text, err, sizeof err) == 0) fail_msg("accepted: %s", cases[i].text);
        if (strcmp(err, cases[i].want) != 0)
            fail_msg("%s: got \"%s\" want \"%s\"", cases[i].text, err, cases[i].want);
        config_free(&c);
    }
    struct config c;
    char err[256] = "";
    config_init(&c);
    assert_int_equal(config_load_file(&c, "/nonexistent/creditd.conf", err, sizeof err), -1);
    assert_string_equal(err, "/nonexistent/creditd.conf: cannot open: No such file or directory");
}

static void test_nul_byte(void **state) {
    (void)state;
    char path[64], err[256] = "";
    struct config c;
    write_tmp(path, "");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite("group.id = a\0b\n", 1, 15, f), 15);
    assert_int_equal(fclose(f), 0);
    config_init(&c);
    assert_int_equal(config_load_file(&c, path, err, sizeof err), -1);
    unlink(path);
    assert_non_null(strstr(err, ":1: NUL byte in line"));
    assert_string_equal(c.group_id, "creditd");
}

static void test_duplicates(void **state) {
    (void)state;
    struct config c;
    char err[256] = "";
    assert_int_equal(load_text(&c, "topic.input = a\n# x\ntopic.input = b\n", err, sizeof err), -1);
    assert_string_equal(err, "F:3: topic.input: duplicate key (already set at F:1)");
    assert_string_equal(c.topic_input, "a");    /* the failing line changed nothing */
    config_free(&c);

    assert_int_equal(load_text(&c, "kafka.acks = 1\nkafka.acks = all\n", err, sizeof err), -1);
    assert_string_equal(err, "F:2: kafka.acks: duplicate key (already set at F:1)");
    config_free(&c);

    /* -X: once per command line too; bare and prefixed names are one key. */
    config_init(&c);
    assert_int_equal(config_set_arg(&c, "bootstrap.servers=a:1", err, sizeof err), 0);
    assert_int_equal(config_set_arg(&c, "kafka.bootstrap.servers=b:1", err, sizeof err), -1);
    assert_string_equal(err, "-X: kafka.bootstrap.servers: duplicate key (already set at -X)");
    assert_int_equal(config_set_arg(&c, "batch.max_ms=5", err, sizeof err), 0);
    assert_int_equal(config_set_arg(&c, "batch.max_ms=6", err, sizeof err), -1);
    assert_string_equal(err, "-X: batch.max_ms: duplicate key (already set at -X)");
    assert_int_equal(c.batch_max_ms, 5);
    assert_string_equal(config_kafka_get(&c, "bootstrap.servers"), "a:1");
    config_free(&c);
}

static void test_x_forms(void **state) {
    (void)state;
    struct config c;
    char err[256] = "";
    /* The file first, then -X overrides it (another source). */
    int rc = load_text(&c, "batch.max_ms = 20\nkafka.acks = 1\nkafka.linger.ms = 5\n", err, sizeof err);
    assert_int_equal(rc, 0);
    assert_int_equal(config_set_arg(&c, "batch.max_ms=50", err, sizeof err), 0);
    assert_int_equal(c.batch_max_ms, 50);
    assert_int_equal(config_set_arg(&c, "bootstrap.servers=k1:9092,k2:9092", err, sizeof err), 0);
    assert_int_equal(config_set_arg(&c, "kafka.client.id=creditd-1", err, sizeof err), 0);
    assert_int_equal(config_set_arg(&c, "acks=all", err, sizeof err), 0);     /* overrides file */
    assert_int_equal(config_set_arg(&c, "debug=", err, sizeof err), 0);       /* empty value */
    assert_int_equal(config_set_arg(&c, "sasl.password=a=b", err, sizeof err), 0); /* 1st '=' */
    assert_int_equal(config_has_bootstrap(&c), 1);
    assert_string_equal(config_kafka_get(&c, "bootstrap.servers"), "k1:9092,k2:9092");
    assert_string_equal(config_kafka_get(&c, "client.id"), "creditd-1");
    assert_string_equal(config_kafka_get(&c, "acks"), "all");
    assert_string_equal(config_kafka_get(&c, "debug"), "");
    assert_string_equal(config_kafka_get(&c, "sasl.password"), "a=b");
    assert_null(config_kafka_get(&c, "kafka.acks"));
    /* Names in a creditd section are not guessed to be librdkafka's. */
    assert_int_equal(config_set_arg(&c, "batch.size=100", err, sizeof err), -1);
    assert_string_equal(err, "-X: batch.size: unknown creditd key (for the librdkafka property "
                             "write kafka.batch.size)");
    assert_int_equal(config_set_arg(&c, "kafka.batch.size=100", err, sizeof err), 0);
    assert_string_equal(config_kafka_get(&c, "batch.size"), "100");
    assert_int_equal(config_set_arg(&c, "group.id=other", err, sizeof err), 0);
    assert_string_equal(c.group_id, "other");
    assert_null(config_kafka_get(&c, "group.id"));
    assert_int_equal(config_set_arg(&c, "batch.max_messages", err, sizeof err), -1);
    assert_string_equal(err, "-X: batch.max_messages: expected KEY=VALUE");
    assert_int_equal(config_set_arg(&c, "=x", err, sizeof err), -1);
    assert_string_equal(err, "-X: : not a valid key (letters, digits, '.', '_', '-')");
    assert_int_equal(config_set_arg(&c, "batch.max_messages=0", err, sizeof err), -1);
    assert_string_equal(err, "-X: batch.max_messages: 0 is outside 1..1000000");
    assert_int_equal(c.batch_max_messages, 10000);
    config_free(&c);
}

static void test_kafka_order(void **state) {
    (void)state;
    struct config c;
    char err[256] = "";
    static const char *const want[][2] = {
        {"security.protocol", "SASL_SSL"}, {"bootstrap.servers", "b:9092"},
        {"acks", "all"}, {"client.id", "x"}};
    int rc = load_text(&c,
                       "kafka.security.protocol = SASL_SSL\n"
                       "batch.max_ms = 7\n"
                       "kafka.bootstrap.servers = a:9092\n"
                       "kafka.acks = all\n",
                       err, sizeof err);
    assert_int_equal(rc, 0);
    /* An override keeps the property's place; a new one goes last. */
    assert_int_equal(config_set(&c, "bootstrap.servers", "b:9092", "-X", err, sizeof err), 0);
    assert_int_equal(config_set(&c, "client.id", "x", "-X", err, sizeof err), 0);
    assert_int_equal(c.nkafka, 4);
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(c.kafka[i].name, want[i][0]);
        assert_string_equal(c.kafka[i].value, want[i][1]);
    }
    config_free(&c);
    assert_int_equal(c.nkafka, 0);
}

static void expect_partitions(const char *text, const int32_t *want, size_t n) {
    struct config c;
    config_init(&c);
    expect_set_ok(&c, "input.partitions", text);
    if (c.input_npartitions != n)
        fail_msg("\"%s\": %zu partitions, want %zu", text, c.input_npartitions, n);
    for (size_t i = 0; i < n; i++) assert_int_equal(c.input_partitions[i], want[i]);
    config_free(&c);
}

static void test_partitions(void **state) {
    (void)state;
    expect_partitions("0,2,5", (const int32_t[]){0, 2, 5}, 3);
    expect_partitions(" 7 , 0-3,2, 5 - 5 ", (const int32_t[]){0, 1, 2, 3, 5, 7}, 6);
    expect_partitions("5,5,5", (const int32_t[]){5}, 1);
    expect_partitions("2147483647", (const int32_t[]){INT32_MAX}, 1);
    expect_partitions("", NULL, 0);
    expect_partitions("   ", NULL, 0);

    struct config c;
    int32_t all[CONFIG_PARTITIONS_MAX];
    for (int32_t i = 0; i < CONFIG_PARTITIONS_MAX; i++) all[i] = i;
    expect_partitions("0-1023", all, CONFIG_PARTITIONS_MAX);
    /* Overlapping ranges beyond the working buffer are compacted, not refused. */
    expect_partitions("0-1023,0-1023,0-1023,512-1023,0", all, CONFIG_PARTITIONS_MAX);
    for (int32_t i = 0; i < CONFIG_PARTITIONS_MAX; i++) all[i] = 2 * i;
    char big[8192] = "";
    for (int i = 0; i < CONFIG_PARTITIONS_MAX; i++)
        snprintf(big + strlen(big), sizeof big - strlen(big), "%s%d", i ? "," : "", 2 * i);
    expect_partitions(big, all, CONFIG_PARTITIONS_MAX);
    strcat(big, ",1");
    expect_set_error("input.partitions", big, "t.conf:7: input.partitions: more than 1024 partitions");

    /* The dump writes ranges back. */
    config_init(&c);
    expect_set_ok(&c, "input.partitions", "9,0-3,5,6");
    char *d = dump(&c);
    assert_non_null(strstr(d, "\ninput.partitions = 0-3,5-6,9\n"));
    free(d);
    config_free(&c);

    static const struct { const char *in, *msg; } bad[] = {
        {"a", "\"a\" is not a partition or range N-M"},
        {"1,,2", "empty element in the list"},
        {"1,", "empty element in the list"},
        {",1", "empty element in the list"},
        {"-1", "\"-1\" is not a partition or range N-M"},
        {"1-", "\"1-\" is not a partition or range N-M"},
        {"1-2-3", "\"1-2-3\" is not a partition or range N-M"},
        {"+1", "\"+1\" is not a partition or range N-M"},
        {"3-1", "range 3-1 is reversed"},
        {"2147483648", "\"2147483648\": partitions are 0..2147483647"},
        {"0-1024", "more than 1024 partitions"},
        {"0-2147483647", "more than 1024 partitions"},
        {"0-1023,1024", "more than 1024 partitions"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char want[256];
        snprintf(want, sizeof want, "t.conf:7: input.partitions: %s", bad[i].msg);
        expect_set_error("input.partitions", bad[i].in, want);
    }
}

static void test_bounds(void **state) {
    (void)state;
    struct config c;
    config_init(&c);
    expect_set_ok(&c, "batch.max_messages", "1");
    assert_int_equal(c.batch_max_messages, 1);
    expect_set_ok(&c, "batch.max_ms", "60000");
    expect_set_ok(&c, "credit.close_after", "7776000");
    assert_int_equal(c.credit_close_after_s, 7776000);
    expect_set_ok(&c, "stats.interval_ms", "0");
    assert_int_equal(c.stats_interval_ms, 0);
    expect_set_ok(&c, "shutdown.flush_timeout_ms", "0");
    expect_set_ok(&c, "store.map_size", "2G");
    assert_int_equal(c.store_map_size, UINT64_C(2147483648));
    expect_set_ok(&c, "credit.currency", "usd_1-X");
    expect_set_ok(&c, "topic.overage", "a.B_c-9");
    config_free(&c);

    config_init(&c);
    expect_set_ok(&c, "store.map_size", "512m");
    assert_int_equal(c.store_map_size, UINT64_C(536870912));
    expect_set_ok(&c, "batch.max_messages", "1000000");
    assert_int_equal(c.batch_max_messages, 1000000);
    config_free(&c);

    expect_set_error("batch.max_messages", "0", "t.conf:7: batch.max_messages: 0 is outside 1..1000000");
    expect_set_error("batch.max_messages", "1000001",
                     "t.conf:7: batch.max_messages: 1000001 is outside 1..1000000");
    expect_set_error("batch.max_messages", "99999999999999999999999",
                     "t.conf:7: batch.max_messages: 99999999999999999999999 is outside 1..1000000");
    expect_set_error("batch.max_messages", "", "t.conf:7: batch.max_messages: not an integer");
    expect_set_error("batch.max_messages", "1e3", "t.conf:7: batch.max_messages: not an integer");
    expect_set_error("batch.max_ms", "60001", "t.conf:7: batch.max_ms: 60001 is outside 1..60000");
    expect_set_error("batch.max_ms", "-5", "t.conf:7: batch.max_ms: -5 is outside 1..60000");
    expect_set_error("credit.close_after", "7776001",
                     "t.conf:7: credit.close_after: 7776001 is outside 0..7776000");
    expect_set_error("stats.interval_ms", "-1",
                     "t.conf:7: stats.interval_ms: -1 is outside 0..86400000");
    expect_set_error("outbox.max_pending", "0",
                     "t.conf:7: outbox.max_pending: 0 is outside 1..100000000");
    expect_set_error("store.map_size", "1K",
                     "t.conf:7: store.map_size: 1K is outside 1048576..17592186044416 bytes");
    expect_set_error("store.map_size", "99999999999G",
                     "t.conf:7: store.map_size: 99999999999G is outside 1048576..17592186044416 bytes");
    expect_set_error("store.map_size", "12X",
                     "t.conf:7: store.map_size: not a size (bytes, or a number with suffix K, M or G)");
    expect_set_error("store.map_size", "G",
                     "t.conf:7: store.map_size: not a size (bytes, or a number with suffix K, M or G)");
    expect_set_error("credit.currency", "", "t.conf:7: credit.currency: must be 1..16 bytes");
    expect_set_error("credit.currency", "ABCDEFGHIJKLMNOPQ", "t.conf:7: credit.currency: must be 1..16 bytes");
    expect_set_error("credit.currency", "EU R",
                     "t.conf:7: credit.currency: \"EU R\": only letters, digits, '_' and '-' are allowed");
    expect_set_error("credit.currency", "E.R",
                     "t.conf:7: credit.currency: \"E.R\": only letters, digits, '_' and '-' are allowed");
    expect_set_error("topic.input", "a/b",
                     "t.conf:7: topic.input: \"a/b\": only letters, digits, '.', '_' and '-' are allowed");
    expect_set_error("topic.input", "..", "t.conf:7: topic.input: \"..\" is not a valid topic name");
    expect_set_error("group.id", "", "t.conf:7: group.id: must be 1..255 bytes");
    expect_set_error("store.path", "", "t.conf:7: store.path: must be 1..4095 bytes");
    char longtopic[300];
    memset(longtopic, 'a', 250);
    longtopic[250] = '\0';
    expect_set_error("topic.ledger", longtopic, "t.conf:7: topic.ledger: must be 1..249 bytes");
    longtopic[249] = '\0';
    config_init(&c);
    expect_set_ok(&c, "topic.ledger", longtopic);
    assert_int_equal(strlen(c.topic_ledger), 249);
    config_free(&c);
}

static void test_dump_masks_and_sorts(void **state) {
    (void)state;
    struct config c;
    static const char *const secrets[] = {"sasl.password", "ssl.key.password", "ssl.key.pem",
                                          "sasl.oauthbearer.config", "sasl.oauthbearer.client.secret",
                                          "SSL.Keystore.Password"};
    char err[256] = "";
    config_init(&c);
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++)
        assert_int_equal(config_set(&c, secrets[i], "hunter2", "-X", err, sizeof err), 0);
    expect_set_ok(&c, "kafka.bootstrap.servers", "k:9092");
    expect_set_ok(&c, "kafka.sasl.username", "alice");
    expect_set_ok(&c, "store.path", " spaced ");
    char *d = dump(&c);
    assert_null(strstr(d, "hunter2"));
    assert_non_null(strstr(d, "\nkafka.sasl.password = ********\n"));
    assert_non_null(strstr(d, "\nkafka.ssl.key.pem = ********\n"));
    assert_non_null(strstr(d, "\nkafka.sasl.oauthbearer.config = ********\n"));
    assert_non_null(strstr(d, "\nkafka.SSL.Keystore.Password = ********\n"));
    assert_non_null(strstr(d, "\nkafka.bootstrap.servers = k:9092\n"));
    assert_non_null(strstr(d, "\nkafka.sasl.username = alice\n"));
    assert_non_null(strstr(d, "\nstore.path = \" spaced \"\n"));
    assert_non_null(strstr(d, "\nbatch.max_ms = 100\n"));
    assert_non_null(strstr(d, "\ninput.partitions = \"\"\n"));
    /* One line per key, strictly ascending. */
    size_t lines = 0;
    char *prev = NULL;
    for (char *line = strtok(d, "\n"); line; line = strtok(NULL, "\n"), lines++) {
        assert_non_null(strstr(line, " = "));
        if (prev && strcmp(prev, line) >= 0) fail_msg("not sorted: \"%s\" then \"%s\"", prev, line);
        prev = line;
    }
    /* 29 creditd keys (output.alerts, credit.retention_days, the two
     * creditctl.source_*, the four http.* and log.*, input.assignment,
     * state.changelog.topic and state.standby_replicas included; the 4 unset
     * sources.* print nothing) + 8 kafka */
    assert_int_equal(lines, 29 + 8);
    free(d);
    config_free(&c);
}

/* What config_dump prints loads back to the same configuration. */
static void test_dump_round_trip(void **state) {
    (void)state;
    struct config a, b;
    char err[256] = "", path[64];
    config_init(&a);
    expect_set_ok(&a, "store.path", " /x # y ");
    expect_set_ok(&a, "group.id", "\"g");
    expect_set_ok(&a, "input.partitions", "1-4,8");
    expect_set_ok(&a, "store.map_size", "3M");
    expect_set_ok(&a, "kafka.client.id", "");
    expect_set_ok(&a, "kafka.ssl.ca.location", "\"C:\\ca\" #");
    expect_set_ok(&a, "kafka.acks", "all");
    char *d1 = dump(&a);
    write_tmp(path, d1);
    config_init(&b);
    if (config_load_file(&b, path, err, sizeof err) != 0) fail_msg("%s", err);
    unlink(path);
    char *d2 = dump(&b);
    assert_string_equal(d1, d2);
    assert_string_equal(b.store_path, " /x # y ");
    assert_string_equal(b.group_id, "\"g");
    assert_int_equal(b.input_npartitions, 5);
    free(d1);
    free(d2);
    config_free(&a);
    config_free(&b);
}

static void expect_invalid(struct config *c, const char *want) {
    char err[256] = "";
    if (config_validate(c, err, sizeof err) == 0) fail_msg("valid, want \"%s\"", want);
    if (strcmp(err, want) != 0) fail_msg("got \"%s\" want \"%s\"", err, want);
    config_free(c);
}

static void test_validate(void **state) {
    (void)state;
    struct config c;
    char err[256] = "";
    config_init(&c);
    assert_int_equal(config_set(&c, "topic.ledger", "credit.events", "F:1", err, sizeof err), 0);
    expect_invalid(&c, "F:1: topic.ledger: same topic \"credit.events\" as topic.input (default)");

    config_init(&c);
    expect_set_ok(&c, "topic.rejected", "credit.overage");
    expect_invalid(&c, "t.conf:1: topic.rejected: same topic \"credit.overage\" as topic.overage (default)");

    config_init(&c);
    expect_set_ok(&c, "output.alerts", "credit.ledger");
    expect_invalid(&c, "t.conf:1: output.alerts: same topic \"credit.ledger\" as topic.ledger (default)");
    config_init(&c);
    expect_set_ok(&c, "output.alerts", "policy.alerts");
    assert_string_equal(c.topic_alerts, "policy.alerts");
    assert_int_equal(config_validate(&c, err, sizeof err), 0);
    config_free(&c);

    config_init(&c);
    expect_set_ok(&c, "outbox.max_pending", "500");
    expect_invalid(&c, "t.conf:1: outbox.max_pending: 500 is below batch.max_messages (10000, default): "
                       "consumption would pause after every batch");
    config_init(&c);
    expect_set_ok(&c, "outbox.max_pending", "500");
    assert_int_equal(config_set(&c, "batch.max_messages", "500", "-X", err, sizeof err), 0);
    assert_int_equal(config_validate(&c, err, sizeof err), 0);
    config_free(&c);

    config_init(&c);
    expect_set_ok(&c, "kafka.bootstrap.servers", "a:1");
    expect_set_ok(&c, "kafka.metadata.broker.list", "b:1");
    expect_invalid(&c, "t.conf:1: kafka.metadata.broker.list: alias of kafka.bootstrap.servers "
                       "(t.conf:1): set only one");

    /* Fields assigned directly are checked too. */
    config_init(&c);
    c.batch_max_ms = 0;
    expect_invalid(&c, "default: batch.max_ms: 0 is outside 1..60000");
    config_init(&c);
    c.store_map_size = UINT64_MAX;
    expect_invalid(&c, "default: store.map_size: 9223372036854775807 is outside "
                       "1048576..17592186044416 bytes");
    config_init(&c);
    strcpy(c.credit_currency, "E R");
    expect_invalid(&c, "default: credit.currency: \"E R\": only letters, digits, '_' and '-' are allowed");
    config_init(&c);
    c.input_npartitions = 2;
    c.input_partitions[0] = 3;
    c.input_partitions[1] = 3;
    expect_invalid(&c, "default: input.partitions: not ascending, distinct partitions >= 0");
    config_init(&c);
    memset(c.topic_input, 'x', sizeof c.topic_input);
    expect_invalid(&c, "default: topic.input: not NUL-terminated");
}

/* http.*: defaults, the listen address forms, bounds, errors naming the key. */
static void test_http_keys(void **state) {
    (void)state;
    struct config c;
    char err[256] = "", host[CONFIG_LISTEN_HOST_MAX + 1], msg[256];
    int port, v6;
    config_init(&c);
    assert_string_equal(c.http_listen, "");
    assert_int_equal(c.http_ready_max_lag, 10000);
    assert_int_equal(c.http_max_connections, 64);
    assert_int_equal(c.http_timeout_s, 10);
    char *d = dump(&c);
    assert_non_null(strstr(d, "\nhttp.listen = \"\"\nhttp.max_connections = 64\n"
                              "http.ready_max_lag = 10000\nhttp.timeout_s = 10\n"));
    free(d);
    expect_set_ok(&c, "http.listen", "127.0.0.1:8080");
    expect_set_ok(&c, "http.ready_max_lag", "1");
    expect_set_ok(&c, "http.max_connections", "1024");
    expect_set_ok(&c, "http.timeout_s", "300");
    assert_int_equal(config_validate(&c, err, sizeof err), 0);
    d = dump(&c);
    assert_non_null(strstr(d, "\nhttp.listen = 127.0.0.1:8080\n"));
    free(d);
    config_free(&c);
    config_init(&c);
    expect_set_ok(&c, "http.listen", "[::1]:0");
    assert_string_equal(c.http_listen, "[::1]:0");
    config_free(&c);

    assert_int_equal(config_listen_split("0.0.0.0:65535", host, sizeof host, &port, &v6, msg, sizeof msg), 0);
    assert_string_equal(host, "0.0.0.0");
    assert_int_equal(port, 65535);
    assert_int_equal(v6, 0);
    assert_int_equal(config_listen_split("[fe80::1:2]:80", host, sizeof host, &port, &v6, msg, sizeof msg), 0);
    assert_string_equal(host, "fe80::1:2");
    assert_int_equal(port, 80);
    assert_int_equal(v6, 1);

    expect_set_error("http.listen", "localhost:8080", "t.conf:7: http.listen: \"localhost:8080\": localhost "
                     "is not an IPv4 address (names are not resolved; IPv6 goes in brackets: [::1]:8080)");
    expect_set_error("http.listen", "::1:8080", "t.conf:7: http.listen: \"::1:8080\": ::1 is not an IPv4 "
                     "address (names are not resolved; IPv6 goes in brackets: [::1]:8080)");
    expect_set_error("http.listen", "[::1]8080", "t.conf:7: http.listen: \"[::1]8080\": expected HOST:PORT or "
                     "[IPV6]:PORT");
    expect_set_error("http.listen", "[1.2.3.4]:80", "t.conf:7: http.listen: \"[1.2.3.4]:80\": 1.2.3.4 is not "
                     "an IPv6 address");
    expect_set_error("http.listen", "127.0.0.1", "t.conf:7: http.listen: \"127.0.0.1\": expected HOST:PORT or "
                     "[IPV6]:PORT");
    expect_set_error("http.listen", "127.0.0.1:65536", "t.conf:7: http.listen: \"127.0.0.1:65536\": port "
                     "\"65536\" is not 0..65535");
    expect_set_error("http.listen", "127.0.0.1:-1", "t.conf:7: http.listen: \"127.0.0.1:-1\": port \"-1\" is "
                     "not 0..65535");
    expect_set_error("http.listen", "127.0.0.1:", "t.conf:7: http.listen: \"127.0.0.1:\": port \"\" is not "
                     "0..65535");
    expect_set_error("http.listen", ":8080", "t.conf:7: http.listen: \":8080\": no address or too long an "
                     "address before the port");
    expect_set_error("http.max_connections", "0", "t.conf:7: http.max_connections: 0 is outside 1..1024");
    expect_set_error("http.max_connections", "1025", "t.conf:7: http.max_connections: 1025 is outside 1..1024");
    expect_set_error("http.timeout_s", "0", "t.conf:7: http.timeout_s: 0 is outside 1..300");
    expect_set_error("http.ready_max_lag", "0", "t.conf:7: http.ready_max_lag: 0 is outside 1..1000000000000");
    expect_set_error("http.port", "1", "t.conf:7: http.port: unknown key");
    /* Fields assigned directly are checked too. */
    config_init(&c);
    strcpy(c.http_listen, "nowhere:1");
    expect_invalid(&c, "default: http.listen: \"nowhere:1\": nowhere is not an IPv4 address (names are "
                       "not resolved; IPv6 goes in brackets: [::1]:8080)");
}

/* log.format and log.level (issue 8): the names, errors naming the key,
 * the dump, and "log." as a creditd namespace on the command line. */
static void test_log_keys(void **state) {
    (void)state;
    struct config c;
    char err[256] = "";
    int rc = load_text(&c, "log.format = json\nlog.level = debug\n", err, sizeof err);
    if (rc) fail_msg("%s", err);
    assert_string_equal(c.log_format, "json");
    assert_string_equal(c.log_level, "debug");
    assert_int_equal(config_validate(&c, err, sizeof err), 0);
    char *d = dump(&c);
    assert_non_null(strstr(d, "\nlog.format = json\nlog.level = debug\n"));
    free(d);
    assert_int_equal(config_set_arg(&c, "log.level=error", err, sizeof err), 0);   /* -X wins */
    assert_string_equal(c.log_level, "error");
    config_free(&c);
    expect_set_error("log.format", "xml", "t.conf:7: log.format: \"xml\": not text or json");
    expect_set_error("log.format", "JSON", "t.conf:7: log.format: \"JSON\": not text or json");
    expect_set_error("log.format", "", "t.conf:7: log.format: \"\": not text or json");
    expect_set_error("log.level", "verbose", "t.conf:7: log.level: \"verbose\": not debug, "
                     "info, warn or error");
    expect_set_error("log.level", "warning", "t.conf:7: log.level: \"warning\": not debug, "
                     "info, warn or error");
    expect_set_error("log.colour", "x", "t.conf:7: log.colour: unknown key");
    config_init(&c);
    assert_int_equal(config_set_arg(&c, "log.queue=true", err, sizeof err), -1);
    assert_string_equal(err, "-X: log.queue: unknown creditd key (for the librdkafka property "
                             "write kafka.log.queue)");
    assert_int_equal(config_set_arg(&c, "kafka.log.queue=true", err, sizeof err), 0);
    /* A field assigned directly is checked too. */
    strcpy(c.log_level, "loud");
    expect_invalid(&c, "default: log.level: \"loud\": not debug, info, warn or error");
}

static void test_has_bootstrap(void **state) {
    (void)state;
    struct config c;
    config_init(&c);
    expect_set_ok(&c, "kafka.bootstrap.servers", "");
    assert_int_equal(config_has_bootstrap(&c), 0);   /* empty: still the mock cluster */
    config_free(&c);
    config_init(&c);
    expect_set_ok(&c, "kafka.metadata.broker.list", "k:9092");
    assert_int_equal(config_has_bootstrap(&c), 1);
    config_free(&c);
}

/* ---- secrets (README "Secrets") ------------------------------------------ */

/* Every secret librdkafka property, and names that look alike but are not. */
static const char *const SECRET_KEYS[] = {
    "sasl.password", "ssl.key.password", "ssl.keystore.password", "ssl.key.pem",
    "sasl.oauthbearer.client.secret", "sasl.oauthbearer.config",
    "sasl.oauthbearer.assertion.private.key.passphrase", "SSL.Keystore.Password"};
static const char *const PUBLIC_KEYS[] = {
    "sasl.username", "ssl.key.location", "ssl.keystore.location", "ssl.certificate.pem",
    "ssl.ca.pem", "ssl.ca.location", "sasl.kerberos.keytab", "sasl.oauthbearer.client.id",
    "bootstrap.servers", "security.protocol", "sasl.mechanisms", "debug"};
#define NSECRET (sizeof SECRET_KEYS / sizeof SECRET_KEYS[0])
#define NPUBLIC (sizeof PUBLIC_KEYS / sizeof PUBLIC_KEYS[0])

static void test_secret_names(void **state) {
    (void)state;
    char k[128];
    for (size_t i = 0; i < NSECRET; i++) {
        snprintf(k, sizeof k, "kafka.%s", SECRET_KEYS[i]);
        if (!config_is_secret(SECRET_KEYS[i]) || !config_is_secret(k)) fail_msg("%s not secret", k);
    }
    for (size_t i = 0; i < NPUBLIC; i++)
        if (config_is_secret(PUBLIC_KEYS[i])) fail_msg("%s secret", PUBLIC_KEYS[i]);
}

/* A file holding text (mode 0600, mkstemp's); its path in path[64]. */
static void secret_file(char path[64], const char *text, size_t len) {
    write_tmp(path, "");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Every secret key, in clear (-X) and from a file: no value in the dump; a
 * clear one is ********, a file one file:PATH (which loads back). */
static void test_dump_masks_every_secret(void **state) {
    (void)state;
    struct config c, b;
    char err[512] = "", val[64], arg[256], path[64], want[160], dpath[64];
    config_init(&c);
    for (size_t i = 1; i < NSECRET; i++) {   /* [0], sasl.password, from a file below */
        snprintf(arg, sizeof arg, "%s=clear-%zu-hunter2", SECRET_KEYS[i], i);
        if (config_set_arg(&c, arg, err, sizeof err)) fail_msg("%s", err);
    }
    secret_file(path, "from-file-hunter3\n", 18);
    snprintf(arg, sizeof arg, "kafka.sasl.password=file:%s", path);
    if (config_set_arg(&c, arg, err, sizeof err)) fail_msg("%s", err);
    assert_string_equal(config_kafka_get(&c, "sasl.password"), "from-file-hunter3");
    char *d = dump(&c);
    assert_null(strstr(d, "hunter"));
    for (size_t i = 1; i < NSECRET; i++) {
        snprintf(want, sizeof want, "\nkafka.%s = ********\n", SECRET_KEYS[i]);
        if (!strstr(d, want)) fail_msg("no \"%s\" in\n%s", want, d);
    }
    snprintf(want, sizeof want, "\nkafka.sasl.password = file:%s\n", path);
    assert_non_null(strstr(d, want));
    /* The dump loads back (mode 0600), the file read again. */
    write_tmp(dpath, d);
    config_init(&b);
    if (config_load_file(&b, dpath, err, sizeof err)) fail_msg("%s", err);
    assert_string_equal(config_kafka_get(&b, "sasl.password"), "from-file-hunter3");
    snprintf(val, sizeof val, "%s", config_kafka_get(&b, "ssl.key.pem"));
    assert_string_equal(val, "********");   /* a masked value loads back masked */
    unlink(dpath);
    unlink(path);
    free(d);
    config_free(&b);
    config_free(&c);
}

/* file:PATH: the content, one trailing newline dropped, for any kafka.* key
 * and from -X too; ${CREDENTIALS_DIRECTORY}. */
static void test_file_values(void **state) {
    (void)state;
    static const struct { const char *text; size_t len; const char *want; } cases[] = {
        {"s3cret\n", 7, "s3cret"}, {"s3cret", 6, "s3cret"}, {"a\n\n", 3, "a\n"},
        {"", 0, ""}, {"two\nlines\n", 10, "two\nlines"}, {" sp \r\n", 6, " sp \r"}};
    char path[64], arg[128], err[512] = "";
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct config c;
        secret_file(path, cases[i].text, cases[i].len);
        snprintf(arg, sizeof arg, "file:%s", path);
        config_init(&c);
        expect_set_ok(&c, "kafka.sasl.password", arg);
        assert_string_equal(config_kafka_get(&c, "sasl.password"), cases[i].want);
        assert_string_equal(c.kafka[0].file, path);
        expect_set_ok(&c, "kafka.ssl.ca.pem", arg);   /* not a secret: read all the same */
        assert_string_equal(config_kafka_get(&c, "ssl.ca.pem"), cases[i].want);
        config_free(&c);
        unlink(path);
    }
    /* ${CREDENTIALS_DIRECTORY}/NAME, as systemd's LoadCredential= gives it. */
    struct config c;
    char dir[64] = "/tmp/test_config_cred_XXXXXX", cred[128];
    assert_non_null(mkdtemp(dir));
    snprintf(cred, sizeof cred, "%s/kafka-password", dir);
    FILE *f = fopen(cred, "w");
    assert_non_null(f);
    fputs("from-systemd\n", f);
    assert_int_equal(fclose(f), 0);
    config_init(&c);
    assert_int_equal(setenv("CREDENTIALS_DIRECTORY", dir, 1), 0);
    if (config_set_arg(&c, "sasl.password=file:${CREDENTIALS_DIRECTORY}/kafka-password", err,
                       sizeof err))
        fail_msg("%s", err);
    assert_string_equal(config_kafka_get(&c, "sasl.password"), "from-systemd");
    char *d = dump(&c);
    assert_non_null(strstr(d, "\nkafka.sasl.password = file:${CREDENTIALS_DIRECTORY}/kafka-password\n"));
    free(d);
    config_free(&c);
    config_init(&c);
    assert_int_equal(unsetenv("CREDENTIALS_DIRECTORY"), 0);
    assert_int_equal(config_set_arg(&c, "sasl.password=file:${CREDENTIALS_DIRECTORY}/kafka-password",
                                    err, sizeof err), -1);
    assert_string_equal(err, "-X: kafka.sasl.password: file:${CREDENTIALS_DIRECTORY}/kafka-password: "
                             "CREDENTIALS_DIRECTORY is not set (systemd sets it in a unit with "
                             "LoadCredential=)");
    assert_int_equal(c.nkafka, 0);
    config_free(&c);
    assert_int_equal(setenv("CREDENTIALS_DIRECTORY", "/nonexistent", 1), 0);
    expect_set_error("kafka.sasl.password", "file:${CREDENTIALS_DIRECTORY}/p",
                     "t.conf:7: kafka.sasl.password: file:${CREDENTIALS_DIRECTORY}/p "
                     "(/nonexistent/p): cannot open: No such file or directory");
    unsetenv("CREDENTIALS_DIRECTORY");
    unlink(cred);
    rmdir(dir);
}

/* file: errors name the origin, the key and the path; c is unchanged. */
static void test_file_value_errors(void **state) {
    (void)state;
    char path[64], big[64], nul[64], want[256], arg[128];
    expect_set_error("kafka.sasl.password", "file:/nonexistent/pw",
                     "t.conf:7: kafka.sasl.password: file:/nonexistent/pw: cannot open: No such "
                     "file or directory");
    expect_set_error("kafka.sasl.password", "file:", "t.conf:7: kafka.sasl.password: file:: no "
                     "path after \"file:\"");
    expect_set_error("kafka.ssl.key.pem", "file:/tmp",
                     "t.conf:7: kafka.ssl.key.pem: file:/tmp: not a regular file");
    char *text = malloc(CONFIG_FILE_VALUE_MAX + 1);
    assert_non_null(text);
    memset(text, 'k', CONFIG_FILE_VALUE_MAX + 1);
    secret_file(path, text, CONFIG_FILE_VALUE_MAX);      /* the bound itself: accepted */
    secret_file(big, text, CONFIG_FILE_VALUE_MAX + 1);
    free(text);
    struct config c;
    config_init(&c);
    snprintf(arg, sizeof arg, "file:%s", path);
    expect_set_ok(&c, "kafka.ssl.key.pem", arg);
    assert_int_equal(strlen(config_kafka_get(&c, "ssl.key.pem")), CONFIG_FILE_VALUE_MAX);
    config_free(&c);
    snprintf(arg, sizeof arg, "file:%s", big);
    snprintf(want, sizeof want, "t.conf:7: kafka.ssl.key.pem: file:%s: larger than 65536 bytes", big);
    expect_set_error("kafka.ssl.key.pem", arg, want);
    secret_file(nul, "ab\0cd\n", 6);
    snprintf(arg, sizeof arg, "file:%s", nul);
    snprintf(want, sizeof want, "t.conf:7: kafka.sasl.password: file:%s: contains a NUL byte", nul);
    expect_set_error("kafka.sasl.password", arg, want);
    if (geteuid() != 0) {   /* root reads any file */
        assert_int_equal(chmod(nul, 0), 0);
        snprintf(want, sizeof want, "t.conf:7: kafka.sasl.password: file:%s: cannot open: "
                 "Permission denied", nul);
        expect_set_error("kafka.sasl.password", arg, want);
    }
    /* From a file: the error names the line. */
    char err[512] = "";
    snprintf(want, sizeof want, "# x\nkafka.sasl.password = file:/nonexistent/pw\n");
    assert_int_equal(load_text(&c, want, err, sizeof err), -1);
    assert_string_equal(err, "F:2: kafka.sasl.password: file:/nonexistent/pw: cannot open: No such "
                             "file or directory");
    config_free(&c);
    unlink(path);
    unlink(big);
    unlink(nul);
}

/* Load text written with mode; config_load_file's rc, err with the path as F. */
static int load_mode(struct config *c, const char *text, mode_t mode, char *err, size_t errlen) {
    char path[64], raw[512];
    write_tmp(path, text);
    assert_int_equal(chmod(path, mode), 0);
    config_init(c);
    raw[0] = '\0';
    int rc = config_load_file(c, path, raw, sizeof raw);
    unlink(path);
    size_t n = strlen(path), o = 0;
    for (const char *r = raw; *r && o + 1 < errlen;) {
        if (strncmp(r, path, n) == 0) {
            err[o++] = 'F';
            r += n;
        } else {
            err[o++] = *r++;
        }
    }
    err[o] = '\0';
    return rc;
}

/* A secret in clear in a file open to group or others is refused. */
static void test_clear_secret_refused(void **state) {
    (void)state;
    static const struct { mode_t mode; const char *text, *want; } cases[] = {
        {0644, "kafka.bootstrap.servers = k:9092\nkafka.sasl.password = hunter2\n",
         "F: holds kafka.sasl.password in clear and is readable by group or others (mode 0644): "
         "chmod 600 F, or use kafka.sasl.password = file:/path (see README)"},
        {0640, "kafka.ssl.key.password = \"hunter 2\"\nkafka.sasl.password = x\n",
         "F: holds kafka.ssl.key.password in clear and is readable by group or others (mode 0640): "
         "chmod 600 F, or use kafka.ssl.key.password = file:/path (see README)"},
        {0604, "kafka.SASL.Password = hunter2\n",
         "F: holds kafka.SASL.Password in clear and is readable by group or others (mode 0604): "
         "chmod 600 F, or use kafka.SASL.Password = file:/path (see README)"},
        {0620, "kafka.sasl.oauthbearer.config = principal=x\n",
         "F: holds kafka.sasl.oauthbearer.config in clear and is accessible by group or others "
         "(mode 0620): chmod 600 F, or use kafka.sasl.oauthbearer.config = file:/path (see README)"},
    };
    struct config c;
    char err[512] = "";
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (load_mode(&c, cases[i].text, cases[i].mode, err, sizeof err) == 0)
            fail_msg("mode %o accepted: %s", (unsigned)cases[i].mode, cases[i].text);
        if (strcmp(err, cases[i].want) != 0) fail_msg("got \"%s\"\nwant \"%s\"", err, cases[i].want);
        config_free(&c);
    }
    /* Accepted: mode 0600 / 0400; file:; an empty value; no secret; -X in clear. */
    char path[64], text[256];
    secret_file(path, "hunter2\n", 8);
    snprintf(text, sizeof text, "kafka.sasl.password = file:%s\nkafka.ssl.key.location = /k.pem\n"
             "kafka.ssl.key.password = \"\"\nkafka.sasl.username = u\n", path);
    const struct { mode_t mode; const char *text; } ok[] = {
        {0600, "kafka.sasl.password = hunter2\n"}, {0400, "kafka.ssl.key.pem = hunter2\n"},
        {0644, text}, {0666, "kafka.bootstrap.servers = k:1\n"}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        if (load_mode(&c, ok[i].text, ok[i].mode, err, sizeof err) != 0)
            fail_msg("mode %o refused: %s: %s", (unsigned)ok[i].mode, ok[i].text, err);
        config_free(&c);
    }
    /* config_load_args: the same refusal; -X after the file. */
    char cpath[64];
    char *xs[] = {"sasl.password=hunter3", "log.level=debug"};
    write_tmp(cpath, "kafka.sasl.password = hunter2\n");
    if (config_load_args(&c, cpath, xs, 2, err, sizeof err)) fail_msg("%s", err);
    assert_string_equal(config_kafka_get(&c, "sasl.password"), "hunter3");
    assert_string_equal(c.log_level, "debug");
    config_free(&c);
    assert_int_equal(chmod(cpath, 0644), 0);
    assert_int_equal(config_load_args(&c, cpath, xs, 2, err, sizeof err), -1);
    assert_non_null(strstr(err, ": holds kafka.sasl.password in clear and is readable by group"));
    config_free(&c);
    assert_int_equal(config_load_args(&c, NULL, xs, 2, err, sizeof err), 0);
    config_free(&c);
    unlink(cpath);
    unlink(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_example_is_defaults),
        cmocka_unit_test(test_file_syntax),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_nul_byte),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_x_forms),
        cmocka_unit_test(test_kafka_order),
        cmocka_unit_test(test_partitions),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_dump_masks_and_sorts),
        cmocka_unit_test(test_dump_round_trip),
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_guard_keys),
        cmocka_unit_test(test_has_bootstrap),
        cmocka_unit_test(test_http_keys),
        cmocka_unit_test(test_log_keys),
        cmocka_unit_test(test_secret_names),
        cmocka_unit_test(test_dump_masks_every_secret),
        cmocka_unit_test(test_file_values),
        cmocka_unit_test(test_file_value_errors),
        cmocka_unit_test(test_clear_secret_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
