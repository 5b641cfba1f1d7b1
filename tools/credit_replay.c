/* credit-replay -- the audit tool: apply a JSON Lines event log to a store
 * and write every output event, in emission order, as JSON Lines.
 *
 *   credit-replay --db DIR [--out FILE] [--batch N] [--until TIME]
 *                 [--close-after S] [--currency C] FILE...
 *
 * Lines are applied in order as partition 0 (line numbers count across all
 * files, from 1), committed in batches of N.  A batch's outputs are held in
 * memory and written to --out once the batch has committed (the store's
 * outbox is not used: the file is the delivery).  Exit 0 when all input was
 * processed, 1 on bad usage, 2 on I/O or store errors. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/engine.h"
#include "engine/timeutil.h"
#include "store/store.h"

#define ERRLEN 512

struct line { char *buf; size_t len; int64_t no; };

struct replay {
    struct store *store;
    struct engine *eng;
    FILE *out;
    struct line *batch;
    size_t n, cap;
    uint64_t drained;             /* outbox entries up to here are written */
    int64_t line_no;
    int has_until;
    int64_t until;
    struct store_counters total;
    uint64_t outputs[3];
    char *pend;                   /* outputs of the batch being applied */
    size_t pend_len, pend_cap;
    uint64_t pend_count[3];
    char err[ERRLEN];
};

static void usage(void) {
    fprintf(stderr, "usage: credit-replay --db DIR [--out FILE] [--batch N] [--until TIME]\n"
                    "                     [--close-after SECONDS] [--currency CODE] FILE...\n"
                    "  FILE is JSON Lines, one CloudEvent per line; - reads stdin.\n");
}

static int write_out(void *arg, uint64_t seq, enum eng_out_kind kind, const char *key,
                     const char *json, size_t len) {
    struct replay *r = arg;
    (void)key;
    if (fwrite(json, 1, len, r->out) != len || fputc('\n', r->out) == EOF) return 1;
    r->drained = seq;
    r->outputs[kind]++;
    return 0;
}

/* Store hook: keep an output of the current batch in memory. */
static int hold_out(void *arg, enum eng_out_kind kind, const char *key, const char *json,
                    size_t len) {
    struct replay *r = arg;
    (void)key;
    if (r->pend_len + len + 1 > r->pend_cap) {
        size_t cap = r->pend_cap ? r->pend_cap : 1 << 20;
        while (cap < r->pend_len + len + 1) cap *= 2;
        char *p = realloc(r->pend, cap);
        if (!p) return -1;
        r->pend = p;
        r->pend_cap = cap;
    }
    memcpy(r->pend + r->pend_len, json, len);
    r->pend[r->pend_len + len] = '\n';
    r->pend_len += len + 1;
    r->pend_count[kind]++;
    return 0;
}

/* After a commit: write the batch's outputs. */
static int write_pending(struct replay *r) {
    if (fwrite(r->pend, 1, r->pend_len, r->out) != r->pend_len || fflush(r->out) != 0) {
        snprintf(r->err, sizeof(r->err), "writing output: %s", strerror(errno));
        return -1;
    }
    for (int k = 0; k < 3; k++) r->outputs[k] += r->pend_count[k];
    return 0;
}

/* Write outbox entries a previous run left undelivered to --out. */
static int drain(struct replay *r) {
    int rc = store_outbox_scan(r->store, r->drained, write_out, r, r->err, sizeof(r->err));
    if (rc == 1 || fflush(r->out) != 0) {
        snprintf(r->err, sizeof(r->err), "writing output: %s", strerror(errno));
        return -1;
    }
    return rc ? -1 : 0;
}

/* Apply the batch in one transaction; a full map is grown and the batch
 * retried from its first line. */
static int apply_batch(struct replay *r) {
    for (;;) {
        struct store_counters c = {0, 0, 0};
        struct engine_store ops;
        r->pend_len = 0;
        memset(r->pend_count, 0, sizeof(r->pend_count));
        int rc = store_begin(r->store, r->err, sizeof(r->err));
        if (rc) return -1;
        store_engine_ops(r->store, &ops);
        if (r->drained) rc = store_outbox_delete_upto(r->store, r->drained, r->err, sizeof(r->err));
        for (size_t i = 0; i < r->n && rc == 0; i++) {
            struct engine_msg m = {r->batch[i].buf, r->batch[i].len, NULL, 0, r->batch[i].no};
            struct engine_result res;
            rc = engine_apply(r->eng, &ops, &m, &res, r->err, sizeof(r->err));
            if (res.outcome == ENG_APPLIED) c.applied++;
            else if (res.outcome == ENG_DUPLICATE) c.duplicates++;
            else c.rejected++;
        }
        if (rc == 0) rc = store_counters_add(r->store, &c, r->err, sizeof(r->err));
        if (rc == 0) rc = store_commit(r->store, r->err, sizeof(r->err));
        else if (store_map_full(r->store)) { store_abort(r->store); rc = STORE_EMAPFULL; }
        else store_abort(r->store);
        if (rc == STORE_EMAPFULL) continue;
        if (rc) return -1;
        r->total.applied += c.applied;
        r->total.duplicates += c.duplicates;
        r->total.rejected += c.rejected;
        break;
    }
    for (size_t i = 0; i < r->n; i++) free(r->batch[i].buf);
    r->n = 0;
    return write_pending(r);
}

