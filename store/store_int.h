/* store_int.h -- what the files of store/ share.  Not an interface: only
 * the .c files of store/ include it (the interface is store.h).
 *
 *   store.c          LMDB env, open/close, the writer lock, batch
 *                    transactions, meta records (format, config, counters,
 *                    user strings), errors (st_corrupt), stats, dump, the
 *                    engine-ops binding (STORE_* -> ENG_*)
 *   store_codec.c    record layouts: the encoder and decoder of every value
 *   store_org.c      org state (orgs, project_credits), the
 *                    org_partition index, partition clocks, org views
 *   store_dedupe.c   idempotency keys, their expiry index and removal (§14)
 *   store_outbox.c   the outbox
 *   store_offsets.c  input offsets
 *   store_cache.c    the write-back cache of organisations (store.h "The
 *                    organisation cache")
 *   store_changes.c  change capture (notes in the changes database), the
 *                    changelog records' wire codes and their application,
 *                    changelog offsets, partition drop, the sweep's entry
 *                    points (store.h "Change capture ... (group mode)")
 *
 * Internal names start with st_ (the interface's with store_).
 */
#ifndef CREDITD_STORE_INT_H
#define CREDITD_STORE_INT_H

#include <limits.h>
#include <lmdb.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

enum {
    /* Format 6: an org is one orgs record, a project one project_credits
     * record (sequences, org_credits and months are gone). */
    DB_META, DB_ORGS, DB_PROJCRED,
    DB_ORGPART, DB_PARTS, DB_DEDUPE, DB_OUTBOX, DB_OFFSETS, DB_DDEXP,
    /* Added for group mode without a format change: a writer creates them
     * in a store made before them; a read-only open of such a store finds
     * them missing (struct store absent) and sees them empty. */
    DB_CHANGES,  /* capture notes: partition(BE32) wire code LMDB key -> version byte */
    DB_CLOFF,    /* changelog offsets: partition(BE32) -> next changelog offset */
    DB_COUNT
};
#define DB_FIRST_OPTIONAL DB_CHANGES
extern const char *const st_db_names[DB_COUNT];

#define PKEY_MAX   (ENG_ID_MAX + 1 + ENG_ID_MAX)   /* org \0 project */
#define NAME_MAX_B 200                              /* meta names, topics */
#define TERMS_LEN  (3 + 4 + 8)
#define ALERTS_LEN (4 * 8 + 8 + 1)  /* thresholds, armed, reference, exhausted */
#define ACCT_LEN   (1 + ENG_MAX_MONTHS * 13)
/* orgs: version, partition, watermark, open month, 4 sequences, credit flag,
 * credit (V, sum of P, terms, offerings, alerts, serial), months */
#define ORG_MAX    (1 + 4 + 8 + 4 + 4 * 8 + 1 + 8 + 8 + TERMS_LEN + 1 + \
                    ENG_MAX_OFFERINGS * (1 + ENG_ID_MAX) + ALERTS_LEN + 8 + ACCT_LEN)
/* project_credits: version, credit flag, credit (P, terms, alerts, serial), months */
#define PROJ_MAX   (1 + 1 + 8 + TERMS_LEN + ALERTS_LEN + 8 + ACCT_LEN)
/* ... + the usage block of §13 (flags, month, serials, draws, project,
 * overage seq, amount, resource, offering, component) */
#define DEDUPE_USAGE_MAX (1 + 7 * 10 + 1 + ENG_ID_MAX + 2 + ENG_KEYPART_MAX + \
                          1 + ENG_ID_MAX + 2 + ENG_KEYPART_MAX)
#define DEDUPE_MAX (1 + 8 + 2 + 4 + 8 + 2 + ENG_DKEY_MAX + DEDUPE_USAGE_MAX)
/* dedupe_expiry key: partition(BE32) time(BE64, sign bit flipped) dedupe LMDB key */
#define DDEXP_KEY_MAX (4 + 8 + STORE_DKEY_RAW_MAX)
#define OUT_NOKEY  0xFFFFu

/* meta keys; user names from store_meta_* live under "user:" */
#define MK_FORMAT   "format"
#define MK_CLOSE    "close_after"
#define MK_FUTURE   "max_future"
#define MK_RETENTION "retention_days"
#define MK_CURRENCY "currency"
#define MK_COUNTERS "counters"
#define MK_OUTSEQ   "outbox_seq"
#define MK_USER     "user:"

