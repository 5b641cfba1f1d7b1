/* clog-feed -- test-only: a creditd store's state records as state
 * changelog records (consumer/changelog.h), produced transactionally the
 * way group mode writes them, for tests/kafka/it_changelog.sh.
 *
 *   clog-feed -b BOOTSTRAP -t TOPIC --db STORE [-X KEY=VALUE]... [--header TEXT | --no-header]
 *             [--txn-records N] [--abort] [--leave-open]
 *
 * Every record of the state databases of STORE (store_dump, read-only)
 * becomes one message: key [wire code (store.h enum store_change_db)][LMDB
 * key], value the LMDB value, header creditd-config = changelog_fingerprint
 * of the configuration (-X KEY=VALUE, e.g. credit.currency=USD) or --header
 * TEXT, or none (--no-header).  meta and the outbox are not state and are
 * skipped.  A record goes to a partition of TOPIC chosen from its key (the
 * organisation, or the partition it names): the reader merges every
 * partition into one store, so any placement restores the same state.
 *
 * Transactions (transactional.id clog-feed-PID): the first half of the
 * records in committed transactions of N (--txn-records, default 1000);
 * with --abort, then one ABORTED transaction of bogus records (a tombstone
 * of every key, and an organisation "zz-aborted" made of copies of the
 * first organisation's records); then the second half, committed; with
 * --leave-open, last one transaction of the same bogus records (named
 * "zz-open") that is flushed and never ended: the process exits with it
 * open, so the broker holds the last stable offset of every partition
 * below it until transaction.timeout.ms (10 minutes).
 * Prints "N records, P partitions" on stdout.  Exit 0, 1 usage, 2 error. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "config/config.h"
#include "consumer/changelog.h"
#include "store/store.h"

#define TIMEOUT_MS 60000
#define MAX_XS 64

struct rec { uint8_t code; uint8_t *key; size_t klen; uint8_t *val; size_t vlen; int32_t part; };

struct feed {
    struct rec *r;
    size_t n, cap;
    int32_t nparts;
    rd_kafka_t *rk;
    const char *topic, *header;
};

static const struct { const char *db; uint8_t code; } CODES[] = {
    {"orgs", STORE_CL_ORGS}, {"project_credits", STORE_CL_PROJCRED},
    {"org_partition", STORE_CL_ORGPART}, {"partitions", STORE_CL_PARTS},
    {"dedupe", STORE_CL_DEDUPE}, {"dedupe_expiry", STORE_CL_DDEXP}, {"offsets", STORE_CL_OFFSETS}};

static void die(const char *what, const char *why) {
    fprintf(stderr, "clog-feed: %s: %s\n", what, why);
    exit(2);
}

static uint32_t fnv(const uint8_t *p, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
    return h;
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The partition a record goes to: by organisation, or by the partition its key names. */
static int32_t place(uint8_t code, const uint8_t *k, size_t n, int32_t nparts) {
    uint32_t h;
    if (code == STORE_CL_ORGPART || code == STORE_CL_PARTS || code == STORE_CL_DDEXP)
        h = n >= 4 ? be32(k) : 0;
    else if (code == STORE_CL_OFFSETS)
        h = n >= 4 ? be32(k + n - 4) : 0;
    else {
        size_t org = 0;   /* org, or org\0project: the organisation */
        while (org < n && k[org]) org++;
        h = fnv(k, code == STORE_CL_DEDUPE ? n : org);
    }
    return (int32_t)(h % (uint32_t)nparts);
}

static void *dup_bytes(const void *p, size_t n) {
    void *d = malloc(n ? n : 1);
    if (!d) die("memory", "out of memory");
    if (n) memcpy(d, p, n);
    return d;
}

static int dump_cb(void *arg, const char *db, const void *key, size_t klen, const void *val,
                   size_t vlen) {
    struct feed *f = arg;
    size_t i = 0;
    while (i < sizeof CODES / sizeof CODES[0] && strcmp(CODES[i].db, db)) i++;
    if (i == sizeof CODES / sizeof CODES[0]) return 0;   /* meta, outbox: not state */
    if (f->n == f->cap) {
        f->cap = f->cap ? 2 * f->cap : 1024;
        if (!(f->r = realloc(f->r, f->cap * sizeof(*f->r)))) die("memory", "out of memory");
    }
    struct rec *r = &f->r[f->n++];
    r->code = CODES[i].code;
    r->key = dup_bytes(key, klen);
    r->klen = klen;
    r->val = dup_bytes(val, vlen);
    r->vlen = vlen;
    r->part = place(r->code, key, klen, f->nparts);
    return 0;
}

static void produce(struct feed *f, uint8_t code, const uint8_t *k, size_t klen, const uint8_t *v,
                    size_t vlen, int32_t part) {
    uint8_t key[1 + STORE_CHANGE_KEY_MAX];
    if (klen + 1 > sizeof(key)) die("store", "key too long");
    key[0] = code;
    memcpy(key + 1, k, klen);
    rd_kafka_headers_t *h = rd_kafka_headers_new(1);
    if (f->header) rd_kafka_header_add(h, CHANGELOG_HDR_CONFIG, -1, f->header, -1);
    for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            f->rk, RD_KAFKA_V_TOPIC(f->topic), RD_KAFKA_V_PARTITION(part),
            RD_KAFKA_V_KEY(key, klen + 1), RD_KAFKA_V_VALUE((void *)v, v ? vlen : 0),
            RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) return;   /* the headers are the message's now */
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) die("produce", rd_kafka_err2str(e));
        rd_kafka_poll(f->rk, 100);
    }
}

static void txn_check(rd_kafka_error_t *e, const char *what) {
    if (!e) return;
    fprintf(stderr, "clog-feed: %s: %s\n", what, rd_kafka_error_string(e));
    exit(2);
}

