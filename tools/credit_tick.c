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
 * compression.type=none; -X passes librdkafka properties after these.
 * Exit 0 when every copy was delivered, 1 on bad usage (including a bad
 * --time), 2 on Kafka or delivery errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "engine/timeutil.h"
#include "tools/kprod.h"

#define EXIT_USAGE    1
#define EXIT_RUNTIME  2
#define FLUSH_MS      60000
#define META_MS       30000
#define DEFAULT_TOPIC "credit.events"

struct opts {
    const char *bootstrap, *topic, *time, *source;
    const char **xs;
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
                           : !strcmp(a, "-X")       ? &o->xs[o->nx]
                                                    : NULL;
        if (!dst) { fprintf(stderr, "credit-tick: unexpected argument %s\n", a); return -1; }
        if (i + 1 >= argc) { fprintf(stderr, "credit-tick: %s needs a value\n", a); return -1; }
        *dst = argv[++i];
        if (dst == &o->xs[o->nx]) o->nx++;
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

static rd_kafka_t *make_producer(const struct opts *o, struct kprod *k) {
    static const char *const defs[][2] = {
        {"enable.idempotence", "true"},
        {"acks", "all"},
        {"compression.type", "none"},
    };
    *k = (struct kprod){.prog = "credit-tick"};
    return kprod_new(k, o->bootstrap, defs, sizeof defs / sizeof defs[0], o->xs, o->nx);
}

/* The topic's partition count, retrying (bounded by META_MS) while the broker
 * reports a transient error such as a partition without a leader yet. */
static int partition_count(rd_kafka_t *rk, const char *topic) {
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    if (!rkt) {
        fprintf(stderr, "credit-tick: topic %s: %s\n", topic, rd_kafka_err2str(rd_kafka_last_error()));
        return -1;
    }
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int n = -1;
    for (;;) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, 5000);
        if (!err && md->topic_cnt == 1) err = md->topics[0].err;
        if (!err && md->topics[0].partition_cnt > 0) n = md->topics[0].partition_cnt;
        if (md) rd_kafka_metadata_destroy(md);
        if (n > 0) break;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long ms = (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
        if (ms >= META_MS || err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
            fprintf(stderr, "credit-tick: metadata of topic %s: %s\n", topic,
                    err ? rd_kafka_err2str(err) : "no partitions");
            break;
        }
        rd_kafka_poll(rk, 200);
    }
    rd_kafka_topic_destroy(rkt);
    return n;
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

static int produce_ticks(rd_kafka_t *rk, const struct opts *o, struct kprod *k, int n) {
    for (int p = 0; p < n && !k->fatal; p++) {
        char *s = tick_json(o, p);
        if (!s) { fprintf(stderr, "credit-tick: building the tick for partition %d\n", p); return -1; }
        rd_kafka_resp_err_t err;
        while ((err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(o->topic), RD_KAFKA_V_PARTITION(p),
                                        RD_KAFKA_V_VALUE(s, strlen(s)),
                                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                        RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 100);
        free(s);
        if (err) {
            fprintf(stderr, "credit-tick: producing to %s partition %d: %s\n", o->topic, p,
                    rd_kafka_err2str(err));
            return -1;
        }
    }
    rd_kafka_resp_err_t err = rd_kafka_flush(rk, FLUSH_MS);
    if (err) {
        fprintf(stderr, "credit-tick: flush to %s: %s (%d undelivered)\n", o->topic,
                rd_kafka_err2str(err), rd_kafka_outq_len(rk));
        return -1;
    }
    if (k->failed || k->fatal || k->delivered != (unsigned long)n) {
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
    rd_kafka_t *rk = make_producer(&o, &k);
    free(o.xs);
    o.xs = NULL;
    if (!rk) return EXIT_USAGE;
    int n = partition_count(rk, o.topic);
    int rc = n > 0 ? produce_ticks(rk, &o, &k, n) : -1;
    rd_kafka_destroy(rk);
    if (rc != 0) return EXIT_RUNTIME;
    fprintf(stderr, "credit-tick: %d ticks (time %s) produced to %s\n", n, o.time, o.topic);
    return 0;
}
