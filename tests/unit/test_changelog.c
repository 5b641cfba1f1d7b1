/* test_changelog.c -- consumer/changelog.c, the state changelog reader, on
 * librdkafka's mock cluster (consumer/mock.h): a source store's state
 * records are produced as changelog records (key [wire code][LMDB key],
 * header creditd-config) and read into a fresh store, which must then hold
 * exactly the source's state.  Also: the fingerprint; a restore that
 * resumes from the store's offsets (only the new records are applied);
 * tombstones; more records than one store txn takes; a record with a wrong
 * or no fingerprint, or a bad key (errors naming topic, partition and
 * offset); a missing topic; a store offset beyond the partition's end (the
 * partition is dropped and restored from the start); standby following;
 * the stop flag.
 *
 * The mock cluster knows no transactions (its last stable offset is its
 * high watermark): read_committed, aborted and open transactions are
 * covered by tests/kafka/it_changelog.sh on a real broker. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "config/config.h"
#include "consumer/changelog.h"
#include "consumer/kclient.h"
#include "consumer/mock.h"
#include "engine/state.h"
#include "store/store.h"
#include "tests/unit/tmpdir.h"

#define TOPIC  "credit.changelog"
#define NPARTS 3
#define WAIT_MS 30000   /* bound of every wait for the mock cluster */

struct rec { uint8_t key[1 + STORE_CHANGE_KEY_MAX]; size_t klen; uint8_t *val; size_t vlen; int32_t part; };

struct recs { struct rec *r; size_t n, cap; };

struct fx {
    char dir[64];
    struct mock *m;
    struct config c;
    struct store *src, *dst;
    rd_kafka_t *prod;
    char err[1024];
    char fp[CHANGELOG_FINGERPRINT_MAX];
};

static const struct { const char *db; uint8_t code; } CODES[] = {
    {"orgs", STORE_CL_ORGS}, {"project_credits", STORE_CL_PROJCRED},
    {"org_partition", STORE_CL_ORGPART}, {"partitions", STORE_CL_PARTS},
    {"dedupe", STORE_CL_DEDUPE}, {"dedupe_expiry", STORE_CL_DDEXP}, {"offsets", STORE_CL_OFFSETS}};
#define NCODES (sizeof CODES / sizeof CODES[0])

/* ---- stores ------------------------------------------------------------------- */

static struct store *open_store(struct fx *f, const char *name) {
    char path[128];
    struct store *s;
    snprintf(path, sizeof(path), "%s/%s", f->dir, name);
    struct store_opts o = {.path = path, .nosync = 1, .currency = "EUR",
                           .max_future_s = f->c.credit_max_future_s,
                           .retention_days = f->c.credit_retention_days};
    assert_int_equal(store_open(&s, &o, f->err, sizeof(f->err)), STORE_OK);
    return s;
}

/* Organisation "o<N>" lives on partition N % NPARTS. */
static int32_t org_part(const char *id) { return (int32_t)(strtol(id + 1, NULL, 10) % NPARTS); }

/* One committed org with a credit of value micro-units and nproj projects. */
static void put_org(struct store *s, const char *id, int64_t value, int nproj) {
    struct engine_store ops;
    struct eng_org o;
    char err[512];
    store_engine_ops(s, &ops);
    eng_org_init(&o);
    strcpy(o.id, id);
    o.partition = org_part(id);
    o.watermark = INT64_C(1767225600000000000);
    o.open_month = 24312;
    o.has_credit = 1;
    o.value = value;
    o.dirty = ENG_DIRTY_META | ENG_DIRTY_CREDIT;
    for (int i = 0; i < nproj; i++) {
        char pid[16];
        snprintf(pid, sizeof(pid), "p%d", i);
        struct eng_project *p = eng_org_add_project(&o, pid);
        assert_non_null(p);
        p->has_credit = 1;
        p->value = 1;
        p->dirty = ENG_DIRTY_CREDIT;
        o.alloc_sum += 1;
    }
    assert_int_equal(store_begin(s, err, sizeof(err)), STORE_OK);
    assert_int_equal(ops.org_put(ops.ctx, &o, err, sizeof(err)), ENG_OK);
    assert_int_equal(store_commit(s, err, sizeof(err)), STORE_OK);
    eng_org_free(&o);
}

static uint8_t code_of(const char *db) {
    for (size_t i = 0; i < NCODES; i++)
        if (!strcmp(CODES[i].db, db)) return CODES[i].code;
    return 0;
}

