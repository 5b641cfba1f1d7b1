/* credit-replay -- the audit tool: apply a JSON Lines event log to a store
 * and write every output event, in emission order, as JSON Lines.
 *
 *   credit-replay --db DIR [--config FILE] [--out FILE] [--batch N] [--until TIME]
 *                 [--close-after S] [--max-future S] [--retention-days D] [--currency C]
 *                 FILE...
 *   credit-replay --db DIR --from-kafka BOOTSTRAP [--topic T] [-X key=value]... [options]
 *
 * --config reads creditd's own configuration file, so an audit replays with
 * the rules the daemon ran with: credit.* and sources.* always; topic.input
 * and kafka.* only with --from-kafka (kafka.bootstrap.servers is replaced by
 * the --from-kafka argument); store.path is ignored (--db names the store, a
 * replay never writes into the daemon's).  -X KEY=VALUE sets a key after the
 * file, as for creditd (a librdkafka property, or a creditd key such as
 * credit.close_after); both are read by kclient_tool_config (README
 * "Secrets": file: values, the refusal of a secret in clear in a file open
 * to others).  The other options override both, whatever their position.
 *
 * Lines are applied in order as partition 0 (line numbers count across all
 * files, from 1), committed in batches of N.  A batch's outputs are spooled
 * (tools/spool.h: memory up to a bound, then an unlinked file in the store
 * directory) and written to --out, flushed and fsync'd, *before* the batch
 * commits: a commit never happens without its outputs on disk, and a batch
 * whose outputs could not be written is not committed, so a re-run applies
 * it again and writes them (the store's outbox is not used: the file is the
 * delivery).  Exit 0 when all input was processed, 1 on bad usage, 2 on I/O
 * or store errors.
 *
 * Parsing (consumer/parseq.h, the daemon's input pipeline too): lines and
 * messages are parsed on input.parse_threads threads (--parse-threads N
 * overrides; 0 parses on the main thread) ahead of the engine, which
 * applies them in order on the main thread.
 *
 * Progress (tools/progress.h): a line on stderr, redrawn in place, only when
 * stderr is a terminal (or --progress; never with --no-progress), so that a
 * log or a pipe gets the summary line alone, as before. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "config/config.h"
#include "consumer/jarena.h"
#include "consumer/kclient.h"
#include "consumer/parseq.h"
#include "engine/engine.h"
#include "engine/timeutil.h"
#include "store/store.h"
#include "tools/lineq.h"
#include "tools/progress.h"
#include "tools/spool.h"

#define ERRLEN 512
/* A batch's outputs held in memory; the rest spills to a file.  16 MiB holds a
 * 10,000-event batch of 100,000 organisations (~14 MiB of outputs, 455 bytes each); a tick over
 * them all spills (issue 11: the peak private memory of a large replay). */
#define SPOOL_MEM_MAX (16u << 20)

/* A line of the open batch, kept for a redo (the map filled): its text is
 * in the batch's text buffer (file replay) or the Kafka message, held until
 * the batch commits (--from-kafka: the parse queue borrows the payload). */
struct line {
    size_t off, len;       /* in r->text */
    rd_kafka_message_t *msg; /* --from-kafka: owned; buf is its payload */
    int32_t partition;
    int64_t no;            /* line, or Kafka offset */
};

struct replay {
    struct store *store;
    struct engine *eng;
    FILE *out;
    struct line *batch;
    const char *topic;            /* --from-kafka: the input topic; NULL for files */
    size_t n, cap;
    char *text;                   /* file replay: the batch's lines */
    size_t tlen, tcap;
    struct parseq *pq;            /* --from-kafka: messages parsed ahead (push mode) */
    int parse_threads;            /* input.parse_threads / --parse-threads */
    uint64_t drained;             /* outbox entries up to here are written */
    int64_t line_no;
    int has_until;
    int64_t until;
    struct store_counters total;
    uint64_t outputs[ENG_OUT_NKIND];
    struct spool pend;            /* outputs of the batch being applied */
    uint64_t pend_count[ENG_OUT_NKIND];
    int pend_delivered;           /* they are on --out already (a commit is being retried) */
    int write_failed;             /* write_out: an error writing --out (errno kept) */
    int txn_open;                 /* file replay: a batch transaction is open */
    struct engine_store ops;      /* bound to it */
    struct store_counters cnt;    /* its outcomes so far */
    struct progress prog;         /* the progress line (tools/progress.h), off unless wanted */
    struct progress_snap at;      /* where the run is: unit, done, total (lines: line_no) */
    char err[ERRLEN];
};

