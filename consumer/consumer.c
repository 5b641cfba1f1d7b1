/* consumer.c -- see consumer.h. */
#include "consumer/consumer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "consumer/kafka.h"

#define META_TIMEOUT_MS 30000   /* start-up: metadata and cluster id */

struct consumer {
    struct kafka_health health;   /* first member: the error callback's opaque */
    rd_kafka_t *rk;
    char topic[CONFIG_TOPIC_MAX + 1];
    int32_t npart;                /* input topic's partition count */
    char *cluster_id;             /* rd_kafka_mem_free */
    rd_kafka_topic_partition_list_t *assigned;
    int64_t *committed;           /* [npart]: next offset committed to the store */
    int64_t *published;           /* [npart]: next offset committed to the group */
    int64_t *polled;              /* [npart]: next offset handed out by poll */
    int paused, ever_paused;
};

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_commit(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                      rd_kafka_topic_partition_list_t *offsets, void *opaque) {
    (void)rk; (void)opaque;
    for (int i = 0; !e && offsets && i < offsets->cnt; i++)
        if (offsets->elems[i].err) e = offsets->elems[i].err; /* per-partition errors */
    if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET)
        fprintf(stderr, "creditd: consumer: publishing group offsets failed (the store keeps "
                        "them; they are published again shortly): %s\n", rd_kafka_err2str(e));
}

static int make_handle(struct consumer *k, const struct config *c, const char *bootstrap,
                       char *err, size_t errlen) {
    static const struct kafka_prop forced[] = {
        {"group.id", NULL}, /* filled below */
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"auto.offset.reset", "error"},
        {"isolation.level", "read_committed"},
        {"enable.partition.eof", "false"},
        {NULL, NULL}};
    struct kafka_prop f[sizeof(forced) / sizeof(forced[0])];
    memcpy(f, forced, sizeof(f));
    f[0].value = c->group_id;
    char buf[KAFKA_ERRLEN];
    rd_kafka_conf_t *conf = kafka_conf_new(c, bootstrap, NULL, f, &k->health, buf, sizeof(buf));
    if (!conf) {
        snprintf(err, errlen, "consumer: %s", buf);
        return -1;
    }
    rd_kafka_conf_set_offset_commit_cb(conf, on_commit);
    k->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, buf, sizeof(buf));
    if (!k->rk) {
        rd_kafka_conf_destroy(conf);
        snprintf(err, errlen, "consumer: %s", buf);
        return -1;
    }
    rd_kafka_poll_set_consumer(k->rk);
    return 0;
}

/* The input topic's partition count, waiting (bounded) for leaders. */
static int read_metadata(struct consumer *k, char *err, size_t errlen) {
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(k->rk, k->topic, NULL);
    int64_t deadline = now_ms() + META_TIMEOUT_MS;
    rd_kafka_resp_err_t e;
    for (;;) {
        const struct rd_kafka_metadata *md;
        e = rd_kafka_metadata(k->rk, 0, rkt, &md, 5000);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
            e = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
            if (e == RD_KAFKA_RESP_ERR_NO_ERROR) k->npart = md->topics[0].partition_cnt;
            rd_kafka_metadata_destroy(md);
        }
        if ((e == RD_KAFKA_RESP_ERR_NO_ERROR && k->npart > 0) || now_ms() > deadline) break;
        if (e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) break;
        struct timespec ts = {0, 200 * 1000000};
        nanosleep(&ts, NULL);
    }
    rd_kafka_topic_destroy(rkt);
    if (e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
        snprintf(err, errlen, "input topic %s does not exist (create it first)", k->topic);
        return -1;
    }
    if (e || k->npart <= 0 || k->npart > CONSUMER_PARTITIONS_MAX) {
        snprintf(err, errlen, "input topic %s: no usable metadata within %d ms: %s (%d partitions)",
                 k->topic, META_TIMEOUT_MS, rd_kafka_err2str(e), (int)k->npart);
        return -1;
    }
    return 0;
}

