/* store.h -- creditd's durable state: one LMDB environment.
 *
 * The only module that includes lmdb.h.  Named databases:
 *   meta            format version, close_after, max_future, currency, cluster id, counters
 *   orgs            org -> partition, watermark, open month, sequences,
 *                   credit (V, sum of P, terms, offerings, alerts, serial),
 *                   [(month, consumed, overage started)]     (state.h)
 *   project_credits org\0project -> credit (P, terms, alerts, serial),
 *                   [(month, consumed, overage started)]
 *   org_partition   partition(BE32) org -> ""   (index for ticks, ordered)
 *   partitions      partition(BE32) -> clock (latest tick time)
 *   dedupe          idempotency key -> content hash, outcome, partition, time
 *   outbox          seq(BE64) -> kind, key, json     (ordered, awaiting delivery)
 *   offsets         topic\0partition(BE32) -> next input offset
 *   dedupe_expiry   partition(BE32) time(BE64, sign flipped) dedupe-key -> ""
 *                   (the keys that can expire, oldest first per partition)
 *   changes         partition(BE32) changelog key -> ""  (capture notes of the batch)
 *   changelog       partition(BE32) -> next changelog offset (group mode)
 *                   (these two are created by the first writing open of this
 *                   build: older stores open unchanged, no format change)
 * Every record starts with a format-version byte.  Every record read back is
 * checked (version, length, ranges, ids), never asserted: a record that
 * fails is STORE_ECORRUPT, naming the database and key (store_codec.c).
 *
 * Transactions: one write transaction per batch (store_begin .. store_commit
 * or store_abort).  State, dedupe keys, outbox entries, offsets and counters
 * written in a batch commit together or not at all.
 *
 * One writer per store: a writing open takes an exclusive flock on
 * DIR/writer.lock (with the holder's pid in it) for the life of the handle,
 * so a second creditd or credit-replay is refused (STORE_ELOCKED) instead of
 * relaying the same outbox twice.  The kernel drops the lock when the holder
 * dies.  Read-only opens (creditctl) take no lock and never block the writer.
 */
#ifndef CREDITD_STORE_H
#define CREDITD_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/guard.h"
#include "engine/state.h"

#define STORE_OK        0
#define STORE_NOTFOUND  1
#define STORE_EMAPFULL  2   /* map was full: it has been grown, retry the whole batch */
#define STORE_EMISMATCH 3   /* store created with other result-changing config / format */
#define STORE_ELOCKED   4   /* store_open: another writer holds the store; err names the dir and pid */
#define STORE_ERR      -1   /* any other failure; err says what */
/* A stored record (or key) failed its checks: truncated, trailing bytes, an
 * unknown format version, a value out of range.  A failure like STORE_ERR
 * (< 0: abort the batch), with its own code so that read-only tools can
 * report it and go on.  err: "corrupt store PATH: db NAME key KEY: what",
 * KEY printable (\xNN escapes) or decoded ("seq 42", "partition 3"). */
#define STORE_ECORRUPT -2

/* 2: org_credits holds the sum of the project allocations (issue 6, point 11).
 * 3: alert state in the credit records, the alert sequence, overage-started
 *    flags in months (v1.3 §12).
 * 4: dedupe records carry the partition and time a key counts at, the
 *    dedupe_expiry index, retention_days pinned in meta (v1.3 §14). */
/* 5: a usage's dedupe record carries what a usage.void needs (draws, serials,
 *    billing month, overage), credit records a serial and the sequences
 *    record the last serial handed out (v1.3 §13). */
/* 6: one record per organisation (orgs: what orgs, sequences, org_credits
 *    and its own months record held) and one per project (project_credits:
 *    its credit and its months); sequences, org_credits and months are gone
 *    (issue 11: fewer puts and B-tree searches per written organisation). */
#define STORE_FORMAT_VERSION 6