static void usage(void) {
    fprintf(stderr, "usage: credit-replay --db DIR [--config FILE] [--out FILE] [--batch N] [--until TIME]\n"
                    "                     [--close-after SECONDS] [--max-future SECONDS] [--retention-days DAYS]\n"
                    "                     [--currency CODE] [--progress | --no-progress]\n"
                    "                     [--map-size BYTES] [--spool-mem BYTES] [--parse-threads N] FILE...\n"
                    "       credit-replay --db NEWDIR --from-kafka BOOTSTRAP [--topic T] [-X key=value]...\n"
                    "                     [--config FILE] [--out FILE] [--batch N] [--close-after S]\n"
                    "                     [--max-future S] [--retention-days D] [--currency C]\n"
                    "  FILE is JSON Lines, one CloudEvent per line; - reads stdin.\n"
                    "  --config FILE: creditd's configuration file (credit.*, sources.*; with\n"
                    "  --from-kafka also topic.input and kafka.*); -X KEY=VALUE: a key after it,\n"
                    "  as for creditd (a librdkafka property or a creditd key); options override.\n"
                    "  --progress / --no-progress: the progress line on stderr (default: only\n"
                    "  when stderr is a terminal).\n");
}

/* store_outbox_scan callback: non-zero stops the scan; the failure is in
 * r->write_failed, not in the value, which the scan returns as its own. */
static int write_out(void *arg, uint64_t seq, enum eng_out_kind kind, const char *key,
                     const char *json, size_t len) {
    struct replay *r = arg;
    (void)key;
    if (fwrite(json, 1, len, r->out) != len || fputc('\n', r->out) == EOF) {
        r->write_failed = errno ? errno : EIO;
        return 1;
    }
    r->drained = seq;
    r->outputs[kind]++;
    return 0;
}

/* Store hook: spool an output of the current batch (memory stays bounded). */
static int hold_out(void *arg, enum eng_out_kind kind, const char *key, const char *json,
                    size_t len) {
    struct replay *r = arg;
    (void)key;
    if (spool_add(&r->pend, json, len, r->err, sizeof(r->err))) return -1;
    r->pend_count[kind]++;
    return 0;
}

/* Before a commit: the batch's outputs onto --out, durable. */
static int deliver_pending(struct replay *r) {
    if (r->pend_delivered) return 0; /* a commit retried after the map grew: same outputs */
    if (spool_deliver(&r->pend, r->out, r->err, sizeof(r->err))) return -1;
    r->pend_delivered = 1;
    return 0;
}

/* Write outbox entries a previous run left undelivered to --out. */
static int drain(struct replay *r) {
    int rc = store_outbox_scan(r->store, r->drained, write_out, r, r->err, sizeof(r->err));
    if (r->write_failed || fflush(r->out) != 0) {
        snprintf(r->err, sizeof(r->err), "writing output: %s",
                 strerror(r->write_failed ? r->write_failed : errno));
        return -1;
    }
    return rc ? -1 : 0;
}

static const char *line_buf(const struct replay *r, const struct line *l) {
    if (l->msg) return l->msg->payload ? l->msg->payload : "";
    return r->text + l->off;
}

/* Forget the batch's lines (releasing the Kafka messages). */
static void lines_clear(struct replay *r) {
    for (size_t i = 0; i < r->n; i++)
        if (r->batch[i].msg) rd_kafka_message_destroy(r->batch[i].msg);
    r->n = 0;
    r->tlen = 0;
}

/* Keep one message of the current batch: a line is copied into the batch's
 * text (grown geometrically, reused across batches: no allocation per
 * line), a Kafka message is kept (msg, owned from here on). */
