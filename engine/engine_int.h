/* engine_int.h -- internals shared by engine.c, credit.c and output.c.
 * Not part of the engine's interface; nothing outside engine/ includes it. */
#ifndef CREDITD_ENGINE_INT_H
#define CREDITD_ENGINE_INT_H

#include "engine/engine.h"
#include "engine/event.h"
#include "engine/jsonw.h"
#include "engine/state.h"

#define ENG_MSG_MAX 600

/* §12 alert kinds. */
enum alert_kind { AL_LOW_BALANCE, AL_EXHAUSTED, AL_RECOVERED, AL_OVERAGE_STARTED, AL_EXPIRED,
                  AL_PROJECTED };
_Static_assert(AL_PROJECTED + 1 == ENG_ALERT_NKIND, "ENG_ALERT_NKIND counts the alert kinds");

/* One queued alert (alert.c): built while the event is applied, emitted at
 * its end so alerts follow the event's ledger and overage outputs. */
struct alert_q {
    uint8_t kind;                 /* enum alert_kind */
    uint8_t account_project;
    uint8_t has_project, has_balance;
    uint8_t pct;                  /* low_balance */
    char project[ENG_ID_MAX + 1];
    int64_t balance, reference;
    int32_t month;
    int64_t projected;            /* projected_exhaustion: month index */
};
/* A close leaves the queue as it is unless it holds this many alerts: then
 * they are emitted right after that close (bounds the queue of a tick that
 * closes many months; README, choices). */
#define ALERT_QUEUE_FLUSH 4096

struct engine {
    int64_t close_after_ns;
    int64_t max_future_ns;       /* 0: the future-time guard is off */
    int64_t retention_ns;        /* §14, 0: every key is remembered forever */
    struct guard_list sources[GUARD_NCLASS];
    char currency[ENGINE_CURRENCY_MAX + 1];
    struct eng_org org;          /* scratch: the org being worked on */
    struct eng_org scratch;      /* scratch: projects read by projects_get */
    struct jsonw w;              /* scratch: the output being built */
    int64_t *draws;              /* scratch: per-project minimal draws of a close */
    size_t cap_draws;
    struct alert_q *aq;          /* alerts of the current event, in cause order */
    size_t naq, cap_aq;
    /* The current call (valid during engine_apply only). */
    const struct engine_store *st;
    const struct engine_msg *m;
    struct engine_result *res;   /* its result: outputs counted as they are emitted */
    struct eng_event ev;         /* id, source, time_str: the causing event */
    char *err;
    size_t errlen;
    char msg[ENG_MSG_MAX];       /* reject message */
    /* §13: filled by an applied usage (has 1), remembered with its key. */
    struct eng_usage_rec urec;
    struct eng_dedupe vrec;      /* scratch: the record of the usage a void takes back */
    const struct engine_pre *pre; /* what engine_prepare read from the tree ahead, or NULL */
};

/* One ledger entry (§8).  project NULL = the org; account_project says whose
 * balance the entry changes. */
struct ledger {
    const char *entry;
    const char *project;                  /* project id, NULL for none */
    int account_project;
    int64_t delta, balance;
    int32_t month;
    int late;
    const struct eng_terms *terms;        /* "terms" entries */
    int has_close;                        /* "month_closed" entries */
    int64_t consumed, minimum, draw, expected_next;
};

/* output.c: build and emit outputs; ENG_OK or ENG_ESTORE. */
int out_ledger(struct engine *e, struct eng_org *o, const struct ledger *l);
int out_overage(struct engine *e, struct eng_org *o, int64_t covered, int64_t amount,
                const char *reason, int32_t billing_month, int late);
/* credit.overage.void (§13) of the usage remembered in u (key source/id). */
int out_overage_void(struct engine *e, struct eng_org *o, const struct eng_usage_rec *u,
                     int64_t usage_time);
/* raw message, key (org or NULL), event id/source/time if readable. */
int out_rejected(struct engine *e, int reason, const char *key, const char *source,
                 const char *id, const char *time_str);

int out_alert(struct engine *e, struct eng_org *o, const struct alert_q *a);

/* alert.c (§12).  Queue functions return ENG_OK or ENG_ESTORE (out of
 * memory); p NULL = the org credit. */
/* A set (thr = its thresholds) or an org adjust: reference = balance, arm
 * the thresholds whose level is below it; recovered when exhausted before. */
int alert_rearm(struct engine *e, struct eng_org *o, struct eng_project *p, const uint64_t thr[2],
                int32_t month);
/* After an entry lowered the credit's balance from `before`. */
int alert_check(struct engine *e, struct eng_org *o, struct eng_project *p, int64_t before,
                int32_t month);
/* Balance above 0 again without a set (refund, §13): recovered if due. */
int alert_recover(struct engine *e, struct eng_org *o, struct eng_project *p, int32_t month);
int alert_expired(struct engine *e, struct eng_org *o, struct eng_project *p, int32_t month);
/* At the close of m: rate = max(consumed, minimum); fires per §12. */
int alert_projection(struct engine *e, struct eng_org *o, struct eng_project *p, int32_t m,
                     int64_t consumed, int64_t minimum);
int alert_overage_started(struct engine *e, struct eng_org *o, const char *project,
                          int32_t billing_month);
/* Emit the queued alerts (in order) and empty the queue. */
int alert_flush(struct engine *e, struct eng_org *o);

/* credit.c: the rules.  Each returns ENG_OK, ENG_ESTORE, or a reason > 0
 * (state-rule reject: nothing changed by the event itself). */
int credit_advance(struct engine *e, struct eng_org *o, int64_t t); /* watermark + closes */
int credit_closes(struct engine *e, struct eng_org *o);
int credit_apply(struct engine *e, struct eng_org *o);              /* e->ev on o */
/* o as the store returned it: ENG_OK, or ENG_ESTORE with err "corrupt
 * store: org ID: what" when it breaks an invariant (eng_org_check). */
int credit_check_org(struct engine *e, const struct eng_org *o);

#endif
