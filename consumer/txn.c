/* txn.c -- see txn.h. */
#include "consumer/txn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consumer/changelog.h"
#include "consumer/kclient.h"
#include "consumer/log.h"

#define TXN_CALL_MS 5000          /* one librdkafka transactional call; retried while retriable */
#define TXN_TOTAL_MS 120000       /* a commit or abort that has not ended by then is fatal */
#define OPAQUE_OUTPUT ((void *)1)
#define OPAQUE_CHANGE ((void *)2)

struct txn {
    struct kclient *kc;
    rd_kafka_t *rk;
    volatile sig_atomic_t *stop;
    int32_t npart;
    int64_t *clog_last;           /* [npart]: last changelog offset reported in this txn, or -1 */
    uint64_t produced, reported;  /* messages of this txn: produced, delivery reports seen */
    int open;                     /* a transaction is open */
    char topic[ENG_OUT_NKIND][CONFIG_TOPIC_MAX + 1];
    char changelog[CONFIG_TOPIC_MAX + 1];
    char fp[CHANGELOG_FINGERPRINT_MAX];
    char dr_err[KCLIENT_ERRLEN];  /* the first failed delivery of this txn ("" if none) */
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *user) {
    struct txn *t = user;
    (void)rk;
    t->reported++;
    if (m->err) {
        if (!t->dr_err[0])
            snprintf(t->dr_err, sizeof(t->dr_err), "delivery to %s [%d] failed: %s",
                     rd_kafka_topic_name(m->rkt), (int)m->partition, rd_kafka_err2str(m->err));
        return;
    }
    if (m->_private == OPAQUE_CHANGE && m->partition >= 0 && m->partition < t->npart &&
        m->offset > t->clog_last[m->partition])
        t->clog_last[m->partition] = m->offset;
}

/* err from a librdkafka error object (destroyed); returns the class:
 * 0 retriable, TXN_ABORTED abortable, -1 fatal. */
static int classify(struct txn *t, rd_kafka_error_t *e, const char *what, char *err, size_t errlen) {
    int cls = rd_kafka_error_is_retriable(e) ? 0
              : rd_kafka_error_txn_requires_abort(e) ? TXN_ABORTED : -1;
    if (rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR__TIMED_OUT && !rd_kafka_error_is_fatal(e) &&
        !rd_kafka_error_txn_requires_abort(e))
        cls = 0;
    if (cls == -1 && rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR__FENCED)
        snprintf(err, errlen, "txn: %s: fenced: the broker aborted this instance's transaction "
                 "(it was paused or cut off longer than transaction.timeout.ms and its partitions "
                 "have moved on; a restart rejoins the group), or another creditd runs with a copy "
                 "of this store (same transactional.id): %s", what, rd_kafka_error_string(e));
    else
        snprintf(err, errlen, "txn: %s: %s%s", what, rd_kafka_error_string(e),
                 cls == -1 ? " (fatal)" : "");
    (void)t;
    rd_kafka_error_destroy(e);
    return cls;
}

static int make_producer(struct txn *t, const struct config *c, const char *bootstrap,
                         const char *tid, char *err, size_t errlen) {
    static const struct kclient_prop defaults[] = {
        {"partitioner", "murmur2_random"},   /* as the relay, Java clients and the input */
        {"linger.ms", "5"},
        {"queue.buffering.max.messages", "1000000"},
        {"transaction.timeout.ms", "5000"},  /* a crashed owner's open txn holds readers this long */
        {NULL, NULL}};
    const struct kclient_prop forced[] = {
        {"transactional.id", tid},
        {"enable.idempotence", "true"},
        {"acks", "all"},
        {"compression.type", "none"},
        {"delivery.report.only.error", "false"},
        {NULL, NULL}};
    struct kclient_spec spec = {.prog = "creditd", .role = "txn", .type = RD_KAFKA_PRODUCER,
                                .defaults = defaults, .cfg = c, .bootstrap = bootstrap,
                                .forced = forced, .stop = t->stop, .stop_on = KCLIENT_STOP_AUTH,
                                .user = t, .dr_msg_cb = on_delivery,
                                .acl_need = "Write on the output and changelog topics, Write and "
                                            "Describe on the transactional id"};
    if (kclient_new(&t->kc, &spec, err, errlen)) return -1;
    t->rk = kclient_rk(t->kc);
    return 0;
}

