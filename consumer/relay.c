/* relay.c -- see relay.h. */
#include "consumer/relay.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "consumer/handoff.h"
#include "consumer/kclient.h"
#include "consumer/log.h"
#include "consumer/outscan.h"

#define NKIND ENG_OUT_NKIND
#define WM_TIMEOUT_MS 10000   /* watermarks of one output partition, transient errors retried */
#define INSTANCE_HEX 32
#define RELAY_WAIT_MS 100     /* the relay thread's poll when nothing wakes it (a safety net) */
/* Entries loaded in one store view at most: a view holds the store's map
 * lock (shared), which a map resize and LMDB's page reuse wait for, so a
 * backlog is loaded in several short views rather than one long one. */
#define RELAY_SCAN_MAX 4096

struct outpart {              /* next offset to read back from, per partition (engine thread) */
    int64_t confirmed;        /* after the last message of a taken entry */
    int64_t persisted;        /* in the store */
    int64_t written;          /* in the current txn */
    int64_t end0;             /* high watermark at relay_open (a fresh store starts there) */
};

struct outtopic {
    char name[CONFIG_TOPIC_MAX + 1];  /* constant after relay_open: both threads read it */
    int32_t n;
    struct outpart *p;
};

struct relay {
    struct kclient *kc;
    rd_kafka_t *rk;               /* kclient_rk(kc) */
    volatile sig_atomic_t *stop;  /* the daemon's stop flag (start-up waits) */
    struct outtopic t[NKIND];
    char instance[INSTANCE_HEX + 1];
    struct handoff *h;            /* the two threads' hand-over (handoff.h) */
    rd_kafka_queue_t *mainq;      /* rd_kafka_poll's queue: relay_wake yields it */
    struct store *store;          /* read by the relay thread through views */
    pthread_t thread;
    int running;                  /* the relay thread was started and not joined */
    /* Engine thread (and everyone before relay_start / after the join). */
    uint64_t committed;           /* last outbox seq committed (relay_committed) */
    uint64_t delivered_upto;      /* this seq and all before are confirmed and taken */
    int64_t delivered_ms;         /* wall clock of the relay's publish of them */
    uint64_t complete;            /* every seq <= it is taken (or left the outbox before) */
    uint64_t deleted_upto, txn_upto;
    uint64_t reports[NKIND];      /* successful delivery reports, by kind (metrics) */
    char eng_fail[KCLIENT_ERRLEN];/* the engine side's own failure (out of memory) */
    /* Relay thread (and the start-up before relay_start). */
    uint64_t last_loaded;         /* every committed seq <= it was handed to the producer */
    struct outscan_found *found;  /* delivered by an earlier run (relay_recover) */
    size_t nfound;
    int failed, closing, more;
    int capped;              /* the last scan stopped at RELAY_SCAN_MAX: scan again at once */
    char fail_reason[KCLIENT_ERRLEN];
};

static const char *const kind_names[NKIND] = {"overage", "ledger", "rejected", "alert"};

static struct outpart *outpart_get(struct relay *r, int kind, int32_t partition) {
    struct outtopic *t = &r->t[kind];
    if (partition < 0 || partition > 1000000) return NULL;
    if (partition >= t->n) {
        struct outpart *p = realloc(t->p, (size_t)(partition + 1) * sizeof(*p));
        if (!p) return NULL;
        for (int32_t i = t->n; i <= partition; i++) p[i] = (struct outpart){-1, -1, -1, -1};
        t->p = p;
        t->n = partition + 1;
    }
    return &t->p[partition];
}