struct store {
    MDB_env *env;
    MDB_dbi dbi[DB_COUNT];
    MDB_txn *txn;          /* the batch's write txn, NULL outside one */
    int readonly;
    int lock_fd;           /* DIR/writer.lock, flock'd while a writer holds the handle; -1 */
    int map_full;          /* the current/last txn hit MDB_MAP_FULL */
    int grow_pending;      /* map must be grown before the next txn */
    int out_valid;         /* out_last is loaded for the current txn */
    int out_dirty;         /* out_last moved in this txn: meta outbox_seq written at commit */
    uint64_t out_last;     /* last outbox seq used (cache; reset on commit/abort) */
    int64_t retention_ns;  /* §14, pinned (meta retention_days); 0: keys are kept forever */
    uint64_t dd_new;       /* expiry-index entries added in the current txn */
    uint64_t dd_removed;   /* keys removed by the last commit (tests, stats) */
    store_emit_fn emit_fn; /* when set, outputs go here instead of the outbox */
    void *emit_arg;
    store_corrupt_fn corrupt_fn; /* readonly views: report corrupt records and go on */
    void *corrupt_arg;
    /* mdb_env_set_mapsize may only run while no txn is active in the
     * process: views (other threads) hold it shared for their whole read
     * txn, map growth takes it exclusive; writer-preferring, so a stream of
     * views cannot starve growth (st_map_lock). */
    pthread_rwlock_t map_lock;
    int map_lock_ok;       /* map_lock was initialised */
    unsigned absent;       /* bit i: database i missing (read-only open of an older store) */
    /* Change capture (store_changes.c). */
    int capture;           /* store_capture: note state writes in DB_CHANGES */
    int32_t cap_part;      /* the partition notes belong to (store_capture_partition); -1 unset */
    int swept;             /* the expiry sweep ran in the current txn (store_sweep) */
    uint64_t dd_txn_removed; /* keys the current txn's sweeps removed */
    int sweep_limited;     /* store_sweep_only: sweep only sweep_parts[0..nsweep) */
    int32_t *sweep_parts;  /* owned, sorted */
    size_t nsweep;
    struct st_cache *cache; /* writers: the org cache (store_cache.c); NULL when off */
    char path[PATH_MAX];
};

/* What store_view_begin hands out (store_org.c; store_outbox.c scans it). */
struct store_view {
    struct store *s;
    MDB_txn *txn;
    struct eng_org *scratch;  /* store_view_scan_orgs' org, kept across calls */
};

/* In the write txn before its commit: meta outbox_seq, once, when the txn
 * emitted outputs (st_emit keeps the new last seq in out_last only). */
int st_outbox_flush(struct store *s, char *err, size_t errlen);

/* ---- errors (store.c) ---------------------------------------------------- */

/* Format into err; returns STORE_ERR. */
int st_fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* An LMDB call failed: note map-full, name what failed; returns STORE_ERR. */
int st_lmdb_fail(struct store *s, int rc, const char *what, const char *db, char *err, size_t errlen);
/* Public store_* calls report a full map as STORE_EMAPFULL. */
int st_pub_rc(const struct store *s, int rc);
/* A record (or key) of db failed its checks: "corrupt store PATH: db NAME
 * key KEY: why", KEY printable (st_key_text); returns STORE_ECORRUPT. */
int st_corrupt(const struct store *s, int db, const void *k, size_t kl, const char *why,
               char *err, size_t errlen);
/* Key k of db as error text: big-endian partitions decoded, the rest quoted. */
void st_key_text(int db, const void *k, size_t kl, char *out, size_t cap);
/* A read-only view met a corrupt record (rc == STORE_ECORRUPT, err says
 * which): 1 when the store's corrupt hook took the report and the view may
 * skip the record, else 0 (the view stops with rc). */
int st_corrupt_skip(struct store *s, int rc, const char *err);

/* ---- LMDB helpers (store.c) ---------------------------------------------- */

/* STORE_NOTFOUND when missing; *v valid until the txn ends or writes. */
int st_db_get(struct store *s, MDB_txn *t, int db, const void *k, size_t kl, MDB_val *v,
              char *err, size_t errlen);
/* In the batch's write txn. */
int st_db_put(struct store *s, int db, const void *k, size_t kl, const void *v, size_t vl,
              char *err, size_t errlen);
/* Deleting a missing key is not an error.  Both note the change when
 * capture is on (st_change_note; a delete only when there was a record). */
int st_db_del(struct store *s, int db, const void *k, size_t kl, char *err, size_t errlen);
int st_cursor_open(struct store *s, MDB_txn *t, int db, MDB_cursor **c, char *err, size_t errlen);
/* A txn for reading: the batch's write txn if one is active, else a new
 * read txn (*own = 1; end it with st_rtxn_end). */