/* init_transactions in slices, so that the stop flag and auth failures end it. */
static int init_txn(struct txn *t, char *err, size_t errlen) {
    int64_t deadline = kclient_now_ms() + KCLIENT_META_TIMEOUT_MS;
    for (;;) {
        rd_kafka_error_t *e = rd_kafka_init_transactions(t->rk, KCLIENT_CALL_MS);
        if (!e) return 0;
        int cls = classify(t, e, "init_transactions", err, errlen);
        if (cls != 0) return -1;
        if (t->stop && *t->stop) return KCLIENT_STOPPED;
        if (kclient_failed(t->kc, err, errlen)) return -1;
        if (kclient_now_ms() > deadline) return -1;
    }
}

int txn_open(struct txn **out, const struct config *c, const char *bootstrap, const char *tid,
             int32_t npart, volatile sig_atomic_t *stop, char *err, size_t errlen) {
    struct txn *t = calloc(1, sizeof(*t));
    if (!t || !(t->clog_last = malloc((size_t)npart * sizeof(int64_t)))) {
        free(t);
        snprintf(err, errlen, "txn: out of memory");
        return -1;
    }
    t->stop = stop;
    t->npart = npart;
    snprintf(t->topic[ENG_OUT_OVERAGE], sizeof(t->topic[0]), "%s", c->topic_overage);
    snprintf(t->topic[ENG_OUT_LEDGER], sizeof(t->topic[0]), "%s", c->topic_ledger);
    snprintf(t->topic[ENG_OUT_REJECTED], sizeof(t->topic[0]), "%s", c->topic_rejected);
    snprintf(t->topic[ENG_OUT_ALERT], sizeof(t->topic[0]), "%s", c->topic_alerts);
    snprintf(t->changelog, sizeof(t->changelog), "%s", c->state_changelog_topic);
    changelog_fingerprint(c, t->fp, sizeof(t->fp));
    int rc = make_producer(t, c, bootstrap, tid, err, errlen);
    if (rc == 0) rc = init_txn(t, err, errlen);
    if (rc == 0) kclient_set_stop_on(t->kc, 0);
    if (rc) {
        txn_close(t);
        return rc;
    }
    *out = t;
    return 0;
}

void txn_close(struct txn *t) {
    if (!t) return;
    if (t->kc) {
        char e[KCLIENT_ERRLEN];
        if (t->open && txn_abort(t, e, sizeof(e))) log_warn("txn", "at close: %s", e);
        kclient_destroy(t->kc);
    }
    free(t->clog_last);
    free(t);
}

int txn_begin(struct txn *t, char *err, size_t errlen) {
    rd_kafka_error_t *e = rd_kafka_begin_transaction(t->rk);
    if (e) {
        classify(t, e, "begin_transaction", err, errlen);
        return -1;
    }
    t->open = 1;
    t->produced = t->reported = 0;
    t->dr_err[0] = 0;
    for (int32_t p = 0; p < t->npart; p++) t->clog_last[p] = -1;
    return 0;
}

/* producev, waiting for room when the queue is full (served by polling). */
static int produce(struct txn *t, const char *topic, int32_t part, const void *key, size_t klen,
                   const void *val, size_t vlen, void *opaque, char *err, size_t errlen) {
    for (;;) {
        rd_kafka_resp_err_t e;
        if (opaque == OPAQUE_CHANGE)
            e = rd_kafka_producev(t->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(part),
                                  RD_KAFKA_V_KEY(key, klen), RD_KAFKA_V_VALUE((void *)val, vlen),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                  RD_KAFKA_V_HEADER(CHANGELOG_HDR_CONFIG, t->fp, -1),
                                  RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
        else
            e = rd_kafka_producev(t->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, klen),
                                  RD_KAFKA_V_VALUE((void *)val, vlen),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                  RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
            t->produced++;
            return 0;
        }
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            snprintf(err, errlen, "txn: producing to %s: %s", topic, rd_kafka_err2str(e));
            return -1;
        }
        rd_kafka_poll(t->rk, KCLIENT_POLL_MS);
        if (kclient_failed(t->kc, err, errlen)) return -1;
    }
}