/* Read one file; 1 when --until stopped the replay. */
static int replay_file(struct replay *r, const char *path, size_t batch) {
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!f) {
        snprintf(r->err, sizeof(r->err), "%s: %s", path, strerror(errno));
        return -1;
    }
    char *buf = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0;
    while (rc == 0 && (len = getline(&buf, &cap, f)) >= 0) {
        if (len > 0 && buf[len - 1] == '\n') len--;
        int64_t t;
        if (r->has_until && engine_peek_time(buf, (size_t)len, &t) == 0 && t > r->until) {
            rc = 1;
            break;
        }
        if (r->n == r->cap) {
            r->cap = r->cap ? r->cap * 2 : 1024;
            r->batch = realloc(r->batch, r->cap * sizeof(*r->batch));
            if (!r->batch) { snprintf(r->err, sizeof(r->err), "out of memory"); rc = -1; break; }
        }
        struct line *l = &r->batch[r->n++];
        l->buf = malloc((size_t)len + 1);
        if (!l->buf) { snprintf(r->err, sizeof(r->err), "out of memory"); rc = -1; break; }
        memcpy(l->buf, buf, (size_t)len);
        l->buf[len] = 0;
        l->len = (size_t)len;
        l->no = ++r->line_no;
        if (r->n >= batch) rc = apply_batch(r);
    }
    if (rc == 0 && ferror(f)) {
        snprintf(r->err, sizeof(r->err), "%s: read error: %s", path, strerror(errno));
        rc = -1;
    }
    free(buf);
    if (f != stdin) fclose(f);
    return rc;
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

int main(int argc, char **argv) {
    struct replay r;
    memset(&r, 0, sizeof(r));
    struct store_opts so = {0};
    struct engine_config ec = {0, "EUR"};
    const char *out_path = NULL;
    long long batch = 1000, v;
    int i;
    so.currency = "EUR";
    for (i = 1; i < argc && strncmp(argv[i], "--", 2) == 0 && argv[i][2]; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!val) { usage(); return 1; }
        i++;
        if (strcmp(a, "--db") == 0) so.path = val;
        else if (strcmp(a, "--out") == 0) out_path = val;
        else if (strcmp(a, "--batch") == 0 && parse_long(val, 1, 1000000, &batch) == 0) {}
        else if (strcmp(a, "--close-after") == 0 && parse_long(val, 0, ENGINE_MAX_CLOSE_AFTER, &v) == 0)
            so.close_after_s = ec.close_after_s = v;
        else if (strcmp(a, "--currency") == 0) so.currency = ec.currency = val;
        else if (strcmp(a, "--until") == 0 && time_parse_rfc3339(val, &r.until) == 0) r.has_until = 1;
        else {
            fprintf(stderr, "credit-replay: bad option or value: %s %s\n", a, val);
            usage();
            return 1;
        }
    }
    if (!so.path || i >= argc) { usage(); return 1; }
    r.out = stdout;
    if (out_path && !(r.out = fopen(out_path, "w"))) {
        fprintf(stderr, "credit-replay: %s: %s\n", out_path, strerror(errno));
        return 2;
    }
    if (engine_new(&r.eng, &ec, r.err, sizeof(r.err)) ||
        store_open(&r.store, &so, r.err, sizeof(r.err))) {
        fprintf(stderr, "credit-replay: %s\n", r.err);
        return 2;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = drain(&r); /* anything a previous run left undelivered comes first */
    store_set_emit_hook(r.store, hold_out, &r);
    for (; rc == 0 && i < argc; i++) rc = replay_file(&r, argv[i], (size_t)batch);
    if (rc >= 0 && r.n) rc = apply_batch(&r);
    if (rc >= 0) rc = finish(&r);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (rc < 0) fprintf(stderr, "credit-replay: %s\n", r.err);
    if (out_path && fclose(r.out) != 0 && rc >= 0) {
        fprintf(stderr, "credit-replay: %s: %s\n", out_path, strerror(errno));
        rc = -1;
    }
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    fprintf(stderr,
            "credit-replay: %lld lines: %llu applied, %llu duplicates, %llu rejected; "
            "outputs: %llu overage, %llu ledger, %llu rejected; %.3f s (%.0f events/s)\n",
            (long long)r.line_no, (unsigned long long)r.total.applied,
            (unsigned long long)r.total.duplicates, (unsigned long long)r.total.rejected,
            (unsigned long long)r.outputs[ENG_OUT_OVERAGE],
            (unsigned long long)r.outputs[ENG_OUT_LEDGER],
            (unsigned long long)r.outputs[ENG_OUT_REJECTED], s,
            s > 0 ? (double)r.line_no / s : 0.0);
    for (size_t k = 0; k < r.n; k++) free(r.batch[k].buf);
    free(r.batch);
    free(r.pend);
    engine_free(r.eng);
    store_close(r.store);
    return rc < 0 ? 2 : 0;
}
