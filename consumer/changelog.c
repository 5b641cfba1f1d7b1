/* changelog.c -- reading the state changelog into a store; see changelog.h.
 *
 * Where a read ends.  The consumer is read_committed, so the ListOffsets
 * query of kclient_watermarks() (librdkafka sends the handle's isolation
 * level) answers the last stable offset (LSO) as the high end: the first
 * offset of the oldest open transaction, or the high watermark when none is
 * open.  A restore reads each partition up to the LSO asked when it starts
 * and never further, so a producer's open (or hung) transaction cannot hold
 * it up, and what a later commit adds is left to the next read.
 *
 * When a partition is done.  Its next offset (what the store will hold)
 * moves with every record read (offset + 1), and also past what carries no
 * record: commit and abort markers and the records of aborted transactions,
 * which librdkafka never returns.  Those show in the consumer position
 * (rd_kafka_position(): past every message and control record polled) and in
 * the offset of RD_KAFKA_RESP_ERR__PARTITION_EOF (the fetch position once
 * the broker has nothing more below the LSO).  A restore caps the next
 * offset at its end: a record past it (committed after the start) is not
 * applied, so the next offset must not pass it.  The partition is done when
 * its next offset reaches the end.
 *
 * Records are held (the librdkafka messages themselves, bounded by
 * CHANGELOG_TXN_RECORDS and CL_TXN_BYTES) until they are applied in one
 * store write txn with the next offsets of the partitions that moved; a full
 * map is grown by the store and the txn redone from the held records. */
#include "consumer/changelog.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consumer/kclient.h"
#include "consumer/log.h"

#define CL_TXN_BYTES   (64u << 20)  /* bytes of held records applied in one txn */
#define CL_IDLE_MS     60000        /* a restore with nothing read for this long fails */
#define CL_PROGRESS_MS 5000         /* at most one progress line this often */
#define CL_RESETS_MAX  3            /* offset-out-of-range restarts of one partition per call */
#define CL_PARTS_MAX   100000       /* partitions of the changelog topic */
#define CL_ERRLEN      512
#define CL_HDR_SHOW    (2 * CHANGELOG_FINGERPRINT_MAX) /* a foreign header as shown, escaped */
#define CL_OFFSET_END  INT64_MAX    /* a followed partition has no end */

_Static_assert(KCLIENT_STOPPED != STORE_OK && KCLIENT_STOPPED != STORE_NOTFOUND &&
                   KCLIENT_STOPPED != STORE_EMAPFULL && KCLIENT_STOPPED != STORE_EMISMATCH &&
                   KCLIENT_STOPPED != STORE_ERR && KCLIENT_STOPPED != STORE_ECORRUPT,
               "KCLIENT_STOPPED must differ from the STORE_* codes");

struct clpart {
    int64_t next;      /* the next offset to read: the store's once the held records commit */
    int64_t end;       /* read below this only (restore: the LSO; follow: CL_OFFSET_END) */
    int reading;       /* assigned now */
    int followed;      /* in the follow set */
    int dirty;         /* next moved since the last commit */
    int reset;         /* the fetch said: offset out of range */
    int resets;        /* restarts in this call */
};

struct changelog {
    struct kclient *kc;
    char topic[CONFIG_TOPIC_MAX + 1];
    char fp[CHANGELOG_FINGERPRINT_MAX];
    char role[32];                 /* the client's (kclient borrows it) */
    volatile sig_atomic_t *stop;
    int32_t nparts;
    struct clpart *pt;             /* [nparts] */
    rd_kafka_topic_partition_list_t *asg; /* the partitions assigned (rd_kafka_position) */
    rd_kafka_message_t **held;     /* [CHANGELOG_TXN_RECORDS]: read, not yet committed */
    size_t nheld, held_bytes;
    int64_t moved_ms;              /* when a partition last moved */
    int resync;                    /* an error left the memory ahead of the store: follow again */
};

void changelog_fingerprint(const struct config *c, char *buf, size_t len) {
    snprintf(buf, len, "format=%d close_after=%" PRId64 " max_future=%" PRId64
             " retention_days=%" PRId64 " currency=%s", STORE_FORMAT_VERSION,
             c->credit_close_after_s, c->credit_max_future_s, c->credit_retention_days,
             c->credit_currency);
}