/* Delivery report (served by rd_kafka_poll on the relay thread; after
 * the join by relay_close's flush on the engine thread). */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *user) {
    struct relay *r = user;
    struct handoff_slot *sl = handoff_slot(r->h, (uint64_t)(uintptr_t)m->_private);
    (void)rk;
    if (!sl) return; /* cannot happen: each slot is reported once, before it is published */
    if (m->err) {
        if (r->closing && (m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE ||
                           m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT))
            return;
        if (!r->failed && m->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
            char why[KCLIENT_ERRLEN];
            kclient_denied(r->kc, "topic", r->t[sl->kind].name, why, sizeof(why));
            snprintf(r->fail_reason, sizeof(r->fail_reason), "delivering outbox entry %" PRIu64
                     " (%s) failed: %.380s; the entry stays in the outbox (restart once fixed)",
                     sl->seq, kind_names[sl->kind], why);
        } else if (!r->failed)
            snprintf(r->fail_reason, sizeof(r->fail_reason),
                     "relay: delivering outbox entry %" PRIu64 " (%s) to %s failed: %s: %s; "
                     "the entry stays in the outbox (restart to retry)", sl->seq,
                     kind_names[sl->kind], r->t[sl->kind].name, rd_kafka_err2name(m->err),
                     rd_kafka_err2str(m->err));
        r->failed = 1;
        return;
    }
    sl->done = 1;
    sl->reported = 1;
    sl->partition = m->partition;
    sl->offset = m->offset;
}

/* One output topic's partition count and high watermarks. */
static int topic_partitions(struct relay *r, struct outtopic *t, char *err, size_t errlen) {
    int32_t n;
    int rc = kclient_partition_count(r->kc, t->name, KCLIENT_META_TIMEOUT_MS, &n, err, errlen);
    if (rc) return rc;
    if (!outpart_get(r, (int)(t - r->t), n - 1)) {
        snprintf(err, errlen, "relay: out of memory");
        return -1;
    }
    for (int32_t p = 0; rc == 0 && p < n; p++) {
        int64_t lo;
        rc = kclient_watermarks(r->kc, t->name, p, WM_TIMEOUT_MS, &lo, &t->p[p].end0, err, errlen);
    }
    return rc;
}

static int make_producer(struct relay *r, const struct config *c, const char *bootstrap,
                         char *err, size_t errlen) {
    static const struct kclient_prop defaults[] = {
        {"partitioner", "murmur2_random"},   /* same as Java clients and the input */
        {"message.timeout.ms", "0"},         /* retry until delivered or a permanent error */
        /* A batch's outputs are produced together right after its commit:
         * lingering would only delay them (librdkafka still batches what
         * queues up while requests are in flight). */
        {"linger.ms", "1"},
        {"queue.buffering.max.messages", "100000"},
        {NULL, NULL}};
    static const struct kclient_prop forced[] = {
        {"enable.idempotence", "true"},
        {"acks", "all"},
        {"compression.type", "none"},  /* Debian's librdkafka 2.0 misdetects it on Kafka 4 */
        {"delivery.report.only.error", "false"},
        {NULL, NULL}};
    struct kclient_spec spec = {.prog = "creditd", .role = "relay", .type = RD_KAFKA_PRODUCER,
                                .defaults = defaults, .cfg = c, .bootstrap = bootstrap,
                                .forced = forced, .stop = r->stop, .stop_on = KCLIENT_STOP_AUTH,
                                .user = r, .dr_msg_cb = on_delivery,
                                .acl_need = "Write (and Read, for the start-up read-back)"};
    if (kclient_new(&r->kc, &spec, err, errlen)) return -1;
    r->rk = kclient_rk(r->kc);
    return 0;
}

/* The handoff's wake: ends the relay thread's rd_kafka_poll (or its next
 * one, when it is not polling: the yield is remembered). */
static void relay_wake(void *arg) {
    struct relay *r = arg;
    if (r->mainq) rd_kafka_queue_yield(r->mainq);
}