static int32_t be32(const uint8_t *p) {
    return (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
}

static int collect_cb(void *arg, const char *db, const void *key, size_t klen, const void *val,
                      size_t vlen) {
    struct recs *rs = arg;
    uint8_t code = code_of(db);
    if (!code) return 0;
    if (rs->n == rs->cap) {
        rs->cap = rs->cap ? 2 * rs->cap : 256;
        rs->r = realloc(rs->r, rs->cap * sizeof(*rs->r));
        assert_non_null(rs->r);
    }
    struct rec *r = &rs->r[rs->n++];
    assert_true(klen + 1 <= sizeof(r->key));
    r->key[0] = code;
    memcpy(r->key + 1, key, klen);
    r->klen = klen + 1;
    r->val = malloc(vlen ? vlen : 1);
    assert_non_null(r->val);
    memcpy(r->val, val, vlen);
    r->vlen = vlen;
    if (code == STORE_CL_ORGPART || code == STORE_CL_PARTS) r->part = be32(key) % NPARTS;
    else r->part = org_part((const char *)key);   /* keys start with the org id */
    return 0;
}

/* The state records of s, as changelog records. */
static struct recs records_of(struct store *s) {
    struct recs rs = {0};
    char err[512];
    assert_int_equal(store_dump(s, collect_cb, &rs, err, sizeof(err)), 0);
    return rs;
}

static void recs_free(struct recs *rs) {
    for (size_t i = 0; i < rs->n; i++) free(rs->r[i].val);
    free(rs->r);
    memset(rs, 0, sizeof(*rs));
}

/* The state of s as one comparable text: "code key=value" per record, hex. */
static char *state_text(struct store *s) {
    struct recs rs = records_of(s);
    size_t cap = 1, len = 0;
    for (size_t i = 0; i < rs.n; i++) cap += 2 * (rs.r[i].klen + rs.r[i].vlen) + 3;
    char *t = malloc(cap);
    assert_non_null(t);
    for (size_t i = 0; i < rs.n; i++) {
        for (size_t k = 0; k < rs.r[i].klen; k++) len += (size_t)sprintf(t + len, "%02x", rs.r[i].key[k]);
        t[len++] = '=';
        for (size_t k = 0; k < rs.r[i].vlen; k++) len += (size_t)sprintf(t + len, "%02x", rs.r[i].val[k]);
        t[len++] = '\n';
    }
    t[len] = 0;
    recs_free(&rs);
    return t;
}

static void assert_same_state(struct store *a, struct store *b) {
    char *x = state_text(a), *y = state_text(b);
    assert_true(strlen(x) > 0);
    assert_string_equal(x, y);
    free(x);
    free(y);
}

/* ---- producing ---------------------------------------------------------------- */

static void produce_one(struct fx *f, const uint8_t *key, size_t klen, const uint8_t *val,
                        size_t vlen, int32_t part, const char *header) {
    rd_kafka_headers_t *h = rd_kafka_headers_new(1);
    if (header) rd_kafka_header_add(h, CHANGELOG_HDR_CONFIG, -1, header, -1);
    rd_kafka_resp_err_t e = rd_kafka_producev(
        f->prod, RD_KAFKA_V_TOPIC(TOPIC), RD_KAFKA_V_PARTITION(part),
        RD_KAFKA_V_KEY((void *)key, klen), RD_KAFKA_V_VALUE((void *)val, val ? vlen : 0),
        RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    assert_int_equal(e, RD_KAFKA_RESP_ERR_NO_ERROR);
}

static void flush(struct fx *f) { assert_int_equal(rd_kafka_flush(f->prod, WAIT_MS), 0); }

/* Every record of rs (tomb: as tombstones), with this reader's fingerprint. */
static void produce_recs(struct fx *f, const struct recs *rs, int tomb) {
    for (size_t i = 0; i < rs->n; i++)
        produce_one(f, rs->r[i].key, rs->r[i].klen, tomb ? NULL : rs->r[i].val, rs->r[i].vlen,
                    rs->r[i].part, f->fp);
    flush(f);
}

static size_t on_part(const struct recs *rs, int32_t p) {
    size_t n = 0;
    for (size_t i = 0; i < rs->n; i++) n += rs->r[i].part == p;
    return n;
}

/* ---- fixture ------------------------------------------------------------------- */

static int setup(void **state) {
    struct fx *f = calloc(1, sizeof(*f));
    char err[512];
    const char *topics[] = {TOPIC};
    const int parts[] = {NPARTS};
    assert_non_null(f);
    strcpy(f->dir, "/tmp/test_changelog.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    config_init(&f->c);
    changelog_fingerprint(&f->c, f->fp, sizeof(f->fp));
    assert_int_equal(mock_start_topics(&f->m, "test_changelog", topics, parts, 1, err, sizeof(err)), 0);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", mock_bootstrap(f->m), err,
                                       sizeof(err)), RD_KAFKA_CONF_OK);
    assert_int_equal(rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err)), RD_KAFKA_CONF_OK);
    assert_non_null(f->prod = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err)));
    f->src = open_store(f, "src");
    f->dst = open_store(f, "dst");
    *state = f;
    return 0;
}

