/* credit-tick -- produce one clock.tick CloudEvent to every partition of a topic.
 *
 *   credit-tick -b BOOTSTRAP [-t TOPIC] --time RFC3339 [--source S] [-X key=value]...
 *
 * The topic's partition count comes from the broker's metadata; partition p
 * receives (explicitly, no key) the event
 *   {"specversion":"1.0","id":"tick-TIME-pP","source":S,"type":"clock.tick","time":TIME}
 * so that each partition's copy has its own id (semantics §1).  TIME is
 * validated as RFC 3339 and sent as given; S defaults to "clock", TOPIC to
 * credit.events.  The producer is idempotent, acks=all,
 * compression.type=none; -X passes librdkafka properties after these.  It
 * gives up early on a fatal Kafka error, an authentication failure or all
 * brokers down for a few seconds (tools/kprod.h), naming the cause.
 * Exit 0 when every copy was delivered, 1 on bad usage (including a bad
 * --time), 2 on Kafka or delivery errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "engine/timeutil.h"
#include "tools/kprod.h"

#define EXIT_USAGE    1
#define EXIT_RUNTIME  2
#define FLUSH_MS      60000
#define DEFAULT_TOPIC "credit.events"

struct opts {
    const char *bootstrap, *topic, *time, *source;
    char **xs;
    int nx;
};

static void usage(FILE *f) {
    fprintf(f, "usage: credit-tick -b BOOTSTRAP [-t TOPIC] --time RFC3339 [--source S]\n"
               "                   [-X key=value]...\n"
               "Produce one clock.tick CloudEvent to every partition of TOPIC (default\n"
               DEFAULT_TOPIC "), id tick-TIME-pPARTITION, source S (default clock).\n"
               "exit status: 0 ok, 1 usage or bad --time, 2 Kafka or delivery error\n");
}

static int parse_args(int argc, char **argv, struct opts *o) {
    o->topic = DEFAULT_TOPIC;
    o->source = "clock";
    o->xs = calloc((size_t)argc, sizeof *o->xs);
    if (!o->xs) { fprintf(stderr, "credit-tick: out of memory\n"); return -1; }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); exit(0); }
        const char **dst = !strcmp(a, "-b")         ? &o->bootstrap
                           : !strcmp(a, "-t")       ? &o->topic
                           : !strcmp(a, "--time")   ? &o->time
                           : !strcmp(a, "--source") ? &o->source
                                                    : NULL;
        int x = !strcmp(a, "-X");
        if (!dst && !x) { fprintf(stderr, "credit-tick: unexpected argument %s\n", a); return -1; }
        if (i + 1 >= argc) { fprintf(stderr, "credit-tick: %s needs a value\n", a); return -1; }
        if (x) o->xs[o->nx++] = argv[++i];
        else *dst = argv[++i];
    }
    if (!o->bootstrap) { fprintf(stderr, "credit-tick: -b BOOTSTRAP is required\n"); return -1; }
    if (!o->time) { fprintf(stderr, "credit-tick: --time RFC3339 is required\n"); return -1; }
    if (!*o->topic) { fprintf(stderr, "credit-tick: -t TOPIC is empty\n"); return -1; }
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

static int make_producer(const struct opts *o, struct kprod *k) {
    static const struct kclient_prop defs[] = {
        {"enable.idempotence", "true"},
        {"acks", "all"},
        {"compression.type", "none"},
        {NULL, NULL}};
    *k = (struct kprod){.prog = "credit-tick"};
    return kprod_new(k, o->bootstrap, defs, o->xs, o->nx);
}

/* The topic's partition count (kclient's retry policy), or -1 after
 * printing why. */
static int partition_count(struct kprod *k, const char *topic) {
    char err[KCLIENT_ERRLEN];
    int32_t n;
    if (kclient_partition_count(k->kc, topic, KCLIENT_META_TIMEOUT_MS, &n, err, sizeof err) == 0)
        return (int)n;
    fprintf(stderr, "credit-tick: %s\n", err);
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
        if (!s) { fprintf(stderr, "credit-tick: building the tick for partition %d\n", p); return -1; }
        rd_kafka_resp_err_t err;
        while ((err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(o->topic), RD_KAFKA_V_PARTITION(p),
                                        RD_KAFKA_V_VALUE(s, strlen(s)),
                                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                        RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL &&
               !kprod_failed(k))
            rd_kafka_poll(rk, KCLIENT_POLL_MS);
        free(s);
        if (err) {
            fprintf(stderr, "credit-tick: producing to %s partition %d: %s\n", o->topic, p,
                    rd_kafka_err2str(err));
            return -1;
        }
    }
    if (kprod_flush(k, FLUSH_MS)) return -1;
    if (k->failed || k->delivered != (unsigned long)n) {
        fprintf(stderr, "credit-tick: %lu of %d ticks delivered to %s\n", k->delivered, n,
                o->topic);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    struct opts o = {0};
    struct kprod k = {0};
    if (parse_args(argc, argv, &o) != 0) {
        usage(stderr);
        free(o.xs);
        return EXIT_USAGE;
    }
    int bad = make_producer(&o, &k);
    free(o.xs);
    o.xs = NULL;
    if (bad) return EXIT_USAGE;
    int n = partition_count(&k, o.topic);
    int rc = n > 0 ? produce_ticks(&o, &k, n) : -1;
    kprod_destroy(&k);
    if (rc != 0) return EXIT_RUNTIME;
    fprintf(stderr, "credit-tick: %d ticks (time %s) produced to %s\n", n, o.time, o.topic);
    return 0;
}
