/* kclient.c -- see kclient.h. */
#include "consumer/kclient.h"

#include "consumer/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct kclient {
    rd_kafka_t *rk;
    rd_kafka_type_t type;
    const char *prog, *role;               /* borrowed for the client's life */
    const char *acl_need;                  /* borrowed too (spec->acl_need), or NULL */
    char mech[32], sasl_user[128];         /* sasl.mechanisms, sasl.username ("" if unset) */
    volatile sig_atomic_t *stop;
    unsigned stop_on;
    void *user;
    void (*dr_msg_cb)(rd_kafka_t *, const rd_kafka_message_t *, void *);
    void (*commit_cb)(rd_kafka_t *, rd_kafka_resp_err_t, rd_kafka_topic_partition_list_t *, void *);
    void (*rebalance_cb)(rd_kafka_t *, rd_kafka_resp_err_t, rd_kafka_topic_partition_list_t *, void *);
    /* Written by the error callback, on the owner's thread. */
    int fatal, auth;
    int unclosed;                          /* kclient_consumer_close() gave up waiting */
    int group_denied;                      /* a consumer error said: group authorization failed */
    int64_t down_since;                    /* all brokers down since (ms), 0: not known down */
    char fatal_cause[KCLIENT_ERRLEN], auth_cause[KCLIENT_ERRLEN * 2];
    char last[KCLIENT_ERRLEN];             /* the last error but "all brokers down" */
};

int64_t kclient_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int is_auth_error(int code) {
    return code == RD_KAFKA_RESP_ERR__AUTHENTICATION || code == RD_KAFKA_RESP_ERR__SSL ||
           code == RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED;
}

/* librdkafka before 2.6.1 repeats the client nonce in its SCRAM final
 * message; Kafka 4 brokers check it strictly and refuse every SCRAM login
 * from it as "invalid credentials" (confluentinc/librdkafka#4895). */
#define KCLIENT_SCRAM_FIXED 0x020601ff

/* The cause of an authentication or TLS failure, one line naming what to
 * check: the CA for a certificate the client cannot verify, the mechanism
 * and user for a refused login (the broker does not say whether the user
 * exists or the password is wrong). */
static void auth_cause(struct kclient *kc, int code, const char *reason) {
    char hint[256] = "";
    if (code == RD_KAFKA_RESP_ERR__SSL) {
        int verify = strstr(reason, "certificate verify failed") != NULL;
        snprintf(kc->auth_cause, sizeof(kc->auth_cause), "%s: Kafka TLS %s: %.400s", kc->role,
                 verify ? "verification failed (the broker's certificate does not verify against "
                          "ssl.ca.location, or its name does not match the broker's address)"
                        : "handshake failed",
                 reason);
        return;
    }
    if (strncasecmp(kc->mech, "SCRAM", 5) == 0 && rd_kafka_version() < KCLIENT_SCRAM_FIXED)
        snprintf(hint, sizeof(hint), "; if they are right: librdkafka %s cannot log in with SCRAM "
                 "to Kafka 4 brokers (librdkafka#4895, fixed in 2.6.1), use sasl.mechanisms=PLAIN "
                 "over SASL_SSL", rd_kafka_version_str());
    snprintf(kc->auth_cause, sizeof(kc->auth_cause),
             "%s: Kafka authentication failed (SASL %s, user '%.100s': check sasl.username and "
             "sasl.password%s): %.300s", kc->role, kc->mech[0] ? kc->mech : "GSSAPI", kc->sasl_user, hint,
             reason);
}

/* Error callback (served by the owner's polls).  Every error is one line;
 * librdkafka retries all but fatal ones by itself, the owner's waits decide
 * which of them end a wait (kclient_failed). */
