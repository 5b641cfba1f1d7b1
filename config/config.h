/* config.h -- creditd's configuration: the creditd.conf file, -X overrides,
 * defaults, validation and a dump of the effective settings.
 *
 * Pure parsing and validation: no librdkafka, no LMDB.  The kafka.* pairs are
 * kept verbatim, in order, for the consumer to hand to rd_kafka_conf_set()
 * (librdkafka checks the property names and values itself).
 *
 * File format (see creditd.conf.example):
 *   - one `key = value` per line; key and value are trimmed of whitespace;
 *   - blank lines and lines whose first non-blank character is '#' are ignored;
 *   - in an unquoted value, a '#' at its start or after whitespace starts a
 *     comment (`a#b` stays `a#b`, `a # note` is `a`);
 *   - a value may be double-quoted ("...") to keep leading/trailing spaces or
 *     " #"; inside quotes \" is '"' and \\ is '\' (other backslashes are
 *     literal); only whitespace or a comment may follow the closing quote;
 *   - every key may appear once per file (a duplicate is an error naming both
 *     lines); keys other than creditd's and kafka.* are errors.
 *
 * Ownership: `struct config` is the caller's (stack or heap).  config_init()
 * gives defaults without allocating; config_set()/config_load_file() allocate
 * the kafka list and bookkeeping, released by config_free().  The struct must
 * not be copied by value once something was set (the copies would share heap
 * memory).  No function keeps a pointer to its arguments.  Not thread-safe per
 * struct; separate structs are independent (there is no global state).
 *
 * Secrets (README "Secrets"): config_is_secret() names the librdkafka
 * properties that hold one.  Any kafka.* value written "file:PATH" is the
 * content of that file instead, read when the key is set (config_set, so
 * from the file and from -X alike): a regular file of at most
 * CONFIG_FILE_VALUE_MAX bytes without a NUL byte, one trailing newline
 * dropped; a leading ${CREDENTIALS_DIRECTORY} in PATH is that environment
 * variable (systemd's LoadCredential= directory).  A configuration file that
 * holds a secret in clear (not file:, not empty) must give group and others
 * no permission at all (mode & 077 == 0): config_load_file refuses it,
 * saying how to fix it.  Secret values are masked by config_dump and zeroed
 * by config_free; kclient_log_setup (consumer/kclient.h) keeps them out of
 * every log line.
 *
 * Errors: functions return 0, or -1 with a NUL-terminated message in err
 * (errlen bytes, truncated if needed) of the form "ORIGIN: KEY: what", e.g.
 * "creditd.conf:12: batch.max_messages: not an integer".
 */
#ifndef CREDITD_CONFIG_H
#define CREDITD_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_PATH_MAX       4095   /* store.path, bytes                     */
#define CONFIG_TOPIC_MAX      249    /* Kafka's topic name limit               */
#define CONFIG_GROUP_MAX      255    /* group.id, bytes                        */
#define CONFIG_CURRENCY_MAX   16     /* credit.currency (== ENGINE_CURRENCY_MAX) */
#define CONFIG_PARTITIONS_MAX 1024   /* input.partitions: distinct entries     */
#define CONFIG_SOURCE_ID_MAX  256    /* an event source (semantics §1) */
#define CONFIG_SOURCES        4      /* sources.grant, .allocate, .usage, .clock */
#define CONFIG_SOURCES_TEXT_MAX 65536 /* bytes of one sources.* value          */
#define CONFIG_LISTEN_MAX     63     /* http.listen, bytes                     */
#define CONFIG_LISTEN_HOST_MAX 46    /* an address as text (INET6_ADDRSTRLEN)  */
#define CONFIG_FILE_VALUE_MAX 65536  /* bytes of a kafka.* "file:PATH" value's file */
#define CONFIG_PARSE_THREADS_MAX 32  /* input.parse_threads (== PARSEQ_THREADS_MAX) */

/* One kafka.* property: name without the "kafka." prefix.  The strings are
 * owned by the struct config holding them. */
struct config_kv {
    char *name;
    char *value;    /* what librdkafka gets: for "file:PATH", the file's content */
    char *file;     /* PATH as written after "file:" (no variable replaced), or NULL */
};

/* Where a key was last set (internal bookkeeping for duplicate detection and
 * messages; owned by the struct config). */
struct config_origin {
    char *key;      /* canonical key, e.g. "batch.max_ms", "kafka.acks" */
    char *origin;   /* "PATH:LINE", "-X", ... */
};

