/* mock.c -- see mock.h. */
#include "consumer/mock.h"

#include <stdio.h>
#include <stdlib.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

struct mock {
    rd_kafka_t *rk;               /* owner handle of the cluster (idle producer) */
    rd_kafka_mock_cluster_t *mc;
};

static int create_topic(struct mock *m, const char *topic, char *err, size_t errlen) {
    rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(m->mc, topic, MOCK_PARTITIONS, 1);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR) return 0;
    snprintf(err, errlen, "embedded broker: creating topic %s: %s", topic, rd_kafka_err2str(e));
    return -1;
}

int mock_start(struct mock **out, const struct config *c, char *err, size_t errlen) {
    char buf[512];
    struct mock *m = calloc(1, sizeof(*m));
    if (!m) {
        snprintf(err, errlen, "embedded broker: out of memory");
        return -1;
    }
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* The owner handle never connects anywhere: it only hosts the cluster. */
    if (rd_kafka_conf_set(conf, "log_level", "3", buf, sizeof(buf)) != RD_KAFKA_CONF_OK ||
        !(m->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, buf, sizeof(buf)))) {
        rd_kafka_conf_destroy(conf);
        snprintf(err, errlen, "embedded broker: %s", buf);
        free(m);
        return -1;
    }
    m->mc = rd_kafka_mock_cluster_new(m->rk, 1);
    if (!m->mc) {
        snprintf(err, errlen, "embedded broker: rd_kafka_mock_cluster_new failed");
        mock_stop(m);
        return -1;
    }
    const char *topics[] = {c->topic_input, c->topic_overage, c->topic_ledger, c->topic_rejected};
    for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++)
        if (create_topic(m, topics[i], err, errlen)) {
            mock_stop(m);
            return -1;
        }
    *out = m;
    return 0;
}

const char *mock_bootstrap(const struct mock *m) {
    return rd_kafka_mock_cluster_bootstraps(m->mc);
}

void mock_stop(struct mock *m) {
    if (!m) return;
    if (m->mc) rd_kafka_mock_cluster_destroy(m->mc);
    if (m->rk) rd_kafka_destroy(m->rk);
    free(m);
}
