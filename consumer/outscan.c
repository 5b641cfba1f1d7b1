/* outscan.c -- see outscan.h. */
#include "consumer/outscan.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "consumer/kclient.h"
#include "consumer/log.h"

#define OUTSCAN_GROUP "creditd-outscan"  /* group.id: never joins, never commits */

struct scan {
    struct kclient *kc;           /* the scan's consumer (messages naming its principal) */
    const struct outscan_part *parts;
    size_t n;
    char *done;                   /* [n]: partition read to its end */
    size_t left;                  /* partitions not done */
    const char *instance;
    struct outscan_found *found;
    size_t nfound, cap;
};

static size_t part_index(const struct scan *s, const char *topic, int32_t partition) {
    for (size_t i = 0; i < s->n; i++)
        if (s->parts[i].partition == partition && strcmp(s->parts[i].topic, topic) == 0) return i;
    return s->n;
}

static void mark_done(struct scan *s, size_t i) {
    if (i < s->n && !s->done[i]) {
        s->done[i] = 1;
        s->left--;
    }
}

/* The outbox seq in m's headers when m was written by this store: 1, else 0. */
static int header_seq(const rd_kafka_message_t *m, const char *instance, uint64_t *seq) {
    rd_kafka_headers_t *h;
    const void *v;
    size_t len;
    char buf[32];
    if (rd_kafka_message_headers(m, &h)) return 0;
    if (rd_kafka_header_get_last(h, OUTSCAN_HDR_INSTANCE, &v, &len) || len != strlen(instance) ||
        memcmp(v, instance, len) != 0)
        return 0;
    if (rd_kafka_header_get_last(h, OUTSCAN_HDR_SEQ, &v, &len) || len == 0 || len >= sizeof(buf))
        return 0;
    memcpy(buf, v, len);
    buf[len] = 0;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(buf, &end, 10);
    if (errno || *end || buf[0] < '0' || buf[0] > '9') return 0;
    *seq = x;
    return 1;
}

static int on_message(struct scan *s, const rd_kafka_message_t *m, char *err, size_t errlen) {
    if (!m->rkt) { /* a client-level event: transient, librdkafka retries */
        log_warn("output scan", "%s", rd_kafka_message_errstr(m));
        return 0;
    }
    size_t i = part_index(s, rd_kafka_topic_name(m->rkt), m->partition);
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        mark_done(s, i);
        return 0;
    }
    if (m->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
        kclient_denied(s->kc, "topic", rd_kafka_topic_name(m->rkt), err, errlen);
        return -1;
    }
    if (m->err == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED) {
        kclient_denied(s->kc, "group", OUTSCAN_GROUP, err, errlen);
        return -1;
    }
    if (m->err) {
        snprintf(err, errlen, "reading output %s [%d]: %s", rd_kafka_topic_name(m->rkt),
                 (int)m->partition, rd_kafka_message_errstr(m));
        return -1;
    }
    if (i == s->n) return 0;
    uint64_t seq;
    if (header_seq(m, s->instance, &seq)) {
        if (s->nfound == s->cap) {
            size_t cap = s->cap ? s->cap * 2 : 1024;
            struct outscan_found *f = cap <= OUTSCAN_FOUND_MAX ? realloc(s->found, cap * sizeof(*f)) : NULL;
            if (!f) {
                snprintf(err, errlen, "reading outputs: more than %zu entries found", s->cap);
                return -1;
            }
            s->found = f;
            s->cap = cap;
        }
        s->found[s->nfound++] = (struct outscan_found){seq, s->parts[i].kind, m->partition, m->offset};
    }
    if (m->offset + 1 >= s->parts[i].to) mark_done(s, i);
    return 0;
}