static void on_error(rd_kafka_t *rk, int code, const char *reason, void *opaque) {
    struct kclient *kc = opaque;
    char buf[KCLIENT_ERRLEN / 2];
    if (code == RD_KAFKA_RESP_ERR__FATAL) {
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, buf, sizeof(buf));
        snprintf(kc->fatal_cause, sizeof(kc->fatal_cause), "%s: fatal Kafka error: %s: %s",
                 kc->role, rd_kafka_err2name(orig), buf);
        log_scrub(kc->fatal_cause, sizeof(kc->fatal_cause));
        kc->fatal = 1;
        log_msg_as(kc->prog, LOG_LEVEL_ERROR, kc->role,
                   LOG_FIELDS(LOG_S("source", "librdkafka"), LOG_S("error", rd_kafka_err2name(orig))),
                   "fatal Kafka error: %s: %s", rd_kafka_err2name(orig), buf);
        return;
    }
    /* librdkafka retries these itself: a warning, unless it is authentication. */
    log_msg_as(kc->prog, is_auth_error(code) ? LOG_LEVEL_ERROR : LOG_LEVEL_WARN, kc->role,
               LOG_FIELDS(LOG_S("source", "librdkafka"), LOG_S("error", rd_kafka_err2name(code))),
               "kafka: %s: %s", rd_kafka_err2name(code), reason);
    if (code == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
        if (!kc->down_since) kc->down_since = kclient_now_ms();
        return;
    }
    /* The owners print these without the writer: no secret in them
     * (librdkafka quotes a bad sasl.oauthbearer.config). */
    snprintf(kc->last, sizeof(kc->last), "%s: %s", rd_kafka_err2name(code), reason);
    log_scrub(kc->last, sizeof(kc->last));
    if (is_auth_error(code)) {
        auth_cause(kc, code, kc->last);
        kc->auth = 1;
    }
}

/* librdkafka's syslog(3) levels (0 emergency .. 7 debug) as ours. */
static enum log_level syslog_level(int level) {
    return level <= 3 ? LOG_LEVEL_ERROR : level == 4 ? LOG_LEVEL_WARN
           : level <= 6 ? LOG_LEVEL_INFO : LOG_LEVEL_DEBUG;
}

/* Log callback: may run on librdkafka's threads; reads only constant fields
 * (the log writer is thread-safe).  A broker failure is logged as "FAIL" and
 * also raised as an error, which on_error prints: one line is enough. */
static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    const struct kclient *kc = rd_kafka_opaque(rk);
    enum log_level l = syslog_level(level);
    if (strcmp(fac, "FAIL") == 0 || !log_enabled(l)) return;
    log_msg_as(kc ? kc->prog : "kafka", l, kc ? kc->role : "-",
               LOG_FIELDS(LOG_S("source", "librdkafka"), LOG_S("facility", fac)), "kafka %s: %s", fac, buf);
}

static void on_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    struct kclient *kc = opaque;
    if (!m->err) kclient_alive(kc);
    kc->dr_msg_cb(rk, m, kc->user);
}

static void on_commit(rd_kafka_t *rk, rd_kafka_resp_err_t e, rd_kafka_topic_partition_list_t *l,
                      void *opaque) {
    struct kclient *kc = opaque;
    kc->commit_cb(rk, e, l, kc->user);
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t e, rd_kafka_topic_partition_list_t *l,
                         void *opaque) {
    struct kclient *kc = opaque;
    kc->rebalance_cb(rk, e, l, kc->user);
}

/* ---- configuration -------------------------------------------------------- */

static int set_one(rd_kafka_conf_t *conf, const struct kclient_spec *s, const char *origin,
                   const char *name, const char *value, char *err, size_t errlen) {
    char buf[KCLIENT_ERRLEN];
    if (rd_kafka_conf_set(conf, name, value, buf, sizeof(buf)) == RD_KAFKA_CONF_OK) return 0;
    if (config_is_secret(name) && *value && strstr(buf, value))   /* quoted by librdkafka */
        snprintf(buf, sizeof(buf), "invalid value (not shown: a secret)");
    snprintf(err, errlen, "%s: %s%s: %s", s->role, origin, name, buf);
    return -1;
}

static int set_list(rd_kafka_conf_t *conf, const struct kclient_spec *s, const char *origin,
                    const struct kclient_prop *p, char *err, size_t errlen) {
    for (; p && p->name; p++)
        if (set_one(conf, s, origin, p->name, p->value, err, errlen)) return -1;
    return 0;
}

