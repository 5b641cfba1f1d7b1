/* consumer.c -- see consumer.h. */
#include "consumer/consumer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consumer/kclient.h"
#include "consumer/log.h"

struct consumer {
    struct kclient *kc;
    rd_kafka_t *rk;               /* kclient_rk(kc) */
    char topic[CONFIG_TOPIC_MAX + 1];
    int32_t npart;                /* input topic's partition count */
    char cluster_id[KCLIENT_ID_MAX];
    rd_kafka_topic_partition_list_t *assigned;
    int64_t *committed;           /* [npart]: next offset committed to the store */
    int64_t *published;           /* [npart]: next offset committed to the group */
    int64_t *polled;              /* [npart]: next offset handed out by poll */
    int paused, ever_paused;
    char group[CONFIG_GROUP_MAX + 1];
    char denied[KCLIENT_ERRLEN];  /* a group-offset commit was refused: why ("" if not) */
};

static int is_denied(rd_kafka_resp_err_t e) {
    return e == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED ||
           e == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED;
}

/* An authorization refusal on the group or the input topic, as one line. */
static void denied(struct consumer *k, rd_kafka_resp_err_t e, char *err, size_t errlen) {
    if (e == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED) kclient_denied(k->kc, "group", k->group, err, errlen);
    else kclient_denied(k->kc, "topic", k->topic, err, errlen);
}

/* The first error of a commit result: the request's, else a partition's. */
static rd_kafka_resp_err_t commit_error(rd_kafka_resp_err_t e, const rd_kafka_topic_partition_list_t *l) {
    for (int i = 0; !e && l && i < l->cnt; i++) e = l->elems[i].err;
    return e;
}

/* A refused commit stops creditd (consumer_poll_batch): the offsets are
 * only for monitoring, but a principal without Read on the group is a
 * misconfiguration to fix, not to log every few seconds.  The store has
 * committed the batches already: nothing is half-applied.  Other errors
 * are retried by the next publish. */
static void on_commit(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                      rd_kafka_topic_partition_list_t *offsets, void *user) {
    struct consumer *k = user;
    (void)rk;
    e = commit_error(e, offsets);
    if (is_denied(e) && !k->denied[0]) denied(k, e, k->denied, sizeof(k->denied));
    else if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET)
        log_warn("consumer", "publishing group offsets failed (the store keeps "
                        "them; they are published again shortly): %s", rd_kafka_err2str(e));
}

/* The consumer, with the input topic's partition count and the cluster id.
 * Its start-up waits end on an authentication failure too; once running,
 * only a fatal error stops it (librdkafka retries the rest). */
static int make_handle(struct consumer *k, const struct config *c, const char *bootstrap,
                       volatile sig_atomic_t *stop, char *err, size_t errlen) {
    const struct kclient_prop forced[] = {
        {"group.id", c->group_id},
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"auto.offset.reset", "error"},
        {"isolation.level", "read_committed"},
        {"enable.partition.eof", "false"},
        {NULL, NULL}};
    struct kclient_spec spec = {.prog = "creditd", .role = "consumer", .type = RD_KAFKA_CONSUMER,
                                .cfg = c, .bootstrap = bootstrap, .forced = forced, .stop = stop,
                                .stop_on = KCLIENT_STOP_AUTH, .commit_cb = on_commit, .user = k,
                                .acl_need = "Read"};
    if (kclient_new(&k->kc, &spec, err, errlen)) return -1;
    k->rk = kclient_rk(k->kc);
    int rc = kclient_partition_count(k->kc, k->topic, KCLIENT_META_TIMEOUT_MS, &k->npart, err, errlen);
    if (rc == 0 && k->npart > CONSUMER_PARTITIONS_MAX) {
        snprintf(err, errlen, "input topic %s: %d partitions (creditd takes at most %d)", k->topic,
                 (int)k->npart, CONSUMER_PARTITIONS_MAX);
        rc = -1;
    }
    if (rc == 0)
        rc = kclient_cluster_id(k->kc, KCLIENT_META_TIMEOUT_MS, k->cluster_id, sizeof(k->cluster_id),
                                err, errlen);
    if (rc == 0) kclient_set_stop_on(k->kc, 0);
    return rc;
}

int consumer_open(struct consumer **out, const struct config *c, const char *bootstrap,
                  volatile sig_atomic_t *stop, char *err, size_t errlen) {
    struct consumer *k = calloc(1, sizeof(*k));
    if (!k) {
        snprintf(err, errlen, "consumer: out of memory");
        return -1;
    }
    snprintf(k->topic, sizeof(k->topic), "%s", c->topic_input);
    snprintf(k->group, sizeof(k->group), "%s", c->group_id);
    int rc = make_handle(k, c, bootstrap, stop, err, errlen);
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
        consumer_close(k, KCLIENT_CLOSE_MS);
        return rc == KCLIENT_STOPPED ? KCLIENT_STOPPED : -1;
    }
    *out = k;
    return 0;
}

