/* credit-produce -- produce JSON Lines events to Kafka, keyed by organisation.
 *
 *   credit-produce -b BOOTSTRAP [-t TOPIC] [-X key=value]... FILE...
 *
 * Each line of each FILE (- is stdin) is produced verbatim as one message to
 * TOPIC (default credit.events), keyed by its data.org; a line without a
 * readable data.org string (a clock.tick, a malformed line) has no key.
 * Empty lines are skipped.  The producer is idempotent (ordering per
 * partition is kept across retries), acks=all, compression.type=none, and
 * uses partitioner=murmur2_random, the Java client's partitioner, so a key
 * lands on the partition a Java producer would choose.  -X key=value is
 * passed to librdkafka after these defaults (it may override them).
 * The tool waits (bounded) for every delivery report; it gives up early on
 * a fatal Kafka error, an authentication failure or all brokers down for a
 * few seconds (tools/kprod.h), naming the cause.
 * Exit 0 when every message was delivered, 1 on bad usage, 2 on I/O, Kafka
 * or delivery errors. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "tools/kprod.h"

#define EXIT_USAGE    1
#define EXIT_RUNTIME  2
#define FLUSH_MS      60000
#define DEFAULT_TOPIC "credit.events"

struct opts {
    const char *bootstrap, *topic;
    char **xs;         /* -X values, in order */
    int nx;
    char **files;
    int nfiles;
};

struct counts {
    unsigned long produced;
    struct kprod k;   /* delivered, failed, fatal */
};

static void usage(FILE *f) {
    fprintf(f, "usage: credit-produce -b BOOTSTRAP [-t TOPIC] [-X key=value]... FILE...\n"
               "Produce each line of FILE (JSON Lines; - is stdin) as one message to TOPIC\n"
               "(default " DEFAULT_TOPIC "), keyed by data.org (no key if absent).\n"
               "Defaults: partitioner=murmur2_random enable.idempotence=true acks=all\n"
               "compression.type=none; -X passes librdkafka properties (may override).\n"
               "exit status: 0 ok, 1 usage, 2 I/O, Kafka or delivery error\n");
}

static int parse_args(int argc, char **argv, struct opts *o) {
    o->topic = DEFAULT_TOPIC;
    o->xs = calloc((size_t)argc, sizeof *o->xs);
    o->files = calloc((size_t)argc, sizeof *o->files);
    if (!o->xs || !o->files) { fprintf(stderr, "credit-produce: out of memory\n"); return -1; }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); exit(0); }
        if (!strcmp(a, "-b") || !strcmp(a, "-t") || !strcmp(a, "-X")) {
            if (i + 1 >= argc) { fprintf(stderr, "credit-produce: %s needs a value\n", a); return -1; }
            char *v = argv[++i];
            if (a[1] == 'b') o->bootstrap = v;
            else if (a[1] == 't') o->topic = v;
            else o->xs[o->nx++] = v;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "credit-produce: unknown option %s\n", a);
            return -1;
        } else {
            o->files[o->nfiles++] = argv[i];
        }
    }
    if (!o->bootstrap) { fprintf(stderr, "credit-produce: -b BOOTSTRAP is required\n"); return -1; }
    if (!*o->topic) { fprintf(stderr, "credit-produce: -t TOPIC is empty\n"); return -1; }
    if (!o->nfiles) { fprintf(stderr, "credit-produce: no FILE given (use - for stdin)\n"); return -1; }
    return 0;
}

/* The first ten failed deliveries are reported (k->failed counts them all). */
static void report_failure(const struct kprod *k, const rd_kafka_message_t *m) {
    if (k->failed <= 10)
        fprintf(stderr, "%s: delivery failed (partition %d): %s\n", k->prog, (int)m->partition,
                rd_kafka_err2str(m->err));
}