int consumer_open(struct consumer **out, const struct config *c, const char *bootstrap,
                  char *err, size_t errlen) {
    struct consumer *k = calloc(1, sizeof(*k));
    if (!k) {
        snprintf(err, errlen, "consumer: out of memory");
        return -1;
    }
    k->health.who = "consumer";
    snprintf(k->topic, sizeof(k->topic), "%s", c->topic_input);
    int rc = make_handle(k, c, bootstrap, err, errlen);
    if (rc == 0) rc = read_metadata(k, err, errlen);
    if (rc == 0 && !(k->cluster_id = rd_kafka_clusterid(k->rk, META_TIMEOUT_MS))) {
        snprintf(err, errlen, "could not read the Kafka cluster id within %d ms", META_TIMEOUT_MS);
        rc = -1;
    }
    if (rc == 0) {
        size_t n = (size_t)k->npart;
        k->committed = malloc(n * sizeof(int64_t));
        k->published = malloc(n * sizeof(int64_t));
        k->polled = malloc(n * sizeof(int64_t));
        if (!k->committed || !k->published || !k->polled) {
            snprintf(err, errlen, "consumer: out of memory");
            rc = -1;
        }
        for (size_t i = 0; rc == 0 && i < n; i++)
            k->committed[i] = k->published[i] = k->polled[i] = CONSUMER_NEVER;
    }
    if (rc) {
        consumer_close(k);
        return -1;
    }
    *out = k;
    return 0;
}

void consumer_close(struct consumer *k) {
    if (!k) return;
    if (k->rk) {
        if (k->assigned && k->paused) rd_kafka_resume_partitions(k->rk, k->assigned);
        if (k->assigned) rd_kafka_assign(k->rk, NULL);
        rd_kafka_consumer_close(k->rk);
        /* librdkafka 2.0 leaks a partition reference on pause/resume (see
         * confluentinc/librdkafka#4486, #4674): rd_kafka_destroy() then waits
         * forever for a broker thread.  The handle is only closed at exit,
         * after the store committed everything, so it is left to the OS. */
        if (!k->ever_paused) rd_kafka_destroy(k->rk);
    }
    if (k->cluster_id) rd_kafka_mem_free(NULL, k->cluster_id);
    if (k->assigned) rd_kafka_topic_partition_list_destroy(k->assigned);
    free(k->committed);
    free(k->published);
    free(k->polled);
    free(k);
}

int32_t consumer_partition_count(const struct consumer *k) { return k->npart; }
const char *consumer_cluster_id(const struct consumer *k) { return k->cluster_id; }

int consumer_assign(struct consumer *k, const int32_t *parts, const int64_t *next, size_t n,
                    char *err, size_t errlen) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++) {
        if (parts[i] < 0 || parts[i] >= k->npart) {
            rd_kafka_topic_partition_list_destroy(l);
            snprintf(err, errlen, "input.partitions: topic %s has no partition %d", k->topic,
                     (int)parts[i]);
            return -1;
        }
        rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_add(l, k->topic, parts[i]);
        tp->offset = next[i] == CONSUMER_NEVER ? RD_KAFKA_OFFSET_BEGINNING : next[i];
        k->committed[parts[i]] = k->published[parts[i]] = k->polled[parts[i]] = next[i];
    }
    rd_kafka_resp_err_t e = rd_kafka_assign(k->rk, l);
    if (e) {
        rd_kafka_topic_partition_list_destroy(l);
        snprintf(err, errlen, "consumer: assign: %s", rd_kafka_err2str(e));
        return -1;
    }
    k->assigned = l;
    return 0;
}

/* An error event or errored message: 0 when it is transient or informational,
 * -1 (err set) when creditd must stop. */
static int on_msg_error(struct consumer *k, const rd_kafka_message_t *m, char *err, size_t errlen) {
    rd_kafka_resp_err_t e = m->err;
    const char *topic = m->rkt ? rd_kafka_topic_name(m->rkt) : k->topic;
    switch (e) {
    case RD_KAFKA_RESP_ERR__PARTITION_EOF:
        return 0;
    case RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET:
    case RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE:
        snprintf(err, errlen,
                 "input %s [%d]: the next offset to apply is no longer in the log (retention "
                 "gap?): %s. Refusing to skip events; restore the missing events or replay "
                 "them with credit-replay before restarting",
                 topic, (int)m->partition, rd_kafka_message_errstr(m));
        return -1;
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
        snprintf(err, errlen, "input %s [%d]: %s", topic, (int)m->partition,
                 rd_kafka_message_errstr(m));
        return -1;
    case RD_KAFKA_RESP_ERR__FATAL:
        return kafka_health_fatal(&k->health, err, errlen) ? -1 : 0;
    default:
        fprintf(stderr, "creditd: consumer: %s (transient, retrying)\n", rd_kafka_message_errstr(m));
        return 0;
    }
}