/* Bounded idempotency memory (v1.3 §14).
 *
 * What may go: a key counts at a time t (the event's time, else the
 * watermark at its arrival; state.h struct eng_dedupe) and stops counting
 * once t < W - R, W its organisation's watermark (a tick key: its
 * partition's clock), R = retention_days.  The engine judges by that rule
 * itself (a stored key past it is treated as unknown), so a store may
 * remove a key at any moment after it stopped counting, never before:
 * removing late is harmless, removing early would turn a duplicate into a
 * second application.
 *
 * The horizon the store uses: the partition clock C (latest tick time).
 * Every organisation on a partition has a watermark >= C (a tick moves
 * every watermark of its partition up to C, a new organisation starts at C)
 * and watermarks never fall, so t < C - R implies t < W - R for whichever
 * organisation the key belongs to, now and forever: removing by C is never
 * early.  It is late by W - C at most, which is small when ticks flow
 * hourly (§11 asks for them); on a partition that never saw a tick nothing
 * is removed (outcomes are still exact: the engine's own rule applies).  A
 * global horizon (min over organisations) would let one quiet organisation
 * pin every key; per-partition clocks need no scan of organisations.
 * Keys that can never be removed by that argument are not indexed: time
 * ENG_NO_TIME (a message without readable time before its org had any
 * watermark) and partition -1 (a format reject of an organisation without
 * a record, so not yet pinned to a partition; such an organisation's first
 * valid event could arrive on another partition with a lagging clock).
 *
 * Layout: dedupe stays keyed by the idempotency key (lookups); the second
 * index dedupe_expiry is ordered by (partition, time, key), so each
 * partition's expired keys are a prefix of its range.  A put adds the entry;
 * a key replaced after it expired leaves its old entry, which removal
 * recognises (the record's time or partition differ) and drops alone.
 *
 * Bounded work: store_commit removes at most 2 x (entries the batch added)
 * + STORE_EXPIRE_MIN expired entries (with their records), partition by
 * partition, oldest first.  Removal outpaces insertion two to one, so a
 * backlog (a clock that jumped after a tick-less week) drains within a few
 * batches of the same size, and no batch ever pays for a sweep.  LMDB puts
 * freed pages on its freelist and reuses them for later writes (no reader
 * holds them for long: creditctl's read transactions are short), so with
 * steady traffic the file stops growing: it holds R days of keys plus at
 * most the backlog of a batch. */
#define STORE_EXPIRE_MIN 64
#define STORE_RETENTION_DAYS_MAX GUARD_RETENTION_DAYS_MAX

struct store;

struct store_opts {
    const char *path;         /* directory, created if missing (not when readonly) */
    int readonly;             /* creditctl: MDB_RDONLY, never blocks the writer */
    size_t map_size;          /* initial map size in bytes, 0 = default (1 GiB) */
    int nosync;               /* 1 = MDB_NOSYNC (tests only); default durable commits */
    /* Result-changing config, recorded when the store is created, checked on
     * every open (STORE_EMISMATCH naming the key if different). */
    int64_t close_after_s;
    int64_t max_future_s;     /* §11 future-time guard, seconds (0 = off) */
    int64_t retention_days;   /* §14, 0 (keep every key)..STORE_RETENTION_DAYS_MAX */
    const char *currency;     /* readonly only: NULL = don't check close_after/max_future/currency */
    /* Writers: the organisation cache (below); bytes, 0 = STORE_CACHE_DEFAULT. */
    size_t cache_bytes;
    int no_cache;             /* 1 = every engine read and write goes to LMDB (tests) */
};

/* The organisation cache (store_cache.c).  A writer keeps decoded
 * organisations (with the projects it has read) in memory across batches:
 * the engine's org_get / project_get / projects_get are answered from it,
 * and org_put changes only the cached copy.  The dirty organisations are
 * written to LMDB once per batch -- at store_commit, store_sweep,
 * store_changes_scan, before a tick walks the partition index, before a
 * view or stats inside the write txn -- or when the bound evicts them
 * (least recently used first; an evicted dirty org is written then, its
 * change captured with its own partition).  The answers are exactly what
 * reading LMDB after the same writes would give, and the records written
 * (and captured) are the same as without the cache, each once per batch:
 * the last state of every record the batch dirtied; a record put and
 * deleted in one batch is captured as the removal it is.  store_abort
 * drops the whole cache (a retried batch reads the committed state), and
 * so do store_partition_drop and store_change_apply (they write org records
 * directly).  Memory: at most cache_bytes (plus the one org being worked
 * on); an entry is ~0.6 KB + ~0.5 KB per project read + 201 B per
 * offering.  Read-only handles have no cache. */
