/* kafka.c -- see kafka.h. */
#include "consumer/kafka.h"

#include <stdio.h>
#include <string.h>

/* librdkafka error callback: fatal errors are recorded for the owner's loop;
 * the others are transient (librdkafka retries them) and only logged. */
static void on_error(rd_kafka_t *rk, int code, const char *reason, void *opaque) {
    struct kafka_health *h = opaque;
    if (code == RD_KAFKA_RESP_ERR__FATAL) {
        char buf[KAFKA_ERRLEN / 2];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, buf, sizeof(buf));
        snprintf(h->reason, sizeof(h->reason), "%s: fatal Kafka error: %s: %s", h->who,
                 rd_kafka_err2name(orig), buf);
        h->fatal = 1;
        return;
    }
    fprintf(stderr, "creditd: %s: kafka: %s: %s\n", h->who, rd_kafka_err2name(code), reason);
}

static int set_one(rd_kafka_conf_t *conf, const char *name, const char *value,
                   const char *origin, char *err, size_t errlen) {
    char buf[KAFKA_ERRLEN];
    if (rd_kafka_conf_set(conf, name, value, buf, sizeof(buf)) == RD_KAFKA_CONF_OK) return 0;
    snprintf(err, errlen, "%s %s: %s", origin, name, buf);
    return -1;
}

static int set_list(rd_kafka_conf_t *conf, const struct kafka_prop *p, const char *origin,
                    char *err, size_t errlen) {
    for (; p && p->name; p++)
        if (set_one(conf, p->name, p->value, origin, err, errlen)) return -1;
    return 0;
}

rd_kafka_conf_t *kafka_conf_new(const struct config *c, const char *bootstrap,
                                const struct kafka_prop *defaults,
                                const struct kafka_prop *forced, struct kafka_health *h,
                                char *err, size_t errlen) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    int rc = set_list(conf, defaults, "default", err, errlen);
    for (size_t i = 0; rc == 0 && i < c->nkafka; i++)
        rc = set_one(conf, c->kafka[i].name, c->kafka[i].value, "kafka.", err, errlen);
    if (rc == 0 && bootstrap) rc = set_one(conf, "bootstrap.servers", bootstrap, "embedded", err, errlen);
    if (rc == 0) rc = set_list(conf, forced, "creditd requires", err, errlen);
    if (rc) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_opaque(conf, h);
    return conf;
}

int kafka_health_fatal(const struct kafka_health *h, char *err, size_t errlen) {
    if (!h->fatal) return 0;
    snprintf(err, errlen, "%s", h->reason);
    return 1;
}