void consumer_close(struct consumer *k, int timeout_ms) {
    if (!k) return;
    if (k->kc) {
        rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
        if (k->assigned && k->paused) e = rd_kafka_resume_partitions(k->rk, k->assigned);
        if (e) log_warn("consumer", "resuming before close: %s", rd_kafka_err2str(e));
        e = k->assigned ? rd_kafka_assign(k->rk, NULL) : RD_KAFKA_RESP_ERR_NO_ERROR;
        if (e) log_warn("consumer", "unassigning: %s", rd_kafka_err2str(e));
        kclient_consumer_close(k->kc, timeout_ms);
        /* librdkafka 2.0 leaks a partition reference on pause/resume (see
         * confluentinc/librdkafka#4486, #4674): rd_kafka_destroy() then waits
         * forever for a broker thread.  The handle is only closed at exit,
         * after the store committed everything, so it is left to the OS. */
        if (k->ever_paused) kclient_abandon(k->kc);
        else kclient_destroy(k->kc);
    }
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

/* ---- start-up check of the group ------------------------------------------ */

/* One OffsetFetch of l (Describe on the group and the topic), retried for
 * transient errors until deadline.  0 (also when the coordinator did not
 * answer in time: the group only serves monitoring), -1 when refused,
 * KCLIENT_STOPPED. */
static int fetch_check(struct consumer *k, rd_kafka_topic_partition_list_t *l, int64_t deadline,
                       char *err, size_t errlen) {
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR__TIMED_OUT;
    for (;;) {
        int64_t left = deadline - kclient_now_ms();
        if (left <= 0) break;
        e = commit_error(rd_kafka_committed(k->rk, l, left < KCLIENT_CALL_MS ? (int)left : KCLIENT_CALL_MS), l);
        if (is_denied(e)) {
            denied(k, e, err, errlen);
            return -1;
        }
        if (!e) return 0;
        int rc = kclient_serve(k->kc, KCLIENT_POLL_MS, err, errlen); /* errors, stop flag */
        if (rc) return rc;
        if (kclient_group_denied(k->kc)) { /* FindCoordinator refused: no offsets will come */
            denied(k, RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED, err, errlen);
            return -1;
        }
    }
    log_warn("consumer", "group %s: could not read its offsets at start-up (%s): going on, the "
             "offsets are published when the coordinator answers", k->group, rd_kafka_err2str(e));
    return 0;
}

/* Commit the offsets of l (Read on the group) and wait for the result on a
 * queue of its own, polled in slices until deadline.  Like fetch_check. */
static int commit_check(struct consumer *k, rd_kafka_topic_partition_list_t *l, int64_t deadline,
                        char *err, size_t errlen) {
    rd_kafka_queue_t *q = rd_kafka_queue_new(k->rk);
    rd_kafka_resp_err_t e = rd_kafka_commit_queue(k->rk, l, q, NULL, NULL);
    int rc = 0, done = e != RD_KAFKA_RESP_ERR_NO_ERROR;
    while (!done && rc == 0) {
        int64_t left = deadline - kclient_now_ms();
        if (left <= 0) break;
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, left < KCLIENT_POLL_MS ? (int)left : KCLIENT_POLL_MS);
        if (ev && rd_kafka_event_type(ev) == RD_KAFKA_EVENT_OFFSET_COMMIT) {
            e = commit_error(rd_kafka_event_error(ev), rd_kafka_event_topic_partition_list(ev));
            done = 1;
        }
        if (ev) rd_kafka_event_destroy(ev);
        if (!done) rc = kclient_serve(k->kc, 0, err, errlen);
        if (!done && kclient_group_denied(k->kc)) {
            e = RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED;
            done = 1;
        }
    }
    rd_kafka_queue_destroy(q);
    if (rc) return rc;
    if (is_denied(e)) {
        denied(k, e, err, errlen);
        return -1;
    }
    if (!done || e)
        log_warn("consumer", "group %s: publishing the stored offsets at start-up: %s (going on)",
                 k->group, done ? rd_kafka_err2str(e) : "no answer in time");
    return 0;
}

int consumer_check_group(struct consumer *k, const int32_t *parts, const int64_t *next, size_t n,
                         char *err, size_t errlen) {
    int64_t deadline = kclient_now_ms() + KCLIENT_META_TIMEOUT_MS;
    rd_kafka_topic_partition_list_t *all = rd_kafka_topic_partition_list_new((int)n);
    rd_kafka_topic_partition_list_t *known = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++) {
        rd_kafka_topic_partition_list_add(all, k->topic, parts[i]);
        if (next[i] != CONSUMER_NEVER) rd_kafka_topic_partition_list_add(known, k->topic, parts[i])->offset = next[i];
    }
    int rc = fetch_check(k, all, deadline, err, errlen);
    if (rc == 0 && known->cnt > 0) rc = commit_check(k, known, deadline, err, errlen);
    rd_kafka_topic_partition_list_destroy(all);
    rd_kafka_topic_partition_list_destroy(known);
    return rc;
}

