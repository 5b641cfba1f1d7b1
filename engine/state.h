/* state.h -- the engine's view of persistent state, and the store interface.
 *
 * The engine never does I/O.  It reads and writes state through the small
 * vtable `struct engine_store`, implemented by store/ (LMDB) and by the
 * in-memory store used in tests (tests/unit/memstore.c).
 *
 * Unit of state: one organisation (`struct eng_org`), loaded before an event
 * is applied and written back (only its dirty parts) after.  Its projects
 * are loaded only as the event needs them (one project for a usage or an
 * allocation; all of them for a month close or a delete), so the cost of an
 * event does not grow with the organisation's project count; the sum of the
 * project allocations is kept with the organisation credit for the same
 * reason.  The store (format 6) keeps one record per organisation and one
 * per project:
 *   orgs            org          -> partition, watermark, open month, output
 *                                   sequences, the credit (V, terms, alert state,
 *                                   offerings) if any, the org's months
 *   project_credits org\0project -> the credit (P, terms, alert state) if any,
 *                                   [(month, consumed, overage started)]
 * A dirty part (ENG_DIRTY_*) rewrites its whole record.
 */
#ifndef CREDITD_STATE_H
#define CREDITD_STATE_H

#include <stddef.h>
#include <stdint.h>

#define ENG_ID_MAX       200  /* org / project / offering id bytes (LMDB keys stay < 511) */
#define ENG_KEYPART_MAX  256  /* CloudEvents id and source bytes */
#define ENG_MAX_MONTHS   8    /* months with consumption that can be open at once */
#define ENG_MAX_OFFERINGS 64
#define ENG_NO_MONTH     INT32_MIN
#define ENG_NO_TIME      INT64_MIN

/* Expected outcomes of store calls (operating errors are < 0). */
#define ENG_OK        0
#define ENG_NOTFOUND  1
#define ENG_ESTORE   -1   /* store failure: the batch must be aborted; err says why */

enum eng_logic { ENG_FIXED = 0, ENG_LINEAR = 1 };

/* Terms of a credit (org or project).  Booleans are 0/1. */
struct eng_terms {
    uint8_t logic;           /* enum eng_logic */
    uint8_t grace;           /* 0..100 */
    uint8_t apply_min;       /* apply_as_minimal_consumption */
    uint8_t reserve;         /* org only: reserve_allocations */
    uint8_t use_org_credit;  /* project only */
    uint8_t mark_unused;     /* project only: mark_unused_as_spent_on_termination */
    int32_t end_month;       /* month index of end_date, ENG_NO_MONTH if none */
    int64_t expected;        /* expected consumption of the open month (micro) */
};

/* Consumption of one month (micro-units of draws counted for that month). */
struct eng_acct {
    int32_t month;
    int64_t consumed;
    /* §12: 1 once overage_started fired for (org, this project, month).
     * Only on project accounts.  An entry can hold the flag alone
     * (consumed 0): a project without credit, or a month with overage only.
     * Flags go with the month when it closes, so they are bounded like the
     * open months (state.c acct_check, credit.c flag_prune). */
    uint8_t overage;
};

/* §12 alert state of one credit (org or project), kept with the credit.
 * Bit k of a mask (k = 1..99, word k / 64) is the threshold of k percent. */
#define ENG_ALERT_PCT_MAX 99
struct eng_alerts {
    uint64_t thr[2];      /* alert_thresholds of the latest set */
    uint64_t armed[2];    /* subset of thr: armed, not fired since */
    int64_t reference;    /* balance right after the latest set (org: or adjust), >= 0 */
    uint8_t exhausted;    /* exhausted fired and no recovered since */
};

#define ENG_DIRTY_META   0x01u  /* org: partition, watermark, open month */
#define ENG_DIRTY_SEQ    0x02u  /* org: sequences */
#define ENG_DIRTY_CREDIT 0x04u  /* org or project: credit record (deleted if !has_credit) */
#define ENG_DIRTY_ACCT   0x08u  /* org or project: month record (deleted if nacct == 0) */

struct eng_project {
    char id[ENG_ID_MAX + 1];
    uint8_t has_credit;
    int64_t value;                       /* P_p, >= 0 */
    struct eng_terms terms;
    int nacct;
    struct eng_acct acct[ENG_MAX_MONTHS];
    struct eng_alerts al;                /* with the credit; zero without */
    uint64_t serial;                     /* §13: the credit's serial (o->credit_seq at its
                                            creation); with the credit, 0 without */
    unsigned dirty;
};

/* Output kinds; the values are stored in the outbox.  ENG_OUT_NKIND sizes
 * every array indexed by kind. */
enum eng_out_kind { ENG_OUT_OVERAGE = 0, ENG_OUT_LEDGER = 1, ENG_OUT_REJECTED = 2,
                    ENG_OUT_ALERT = 3 };