/* A pass-through property: refused when it contradicts a forced one. */
static int set_passed(rd_kafka_conf_t *conf, const struct kclient_spec *s, const char *name,
                      const char *value, char *err, size_t errlen) {
    for (const struct kclient_prop *f = s->forced; f && f->name; f++)
        if (strcmp(f->name, name) == 0 && strcasecmp(f->value, value) != 0) {
            snprintf(err, errlen, "%s: kafka.%s=%s: %s needs %s=%s", s->role, name,
                     config_is_secret(name) ? "********" : value, s->prog, f->name, f->value);
            return -1;
        }
    return set_one(conf, s, "kafka.", name, value, err, errlen);
}

static rd_kafka_conf_t *make_conf(const struct kclient_spec *s, struct kclient *kc,
                                  char *err, size_t errlen) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    int rc = set_list(conf, s, "default ", s->defaults, err, errlen);
    for (size_t i = 0; rc == 0 && s->cfg && i < s->cfg->nkafka; i++)
        rc = set_passed(conf, s, s->cfg->kafka[i].name, s->cfg->kafka[i].value, err, errlen);
    if (rc == 0 && s->bootstrap) rc = set_one(conf, s, "", "bootstrap.servers", s->bootstrap, err, errlen);
    if (rc == 0) rc = set_list(conf, s, "", s->forced, err, errlen);
    if (rc) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_log_cb(conf, on_log);
    if (s->dr_msg_cb) rd_kafka_conf_set_dr_msg_cb(conf, on_dr);
    if (s->commit_cb) rd_kafka_conf_set_offset_commit_cb(conf, on_commit);
    if (s->rebalance_cb) rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_opaque(conf, kc);
    return conf;
}

int kclient_new(struct kclient **out, const struct kclient_spec *s, char *err, size_t errlen) {
    struct kclient *kc = calloc(1, sizeof(*kc));
    if (!kc) {
        snprintf(err, errlen, "%s: out of memory", s->role);
        return -1;
    }
    *kc = (struct kclient){.type = s->type, .prog = s->prog, .role = s->role, .stop = s->stop,
                           .stop_on = s->stop_on, .user = s->user, .dr_msg_cb = s->dr_msg_cb,
                           .commit_cb = s->commit_cb, .rebalance_cb = s->rebalance_cb,
                           .acl_need = s->acl_need};
    char buf[KCLIENT_ERRLEN];
    rd_kafka_conf_t *conf = make_conf(s, kc, err, errlen);
    size_t n = sizeof(kc->mech);
    if (conf && rd_kafka_conf_get(conf, "sasl.mechanisms", kc->mech, &n) != RD_KAFKA_CONF_OK)
        kc->mech[0] = 0;
    n = sizeof(kc->sasl_user);
    if (conf && rd_kafka_conf_get(conf, "sasl.username", kc->sasl_user, &n) != RD_KAFKA_CONF_OK)
        kc->sasl_user[0] = 0;
    if (conf && !(kc->rk = rd_kafka_new(s->type, conf, buf, sizeof(buf)))) {
        rd_kafka_conf_destroy(conf);
        snprintf(err, errlen, "%s: creating the Kafka client: %s", s->role, buf);
    }
    if (!kc->rk) {
        log_scrub(err, errlen);   /* librdkafka may quote a value */
        free(kc);
        return -1;
    }
    if (s->type == RD_KAFKA_CONSUMER) rd_kafka_poll_set_consumer(kc->rk);
    *out = kc;
    return 0;
}

int kclient_log_setup(const char *prog, const struct config *c, char *err, size_t errlen) {
    struct log_opts o = {prog, c ? c->log_format : NULL, c ? c->log_level : NULL, 0};
    if (log_init(&o, err, errlen)) return -1;
    for (size_t i = 0; c && i < c->nkafka; i++)
        if (config_is_secret(c->kafka[i].name) && log_add_secret(c->kafka[i].value)) {
            snprintf(err, errlen, "kafka.%s: more secret text than the log writer can keep out "
                     "of the logs (%d strings)", c->kafka[i].name, LOG_SECRETS_MAX);
            return -1;
        }
    return 0;
}

int kclient_tool_config(struct config *c, const char *prog, const char *file, char *const *xs,
                        int nx, char *err, size_t errlen) {
    char lerr[KCLIENT_ERRLEN];
    if (config_load_args(c, file, xs, nx, err, errlen) == 0) return kclient_log_setup(prog, c, err, errlen);
    (void)kclient_log_setup(prog, c, lerr, sizeof(lerr));   /* the error in the format asked for */
    return -1;
}

