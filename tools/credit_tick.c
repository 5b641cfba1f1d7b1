/* credit-tick -- produce one clock.tick CloudEvent to every partition of a topic.
 *
 *   credit-tick [-b BOOTSTRAP] [-t TOPIC] --time RFC3339 [--source S]
 *               [--config FILE] [-X key=value]...
 *
 * The topic's partition count comes from the broker's metadata; partition p
 * receives (explicitly, no key) the event
 *   {"specversion":"1.0","id":"tick-TIME-pP","source":S,"type":"clock.tick","time":TIME}
 * so that each partition's copy has its own id (semantics §1).  TIME is
 * validated as RFC 3339 and sent as given; S defaults to "clock", TOPIC to
 * topic.input (credit.events).  The producer is idempotent, acks=all,
 * compression.type=none; then come the kafka.* properties of --config and
 * -X, which are creditd's (README "Configuration", "Secrets";
 * packaging/credit-tick.service runs it with creditd's file): kafka.*
 * (kafka.bootstrap.servers unless -b), topic.input (unless -t) and
 * log.format / log.level, which format every message after the arguments
 * are read (consumer/log.h).  It gives up early on a fatal
 * Kafka error, an authentication failure or all brokers down for a few
 * seconds (tools/kprod.h), naming the cause.
 * Exit 0 when every copy was delivered, 1 on bad usage (including a bad
 * --time), 2 on Kafka or delivery errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "config/config.h"
#include "consumer/log.h"
#include "engine/timeutil.h"
#include "tools/kprod.h"

#define EXIT_USAGE    1
#define EXIT_RUNTIME  2
#define FLUSH_MS      60000
#define DEFAULT_TOPIC "credit.events"

struct opts {
    const char *bootstrap, *topic, *time, *source, *config;
    char **xargs;      /* the -X values, in order (pointers into argv) */
    int nxargs;
};

static void usage(FILE *f) {
    fprintf(f, "usage: credit-tick [-b BOOTSTRAP] [-t TOPIC] --time RFC3339 [--source S]\n"
               "                   [--config FILE] [-X key=value]...\n"
               "Produce one clock.tick CloudEvent to every partition of TOPIC (default\n"
               DEFAULT_TOPIC "), id tick-TIME-pPARTITION, source S (default clock).\n"
               "--config: creditd.conf's kafka.*, topic.input and log.*; -X KEY=VALUE: as for\n"
               "creditd, after it (a librdkafka property or a creditd key); -b and -t win.\n"
               "exit status: 0 ok, 1 usage or bad --time, 2 Kafka or delivery error\n");
}

static int parse_args(int argc, char **argv, struct opts *o) {
    o->source = "clock";
    o->xargs = calloc((size_t)argc, sizeof *o->xargs);
    if (!o->xargs) { fprintf(stderr, "credit-tick: out of memory\n"); return -1; }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); exit(0); }
        const char **dst = !strcmp(a, "-b")         ? &o->bootstrap
                           : !strcmp(a, "-t")       ? &o->topic
                           : !strcmp(a, "--time")   ? &o->time
                           : !strcmp(a, "--source") ? &o->source
                           : !strcmp(a, "--config") ? &o->config
                                                    : NULL;
        int x = !strcmp(a, "-X");
        if (!dst && !x) { fprintf(stderr, "credit-tick: unexpected argument %s\n", a); return -1; }
        if (i + 1 >= argc) { fprintf(stderr, "credit-tick: %s needs a value\n", a); return -1; }
        if (x) o->xargs[o->nxargs++] = argv[++i];
        else *dst = argv[++i];
    }
    if (!o->time) { fprintf(stderr, "credit-tick: --time RFC3339 is required\n"); return -1; }
    if (o->topic && !*o->topic) { fprintf(stderr, "credit-tick: -t TOPIC is empty\n"); return -1; }
    if (!*o->source) { fprintf(stderr, "credit-tick: --source is empty\n"); return -1; }
    int64_t ns;
    int t = time_parse_rfc3339(o->time, &ns);
    if (t != TIME_OK) {
        fprintf(stderr, "credit-tick: --time %s: %s\n", o->time,
                t == TIME_ERANGE ? "out of range (1970..2261)" : "not an RFC 3339 date-time");
        return -1;
    }
    return 0;
}