int relay_open(struct relay **out, const struct config *c, const char *bootstrap,
               volatile sig_atomic_t *stop, char *err, size_t errlen) {
    struct relay *r = calloc(1, sizeof(*r));
    if (!r) {
        snprintf(err, errlen, "relay: out of memory");
        return -1;
    }
    r->stop = stop;
    snprintf(r->t[ENG_OUT_OVERAGE].name, sizeof(r->t[0].name), "%s", c->topic_overage);
    snprintf(r->t[ENG_OUT_LEDGER].name, sizeof(r->t[0].name), "%s", c->topic_ledger);
    snprintf(r->t[ENG_OUT_REJECTED].name, sizeof(r->t[0].name), "%s", c->topic_rejected);
    snprintf(r->t[ENG_OUT_ALERT].name, sizeof(r->t[0].name), "%s", c->topic_alerts);
    int rc = handoff_new(&r->h, RELAY_WINDOW, relay_wake, r, err, errlen);
    if (rc == 0) rc = make_producer(r, c, bootstrap, err, errlen);
    if (rc == 0 && !(r->mainq = rd_kafka_queue_get_main(r->rk))) {
        snprintf(err, errlen, "relay: no main queue");
        rc = -1;
    }
    for (int k = 0; rc == 0 && k < NKIND; k++) rc = topic_partitions(r, &r->t[k], err, errlen);
    if (rc) {
        relay_close(r);
        return rc == KCLIENT_STOPPED ? KCLIENT_STOPPED : -1;
    }
    *out = r;
    return 0;
}

/* Stop the relay thread (it finishes its current poll) and join it. */
static void join_thread(struct relay *r) {
    if (!r->running) return;
    handoff_stop(r->h);
    pthread_join(r->thread, NULL);
    r->running = 0;
}

void relay_close(struct relay *r) {
    if (!r) return;
    join_thread(r);
    if (r->kc) {
        r->closing = 1;
        rd_kafka_resp_err_t e = rd_kafka_purge(r->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) e = rd_kafka_flush(r->rk, 1000); /* purged reports */
        if (e) /* the outbox keeps whatever was not confirmed */
            log_warn("relay", "dropping unsent outputs at close: %s", rd_kafka_err2str(e));
        if (r->mainq) rd_kafka_queue_destroy(r->mainq);
        r->mainq = NULL;
        kclient_destroy(r->kc);
    }
    for (int k = 0; k < NKIND; k++) free(r->t[k].p);
    free(r->found);
    handoff_free(r->h);
    free(r);
}

static int new_instance(char *out, char *err, size_t errlen) {
    unsigned char b[INSTANCE_HEX / 2];
    FILE *f = fopen("/dev/urandom", "rb");
    size_t got = f ? fread(b, 1, sizeof(b), f) : 0;
    if (f) fclose(f);
    if (got != sizeof(b)) {
        snprintf(err, errlen, "relay: reading /dev/urandom: %s", strerror(errno));
        return -1;
    }
    for (size_t i = 0; i < sizeof(b); i++) snprintf(out + 2 * i, 3, "%02x", b[i]);
    return 0;
}

static int meta_i64(struct store *s, const char *name, int64_t *v, char *err, size_t errlen) {
    char buf[32], *end;
    int rc = store_meta_get(s, name, buf, sizeof(buf), err, errlen);
    if (rc) return rc;
    errno = 0;
    long long x = strtoll(buf, &end, 10);
    if (errno || *end || end == buf || x < 0) {
        snprintf(err, errlen, "store meta %s: bad offset '%s'", name, buf);
        return STORE_ERR;
    }
    *v = x;
    return 0;
}

static int meta_put_i64(struct store *s, const char *name, int64_t v, char *err, size_t errlen) {
    char buf[32];
    snprintf(buf, sizeof(buf), "%lld", (long long)v);
    return store_meta_put(s, name, buf, err, errlen);
}

/* One output topic's confirmed offsets: from the store when it recorded
 * them for this topic name; on a fresh store the current end (nothing there
 * is ours); otherwise unknown (0: read back from the start of the log). */
