/* relay.c -- see relay.h. */
#include "consumer/relay.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "consumer/kclient.h"
#include "consumer/log.h"
#include "consumer/outscan.h"

#define NKIND ENG_OUT_NKIND
#define WM_TIMEOUT_MS 10000   /* watermarks of one output partition, transient errors retried */
#define INSTANCE_HEX 32

struct slot {                 /* one entry handed to the producer */
    uint64_t seq;
    int64_t offset;           /* confirmed offset, when done */
    int32_t partition;
    uint8_t kind, done;
};

struct outpart {              /* next offset to read back from, per partition */
    int64_t confirmed;        /* after the last message of a popped entry */
    int64_t persisted;        /* in the store */
    int64_t written;          /* in the current txn */
    int64_t end0;             /* high watermark at relay_open (a fresh store starts there) */
};

struct outtopic {
    char name[CONFIG_TOPIC_MAX + 1];
    int32_t n;
    struct outpart *p;
};

struct relay {
    struct kclient *kc;
    rd_kafka_t *rk;               /* kclient_rk(kc) */
    volatile sig_atomic_t *stop;  /* the daemon's stop flag (start-up waits, relay_poll) */
    struct outtopic t[NKIND];
    char instance[INSTANCE_HEX + 1];
    struct slot *ring;            /* [RELAY_WINDOW]; absolute index % RELAY_WINDOW */
    uint64_t head, tail;          /* oldest unconfirmed, next to load */
    uint64_t last_loaded;         /* seq of the last entry loaded */
    uint64_t delivered_upto;      /* this seq and all before are confirmed */
    uint64_t deleted_upto, txn_upto;
    struct outscan_found *found;  /* delivered by an earlier run (relay_recover) */
    size_t nfound;
    int failed, closing, more;
    uint64_t reports[NKIND];      /* successful delivery reports, by kind (metrics) */
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

/* Pop confirmed entries in seq order. */
static void advance(struct relay *r) {
    while (r->head < r->tail && r->ring[r->head % RELAY_WINDOW].done) {
        const struct slot *sl = &r->ring[r->head % RELAY_WINDOW];
        struct outpart *op = outpart_get(r, sl->kind, sl->partition);
        if (!op) {
            r->failed = 1;
            snprintf(r->fail_reason, sizeof(r->fail_reason), "relay: out of memory");
            return;
        }
        if (sl->offset + 1 > op->confirmed) op->confirmed = sl->offset + 1;
        r->delivered_upto = sl->seq;
        r->head++;
    }
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *user) {
    struct relay *r = user;
    uint64_t idx = (uint64_t)(uintptr_t)m->_private;
    (void)rk;
    if (idx < r->head || idx >= r->tail) return; /* cannot happen: reported once each */
    struct slot *sl = &r->ring[idx % RELAY_WINDOW];
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
    sl->partition = m->partition;
    sl->offset = m->offset;
    r->reports[sl->kind]++;
    advance(r);
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

int relay_open(struct relay **out, const struct config *c, const char *bootstrap,
               volatile sig_atomic_t *stop, char *err, size_t errlen) {
    struct relay *r = calloc(1, sizeof(*r));
    if (!r || !(r->ring = calloc(RELAY_WINDOW, sizeof(*r->ring)))) {
        free(r);
        snprintf(err, errlen, "relay: out of memory");
        return -1;
    }
    r->stop = stop;
    snprintf(r->t[ENG_OUT_OVERAGE].name, sizeof(r->t[0].name), "%s", c->topic_overage);
    snprintf(r->t[ENG_OUT_LEDGER].name, sizeof(r->t[0].name), "%s", c->topic_ledger);
    snprintf(r->t[ENG_OUT_REJECTED].name, sizeof(r->t[0].name), "%s", c->topic_rejected);
    snprintf(r->t[ENG_OUT_ALERT].name, sizeof(r->t[0].name), "%s", c->topic_alerts);
    int rc = make_producer(r, c, bootstrap, err, errlen);
    for (int k = 0; rc == 0 && k < NKIND; k++) rc = topic_partitions(r, &r->t[k], err, errlen);
    if (rc) {
        relay_close(r);
        return rc == KCLIENT_STOPPED ? KCLIENT_STOPPED : -1;
    }
    *out = r;
    return 0;
}

void relay_close(struct relay *r) {
    if (!r) return;
    if (r->kc) {
        r->closing = 1;
        rd_kafka_resp_err_t e = rd_kafka_purge(r->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) e = rd_kafka_flush(r->rk, 1000); /* purged reports */
        if (e) /* the outbox keeps whatever was not confirmed */
            log_warn("relay", "dropping unsent outputs at close: %s", rd_kafka_err2str(e));
        kclient_destroy(r->kc);
    }
    for (int k = 0; k < NKIND; k++) free(r->t[k].p);
    free(r->found);
    free(r->ring);
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
 * told by the callback's return value, which store_outbox_scan() passes on
 * among its own STORE_* codes: any non-zero return just stops the scan. */
enum pump_stop { PUMP_MORE = 0, PUMP_FULL, PUMP_ERR };

struct pump_ctx {
    struct relay *r;
    enum pump_stop why;   /* PUMP_FULL: window or producer queue full, continue later;
                             PUMP_ERR: permanent produce error, err set */
    char *err;
    size_t errlen;
};

static int pump_stop(struct pump_ctx *pc, enum pump_stop why) {
    pc->why = why;
    return 1;
}

static int pump_one(void *arg, uint64_t seq, enum eng_out_kind kind, const char *key,
                    const char *json, size_t len) {
    struct pump_ctx *pc = arg;
    struct relay *r = pc->r;
    assert(kind < NKIND);
    if (r->tail - r->head >= RELAY_WINDOW) return pump_stop(pc, PUMP_FULL);
    struct slot *sl = &r->ring[r->tail % RELAY_WINDOW];
    *sl = (struct slot){seq, -1, -1, (uint8_t)kind, 0};
    const struct outscan_found *f = found_get(r, seq);
    if (f) {
        sl->done = 1;
        sl->partition = f->partition;
        sl->offset = f->offset;
        sl->kind = (uint8_t)f->kind;
    } else {
        char sbuf[24];
        snprintf(sbuf, sizeof(sbuf), "%" PRIu64, seq);
        rd_kafka_resp_err_t e = rd_kafka_producev(
            r->rk, RD_KAFKA_V_TOPIC(r->t[kind].name), RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
            RD_KAFKA_V_VALUE((void *)json, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_HEADER(OUTSCAN_HDR_SEQ, sbuf, -1),
            RD_KAFKA_V_HEADER(OUTSCAN_HDR_INSTANCE, r->instance, -1),
            RD_KAFKA_V_OPAQUE((void *)(uintptr_t)r->tail), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) return pump_stop(pc, PUMP_FULL);
        if (e) {
            snprintf(pc->err, pc->errlen, "relay: producing outbox entry %" PRIu64 " to %s: %s",
                     seq, r->t[kind].name, rd_kafka_err2str(e));
            return pump_stop(pc, PUMP_ERR);
        }
    }
    r->tail++;
    r->last_loaded = seq;
    return 0;
}

int relay_pump(struct relay *r, struct store *s, char *err, size_t errlen) {
    struct pump_ctx pc = {r, PUMP_MORE, err, errlen};
    int rc = store_outbox_scan(s, r->last_loaded, pump_one, &pc, err, errlen);
    r->more = pc.why == PUMP_FULL;
    advance(r);
    if (r->nfound && r->last_loaded >= r->found[r->nfound - 1].seq) { /* all used */
        free(r->found);
        r->found = NULL;
        r->nfound = 0;
    }
    return pc.why == PUMP_FULL || (pc.why == PUMP_MORE && rc == 0) ? 0 : -1;
}

int relay_poll(struct relay *r, int timeout_ms, char *err, size_t errlen) {
    int64_t deadline = kclient_now_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - kclient_now_ms();
        rd_kafka_poll(r->rk, left <= 0 ? 0 : left < KCLIENT_POLL_MS ? (int)left : KCLIENT_POLL_MS);
        if (kclient_failed(r->kc, err, errlen)) return -1;
        if (r->failed) {
            snprintf(err, errlen, "%s", r->fail_reason);
            return -1;
        }
        if (left <= KCLIENT_POLL_MS || (r->stop && *r->stop)) return 0;
    }
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

size_t relay_inflight(const struct relay *r) { return (size_t)(r->tail - r->head); }

uint64_t relay_delivered_upto(const struct relay *r) { return r->delivered_upto; }

void relay_delivered_add(const struct relay *r, uint64_t out[ENG_OUT_NKIND]) {
    for (int k = 0; k < NKIND; k++) out[k] += r->reports[k];
}

int relay_drain(struct relay *r, struct store *s, int timeout_ms, char *err, size_t errlen) {
    int64_t deadline = kclient_now_ms() + timeout_ms;
    for (;;) {
        if (relay_pump(r, s, err, errlen) || relay_poll(r, 0, err, errlen)) return -1;
        if (r->head == r->tail && !r->more) return 0;
        if (kclient_now_ms() >= deadline) break;
        if (relay_poll(r, 50, err, errlen)) return -1;
    }
    r->closing = 1; /* the outbox keeps what was not confirmed */
    rd_kafka_resp_err_t e = rd_kafka_purge(r->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    if (e) log_warn("relay", "purging unsent outputs: %s", rd_kafka_err2str(e));
    rd_kafka_poll(r->rk, 0);
    return 1;
}