/* --config and -X (kclient_tool_config: the log writer set up from their
 * log.* keys); the bootstrap and topic from the options or the
 * configuration.  -1 after printing why. */
static int load_config(struct opts *o, struct config *cfg) {
    char err[1024];
    if (kclient_tool_config(cfg, "credit-tick", o->config, o->xargs, o->nxargs, err, sizeof err)) {
        log_error(NULL, "%s", err);
        return -1;
    }
    if (!o->topic) o->topic = cfg->topic_input;
    if (kclient_tool_bootstrap(cfg, o->bootstrap, &o->bootstrap, err, sizeof err)) {
        log_error(NULL, "%s", err);
        return -1;
    }
    return 0;
}

static int make_producer(const struct opts *o, const struct config *cfg, struct kprod *k) {
    static const struct kclient_prop defs[] = {
        {"enable.idempotence", "true"},
        {"acks", "all"},
        {"compression.type", "none"},
        {NULL, NULL}};
    *k = (struct kprod){.prog = "credit-tick"};
    return kprod_new(k, o->bootstrap, defs, cfg);
}

/* The topic's partition count (kclient's retry policy), or -1 after
 * printing why. */
static int partition_count(struct kprod *k, const char *topic) {
    char err[KCLIENT_ERRLEN];
    int32_t n;
    if (kclient_partition_count(k->kc, topic, KCLIENT_META_TIMEOUT_MS, &n, err, sizeof err) == 0)
        return (int)n;
    log_error(NULL, "%s", err);
    return -1;
}

/* The tick for partition p, compact JSON in field order (caller frees). */
static char *tick_json(const struct opts *o, int p) {
    char id[512];
    int w = snprintf(id, sizeof id, "tick-%s-p%d", o->time, p);
    if (w < 0 || (size_t)w >= sizeof id) return NULL;
    json_t *ev = json_pack("{s:s, s:s, s:s, s:s, s:s}", "specversion", "1.0", "id", id, "source",
                           o->source, "type", "clock.tick", "time", o->time);
    char *s = ev ? json_dumps(ev, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(ev);
    return s;
}

static int produce_ticks(const struct opts *o, struct kprod *k, int n) {
    rd_kafka_t *rk = kprod_rk(k);
    for (int p = 0; p < n; p++) {
        char *s = tick_json(o, p);
        if (!s) { log_error(NULL, "building the tick for partition %d", p); return -1; }
        rd_kafka_resp_err_t err;
        while ((err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(o->topic), RD_KAFKA_V_PARTITION(p),
                                        RD_KAFKA_V_VALUE(s, strlen(s)),
                                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                        RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL &&
               !kprod_failed(k))
            rd_kafka_poll(rk, KCLIENT_POLL_MS);
        free(s);
        if (err) {
            log_error(NULL, "producing to %s partition %d: %s", o->topic, p, rd_kafka_err2str(err));
            return -1;
        }
    }
    if (kprod_flush(k, FLUSH_MS)) return -1;
    if (k->failed || k->delivered != (unsigned long)n) {
        log_error(NULL, "%lu of %d ticks delivered to %s", k->delivered, n, o->topic);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    struct opts o = {0};
    struct kprod k = {0};
    struct config cfg;
    config_init(&cfg);
    if (parse_args(argc, argv, &o) != 0) {
        usage(stderr);
        free(o.xargs);
        return EXIT_USAGE;
    }
    if (load_config(&o, &cfg) || make_producer(&o, &cfg, &k)) {
        config_free(&cfg);
        free(o.xargs);
        return EXIT_USAGE;
    }
    int n = partition_count(&k, o.topic);
    int rc = n > 0 ? produce_ticks(&o, &k, n) : -1;
    kprod_destroy(&k);
    if (rc == 0) log_info(NULL, "%d ticks (time %s) produced to %s", n, o.time, o.topic);
    config_free(&cfg);   /* o.topic and o.bootstrap may point into it */
    free(o.xargs);
    return rc ? EXIT_RUNTIME : 0;
}
