/* group.c -- see group.h; the argument is in consumer/README.md "Group mode".
 *
 * One thread (the caller's) does everything but parsing: the group
 * consumer's poll (whose rebalance callback restores and assigns), the
 * engine, the store's write txns, the transactional producer and the
 * standby reader.  The batch's messages are parsed ahead on
 * input.parse_threads threads (consumer/parseq.h) while they are applied;
 * nothing is in that queue while the consumer polls.  A batch:
 *
 *   store_begin; the engine applies each message (its changes captured for
 *   the message's partition, its outputs kept in memory); the next input
 *   offsets (captured too); the expiry sweep (owned partitions only);
 *   begin_transaction; the outputs; the captured changes as changelog
 *   records; send_offsets_to_transaction(offsets, group metadata);
 *   commit_transaction; only then the changelog offsets into the store and
 *   store_commit.
 *
 * The store never holds a batch Kafka did not commit.  If creditd dies
 * between the two commits the store is behind its changelog, and the next
 * restore (at start every partition is assigned anew) reads the missing
 * records.  An aborted transaction aborts the store txn and seeks the batch's
 * partitions back to where the batch started. */
#include "consumer/group.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "consumer/changelog.h"
#include "consumer/consumer.h"
#include "consumer/http.h"
#include "consumer/kclient.h"
#include "consumer/log.h"
#include "consumer/metrics.h"
#include "consumer/parseq.h"
#include "consumer/pipeline.h"
#include "consumer/txn.h"
#include "engine/engine.h"
#include "store/store.h"

#define ERRLEN 1024
#define STORE_STATS_MS 5000
#define LIST_TEXT 512              /* "0,3,5,..." in log lines */
#define STANDBY_POLL_MS 1         /* standby reading per step while events flow */
#define STANDBY_IDLE_MS 50        /* ... and after a step without events */
#define STANDBY_LOG_MS 5000
#define COMMITTED_TIMEOUT_MS 120000 /* stable group offsets at assignment */
#ifndef CREDITD_VERSION
#define CREDITD_VERSION "dev"
#endif

/* One output of the batch, until its transaction. */
struct outrec { enum eng_out_kind kind; size_t key, json, len; int has_key; };

struct outbuf {
    struct outrec *r;
    size_t n, cap;
    char *bytes;
    size_t used, bcap;
};

struct group {
    const struct config *c;
    volatile sig_atomic_t *stop;
    struct store *store;
    struct engine *eng;
    struct metrics *metrics;
    struct http *http;
    struct kclient *kc;           /* the group consumer */
    rd_kafka_t *rk;
    struct txn *tx;
    struct changelog *cl;         /* restores (its own consumer) */
    struct changelog *sb;         /* standby replicas (another), or NULL */
    struct parseq *pq;            /* the batch's messages parsed ahead */
    int32_t npart;
    char cluster_id[KCLIENT_ID_MAX];
    uint8_t *owned;               /* [npart] */
    int32_t *parts;               /* owned, ascending */
    int32_t *parts_scratch;       /* [npart] */
    size_t nparts;
    int64_t *next;                /* [npart]: next input offset committed (owned partitions) */
    int64_t *lag;                 /* [npart] scratch */
    int64_t *bnext, *bfirst;      /* [npart]: this batch's next / first offset, or -1 */
    int64_t *clog_next;           /* [npart]: from txn_commit */
    rd_kafka_message_t **batch;
    size_t n;
    double *lat;                  /* [batch.max_messages]: latencies of this batch */
    size_t nlat;
    struct outbuf out;
    struct metrics_batch mb;
    int idle;                     /* the last poll brought no event */
    uint64_t sb_records;          /* standby records since the last standby line */
    int64_t sb_log_ms;
    int need_restore;             /* the store missed a committed batch: restore owned partitions */
    int emit_failed;              /* the output buffer could not grow */
    int fatal;                    /* the rebalance callback failed: stop */
    int halted;
    int64_t store_stats_ms;
    struct { int64_t at_ms; uint64_t events, batches, aborted; } st;
    char fatal_err[ERRLEN];
    char err[ERRLEN];
};

/* ---- the batch's outputs, kept until its transaction ---------------------- */

static int outbuf_bytes(struct outbuf *o, const void *p, size_t n, size_t *at) {
    if (o->used + n + 1 > o->bcap) {
        size_t cap = o->bcap ? o->bcap : 1 << 20;
        while (cap < o->used + n + 1) cap *= 2;
        char *b = realloc(o->bytes, cap);
        if (!b) return -1;
        o->bytes = b;
        o->bcap = cap;
    }
    memcpy(o->bytes + o->used, p, n);
    o->bytes[o->used + n] = 0;
    *at = o->used;
    o->used += n + 1;
    return 0;
}