/* ---- opening -------------------------------------------------------------- */

/* The consumer.  librdkafka assigns only with a group.id: PROG-changelog,
 * never joined (assign only) and never committed to, but looked up, so a
 * secured cluster's principal needs Describe on it (README ACL table). */
static struct kclient *client_new(struct changelog *cl, const struct config *c,
                                  const char *bootstrap, char *err, size_t errlen) {
    char group[LOG_PROG_MAX + 16];
    snprintf(group, sizeof(group), "%s-changelog", log_prog());
    const struct kclient_prop forced[] = {
        {"group.id", group},
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"isolation.level", "read_committed"},  /* whole batches, never a zombie's */
        {"auto.offset.reset", "error"},         /* out of range: drop and restart (reset) */
        {"enable.partition.eof", "true"},
        {NULL, NULL}};
    /* Watermark queries queue behind a fetch waiting on the broker. */
    static const struct kclient_prop defaults[] = {{"fetch.wait.max.ms", "100"}, {NULL, NULL}};
    struct kclient_spec spec = {.prog = log_prog(), .role = cl->role, .type = RD_KAFKA_CONSUMER,
                                .defaults = defaults, .cfg = c, .bootstrap = bootstrap,
                                .forced = forced, .stop = cl->stop,
                                /* creditd (role "restore") rides out broker outages as
                                 * its other clients do; the tools give up */
                                .stop_on = strcmp(cl->role, "restore") == 0
                                               ? KCLIENT_STOP_AUTH
                                               : KCLIENT_STOP_AUTH | KCLIENT_STOP_DOWN,
                                .acl_need = "Read (and Describe on its group)"};
    struct kclient *kc;
    return kclient_new(&kc, &spec, err, errlen) ? NULL : kc;
}

int changelog_open(struct changelog **out, const struct config *c, const char *bootstrap,
                   const char *role, volatile sig_atomic_t *stop, char *err, size_t errlen) {
    struct changelog *cl = calloc(1, sizeof(*cl));
    *out = NULL;
    if (!cl || !(cl->held = calloc(CHANGELOG_TXN_RECORDS, sizeof(*cl->held)))) {
        free(cl);
        snprintf(err, errlen, "changelog: out of memory");
        return -1;
    }
    snprintf(cl->topic, sizeof(cl->topic), "%s", c->state_changelog_topic);
    snprintf(cl->role, sizeof(cl->role), "%s", role);
    changelog_fingerprint(c, cl->fp, sizeof(cl->fp));
    cl->stop = stop;
    int rc = (cl->kc = client_new(cl, c, bootstrap, err, errlen)) ? 0 : -1;
    if (rc == 0)
        rc = kclient_partition_count(cl->kc, cl->topic, KCLIENT_META_TIMEOUT_MS, &cl->nparts, err,
                                     errlen);
    if (rc == 0 && cl->nparts > CL_PARTS_MAX) {
        snprintf(err, errlen, "%s: topic %s: %d partitions (at most %d)", cl->role, cl->topic,
                 (int)cl->nparts, CL_PARTS_MAX);
        rc = -1;
    }
    if (rc == 0 && !(cl->pt = calloc((size_t)cl->nparts, sizeof(*cl->pt)))) {
        snprintf(err, errlen, "changelog: out of memory (%d partitions)", (int)cl->nparts);
        rc = -1;
    }
    if (rc) {
        changelog_close(cl);
        return rc;
    }
    if (strcmp(cl->role, "restore") == 0) kclient_set_stop_on(cl->kc, 0); /* as creditd's consumer */
    *out = cl;
    return 0;
}

static void release_held(struct changelog *cl) {
    for (size_t i = 0; i < cl->nheld; i++) rd_kafka_message_destroy(cl->held[i]);
    cl->nheld = 0;
    cl->held_bytes = 0;
}

void changelog_close(struct changelog *cl) {
    if (!cl) return;
    release_held(cl);
    if (cl->asg) rd_kafka_topic_partition_list_destroy(cl->asg);
    if (cl->kc) {   /* never joined, no offsets to commit: a short close */
        kclient_consumer_close(cl->kc, KCLIENT_CLOSE_MS);
        kclient_destroy(cl->kc);
    }
    free(cl->pt);
    free(cl->held);
    free(cl);
}