#define STORE_CACHE_DEFAULT ((size_t)32 << 20)
struct store_cache_stats {
    uint64_t hits, misses;    /* org_get answered from the cache / from LMDB */
    uint64_t evictions;       /* entries evicted by the bound */
    uint64_t writebacks;      /* dirty orgs written to LMDB */
    uint64_t drops;           /* non-empty caches dropped (aborts, drops, applies) */
    uint64_t entries, bytes, max_bytes;
};
void store_cache_stats(const struct store *s, struct store_cache_stats *st);

/* STORE_ELOCKED when another handle (in this or another process) has the
 * store open for writing. */
int  store_open(struct store **out, const struct store_opts *o, char *err, size_t errlen);
void store_close(struct store *s);

/* Batch transaction. */
int  store_begin(struct store *s, char *err, size_t errlen);
int  store_commit(struct store *s, char *err, size_t errlen); /* STORE_EMAPFULL: grown, batch gone, retry */
void store_abort(struct store *s);
/* True when the current transaction failed with MDB_MAP_FULL; after abort
 * the map has been grown and the batch can be retried. */
int  store_map_full(const struct store *s);
/* Expired idempotency keys the last successful store_commit removed. */
uint64_t store_last_removed(const struct store *s);

/* File replay: send the engine's outputs to fn (called inside the batch
 * txn, in emission order; non-zero fails the call with ENG_ESTORE) instead
 * of the outbox.  The caller keeps them until the batch commits, and drops
 * them if it aborts.  NULL restores the outbox. */
typedef int (*store_emit_fn)(void *arg, enum eng_out_kind kind, const char *key,
                             const char *json, size_t len);
void store_set_emit_hook(struct store *s, store_emit_fn fn, void *arg);

/* The engine's view (state.h) bound to this store's current write txn. */
void store_engine_ops(struct store *s, struct engine_store *ops);

/* Input offsets (inside the current write txn). next = offset of the next
 * message to consume; STORE_NOTFOUND when the partition was never seen. */
int store_offset_get(struct store *s, const char *topic, int32_t partition, int64_t *next,
                     char *err, size_t errlen);
int store_offset_put(struct store *s, const char *topic, int32_t partition, int64_t next,
                     char *err, size_t errlen);

/* Counters kept in meta (inside the current write txn). */
struct store_counters { uint64_t applied, duplicates, rejected; };
int store_counters_add(struct store *s, const struct store_counters *delta, char *err, size_t errlen);

/* Meta strings (cluster id, input partition count, ...) in the current write
 * txn, or in a read txn when called outside one. */
int store_meta_get(struct store *s, const char *name, char *val, size_t vallen, char *err, size_t errlen);
int store_meta_put(struct store *s, const char *name, const char *val, char *err, size_t errlen);

/* Outbox, in emission order.  seq is the outbox sequence (strictly
 * increasing, never reused).  Iterates entries with seq > after; cb returns
 * non-zero to stop (that value is returned).  Works inside the write txn or,
 * outside one, in its own read txn.  key (NULL if none) and json are borrowed,
 * valid during cb only, NUL-terminated (json[len] == 0); cb must not write. */
typedef int (*store_outbox_cb)(void *arg, uint64_t seq, enum eng_out_kind kind,
                               const char *key, const char *json, size_t len);
int store_outbox_scan(struct store *s, uint64_t after, store_outbox_cb cb, void *arg,
                      char *err, size_t errlen);
/* The last outbox seq ever used (0: none), inside the current write txn: the
 * next emit gets *seq + 1 (the daemon maps its messages to the seqs of
 * their outputs with it, for the delivery latency). */