/* store_emit_fn: outputs go to the batch's buffer instead of the outbox. */
static int on_emit(void *arg, enum eng_out_kind kind, const char *key, const char *json, size_t len) {
    struct group *g = arg;
    struct outbuf *o = &g->out;
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 4096;
        struct outrec *r = realloc(o->r, cap * sizeof(*r));
        if (!r) { g->emit_failed = 1; return -1; }
        o->r = r;
        o->cap = cap;
    }
    struct outrec *r = &o->r[o->n];
    r->kind = kind;
    r->len = len;
    r->has_key = key != NULL;
    if ((key && outbuf_bytes(o, key, strlen(key), &r->key)) || outbuf_bytes(o, json, len, &r->json)) {
        g->emit_failed = 1;
        return -1;
    }
    o->n++;
    return 0;
}

/* ---- partitions ----------------------------------------------------------- */

static void list_text(const rd_kafka_topic_partition_list_t *l, char *buf, size_t len) {
    size_t w = 0;
    buf[0] = 0;
    for (int i = 0; i < l->cnt && w + 16 < len; i++)
        w += (size_t)snprintf(buf + w, len - w, "%s%d", i ? "," : "", (int)l->elems[i].partition);
    if (l->cnt == 0) snprintf(buf, len, "none");
}

/* owned[] changed: the list, the sweep, the metrics, the standby set. */
static int owned_changed(struct group *g, char *err, size_t errlen) {
    g->nparts = 0;
    for (int32_t p = 0; p < g->npart; p++)
        if (g->owned[p]) g->parts[g->nparts++] = p;
    if (metrics_set_partitions(g->metrics, g->parts, g->nparts, err, errlen)) return -1;
    if (!g->c->state_standby_replicas) return 0;
    size_t k = 0;   /* parts_scratch: free between batches (rebalances come from the poll) */
    for (int32_t p = 0; p < g->npart; p++)
        if (!g->owned[p]) g->parts_scratch[k++] = p;
    return changelog_follow(g->sb, g->store, g->parts_scratch, k, err, errlen);
}

/* The stored next input offset of each partition of l (the changelog
 * restored it): into l's offsets (the beginning when none). */
static int stored_offsets(struct group *g, rd_kafka_topic_partition_list_t *l, char *err,
                          size_t errlen) {
    int rc = store_begin(g->store, err, errlen);
    for (int i = 0; rc == 0 && i < l->cnt; i++) {
        int64_t next;
        int32_t p = l->elems[i].partition;
        rc = store_offset_get(g->store, g->c->topic_input, p, &next, err, errlen);
        if (rc == STORE_NOTFOUND) { next = RD_KAFKA_OFFSET_BEGINNING; rc = 0; }
        if (rc == 0 && l->elems[i].offset >= 0 && next >= 0 && l->elems[i].offset != next)
            log_warn("group", "input %s [%d]: the group's committed offset %lld differs from the "
                     "changelog's %lld: following the changelog (it is committed with the state)",
                     g->c->topic_input, (int)p, (long long)l->elems[i].offset, (long long)next);
        l->elems[i].offset = next;
        if (p >= 0 && p < g->npart) g->next[p] = next;
    }
    store_abort(g->store);
    return rc ? -1 : 0;
}

static int assign(struct group *g, rd_kafka_topic_partition_list_t *l, char *err, size_t errlen) {
    rd_kafka_error_t *ae = rd_kafka_incremental_assign(g->rk, l);
    if (!ae) return 0;
    snprintf(err, errlen, "incremental_assign: %s", rd_kafka_error_string(ae));
    rd_kafka_error_destroy(ae);
    return -1;
}

/* The group's committed offsets of l, asked with require_stable (set by
 * read_committed): the answer waits until no transaction of a previous
 * owner is pending on them.  Waiting is the point: restoring before a
 * pending transaction ended could miss a batch it commits later.  Retried
 * until COMMITTED_TIMEOUT_MS (beyond the longest transaction.timeout.ms a
 * broker aborts after); then creditd stops (exit 2) rather than risk it. */
static int stable_offsets(struct group *g, rd_kafka_topic_partition_list_t *l, const char *text,
                          char *err, size_t errlen) {
    int64_t deadline = kclient_now_ms() + COMMITTED_TIMEOUT_MS, warned = kclient_now_ms();
    for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_committed(g->rk, l, KCLIENT_CALL_MS * 4);
        for (int i = 0; !e && i < l->cnt; i++) e = l->elems[i].err;
        if (!e) return 0;
        if (*g->stop) return KCLIENT_STOPPED;
        int64_t now = kclient_now_ms();
        if (now > deadline) {
            snprintf(err, errlen, "partitions %s: the group's committed offsets stayed unstable or "
                     "unreadable for %d s (%s): a previous owner's transaction is still open; "
                     "stopping rather than restoring before it ends", text,
                     COMMITTED_TIMEOUT_MS / 1000, rd_kafka_err2str(e));
            return -1;
        }
        if (now - warned >= 5000) {
            log_warn("group", "partitions %s: waiting for stable committed offsets (%s)", text,
                     rd_kafka_err2str(e));
            warned = now;
        }
    }
}