static int prepare_topic(struct relay *r, struct store *s, int k, int fresh, char *err, size_t errlen) {
    struct outtopic *t = &r->t[k];
    char name[64], old[CONFIG_TOPIC_MAX + 1];
    snprintf(name, sizeof(name), "relay.%s.topic", kind_names[k]);
    int rc = store_meta_get(s, name, old, sizeof(old), err, errlen);
    if (rc != 0 && rc != STORE_NOTFOUND) return -1;
    int same = rc == 0 && strcmp(old, t->name) == 0;
    if (!same && store_meta_put(s, name, t->name, err, errlen)) return -1;
    for (int32_t p = 0; p < t->n; p++) {
        int64_t v = 0;
        snprintf(name, sizeof(name), "relay.%s.%d", kind_names[k], (int)p);
        rc = same ? meta_i64(s, name, &v, err, errlen) : STORE_NOTFOUND;
        if (rc != 0 && rc != STORE_NOTFOUND) return -1;
        if (rc == STORE_NOTFOUND && fresh) {
            v = t->p[p].end0;
            if (meta_put_i64(s, name, v, err, errlen)) return -1;
        }
        t->p[p] = (struct outpart){v, v, v, t->p[p].end0};
    }
    return 0;
}

int relay_prepare(struct relay *r, struct store *s, int fresh, char *err, size_t errlen) {
    if (store_outbox_last_seq(s, &r->committed, err, errlen)) return -1;
    int rc = store_meta_get(s, "relay.instance", r->instance, sizeof(r->instance), err, errlen);
    if (rc == STORE_NOTFOUND) {
        if (new_instance(r->instance, err, errlen) ||
            store_meta_put(s, "relay.instance", r->instance, err, errlen))
            return -1;
    } else if (rc != 0) return -1;
    for (int k = 0; k < NKIND; k++)
        if (prepare_topic(r, s, k, fresh, err, errlen)) return -1;
    return 0;
}

/* What to read back: from the confirmed offset to the end, per partition.
 * 0, -1 or KCLIENT_STOPPED. */
static int recover_parts(struct relay *r, struct outscan_part *parts, size_t *n,
                         char *err, size_t errlen) {
    *n = 0;
    for (int k = 0; k < NKIND; k++) {
        struct outtopic *t = &r->t[k];
        for (int32_t p = 0; p < t->n; p++) {
            int64_t lo, hi, from = t->p[p].confirmed;
            int rc = kclient_watermarks(r->kc, t->name, p, WM_TIMEOUT_MS, &lo, &hi, err, errlen);
            if (rc) return rc;
            if (from < lo) {
                if (from > 0)
                    log_warn("relay", "WARNING: output %s [%d] offsets %lld..%lld were "
                            "deleted before creditd read them back; outbox entries delivered there "
                            "by a crashed run would be sent again", t->name, (int)p,
                            (long long)from, (long long)lo - 1);
                from = lo;
            }
            parts[(*n)++] = (struct outscan_part){t->name, k, p, from, hi};
        }
    }
    return 0;
}

int relay_recover(struct relay *r, const struct config *c, const char *bootstrap,
                  char *err, size_t errlen) {
    size_t total = 0, n;
    for (int k = 0; k < NKIND; k++) total += (size_t)r->t[k].n;
    struct outscan_part *parts = malloc(total * sizeof(*parts));
    if (!parts) {
        snprintf(err, errlen, "relay: out of memory");
        return -1;
    }
    int rc = recover_parts(r, parts, &n, err, errlen);
    int64_t msgs = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) msgs += parts[i].to - parts[i].from;
    if (rc == 0 && msgs > 0)
        log_info("relay", "reading back %lld unconfirmed output offsets", (long long)msgs);
    if (rc == 0)
        rc = outscan_run(c, bootstrap, r->stop, r->instance, parts, n, RELAY_SCAN_TIMEOUT_MS,
                         &r->found, &r->nfound, err, errlen);
    free(parts);
    if (rc == 0 && msgs > 0)
        log_info("relay", "read back %lld unconfirmed output offsets: %zu outbox "
                "entries were already delivered", (long long)msgs, r->nfound);
    if (rc == 0) kclient_set_stop_on(r->kc, 0); /* running: only fatal errors stop it */
    return rc;
}

