/* engine.h -- creditd's credit engine: input message in, state changes and
 * output events out (semantics: ../shared/credit-semantics.md).
 *
 * Pure: no I/O, no wall clock, no librdkafka, no LMDB.  State is read and
 * written through `struct engine_store` (state.h) inside the caller's batch
 * transaction; outputs go to the store's outbox through the same interface.
 * The engine keeps no state between calls that is not in the store, so a
 * batch aborted by the store can be re-applied from its input.
 *
 * Not thread-safe: one engine per thread.
 */
#ifndef CREDITD_ENGINE_H
#define CREDITD_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/event.h"
#include "engine/guard.h"
#include "engine/state.h"

/* Everything is copied at engine_new; a zeroed tail (max_future 0, sources
 * NULL, retention_days 0) turns the guards off and remembers every key
 * forever. */
struct engine_config {
    int64_t close_after_s;   /* §6 close_after, seconds, 0..ENGINE_MAX_CLOSE_AFTER */
    const char *currency;    /* label copied into overage events (copied at engine_new) */
    /* §11 future-time guard, seconds, 0 (off)..GUARD_MAX_FUTURE_MAX; the
     * daemon's default is GUARD_MAX_FUTURE_DEFAULT (31 days). */
    int64_t max_future_s;
    /* §11 source lists by class (enum guard_class): NULL = the key is left
     * out (any source), else the list text (guard.h; "" = no source). */
    const char *sources[GUARD_NCLASS];
    /* §14 bounded idempotency memory, days, 0 (remember forever)..
     * GUARD_RETENTION_DAYS_MAX; the daemon's default is
     * GUARD_RETENTION_DAYS_DEFAULT (35).  Pinned in the store like
     * close_after: the store removes the keys it makes expire. */
    int64_t retention_days;
};
#define ENGINE_MAX_CLOSE_AFTER (90 * 86400)
#define ENGINE_CURRENCY_MAX 16

/* One input message.  buf is borrowed for the call. */
struct engine_msg {
    const char *buf;
    size_t len;
    const char *topic;       /* NULL: file replay (rejected ids are rejected/file/<offset>) */
    int32_t partition;
    int64_t offset;          /* Kafka offset, or the 1-based line number in file replay */
};

enum eng_outcome { ENG_APPLIED = 0, ENG_DUPLICATE = 1, ENG_REJECTED = 2 };

/* §12 alert kinds, as counted in struct engine_result (engine_alert_name). */
#define ENG_ALERT_NKIND 6

/* What one message did.  Filled by every engine_apply call (also when it
 * fails with ENG_ESTORE: then only what happened before the failure). */
struct engine_result {
    enum eng_outcome outcome;
    int reason;              /* enum eng_reason when rejected, else ENG_R_NONE */
    /* enum eng_type of the message's "type" (event_type_name), ENG_T_UNKNOWN
     * when the message is not a JSON object, has no string type or a type
     * that is not ours -- whatever the outcome (a duplicate has its type). */
    int type;
    /* Outputs the message emitted, by enum eng_out_kind; credit.alert
     * outputs also by alert kind (0..ENG_ALERT_NKIND-1, engine_alert_name).
     * A reject counts its credit.rejected; a duplicate emits nothing. */
    uint32_t outputs[ENG_OUT_NKIND];
    uint32_t alerts[ENG_ALERT_NKIND];
};

/* The "alert" field of a credit.alert of kind k ("low_balance", "exhausted",
 * "recovered", "overage_started", "expired", "projected_exhaustion"), or
 * "unknown" out of range.  Static string. */
const char *engine_alert_name(int kind);

struct engine;

/* 0, or -1 with err (bad config naming its key, out of memory). */
int  engine_new(struct engine **out, const struct engine_config *cfg, char *err, size_t errlen);
void engine_free(struct engine *e);

/* Apply one message.  Returns 0 whatever the outcome for the message
 * (applied, duplicate, rejected: see *res), or ENG_ESTORE when the store
 * failed (err says why): the caller must abort the batch. */
int engine_apply(struct engine *e, const struct engine_store *st, const struct engine_msg *m,
                 struct engine_result *res, char *err, size_t errlen);

/* The same in two steps, so callers can parse on another thread (jansson
 * is thread-safe for separate values).  engine_parse returns the message's
 * JSON tree, or NULL with *jerr filled; engine_apply_parsed applies it (root
 * NULL = invalid JSON, described by jerr).  root is borrowed: the engine
 * neither keeps nor changes it, so a batch can be applied again from the
 * same trees after an aborted transaction. */
json_t *engine_parse(const char *buf, size_t len, json_error_t *jerr);
int engine_apply_parsed(struct engine *e, const struct engine_store *st,
                        const struct engine_msg *m, json_t *root, const json_error_t *jerr,
                        struct engine_result *res, char *err, size_t errlen);
/* The message's content hash (§7: the idempotency check compares it), a
 * pure function of the tree: 0 and *hash, or -1 (root NULL, out of
 * memory). */
int engine_hash(json_t *root, uint64_t *hash);

/* What the engine reads from a message's tree before it touches any state,
 * computed ahead (on the thread that parsed it, issue 11) so the engine
 * thread only applies: the content hash, the readable `time` and the
 * decoded envelope and fields.  Each is a pure function of the tree, so
 * the outcome is the same whether it was prepared or not; strings point
 * into the tree (borrowed: valid while the tree lives).  A message that
 * event_decode rejects is not kept decoded: the engine decodes it again at
 * its step of the order of checks for the reject's message. */
struct engine_pre {
    uint8_t hashed;          /* hash = engine_hash(root) */
    uint8_t timed;           /* time_str / time_ns: the readable "time" (time_str NULL: none) */
    uint8_t decoded;         /* ev = event_decode(root), which accepted it */
    uint64_t hash;
    const char *time_str;
    int64_t time_ns;
    struct eng_event ev;     /* id, source and org are left to the engine */
};
/* Fill *pre from root (a JSON object, borrowed; NULL or a non-object
 * prepares nothing).  Thread-safe for separate trees; no engine needed. */
void engine_prepare(json_t *root, struct engine_pre *pre);

/* engine_apply_parsed with what engine_prepare computed for root (pre NULL:
 * the engine computes everything, as engine_apply_parsed does). */
int engine_apply_prepared(struct engine *e, const struct engine_store *st,
                          const struct engine_msg *m, json_t *root, const json_error_t *jerr,
                          const struct engine_pre *pre, struct engine_result *res, char *err,
                          size_t errlen);
/* The CloudEvents time of a parsed message: 0 and *ns, or -1 if unreadable. */
int engine_time_of(json_t *root, int64_t *ns);

/* Views of the rules for tools (creditctl shows what the engine will do).
 * Their arguments must pass eng_org_check / eng_project_check (state.h):
 * state read from a store is checked first, as the engine does. */
/* Minimum consumption of month m under terms t (semantics §6). */
int64_t engine_month_minimum(const struct eng_terms *t, int32_t month);
/* Consumption counted for `month` in an account's month list. */
int64_t engine_month_consumed(const struct eng_acct *a, int n, int32_t month);
/* Free credit of an org (§4): V - sum(P) when reserved, else V. */
int64_t engine_free_credit(const struct eng_org *o);

#endif
