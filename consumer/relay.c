/* relay.c -- see relay.h. */
#include "consumer/relay.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "consumer/kafka.h"
#include "consumer/outscan.h"

#define NKIND 3
#define WM_TIMEOUT_MS 10000
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
};

struct outtopic {
    char name[CONFIG_TOPIC_MAX + 1];
    int32_t n;
    struct outpart *p;
};

struct relay {
    struct kafka_health health;   /* first member: the callbacks' opaque */
    rd_kafka_t *rk;
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
    char fail_reason[KAFKA_ERRLEN];
};

static const char *const kind_names[NKIND] = {"overage", "ledger", "rejected"};

static struct outpart *outpart_get(struct relay *r, int kind, int32_t partition) {
    struct outtopic *t = &r->t[kind];
    if (partition < 0 || partition > 1000000) return NULL;
    if (partition >= t->n) {
        struct outpart *p = realloc(t->p, (size_t)(partition + 1) * sizeof(*p));
        if (!p) return NULL;
        for (int32_t i = t->n; i <= partition; i++) p[i] = (struct outpart){-1, -1, -1};
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

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    struct relay *r = opaque;
    uint64_t idx = (uint64_t)(uintptr_t)m->_private;
    (void)rk;
    if (idx < r->head || idx >= r->tail) return; /* cannot happen: reported once each */
    struct slot *sl = &r->ring[idx % RELAY_WINDOW];
    if (m->err) {
        if (r->closing && (m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE ||
                           m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT))
            return;
        if (!r->failed)
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
    advance(r);
}

static int topic_partitions(struct relay *r, struct outtopic *t, char *err, size_t errlen) {
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(r->rk, t->name, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR__TIMED_OUT;
    for (int attempt = 0; attempt < 30; attempt++) {
        e = rd_kafka_metadata(r->rk, 0, rkt, &md, 5000);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
            e = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
            int32_t n = e ? 0 : md->topics[0].partition_cnt;
            rd_kafka_metadata_destroy(md);
            if (e == RD_KAFKA_RESP_ERR_NO_ERROR && n > 0) {
                rd_kafka_topic_destroy(rkt);
                return outpart_get(r, (int)(t - r->t), n - 1) ? 0 : -1;
            }
            if (e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) break;
        }
        struct timespec ts = {0, 500 * 1000000};
        nanosleep(&ts, NULL);
    }
    rd_kafka_topic_destroy(rkt);
    snprintf(err, errlen, "output topic %s: %s (create it first)", t->name,
             e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ? "does not exist" : rd_kafka_err2str(e));
    return -1;
}

static int make_producer(struct relay *r, const struct config *c, const char *bootstrap,
                         char *err, size_t errlen) {
    static const struct kafka_prop defaults[] = {
        {"partitioner", "murmur2_random"},   /* same as Java clients and the input */
        {"message.timeout.ms", "0"},         /* retry until delivered or a permanent error */
        {"linger.ms", "5"},
        {"queue.buffering.max.messages", "100000"},
        {NULL, NULL}};
    static const struct kafka_prop forced[] = {
        {"enable.idempotence", "true"},
        {"acks", "all"},
        {"compression.type", "none"},  /* Debian's librdkafka 2.0 misdetects it on Kafka 4 */
        {"delivery.report.only.error", "false"},
        {NULL, NULL}};
    char buf[KAFKA_ERRLEN];
    rd_kafka_conf_t *conf = kafka_conf_new(c, bootstrap, defaults, forced, &r->health, buf, sizeof(buf));
    if (!conf) {
        snprintf(err, errlen, "relay: %s", buf);
        return -1;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    r->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, buf, sizeof(buf));
    if (!r->rk) {
        rd_kafka_conf_destroy(conf);
        snprintf(err, errlen, "relay: %s", buf);
        return -1;
    }
    return 0;
}

int relay_open(struct relay **out, const struct config *c, const char *bootstrap,
               char *err, size_t errlen) {
    struct relay *r = calloc(1, sizeof(*r));
    if (!r || !(r->ring = calloc(RELAY_WINDOW, sizeof(*r->ring)))) {
        free(r);
        snprintf(err, errlen, "relay: out of memory");
        return -1;
    }
    r->health.who = "relay";
    snprintf(r->t[ENG_OUT_OVERAGE].name, sizeof(r->t[0].name), "%s", c->topic_overage);
    snprintf(r->t[ENG_OUT_LEDGER].name, sizeof(r->t[0].name), "%s", c->topic_ledger);
    snprintf(r->t[ENG_OUT_REJECTED].name, sizeof(r->t[0].name), "%s", c->topic_rejected);
    int rc = make_producer(r, c, bootstrap, err, errlen);
    for (int k = 0; rc == 0 && k < NKIND; k++) rc = topic_partitions(r, &r->t[k], err, errlen);
    if (rc) {
        relay_close(r);
        return -1;
    }
    *out = r;
    return 0;
}

void relay_close(struct relay *r) {
    if (!r) return;
    if (r->rk) {
        r->closing = 1;
        rd_kafka_purge(r->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_flush(r->rk, 1000);
        rd_kafka_destroy(r->rk);
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
    if (rc == STORE_ERR) return -1;
    int same = rc == 0 && strcmp(old, t->name) == 0;
    if (!same && store_meta_put(s, name, t->name, err, errlen)) return -1;
    for (int32_t p = 0; p < t->n; p++) {
        int64_t v = 0, lo, hi;
        snprintf(name, sizeof(name), "relay.%s.%d", kind_names[k], (int)p);
        rc = same ? meta_i64(s, name, &v, err, errlen) : STORE_NOTFOUND;
        if (rc == STORE_ERR) return -1;
        if (rc == STORE_NOTFOUND && fresh) {
            rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(r->rk, t->name, p, &lo, &hi, WM_TIMEOUT_MS);
            if (e) {
                snprintf(err, errlen, "output %s [%d]: watermarks: %s", t->name, (int)p, rd_kafka_err2str(e));
                return -1;
            }
            v = hi;
            if (meta_put_i64(s, name, v, err, errlen)) return -1;
        }
        t->p[p] = (struct outpart){v, v, v};
    }
    return 0;
}

int relay_prepare(struct relay *r, struct store *s, int fresh, char *err, size_t errlen) {
    int rc = store_meta_get(s, "relay.instance", r->instance, sizeof(r->instance), err, errlen);
    if (rc == STORE_NOTFOUND) {
        if (new_instance(r->instance, err, errlen) ||
            store_meta_put(s, "relay.instance", r->instance, err, errlen))
            return -1;
    } else if (rc) return -1;
    for (int k = 0; k < NKIND; k++)
        if (prepare_topic(r, s, k, fresh, err, errlen)) return -1;
    return 0;
}

static int recover_parts(struct relay *r, struct outscan_part *parts, size_t *n,
                         char *err, size_t errlen) {
    *n = 0;
    for (int k = 0; k < NKIND; k++) {
        struct outtopic *t = &r->t[k];
        for (int32_t p = 0; p < t->n; p++) {
            int64_t lo, hi, from = t->p[p].confirmed;
            rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(r->rk, t->name, p, &lo, &hi, WM_TIMEOUT_MS);
            if (e) {
                snprintf(err, errlen, "output %s [%d]: watermarks: %s", t->name, (int)p, rd_kafka_err2str(e));
                return -1;
            }
            if (from < lo) {
                if (from > 0)
                    fprintf(stderr, "creditd: relay: WARNING: output %s [%d] offsets %lld..%lld were "
                            "deleted before creditd read them back; outbox entries delivered there "
                            "by a crashed run would be sent again\n", t->name, (int)p,
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
    if (rc == 0)
        rc = outscan_run(c, bootstrap, r->instance, parts, n, RELAY_SCAN_TIMEOUT_MS, &r->found,
                         &r->nfound, err, errlen);
    free(parts);
    if (rc == 0 && msgs > 0)
        fprintf(stderr, "creditd: relay: read back %lld unconfirmed output offsets: %zu outbox "
                "entries were already delivered\n", (long long)msgs, r->nfound);
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

struct pump_ctx { struct relay *r; char *err; size_t errlen; };

/* store_outbox_scan callback results (distinct from the STORE_* codes). */
#define PUMP_FULL 10   /* window or producer queue full: continue later */
#define PUMP_ERR  11   /* permanent produce error, err set */

static int pump_one(void *arg, uint64_t seq, enum eng_out_kind kind, const char *key,
                    const char *json, size_t len) {
    struct pump_ctx *pc = arg;
    struct relay *r = pc->r;
    assert(kind < NKIND);
    if (r->tail - r->head >= RELAY_WINDOW) return PUMP_FULL;
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
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) return PUMP_FULL;
        if (e) {
            snprintf(pc->err, pc->errlen, "relay: producing outbox entry %" PRIu64 " to %s: %s",
                     seq, r->t[kind].name, rd_kafka_err2str(e));
            return PUMP_ERR;
        }
    }
    r->tail++;
    r->last_loaded = seq;
    return 0;
}

int relay_pump(struct relay *r, struct store *s, char *err, size_t errlen) {
    struct pump_ctx pc = {r, err, errlen};
    int rc = store_outbox_scan(s, r->last_loaded, pump_one, &pc, err, errlen);
    r->more = rc == PUMP_FULL;
    advance(r);
    if (r->nfound && r->last_loaded >= r->found[r->nfound - 1].seq) { /* all used */
        free(r->found);
        r->found = NULL;
        r->nfound = 0;
    }
    return rc == 0 || rc == PUMP_FULL ? 0 : -1;
}

int relay_poll(struct relay *r, int timeout_ms, char *err, size_t errlen) {
    rd_kafka_poll(r->rk, timeout_ms);
    if (kafka_health_fatal(&r->health, err, errlen)) return -1;
    if (r->failed) {
        snprintf(err, errlen, "%s", r->fail_reason);
        return -1;
    }
    return 0;
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

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int relay_drain(struct relay *r, struct store *s, int timeout_ms, char *err, size_t errlen) {
    int64_t deadline = mono_ms() + timeout_ms;
    for (;;) {
        if (relay_pump(r, s, err, errlen) || relay_poll(r, 0, err, errlen)) return -1;
        if (r->head == r->tail && !r->more) return 0;
        if (mono_ms() >= deadline) break;
        if (relay_poll(r, 50, err, errlen)) return -1;
    }
    r->closing = 1; /* the outbox keeps what was not confirmed */
    rd_kafka_purge(r->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(r->rk, 0);
    return 1;
}