int32_t changelog_partition_count(const struct changelog *cl) { return cl->nparts; }

/* ---- one record ------------------------------------------------------------ */

/* Outside bytes for a message: printable ASCII as is, the rest as \xNN,
 * cut to fit out (cap >= 4). */
static void show_bytes(const void *b, size_t n, char *out, size_t cap) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = b;
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 <= cap; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\' && p[i] != '"') { out[o++] = (char)p[i]; continue; }
        out[o++] = '\\';
        out[o++] = 'x';
        out[o++] = hex[p[i] >> 4];
        out[o++] = hex[p[i] & 15];
    }
    out[o] = 0;
}

/* The record's CHANGELOG_HDR_CONFIG is this reader's fingerprint, else an
 * error naming the record and both fingerprints. */
static int check_header(const struct changelog *cl, const rd_kafka_message_t *m, char *err,
                        size_t errlen) {
    rd_kafka_headers_t *h = NULL;
    const void *v = NULL;
    size_t n = 0;
    char shown[CL_HDR_SHOW];
    if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        rd_kafka_header_get_last(h, CHANGELOG_HDR_CONFIG, &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR && v &&
        n == strlen(cl->fp) && memcmp(v, cl->fp, n) == 0)
        return 0;
    if (!v) {
        snprintf(err, errlen, "changelog %s [%d] offset %" PRId64 ": no header %s (this reader's "
                 "fingerprint: \"%s\"): not written by creditd's group mode", cl->topic,
                 (int)m->partition, m->offset, CHANGELOG_HDR_CONFIG, cl->fp);
        return -1;
    }
    show_bytes(v, n, shown, sizeof(shown));
    snprintf(err, errlen, "changelog %s [%d] offset %" PRId64 ": header %s is \"%s\", this "
             "reader's is \"%s\": the writer has another store format or pinned credit.* "
             "configuration", cl->topic, (int)m->partition, m->offset, CHANGELOG_HDR_CONFIG, shown,
             cl->fp);
    return -1;
}

/* next moves forward to off (capped at the end): a record, an EOF, a position. */
static void advance(struct changelog *cl, struct clpart *pt, int64_t off) {
    if (off > pt->end) off = pt->end;
    if (off <= pt->next) return;
    pt->next = off;
    pt->dirty = 1;
    cl->moved_ms = kclient_now_ms();
}

static int is_ours(const struct changelog *cl, const rd_kafka_message_t *m) {
    return m->rkt && m->partition >= 0 && m->partition < cl->nparts &&
           strcmp(rd_kafka_topic_name(m->rkt), cl->topic) == 0 && cl->pt[m->partition].reading;
}

/* One polled message: a record is held (*keep), an EOF moves next, an
 * offset out of range marks a reset; another error fails.  0 or -1. */
static int on_message(struct changelog *cl, rd_kafka_message_t *m, int *keep, char *err,
                      size_t errlen) {
    struct clpart *pt = is_ours(cl, m) ? &cl->pt[m->partition] : NULL;
    *keep = 0;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        if (pt) advance(cl, pt, m->offset);
        return 0;
    }
    if (pt && (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
               m->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE)) {
        pt->reset = 1;
        return 0;
    }
    if (m->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
        kclient_denied(cl->kc, "topic", cl->topic, err, errlen);
        return -1;
    }
    if (m->err) {
        snprintf(err, errlen, "changelog %s [%d]: %s", cl->topic, (int)m->partition,
                 rd_kafka_message_errstr(m));
        return -1;
    }
    kclient_alive(cl->kc);
    /* Below next: from before a reassignment; at or past the end: later than the read. */
    if (!pt || m->offset < pt->next || m->offset >= pt->end) return 0;
    if (check_header(cl, m, err, errlen)) return -1;
    if (cl->nheld >= CHANGELOG_TXN_RECORDS) {   /* the loops commit before: never */
        snprintf(err, errlen, "changelog %s: more than %d records held", cl->topic,
                 CHANGELOG_TXN_RECORDS);
        return -1;
    }
    cl->held[cl->nheld++] = m;
    cl->held_bytes += m->key_len + m->len;
    *keep = 1;
    advance(cl, pt, m->offset + 1);
    return 0;
}