int consumer_message_error(struct kclient *kc, const char *topic, const char *group,
                           const rd_kafka_message_t *m, char *err, size_t errlen) {
    rd_kafka_resp_err_t e = m->err;
    const char *name = m->rkt ? rd_kafka_topic_name(m->rkt) : topic;
    switch (e) {
    case RD_KAFKA_RESP_ERR__PARTITION_EOF:
        return 0;
    case RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET:
    case RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE:
        snprintf(err, errlen,
                 "input %s [%d]: the next offset to apply is no longer in the log (retention "
                 "gap?): %s. Refusing to skip events; restore the missing events or replay "
                 "them with credit-replay before restarting",
                 name, (int)m->partition, rd_kafka_message_errstr(m));
        return -1;
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
        kclient_denied(kc, "topic", topic, err, errlen);
        return -1;
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
        kclient_denied(kc, "group", group, err, errlen);
        return -1;
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
        snprintf(err, errlen, "input %s [%d]: %s", name, (int)m->partition,
                 rd_kafka_message_errstr(m));
        return -1;
    case RD_KAFKA_RESP_ERR__FATAL: {
        char buf[KCLIENT_ERRLEN / 2];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(kclient_rk(kc), buf, sizeof(buf));
        snprintf(err, errlen, "consumer: fatal Kafka error: %s: %s", rd_kafka_err2name(orig), buf);
        return -1;
    }
    default:
        log_warn("consumer", "%s (transient, retrying)", rd_kafka_message_errstr(m));
        return 0;
    }
}

static int on_msg_error(struct consumer *k, const rd_kafka_message_t *m, char *err, size_t errlen) {
    return consumer_message_error(k->kc, k->topic, k->group, m, err, errlen);
}

int consumer_poll_batch(struct consumer *k, rd_kafka_message_t **msgs, size_t max, int max_ms,
                        int linger_ms, volatile sig_atomic_t *stop, size_t *n, char *err,
                        size_t errlen) {
    int64_t deadline = kclient_now_ms() + max_ms, last = 0;
    *n = 0;
    while (*n < max && !*stop) {
        if (kclient_failed(k->kc, err, errlen)) return -1;
        if (k->denied[0]) {
            snprintf(err, errlen, "%s", k->denied);
            return -1;
        }
        int64_t left = consumer_batch_wait(kclient_now_ms(), deadline, *n, last, linger_ms);
        if (left < 0) break;
        rd_kafka_message_t *m =
            rd_kafka_consumer_poll(k->rk, left > KCLIENT_POLL_MS ? KCLIENT_POLL_MS : (int)left);
        if (!m && *n > 0 && kclient_now_ms() >= last + linger_ms) break;
        if (!m) continue;
        int rc = 0;
        if (m->err) rc = on_msg_error(k, m, err, errlen);
        else if (m->partition < 0 || m->partition >= k->npart)
            log_warn("consumer", "ignoring message from unexpected partition %d",
                    (int)m->partition);
        else if (k->polled[m->partition] != CONSUMER_NEVER && m->offset < k->polled[m->partition])
            log_warn("consumer", "ignoring re-delivered %s [%d] offset %lld",
                    k->topic, (int)m->partition, (long long)m->offset);
        else {
            kclient_alive(k->kc);
            k->polled[m->partition] = m->offset + 1;
            msgs[(*n)++] = m;
            last = kclient_now_ms();
            continue;
        }
        rd_kafka_message_destroy(m);
        if (rc) return -1;
    }
    return kclient_failed(k->kc, err, errlen) ? -1 : 0;
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
    rd_kafka_resp_err_t e = l->cnt ? rd_kafka_commit(k->rk, l, 1) : RD_KAFKA_RESP_ERR_NO_ERROR;
    if (e) /* the store keeps the offsets: only the lag tools' view is late */
        log_warn("consumer", "publishing group offsets: %s", rd_kafka_err2str(e));
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

int64_t consumer_lag_of(rd_kafka_t *rk, const char *topic, int32_t p, int64_t next) {
    int64_t lo, hi;
    if (rd_kafka_get_watermark_offsets(rk, topic, p, &lo, &hi) || hi < 0) return -1;
    int64_t from = next >= 0 ? next : lo;
    if (from < 0) return -1;
    return hi > from ? hi - from : 0;
}

int64_t consumer_partition_lag(struct consumer *k, int32_t p) {
    if (p < 0 || p >= k->npart) return -1;
    return consumer_lag_of(k->rk, k->topic, p, k->committed[p]);
}

int64_t consumer_lag(struct consumer *k) {
    int64_t lag = 0;
    if (!k->assigned) return -1;
    for (int i = 0; i < k->assigned->cnt; i++) {
        int64_t l = consumer_partition_lag(k, k->assigned->elems[i].partition);
        if (l < 0) return -1;
        lag += l;
    }
    return lag;
}