/* Newly assigned partitions: wait until no transaction of a previous owner
 * is pending on them (the committed offsets are asked with require_stable,
 * which read_committed sets), restore their state from the changelog, and
 * assign them at the offsets the restored state holds. */
static int on_assign(struct group *g, rd_kafka_topic_partition_list_t *l, char *err, size_t errlen) {
    char text[LIST_TEXT];
    if (l->cnt == 0) return assign(g, l, err, errlen);  /* cooperative: nothing new this round */
    list_text(l, text, sizeof(text));
    int32_t *ps = malloc(((size_t)l->cnt + 1) * sizeof(*ps));
    if (!ps) { snprintf(err, errlen, "out of memory"); return -1; }
    for (int i = 0; i < l->cnt; i++) {
        ps[i] = l->elems[i].partition;
        if (ps[i] < 0 || ps[i] >= g->npart) {
            free(ps);
            snprintf(err, errlen, "assigned partition %d of %s, which has %d", (int)ps[i],
                     g->c->topic_input, (int)g->npart);
            return -1;
        }
        g->owned[ps[i]] = 1;   /* the standby reader lets go of them first */
    }
    int rc = owned_changed(g, err, errlen);
    if (rc == 0) rc = stable_offsets(g, l, text, err, errlen);
    uint64_t records = 0;
    int64_t t0 = kclient_now_ms();
    if (rc == 0) rc = changelog_restore(g->cl, g->store, ps, (size_t)l->cnt, &records, err, errlen);
    free(ps);
    if (rc == 0) rc = stored_offsets(g, l, err, errlen);
    if (rc) return rc == KCLIENT_STOPPED ? KCLIENT_STOPPED : -1;
    metrics_add_restored(g->metrics, records);
    log_info("group", "assigned partitions %s: restored %" PRIu64 " changelog records in %.1f s",
             text, records, (double)(kclient_now_ms() - t0) / 1000.0);
    return assign(g, l, err, errlen);
}

/* Revoked (or lost) partitions: the batch being collected forgets their
 * messages (the next owner reads them from the committed offset). */