static int replay_add(struct replay *r, const char *buf, size_t len, rd_kafka_message_t *msg,
                      int32_t partition, int64_t no) {
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 1024;
        struct line *b = realloc(r->batch, cap * sizeof(*b));
        if (!b) { snprintf(r->err, sizeof(r->err), "out of memory"); return -1; }
        r->batch = b;
        r->cap = cap;
    }
    if (!msg && r->tlen + len + 1 > r->tcap) {
        size_t cap = r->tcap ? r->tcap : 1 << 20;
        while (cap < r->tlen + len + 1) cap *= 2;
        char *t = realloc(r->text, cap);
        if (!t) { snprintf(r->err, sizeof(r->err), "out of memory"); return -1; }
        r->text = t;
        r->tcap = cap;
    }
    struct line *l = &r->batch[r->n++];
    l->msg = msg;
    l->off = r->tlen;
    l->len = len;
    l->partition = partition;
    l->no = no;
    if (!msg) {
        memcpy(r->text + r->tlen, buf, len);
        r->text[r->tlen + len] = 0;
        r->tlen += len + 1;
    }
    return 0;
}

/* ---- progress ------------------------------------------------------------ */

/* Redraw the progress line when one is due (final: the last one, and a
 * newline).  r->at holds the position; the lines are r->line_no. */
static void show_progress(struct replay *r, int final) {
    if (!r->prog.on) return;
    int64_t now = progress_now_ns();
    if (!final && !progress_due(&r->prog, now)) return;
    r->at.lines = r->line_no > 0 ? (uint64_t)r->line_no : 0;
    if (final) progress_end(&r->prog, &r->at, now);
    else progress_draw(&r->prog, &r->at, now);
}

/* --progress and --no-progress override; else on when stderr is a terminal.
 * The width keeps the line from wrapping (a wrapped line cannot be redrawn). */
static void progress_start(struct replay *r, int want) {
    struct winsize ws;
    int tty = isatty(STDERR_FILENO);
    int width = tty && ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 ? ws.ws_col : 0;
    progress_init(&r->prog, stderr, want >= 0 ? want : tty, width, progress_now_ns());
}

/* ---- file replay: lines come parsed from a reader thread (lineq) ----------- */

static void count(struct store_counters *c, const struct engine_result *res) {
    if (res->outcome == ENG_APPLIED) c->applied++;
    else if (res->outcome == ENG_DUPLICATE) c->duplicates++;
    else c->rejected++;
}

static int txn_begin(struct replay *r) {
    spool_reset(&r->pend);
    memset(r->pend_count, 0, sizeof(r->pend_count));
    memset(&r->cnt, 0, sizeof(r->cnt));
    if (store_begin(r->store, r->err, sizeof(r->err))) return -1;
    store_engine_ops(r->store, &r->ops);
    if (r->drained && store_outbox_delete_upto(r->store, r->drained, r->err, sizeof(r->err))) {
        store_abort(r->store);
        return -1;
    }
    r->txn_open = 1;
    return 0;
}

static void txn_abort(struct replay *r) {
    if (r->txn_open) store_abort(r->store);
    r->txn_open = 0;
}

/* Apply the batch's lines (from their text) in a new transaction, left open;
 * a full map is grown by the store and the lines applied again.  Used for
 * --from-kafka batches and to redo a file batch after the map filled. */
static int redo(struct replay *r) {
    for (;;) {
        txn_abort(r);
        if (txn_begin(r)) return -1;
        int rc = 0;
        for (size_t i = 0; i < r->n && rc == 0; i++) {
            const struct line *l = &r->batch[i];
            struct engine_msg m = {line_buf(r, l), l->len, r->topic, l->partition, l->no};
            struct engine_result res;
            rc = engine_apply(r->eng, &r->ops, &m, &res, r->err, sizeof(r->err));
            if (rc == 0) count(&r->cnt, &res);
        }
        if (rc == 0) return 0;
        if (!store_map_full(r->store)) return -1;
    }
}