static int teardown(void **state) {
    struct fx *f = *state;
    rd_kafka_destroy(f->prod);
    store_close(f->src);
    store_close(f->dst);
    mock_stop(f->m);
    config_free(&f->c);
    tmpdir_rm(f->dir);
    free(f);
    return 0;
}

static struct changelog *open_cl(struct fx *f, volatile sig_atomic_t *stop) {
    struct changelog *cl;
    assert_int_equal(changelog_open(&cl, &f->c, mock_bootstrap(f->m), "test", stop, f->err,
                                    sizeof(f->err)), 0);
    assert_int_equal(changelog_partition_count(cl), NPARTS);
    return cl;
}

static const int32_t ALL[NPARTS] = {0, 1, 2};

/* Restore every partition into f->dst: the return code, *n records. */
static int restore(struct fx *f, uint64_t *n) {
    struct changelog *cl = open_cl(f, NULL);
    int rc = changelog_restore(cl, f->dst, ALL, NPARTS, n, f->err, sizeof(f->err));
    changelog_close(cl);
    if (rc) fprintf(stderr, "restore: %d: %s\n", rc, f->err);
    return rc;
}

static int64_t stored_next(struct store *s, int32_t p) {
    int64_t next = -1;
    char err[512];
    int rc = store_changelog_get(s, p, &next, err, sizeof(err));
    return rc == STORE_NOTFOUND ? -1 : rc ? -2 : next;
}