/* Defaults first, -X after them: a -X property overrides a default. */
static int make_producer(const struct opts *o, struct counts *c) {
    static const struct kclient_prop defs[] = {
        {"partitioner", "murmur2_random"}, {"enable.idempotence", "true"},
        {"acks", "all"},                   {"compression.type", "none"},
        {NULL, NULL}};
    c->k = (struct kprod){.prog = "credit-produce", .on_fail = report_failure};
    return kprod_new(&c->k, o->bootstrap, defs, o->xs, o->nx);
}

/* The line's data.org as the key (a copy in *key), or NULL for no key. */
static char *key_of(const char *line, size_t len, size_t *klen) {
    json_t *root = json_loadb(line, len, 0, NULL);
    json_t *org = json_object_get(json_object_get(root, "data"), "org");
    char *key = NULL;
    if (json_is_string(org)) {
        *klen = json_string_length(org);
        key = malloc(*klen + 1);
        if (key) memcpy(key, json_string_value(org), *klen + 1);
    }
    json_decref(root);
    return key;
}

/* Produce one line; on a full local queue serve delivery reports and retry. */
static int produce_line(rd_kafka_t *rk, const struct opts *o, struct counts *c, char *line,
                        size_t len) {
    size_t klen = 0;
    char *key = key_of(line, len, &klen);
    rd_kafka_resp_err_t err;
    for (;;) {
        err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(o->topic), RD_KAFKA_V_VALUE(line, len),
                                RD_KAFKA_V_KEY(key, key ? klen : 0),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || kprod_failed(&c->k)) break;
        rd_kafka_poll(rk, KCLIENT_POLL_MS);
    }
    free(key);
    if (err) {
        fprintf(stderr, "credit-produce: producing to %s: %s\n", o->topic, rd_kafka_err2str(err));
        return -1;
    }
    c->produced++;
    rd_kafka_poll(rk, 0);
    return 0;
}

static int produce_file(rd_kafka_t *rk, const struct opts *o, struct counts *c, const char *path) {
    int is_stdin = !strcmp(path, "-");
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "credit-produce: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    while (rc == 0 && !kprod_failed(&c->k) && (n = getline(&line, &cap, f)) >= 0) {
        size_t len = (size_t)n;
        if (len && line[len - 1] == '\n') len--;
        if (len == 0) continue;
        rc = produce_line(rk, o, c, line, len);
    }
    if (rc == 0 && ferror(f)) {
        fprintf(stderr, "credit-produce: reading %s: %s\n", path, strerror(errno));
        rc = -1;
    }
    free(line);
    if (!is_stdin) fclose(f);
    return rc || kprod_failed(&c->k) ? -1 : 0;
}

static int finish(const struct opts *o, struct counts *c) {
    int rc = kprod_flush(&c->k, FLUSH_MS);
    if (c->k.failed || c->k.gave_up) {
        fprintf(stderr, "credit-produce: %lu of %lu messages failed delivery to %s\n", c->k.failed,
                c->produced, o->topic);
        rc = -1;
    }
    if (rc == 0 && c->k.delivered != c->produced) {
        fprintf(stderr, "credit-produce: %lu of %lu messages confirmed to %s\n", c->k.delivered,
                c->produced, o->topic);
        rc = -1;
    }
    return rc;
}

int main(int argc, char **argv) {
    struct opts o = {0};
    struct counts c = {0};
    if (parse_args(argc, argv, &o) != 0) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (make_producer(&o, &c)) return EXIT_USAGE;
    rd_kafka_t *rk = kprod_rk(&c.k);
    int rc = 0;
    for (int i = 0; rc == 0 && i < o.nfiles; i++) rc = produce_file(rk, &o, &c, o.files[i]);
    if (finish(&o, &c) != 0) rc = -1;
    kprod_destroy(&c.k);
    free(o.xs);
    free(o.files);
    if (rc != 0) return EXIT_RUNTIME;
    fprintf(stderr, "credit-produce: %lu messages produced to %s\n", c.k.delivered, o.topic);
    return 0;
}