struct config {
    /* store.* */
    char    store_path[CONFIG_PATH_MAX + 1];     /* default "./creditd-data"  */
    size_t  store_map_size;                      /* bytes, default 1 GiB      */
    /* topic.* */
    char    topic_input[CONFIG_TOPIC_MAX + 1];   /* default "credit.events"   */
    char    topic_overage[CONFIG_TOPIC_MAX + 1]; /* default "credit.overage"  */
    char    topic_ledger[CONFIG_TOPIC_MAX + 1];  /* default "credit.ledger"   */
    char    topic_rejected[CONFIG_TOPIC_MAX + 1];/* default "credit.rejected" */
    /* output.alerts: credit.alert outputs (semantics §12) */
    char    topic_alerts[CONFIG_TOPIC_MAX + 1];  /* default "credit.alerts"   */
    /* input.partitions: ascending, distinct; n == 0 means all partitions */
    int32_t input_partitions[CONFIG_PARTITIONS_MAX];
    size_t  input_npartitions;
    char    group_id[CONFIG_GROUP_MAX + 1];      /* default "creditd"         */
    /* input.assignment: "static" (the default: this instance owns
     * input.partitions, or all; outbox and read-back) or "group" (instances
     * with the same group.id share the partitions through the consumer
     * group protocol, cooperative-sticky; outputs, changelog and input
     * offsets in one Kafka transaction: consumer/README.md "Group mode"). */
    char    input_assignment[8];
    /* state.*: group mode only.  The compacted changelog topic (as many
     * partitions as the input) and the standby replicas (0 or 1: keep every
     * partition this instance does not own warm from the changelog). */
    char    state_changelog_topic[CONFIG_TOPIC_MAX + 1]; /* "credit.changelog" */
    int64_t state_standby_replicas;              /* 0, 0..1                   */
    /* input.parse_threads: threads parsing the input's JSON ahead of the
     * engine (consumer/parseq.h), order kept; 0 parses on the engine's
     * thread.  creditd and credit-replay read it. */
    int64_t input_parse_threads;                 /* 1, 0..CONFIG_PARSE_THREADS_MAX */
    int64_t batch_max_messages;                  /* 10000, 1..1000000         */
    int64_t batch_max_ms;                        /* 100, 1..60000             */
    /* batch.linger_ms: a batch that has messages ends once none came for
     * this long (0: as soon as none is waiting), so a batch is what
     * arrived while the previous one was applied and committed: latency
     * near one commit at low rates, full batches under load. */
    int64_t batch_linger_ms;                     /* 0, 0..60000               */
    int64_t outbox_max_pending;                  /* 100000; pause above it    */
    int64_t shutdown_flush_timeout_ms;           /* 10000                     */
    int64_t stats_interval_ms;                   /* 10000, 0 = off            */
    int64_t credit_close_after_s;                /* 0, 0..7776000 (pinned)    */
    char    credit_currency[CONFIG_CURRENCY_MAX + 1]; /* "EUR"; [A-Za-z0-9_-] */
    int64_t credit_max_future_s;                 /* 2678400, 0..31622400 (pinned) */
    int64_t credit_retention_days;               /* 35, 0 (forever)..3660 (pinned) */
    /* sources.grant, sources.allocate, sources.usage, sources.clock (in the
     * order of enum guard_class, engine/guard.h): NULL when the key is not
     * set (any source), else the list text as written ("" = no source),
     * owned, checked by guard_list_parse.  config_free resets them to NULL. */
    char   *sources[CONFIG_SOURCES];
    /* creditctl.source_staff / creditctl.source_owner: the CloudEvent source
     * of creditctl's staff commands (grant, adjust, revoke, void) and owner
     * commands (allocate, deallocate, terminate).  creditd ignores them. */
    char    ctl_source_staff[CONFIG_SOURCE_ID_MAX + 1];  /* "staff/creditctl"  */
    char    ctl_source_owner[CONFIG_SOURCE_ID_MAX + 1];  /* "owners/creditctl" */
    /* http.*: creditd's read-only HTTP endpoint (consumer/http.h).
     * http.listen "" (the default) turns it off; else "HOST:PORT" with HOST
     * an IPv4 address or a bracketed IPv6 address ("[::1]:8080"; no names:
     * nothing is resolved at start-up), PORT 0..65535 (0: the kernel picks
     * a free port, which creditd logs). */
    char    http_listen[CONFIG_LISTEN_MAX + 1];
    int64_t http_ready_max_lag;                  /* 10000, 1..10^12: GET /readyz */
    int64_t http_max_connections;                /* 64, 1..1024 */
    int64_t http_timeout_s;                      /* 10, 1..300: idle connection */
    /* log.format (text | json) and log.level (debug | info | warn | error):
     * creditd's log writer (consumer/log.h) and credit-tick's. */
    char    log_format[8];                       /* "text"                    */
    char    log_level[8];                        /* "info"                    */

    /* kafka.* pass-through, in the order the names were first set (a later
     * override replaces the value in place).  Read-only for callers. */
    struct config_kv *kafka;
    size_t  nkafka;

