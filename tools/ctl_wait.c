/* ctl_wait -- creditctl --wait; see ctl_wait.h. */
#include "tools/ctl_wait.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "consumer/kclient.h"
#include "engine/state.h"
#include "store/store.h"

#define WM_TIMEOUT_MS 10000   /* watermarks of one partition, transient errors retried */
#define MAX_PARTS 100000      /* partitions of one output topic (bounds pos, target) */
#define MAX_IDS 4096          /* output ids of one event tracked (seen, pending) */
#define ERRLEN 512

/* The topics read: an event's outputs (ledger entries, an overage void) and
 * its reject. */
enum { W_LEDGER, W_OVERAGE, W_REJECTED, W_NTOPIC };

struct ctlwait {
    struct kclient *kc;
    const char *topic[W_NTOPIC];    /* borrowed: outlive the wait */
    int32_t nparts[W_NTOPIC];
    int64_t *pos[W_NTOPIC];         /* [nparts]: next offset to read */
    int64_t *target[W_NTOPIC];      /* [nparts]: read up to here once an output is seen */
};

/* A bounded set of output ids ("ledger/o1/7").  An event with more outputs
 * than MAX_IDS (a revoke of thousands of projects) is tracked in part: the
 * wait may then last until its time is up, or end before all are printed. */
struct ids { char *v[MAX_IDS]; size_t n; };

static void ids_add(struct ids *s, const char *id) {
    if (s->n < MAX_IDS && (s->v[s->n] = strdup(id))) s->n++;
}

/* Remove id; 1 when it was there. */
static int ids_take(struct ids *s, const char *id) {
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->v[i], id)) {
            free(s->v[i]);
            s->v[i] = s->v[--s->n];
            return 1;
        }
    return 0;
}

static int ids_has(const struct ids *s, const char *id) {
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->v[i], id)) return 1;
    return 0;
}

static void ids_free(struct ids *s) {
    for (size_t i = 0; i < s->n; i++) free(s->v[i]);
    s->n = 0;
}

static int assign_end(struct ctlwait *w, rd_kafka_topic_partition_list_t *l, int t,
                      char *err, size_t errlen) {
    int32_t n;
    if (kclient_partition_count(w->kc, w->topic[t], KCLIENT_META_TIMEOUT_MS, &n, err, errlen)) return -1;
    if (n < 1 || n > MAX_PARTS || !(w->pos[t] = calloc((size_t)n, sizeof(int64_t))) ||
        !(w->target[t] = calloc((size_t)n, sizeof(int64_t)))) {
        snprintf(err, errlen, "wait consumer: topic %s: %d partitions", w->topic[t], (int)n);
        return -1;
    }
    w->nparts[t] = n;
    for (int32_t p = 0; p < n; p++) {
        int64_t lo, hi;
        if (kclient_watermarks(w->kc, w->topic[t], p, WM_TIMEOUT_MS, &lo, &hi, err, errlen)) return -1;
        rd_kafka_topic_partition_list_add(l, w->topic[t], p)->offset = hi;
        w->pos[t][p] = hi;
    }
    return 0;
}