/* Apply one parsed line in the open transaction; its text is kept for a redo. */
static int stream_line(struct replay *r, const struct lineq_line *ql) {
    if (replay_add(r, ql->buf, ql->len, NULL, 0, ql->no)) return -1;
    struct engine_msg m = {ql->buf, ql->len, NULL, 0, ql->no};
    struct engine_result res;
    int rc = engine_apply_prepared(r->eng, &r->ops, &m, ql->root, ql->jerr, ql->pre, &res, r->err,
                                 sizeof(r->err));
    if (rc == 0) {
        count(&r->cnt, &res);
        return 0;
    }
    return store_map_full(r->store) ? redo(r) : -1;
}

/* Write the open batch's outputs, then commit it (redoing it if the map
 * fills at commit: the engine is deterministic, so the redo's outputs are
 * the ones already written) and forget its lines. */
static int stream_commit(struct replay *r) {
    for (;;) {
        int rc = store_counters_add(r->store, &r->cnt, r->err, sizeof(r->err));
        if (rc == 0 && deliver_pending(r)) return -1;
        if (rc == 0) {
            rc = store_commit(r->store, r->err, sizeof(r->err)); /* ends the txn either way */
            r->txn_open = 0;
        }
        if (rc == 0) break;
        if (rc != STORE_EMAPFULL && !store_map_full(r->store)) return -1;
        if (redo(r)) return -1;
    }
    r->total.applied += r->cnt.applied;
    r->total.duplicates += r->cnt.duplicates;
    r->total.rejected += r->cnt.rejected;
    lines_clear(r);
    for (int k = 0; k < ENG_OUT_NKIND; k++) r->outputs[k] += r->pend_count[k];
    r->pend_delivered = 0;
    spool_reset(&r->pend);
    return 0;
}

/* --from-kafka: apply messages taken from the parse queue, in order, until
 * at most `keep` are still pending there.  A full map redoes the whole
 * batch from its messages (those still pending included) and empties the
 * queue. */
static int kafka_apply(struct replay *r, size_t keep) {
    struct parseq_item it;
    while (parseq_pending(r->pq) > keep) {
        if (parseq_next(r->pq, &it, r->err, sizeof(r->err)) != 1) return -1;
        if (!r->txn_open && txn_begin(r)) return -1;
        const struct line *l = &r->batch[(size_t)(uintptr_t)it.tag];
        struct engine_msg m = {it.buf, it.len, r->topic, l->partition, l->no};
        struct engine_result res;
        int rc = engine_apply_prepared(r->eng, &r->ops, &m, it.root, it.jerr, it.pre, &res, r->err,
                                     sizeof(r->err));
        if (rc == 0) {
            count(&r->cnt, &res);
            continue;
        }
        if (!store_map_full(r->store)) return -1;
        parseq_reset(r->pq);
        return redo(r);
    }
    return 0;
}

/* --from-kafka: one message into the batch, parsed ahead; a full batch is
 * applied and committed. */
static int kafka_add(struct replay *r, rd_kafka_message_t *m, int32_t p, size_t batch) {
    if (replay_add(r, NULL, m->len, m, p, m->offset)) {
        rd_kafka_message_destroy(m);
        return -1;
    }
    const char *buf = m->payload ? m->payload : "";
    while (!parseq_push(r->pq, buf, m->len, m->offset, (void *)(uintptr_t)(r->n - 1)))
        if (kafka_apply(r, parseq_pending(r->pq) - 1)) return -1;
    if (r->n < batch) return 0;
    return kafka_apply(r, 0) ? -1 : stream_commit(r);
}

/* --from-kafka: what is left of the last batch, committed (ok: no error
 * so far), then the queue and the batch's messages released. */
static int kafka_finish(struct replay *r, int ok) {
    int rc = 0;
    if (ok && r->n) rc = kafka_apply(r, 0);
    if (ok && rc == 0 && r->txn_open) rc = stream_commit(r);
    txn_abort(r);
    parseq_free(r->pq);   /* no parsing thread reads a payload from here on */
    r->pq = NULL;
    lines_clear(r);       /* left after a failure */
    return rc;
}