static struct kclient *scan_handle(const struct config *c, const char *bootstrap,
                                   volatile sig_atomic_t *stop, char *err, size_t errlen) {
    static const struct kclient_prop forced[] = {
        {"group.id", OUTSCAN_GROUP}, /* never joins: assign only, never commits */
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"auto.offset.reset", "error"},
        {"isolation.level", "read_uncommitted"},
        {"enable.partition.eof", "true"},
        {NULL, NULL}};
    struct kclient_spec spec = {.prog = "creditd", .role = "output scan", .type = RD_KAFKA_CONSUMER,
                                .cfg = c, .bootstrap = bootstrap, .forced = forced, .stop = stop,
                                .stop_on = KCLIENT_STOP_AUTH,
                                .acl_need = "Read (and Describe on group " OUTSCAN_GROUP ")"};
    struct kclient *kc;
    return kclient_new(&kc, &spec, err, errlen) ? NULL : kc;
}

static int cmp_found(const void *a, const void *b) {
    const struct outscan_found *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Until every partition is read to its end: 0, -1 or KCLIENT_STOPPED. */
static int scan_loop(struct kclient *kc, struct scan *s, volatile sig_atomic_t *stop, int timeout_ms,
                     char *err, size_t errlen) {
    int64_t deadline = kclient_now_ms() + timeout_ms;
    while (s->left > 0) {
        if (kclient_failed(kc, err, errlen)) return -1;
        if (stop && *stop) return KCLIENT_STOPPED;
        if (kclient_now_ms() > deadline) {
            snprintf(err, errlen, "reading the output topics back did not finish within %d ms "
                     "(%zu partitions left); not re-sending anything", timeout_ms, s->left);
            return -1;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(kclient_rk(kc), KCLIENT_POLL_MS);
        if (!m) continue;
        int rc = on_message(s, m, err, errlen);
        rd_kafka_message_destroy(m);
        if (rc) return -1;
    }
    return 0;
}

/* Read parts listed in l with a short-lived consumer. */
static int scan(const struct config *c, const char *bootstrap, volatile sig_atomic_t *stop,
                rd_kafka_topic_partition_list_t *l, struct scan *s, int timeout_ms,
                char *err, size_t errlen) {
    struct kclient *kc = scan_handle(c, bootstrap, stop, err, errlen);
    if (!kc) return -1;
    s->kc = kc;
    int rc = 0;
    rd_kafka_resp_err_t e = rd_kafka_assign(kclient_rk(kc), l);
    if (e) {
        snprintf(err, errlen, "output scan: assign: %s", rd_kafka_err2str(e));
        rc = -1;
    } else {
        rc = scan_loop(kc, s, stop, timeout_ms, err, errlen);
        e = rd_kafka_assign(kclient_rk(kc), NULL);
        if (e) log_warn("output scan", "unassigning: %s", rd_kafka_err2str(e));
    }
    kclient_consumer_close(kc, KCLIENT_CLOSE_MS);
    kclient_destroy(kc);
    return rc;
}

int outscan_run(const struct config *c, const char *bootstrap, volatile sig_atomic_t *stop,
                const char *instance, const struct outscan_part *parts, size_t n, int timeout_ms,
                struct outscan_found **found, size_t *nfound, char *err, size_t errlen) {
    struct scan s = {NULL, parts, n, calloc(n ? n : 1, 1), 0, instance, NULL, 0, 0};
    *found = NULL;
    *nfound = 0;
    if (!s.done) {
        snprintf(err, errlen, "output scan: out of memory");
        return -1;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++) {
        if (parts[i].from >= parts[i].to) { s.done[i] = 1; continue; }
        rd_kafka_topic_partition_list_add(l, parts[i].topic, parts[i].partition)->offset = parts[i].from;
        s.left++;
    }
    int rc = s.left > 0 ? scan(c, bootstrap, stop, l, &s, timeout_ms, err, errlen) : 0;
    rd_kafka_topic_partition_list_destroy(l);
    free(s.done);
    if (rc) {
        free(s.found);
        return rc == KCLIENT_STOPPED ? KCLIENT_STOPPED : -1;
    }
    if (s.nfound) qsort(s.found, s.nfound, sizeof(*s.found), cmp_found);
    size_t w = 0; /* drop repeats of a seq (keep the first copy) */
    for (size_t i = 0; i < s.nfound; i++)
        if (w == 0 || s.found[w - 1].seq != s.found[i].seq) s.found[w++] = s.found[i];
    *found = s.found;
    *nfound = w;
    return 0;
}