int store_outbox_last_seq(struct store *s, uint64_t *seq, char *err, size_t errlen);
/* Delete entries with seq <= upto (inside the current write txn). */
int store_outbox_delete_upto(struct store *s, uint64_t upto, char *err, size_t errlen);
/* Entries in the outbox: one mdb_stat (O(1), no file access), in the write
 * txn when one is active, else in its own read txn.  For per-batch flow
 * control; store_stats does much more (every database, the file size). */
int store_outbox_count(struct store *s, uint64_t *n, char *err, size_t errlen);

/* Read-only views for creditctl, each in its own read txn (or in the
 * current write txn when called inside one: they then see the batch).
 * A corrupt record stops a view with STORE_ECORRUPT, unless a corrupt hook
 * is set (below). */
typedef int (*store_org_cb)(void *arg, const struct eng_org *org); /* org borrowed during cb */
int store_scan_orgs(struct store *s, store_org_cb cb, void *arg, char *err, size_t errlen); /* ascending id */
int store_get_org(struct store *s, const char *id, struct eng_org *out, char *err, size_t errlen);

/* Views for other threads (creditd's HTTP API, its outbox relay): a read txn of their own,
 * also while the handle's thread is inside a write txn (the functions above
 * would then read the writer's uncommitted batch, and an LMDB txn belongs to
 * one thread).  A view sees one committed state for its whole life and
 * never blocks the writer's commits; it does hold off map growth (which
 * must wait until no txn is open in the process: store_begin and the end
 * of a batch that hit a full map wait for open views), so keep a view to
 * one request.  Views are not nested on a thread, and the thread that
 * writes must not hold one.  A view's thread gets one LMDB reader slot
 * (LMDB's default, no MDB_NOTLS: a view begins and ends on one thread).
 * The corrupt hook is not used: a corrupt record is STORE_ECORRUPT, err
 * naming db and key. */
struct store_view;
/* 0, or STORE_ERR with err (out of memory, LMDB). */
int  store_view_begin(struct store *s, struct store_view **out, char *err, size_t errlen);
void store_view_end(struct store_view *v);  /* NULL is fine */
/* Org id loaded whole (every project) into out (eng_org_init'ed by the
 * caller, eng_org_free after).  STORE_NOTFOUND for no such org (also for
 * an id of 0 or more than ENG_ID_MAX bytes, which no org has). */
int  store_view_get_org(struct store_view *v, const char *id, struct eng_org *out,
                        char *err, size_t errlen);
/* Orgs whose id is greater than after (byte order; "" or NULL: from the
 * first), ascending, each loaded whole and passed to cb (borrowed during
 * cb).  cb returns 0 to go on, or a non-zero value that stops the scan and
 * is returned (use values outside the STORE_* codes).  A record that fails
 * its checks stops the scan with STORE_ECORRUPT, err naming db and key,
 * and bad_id set to the org's id ("" when the key itself is not an id).
 * after is at most ENG_ID_MAX bytes (else STORE_ERR). */
int  store_view_scan_orgs(struct store_view *v, const char *after, store_org_cb cb, void *arg,
                          char bad_id[ENG_ID_MAX + 1], char *err, size_t errlen);
/* The committed outbox entries with seq > after, in seq order, to cb (as
 * store_outbox_scan; a corrupt entry stops the scan with STORE_ECORRUPT).
 * creditd's relay thread reads the outbox this way while the batch loop
 * writes the next batch: one short view per scan (the view holds off map
 * growth; cb must not wait on the writer's thread). */
int  store_view_outbox_scan(struct store_view *v, uint64_t after, store_outbox_cb cb, void *arg,
                            char *err, size_t errlen);