#define ENG_OUT_NKIND 4

/* store/store_cache.c copies the org-level fields one by one (head_from,
 * head_to: the offerings table is too big to cache whole): a field added
 * here must be added there too (test_store_cache compares a stream's state
 * with and without the cache). */
struct eng_org {
    char id[ENG_ID_MAX + 1];
    int32_t partition;
    int64_t watermark;                   /* ns, ENG_NO_TIME before any */
    int32_t open_month;                  /* ENG_NO_MONTH before the first set */
    uint64_t seq[2];                     /* last used seq: [ENG_OUT_OVERAGE], [ENG_OUT_LEDGER] */
    uint64_t alert_seq;                  /* last used credit.alert seq (§12) */
    uint64_t credit_seq;                 /* §13: last credit serial handed out (org and
                                            project credits); with the sequences, survives
                                            a delete */
    uint8_t has_credit;
    int64_t value;                       /* V, >= 0 */
    int64_t alloc_sum;                   /* sum of P over projects with credit (all of them,
                                            loaded or not); 0 without credit; with the credit */
    struct eng_terms terms;
    struct eng_alerts al;                /* with the credit; zero without */
    uint64_t serial;                     /* §13: the org credit's serial; 0 without credit.
                                            A credit deleted and set again gets a new one,
                                            so a void can tell it is another credit. */
    int noff;                            /* 0 = all offerings eligible */
    char off[ENG_MAX_OFFERINGS][ENG_ID_MAX + 1];
    int nacct;
    struct eng_acct acct[ENG_MAX_MONTHS];
    size_t nproj, capproj;               /* loaded projects, sorted by id (byte order) */
    struct eng_project *proj;            /* owned, malloc'd */
    uint8_t all_projects;                /* proj holds every project the store has */
    unsigned dirty;
};

void eng_org_init(struct eng_org *o);
void eng_org_free(struct eng_org *o);           /* frees proj; o can be re-inited */
int  eng_org_copy(struct eng_org *dst, const struct eng_org *src); /* deep; dst inited; 0 or -1 (ENOMEM) */
/* Find project by id; NULL if absent. */
struct eng_project *eng_org_find_project(struct eng_org *o, const char *id);
/* Find or insert (sorted) project; NULL on ENOMEM.  New projects have no credit. */
struct eng_project *eng_org_add_project(struct eng_org *o, const char *id);
/* Add to o every project of `from` (sorted) that o does not hold yet; o's
 * own, possibly changed, projects are kept.  0, or -1 on ENOMEM. */
int eng_org_merge_projects(struct eng_org *o, const struct eng_org *from);

/* Checks of state read from the store.  The store checks each record's
 * bytes (version, length, ranges); these check what a well-formed record
 * can still get wrong against the invariants the rules rely on, so a wrong
 * record is an error naming it, never an abort.  Each returns 0, or -1 with
 * `why` saying what is wrong (the caller names the org and project).
 *
 * eng_org_check: o as org_get returns it (its projects are not looked at):
 * id; partition >= 0; watermark absent or in the time module's range; an
 * open month in 1970-01 .. the watermark's month (required with a credit);
 * sequences (alerts too) <= INT64_MAX; V >= 0, sum of P >= 0, both 0
 * without credit; valid terms (grace 0..100, flags 0/1, end month in range,
 * linear with an end month, expected >= 0); offerings; alert state
 * (thresholds 1..99, armed among them, reference >= 0, exhausted 0/1; all
 * zero without a credit).  Month records (org or project): at most
 * ENG_MAX_MONTHS, months strictly ascending, consumption >= 0, overage flag
 * 0/1; a month with consumption within the open month .. the watermark's
 * month, one holding only an overage flag at most the watermark's month. */
int eng_org_check(const struct eng_org *o, char *why, size_t whylen);
/* p as project_get / projects_get return it, o its (checked) org: id;
 * P >= 0 and at most o's sum of P, 0 without credit; a credit only when o
 * has one; valid terms; alert state; month records. */
int eng_project_check(const struct eng_org *o, const struct eng_project *p, char *why,
                      size_t whylen);
/* o holds every project: its sum of P equals the sum of their P. */
int eng_org_check_alloc_sum(const struct eng_org *o, char *why, size_t whylen);

/* A remembered idempotency key (§7, §14).
 *
 * time is the instant the key counts at: the message's own `time` when it is
 * readable, else the watermark of its organisation (for a tick: the clock of
 * its partition) before the message, or ENG_NO_TIME when there was none yet
 * (such a key is kept forever).  A key whose time is earlier than the
 * watermark - retention_days no longer counts (the engine judges its message
 * as new), so a store may drop it once that holds -- never before.
 * partition is the key's partition: its org's (org keys) or the tick's;
 * every org on a partition has a watermark at or past the partition's clock,
 * so time < clock - retention_days means expired whatever the org (store.h).
 * partition -1: no clock bounds the key (a format reject of an organisation
 * that has no record, so no partition yet): the store keeps it. */