int kclient_tool_bootstrap(const struct config *c, const char *given, const char **out, char *err,
                           size_t errlen) {
    *out = given ? given : config_kafka_get(c, "bootstrap.servers");
    if (*out && **out) return 0;
    snprintf(err, errlen, "no Kafka: give -b BOOTSTRAP or kafka.bootstrap.servers (--config, -X)");
    return -1;
}

rd_kafka_t *kclient_rk(const struct kclient *kc) { return kc->rk; }
const char *kclient_role(const struct kclient *kc) { return kc->role; }
void kclient_set_stop_on(struct kclient *kc, unsigned stop_on) { kc->stop_on = stop_on; }
const char *kclient_last_error(const struct kclient *kc) { return kc->last; }

void kclient_alive(struct kclient *kc) {
    kc->down_since = 0;
    kc->auth = 0;
}

int kclient_failed(struct kclient *kc, char *err, size_t errlen) {
    int64_t down = kc->down_since ? kclient_now_ms() - kc->down_since : 0;
    if (kc->fatal) snprintf(err, errlen, "%s", kc->fatal_cause);
    else if (kc->auth && (kc->stop_on & KCLIENT_STOP_AUTH)) snprintf(err, errlen, "%s", kc->auth_cause);
    else if (down >= KCLIENT_DOWN_GRACE_MS && (kc->stop_on & KCLIENT_STOP_DOWN))
        snprintf(err, errlen, "%s: no Kafka broker reachable for %lld ms (last error: %s)", kc->role,
                 (long long)down, kc->last[0] ? kc->last : "none");
    else return 0;
    return 1;
}

/* ---- waits ------------------------------------------------------------------ */

/* Failure first (it says more than the stop), then the stop flag. */
static int check(struct kclient *kc, char *err, size_t errlen) {
    if (kclient_failed(kc, err, errlen)) return -1;
    return kc->stop && *kc->stop ? KCLIENT_STOPPED : 0;
}

static int slice(int64_t left, int max) { return left < max ? (int)left : max; }

static void poll_once(struct kclient *kc, int ms) {
    if (kc->type != RD_KAFKA_CONSUMER) {
        rd_kafka_poll(kc->rk, ms);
        return;
    }
    rd_kafka_message_t *m = rd_kafka_consumer_poll(kc->rk, ms);
    if (!m) return;
    if (m->err == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED) kc->group_denied = 1;
    if (m->err == RD_KAFKA_RESP_ERR__FATAL)
        on_error(kc->rk, m->err, rd_kafka_message_errstr(m), kc);
    else if (m->err)
        log_msg_as(kc->prog, LOG_LEVEL_WARN, kc->role,
                   LOG_FIELDS(LOG_S("source", "librdkafka"), LOG_S("error", rd_kafka_err2name(m->err))),
                   "kafka: %s", rd_kafka_message_errstr(m));
    else
        log_msg_as(kc->prog, LOG_LEVEL_WARN, kc->role, LOG_FIELDS(LOG_I("partition", m->partition),
                                                                   LOG_I("offset", m->offset)),
                   "dropping a message polled before assignment (%s [%d] offset %lld)",
                   m->rkt ? rd_kafka_topic_name(m->rkt) : "?", (int)m->partition, (long long)m->offset);
    rd_kafka_message_destroy(m);
}

int kclient_serve(struct kclient *kc, int timeout_ms, char *err, size_t errlen) {
    int64_t deadline = kclient_now_ms() + timeout_ms;
    for (;;) {
        int rc = check(kc, err, errlen);
        int64_t left = deadline - kclient_now_ms();
        if (rc || left <= 0) return rc;
        poll_once(kc, slice(left, KCLIENT_POLL_MS));
    }
}