/* The consumer positions of the assigned partitions: past control records
 * and aborted transactions. */
static void positions(struct changelog *cl) {
    if (!cl->asg || cl->asg->cnt == 0 || rd_kafka_position(kclient_rk(cl->kc), cl->asg)) return;
    for (int i = 0; i < cl->asg->cnt; i++) {
        const rd_kafka_topic_partition_t *e = &cl->asg->elems[i];
        if (e->err == RD_KAFKA_RESP_ERR_NO_ERROR && e->offset >= 0 && e->partition >= 0 &&
            e->partition < cl->nparts && cl->pt[e->partition].reading)
            advance(cl, &cl->pt[e->partition], e->offset);
    }
}

static int held_full(const struct changelog *cl) {
    return cl->nheld >= CHANGELOG_TXN_RECORDS || cl->held_bytes >= CL_TXN_BYTES;
}

/* Poll once for up to ms; with nothing there, look at the positions. */
static int poll_once(struct changelog *cl, int ms, char *err, size_t errlen) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(kclient_rk(cl->kc), ms);
    int keep = 0, rc = 0;
    if (!m) {
        positions(cl);
        return 0;
    }
    rc = on_message(cl, m, &keep, err, errlen);
    if (!keep) rd_kafka_message_destroy(m);
    return rc;
}

/* ---- store transactions ------------------------------------------------------ */

/* Apply the held records in the open txn.  0, or STORE_* with err naming the record. */
static int apply_held(struct changelog *cl, struct store *s, char *err, size_t errlen) {
    char why[CL_ERRLEN];
    for (size_t i = 0; i < cl->nheld; i++) {
        const rd_kafka_message_t *m = cl->held[i];
        int rc = store_change_apply(s, m->key ? m->key : (const void *)"", m->key_len, m->payload,
                                    m->payload ? m->len : 0, why, sizeof(why));
        if (rc == 0) continue;
        snprintf(err, errlen, "changelog %s [%d] offset %" PRId64 ": %s", cl->topic,
                 (int)m->partition, m->offset, why);
        return rc;
    }
    return 0;
}

/* Partitions dropped before a (re)start: each partition's records gone, its
 * next offset stored, in the open txn. */
static int drop_marked(struct changelog *cl, struct store *s, const unsigned char *drop,
                       char *err, size_t errlen) {
    for (int32_t p = 0; drop && p < cl->nparts; p++) {
        if (!drop[p]) continue;
        uint64_t removed = 0;
        int rc = store_partition_drop(s, p, &removed, err, errlen);
        if (rc) return rc;
        log_info(cl->role, "changelog %s [%d]: %" PRIu64 " records of partition %d removed from the "
                 "store", cl->topic, (int)p, removed, (int)p);
        cl->pt[p].dirty = 1;
    }
    return 0;
}

/* One write txn: the marked partitions dropped, the held records applied,
 * the moved next offsets stored; a full map is grown and the txn redone.
 * The held records are released either way.  *applied += records. */
static int commit_txn(struct changelog *cl, struct store *s, const unsigned char *drop,
                      uint64_t *applied, char *err, size_t errlen) {
    int rc;
    for (;;) {
        if ((rc = store_begin(s, err, errlen)) != 0) break;
        rc = drop_marked(cl, s, drop, err, errlen);
        if (rc == 0) rc = apply_held(cl, s, err, errlen);
        for (int32_t p = 0; rc == 0 && p < cl->nparts; p++)
            if (cl->pt[p].dirty) rc = store_changelog_put(s, p, cl->pt[p].next, err, errlen);
        if (rc == 0) rc = store_commit(s, err, errlen);
        else if (store_map_full(s)) { store_abort(s); rc = STORE_EMAPFULL; }
        else store_abort(s);
        if (rc != STORE_EMAPFULL) break;
    }
    if (rc == 0) {
        *applied += cl->nheld;
        for (int32_t p = 0; p < cl->nparts; p++) cl->pt[p].dirty = 0;
    } else {
        cl->resync = 1;   /* memory is ahead of the store */
    }
    release_held(cl);
    return rc ? -1 : 0;
}