    /* Internal: do not touch. */
    size_t  kafka_cap;
    struct config_origin *origins;
    size_t  norigins, origins_cap;
};

/* Defaults; allocates nothing.  Call on a fresh struct (or after config_free):
 * it does not free what a previous use allocated. */
void config_init(struct config *c);

/* Read a creditd.conf file, calling config_set() for each pair with origin
 * "PATH:LINE" (PATH as given).  On error c holds the pairs before the failing
 * line; the caller should report err and config_free(c).  Does not validate
 * cross-key constraints: call config_validate() after all sources.
 * A file holding a secret in clear with mode & 077 != 0 is an error after
 * it was read: "PATH: holds kafka.sasl.password in clear and is readable by
 * group or others (mode 0644): chmod 600 PATH, or use kafka.sasl.password =
 * file:/path (see README)". */
int config_load_file(struct config *c, const char *path, char *err, size_t errlen);

/* What every program does with its --config FILE and -X KEY=VALUE arguments:
 * config_init(c), config_load_file(file) unless file is NULL, then
 * config_set_arg() for xs[0..nx) in order, then config_validate().  0, or -1
 * with err; config_free(c) in both cases. */
int config_load_args(struct config *c, const char *file, char *const *xs, int nx, char *err,
                     size_t errlen);

/* 1 when the librdkafka property name (with or without "kafka.") holds a
 * secret: sasl.password, ssl.key.password, ssl.keystore.password,
 * ssl.key.pem, sasl.oauthbearer.client.secret, sasl.oauthbearer.config, and
 * any name containing "password", "secret", "passphrase" or "key.pem" (any
 * case); else 0. */
int config_is_secret(const char *name);

/* Set one key from `origin` (used in messages and for duplicates).  value is
 * taken verbatim (the file loader trims and unquotes before calling).
 *   - "kafka.NAME"      -> kafka property NAME (kafka.group.id is refused:
 *                          set creditd's group.id);
 *   - a creditd key     -> parsed and range-checked now;
 *   - anything else     -> if origin is a file origin ("PATH:LINE"): error
 *                          "unknown key"; otherwise (command line, e.g. "-X"),
 *                          like kcat's -X: a librdkafka property, unless its
 *                          first dot-component is a creditd namespace (store,
 *                          topic, input, group, batch, outbox, shutdown, stats,
 *                          credit, log...), which is an error (write kafka.NAME:
 *                          e.g. librdkafka's log.queue is kafka.log.queue).
 * Duplicates: a key may be set once per source (origin minus ":LINE"); a
 * later source overrides an earlier one, so load the file first, then apply
 * -X.  "-X bootstrap.servers" and "kafka.bootstrap.servers" are the same key.
 * On error c is unchanged.  origin NULL is reported as "config_set". */
int config_set(struct config *c, const char *key, const char *value, const char *origin,
               char *err, size_t errlen);

/* A command-line "-X KEY=VALUE" argument: splits at the first '=' and calls
 * config_set() with origin "-X".  No '=' is an error. */
int config_set_arg(struct config *c, const char *arg, char *err, size_t errlen);

/* Whole-config checks, after every source: each field in range (also for
 * fields the caller assigned directly), the four topics distinct,
 * outbox.max_pending >= batch.max_messages, and not both
 * kafka.bootstrap.servers and its alias kafka.metadata.broker.list. */
int config_validate(const struct config *c, char *err, size_t errlen);

/* Split an http.listen value "HOST:PORT" / "[IPV6]:PORT": host (the
 * address without brackets, hostlen >= CONFIG_LISTEN_HOST_MAX + 1), port,
 * *ipv6 = 1 for a bracketed address.  The address must be a literal that
 * inet_pton reads.  0, or -1 with msg saying what is wrong. */
int config_listen_split(const char *s, char *host, size_t hostlen, int *port, int *ipv6,
                        char *msg, size_t msglen);

/* The value of kafka property NAME (without "kafka."), or NULL.  Borrowed:
 * valid until c is next modified or freed. */
const char *config_kafka_get(const struct config *c, const char *name);

/* 1 when a non-empty kafka.bootstrap.servers (or kafka.metadata.broker.list)
 * is set, else 0: the daemon then runs an embedded mock cluster. */
int config_has_bootstrap(const struct config *c);

/* Every effective setting as `key = value` lines sorted by key (kafka.* with
 * their prefix), values quoted when needed so the output loads back.  A
 * sources.* key that is not set (any source) has no line.  A kafka.* value
 * read from a file is printed as file:PATH (never its content); a secret
 * written in clear (config_is_secret) as ********. */
void config_dump(const struct config *c, FILE *out);

/* Free what c owns (zeroing the kafka values first: they may be credentials)
 * and reset the kafka list to empty; safe to call twice.  Typed fields keep
 * their values. */
void config_free(struct config *c);

#endif