void kclient_denied(const struct kclient *kc, const char *kind, const char *name, char *err,
                    size_t errlen) {
    if (kc->acl_need)
        snprintf(err, errlen, "%s: %s %s: not authorized: the principal%s%s%s needs %s on %s %s "
                 "(an ACL; see tools/kafka-acls.sh)", kc->role, kind, name, kc->sasl_user[0] ? " '" : "",
                 kc->sasl_user, kc->sasl_user[0] ? "'" : "", kc->acl_need, kind, name);
    else
        snprintf(err, errlen, "%s: %s %s: not authorized: no ACL of the principal%s%s%s allows "
                 "this on %s %s", kc->role, kind, name, kc->sasl_user[0] ? " '" : "", kc->sasl_user,
                 kc->sasl_user[0] ? "'" : "", kind, name);
}

int kclient_group_denied(const struct kclient *kc) { return kc->group_denied; }

/* " (last Kafka error: ...)" when the error callback saw one. */
static const char *last_note(const struct kclient *kc, char *buf, size_t len) {
    if (!kc->last[0]) return "";
    snprintf(buf, len, " (last Kafka error: %s)", kc->last);
    return buf;
}

/* Errors retrying cannot fix: the topic is not there or not ours to see. */
static int definitive(rd_kafka_resp_err_t e) {
    return e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || e == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION ||
           e == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED || e == RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION;
}

/* One metadata request for rkt: 0 with *n, or the error. */
static rd_kafka_resp_err_t metadata_once(struct kclient *kc, rd_kafka_topic_t *rkt, int ms, int32_t *n) {
    const struct rd_kafka_metadata *md;
    rd_kafka_resp_err_t e = rd_kafka_metadata(kc->rk, 0, rkt, &md, ms);
    if (e) return e;
    kclient_alive(kc);
    e = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
    *n = e ? 0 : md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    return e;
}

int kclient_partition_count(struct kclient *kc, const char *topic, int timeout_ms, int32_t *n,
                            char *err, size_t errlen) {
    char note[KCLIENT_ERRLEN + 32];
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(kc->rk, topic, NULL);
    if (!rkt) {
        snprintf(err, errlen, "%s: topic %s: %s", kc->role, topic, rd_kafka_err2str(rd_kafka_last_error()));
        return -1;
    }
    int64_t deadline = kclient_now_ms() + timeout_ms;
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR__TIMED_OUT;
    int rc;
    *n = 0;
    for (;;) {
        int64_t left = deadline - kclient_now_ms();
        if ((rc = check(kc, err, errlen)) != 0) break;
        if (left <= 0) {
            snprintf(err, errlen, "%s: topic %s: no usable metadata within %d ms: %s%s", kc->role,
                     topic, timeout_ms, e ? rd_kafka_err2str(e) : "no partitions",
                     last_note(kc, note, sizeof(note)));
            rc = -1;
            break;
        }
        e = metadata_once(kc, rkt, slice(left, KCLIENT_CALL_MS), n);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR && *n > 0) break;
        if (e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
            snprintf(err, errlen, "%s: topic %s does not exist (create it first)", kc->role, topic);
            rc = -1;
            break;
        }
        if (e == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
            kclient_denied(kc, "topic", topic, err, errlen);
            rc = -1;
            break;
        }
        if (definitive(e)) {
            snprintf(err, errlen, "%s: topic %s: %s", kc->role, topic, rd_kafka_err2str(e));
            rc = -1;
            break;
        }
        if ((rc = kclient_serve(kc, slice(left, KCLIENT_POLL_MS), err, errlen)) != 0) break;
    }
    rd_kafka_topic_destroy(rkt);
    return rc;
}

int kclient_cluster_id(struct kclient *kc, int timeout_ms, char *id, size_t idlen,
                       char *err, size_t errlen) {
    char note[KCLIENT_ERRLEN + 32];
    int64_t deadline = kclient_now_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - kclient_now_ms();
        int rc = check(kc, err, errlen);
        if (rc) return rc;
        if (left <= 0) {
            snprintf(err, errlen, "%s: could not read the Kafka cluster id within %d ms%s", kc->role,
                     timeout_ms, last_note(kc, note, sizeof(note)));
            return -1;
        }
        char *got = rd_kafka_clusterid(kc->rk, slice(left, KCLIENT_CALL_MS));
        if (got) {
            size_t len = strlen(got);
            if (len < idlen) memcpy(id, got, len + 1);
            else snprintf(err, errlen, "%s: the cluster id is longer than %zu bytes", kc->role, idlen - 1);
            rd_kafka_mem_free(kc->rk, got);
            return len < idlen ? 0 : -1;
        }
        if ((rc = kclient_serve(kc, slice(left, KCLIENT_POLL_MS), err, errlen)) != 0) return rc;
    }
}