/* ---- the relay thread ------------------------------------------------------- */

static const struct outscan_found *found_get(const struct relay *r, uint64_t seq) {
    size_t lo = 0, hi = r->nfound;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->found[mid].seq < seq) lo = mid + 1;
        else if (r->found[mid].seq > seq) hi = mid;
        else return &r->found[mid];
    }
    return NULL;
}

/* Why pump_one stopped the outbox scan.  Kept in the context rather than
 * told by the callback's return value, which the store's scan passes on
 * among its own STORE_* codes: any non-zero return just stops the scan. */
enum pump_stop { PUMP_MORE = 0, PUMP_FULL, PUMP_CAP, PUMP_ERR };

struct pump_ctx {
    struct relay *r;
    enum pump_stop why;   /* PUMP_FULL: window or producer queue full, continue later;
                             PUMP_CAP: RELAY_SCAN_MAX loaded, continue in a new view;
                             PUMP_ERR: permanent produce error, err set */
    char *err;
    size_t errlen;
    size_t n;             /* entries loaded in this view */
};

static int pump_stop(struct pump_ctx *pc, enum pump_stop why) {
    pc->why = why;
    return 1;
}

/* One outbox entry: a slot (the window), then the producer, or done at
 * once when an earlier run delivered it. */
static int pump_one(void *arg, uint64_t seq, enum eng_out_kind kind, const char *key,
                    const char *json, size_t len) {
    struct pump_ctx *pc = arg;
    struct relay *r = pc->r;
    assert(kind < NKIND);
    if (pc->n == RELAY_SCAN_MAX) return pump_stop(pc, PUMP_CAP);
    uint64_t idx = handoff_tail(r->h);
    struct handoff_slot *sl = handoff_push(r->h);
    if (!sl) return pump_stop(pc, PUMP_FULL);
    *sl = (struct handoff_slot){seq, -1, -1, (uint8_t)kind, 0, 0};
    const struct outscan_found *f = found_get(r, seq);
    if (f) {
        sl->partition = f->partition;
        sl->offset = f->offset;
        sl->kind = (uint8_t)f->kind;
        sl->done = 1;
    } else {
        char sbuf[24];
        snprintf(sbuf, sizeof(sbuf), "%" PRIu64, seq);
        rd_kafka_resp_err_t e = rd_kafka_producev(
            r->rk, RD_KAFKA_V_TOPIC(r->t[kind].name), RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
            RD_KAFKA_V_VALUE((void *)json, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_HEADER(OUTSCAN_HDR_SEQ, sbuf, -1),
            RD_KAFKA_V_HEADER(OUTSCAN_HDR_INSTANCE, r->instance, -1),
            RD_KAFKA_V_OPAQUE((void *)(uintptr_t)idx), RD_KAFKA_V_END);
        if (e) handoff_unpush(r->h);
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) return pump_stop(pc, PUMP_FULL);
        if (e) {
            snprintf(pc->err, pc->errlen, "relay: producing outbox entry %" PRIu64 " to %s: %s",
                     seq, r->t[kind].name, rd_kafka_err2str(e));
            return pump_stop(pc, PUMP_ERR);
        }
    }
    r->last_loaded = seq;
    pc->n++;
    return 0;
}

/* Hand the committed outbox entries after last_loaded to the producer, in
 * a view of the store (store.h: the writer's thread is busy with the next
 * batch).  committed: the last seq committed before the view began, so a
 * scan that reached the end has loaded every seq up to it.  0, or -1 with
 * err (a permanent produce error, the store). */