int consumer_poll_batch(struct consumer *k, rd_kafka_message_t **msgs, size_t max, int max_ms,
                        volatile sig_atomic_t *stop, size_t *n, char *err, size_t errlen) {
    int64_t deadline = now_ms() + max_ms;
    *n = 0;
    while (*n < max && !*stop) {
        if (kafka_health_fatal(&k->health, err, errlen)) return -1;
        int64_t left = deadline - now_ms();
        if (left < 0) break;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(k->rk, left > 100 ? 100 : (int)left);
        if (!m) continue;
        int rc = 0;
        if (m->err) rc = on_msg_error(k, m, err, errlen);
        else if (m->partition < 0 || m->partition >= k->npart)
            fprintf(stderr, "creditd: consumer: ignoring message from unexpected partition %d\n",
                    (int)m->partition);
        else if (k->polled[m->partition] != CONSUMER_NEVER && m->offset < k->polled[m->partition])
            fprintf(stderr, "creditd: consumer: ignoring re-delivered %s [%d] offset %lld\n",
                    k->topic, (int)m->partition, (long long)m->offset);
        else {
            k->polled[m->partition] = m->offset + 1;
            msgs[(*n)++] = m;
            continue;
        }
        rd_kafka_message_destroy(m);
        if (rc) return -1;
    }
    return kafka_health_fatal(&k->health, err, errlen) ? -1 : 0;
}

void consumer_release(rd_kafka_message_t **msgs, size_t n) {
    for (size_t i = 0; i < n; i++) rd_kafka_message_destroy(msgs[i]);
}

void consumer_advance(struct consumer *k, int32_t partition, int64_t next) {
    if (partition >= 0 && partition < k->npart) k->committed[partition] = next;
}

void consumer_commit_async(struct consumer *k, int all) {
    if (!k->assigned) return;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(k->assigned->cnt);
    for (int i = 0; i < k->assigned->cnt; i++) {
        int32_t p = k->assigned->elems[i].partition;
        if (k->committed[p] == CONSUMER_NEVER || (!all && k->committed[p] == k->published[p]))
            continue;
        rd_kafka_topic_partition_list_add(l, k->topic, p)->offset = k->committed[p];
        k->published[p] = k->committed[p];
    }
    if (l->cnt) rd_kafka_commit(k->rk, l, 1);
    rd_kafka_topic_partition_list_destroy(l);
}

int consumer_pause(struct consumer *k, int pause, char *err, size_t errlen) {
    if (!k->assigned || k->paused == pause) return 0;
    rd_kafka_resp_err_t e = pause ? rd_kafka_pause_partitions(k->rk, k->assigned)
                                  : rd_kafka_resume_partitions(k->rk, k->assigned);
    if (e) {
        snprintf(err, errlen, "consumer: %s: %s", pause ? "pause" : "resume", rd_kafka_err2str(e));
        return -1;
    }
    k->paused = pause;
    k->ever_paused |= pause;
    return 0;
}

int consumer_paused(const struct consumer *k) { return k->paused; }

int64_t consumer_lag(struct consumer *k) {
    int64_t lag = 0;
    if (!k->assigned) return -1;
    for (int i = 0; i < k->assigned->cnt; i++) {
        int32_t p = k->assigned->elems[i].partition;
        int64_t lo, hi;
        if (rd_kafka_get_watermark_offsets(k->rk, k->topic, p, &lo, &hi) || hi < 0) return -1;
        int64_t from = k->committed[p] == CONSUMER_NEVER ? lo : k->committed[p];
        if (from >= 0 && hi > from) lag += hi - from;
    }
    return lag;
}
