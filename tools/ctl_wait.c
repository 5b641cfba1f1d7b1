/* ctl_wait -- creditctl --wait; see ctl_wait.h. */
#include "tools/ctl_wait.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "consumer/kclient.h"

#define WM_TIMEOUT_MS 10000   /* watermarks of one partition, transient errors retried */

struct ctlwait {
    struct kclient *kc;
    const char *ledger, *rejected;   /* borrowed: outlive the wait */
};

static int assign_end(struct ctlwait *w, rd_kafka_topic_partition_list_t *l, const char *topic,
                      char *err, size_t errlen) {
    int32_t n;
    if (kclient_partition_count(w->kc, topic, KCLIENT_META_TIMEOUT_MS, &n, err, errlen)) return -1;
    for (int32_t p = 0; p < n; p++) {
        int64_t lo, hi;
        if (kclient_watermarks(w->kc, topic, p, WM_TIMEOUT_MS, &lo, &hi, err, errlen)) return -1;
        rd_kafka_topic_partition_list_add(l, topic, p)->offset = hi;
    }
    return 0;
}

int ctlwait_start(struct ctlwait **out, const char *bootstrap, char *const *props, int nprops,
                  const char *ledger, const char *rejected, char *err, size_t errlen) {
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
    w->ledger = ledger;
    w->rejected = rejected;
    if (kclient_new(&w->kc, &spec, err, errlen)) { free(w); return -1; }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
    int rc = assign_end(w, l, ledger, err, errlen);
    if (!rc) rc = assign_end(w, l, rejected, err, errlen);
    rd_kafka_resp_err_t e = rc ? RD_KAFKA_RESP_ERR_NO_ERROR : rd_kafka_assign(kclient_rk(w->kc), l);
    if (e) {
        snprintf(err, errlen, "wait consumer: assign %s, %s: %s", ledger, rejected, rd_kafka_err2str(e));
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

struct seen { int ledger, rejected; int32_t part; char reason[CTLWAIT_REASON_MAX]; };

/* One message: print it if it is the event's outcome. */
static int on_message(struct ctlwait *w, const rd_kafka_message_t *m, const char *source,
                      const char *id, struct seen *s) {
    const char *topic = rd_kafka_topic_name(m->rkt);
    json_t *root = json_loadb(m->payload, m->len, 0, NULL);
    json_t *d = root ? about(root, source, id) : NULL;
    int rc = 0;
    if (d && !strcmp(topic, w->ledger)) {
        if (!s->ledger++) { printf("applied\n"); s->part = m->partition; }
        rc = printf("%.*s\n", (int)m->len, (const char *)m->payload) < 0 ? -1 : 0;
    } else if (d && !strcmp(topic, w->rejected) && !s->ledger) {
        const char *r = json_string_value(json_object_get(d, "reason"));
        const char *msg = json_string_value(json_object_get(d, "message"));
        snprintf(s->reason, sizeof s->reason, "%s", r ? r : "?");
        rc = printf("rejected %s: %s\n", s->reason, msg ? msg : "") < 0 ? -1 : 0;
        s->rejected = 1;
    }
    json_decref(root);
    return rc;
}

int ctlwait_run(struct ctlwait *w, const char *source, const char *id, int timeout_ms,
                char reason[CTLWAIT_REASON_MAX], char *err, size_t errlen) {
    struct seen s = {0};
    int64_t deadline = kclient_now_ms() + timeout_ms;
    while (!s.rejected && kclient_now_ms() < deadline) {
        if (kclient_failed(w->kc, err, errlen)) return -1;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(kclient_rk(w->kc), KCLIENT_POLL_MS);
        if (!m) continue;
        int rc = 0, done = 0;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            /* the ledger entries of one event are written together: at the
             * end of the partition that held the first, all are read */
            done = s.ledger && !strcmp(rd_kafka_topic_name(m->rkt), w->ledger) && m->partition == s.part;
        } else if (m->err) {
            snprintf(err, errlen, "wait consumer: %s", rd_kafka_message_errstr(m));
            rc = -1;
        } else {
            kclient_alive(w->kc);
            rc = on_message(w, m, source, id, &s);
            if (rc) snprintf(err, errlen, "writing output");
        }
        rd_kafka_message_destroy(m);
        if (rc) return -1;
        if (done) return CTLWAIT_APPLIED;
    }
    if (s.rejected) { memcpy(reason, s.reason, CTLWAIT_REASON_MAX); return CTLWAIT_REJECTED; }
    return s.ledger ? CTLWAIT_APPLIED : CTLWAIT_TIMEOUT;
}

void ctlwait_destroy(struct ctlwait *w) {
    if (!w) return;
    if (w->kc) {
        kclient_consumer_close(w->kc, KCLIENT_CLOSE_MS);
        kclient_destroy(w->kc);
    }
    free(w);
}