static void make_orgs(struct store *s, int from, int to) {
    for (int i = from; i < to; i++) {
        char id[16];
        snprintf(id, sizeof(id), "o%d", i);
        put_org(s, id, INT64_C(1000000) * (i + 1), i % 3);
    }
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_fingerprint(void **state) {
    struct fx *f = *state;
    char want[CHANGELOG_FINGERPRINT_MAX], got[CHANGELOG_FINGERPRINT_MAX];
    snprintf(want, sizeof(want), "format=%d close_after=0 max_future=2678400 retention_days=35 "
             "currency=EUR", STORE_FORMAT_VERSION);
    assert_string_equal(f->fp, want);
    struct config c;
    config_init(&c);
    c.credit_close_after_s = 3600;
    c.credit_retention_days = 7;
    strcpy(c.credit_currency, "USD");
    c.credit_max_future_s = 0;
    changelog_fingerprint(&c, got, sizeof(got));
    snprintf(want, sizeof(want), "format=%d close_after=3600 max_future=0 retention_days=7 "
             "currency=USD", STORE_FORMAT_VERSION);
    assert_string_equal(got, want);
    config_free(&c);
}

/* Every record on its partition, read into an empty store: the same state,
 * each partition's next offset stored. */
static void test_restore_all(void **state) {
    struct fx *f = *state;
    uint64_t n = 0;
    make_orgs(f->src, 0, 30);
    struct recs rs = records_of(f->src);
    produce_recs(f, &rs, 0);
    assert_int_equal(restore(f, &n), 0);
    assert_int_equal(n, rs.n);
    assert_same_state(f->src, f->dst);
    for (int32_t p = 0; p < NPARTS; p++) {
        assert_true(on_part(&rs, p) > 0);
        assert_int_equal(stored_next(f->dst, p), (int64_t)on_part(&rs, p));
    }
    recs_free(&rs);
}

/* A second restore reads from the stored offsets: only what came since. */
static void test_resume_and_tombstones(void **state) {
    struct fx *f = *state;
    uint64_t n = 0;
    make_orgs(f->src, 0, 12);
    struct recs all = records_of(f->src);
    produce_recs(f, &all, 0);
    assert_int_equal(restore(f, &n), 0);
    put_org(f->src, "o4", 77, 0);               /* changed: its records again */
    struct recs now = records_of(f->src);
    produce_recs(f, &now, 0);
    assert_int_equal(restore(f, &n), 0);
    assert_int_equal(n, now.n);                 /* not all.n + now.n: resumed */
    assert_same_state(f->src, f->dst);
    struct eng_org o;
    eng_org_init(&o);
    assert_int_equal(store_get_org(f->dst, "o4", &o, f->err, sizeof(f->err)), STORE_OK);
    assert_int_equal(o.value, 77);
    eng_org_free(&o);
    /* Tombstones of every record of o5: gone. */
    struct recs o5 = {0};
    for (size_t i = 0; i < now.n; i++) {
        const struct rec *r = &now.r[i];
        int org_keyed = r->key[0] != STORE_CL_ORGPART && r->key[0] != STORE_CL_PARTS;
        size_t idl = strnlen((const char *)r->key + 1, r->klen - 1);
        if (org_keyed && idl == 2 && !memcmp(r->key + 1, "o5", 2)) {
            o5.r = realloc(o5.r, (o5.n + 1) * sizeof(*o5.r));
            o5.r[o5.n++] = *r;
        }
    }
    assert_true(o5.n >= 2);
    produce_recs(f, &o5, 1);
    assert_int_equal(restore(f, &n), 0);
    assert_int_equal(n, o5.n);
    eng_org_init(&o);
    assert_int_equal(store_get_org(f->dst, "o5", &o, f->err, sizeof(f->err)), STORE_NOTFOUND);
    assert_int_equal(store_get_org(f->dst, "o6", &o, f->err, sizeof(f->err)), STORE_OK);
    eng_org_free(&o);
    free(o5.r);
    recs_free(&now);
    recs_free(&all);
}

/* More records than one store txn takes. */
static void test_many_records(void **state) {
    struct fx *f = *state;
    uint64_t n = 0;
    make_orgs(f->src, 0, 8000);
    struct recs rs = records_of(f->src);
    assert_true(rs.n > CHANGELOG_TXN_RECORDS + 100);
    produce_recs(f, &rs, 0);
    assert_int_equal(restore(f, &n), 0);
    assert_int_equal(n, rs.n);
    assert_same_state(f->src, f->dst);
    recs_free(&rs);
}

/* A record of another writer (another fingerprint, or none): an error
 * naming the topic, partition, offset and both fingerprints. */
static void test_foreign_header(void **state) {
    struct fx *f = *state;
    uint64_t n = 0;
    char want[256];
    make_orgs(f->src, 0, 6);
    struct recs rs = records_of(f->src);
    produce_recs(f, &rs, 0);
    /* the same configuration written by a build of store format 5: mixing
     * formats in one changelog is refused */
    char other[CHANGELOG_FINGERPRINT_MAX];
    snprintf(want, sizeof(want), "format=%d ", STORE_FORMAT_VERSION);
    assert_int_equal(strncmp(f->fp, want, strlen(want)), 0);
    snprintf(other, sizeof(other), "format=5 %s", f->fp + strlen(want));
    assert_string_not_equal(other, f->fp);
    produce_one(f, rs.r[0].key, rs.r[0].klen, rs.r[0].val, rs.r[0].vlen, 1, other);
    flush(f);
    assert_int_not_equal(restore(f, &n), 0);
    snprintf(want, sizeof(want), TOPIC " [1] offset %zu", on_part(&rs, 1));
    assert_non_null(strstr(f->err, want));
    assert_non_null(strstr(f->err, other));
    assert_non_null(strstr(f->err, f->fp));
    recs_free(&rs);
}

static void test_no_header(void **state) {
    struct fx *f = *state;
    uint64_t n = 0;
    make_orgs(f->src, 0, 3);
    struct recs rs = records_of(f->src);
    produce_one(f, rs.r[0].key, rs.r[0].klen, rs.r[0].val, rs.r[0].vlen, 2, NULL);
    flush(f);
    assert_int_not_equal(restore(f, &n), 0);
    assert_non_null(strstr(f->err, TOPIC " [2] offset 0: no header " CHANGELOG_HDR_CONFIG));
    assert_non_null(strstr(f->err, f->fp));
    assert_int_equal(stored_next(f->dst, 2), -1);   /* nothing committed */
    recs_free(&rs);
}

/* A key the store refuses: the store's error with the record's place. */
static void test_bad_key(void **state) {
    struct fx *f = *state;
    uint64_t n = 0;
    const uint8_t key[] = {'z', 'o', '1'}, val[] = {STORE_FORMAT_VERSION, 0};
    produce_one(f, key, sizeof(key), val, sizeof(val), 0, f->fp);
    flush(f);
    assert_int_not_equal(restore(f, &n), 0);
    assert_non_null(strstr(f->err, TOPIC " [0] offset 0: "));
}

static void test_missing_topic(void **state) {
    struct fx *f = *state;
    struct changelog *cl = NULL;
    strcpy(f->c.state_changelog_topic, "no.such.topic");
    assert_int_equal(changelog_open(&cl, &f->c, mock_bootstrap(f->m), "test", NULL, f->err,
                                    sizeof(f->err)), -1);
    assert_null(cl);
    assert_non_null(strstr(f->err, "no.such.topic does not exist"));
}

/* A store offset beyond the partition's end (the topic was recreated):
 * the partition's state is dropped (an org the changelog does not have
 * goes) and restored from the start. */
static void test_beyond_end(void **state) {
    struct fx *f = *state;
    uint64_t n = 0;
    make_orgs(f->src, 0, 9);
    struct recs rs = records_of(f->src);
    produce_recs(f, &rs, 0);
    put_org(f->dst, "o300", 5, 1);               /* partition 0, not in the changelog */
    assert_int_equal(store_begin(f->dst, f->err, sizeof(f->err)), 0);
    assert_int_equal(store_changelog_put(f->dst, 0, 1000000, f->err, sizeof(f->err)), 0);
    assert_int_equal(store_commit(f->dst, f->err, sizeof(f->err)), 0);
    assert_int_equal(restore(f, &n), 0);
    assert_int_equal(n, rs.n);
    assert_same_state(f->src, f->dst);
    assert_int_equal(stored_next(f->dst, 0), (int64_t)on_part(&rs, 0));
    recs_free(&rs);
}

/* Standby: followed partitions are brought up as records arrive. */
static void test_follow(void **state) {
    struct fx *f = *state;
    uint64_t n = 0, total = 0;
    struct changelog *cl = open_cl(f, NULL);
    make_orgs(f->src, 0, 9);
    struct recs rs = records_of(f->src);
    produce_recs(f, &rs, 0);
    assert_int_equal(changelog_follow(cl, f->dst, ALL, NPARTS, f->err, sizeof(f->err)), 0);
    int64_t deadline = kclient_now_ms() + WAIT_MS;
    while (total < rs.n && kclient_now_ms() < deadline) {
        assert_int_equal(changelog_follow_poll(cl, f->dst, 200, &n, f->err, sizeof(f->err)), 0);
        total += n;
    }
    assert_int_equal(total, rs.n);
    assert_same_state(f->src, f->dst);
    put_org(f->src, "o1", 42, 2);                /* more, while following */
    struct recs more = records_of(f->src);
    produce_recs(f, &more, 0);
    for (total = 0, deadline = kclient_now_ms() + WAIT_MS; total < more.n && kclient_now_ms() < deadline;) {
        assert_int_equal(changelog_follow_poll(cl, f->dst, 200, &n, f->err, sizeof(f->err)), 0);
        total += n;
    }
    assert_int_equal(total, more.n);
    assert_same_state(f->src, f->dst);
    /* Following nothing: polls apply nothing. */
    assert_int_equal(changelog_follow(cl, f->dst, NULL, 0, f->err, sizeof(f->err)), 0);
    produce_recs(f, &rs, 0);
    assert_int_equal(changelog_follow_poll(cl, f->dst, 300, &n, f->err, sizeof(f->err)), 0);
    assert_int_equal(n, 0);
    changelog_close(cl);
    recs_free(&more);
    recs_free(&rs);
}

static void test_stop(void **state) {
    struct fx *f = *state;
    volatile sig_atomic_t stop = 0;
    uint64_t n = 0;
    make_orgs(f->src, 0, 3);
    struct recs rs = records_of(f->src);
    produce_recs(f, &rs, 0);
    struct changelog *cl = open_cl(f, &stop);
    stop = 1;
    assert_int_equal(changelog_restore(cl, f->dst, ALL, NPARTS, &n, f->err, sizeof(f->err)),
                     KCLIENT_STOPPED);
    changelog_close(cl);
    assert_int_equal(n, 0);
    for (int32_t p = 0; p < NPARTS; p++) assert_int_equal(stored_next(f->dst, p), -1);
    recs_free(&rs);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fingerprint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_and_tombstones, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_topic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_beyond_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_follow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