/* ---- Change capture and the state changelog (group mode) -----------------
 *
 * In group mode (consumer/README.md "Group mode") the engine state of each
 * input partition is also kept in a compacted Kafka topic, the changelog,
 * and the store is a local cache of it.  A changelog record is one LMDB
 * record of the engine state: its key is STORE_CHANGE_KEY_MAX bytes at most,
 * [one byte naming the database (store_changes.c: a fixed wire code, not the
 * internal enum)][the LMDB key]; its value is the LMDB value (every record
 * starts with the format version byte), or none (a tombstone: the record was
 * removed).  The state databases are orgs, project_credits,
 * org_partition, partitions, dedupe, dedupe_expiry
 * and offsets; meta (config, counters), the outbox and the changelog
 * offsets are this store's own and never captured.
 *
 * Capture: while on, every put and delete of a state database in the write
 * txn (the engine's, store_offset_put's and the expiry sweep's) is noted,
 * with the input partition it belongs to: the one set by
 * store_capture_partition (the partition of the message being applied);
 * an expired key belongs to the partition of its dedupe_expiry entry.
 * Records keyed by partition belong to the partition in their key
 * (org_partition, partitions, dedupe_expiry, and offsets: so input offsets
 * of several partitions can be written after a batch without resetting the
 * capture partition for each).  A delete is noted only when there was a
 * record.  The notes live in the write txn (an aborted batch forgets
 * them); notes a batch commits without scanning (e.g. of store_commit's
 * own sweep when store_sweep was not called) stay in the store and come
 * with the next store_changes_scan. */
#define STORE_CHANGE_KEY_MAX (1 + 4 + 8 + STORE_DKEY_RAW_MAX)
/* The database codes of changelog keys (fixed: they are on the wire). */
/* s, c, m (sequences, org_credits, months) are retired since format 6:
 * never written, refused by store_change_apply. */
enum store_change_db {
    STORE_CL_ORGS = 'o', STORE_CL_PROJCRED = 'p', STORE_CL_ORGPART = 'i', STORE_CL_PARTS = 'k',
    STORE_CL_DEDUPE = 'd', STORE_CL_DDEXP = 'x', STORE_CL_OFFSETS = 'f',
    STORE_CL_RETIRED_SEQ = 's', STORE_CL_RETIRED_ORGCRED = 'c', STORE_CL_RETIRED_MONTHS = 'm'
};

/* On (1) / off (0) for this handle (default off); between transactions
 * (asserted), writers only. */
void store_capture(struct store *s, int on);
/* The input partition the next captured changes belong to (>= 0; kept
 * until changed).  Capture on before any call is a programmer error
 * (asserted at the first noted write of an unkeyed record). */
void store_capture_partition(struct store *s, int32_t partition);

/* Inside the write txn: the changes noted (since the last scan), each once
 * (the record's value as it is now in the txn, or NULL/0 for a removed
 * record), ordered by (partition, key); then the notes are cleared.  key
 * and val are borrowed, valid during cb only.  cb returns non-zero to stop
 * (that value is returned; the notes are then kept).  cb must not write to
 * the store.  0 or STORE_*. */
typedef int (*store_change_cb)(void *arg, int32_t partition, const uint8_t *key, size_t klen,
                               const uint8_t *val, size_t vlen);
int store_changes_scan(struct store *s, store_change_cb cb, void *arg, char *err, size_t errlen);

/* Inside the write txn, capture off: apply one changelog record (val NULL:
 * remove the record; removing a missing one is fine).  The bytes come from
 * Kafka: an unknown database code, a key or value of impossible length, or a
 * value whose version byte is not STORE_FORMAT_VERSION is STORE_ERR with err
 * saying what ("changelog record: unknown database code 0x7a"); the caller
 * adds the topic, partition and offset.  Keys are checked per database (ids
 * of 1..ENG_ID_MAX bytes without NUL, partitions >= 0, lengths) and values
 * decoded as the store reads them, so a record the store would later find
 * corrupt is refused here.  A txn that applies a record does not sweep at
 * store_commit: capture is off, so its removals would never reach the
 * changelog (which would keep those keys, and bring them back on the next
 * restore); the partition's owner sweeps them and its tombstones follow. */
int store_change_apply(struct store *s, const uint8_t *key, size_t klen, const uint8_t *val,
                       size_t vlen, char *err, size_t errlen);

/* The changelog offset the store's state of input partition p reflects:
 * the next changelog offset to read (STORE_NOTFOUND: never restored or
 * written, read from the beginning).  In the write txn, or its own read txn
 * outside one.  Not captured. */