int ctlwait_start(struct ctlwait **out, const char *bootstrap, const struct config *cfg,
                  const char *ledger, const char *overage, const char *rejected, char *err,
                  size_t errlen) {
    static const struct kclient_prop forced[] = {
        {"group.id", "creditctl-wait"}, /* assign only: never joins, never commits */
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"enable.partition.eof", "true"},
        {"isolation.level", "read_committed"},
        {NULL, NULL}};
    /* A fetch waits on the broker at most this long: the watermark queries
     * of take_targets() queue behind it (0.5 s each by default). */
    static const struct kclient_prop defaults[] = {{"fetch.wait.max.ms", "50"}, {NULL, NULL}};
    struct kclient_spec spec = {.prog = "creditctl", .role = "wait consumer",
                                .type = RD_KAFKA_CONSUMER, .cfg = cfg,
                                .bootstrap = bootstrap, .forced = forced, .defaults = defaults,
                                .stop_on = KCLIENT_STOP_AUTH | KCLIENT_STOP_DOWN};
    struct ctlwait *w = calloc(1, sizeof *w);
    if (!w) { snprintf(err, errlen, "out of memory"); return -1; }
    w->topic[W_LEDGER] = ledger;
    w->topic[W_OVERAGE] = overage;
    w->topic[W_REJECTED] = rejected;
    if (kclient_new(&w->kc, &spec, err, errlen)) { free(w); return -1; }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
    int rc = 0;
    for (int t = 0; t < W_NTOPIC && !rc; t++) rc = assign_end(w, l, t, err, errlen);
    rd_kafka_resp_err_t e = rc ? RD_KAFKA_RESP_ERR_NO_ERROR : rd_kafka_assign(kclient_rk(w->kc), l);
    if (e) {
        snprintf(err, errlen, "wait consumer: assign %s, %s, %s: %s", ledger, overage, rejected,
                 rd_kafka_err2str(e));
        rc = -1;
    }
    rd_kafka_topic_partition_list_destroy(l);
    if (rc) { ctlwait_destroy(w); return -1; }
    *out = w;
    return 0;
}

/* Is this output about (source, id)?  Returns its data object (borrowed from
 * root) or NULL. */
static json_t *about(json_t *root, const char *source, const char *id) {
    json_t *d = json_object_get(root, "data");
    const char *s = json_string_value(json_object_get(d, "event_source"));
    const char *i = json_string_value(json_object_get(d, "event_id"));
    return s && i && !strcmp(s, source) && !strcmp(i, id) ? d : NULL;
}

static int topic_index(const struct ctlwait *w, const char *name) {
    for (int t = 0; t < W_NTOPIC; t++)
        if (!strcmp(w->topic[t], name)) return t;
    return -1;
}

struct seen {
    const char *source, *id;   /* the event */
    int outputs, rejected, targeted;
    struct ids printed;        /* ids of the outputs printed */
    struct ids pending;        /* in the outbox when the first was read, not yet printed */
    char reason[CTLWAIT_REASON_MAX];
};

/* One message: print it if it is the event's outcome. */
static int on_message(const rd_kafka_message_t *m, int t, struct seen *s) {
    json_t *root = json_loadb(m->payload, m->len, 0, NULL);
    json_t *d = root ? about(root, s->source, s->id) : NULL;
    const char *oid = json_string_value(json_object_get(root, "id"));
    int rc = 0;
    if (d && t != W_REJECTED && !(oid && ids_has(&s->printed, oid))) {
        if (!s->outputs++) rc = printf("applied\n") < 0 ? -1 : 0;
        if (!rc) rc = printf("%.*s\n", (int)m->len, (const char *)m->payload) < 0 ? -1 : 0;
        if (oid) { ids_add(&s->printed, oid); ids_take(&s->pending, oid); }
    } else if (d && t == W_REJECTED && !s->outputs) {
        const char *r = json_string_value(json_object_get(d, "reason"));
        const char *msg = json_string_value(json_object_get(d, "message"));
        snprintf(s->reason, sizeof s->reason, "%s", r ? r : "?");
        rc = printf("rejected %s: %s\n", s->reason, msg ? msg : "") < 0 ? -1 : 0;
        s->rejected = 1;
    }
    json_decref(root);
    return rc;
}

/* store_outbox_scan callback: the event's ledger and overage outputs still
 * in the outbox and not printed yet go to s->pending. */
static int pending_cb(void *arg, uint64_t seq, enum eng_out_kind kind, const char *key,
                      const char *json, size_t len) {
    struct seen *s = arg;
    (void)seq; (void)key;
    if (kind != ENG_OUT_LEDGER && kind != ENG_OUT_OVERAGE) return 0;
    json_t *root = json_loadb(json, len, 0, NULL);
    const char *oid = json_string_value(json_object_get(root, "id"));
    if (root && about(root, s->source, s->id) && oid && !ids_has(&s->printed, oid))
        ids_add(&s->pending, oid);
    json_decref(root);
    return 0;
}