static int anything_to_commit(const struct changelog *cl) {
    if (cl->nheld) return 1;
    for (int32_t p = 0; p < cl->nparts; p++)
        if (cl->pt[p].dirty) return 1;
    return 0;
}

/* ---- assignment ------------------------------------------------------------- */

/* Assign exactly the partitions marked reading that have something left,
 * each at its next offset (none: unassign). */
static int assign(struct changelog *cl, char *err, size_t errlen) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
    for (int32_t p = 0; p < cl->nparts; p++)
        if (cl->pt[p].reading && cl->pt[p].next < cl->pt[p].end)
            rd_kafka_topic_partition_list_add(l, cl->topic, p)->offset = cl->pt[p].next;
    rd_kafka_resp_err_t e = rd_kafka_assign(kclient_rk(cl->kc), l->cnt ? l : NULL);
    if (cl->asg) rd_kafka_topic_partition_list_destroy(cl->asg);
    cl->asg = l;
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR) return 0;
    snprintf(err, errlen, "changelog %s: assign %d partitions: %s", cl->topic, l->cnt,
             rd_kafka_err2str(e));
    return -1;
}

static void unassign_all(struct changelog *cl) {
    for (int32_t p = 0; p < cl->nparts; p++) cl->pt[p].reading = 0;
    char err[CL_ERRLEN];
    if (assign(cl, err, sizeof(err))) log_warn(cl->role, "%s", err);
}

/* Where partition p starts: the store's next offset, or the partition's
 * start lo when the store holds none; one outside [lo, lso] marks p for a
 * drop (*drop = 1) and starts it at lo.  *lso: the read's end.
 * 0, -1 or KCLIENT_STOPPED. */
static int part_start(struct changelog *cl, struct store *s, int32_t p, int64_t *lso,
                      unsigned char *drop, char *err, size_t errlen) {
    int64_t next = -1, lo;
    int rc = store_changelog_get(s, p, &next, err, errlen);
    if (rc != 0 && rc != STORE_NOTFOUND) return -1;
    if (rc == STORE_NOTFOUND) next = -1;
    rc = kclient_watermarks(cl->kc, cl->topic, p, KCLIENT_META_TIMEOUT_MS, &lo, lso, err, errlen);
    if (rc) return rc;
    *drop = next >= 0 && (next > *lso || next < lo);
    if (*drop)
        log_warn(cl->role, "changelog %s [%d]: the store's offset %" PRId64 " is %s %" PRId64 " (%s): "
                 "restoring partition %d from the start", cl->topic, (int)p, next,
                 next > *lso ? "beyond the partition's end" : "below the partition's start",
                 next > *lso ? *lso : lo,
                 next > *lso ? "the topic was recreated?" : "records were deleted", (int)p);
    cl->pt[p].next = next < 0 || *drop ? lo : next;
    cl->pt[p].dirty = *drop;
    cl->pt[p].reset = 0;
    return 0;
}

/* Partitions parts[0..n): start each (part_start) for reading up to its LSO
 * (restore) or without end (follow), drop those marked, assign all that
 * are read.  0, -1 or KCLIENT_STOPPED. */
static int start_parts(struct changelog *cl, struct store *s, const int32_t *parts, size_t n,
                       int follow, uint64_t *applied, char *err, size_t errlen) {
    unsigned char *drop = calloc((size_t)cl->nparts, 1);
    int rc = drop ? 0 : -1, any = 0;
    if (!drop) snprintf(err, errlen, "changelog: out of memory");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        int32_t p = parts[i];
        int64_t lso;
        if (p < 0 || p >= cl->nparts) {
            snprintf(err, errlen, "changelog %s: no partition %d (%d partitions)", cl->topic, (int)p,
                     (int)cl->nparts);
            rc = -1;
        } else if ((rc = part_start(cl, s, p, &lso, &drop[p], err, errlen)) == 0) {
            cl->pt[p].end = follow ? CL_OFFSET_END : lso;
            cl->pt[p].reading = 1;
            any |= drop[p];
        }
    }
    if (rc == 0 && any) rc = commit_txn(cl, s, drop, applied, err, errlen);
    free(drop);
    if (rc == 0) rc = assign(cl, err, errlen);
    return rc;
}