int kclient_watermarks(struct kclient *kc, const char *topic, int32_t partition, int timeout_ms,
                       int64_t *lo, int64_t *hi, char *err, size_t errlen) {
    char note[KCLIENT_ERRLEN + 32];
    int64_t deadline = kclient_now_ms() + timeout_ms;
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR__TIMED_OUT;
    for (;;) {
        int64_t left = deadline - kclient_now_ms();
        int rc = check(kc, err, errlen);
        if (rc) return rc;
        if (e == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
            kclient_denied(kc, "topic", topic, err, errlen);
            return -1;
        }
        if (left <= 0 || definitive(e)) {
            snprintf(err, errlen, "%s: %s [%d]: offsets: %s%s", kc->role, topic, (int)partition,
                     rd_kafka_err2str(e), left <= 0 ? last_note(kc, note, sizeof(note)) : "");
            return -1;
        }
        e = rd_kafka_query_watermark_offsets(kc->rk, topic, partition, lo, hi, slice(left, KCLIENT_CALL_MS));
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
            kclient_alive(kc);
            return 0;
        }
        if (!definitive(e) && (rc = kclient_serve(kc, slice(left, KCLIENT_POLL_MS), err, errlen)) != 0)
            return rc;
    }
}

int kclient_flush(struct kclient *kc, int timeout_ms, char *err, size_t errlen) {
    char note[KCLIENT_ERRLEN + 32];
    int64_t deadline = kclient_now_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - kclient_now_ms();
        int rc = check(kc, err, errlen);
        if (rc) return rc;
        int n = rd_kafka_outq_len(kc->rk);
        if (n == 0) return 0;
        if (left <= 0) {
            snprintf(err, errlen, "%s: %d messages not delivered within %d ms%s", kc->role, n,
                     timeout_ms, last_note(kc, note, sizeof(note)));
            return -1;
        }
        rd_kafka_flush(kc->rk, slice(left, KCLIENT_POLL_MS)); /* serves the callbacks */
    }
}

/* rd_kafka_consumer_close() would wait for pending offset commits as long
 * as session.timeout.ms when the coordinator is away; the queue variant
 * lets the wait be bounded. */
int kclient_consumer_close(struct kclient *kc, int timeout_ms) {
    rd_kafka_queue_t *q = rd_kafka_queue_new(kc->rk);
    rd_kafka_error_t *e = rd_kafka_consumer_close_queue(kc->rk, q);
    int rc = 0;
    if (e) {
        log_msg_as(kc->prog, LOG_LEVEL_WARN, kc->role, NULL, 0, "closing the Kafka consumer: %s",
                   rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        rc = -1;
    }
    int64_t deadline = kclient_now_ms() + timeout_ms;
    while (rc == 0 && !rd_kafka_consumer_closed(kc->rk)) {
        int64_t left = deadline - kclient_now_ms();
        if (left <= 0) {
            log_msg_as(kc->prog, LOG_LEVEL_WARN, kc->role, NULL, 0,
                       "the Kafka consumer did not close within %d ms (offset commits to an "
                       "unreachable coordinator?): leaving it", timeout_ms);
            kc->unclosed = 1;
            rc = -1;
            break;
        }
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, slice(left, KCLIENT_POLL_MS));
        if (ev) rd_kafka_event_destroy(ev);
    }
    rd_kafka_queue_destroy(q);
    return rc;
}

void kclient_destroy(struct kclient *kc) {
    if (!kc) return;
    if (kc->unclosed) { /* rd_kafka_destroy() would wait for the close after all */
        kclient_abandon(kc);
        return;
    }
    /* A consumer was closed by its owner, or never joined a group. */
    rd_kafka_destroy_flags(kc->rk, kc->type == RD_KAFKA_CONSUMER ? RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE : 0);
    free(kc);
}

void kclient_abandon(struct kclient *kc) {
    (void)kc; /* its threads may still log through kc: keep both */
}
