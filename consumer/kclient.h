/* kclient.h -- the one librdkafka client set-up of creditd and its tools
 * (input consumer, outbox relay, output read-back, embedded broker,
 * credit-replay --from-kafka, credit-produce, credit-tick, the test broker):
 * configuration, callbacks, and bounded waits that see the stop flag.
 *
 * Configuration, in this order (a later setting overrides an earlier one):
 * spec->defaults, the pass-through (the kafka.* keys of the program's
 * struct config: its --config file, then its -X key=value arguments, read
 * by config_load_args or creditd's own loop, with file:PATH values already
 * read), spec->bootstrap, spec->forced.  A pass-through property that names
 * a forced one with another value is refused: the program relies on the
 * forced value (e.g. enable.auto.offset.store=false).
 *
 * Secrets: kclient_log_setup() registers the configuration's secret values
 * (config_is_secret) with the log writer, so that no line shows them, and
 * the causes kclient_new() and kclient_failed() return have them replaced
 * by ******** too (log_scrub): the tools print those without the writer.
 *
 * Callbacks.  The error and log callbacks write one line each through the
 * log writer (consumer/log.h) with the spec's prog as the text prefix and the
 * role as the component, "PROG: ROLE: kafka ...: cause" (JSON: "source":
 * "librdkafka", "error" or "facility"); librdkafka's syslog levels map to
 * error (0-3), warn (4), info (5-6) and debug (7), and what log.level drops
 * is not formatted.  Retried errors are warnings; fatal and authentication
 * errors are errors.  An authentication failure is told apart from a TLS
 * one (a certificate that does not verify against ssl.ca.location) and
 * names the SASL mechanism and user; for SCRAM with a librdkafka older than
 * 2.6.1 it adds that such a librdkafka cannot log in to Kafka 4 brokers
 * with SCRAM.  The error callback also records the
 * conditions that end the client's waits (kclient_failed):
 *   - a fatal error (rd_kafka_fatal_error()): always;
 *   - an authentication or TLS failure: with KCLIENT_STOP_AUTH;
 *   - all brokers down for KCLIENT_DOWN_GRACE_MS with no sign of life since
 *     (kclient_alive()): with KCLIENT_STOP_DOWN.
 * The error, delivery-report and commit callbacks run on the thread that
 * polls the handle (the owner's); the log callback may run on librdkafka's
 * own threads and reads only what kclient_new() set.
 *
 * Waits (kclient_serve, _partition_count, _cluster_id, _watermarks, _flush)
 * block in librdkafka for at most KCLIENT_CALL_MS at a time, serve the
 * callbacks in between, and end early: KCLIENT_STOPPED once *spec->stop is
 * set, -1 (err naming the cause) once kclient_failed() says so.
 *
 * Ownership: struct kclient owns its rd_kafka_t and is that handle's opaque,
 * so it lives until kclient_destroy() (or to the end of the process after
 * kclient_abandon()).  kclient_new() reads spec and what it points to only
 * during the call, except prog, role and stop, which must outlive the client
 * (string literals, the program's stop flag).  Not thread-safe: one owner
 * thread per client. */
#ifndef CREDITD_CONSUMER_KCLIENT_H
#define CREDITD_CONSUMER_KCLIENT_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <librdkafka/rdkafka.h>

#include "config/config.h"

#define KCLIENT_ERRLEN          512
#define KCLIENT_CALL_MS         500    /* longest blocking librdkafka call in a wait */
#define KCLIENT_POLL_MS         100    /* poll slice of the owners' loops */
#define KCLIENT_DOWN_GRACE_MS   5000   /* KCLIENT_STOP_DOWN: all brokers down this long */
#define KCLIENT_META_TIMEOUT_MS 30000  /* metadata / cluster id / offsets at start-up */
#define KCLIENT_ID_MAX          128    /* cluster id bytes */
#define KCLIENT_CLOSE_MS        1000   /* closing a consumer that has no offsets to commit */

/* A wait returns 0, -1 (err set) or KCLIENT_STOPPED: *stop was set, nothing
 * failed.  Distinct from every STORE_* code (pinned where both meet). */
#define KCLIENT_STOPPED (-100)

/* Conditions besides fatal errors that end the waits (spec->stop_on). */
#define KCLIENT_STOP_AUTH 1u   /* authentication / TLS handshake failed */
#define KCLIENT_STOP_DOWN 2u   /* all brokers down for KCLIENT_DOWN_GRACE_MS */

struct kclient_prop { const char *name, *value; };

struct kclient_spec {
    const char *prog;                     /* "creditd", "credit-replay", ... */
    const char *role;                     /* "consumer", "relay", ... */
    rd_kafka_type_t type;
    const struct kclient_prop *defaults;  /* NULL-name terminated, or NULL */
    const struct config *cfg;             /* kafka.* pass-through, or NULL */
    const char *bootstrap;                /* bootstrap.servers, or NULL */
    const struct kclient_prop *forced;    /* NULL-name terminated, or NULL */
    volatile sig_atomic_t *stop;          /* the program's stop flag, or NULL */
    unsigned stop_on;                     /* KCLIENT_STOP_* */
    const char *acl_need;                 /* what the principal needs on this client's topics,
                                           * e.g. "Read" (kclient_denied), or NULL */
    void *user;                           /* opaque of the two callbacks below */
    void (*dr_msg_cb)(rd_kafka_t *rk, const rd_kafka_message_t *m, void *user);
    void (*commit_cb)(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                      rd_kafka_topic_partition_list_t *offsets, void *user);
    /* A group consumer's rebalance callback (subscribe), called from the
     * owner's consumer poll; it must (un)assign (rd_kafka_incremental_*). */
    void (*rebalance_cb)(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                         rd_kafka_topic_partition_list_t *parts, void *user);
};