/* Partitions whose fetch said "offset out of range" (records deleted, the
 * topic recreated): commit what is held, then start each again (its offset
 * is now out of the partition's range too: part_start drops it and reads it
 * from the start), at most CL_RESETS_MAX times per call.
 * 0, -1 or KCLIENT_STOPPED. */
static int handle_resets(struct changelog *cl, struct store *s, int follow, uint64_t *applied,
                         char *err, size_t errlen) {
    int rc = 0, any = 0;
    for (int32_t p = 0; p < cl->nparts; p++) any |= cl->pt[p].reading && cl->pt[p].reset;
    if (!any) return 0;
    if (anything_to_commit(cl) && (rc = commit_txn(cl, s, NULL, applied, err, errlen)) != 0)
        return rc;
    for (int32_t p = 0; rc == 0 && p < cl->nparts; p++) {
        if (!cl->pt[p].reading || !cl->pt[p].reset) continue;
        if (++cl->pt[p].resets > CL_RESETS_MAX) {
            snprintf(err, errlen, "changelog %s [%d]: offset %" PRId64 " out of range after %d "
                     "restarts from the start", cl->topic, (int)p, cl->pt[p].next, CL_RESETS_MAX);
            return -1;
        }
        log_warn(cl->role, "changelog %s [%d]: offset %" PRId64 " is out of range", cl->topic, (int)p,
                 cl->pt[p].next);
        rc = start_parts(cl, s, &p, 1, follow, applied, err, errlen);
    }
    return rc;
}

/* ---- restore ------------------------------------------------------------------ */

static size_t parts_left(const struct changelog *cl, int32_t *one) {
    size_t n = 0;
    for (int32_t p = 0; p < cl->nparts; p++)
        if (cl->pt[p].reading && cl->pt[p].next < cl->pt[p].end) {
            if (n++ == 0) *one = p;
        }
    return n;
}

static uint64_t per_s(uint64_t n, int64_t ms) { return n * 1000 / (uint64_t)(ms > 0 ? ms : 1); }

/* Read until every partition being read reached its end (parts_left),
 * committing every CHANGELOG_TXN_RECORDS records.  0, -1 or KCLIENT_STOPPED. */
static int restore_loop(struct changelog *cl, struct store *s, size_t n, uint64_t *applied,
                        char *err, size_t errlen) {
    int64_t t0 = kclient_now_ms(), shown = t0;
    int32_t p = 0;
    size_t left;
    int rc = 0;
    cl->moved_ms = t0;
    while (rc == 0 && (left = parts_left(cl, &p)) > 0) {
        int64_t now = kclient_now_ms();
        if (kclient_failed(cl->kc, err, errlen)) return -1;
        if (cl->stop && *cl->stop) return KCLIENT_STOPPED;
        if (now - cl->moved_ms > CL_IDLE_MS) {
            snprintf(err, errlen, "changelog %s: nothing read for %d s, %zu partitions left "
                     "(partition %d at offset %" PRId64 " of %" PRId64 ")", cl->topic,
                     CL_IDLE_MS / 1000, left, (int)p, cl->pt[p].next, cl->pt[p].end);
            return -1;
        }
        if (now - shown >= CL_PROGRESS_MS) {
            log_info(cl->role, "changelog %s: restoring %zu partitions: %" PRIu64 " records "
                     "(%" PRIu64 " records/s), %zu partitions left", cl->topic, n, *applied,
                     per_s(*applied, now - t0), left);
            shown = now;
        }
        rc = poll_once(cl, KCLIENT_POLL_MS, err, errlen);
        if (rc == 0 && held_full(cl)) rc = commit_txn(cl, s, NULL, applied, err, errlen);
        if (rc == 0) rc = handle_resets(cl, s, 0, applied, err, errlen);
    }
    if (rc == 0 && anything_to_commit(cl)) rc = commit_txn(cl, s, NULL, applied, err, errlen);
    return rc;
}

