/* kprod -- the tools' producer on the shared client set-up; see kprod.h. */
#include "tools/kprod.h"

#include <stdio.h>

#include "consumer/log.h"

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *user) {
    struct kprod *k = user;
    (void)rk;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) { k->delivered++; return; }
    k->failed++;
    if (k->on_fail)
        k->on_fail(k, m);
    else
        log_msg_as(k->prog, LOG_LEVEL_ERROR, NULL, LOG_FIELDS(LOG_I("partition", m->partition)),
                   "delivery to partition %d failed: %s", (int)m->partition, rd_kafka_err2str(m->err));
}

int kprod_new(struct kprod *k, const char *bootstrap, const struct kclient_prop *defs,
              const struct config *cfg) {
    char err[KCLIENT_ERRLEN];
    struct kclient_spec spec = {.prog = k->prog, .role = "producer", .type = RD_KAFKA_PRODUCER,
                                .defaults = defs, .cfg = cfg, .bootstrap = bootstrap,
                                .stop_on = KCLIENT_STOP_AUTH | KCLIENT_STOP_DOWN, .user = k,
                                .dr_msg_cb = dr_cb};
    if (kclient_new(&k->kc, &spec, err, sizeof err) == 0) return 0;
    log_msg_as(k->prog, LOG_LEVEL_ERROR, NULL, NULL, 0, "%s", err);
    return -1;
}

rd_kafka_t *kprod_rk(const struct kprod *k) { return kclient_rk(k->kc); }

int kprod_failed(struct kprod *k) {
    char err[KCLIENT_ERRLEN];
    if (k->gave_up) return 1;
    if (!kclient_failed(k->kc, err, sizeof err)) return 0;
    log_msg_as(k->prog, LOG_LEVEL_ERROR, NULL, NULL, 0, "%s", err);
    k->gave_up = 1;
    return 1;
}

int kprod_flush(struct kprod *k, int timeout_ms) {
    char err[KCLIENT_ERRLEN];
    if (k->gave_up) return -1;
    if (kclient_flush(k->kc, timeout_ms, err, sizeof err) == 0) return 0;
    log_msg_as(k->prog, LOG_LEVEL_ERROR, NULL, NULL, 0, "%s", err);
    k->gave_up = 1;
    return -1;
}

void kprod_destroy(struct kprod *k) {
    kclient_destroy(k->kc);
    k->kc = NULL;
}