/* Every file, in batches of `batch` lines per transaction. */
static int replay_files(struct replay *r, char **files, int nfiles, size_t batch) {
    struct lineq *q;
    struct lineq_line l;
    int rc = 0, got = 0;
    r->at.unit = PROGRESS_BYTES;
    r->at.has_total = progress_input_size(files, nfiles, &r->at.total);
    if (lineq_start(&q, files, nfiles, r->has_until, r->until, r->parse_threads, r->err,
                    sizeof(r->err)))
        return -1;
    while (rc == 0 && (got = lineq_next(q, &l, r->err, sizeof(r->err))) == 1) {
        if (!r->txn_open && (rc = txn_begin(r)) != 0) break;
        rc = stream_line(r, &l);
        r->line_no = l.no;
        r->at.done += l.len + 1; /* and its newline (a last line without one: capped at total) */
        if (rc == 0 && r->n >= batch) {
            lineq_ahead(q, 1);   /* the parsing thread fills the ring while we commit */
            rc = stream_commit(r);
            lineq_ahead(q, 0);
        }
        show_progress(r, 0);
    }
    if (rc == 0 && got < 0) rc = -1;
    if (rc == 0 && r->txn_open) rc = stream_commit(r);
    txn_abort(r);
    lineq_stop(q);
    return rc;
}

/* ---- --from-kafka --------------------------------------------------------- */

#define KAFKA_TIMEOUT_MS 10000   /* watermarks of one partition, transient errors retried */
#define KAFKA_MAX_IDLE_MS 60000  /* no message at all for this long: give up */

/* The consumer on the shared client set-up (consumer/kclient.h): its waits
 * end on a fatal error, an authentication failure or all brokers down for a
 * few seconds, with that cause, instead of running into the idle timeout. */
static struct kclient *kafka_open(struct replay *r, const char *bootstrap, const struct config *cfg) {
    static const struct kclient_prop forced[] = {
        {"group.id", "credit-replay"}, /* assign only: never joins, never commits */
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"enable.partition.eof", "true"},
        {"isolation.level", "read_committed"},
        {"auto.offset.reset", "error"},
        {NULL, NULL}};
    struct kclient_spec spec = {.prog = "credit-replay", .role = "kafka consumer",
                                .type = RD_KAFKA_CONSUMER, .cfg = cfg,
                                .bootstrap = bootstrap, .forced = forced,
                                .stop_on = KCLIENT_STOP_AUTH | KCLIENT_STOP_DOWN};
    struct kclient *kc;
    return kclient_new(&kc, &spec, r->err, sizeof(r->err)) ? NULL : kc;
}

/* Offsets [lo, hi) of one partition, captured before reading any. */
struct span {
    int64_t lo, hi;
};

/* Read assigned partition p up to offset sp.hi.  Progress: r->at.done is
 * `base` (the partitions read before) plus the offsets read here. */
static int kafka_read(struct replay *r, struct kclient *kc, int32_t p, struct span sp,
                      uint64_t base, size_t batch) {
    int64_t last_msg = kclient_now_ms(), hi = sp.hi;
    int rc = 0, done = 0;
    while (rc == 0 && !done) {
        if (kclient_failed(kc, r->err, sizeof(r->err))) return -1;
        show_progress(r, 0); /* also while idle: the rate falls */
        rd_kafka_message_t *m = rd_kafka_consumer_poll(kclient_rk(kc), KCLIENT_POLL_MS);
        if (!m) {
            if (kclient_now_ms() - last_msg < KAFKA_MAX_IDLE_MS) continue;
            snprintf(r->err, sizeof(r->err), "kafka %s[%d]: no message for %d s before offset %lld",
                     r->topic, (int)p, KAFKA_MAX_IDLE_MS / 1000, (long long)hi);
            return -1;
        }
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            done = 1;
        } else if (m->err) {
            snprintf(r->err, sizeof(r->err), "kafka %s[%d]: %s", r->topic, (int)p,
                     rd_kafka_message_errstr(m));
            rc = -1;
        } else {
            kclient_alive(kc);
            last_msg = kclient_now_ms();
            r->line_no++;
            if (m->offset >= sp.lo && m->offset < hi) r->at.done = base + (uint64_t)(m->offset + 1 - sp.lo);
            done = m->offset >= hi - 1;
            rc = kafka_add(r, m, p, batch);   /* takes m */
            continue;
        }
        rd_kafka_message_destroy(m);
    }
    return rc;
}