/* Read the followed partitions again from the store's offsets. */
static int refollow(struct changelog *cl, struct store *s, char *err, size_t errlen) {
    int32_t *ps = malloc((size_t)cl->nparts * sizeof(*ps));
    size_t n = 0;
    uint64_t applied = 0;
    if (!ps) { snprintf(err, errlen, "changelog: out of memory"); return -1; }
    release_held(cl);
    for (int32_t p = 0; p < cl->nparts; p++) {
        cl->pt[p].reading = cl->pt[p].dirty = cl->pt[p].reset = cl->pt[p].resets = 0;
        if (cl->pt[p].followed) ps[n++] = p;
    }
    int rc = start_parts(cl, s, ps, n, 1, &applied, err, errlen);
    free(ps);
    cl->resync = rc != 0;
    return rc;
}

int changelog_restore(struct changelog *cl, struct store *s, const int32_t *parts, size_t n,
                      uint64_t *records, char *err, size_t errlen) {
    uint64_t applied = 0;
    int64_t t0 = kclient_now_ms();
    release_held(cl);
    for (int32_t p = 0; p < cl->nparts; p++)
        cl->pt[p].reading = cl->pt[p].dirty = cl->pt[p].reset = cl->pt[p].resets = 0;
    int rc = start_parts(cl, s, parts, n, 0, &applied, err, errlen);
    if (rc == 0) rc = restore_loop(cl, s, n, &applied, err, errlen);
    release_held(cl);   /* after a failure */
    *records = applied;
    if (rc == 0) {
        int64_t ms = kclient_now_ms() - t0;
        log_info(cl->role, "changelog %s: restored %zu partitions: %" PRIu64 " records in %" PRId64
                 ".%01d s (%" PRIu64 " records/s)", cl->topic, n, applied, ms / 1000,
                 (int)(ms % 1000 / 100), per_s(applied, ms));
    }
    /* Back to following (the restored partitions' offsets are in the store). */
    char ferr[CL_ERRLEN];
    int frc = refollow(cl, s, ferr, sizeof(ferr));
    if (frc && rc == 0) {
        snprintf(err, errlen, "%s", ferr);
        rc = frc;
    }
    return rc;
}

/* ---- standby replicas ------------------------------------------------------------ */

int changelog_follow(struct changelog *cl, struct store *s, const int32_t *parts, size_t n,
                     char *err, size_t errlen) {
    for (int32_t p = 0; p < cl->nparts; p++) cl->pt[p].followed = 0;
    for (size_t i = 0; i < n; i++) {
        if (parts[i] < 0 || parts[i] >= cl->nparts) {
            snprintf(err, errlen, "changelog %s: no partition %d (%d partitions)", cl->topic,
                     (int)parts[i], (int)cl->nparts);
            unassign_all(cl);
            return -1;
        }
        cl->pt[parts[i]].followed = 1;
    }
    return refollow(cl, s, err, errlen);
}

int changelog_follow_poll(struct changelog *cl, struct store *s, int max_ms, uint64_t *records,
                          char *err, size_t errlen) {
    int64_t deadline = kclient_now_ms() + (max_ms > 0 ? max_ms : 0);
    int rc = 0;
    *records = 0;
    if (cl->resync && (rc = refollow(cl, s, err, errlen)) != 0) return rc;
    if (!cl->asg || cl->asg->cnt == 0) return kclient_serve(cl->kc, max_ms, err, errlen);
    for (;;) {
        int64_t left = deadline - kclient_now_ms();
        if (kclient_failed(cl->kc, err, errlen)) { rc = -1; break; }
        if (cl->stop && *cl->stop) { rc = KCLIENT_STOPPED; break; }
        if (left <= 0 || held_full(cl)) break;
        if ((rc = poll_once(cl, left < KCLIENT_POLL_MS ? (int)left : KCLIENT_POLL_MS, err, errlen)))
            break;
    }
    if (rc == 0) {
        positions(cl);
        rc = handle_resets(cl, s, 1, records, err, errlen);
    }
    if (rc == 0 && anything_to_commit(cl)) rc = commit_txn(cl, s, NULL, records, err, errlen);
    if (rc) {
        release_held(cl);
        cl->resync = 1;
    }
    return rc;
}
