/* credit-produce -- produce JSON Lines events to Kafka, keyed by organisation.
 *
 *   credit-produce [-b BOOTSTRAP] [-t TOPIC] [--config FILE] [-X key=value]... FILE...
 *
 * Each line of each FILE (- is stdin) is produced verbatim as one message to
 * TOPIC (default: topic.input, credit.events), keyed by its data.org; a line
 * without a readable data.org string (a clock.tick, a malformed line) has no
 * key.  Empty lines are skipped.  The producer is idempotent (ordering per
 * partition is kept across retries), acks=all, compression.type=none, and
 * uses partitioner=murmur2_random, the Java client's partitioner, so a key
 * lands on the partition a Java producer would choose.  --config FILE and
 * -X key=value are creditd's (README "Configuration", "Secrets"): their
 * kafka.* properties come after these defaults (they may override them),
 * kafka.bootstrap.servers unless -b, topic.input unless -t, log.*.
 * The tool waits (bounded) for every delivery report; it gives up early on
 * a fatal Kafka error, an authentication failure or all brokers down for a
 * few seconds (tools/kprod.h), naming the cause.
 * Exit 0 when every message was delivered, 1 on bad usage or configuration,
 * 2 on I/O, Kafka or delivery errors. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "config/config.h"
#include "tools/kprod.h"

#define EXIT_USAGE    1
#define EXIT_RUNTIME  2
#define FLUSH_MS      60000
#define DEFAULT_TOPIC "credit.events"

struct opts {
    const char *bootstrap, *topic, *config;
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
    fprintf(f, "usage: credit-produce [-b BOOTSTRAP] [-t TOPIC] [--config FILE] [-X key=value]...\n"
               "                      FILE...\n"
               "Produce each line of FILE (JSON Lines; - is stdin) as one message to TOPIC\n"
               "(default topic.input, " DEFAULT_TOPIC "), keyed by data.org (no key if absent).\n"
               "Defaults: partitioner=murmur2_random enable.idempotence=true acks=all\n"
               "compression.type=none; --config's kafka.* and -X override them (as for creditd:\n"
               "-X sets a librdkafka property or a creditd key; kafka.* values may be file:PATH).\n"
               "-b: else kafka.bootstrap.servers.\n"
               "exit status: 0 ok, 1 usage or configuration, 2 I/O, Kafka or delivery error\n");
}

static int parse_args(int argc, char **argv, struct opts *o) {
    o->xs = calloc((size_t)argc, sizeof *o->xs);
    o->files = calloc((size_t)argc, sizeof *o->files);
    if (!o->xs || !o->files) { fprintf(stderr, "credit-produce: out of memory\n"); return -1; }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); exit(0); }
        if (!strcmp(a, "-b") || !strcmp(a, "-t") || !strcmp(a, "-X") || !strcmp(a, "--config")) {
            if (i + 1 >= argc) { fprintf(stderr, "credit-produce: %s needs a value\n", a); return -1; }
            char *v = argv[++i];
            if (a[1] == 'b') o->bootstrap = v;
            else if (a[1] == 't') o->topic = v;
            else if (a[1] == '-') o->config = v;
            else o->xs[o->nx++] = v;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "credit-produce: unknown option %s\n", a);
            return -1;
        } else {
            o->files[o->nfiles++] = argv[i];
        }
    }
    if (o->topic && !*o->topic) { fprintf(stderr, "credit-produce: -t TOPIC is empty\n"); return -1; }
    if (!o->nfiles) { fprintf(stderr, "credit-produce: no FILE given (use - for stdin)\n"); return -1; }
    return 0;
}

/* The first ten failed deliveries are reported (k->failed counts them all). */
static void report_failure(const struct kprod *k, const rd_kafka_message_t *m) {
    if (k->failed <= 10)
        fprintf(stderr, "%s: delivery failed (partition %d): %s\n", k->prog, (int)m->partition,
                rd_kafka_err2str(m->err));
}

/* --config and -X (kclient_tool_config); the bootstrap and topic from the
 * options or the configuration.  -1 after printing why. */
static int load_config(struct opts *o, struct config *cfg) {
    char err[1024];
    if (kclient_tool_config(cfg, "credit-produce", o->config, o->xs, o->nx, err, sizeof err)) {
        fprintf(stderr, "credit-produce: %s\n", err);
        return -1;
    }
    if (!o->topic) o->topic = cfg->topic_input;
    if (kclient_tool_bootstrap(cfg, o->bootstrap, &o->bootstrap, err, sizeof err)) {
        fprintf(stderr, "credit-produce: %s\n", err);
        return -1;
    }
    return 0;
}

/* Defaults first, the configuration's kafka.* after them: --config and -X
 * override a default. */
static int make_producer(const struct opts *o, const struct config *cfg, struct counts *c) {
    static const struct kclient_prop defs[] = {
        {"partitioner", "murmur2_random"}, {"enable.idempotence", "true"},
        {"acks", "all"},                   {"compression.type", "none"},
        {NULL, NULL}};
    c->k = (struct kprod){.prog = "credit-produce", .on_fail = report_failure};
    return kprod_new(&c->k, o->bootstrap, defs, cfg);
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
    struct config cfg;
    config_init(&cfg);
    int rc = parse_args(argc, argv, &o);
    if (rc) usage(stderr);
    if (rc || load_config(&o, &cfg) || make_producer(&o, &cfg, &c)) {
        config_free(&cfg);
        free(o.xs);
        free(o.files);
        return EXIT_USAGE;
    }
    rd_kafka_t *rk = kprod_rk(&c.k);
    for (int i = 0; rc == 0 && i < o.nfiles; i++) rc = produce_file(rk, &o, &c, o.files[i]);
    if (finish(&o, &c) != 0) rc = -1;
    kprod_destroy(&c.k);
    if (rc == 0)
        fprintf(stderr, "credit-produce: %lu messages produced to %s\n", c.k.delivered, o.topic);
    config_free(&cfg);   /* o.topic and o.bootstrap may point into it */
    free(o.xs);
    free(o.files);
    return rc ? EXIT_RUNTIME : 0;
}