int txn_output(struct txn *t, enum eng_out_kind kind, const char *key, const char *json, size_t len,
               char *err, size_t errlen) {
    return produce(t, t->topic[kind], RD_KAFKA_PARTITION_UA, key, key ? strlen(key) : 0, json, len,
                   OPAQUE_OUTPUT, err, errlen);
}

int txn_change(struct txn *t, int32_t partition, const uint8_t *key, size_t klen, const uint8_t *val,
               size_t vlen, char *err, size_t errlen) {
    if (partition < 0 || partition >= t->npart) {
        snprintf(err, errlen, "txn: changelog %s has no partition %d (it must have as many "
                 "partitions as the input)", t->changelog, (int)partition);
        return -1;
    }
    return produce(t, t->changelog, partition, key, klen, val, val ? vlen : 0, OPAQUE_CHANGE, err,
                   errlen);
}

/* The transactional calls made after txn_begin, each retried alike. */
enum tcall { T_OFFSETS, T_COMMIT, T_ABORT };
static const char *const tcall_names[] = {"send_offsets_to_transaction", "commit_transaction",
                                          "abort_transaction"};

/* op (T_OFFSETS: offsets with the group metadata md) until it succeeds (0)
 * or fails for good (classify: TXN_ABORTED or -1), or -1 once TXN_TOTAL_MS
 * passed; retriable errors are logged and the call made again. */
static int call_retried(struct txn *t, enum tcall op, rd_kafka_topic_partition_list_t *offsets,
                        const rd_kafka_consumer_group_metadata_t *md, char *err, size_t errlen) {
    int64_t deadline = kclient_now_ms() + TXN_TOTAL_MS;
    for (;;) {
        rd_kafka_error_t *e =
            op == T_OFFSETS ? rd_kafka_send_offsets_to_transaction(t->rk, offsets, md, TXN_CALL_MS)
            : op == T_COMMIT ? rd_kafka_commit_transaction(t->rk, TXN_CALL_MS)
                             : rd_kafka_abort_transaction(t->rk, TXN_CALL_MS);
        if (!e) return 0;
        int cls = classify(t, e, tcall_names[op], err, errlen);
        if (cls != 0) return cls;
        if (kclient_now_ms() > deadline) return -1;
        log_warn("txn", "%s (retrying)", err);
    }
}

static int send_offsets(struct txn *t, rd_kafka_t *consumer, rd_kafka_topic_partition_list_t *offsets,
                        char *err, size_t errlen) {
    rd_kafka_consumer_group_metadata_t *md = rd_kafka_consumer_group_metadata(consumer);
    if (!md) {
        snprintf(err, errlen, "txn: the consumer has no group metadata");
        return -1;
    }
    int rc = call_retried(t, T_OFFSETS, offsets, md, err, errlen);
    rd_kafka_consumer_group_metadata_destroy(md);
    return rc;
}

int txn_commit(struct txn *t, rd_kafka_t *consumer, rd_kafka_topic_partition_list_t *offsets,
               int64_t *clog_next, char *err, size_t errlen) {
    int rc = offsets && offsets->cnt ? send_offsets(t, consumer, offsets, err, errlen) : 0;
    if (rc == 0) rc = call_retried(t, T_COMMIT, NULL, NULL, err, errlen);
    if (rc == TXN_ABORTED) {
        char e2[KCLIENT_ERRLEN];
        if (txn_abort(t, e2, sizeof(e2)) == 0) return TXN_ABORTED;
        size_t n = strlen(err);
        snprintf(err + n, errlen - n, "; then %s", e2);
        return -1;
    }
    if (rc) return -1;
    t->open = 0;
    /* Every message is acknowledged; serve the reports not served yet. */
    for (int i = 0; t->reported < t->produced && i < 100; i++) rd_kafka_poll(t->rk, 10);
    if (t->reported < t->produced || t->dr_err[0]) {
        snprintf(err, errlen, "txn: committed, but %s",
                 t->dr_err[0] ? t->dr_err : "delivery reports are missing");
        return -1;
    }
    for (int32_t p = 0; p < t->npart; p++) clog_next[p] = t->clog_last[p] < 0 ? -1 : t->clog_last[p] + 1;
    return 0;
}

int txn_abort(struct txn *t, char *err, size_t errlen) {
    if (!t->open) return 0;
    if (call_retried(t, T_ABORT, NULL, NULL, err, errlen)) return -1;
    t->open = 0;
    return 0;
}