/* One partition from its beginning up to the end seen at start. */
static int kafka_partition(struct replay *r, struct kclient *kc, int32_t p, struct span sp,
                           uint64_t base, size_t batch) {
    if (sp.hi <= sp.lo) return 0;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, r->topic, p)->offset = sp.lo;
    rd_kafka_resp_err_t err = rd_kafka_assign(kclient_rk(kc), l);
    rd_kafka_topic_partition_list_destroy(l);
    if (err) {
        snprintf(r->err, sizeof(r->err), "kafka assign %s[%d]: %s", r->topic, (int)p, rd_kafka_err2str(err));
        return -1;
    }
    int rc = kafka_read(r, kc, p, sp, base, batch);
    err = rd_kafka_assign(kclient_rk(kc), NULL);
    if (err && rc == 0) {
        snprintf(r->err, sizeof(r->err), "kafka unassign %s[%d]: %s", r->topic, (int)p, rd_kafka_err2str(err));
        rc = -1;
    }
    return rc;
}

/* Every partition's [low, high) watermarks, before reading any: the replay
 * reads up to these ends, and the progress line counts against their sum. */
static int kafka_spans(struct replay *r, struct kclient *kc, int32_t n, struct span **out) {
    struct span *sp = calloc(n > 0 ? (size_t)n : 1, sizeof(*sp));
    if (!sp) {
        snprintf(r->err, sizeof(r->err), "out of memory (%d partitions)", (int)n);
        return -1;
    }
    r->at.unit = PROGRESS_MESSAGES;
    r->at.has_total = 1;
    for (int32_t p = 0; p < n; p++) {
        if (kclient_watermarks(kc, r->topic, p, KAFKA_TIMEOUT_MS, &sp[p].lo, &sp[p].hi, r->err,
                               sizeof(r->err))) {
            free(sp);
            return -1;
        }
        if (sp[p].hi > sp[p].lo) r->at.total += (uint64_t)(sp[p].hi - sp[p].lo);
    }
    *out = sp;
    return 0;
}

/* The audit replay of the live log: every partition, kept apart, in
 * partition order (outcomes do not depend on how partitions interleave). */
static int replay_kafka(struct replay *r, const char *bootstrap, const struct config *cfg,
                        size_t batch) {
    int32_t n = 0;
    struct span *sp = NULL;
    uint64_t base = 0;
    if (parseq_new(&r->pq, r->parse_threads, NULL, r->err, sizeof(r->err))) return -1;
    struct kclient *kc = kafka_open(r, bootstrap, cfg);
    if (!kc) return -1;
    int rc = kclient_partition_count(kc, r->topic, KCLIENT_META_TIMEOUT_MS, &n, r->err, sizeof(r->err));
    if (rc == 0) rc = kafka_spans(r, kc, n, &sp);
    for (int32_t p = 0; rc == 0 && p < n; p++) {
        rc = kafka_partition(r, kc, p, sp[p], base, batch);
        if (sp[p].hi > sp[p].lo) base += (uint64_t)(sp[p].hi - sp[p].lo);
        r->at.done = base;
    }
    free(sp);
    if (kafka_finish(r, rc == 0)) rc = -1;   /* the messages go back before the consumer closes */
    kclient_consumer_close(kc, KCLIENT_CLOSE_MS); /* a failure is logged; everything read is committed */
    kclient_destroy(kc);
    return rc ? -1 : 0;
}

/* Final transaction: forget the outbox entries written to --out. */
static int finish(struct replay *r) {
    if (!r->drained) return 0;
    if (store_begin(r->store, r->err, sizeof(r->err))) return -1;
    if (store_outbox_delete_upto(r->store, r->drained, r->err, sizeof(r->err))) {
        store_abort(r->store);
        return -1;
    }
    return store_commit(r->store, r->err, sizeof(r->err)) ? -1 : 0;
}