static int on_revoke(struct group *g, rd_kafka_topic_partition_list_t *l, char *err, size_t errlen) {
    char text[LIST_TEXT];
    if (l->cnt == 0) {
        rd_kafka_error_t *ue = rd_kafka_incremental_unassign(g->rk, l);
        if (ue) rd_kafka_error_destroy(ue);
        return 0;
    }
    list_text(l, text, sizeof(text));
    for (int i = 0; i < l->cnt; i++) {
        int32_t p = l->elems[i].partition;
        if (p >= 0 && p < g->npart) g->owned[p] = 0;
    }
    size_t k = 0;
    for (size_t i = 0; i < g->n; i++) {
        rd_kafka_message_t *m = g->batch[i];
        if (m->partition >= 0 && m->partition < g->npart && g->owned[m->partition]) g->batch[k++] = m;
        else rd_kafka_message_destroy(m);
    }
    log_info("group", "%s partitions %s (%zu collected messages dropped)",
             rd_kafka_assignment_lost(g->rk) ? "lost" : "revoked", text, g->n - k);
    g->n = k;
    rd_kafka_error_t *ue = rd_kafka_incremental_unassign(g->rk, l);
    if (ue) {
        snprintf(err, errlen, "incremental_unassign: %s", rd_kafka_error_string(ue));
        rd_kafka_error_destroy(ue);
        return -1;
    }
    return owned_changed(g, err, errlen);
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t e, rd_kafka_topic_partition_list_t *l,
                         void *user) {
    struct group *g = user;
    int rc;
    (void)rk;
    if (l->cnt > 0)
        metrics_add_rebalance(g->metrics, e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS ? "assigned" : "revoked");
    if (e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS && !g->fatal)
        rc = on_assign(g, l, g->fatal_err, sizeof(g->fatal_err));
    else if (e == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
        rc = on_revoke(g, l, g->fatal_err, sizeof(g->fatal_err));
    else if (e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
        rc = 0;   /* stopping: not assigned; the close revokes nothing of it */
    else {
        snprintf(g->fatal_err, sizeof(g->fatal_err), "rebalance failed: %s", rd_kafka_err2str(e));
        rc = -1;
    }
    if (rc == KCLIENT_STOPPED) rc = 0;  /* the loop sees the stop flag */
    if (rc) g->fatal = 1;
}

/* ---- start-up ------------------------------------------------------------- */

/* The consumer: group membership, the input's partition count, the cluster id. */
static int open_consumer(struct group *g, char *err, size_t errlen) {
    const struct config *c = g->c;
    static const struct kclient_prop defaults[] = {
        {"session.timeout.ms", "6000"},    /* fail-over: a dead member is noticed after this */
        {"heartbeat.interval.ms", "1000"},
        {NULL, NULL}};
    const struct kclient_prop forced[] = {
        {"group.id", c->group_id},
        {"partition.assignment.strategy", "cooperative-sticky"},
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"auto.offset.reset", "error"},
        {"isolation.level", "read_committed"},
        {"enable.partition.eof", "false"},
        {NULL, NULL}};
    struct kclient_spec spec = {.prog = "creditd", .role = "consumer", .type = RD_KAFKA_CONSUMER,
                                .defaults = defaults, .cfg = c, .forced = forced, .stop = g->stop,
                                .stop_on = KCLIENT_STOP_AUTH, .rebalance_cb = on_rebalance,
                                .user = g, .acl_need = "Read"};
    if (kclient_new(&g->kc, &spec, err, errlen)) return -1;
    g->rk = kclient_rk(g->kc);
    int rc = kclient_partition_count(g->kc, c->topic_input, KCLIENT_META_TIMEOUT_MS, &g->npart,
                                     err, errlen);
    if (rc == 0)
        rc = kclient_cluster_id(g->kc, KCLIENT_META_TIMEOUT_MS, g->cluster_id,
                                sizeof(g->cluster_id), err, errlen);
    return rc;
}

/* The transactional.id: creditd-GROUP-ID with ID random, made once per
 * store (meta "group.txn_id"): a restart of this instance fences its own
 * previous producer, and two stores never share one. */
static int txn_id(struct group *g, char *tid, size_t len, char *err, size_t errlen) {
    int rc = store_meta_get(g->store, "group.txn_id", tid, len, err, errlen);
    if (rc != STORE_NOTFOUND) return rc ? -1 : 0;
    uint8_t r[8];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    ssize_t got = fd >= 0 ? read(fd, r, sizeof(r)) : -1;
    if (fd >= 0) close(fd);
    if (got != (ssize_t)sizeof(r)) {
        snprintf(err, errlen, "reading /dev/urandom for the transactional id failed");
        return -1;
    }
    snprintf(tid, len, "creditd-%.200s-%02x%02x%02x%02x%02x%02x%02x%02x", g->c->group_id, r[0],
             r[1], r[2], r[3], r[4], r[5], r[6], r[7]);
    return store_meta_put(g->store, "group.txn_id", tid, err, errlen) ? -1 : 0;
}

/* Pinned facts (as static mode's, plus the mode) and the transactional id. */
static int startup_txn(struct group *g, char *tid, size_t len, char *err, size_t errlen) {
    char np[16];
    snprintf(np, sizeof(np), "%d", (int)g->npart);
    for (;;) {
        if (store_begin(g->store, err, errlen)) return -1;
        int rc = pipeline_pin(g->store, g->c, "kafka.cluster_id", g->cluster_id, "Kafka cluster id", err, errlen);
        if (rc == 0) rc = pipeline_pin(g->store, g->c, "input.topic", g->c->topic_input, "input topic", err, errlen);
        if (rc == 0) rc = pipeline_pin(g->store, g->c, "input.partitions", np, "the input topic's partition count", err, errlen);
        if (rc == 0) rc = pipeline_pin(g->store, g->c, "input.assignment", "group", "input.assignment", err, errlen);
        if (rc == 0) rc = txn_id(g, tid, len, err, errlen);
        if (rc == 0) rc = store_commit(g->store, err, errlen);
        else if (store_map_full(g->store)) { store_abort(g->store); rc = STORE_EMAPFULL; }
        else store_abort(g->store);
        if (rc != STORE_EMAPFULL) return rc ? -1 : 0;
    }
}

static int alloc_arrays(struct group *g) {
    size_t np = (size_t)g->npart, bm = (size_t)g->c->batch_max_messages;
    g->owned = calloc(np, 1);
    g->parts = malloc(np * sizeof(*g->parts));
    g->parts_scratch = malloc(np * sizeof(*g->parts_scratch));
    g->next = malloc(np * sizeof(*g->next));
    g->lag = malloc(np * sizeof(*g->lag));
    g->bnext = malloc(np * sizeof(*g->bnext));
    g->bfirst = malloc(np * sizeof(*g->bfirst));
    g->clog_next = malloc(np * sizeof(*g->clog_next));
    g->batch = malloc(bm * sizeof(*g->batch));
    g->lat = malloc(bm * sizeof(*g->lat));
    if (!g->owned || !g->parts || !g->parts_scratch || !g->next || !g->lag || !g->bnext || !g->bfirst || !g->clog_next ||
        !g->batch || !g->lat) {
        snprintf(g->err, sizeof(g->err), "out of memory");
        return -1;
    }
    for (size_t p = 0; p < np; p++) g->next[p] = g->bnext[p] = g->bfirst[p] = -1;
    return 0;
}

static int start(struct group *g) {
    const struct config *c = g->c;
    char tid[300], *err = g->err;
    size_t errlen = sizeof(g->err);
    if (!config_has_bootstrap(c)) {
        snprintf(err, errlen, "input.assignment = group needs kafka.bootstrap.servers (the "
                 "embedded broker serves static mode only)");
        return -1;
    }
    struct metrics_info mi = {CREDITD_VERSION, rd_kafka_version_str(),
                              {c->topic_overage, c->topic_ledger, c->topic_rejected, c->topic_alerts},
                              c->outbox_max_pending};
    metrics_set_info(g->metrics, &mi);
    if (pipeline_open_store(c, &g->store, &g->eng, err, errlen)) return -1;
    if (http_start(&g->http, c, g->store, g->metrics, err, errlen)) return -1;
    metrics_set_store_open(g->metrics, 1);
    int rc = open_consumer(g, err, errlen);
    if (rc == 0) rc = startup_txn(g, tid, sizeof(tid), err, errlen);
    if (rc == 0) rc = alloc_arrays(g);
    if (rc == 0) rc = parseq_new(&g->pq, (int)c->input_parse_threads, NULL, err, errlen);
    if (rc == 0) rc = changelog_open(&g->cl, c, NULL, "restore", g->stop, err, errlen);
    if (rc == 0 && c->state_standby_replicas)
        rc = changelog_open(&g->sb, c, NULL, "standby", g->stop, err, errlen);
    if (rc == 0 && changelog_partition_count(g->cl) != g->npart) {
        snprintf(err, errlen, "changelog %s has %d partitions, the input %s %d: create it with as "
                 "many (compacted; README \"Group mode\")", c->state_changelog_topic,
                 (int)changelog_partition_count(g->cl), c->topic_input, (int)g->npart);
        rc = -1;
    }
    if (rc == 0) rc = txn_open(&g->tx, c, NULL, tid, g->npart, g->stop, err, errlen);
    if (rc) return rc == KCLIENT_STOPPED ? KCLIENT_STOPPED : -1;
    store_set_emit_hook(g->store, on_emit, g);
    if (owned_changed(g, err, errlen)) return -1;   /* standby: every partition, to begin with */
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, c->topic_input, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(g->rk, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (e) {
        snprintf(err, errlen, "subscribe to %s: %s", c->topic_input, rd_kafka_err2str(e));
        return -1;
    }
    kclient_set_stop_on(g->kc, 0);
    log_info("group", "group mode: group %s, topic %s (%d partitions), changelog %s, transactional "
             "id %s, standby replicas %d, store %s", c->group_id, c->topic_input, (int)g->npart,
             c->state_changelog_topic, tid, (int)c->state_standby_replicas, c->store_path);
    g->st.at_ms = kclient_now_ms();
    return 0;
}

/* ---- the batch ------------------------------------------------------------ */

/* Collect up to batch.max_messages within batch.max_ms, ending once none
 * came for batch.linger_ms (as consumer_poll_batch; the rebalance callback
 * runs in here and may drop messages of revoked partitions). */
static int poll_batch(struct group *g) {
    int64_t deadline = kclient_now_ms() + g->c->batch_max_ms, last = 0, linger = g->c->batch_linger_ms;
    while (g->n < (size_t)g->c->batch_max_messages && !*g->stop && !g->fatal) {
        if (kclient_failed(g->kc, g->err, sizeof(g->err))) return -1;
        int64_t left = consumer_batch_wait(kclient_now_ms(), deadline, g->n, last, linger);
        if (left < 0) break;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(g->rk, left > KCLIENT_POLL_MS ? KCLIENT_POLL_MS : (int)left);
        if (!m && g->n > 0 && kclient_now_ms() >= last + linger) break;
        if (!m) continue;
        if (m->err) {
            int rc = consumer_message_error(g->kc, g->c->topic_input, g->c->group_id, m, g->err, sizeof(g->err));
            rd_kafka_message_destroy(m);
            if (rc) return -1;
        } else if (m->partition < 0 || m->partition >= g->npart || !g->owned[m->partition]) {
            log_warn("consumer", "ignoring a message of partition %d, not owned", (int)m->partition);
            rd_kafka_message_destroy(m);
        } else {
            kclient_alive(g->kc);
            g->batch[g->n++] = m;
            last = kclient_now_ms();
        }
    }
    if (g->fatal) {
        snprintf(g->err, sizeof(g->err), "%s", g->fatal_err);
        return -1;
    }
    return 0;
}

/* Inside the store txn: every message through the engine (changes captured
 * for its partition), then the next offsets and the counters. */
static int apply_messages(struct group *g) {
    struct engine_store ops;
    struct store_counters cnt = {0, 0, 0};
    size_t pushed = 0;
    store_engine_ops(g->store, &ops);
    for (size_t i = 0; i < g->n; i++) {
        const rd_kafka_message_t *m = g->batch[i];
        struct parseq_item it;
        if (pipeline_next_parsed(g->pq, g->batch, g->n, &pushed, i, &it, g->err, sizeof(g->err)))
            return -1;
        struct engine_msg em = {it.buf, it.len, g->c->topic_input, m->partition, m->offset};
        struct engine_result res;
        char why[ERRLEN];
        size_t nout = g->out.n;
        store_capture_partition(g->store, m->partition);
        if (engine_apply_prepared(g->eng, &ops, &em, it.root, it.jerr, it.pre, &res, why, sizeof(why))) {
            if (store_map_full(g->store) || g->emit_failed) {
                snprintf(g->err, sizeof(g->err), "%.900s%s", why, g->emit_failed ? " (out of memory for the outputs)" : "");
                return -1;
            }
            g->halted = 1;
            pipeline_halt_text(g->c, m, why, g->err, sizeof(g->err));
            return -1;
        }
        metrics_batch_add(&g->mb, &res);
        if (g->out.n > nout) {
            int64_t ts = rd_kafka_message_timestamp(m, NULL);
            g->lat[g->nlat++] = ts > 0 ? (double)ts / 1000.0 : -1.0;
        }
        if (res.outcome == ENG_APPLIED) cnt.applied++;
        else if (res.outcome == ENG_DUPLICATE) cnt.duplicates++;
        else cnt.rejected++;
        if (g->bfirst[m->partition] < 0) g->bfirst[m->partition] = m->offset;
        g->bnext[m->partition] = m->offset + 1;
    }
    for (int32_t p = 0; p < g->npart; p++) {
        if (g->bnext[p] < 0) continue;
        store_capture_partition(g->store, p);
        if (store_offset_put(g->store, g->c->topic_input, p, g->bnext[p], g->err, sizeof(g->err)))
            return -1;
    }
    if (store_counters_add(g->store, &cnt, g->err, sizeof(g->err))) return -1;
    /* Expired keys only of the batch's partitions: every changelog record
     * of a transaction then belongs to a partition whose offsets it commits,
     * so a new owner's wait for stable offsets covers all of them. */
    size_t k = 0;
    for (int32_t p = 0; p < g->npart; p++)
        if (g->bnext[p] >= 0) g->parts_scratch[k++] = p;
    if (store_sweep_only(g->store, g->parts_scratch, k, g->err, sizeof(g->err))) return -1;
    return store_sweep(g->store, g->err, sizeof(g->err));
}

static int change_cb(void *arg, int32_t partition, const uint8_t *key, size_t klen,
                     const uint8_t *val, size_t vlen) {
    struct group *g = arg;
    return txn_change(g->tx, partition, key, klen, val, vlen, g->err, sizeof(g->err)) ? 1 : 0;
}

/* The Kafka transaction of the applied batch: outputs, changes, offsets.
 * 0, TXN_ABORTED or -1. */
static int kafka_txn(struct group *g) {
    if (txn_begin(g->tx, g->err, sizeof(g->err))) return -1;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < g->out.n; i++) {
        const struct outrec *r = &g->out.r[i];
        rc = txn_output(g->tx, r->kind, r->has_key ? g->out.bytes + r->key : NULL,
                        g->out.bytes + r->json, r->len, g->err, sizeof(g->err));
    }
    if (rc == 0) rc = store_changes_scan(g->store, change_cb, g, g->err, sizeof(g->err));
    if (rc) {
        char e2[ERRLEN];
        if (txn_abort(g->tx, e2, sizeof(e2))) log_warn("txn", "%s", e2);
        return -1;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(g->npart);
    for (int32_t p = 0; p < g->npart; p++)
        if (g->bnext[p] >= 0) rd_kafka_topic_partition_list_add(l, g->c->topic_input, p)->offset = g->bnext[p];
    rc = txn_commit(g->tx, g->rk, l, g->clog_next, g->err, sizeof(g->err));
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

/* After an aborted transaction: read the batch's partitions again from
 * where it started (those still owned; the others' new owner reads them). */
static int seek_back(struct group *g) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(g->npart);
    for (int32_t p = 0; p < g->npart; p++)
        if (g->bfirst[p] >= 0 && g->owned[p])
            rd_kafka_topic_partition_list_add(l, g->c->topic_input, p)->offset = g->bfirst[p];
    rd_kafka_error_t *e = l->cnt ? rd_kafka_seek_partitions(g->rk, l, KCLIENT_META_TIMEOUT_MS) : NULL;
    int rc = 0;
    for (int i = 0; !e && i < l->cnt; i++)
        if (l->elems[i].err) {
            snprintf(g->err, sizeof(g->err), "seeking %s [%d] back to %lld: %s", g->c->topic_input,
                     (int)l->elems[i].partition, (long long)l->elems[i].offset,
                     rd_kafka_err2str(l->elems[i].err));
            rc = -1;
        }
    if (e) {
        snprintf(g->err, sizeof(g->err), "seeking back after an aborted transaction: %s",
                 rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        rc = -1;
    }
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

static void batch_reset(struct group *g) {
    metrics_batch_reset(&g->mb);
    g->out.n = g->out.used = 0;
    g->nlat = 0;
    g->emit_failed = 0;
    for (int32_t p = 0; p < g->npart; p++) g->bnext[p] = g->bfirst[p] = -1;
}

/* Once Kafka committed: the changelog offsets, then the store commit.  A
 * store that cannot commit now is restored from the changelog later. */
static void store_after_commit(struct group *g) {
    int rc = 0;
    for (int32_t p = 0; rc == 0 && p < g->npart; p++)
        if (g->clog_next[p] >= 0) rc = store_changelog_put(g->store, p, g->clog_next[p], g->err, sizeof(g->err));
    if (rc == 0) rc = store_commit(g->store, g->err, sizeof(g->err));
    else store_abort(g->store);
    if (rc) {
        log_warn("group", "the store could not commit a batch Kafka committed (%s): restoring the "
                 "owned partitions from the changelog", g->err);
        g->need_restore = 1;
    }
}

static void publish_commit(struct group *g, double t0) {
    double wall = pipeline_clock_s(CLOCK_REALTIME);
    for (size_t i = 0; i < g->nlat; i++) g->lat[i] = g->lat[i] < 0 ? 0 : wall - g->lat[i];
    metrics_observe_delivery(g->metrics, g->lat, g->nlat);
    metrics_publish_commit(g->metrics, &g->mb, pipeline_clock_s(CLOCK_MONOTONIC) - t0, wall);
    for (int32_t p = 0; p < g->npart; p++)
        if (g->bnext[p] >= 0) g->next[p] = g->bnext[p];
}

/* Apply and commit the collected batch.  A full map is grown and the batch
 * applied again; an aborted transaction seeks back (the messages come
 * again). */
static int commit_batch_captured(struct group *g) {
    double t0 = pipeline_clock_s(CLOCK_MONOTONIC);
    int rc;
    for (;;) {
        batch_reset(g);
        if (store_begin(g->store, g->err, sizeof(g->err))) return -1;
        rc = apply_messages(g);
        parseq_reset(g->pq);   /* after a failure: what was parsed ahead is not taken */
        if (rc == 0) break;
        int full = store_map_full(g->store);
        store_abort(g->store);
        if (!full) return -1;
    }
    rc = kafka_txn(g);
    if (rc == 0) {
        store_after_commit(g);
        publish_commit(g, t0);
        g->st.events += g->n;
        g->st.batches++;
    } else {
        store_abort(g->store);
        if (rc != TXN_ABORTED) return -1;
        g->st.aborted++;
        log_warn("group", "transaction aborted (%s): the batch's %zu messages are read again", g->err, g->n);
        if (seek_back(g)) return -1;
    }
    for (size_t i = 0; i < g->n; i++) rd_kafka_message_destroy(g->batch[i]);
    g->n = 0;
    return 0;
}

static int commit_batch(struct group *g) {
    store_capture(g->store, 1);   /* only here: restores and the standby apply records */
    int rc = commit_batch_captured(g);
    store_capture(g->store, 0);
    return rc;
}

/* ---- the loop ------------------------------------------------------------- */

static void publish_gauges(struct group *g) {
    struct metrics_gauges mg;
    memset(&mg, 0, sizeof(mg));
    for (size_t i = 0; i < g->nparts; i++)
        g->lag[i] = consumer_lag_of(g->rk, g->c->topic_input, g->parts[i], g->next[g->parts[i]]);
    mg.lag = g->lag;
    metrics_publish_gauges(g->metrics, &mg);
}

static void publish_store(struct group *g, int64_t now) {
    struct store_stats st;
    g->store_stats_ms = now;
    pipeline_publish_store(g->store, g->metrics, &st, "metrics");
}

static void stats_line(struct group *g) {
    int64_t now = kclient_now_ms(), dt = now - g->st.at_ms;
    if (g->c->stats_interval_ms <= 0 || dt < g->c->stats_interval_ms) return;
    int64_t lag = 0;
    for (size_t i = 0; i < g->nparts; i++) lag = g->lag[i] < 0 || lag < 0 ? -1 : lag + g->lag[i];
    log_info(NULL, "stats events/s=%.0f batch=%.0f lag=%lld partitions=%zu aborted=%llu",
             (double)g->st.events * 1000.0 / (double)dt,
             g->st.batches ? (double)g->st.events / (double)g->st.batches : 0.0, (long long)lag,
             g->nparts, (unsigned long long)g->st.aborted);
    g->st.at_ms = now;
    g->st.events = g->st.batches = g->st.aborted = 0;
}

/* A line at most every STANDBY_LOG_MS while the standby applies records. */
static void standby_log(struct group *g, uint64_t records) {
    int64_t now = kclient_now_ms();
    g->sb_records += records;
    if (g->sb_records == 0 || now - g->sb_log_ms < STANDBY_LOG_MS) return;
    log_info("group", "standby: applied %" PRIu64 " changelog records of partitions owned elsewhere "
             "in %.1f s", g->sb_records, (double)(now - g->sb_log_ms) / 1000.0);
    g->sb_records = 0;
    g->sb_log_ms = now;
}

static int step(struct group *g) {
    if (g->need_restore) {
        uint64_t records = 0;
        int rc = changelog_restore(g->cl, g->store, g->parts, g->nparts, &records, g->err, sizeof(g->err));
        if (rc) return rc == KCLIENT_STOPPED ? 0 : -1;
        metrics_add_restored(g->metrics, records);
        g->need_restore = 0;
    }
    if (g->c->state_standby_replicas) {
        uint64_t records = 0;
        /* more time while the input is quiet: a standby catches up then */
        int ms = g->idle ? STANDBY_IDLE_MS : STANDBY_POLL_MS;
        int rc = changelog_follow_poll(g->sb, g->store, ms, &records, g->err, sizeof(g->err));
        if (rc) return rc == KCLIENT_STOPPED ? 0 : -1;
        metrics_add_standby(g->metrics, records);
        standby_log(g, records);
    }
    if (poll_batch(g)) return -1;
    g->idle = g->n == 0;
    if (g->n > 0 && commit_batch(g)) return -1;
    publish_gauges(g);
    int64_t now = kclient_now_ms();
    if (now - g->store_stats_ms >= STORE_STATS_MS) publish_store(g, now);
    stats_line(g);
    return 0;
}

static void stop_all(struct group *g) {
    http_stop(g->http);
    g->http = NULL;
    metrics_set_store_open(g->metrics, 0);
    parseq_free(g->pq);   /* before the messages go: its threads may be parsing their payloads */
    g->pq = NULL;
    for (size_t i = 0; i < g->n; i++) rd_kafka_message_destroy(g->batch[i]);
    g->n = 0;
    if (g->kc) {
        g->fatal = 1;   /* a last assignment during the close is not restored */
        kclient_consumer_close(g->kc, KCLIENT_META_TIMEOUT_MS / 3);
        kclient_destroy(g->kc);
    }
    txn_close(g->tx);
    changelog_close(g->cl);
    changelog_close(g->sb);
    engine_free(g->eng);
    store_close(g->store);
    free(g->owned);
    free(g->parts);
    free(g->parts_scratch);
    free(g->next);
    free(g->lag);
    free(g->bnext);
    free(g->bfirst);
    free(g->clog_next);
    free(g->batch);
    free(g->lat);
    free(g->out.r);
    free(g->out.bytes);
}

int group_run(const struct config *c, volatile sig_atomic_t *stop, char *err, size_t errlen) {
    struct group *g = calloc(1, sizeof(*g));
    if (!g) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    g->c = c;
    g->stop = stop;
    if (metrics_new(&g->metrics, err, errlen)) {
        free(g);
        return -1;
    }
    metrics_set_ready_max_lag(g->metrics, c->http_ready_max_lag);
    int rc = start(g);
    if (rc == KCLIENT_STOPPED) {
        log_info(NULL, "stopped during start-up");
        rc = 0;
    } else {
        while (rc == 0 && !*stop) rc = step(g);
        if (rc == 0) log_info(NULL, "stopped; leaving the group");
    }
    if (rc) snprintf(err, errlen, "%s", g->err);
    int halted = g->halted;
    stop_all(g);
    metrics_free(g->metrics);
    free(g);
    return rc && halted ? PIPELINE_HALTED : rc;
}