/* The first output was read: its batch is committed.  Every output of the
 * event is then either still in the outbox of the store at db (pending:
 * waited for by id) or was delivered before this scan, so below the high
 * watermarks queried after it (the targets).  Without db, the targets alone. */
static int take_targets(struct ctlwait *w, const char *db, struct seen *s, char *err, size_t errlen) {
    char serr[ERRLEN];
    struct store *st = NULL;
    struct store_opts so = {.path = db, .readonly = 1};
    if (db && (store_open(&st, &so, serr, sizeof serr) ||
               store_outbox_scan(st, 0, pending_cb, s, serr, sizeof serr)))
        fprintf(stderr, "creditctl: --wait: --db %s: %s (the outputs printed may be incomplete)\n",
                db, serr);
    store_close(st);
    for (int t = W_LEDGER; t <= W_OVERAGE; t++)
        for (int32_t p = 0; p < w->nparts[t]; p++) {
            int64_t lo;
            if (kclient_watermarks(w->kc, w->topic[t], p, WM_TIMEOUT_MS, &lo, &w->target[t][p],
                                   err, errlen)) return -1;
        }
    s->targeted = 1;
    return 0;
}

/* Every target reached and no pending output left. */
static int complete(const struct ctlwait *w, const struct seen *s) {
    if (!s->targeted || s->pending.n) return 0;
    for (int t = W_LEDGER; t <= W_OVERAGE; t++)
        for (int32_t p = 0; p < w->nparts[t]; p++)
            if (w->pos[t][p] < w->target[t][p]) return 0;
    return 1;
}

/* One poll result: positions, the outcome. */
static int on_poll(struct ctlwait *w, const rd_kafka_message_t *m, struct seen *s, char *err,
                   size_t errlen) {
    int t = m->rkt ? topic_index(w, rd_kafka_topic_name(m->rkt)) : -1;
    int in = t >= 0 && m->partition >= 0 && m->partition < w->nparts[t];
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        if (in && m->offset > w->pos[t][m->partition]) w->pos[t][m->partition] = m->offset;
        return 0;
    }
    if (m->err) {
        snprintf(err, errlen, "wait consumer: %s", rd_kafka_message_errstr(m));
        return -1;
    }
    kclient_alive(w->kc);
    if (!in) return 0;
    w->pos[t][m->partition] = m->offset + 1;
    if (on_message(m, t, s)) {
        snprintf(err, errlen, "writing output");
        return -1;
    }
    return 0;
}

int ctlwait_run(struct ctlwait *w, const char *db, const char *source, const char *id,
                int timeout_ms, char reason[CTLWAIT_REASON_MAX], char *err, size_t errlen) {
    struct seen s = {.source = source, .id = id};
    int64_t deadline = kclient_now_ms() + timeout_ms;
    int rc = CTLWAIT_TIMEOUT;
    while (!s.rejected && kclient_now_ms() < deadline) {
        if (kclient_failed(w->kc, err, errlen)) { rc = -1; break; }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(kclient_rk(w->kc), KCLIENT_POLL_MS);
        if (!m) continue;
        int prc = on_poll(w, m, &s, err, errlen);
        rd_kafka_message_destroy(m);
        if (!prc && s.outputs && !s.targeted) prc = take_targets(w, db, &s, err, errlen);
        if (prc) { rc = -1; break; }
        if (complete(w, &s)) break;
    }
    if (rc != -1 && s.rejected) {
        memcpy(reason, s.reason, CTLWAIT_REASON_MAX);
        rc = CTLWAIT_REJECTED;
    } else if (rc != -1 && s.outputs) rc = CTLWAIT_APPLIED;
    ids_free(&s.printed);
    ids_free(&s.pending);
    return rc;
}

void ctlwait_destroy(struct ctlwait *w) {
    if (!w) return;
    if (w->kc) {
        kclient_consumer_close(w->kc, KCLIENT_CLOSE_MS);
        kclient_destroy(w->kc);
    }
    for (int t = 0; t < W_NTOPIC; t++) {
        free(w->pos[t]);
        free(w->target[t]);
    }
    free(w);
}