int st_rtxn_begin(struct store *s, MDB_txn **t, int *own, char *err, size_t errlen);
void st_rtxn_end(MDB_txn *t, int own);
/* mdb_env_set_mapsize(s->env, size) under map_lock held exclusively: waits
 * for the views of other threads to end.  The caller holds no txn and no
 * view.  An LMDB code. */
int st_set_mapsize(struct store *s, size_t size);

/* ---- big-endian keys ----------------------------------------------------- */

static inline void st_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline void st_be64(uint8_t *p, uint64_t v) {
    for (int i = 7; i >= 0; i--) { p[i] = (uint8_t)v; v >>= 8; }
}
static inline uint32_t st_get_be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t st_get_be64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
    return v;
}

/* ---- record codecs (store_codec.c) --------------------------------------- */
/* Every value starts with STORE_FORMAT_VERSION, then fixed little-endian
 * fields.  Encoders write into buf (cap bytes) and return the length; they
 * assert their input (the engine's state).  Decoders check the bytes read
 * from LMDB and return 0, or -1 with why[whylen] saying what is wrong (the
 * caller names db and key: st_corrupt). */

#define ST_WHY_MAX 160

/* A value of only the version byte and n raw bytes (format, currency, user meta). */
size_t st_enc_bytes(uint8_t *buf, size_t cap, const void *p, size_t n);
/* The bytes after the version byte, as text: *p (not NUL-terminated), *n; no NUL inside. */
int st_dec_text(const MDB_val *v, const char **p, size_t *n, char *why, size_t whylen);
/* One i64 (close_after, partition clock, offset; decoded: >= min) / one u64 (outbox_seq). */
size_t st_enc_i64(uint8_t *buf, size_t cap, int64_t x);
int st_dec_i64(const MDB_val *v, int64_t *x, int64_t min, char *why, size_t whylen);
size_t st_enc_u64(uint8_t *buf, size_t cap, uint64_t x);
int st_dec_u64(const MDB_val *v, uint64_t *x, char *why, size_t whylen);
size_t st_enc_counters(uint8_t *buf, size_t cap, const struct store_counters *c);
int st_dec_counters(const MDB_val *v, struct store_counters *c, char *why, size_t whylen);

/* orgs record (the whole org but its projects).  Decoded: the credit's
 * fields and the months are set only when the record holds them (else o
 * keeps what the caller set: the loader's defaults). */
size_t st_enc_org(uint8_t *buf, size_t cap, const struct eng_org *o);
int st_dec_org(const MDB_val *v, struct eng_org *o, char *why, size_t whylen);
/* An orgs record checked whole; only its partition kept. */
int st_dec_org_partition(const MDB_val *v, int32_t *partition, char *why, size_t whylen);
/* project_credits record (credit and months; a project has at least one).
 * Decoded like st_dec_org: absent parts leave p as the caller set it. */
size_t st_enc_proj(uint8_t *buf, size_t cap, const struct eng_project *p);
int st_dec_proj(const MDB_val *v, struct eng_project *p, char *why, size_t whylen);

/* dedupe: full = the whole idempotency key when it is longer than the LMDB
 * key, else NULL (decoded: flen 0). */
size_t st_enc_dedupe(uint8_t *buf, size_t cap, const struct eng_dedupe *rec, const uint8_t *full,
                     size_t flen);
int st_dec_dedupe(const MDB_val *v, struct eng_dedupe *d, const uint8_t **full, size_t *flen,
                  char *why, size_t whylen);

/* outbox: the value's length, and the value written into buf (of that
 * length).  Decoded key (NULL = none) and json point into v, NUL-terminated. */
size_t st_outbox_len(const char *key, size_t len);
void st_enc_outbox(uint8_t *buf, size_t vlen, enum eng_out_kind kind, const char *key,
                   const char *json, size_t len);
int st_dec_outbox(const MDB_val *v, enum eng_out_kind *kind, const char **key, const char **json,
                  size_t *len, char *why, size_t whylen);

/* ---- org state (store_org.c) --------------------------------------------- */

/* Load org id (whole) in txn t.  STORE_NOTFOUND if there is no orgs record. */
/* with_projects: also every project (all_projects 1), for the views; the
 * engine's org_get loads none and asks for them (st_project_get /
 * st_projects_get) as an event needs them. */
int st_load_org(struct store *s, MDB_txn *t, const char *id, struct eng_org *o, int with_projects,
                char *err, size_t errlen);

/* ---- the engine's calls (state.h), in the batch's write txn ---------------
 * They return STORE_* codes; store_engine_ops (store.c) maps them to the
 * engine's ENG_* codes. */

