/* kprod -- shared librdkafka producer set-up for the tools; see kprod.h. */
#include "tools/kprod.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERRLEN 512

static int conf_set(const struct kprod *k, rd_kafka_conf_t *conf, const char *key,
                    const char *val) {
    char err[ERRLEN];
    if (rd_kafka_conf_set(conf, key, val, err, sizeof err) == RD_KAFKA_CONF_OK) return 0;
    fprintf(stderr, "%s: librdkafka property %s=%s: %s\n", k->prog, key, val, err);
    return -1;
}

/* One -X "key=value" string. */
static int conf_set_kv(const struct kprod *k, rd_kafka_conf_t *conf, const char *x) {
    char *kv = strdup(x), *eq = kv ? strchr(kv, '=') : NULL;
    int bad;
    if (!eq) {
        fprintf(stderr, "%s: -X %s: expected key=value\n", k->prog, x);
        bad = 1;
    } else {
        *eq = 0;
        bad = conf_set(k, conf, kv, eq + 1);
    }
    free(kv);
    return bad;
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    struct kprod *k = opaque;
    (void)rk;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) { k->delivered++; return; }
    k->failed++;
    if (k->on_fail)
        k->on_fail(k, m);
    else
        fprintf(stderr, "%s: delivery to partition %d failed: %s\n", k->prog, (int)m->partition,
                rd_kafka_err2str(m->err));
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    struct kprod *k = opaque;
    char buf[ERRLEN];
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        rd_kafka_fatal_error(rk, buf, sizeof buf);
        fprintf(stderr, "%s: fatal Kafka error: %s\n", k->prog, buf);
        k->fatal = 1;
        return;
    }
    fprintf(stderr, "%s: Kafka: %s: %s\n", k->prog, rd_kafka_err2name((rd_kafka_resp_err_t)err),
            reason);
}

rd_kafka_t *kprod_new(struct kprod *k, const char *bootstrap, const char *const (*defs)[2],
                      size_t ndefs, const char *const *xs, int nx) {
    char err[ERRLEN];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    int bad = conf_set(k, conf, "bootstrap.servers", bootstrap);
    for (size_t i = 0; !bad && i < ndefs; i++) bad = conf_set(k, conf, defs[i][0], defs[i][1]);
    for (int i = 0; !bad && i < nx; i++) bad = conf_set_kv(k, conf, xs[i]);
    if (bad) { rd_kafka_conf_destroy(conf); return NULL; }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    rd_kafka_conf_set_opaque(conf, k);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "%s: creating the producer: %s\n", k->prog, err);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}
