/* ctl_wait -- creditctl --wait; see ctl_wait.h. */
#include "tools/ctl_wait.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "consumer/kclient.h"

#define WM_TIMEOUT_MS 10000   /* watermarks of one partition, transient errors retried */
#define MAX_PARTS 100000      /* partitions of one output topic (bounds at_end) */

/* The topics read: an event's outputs (ledger entries, an overage void) and
 * its reject. */
enum { W_LEDGER, W_OVERAGE, W_REJECTED, W_NTOPIC };

struct ctlwait {
    struct kclient *kc;
    const char *topic[W_NTOPIC];       /* borrowed: outlive the wait */
    int32_t nparts[W_NTOPIC];
    unsigned char *at_end[W_NTOPIC];   /* [nparts]: read to its end (EOF, no message since) */
};

static int assign_end(struct ctlwait *w, rd_kafka_topic_partition_list_t *l, int t,
                      char *err, size_t errlen) {
    int32_t n;
    if (kclient_partition_count(w->kc, w->topic[t], KCLIENT_META_TIMEOUT_MS, &n, err, errlen)) return -1;
    if (n < 1 || n > MAX_PARTS || !(w->at_end[t] = calloc((size_t)n, 1))) {
        snprintf(err, errlen, "wait consumer: topic %s: %d partitions", w->topic[t], (int)n);
        return -1;
    }
    w->nparts[t] = n;
    for (int32_t p = 0; p < n; p++) {
        int64_t lo, hi;
        if (kclient_watermarks(w->kc, w->topic[t], p, WM_TIMEOUT_MS, &lo, &hi, err, errlen)) return -1;
        rd_kafka_topic_partition_list_add(l, w->topic[t], p)->offset = hi;
    }
    return 0;
}

int ctlwait_start(struct ctlwait **out, const char *bootstrap, char *const *props, int nprops,
                  const char *ledger, const char *overage, const char *rejected, char *err,
                  size_t errlen) {
    static const struct kclient_prop forced[] = {
        {"group.id", "creditctl-wait"}, /* assign only: never joins, never commits */
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"enable.partition.eof", "true"},
        {"isolation.level", "read_committed"},
        {NULL, NULL}};
    struct kclient_spec spec = {.prog = "creditctl", .role = "wait consumer",
                                .type = RD_KAFKA_CONSUMER, .xs = props, .nx = nprops,
                                .bootstrap = bootstrap, .forced = forced,
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

struct seen { int outputs, rejected; char reason[CTLWAIT_REASON_MAX]; };

/* One message: print it if it is the event's outcome. */
static int on_message(const rd_kafka_message_t *m, int t, const char *source,
                      const char *id, struct seen *s) {
    json_t *root = json_loadb(m->payload, m->len, 0, NULL);
    json_t *d = root ? about(root, source, id) : NULL;
    int rc = 0;
    if (d && t != W_REJECTED) {
        if (!s->outputs++) rc = printf("applied\n") < 0 ? -1 : 0;
        if (!rc) rc = printf("%.*s\n", (int)m->len, (const char *)m->payload) < 0 ? -1 : 0;
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

/* Every ledger and overage partition read to its end. */
static int all_at_end(const struct ctlwait *w) {
    for (int t = W_LEDGER; t <= W_OVERAGE; t++)
        for (int32_t p = 0; p < w->nparts[t]; p++)
            if (!w->at_end[t][p]) return 0;
    return 1;
}

/* Track the end of one partition: EOF sets it, a message clears it. */
static void mark(struct ctlwait *w, int t, int32_t p, int eof) {
    if (t >= 0 && p >= 0 && p < w->nparts[t]) w->at_end[t][p] = (unsigned char)eof;
}

int ctlwait_run(struct ctlwait *w, const char *source, const char *id, int timeout_ms,
                char reason[CTLWAIT_REASON_MAX], char *err, size_t errlen) {
    struct seen s = {0};
    int64_t deadline = kclient_now_ms() + timeout_ms;
    while (!s.rejected && kclient_now_ms() < deadline) {
        if (kclient_failed(w->kc, err, errlen)) return -1;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(kclient_rk(w->kc), KCLIENT_POLL_MS);
        if (!m) continue;
        int rc = 0, t = m->rkt ? topic_index(w, rd_kafka_topic_name(m->rkt)) : -1;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            mark(w, t, m->partition, 1);
        } else if (m->err) {
            snprintf(err, errlen, "wait consumer: %s", rd_kafka_message_errstr(m));
            rc = -1;
        } else {
            kclient_alive(w->kc);
            mark(w, t, m->partition, 0);
            if (t >= 0 && (rc = on_message(m, t, source, id, &s)))
                snprintf(err, errlen, "writing output");
        }
        rd_kafka_message_destroy(m);
        if (rc) return -1;
        /* creditd writes one event's outputs together: once the first is
         * read, the rest are read with the ends of the output partitions */
        if (s.outputs && all_at_end(w)) return CTLWAIT_APPLIED;
    }
    if (s.rejected) { memcpy(reason, s.reason, CTLWAIT_REASON_MAX); return CTLWAIT_REJECTED; }
    return s.outputs ? CTLWAIT_APPLIED : CTLWAIT_TIMEOUT;
}

void ctlwait_destroy(struct ctlwait *w) {
    if (!w) return;
    if (w->kc) {
        kclient_consumer_close(w->kc, KCLIENT_CLOSE_MS);
        kclient_destroy(w->kc);
    }
    for (int t = 0; t < W_NTOPIC; t++) free(w->at_end[t]);
    free(w);
}