/* §13: what an applied usage leaves for a later usage.void, kept with its
 * dedupe record (and so removed with its key, §14).  The usage's time is
 * the record's time.  Strings are NUL-terminated; resource, offering and
 * component are kept only when the usage caused an overage (ov_seq > 0):
 * the overage void repeats them. */
struct eng_usage_rec {
    uint8_t  has;            /* 1: the key is an applied usage (the rest is valid) */
    uint8_t  voided;         /* 1 once a usage.void took it back */
    int32_t  billing_month;  /* the month its draws counted for */
    uint64_t org_serial;     /* serial of the org credit drawn from (0: no draw) */
    uint64_t proj_serial;    /* serial of the project credit of d1 (0: d1 == 0) */
    int64_t  d1;             /* project draw (P_p and V), >= 0 */
    int64_t  d2;             /* fallback or free draw (V), >= 0 */
    uint64_t ov_seq;         /* seq of its credit.overage, 0 when none (<= INT64_MAX) */
    int64_t  ov_amount;      /* that overage's amount, > 0 with ov_seq */
    char project[ENG_ID_MAX + 1];
    char resource[ENG_KEYPART_MAX + 1];
    char offering[ENG_ID_MAX + 1];
    char component[ENG_KEYPART_MAX + 1];
};

struct eng_dedupe {
    uint64_t hash;      /* hash of the canonical message content */
    uint8_t  rejected;  /* 0 applied, 1 rejected */
    uint8_t  reason;    /* enum eng_reason when rejected */
    int32_t  partition; /* >= 0, or -1: kept (see above) */
    int64_t  time;      /* ns, or ENG_NO_TIME: kept forever */
    struct eng_usage_rec u; /* §13; u.has 0 for every other key */
};

/* Idempotency key bytes: org events "o" source \0 id \0 org,
 * ticks "t" source \0 id \0 partition(4 bytes BE).  At most ENG_DKEY_MAX bytes. */
#define ENG_DKEY_MAX (1 + ENG_ID_MAX + 1 + ENG_KEYPART_MAX + 1 + ENG_KEYPART_MAX)

/* The store interface.  Every call happens inside the store's current write
 * transaction (the batch); nothing is durable until the caller commits it.
 * Strings passed in are borrowed for the duration of the call.  On ENG_ESTORE
 * the store has written a message into err. */
struct engine_store {
    void *ctx;
    /* Load org `id` into *out (inited by caller; proj array reused) without
     * its projects (nproj 0, all_projects 0).  ENG_NOTFOUND if the org has
     * never been seen; dirty is 0 on return. */
    int (*org_get)(void *ctx, const char *id, struct eng_org *out, char *err, size_t errlen);
    /* Load project `project` of org `org` (credit and months) into *out.
     * ENG_NOTFOUND when the store has neither record. */
    int (*project_get)(void *ctx, const char *org, const char *project, struct eng_project *out,
                       char *err, size_t errlen);
    /* Load every project of org `org` into out->proj (out inited by the
     * caller, its proj array reused; only nproj/proj are set), sorted. */
    int (*projects_get)(void *ctx, const char *org, struct eng_org *out, char *err, size_t errlen);
    /* Write the dirty parts of *o (projects with dirty flags too). */
    int (*org_put)(void *ctx, const struct eng_org *o, char *err, size_t errlen);
    /* Call cb for every org pinned to `partition`, ascending byte order of id.
     * The store collects ids before calling cb, so cb may org_put. */
    int (*orgs_on_partition)(void *ctx, int32_t partition,
                             int (*cb)(void *arg, const char *org), void *arg,
                             char *err, size_t errlen);
    /* Partition clock: latest tick time seen on the partition.  ENG_NOTFOUND if none. */
    int (*clock_get)(void *ctx, int32_t partition, int64_t *ns, char *err, size_t errlen);
    int (*clock_put)(void *ctx, int32_t partition, int64_t ns, char *err, size_t errlen);
    int (*dedupe_get)(void *ctx, const uint8_t *key, size_t klen, struct eng_dedupe *out,
                      char *err, size_t errlen);   /* ENG_NOTFOUND if new */
    /* Insert or replace (a key judged as new because it expired, §14). */
    int (*dedupe_put)(void *ctx, const uint8_t *key, size_t klen, const struct eng_dedupe *rec,
                      char *err, size_t errlen);
    /* Append an output event to the outbox, in emission order.  key is the
     * Kafka message key (org; NULL for none); json is one compact JSON object. */
    int (*emit)(void *ctx, enum eng_out_kind kind, const char *key,
                const char *json, size_t len, char *err, size_t errlen);
};

#endif