static int pump(struct relay *r, uint64_t committed, char *err, size_t errlen) {
    struct store_view *v;
    struct pump_ctx pc = {r, PUMP_MORE, err, errlen, 0};
    if (store_view_begin(r->store, &v, err, errlen)) return -1;
    int rc = store_view_outbox_scan(v, r->last_loaded, pump_one, &pc, err, errlen);
    store_view_end(v);
    r->more = pc.why == PUMP_FULL || pc.why == PUMP_CAP;
    r->capped = pc.why == PUMP_CAP;
    if (pc.why == PUMP_MORE && rc == 0 && committed > r->last_loaded) r->last_loaded = committed;
    if (r->nfound && r->last_loaded >= r->found[r->nfound - 1].seq) { /* all used */
        free(r->found);
        r->found = NULL;
        r->nfound = 0;
    }
    return r->more || (pc.why == PUMP_MORE && rc == 0) ? 0 : -1;
}

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void thread_fail(struct relay *r, const char *why) {
    if (!r->failed) snprintf(r->fail_reason, sizeof(r->fail_reason), "%s", why);
    r->failed = 1;
}

/* The relay thread: load what was committed, serve delivery reports,
 * publish the confirmed prefix; a commit, a release of a full window and
 * the stop request end its wait (relay_wake).  After a failure it only
 * serves reports until stopped: the engine thread stops creditd. */
static void *relay_main(void *arg) {
    struct relay *r = arg;
    char err[KCLIENT_ERRLEN];
    for (;;) {
        uint64_t committed;
        int stop;
        handoff_requests(r->h, &committed, &stop);
        if (stop) break;
        if (!r->failed && (committed > r->last_loaded || r->more) &&
            pump(r, committed, err, sizeof(err)))
            thread_fail(r, err);
        rd_kafka_poll(r->rk, r->capped && !r->failed ? 0 : RELAY_WAIT_MS);
        if (!r->failed && kclient_failed(r->kc, err, sizeof(err))) thread_fail(r, err);
        int64_t now = wall_ms();
        handoff_publish(r->h, 0, now);
        if (!r->more && handoff_all_published(r->h)) handoff_publish(r->h, r->last_loaded, now);
        if (r->failed) handoff_fail(r->h, r->fail_reason);
    }
    return NULL;
}

int relay_start(struct relay *r, struct store *s, char *err, size_t errlen) {
    r->store = s;
    handoff_commit(r->h, r->committed);
    /* SIGTERM and SIGINT stay with the pipeline's thread (as http.c's). */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    int rc = pthread_create(&r->thread, NULL, relay_main, r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        snprintf(err, errlen, "relay: starting its thread: %s", strerror(rc));
        return -1;
    }
    r->running = 1;
    pthread_setname_np(r->thread, "relay");  /* per-thread CPU (make bench-kafka) */
    return 0;
}

/* ---- the engine thread ------------------------------------------------------ */

/* Take the slots the relay thread published: per output partition the
 * offset after the last confirmed message, the seq every lower one is
 * confirmed up to, the reports. */
static int collect(struct relay *r) {
    uint64_t head, complete, i;
    int64_t at;
    uint64_t end = handoff_ready(r->h, &head, &complete, &at);
    for (i = head; i < end; i++) {
        const struct handoff_slot *sl = handoff_at(r->h, i);
        struct outpart *op = outpart_get(r, sl->kind, sl->partition);
        if (!op) {
            snprintf(r->eng_fail, sizeof(r->eng_fail), "relay: out of memory");
            break;
        }
        if (sl->offset + 1 > op->confirmed) op->confirmed = sl->offset + 1;
        r->delivered_upto = sl->seq;
        if (sl->reported) r->reports[sl->kind]++;
    }
    if (i > head) {
        handoff_release(r->h, i);
        r->delivered_ms = at;
    }
    if (i == end && complete > r->complete) r->complete = complete;
    return r->eng_fail[0] ? -1 : 0;
}