struct kclient;

/* The log writer of a program (consumer/log.h): prog as its name, c's
 * log.format and log.level (c NULL: text, info), and c's secret kafka.*
 * values kept out of every line (log_add_secret).  Call it once the
 * configuration is loaded, before any client or thread starts.  0, or -1
 * with err naming the setting. */
int kclient_log_setup(const char *prog, const struct config *c, char *err, size_t errlen);

/* What every tool that talks to Kafka (credit-produce, credit-tick,
 * credit-replay, creditctl) does with its --config FILE (NULL: none) and
 * -X KEY=VALUE arguments xs[0..nx), so that one configuration serves them
 * all as it serves creditd: config_load_args (kafka.* pass-through, file:
 * values, the refusal of a secret in clear in a file open to others), then
 * kclient_log_setup(prog) (after an error too, with what was read: the
 * error can be logged as asked).  0, or -1 with err; config_free(c) either
 * way. */
int kclient_tool_config(struct config *c, const char *prog, const char *file, char *const *xs,
                        int nx, char *err, size_t errlen);

/* A tool's bootstrap servers: given (its -b, NULL if none), else
 * kafka.bootstrap.servers from c.  *out is borrowed (from given or c).
 * 0, or -1 with err saying how to name a broker. */
int kclient_tool_bootstrap(const struct config *c, const char *given, const char **out, char *err,
                           size_t errlen);

/* A configured handle (a consumer also gets rd_kafka_poll_set_consumer()).
 * 0, or -1 with err naming the role and the rejected property. */
int kclient_new(struct kclient **out, const struct kclient_spec *spec, char *err, size_t errlen);

rd_kafka_t *kclient_rk(const struct kclient *kc);
const char *kclient_role(const struct kclient *kc);

/* Which conditions end the waits from now on (KCLIENT_STOP_*). */
void kclient_set_stop_on(struct kclient *kc, unsigned stop_on);

/* 1 with the cause in err ("ROLE: ...") when a stop condition holds, else 0. */
int kclient_failed(struct kclient *kc, char *err, size_t errlen);

/* A broker answered (a message, a delivery report, metadata): forget the
 * all-brokers-down and authentication conditions. */
void kclient_alive(struct kclient *kc);

/* An authorization failure on KIND ("topic", "group") NAME, as one line
 * naming the principal (sasl.username) and, when the spec said so, the
 * operation it needs ("relay: topic credit.alerts: not authorized: the
 * principal 'creditd' needs Write on topic credit.alerts ..."). */
void kclient_denied(const struct kclient *kc, const char *kind, const char *name, char *err,
                    size_t errlen);

/* 1 once kclient_serve() polled a consumer error saying the group may not
 * be used (GROUP_AUTHORIZATION_FAILED, e.g. on FindCoordinator), else 0. */
int kclient_group_denied(const struct kclient *kc);

/* The last error the error callback saw, "all brokers down" aside ("" if
 * none); valid until the next poll of the handle. */
const char *kclient_last_error(const struct kclient *kc);

/* Serve callbacks for up to timeout_ms (in KCLIENT_POLL_MS slices).  A
 * consumer is polled with rd_kafka_consumer_poll(): call this only while
 * nothing is assigned (a message it gets is dropped with a warning).
 * 0, -1 (kclient_failed) or KCLIENT_STOPPED. */
int kclient_serve(struct kclient *kc, int timeout_ms, char *err, size_t errlen);

/* The partition count of topic, retrying transient errors (no leader yet,
 * no broker yet) until timeout_ms.  A topic that does not exist or may not
 * be described is an error at once.  0, -1 or KCLIENT_STOPPED. */
int kclient_partition_count(struct kclient *kc, const char *topic, int timeout_ms, int32_t *n,
                            char *err, size_t errlen);

/* The cluster id into id[idlen], within timeout_ms.  0, -1 or KCLIENT_STOPPED. */
int kclient_cluster_id(struct kclient *kc, int timeout_ms, char *id, size_t idlen,
                       char *err, size_t errlen);

/* Low and high watermark of one partition, asked of its leader, retrying
 * transient errors until timeout_ms.  0, -1 or KCLIENT_STOPPED. */
int kclient_watermarks(struct kclient *kc, const char *topic, int32_t partition, int timeout_ms,
                       int64_t *lo, int64_t *hi, char *err, size_t errlen);

/* Producer: wait until every produced message has its delivery report.
 * 0; -1 on timeout (err says how many are left) or kclient_failed;
 * KCLIENT_STOPPED. */
int kclient_flush(struct kclient *kc, int timeout_ms, char *err, size_t errlen);

/* Close a consumer, waiting at most timeout_ms (pending offset commits to
 * an unreachable coordinator are given up); a failure or timeout is logged.
 * 0 or -1. */
int kclient_consumer_close(struct kclient *kc, int timeout_ms);

/* rd_kafka_destroy() (a consumer is not closed again: see
 * kclient_consumer_close) and free; NULL is ignored.  A consumer whose close
 * timed out is abandoned instead: rd_kafka_destroy() would wait for it. */
void kclient_destroy(struct kclient *kc);

/* Leave the handle (and kc, its opaque) to the end of the process: for a
 * handle rd_kafka_destroy() would hang on (consumer.c, kclient_destroy). */
void kclient_abandon(struct kclient *kc);

/* Monotonic clock, milliseconds. */
int64_t kclient_now_ms(void);

#endif