int store_changelog_get(struct store *s, int32_t partition, int64_t *next, char *err, size_t errlen);
int store_changelog_put(struct store *s, int32_t partition, int64_t next, char *err, size_t errlen);

/* Inside the write txn: remove everything the store keeps for input
 * partition p (its organisations and their records, index entries, clock,
 * idempotency keys recorded with partition p, input offset, changelog
 * offset), e.g. before restoring it from the changelog from the start.
 * Keys recorded with partition -1 (store.h "Bounded idempotency memory")
 * are kept: they cannot be told apart and a restore puts the same bytes.
 * Captured when capture is on (as tombstones of partition p).  *removed
 * counts the state records removed (not the changelog offset).  Walks
 * the whole dedupe database (keys recorded without an expiry entry are
 * found only so) and the offsets database: for the rare restore from the
 * start, not per batch.  0 or STORE_*. */
int store_partition_drop(struct store *s, int32_t partition, uint64_t *removed, char *err,
                         size_t errlen);

/* The expiry sweep (store.h "Bounded idempotency memory") normally runs in
 * store_commit.  store_sweep runs it now, inside the write txn, so that its
 * removals are captured before store_changes_scan; store_commit then does
 * not sweep again in this txn.  store_sweep_only limits every sweep of this
 * handle to partitions parts[0..n) (copied; parts NULL: all partitions,
 * the default; parts not NULL and n 0: none): in group mode an instance
 * removes keys only of
 * the partitions it owns, so that the owner alone writes a partition's
 * changelog.  0 or STORE_*. */
int store_sweep(struct store *s, char *err, size_t errlen);
int store_sweep_only(struct store *s, const int32_t *parts, size_t n, char *err, size_t errlen);

/* Every database's entries, map and file sizes (one stat(2)), counters and
 * config: for periodic stats and tools, not per batch. */
struct store_stats {
    struct { const char *name; uint64_t entries; } db[16];
    int ndb;
    uint64_t map_size, used_bytes, file_bytes;
    struct store_counters counters;
    int64_t close_after_s;
    int64_t max_future_s;
    int64_t retention_days;
    int64_t oldest_key_time;  /* ns, oldest time in dedupe_expiry; ENG_NO_TIME: none */
    char currency[32];
};
int store_stats(struct store *s, struct store_stats *st, char *err, size_t errlen);

/* Read-only handles only (asserted): let the views go on past corrupt
 * records.  store_scan_orgs skips an org any of whose records is corrupt,
 * store_outbox_scan skips a corrupt entry, store_stats leaves a corrupt
 * counter or config value zero; each calls fn with the error text (borrowed,
 * valid during fn).  The view then returns 0 unless something else failed.
 * store_get_org still returns STORE_ECORRUPT (there is no rest to show).
 * NULL restores stopping. */
typedef void (*store_corrupt_fn)(void *arg, const char *msg);
void store_set_corrupt_hook(struct store *s, store_corrupt_fn fn, void *arg);

/* Every record of every named DB (store_stats' db order, keys ascending), raw
 * bytes, for debugging tools and tests.  Inside the write txn if one is
 * active, else in its own read txn.  cb returns non-zero to stop. */
typedef int (*store_dump_cb)(void *arg, const char *db, const void *key, size_t klen,
                             const void *val, size_t vlen);
int store_dump(struct store *s, store_dump_cb cb, void *arg, char *err, size_t errlen);

/* The LMDB key of an idempotency key: the key itself when klen <=
 * STORE_DKEY_RAW_MAX, else its first STORE_DKEY_PREFIX bytes + a 16-byte
 * hash of all of it (the full key is then kept in the record and compared on
 * lookup).  out must hold STORE_DKEY_RAW_MAX bytes; returns the length. */
#define STORE_DKEY_RAW_MAX 480
#define STORE_DKEY_PREFIX  464
size_t store_dedupe_dbkey(const uint8_t *key, size_t klen, uint8_t *out);

#endif