static int parse_long(const char *s, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

#define MAX_XS 128   /* -X arguments */

struct args {
    struct store_opts so;
    struct engine_config ec;
    const char *out_path, *bootstrap, *topic;
    long long batch, spool_mem, parse_threads;
    char *xs[MAX_XS];            /* the -X arguments, in order */
    int nx, first_file;
    int progress;                /* --progress 1, --no-progress 0, neither -1 (a terminal decides) */
    struct config cfg;           /* --config and -X; engine_config borrows its lists */
};

/* --config FILE (path NULL: none) and the -X arguments: credit.*,
 * sources.*, and for --from-kafka topic.input and kafka.* (a.cfg, the
 * client's pass-through).  0, or 1 after an error. */
static int load_config(struct args *a, const char *path) {
    char err[ERRLEN];
    if (kclient_tool_config(&a->cfg, "credit-replay", path, a->xs, a->nx, err, sizeof(err))) {
        fprintf(stderr, "credit-replay: %s\n", err);
        return 1;
    }
    const struct config *c = &a->cfg;
    a->so.close_after_s = a->ec.close_after_s = c->credit_close_after_s;
    a->so.max_future_s = a->ec.max_future_s = c->credit_max_future_s;
    a->so.retention_days = a->ec.retention_days = c->credit_retention_days;
    a->so.currency = a->ec.currency = c->credit_currency;
    for (int k = 0; k < CONFIG_SOURCES; k++) a->ec.sources[k] = c->sources[k];
    a->topic = c->topic_input;
    a->parse_threads = c->input_parse_threads;
    return 0;
}

/* The options without a value. */
static int is_switch(const char *o) {
    return strcmp(o, "--progress") == 0 || strcmp(o, "--no-progress") == 0;
}

/* Options; 0, or 1 after printing usage.  --config is read first, so every
 * other option overrides the file wherever it stands. */
static int parse_args(int argc, char **argv, struct args *a, struct replay *r) {
    long long v;
    int i;
    const char *config = NULL;
    a->progress = -1;
    a->batch = 1000;
    a->spool_mem = SPOOL_MEM_MAX;
    r->topic = NULL;
    for (i = 1; i + 1 < argc && argv[i][0] == '-' && argv[i][1]; i += is_switch(argv[i]) ? 1 : 2)
        if (strcmp(argv[i], "--config") == 0) {
            if (config) { usage(); return 1; }
            config = argv[i + 1];
        } else if (strcmp(argv[i], "-X") == 0) {
            if (a->nx == MAX_XS) { fprintf(stderr, "credit-replay: more than %d -X\n", MAX_XS); return 1; }
            a->xs[a->nx++] = argv[i + 1];
        }
    if (load_config(a, config)) return 1;
    for (i = 1; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
        const char *o = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (is_switch(o)) {
            a->progress = strcmp(o, "--progress") == 0;
            continue;
        }
        if (!val) { usage(); return 1; }
        i++;
        if (strcmp(o, "--db") == 0) a->so.path = val;
        else if (strcmp(o, "--config") == 0 || strcmp(o, "-X") == 0) {}   /* read above */
        else if (strcmp(o, "--out") == 0) a->out_path = val;
        else if (strcmp(o, "--batch") == 0 && parse_long(val, 1, 1000000, &a->batch) == 0) {}
        else if (strcmp(o, "--close-after") == 0 && parse_long(val, 0, ENGINE_MAX_CLOSE_AFTER, &v) == 0)
            a->so.close_after_s = a->ec.close_after_s = v;
        else if (strcmp(o, "--max-future") == 0 && parse_long(val, 0, GUARD_MAX_FUTURE_MAX, &v) == 0)
            a->so.max_future_s = a->ec.max_future_s = v;
        else if (strcmp(o, "--retention-days") == 0 &&
                 parse_long(val, 0, GUARD_RETENTION_DAYS_MAX, &v) == 0)
            a->so.retention_days = a->ec.retention_days = v;
        else if (strcmp(o, "--currency") == 0) a->so.currency = a->ec.currency = val;
        else if (strcmp(o, "--until") == 0 && time_parse_rfc3339(val, &r->until) == 0) r->has_until = 1;
        else if (strcmp(o, "--from-kafka") == 0) a->bootstrap = val;
        else if (strcmp(o, "--map-size") == 0 && parse_long(val, 65536, INT64_MAX, &v) == 0)
            a->so.map_size = (size_t)v;
        else if (strcmp(o, "--topic") == 0) a->topic = val;
        else if (strcmp(o, "--spool-mem") == 0 && parse_long(val, 0, 1LL << 34, &a->spool_mem) == 0) {}
        else if (strcmp(o, "--parse-threads") == 0 &&
                 parse_long(val, 0, PARSEQ_THREADS_MAX, &a->parse_threads) == 0) {}
        else {
            fprintf(stderr, "credit-replay: bad option or value: %s %s\n", o, val);
            usage();
            return 1;
        }
    }
    a->first_file = i;
    if (a->bootstrap) r->topic = a->topic;
    r->parse_threads = (int)a->parse_threads;
    if (!a->so.path || (a->bootstrap ? i < argc : i >= argc)) { usage(); return 1; }
    return 0;
}

static void free_args(struct args *a) { config_free(&a->cfg); }

int main(int argc, char **argv) {
    struct replay r;
    struct args a;
    memset(&r, 0, sizeof(r));
    memset(&a, 0, sizeof(a));
    jarena_install();   /* first, on the only thread: the parsing threads' trees in arenas */
    config_init(&a.cfg);
    int bad = parse_args(argc, argv, &a, &r);
    if (bad) {
        free_args(&a);
        return 1;
    }
    char mdb[4200];
    snprintf(mdb, sizeof(mdb), "%s/data.mdb", a.so.path);
    if (a.bootstrap && access(mdb, F_OK) == 0) {
        fprintf(stderr, "credit-replay: --from-kafka replays into a fresh store; %s exists\n", mdb);
        return 1;
    }
    /* The store first: a second writer refused by its lock must not have
     * truncated the first one's --out already. */
    if (engine_new(&r.eng, &a.ec, r.err, sizeof(r.err)) ||
        store_open(&r.store, &a.so, r.err, sizeof(r.err)) ||
        spool_init(&r.pend, a.so.path, (size_t)a.spool_mem, r.err, sizeof(r.err))) {
        fprintf(stderr, "credit-replay: %s\n", r.err);
        return 2;
    }
    r.out = stdout;
    if (a.out_path && !(r.out = fopen(a.out_path, "w"))) {
        fprintf(stderr, "credit-replay: %s: %s\n", a.out_path, strerror(errno));
        return 2;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    progress_start(&r, a.progress);
    int rc = drain(&r); /* anything a previous run left undelivered comes first */
    store_set_emit_hook(r.store, hold_out, &r);
    if (rc == 0 && a.bootstrap) rc = replay_kafka(&r, a.bootstrap, &a.cfg, (size_t)a.batch);
    if (rc == 0 && !a.bootstrap)
        rc = replay_files(&r, argv + a.first_file, argc - a.first_file, (size_t)a.batch);
    if (rc >= 0) rc = finish(&r);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    show_progress(&r, 1); /* its last line and a newline: the messages below start a line */
    if (rc < 0) fprintf(stderr, "credit-replay: %s\n", r.err);
    if (a.out_path && fclose(r.out) != 0 && rc >= 0) {
        fprintf(stderr, "credit-replay: %s: %s\n", a.out_path, strerror(errno));
        rc = -1;
    }
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    fprintf(stderr,
            "credit-replay: %lld lines: %llu applied, %llu duplicates, %llu rejected; "
            "outputs: %llu overage, %llu ledger, %llu rejected, %llu alert; %.3f s (%.0f events/s)\n",
            (long long)r.line_no, (unsigned long long)r.total.applied,
            (unsigned long long)r.total.duplicates, (unsigned long long)r.total.rejected,
            (unsigned long long)r.outputs[ENG_OUT_OVERAGE],
            (unsigned long long)r.outputs[ENG_OUT_LEDGER],
            (unsigned long long)r.outputs[ENG_OUT_REJECTED],
            (unsigned long long)r.outputs[ENG_OUT_ALERT], s,
            s > 0 ? (double)r.line_no / s : 0.0);
    free(r.batch);
    free(r.text);
    spool_free(&r.pend);
    engine_free(r.eng);
    store_close(r.store);
    free_args(&a);
    return rc < 0 ? 2 : 0;
}
