/* mock.c -- see mock.h. */
#include "consumer/mock.h"

#include <stdio.h>
#include <stdlib.h>

#include "consumer/kclient.h"

struct mock {
    struct kclient *owner;        /* hosts the cluster (an idle producer) */
    rd_kafka_mock_cluster_t *mc;
};

int mock_start_topics(struct mock **out, const char *prog, const char *const *topics,
                      const int *partitions, size_t n, char *err, size_t errlen) {
    static const struct kclient_prop defaults[] = {{"log_level", "3"}, {NULL, NULL}};
    struct kclient_spec spec = {.prog = prog, .role = "embedded broker", .type = RD_KAFKA_PRODUCER,
                                .defaults = defaults};
    struct mock *m = calloc(1, sizeof(*m));
    if (!m) {
        snprintf(err, errlen, "embedded broker: out of memory");
        return -1;
    }
    /* The owner handle never connects anywhere: it only hosts the cluster. */
    if (kclient_new(&m->owner, &spec, err, errlen)) {
        free(m);
        return -1;
    }
    m->mc = rd_kafka_mock_cluster_new(kclient_rk(m->owner), 1);
    if (!m->mc) {
        snprintf(err, errlen, "embedded broker: rd_kafka_mock_cluster_new failed");
        mock_stop(m);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(m->mc, topics[i], partitions[i], 1);
        if (e) {
            snprintf(err, errlen, "embedded broker: creating topic %s: %s", topics[i], rd_kafka_err2str(e));
            mock_stop(m);
            return -1;
        }
    }
    *out = m;
    return 0;
}

int mock_start(struct mock **out, const struct config *c, char *err, size_t errlen) {
    const char *topics[] = {c->topic_input, c->topic_overage, c->topic_ledger, c->topic_rejected,
                            c->topic_alerts};
    const int parts[] = {MOCK_PARTITIONS, MOCK_PARTITIONS, MOCK_PARTITIONS, MOCK_PARTITIONS,
                         MOCK_PARTITIONS};
    return mock_start_topics(out, "creditd", topics, parts, sizeof(topics) / sizeof(topics[0]), err, errlen);
}

const char *mock_bootstrap(const struct mock *m) { return rd_kafka_mock_cluster_bootstraps(m->mc); }

rd_kafka_mock_cluster_t *mock_cluster(const struct mock *m) { return m->mc; }

void mock_stop(struct mock *m) {
    if (!m) return;
    if (m->mc) rd_kafka_mock_cluster_destroy(m->mc);
    kclient_destroy(m->owner);
    free(m);
}