int relay_check(struct relay *r, char *err, size_t errlen) {
    if (collect(r)) {
        snprintf(err, errlen, "%s", r->eng_fail);
        return -1;
    }
    return handoff_failed(r->h, err, errlen) ? -1 : 0;
}

/* Until every committed entry is confirmed and taken (1), the timeout (0),
 * a failure (-1), or, with use_stop, the stop flag (0); in slices of
 * KCLIENT_POLL_MS at most. */
static int wait_all(struct relay *r, int timeout_ms, int use_stop, char *err, size_t errlen) {
    int64_t deadline = kclient_now_ms() + timeout_ms;
    for (;;) {
        if (relay_check(r, err, errlen)) return -1;
        if (r->complete >= r->committed) return 1;
        int64_t left = deadline - kclient_now_ms();
        if (left <= 0 || (use_stop && r->stop && *r->stop)) return 0;
        handoff_wait(r->h, r->committed, left < KCLIENT_POLL_MS ? (int)left : KCLIENT_POLL_MS);
    }
}

int relay_wait(struct relay *r, int timeout_ms, char *err, size_t errlen) {
    return wait_all(r, timeout_ms, 1, err, errlen) < 0 ? -1 : 0;
}

void relay_committed(struct relay *r, uint64_t seq) {
    if (seq <= r->committed) return;
    r->committed = seq;
    if (r->running) handoff_commit(r->h, seq);
}

int relay_txn_needed(const struct relay *r) { return r->delivered_upto > r->deleted_upto; }

int relay_txn_write(struct relay *r, struct store *s, char *err, size_t errlen) {
    char name[64];
    r->txn_upto = r->delivered_upto;
    if (r->txn_upto > r->deleted_upto && store_outbox_delete_upto(s, r->txn_upto, err, errlen))
        return -1;
    for (int k = 0; k < NKIND; k++)
        for (int32_t p = 0; p < r->t[k].n; p++) {
            struct outpart *op = &r->t[k].p[p];
            op->written = op->persisted;
            if (op->confirmed <= op->persisted) continue;
            snprintf(name, sizeof(name), "relay.%s.%d", kind_names[k], (int)p);
            if (meta_put_i64(s, name, op->confirmed, err, errlen)) return -1;
            op->written = op->confirmed;
        }
    return 0;
}

void relay_txn_done(struct relay *r, int committed) {
    if (!committed) return;
    r->deleted_upto = r->txn_upto;
    for (int k = 0; k < NKIND; k++)
        for (int32_t p = 0; p < r->t[k].n; p++) r->t[k].p[p].persisted = r->t[k].p[p].written;
}

uint64_t relay_delivered_upto(const struct relay *r, int64_t *at_ms) {
    *at_ms = r->delivered_ms;
    return r->delivered_upto;
}

void relay_delivered_add(const struct relay *r, uint64_t out[ENG_OUT_NKIND]) {
    for (int k = 0; k < NKIND; k++) out[k] += r->reports[k];
}

int relay_drain(struct relay *r, int timeout_ms, char *err, size_t errlen) {
    int rc = wait_all(r, timeout_ms, 0, err, errlen);
    if (rc) return rc < 0 ? -1 : 0;
    join_thread(r);
    r->closing = 1; /* the outbox keeps what was not confirmed */
    rd_kafka_resp_err_t e = rd_kafka_purge(r->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    if (e) log_warn("relay", "purging unsent outputs: %s", rd_kafka_err2str(e));
    rd_kafka_poll(r->rk, 0);
    handoff_publish(r->h, 0, wall_ms()); /* the thread is gone: its side is ours */
    if (r->failed) handoff_fail(r->h, r->fail_reason);
    if (relay_check(r, err, errlen)) return -1;
    return 1;
}