/* Records [from, to) in committed transactions of n. */
static void committed(struct feed *f, size_t from, size_t to, size_t n) {
    for (size_t i = from; i < to;) {
        txn_check(rd_kafka_begin_transaction(f->rk), "begin");
        for (size_t end = i + n < to ? i + n : to; i < end; i++)
            produce(f, f->r[i].code, f->r[i].key, f->r[i].klen, f->r[i].val, f->r[i].vlen, f->r[i].part);
        txn_check(rd_kafka_commit_transaction(f->rk, TIMEOUT_MS), "commit");
    }
}

/* A transaction that must never be seen: a tombstone of every key, and
 * a copy of the first organisation's orgs record (the whole organisation
 * but its projects) under the name org. */
static void bogus(struct feed *f, const char *org) {
    const struct rec *first = NULL;
    txn_check(rd_kafka_begin_transaction(f->rk), "begin");
    for (size_t i = 0; i < f->n; i++)
        produce(f, f->r[i].code, f->r[i].key, f->r[i].klen, NULL, 0, f->r[i].part);
    for (size_t i = 0; i < f->n && !first; i++)
        if (f->r[i].code == STORE_CL_ORGS) first = &f->r[i];
    for (size_t j = 0; first && j < f->n; j++) {
        const struct rec *r = &f->r[j];
        if (r->code == STORE_CL_ORGS &&
            r->klen == first->klen && memcmp(r->key, first->key, r->klen) == 0)
            produce(f, r->code, (const uint8_t *)org, strlen(org), r->val, r->vlen, 0);
    }
}

static rd_kafka_t *producer(const char *bootstrap) {
    char err[512], tid[64];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    snprintf(tid, sizeof(tid), "clog-feed-%ld", (long)getpid());
    if (rd_kafka_conf_set(c, "bootstrap.servers", bootstrap, err, sizeof(err)) ||
        rd_kafka_conf_set(c, "transactional.id", tid, err, sizeof(err)) ||
        rd_kafka_conf_set(c, "transaction.timeout.ms", "600000", err, sizeof(err)) ||
        rd_kafka_conf_set(c, "linger.ms", "5", err, sizeof(err)))
        die("config", err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err));
    if (!rk) die("producer", err);
    txn_check(rd_kafka_init_transactions(rk, TIMEOUT_MS), "init_transactions");
    return rk;
}

static int32_t partitions(rd_kafka_t *rk, const char *topic) {
    const struct rd_kafka_metadata *md;
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, t, &md, TIMEOUT_MS);
    if (e) die(topic, rd_kafka_err2str(e));
    if (md->topic_cnt != 1 || md->topics[0].err) die(topic, "no such topic");
    int32_t n = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(t);
    return n;
}

static void usage(void) {
    fprintf(stderr, "usage: clog-feed -b BOOTSTRAP -t TOPIC --db STORE [-X KEY=VALUE]... "
            "[--header TEXT | --no-header] [--txn-records N] [--abort] [--leave-open]\n");
    exit(1);
}

int main(int argc, char **argv) {
    const char *bs = NULL, *db = NULL, *header = NULL;
    char *xs[MAX_XS], fp[CHANGELOG_FINGERPRINT_MAX], err[512];
    int nx = 0, no_header = 0, abort_txn = 0, leave_open = 0;
    long per = 1000;
    struct feed f = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--no-header")) no_header = 1;
        else if (!strcmp(a, "--abort")) abort_txn = 1;
        else if (!strcmp(a, "--leave-open")) leave_open = 1;
        else if (!v) usage();
        else if (!strcmp(a, "-b")) bs = argv[++i];
        else if (!strcmp(a, "-t")) f.topic = argv[++i];
        else if (!strcmp(a, "--db")) db = argv[++i];
        else if (!strcmp(a, "--header")) header = argv[++i];
        else if (!strcmp(a, "--txn-records") && (per = atol(v)) > 0) i++;
        else if (!strcmp(a, "-X") && nx < MAX_XS) xs[nx++] = argv[++i];
        else usage();
    }
    if (!bs || !f.topic || !db) usage();
    struct config cfg;
    if (config_load_args(&cfg, NULL, xs, nx, err, sizeof(err))) die("config", err);
    changelog_fingerprint(&cfg, fp, sizeof(fp));
    config_free(&cfg);
    f.header = no_header ? NULL : header ? header : fp;
    struct store *s;
    struct store_opts so = {.path = db, .readonly = 1};
    if (store_open(&s, &so, err, sizeof(err))) die(db, err);
    f.rk = producer(bs);
    f.nparts = partitions(f.rk, f.topic);
    if (store_dump(s, dump_cb, &f, err, sizeof(err))) die(db, err);
    store_close(s);
    committed(&f, 0, f.n / 2, (size_t)per);
    if (abort_txn) {   /* flushed first: its records are in the log, then aborted */
        bogus(&f, "zz-aborted");
        if (rd_kafka_flush(f.rk, TIMEOUT_MS)) die("flush", "the aborted records were not delivered");
        txn_check(rd_kafka_abort_transaction(f.rk, TIMEOUT_MS), "abort");
    }
    committed(&f, f.n / 2, f.n, (size_t)per);
    if (leave_open) {
        bogus(&f, "zz-open");
        if (rd_kafka_flush(f.rk, TIMEOUT_MS)) die("flush", "the open records were not delivered");
    }
    printf("%zu records, %d partitions\n", f.n, (int)f.nparts);
    fflush(stdout);
    if (leave_open) _exit(0);   /* no rd_kafka_destroy: the transaction stays open */
    rd_kafka_destroy(f.rk);
    return 0;
}