int st_org_get(struct store *s, const char *id, struct eng_org *out, char *err, size_t errlen);
int st_project_get(struct store *s, const char *org, const char *project, struct eng_project *out,
                   char *err, size_t errlen);
int st_projects_get(struct store *s, const char *org, struct eng_org *out, char *err, size_t errlen);
int st_org_put(struct store *s, const struct eng_org *o, char *err, size_t errlen);
/* Without the cache: project_get / projects_get from LMDB, and org_put's
 * writes of o's dirty records (the cache's write-back). */
int st_project_load(struct store *s, const char *org, const char *project, struct eng_project *out,
                    char *err, size_t errlen);
int st_projects_load(struct store *s, const char *org, struct eng_org *out, char *err, size_t errlen);
int st_org_write(struct store *s, const struct eng_org *o, char *err, size_t errlen);
/* The project_credits key org \0 proj. */
size_t st_proj_key(uint8_t *k, const char *org, const char *proj);
/* cb's first non-zero result (an engine code) stops the walk and is left in
 * *cbrc (0 when every call returned 0); the return value is the store's own. */
int st_orgs_on_partition(struct store *s, int32_t partition, int (*cb)(void *arg, const char *org),
                         void *arg, int *cbrc, char *err, size_t errlen);
int st_clock_get(struct store *s, int32_t partition, int64_t *ns, char *err, size_t errlen);
int st_clock_put(struct store *s, int32_t partition, int64_t ns, char *err, size_t errlen);
int st_dedupe_get(struct store *s, const uint8_t *key, size_t klen, struct eng_dedupe *out,
                  char *err, size_t errlen);
int st_dedupe_put(struct store *s, const uint8_t *key, size_t klen, const struct eng_dedupe *rec,
                  char *err, size_t errlen);
/* Remove at most budget expired keys (store.h, "Bounded idempotency
 * memory"), in the batch's write txn; *removed counts them. */
int st_dedupe_expire(struct store *s, uint64_t budget, uint64_t *removed, char *err, size_t errlen);
/* Oldest time in the expiry index (ENG_NO_TIME when empty) and its entries. */
int st_dedupe_oldest(struct store *s, MDB_txn *t, int64_t *oldest, char *err, size_t errlen);
int st_emit(struct store *s, enum eng_out_kind kind, const char *key, const char *json, size_t len,
            char *err, size_t errlen);

/* ---- the org cache (store_cache.c) ---------------------------------------- */

struct st_cache;
int  st_cache_open(struct store *s, size_t max_bytes, char *err, size_t errlen);
void st_cache_close(struct store *s);
/* Forget every entry, dirty ones included (store_abort; a partition drop or
 * changelog records written under it). */
void st_cache_drop(struct store *s);
/* Inside the write txn: write every dirty org (0 when the cache is off).
 * Before anything reads the org databases from LMDB in the txn (the tick
 * index, views, the change scan) and before the commit. */
int  st_cache_flush(struct store *s, char *err, size_t errlen);
/* The engine's calls when the cache is on (st_org_get & co. dispatch). */
int  st_cache_org_get(struct store *s, const char *id, struct eng_org *out, char *err, size_t errlen);
int  st_cache_project_get(struct store *s, const char *org, const char *project,
                          struct eng_project *out, char *err, size_t errlen);
int  st_cache_projects_get(struct store *s, const char *org, struct eng_org *out, char *err,
                           size_t errlen);
int  st_cache_org_put(struct store *s, const struct eng_org *o, char *err, size_t errlen);

/* ---- change capture (store_changes.c) ------------------------------------ */

/* Capture is on: note that record k of db was written in this txn (no-op for
 * databases that are not state: meta, outbox, changes, changelog).  The
 * record belongs to the partition in its key (org_partition, partitions,
 * dedupe_expiry, offsets), else to s->cap_part. */
int st_change_note(struct store *s, int db, const void *k, size_t kl, char *err, size_t errlen);
/* mdb_cursor_del at c (on db), noting the record (key k, copied by the
 * caller before the delete) when capture is on. */
int st_cursor_del(struct store *s, MDB_cursor *c, int db, const void *k, size_t kl, char *err,
                  size_t errlen);
/* The bounded expiry sweep of the current txn (store_commit's, or
 * store_sweep's); marks the txn swept. */
int st_sweep(struct store *s, char *err, size_t errlen);
/* store_sweep_only: 1 when the sweep may remove keys of partition p. */
int st_sweep_owns(const struct store *s, int32_t p);
/* Reset per txn (store_begin, store_abort). */
void st_changes_txn_reset(struct store *s);

#endif
