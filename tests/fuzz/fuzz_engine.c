/* fuzz_engine.c -- libFuzzer harness for the credit engine (issue 6).
 *
 * The input bytes are JSON Lines: split on '\n' (a last line without '\n'
 * counts), each line is one message.  A line "@D rest" (D a digit) is the
 * message "rest" on partition D of topic "fuzz.in"; any other line is file
 * replay on partition 0 (topic NULL), so wrong_partition and both reject-id
 * forms are reachable.  The offset is the 1-based line number.
 *
 * Every message goes through engine_apply twice: over the in-memory store
 * (tests/unit/memstore.c) and over the LMDB store (store/store.h).  After each
 * message the harness checks, and traps on a violation (fuzz_check.h):
 *   - engine_apply returned 0 (a store error on any input is a bug);
 *   - both stores gave the same outcome and byte-identical outputs, in order
 *     ("differential"); at the end of the input, the same state;
 *   - every output is valid UTF-8 JSON that jansson reads back as an object
 *     with the CloudEvents fields of its type (fuzz_check.c);
 *   - accounting: a duplicate emits nothing, a reject exactly one
 *     credit.rejected naming its reason, an applied message none; applied +
 *     duplicate + rejected == lines fed;
 *   - invalid_json only for text that is not JSON: a number out of range is
 *     invalid_event naming the field (semantics §2);
 *   - balances: V >= 0 and every P >= 0, 0 without a credit; output
 *     sequences have no gaps; a changed V or P is explained by the event's
 *     ledger entries (the last one shows the stored balance);
 *   - allocations (§3, §4): the sum of project credits of an organisation
 *     rises only through an applied project_credit.set whose allocation
 *     entry is positive, and only up to V (V may later fall below the sum,
 *     by minimums, sets, adjusts or shared draws: that is allowed).
 *
 * Reset: each input runs inside one LMDB write transaction that is aborted
 * at its end, and a fresh memstore; so inputs are independent and the store
 * directory (a temp dir, MDB_NOSYNC) is created once per process.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"
#include "store/store.h"
#include "tests/fuzz/fuzz_check.h"
#include "tests/unit/memstore.h"

#define FZ_TOPIC "fuzz.in"

struct fz_out {
    enum eng_out_kind kind;
    char *key;
    char *json;
    size_t len;
};

/* What the checks know about one organisation during one message: its
 * state before the message, updated by the message's outputs. */
struct fz_org {
    char id[ENG_ID_MAX + 1];
    int64_t v0, sump0;        /* V and sum of P before */
    uint64_t seq[ENG_OUT_NKIND]; /* last sequence used per kind (rejected unused): before,
                                  * then per output */
    int ledger;               /* a ledger output named it */
    int64_t last_orgbal;      /* org_balance of the last one */
    int raised;               /* an allocation entry with delta > 0 */
    int64_t proj_refund;      /* sum of refunds to project accounts (§13): they raise P
                                 and V together */
};

/* The balance a project account showed in its last ledger entry. */
struct fz_proj {
    char org[ENG_ID_MAX + 1], project[ENG_ID_MAX + 1];
    int64_t balance;
};

/* One input. */
struct fz_run {
    struct memstore ms;
    struct engine_store mops;
    struct fz_org *orgs;
    size_t norgs, caporgs;
    struct fz_proj *projs;
    size_t nprojs, capprojs;
    unsigned long fed, applied, duplicates, rejected;
};

/* Process-wide context: libFuzzer's entry points take no argument.  Set up
 * once by LLVMFuzzerInitialize, torn down at exit. */
static struct {
    char dir[64];
    struct store *st;
    struct engine_store lops;
    struct engine *em, *el;          /* over the memstore, over LMDB */
    struct fz_out *lout;             /* LMDB's outputs of the current message */
    size_t nlout, caplout;
} G;

static void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "fuzz_engine: out of memory\n");
        abort();
    }
    return q;
}

#define GROW(arr, n, cap)                                                    \
    do {                                                                     \
        if ((n) == (cap)) {                                                  \
            (cap) = (cap) ? 2 * (cap) : 8;                                   \
            (arr) = xrealloc((arr), (cap) * sizeof(*(arr)));                 \
        }                                                                    \
    } while (0)

/* store_emit_fn: keep the LMDB store's outputs of the current message. */
static int lmdb_emit(void *arg, enum eng_out_kind kind, const char *key, const char *json,
                     size_t len) {
    (void)arg;
    GROW(G.lout, G.nlout, G.caplout);
    struct fz_out *o = &G.lout[G.nlout++];
    o->kind = kind;
    o->key = key ? strdup(key) : NULL;
    o->json = xrealloc(NULL, len + 1);
    memcpy(o->json, json, len);
    o->json[len] = 0;
    o->len = len;
    return 0;
}

static void clear_outputs(struct fz_run *r) {
    for (size_t i = 0; i < G.nlout; i++) {
        free(G.lout[i].key);
        free(G.lout[i].json);
    }
    G.nlout = 0;
    for (size_t i = 0; i < r->ms.nout; i++) {
        free(r->ms.out[i].key);
        free(r->ms.out[i].json);
    }
    r->ms.nout = 0;
}

static void cleanup(void) {
    engine_free(G.em);
    engine_free(G.el);
    if (G.st) store_close(G.st);
    free(G.lout);
    if (G.dir[0]) {
        char p[128];
        snprintf(p, sizeof(p), "%s/store/data.mdb", G.dir);
        unlink(p);
        snprintf(p, sizeof(p), "%s/store/lock.mdb", G.dir);
        unlink(p);
        snprintf(p, sizeof(p), "%s/store", G.dir);
        rmdir(p);
        rmdir(G.dir);
    }
    fz_known_open_report();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    char err[512], path[96];
    const char *tmp = getenv("TMPDIR");
    snprintf(G.dir, sizeof(G.dir), "%s/fuzz_engine.XXXXXX", tmp && strlen(tmp) < 40 ? tmp : "/tmp");
    if (!mkdtemp(G.dir)) {
        perror("fuzz_engine: mkdtemp");
        exit(1);
    }
    atexit(cleanup);
    snprintf(path, sizeof(path), "%s/store", G.dir);
    /* the §11 time guard on at its default, and retention_days 1 (§14):
     * time_in_future, too_late and expired keys judged as new are reachable
     * with short inputs, on both stores. */
    struct store_opts so = {.path = path, .nosync = 1, .close_after_s = 0, .currency = "EUR",
                            .max_future_s = 2678400, .retention_days = 1};
    struct engine_config cfg = {.close_after_s = 0, .currency = "EUR", .max_future_s = 2678400,
                                .retention_days = 1};
    if (store_open(&G.st, &so, err, sizeof(err)) || engine_new(&G.em, &cfg, err, sizeof(err)) ||
        engine_new(&G.el, &cfg, err, sizeof(err))) {
        fprintf(stderr, "fuzz_engine: set-up: %s\n", err);
        exit(1);
    }
    store_set_emit_hook(G.st, lmdb_emit, NULL);
    store_engine_ops(G.st, &G.lops);
    fz_known_open_set(getenv("FUZZ_KNOWN_OPEN"));
    return 0;
}

/* ---- per-message bookkeeping ---------------------------------------------- */

static struct fz_org *find_org(struct fz_run *r, const char *id) {
    for (size_t i = 0; i < r->norgs; i++)
        if (strcmp(r->orgs[i].id, id) == 0) return &r->orgs[i];
    return NULL;
}

/* The tracking entry of org id; a new org starts at zero. */
static struct fz_org *track_org(struct fz_run *r, const char *id) {
    struct fz_org *t = find_org(r, id);
    if (t) return t;
    GROW(r->orgs, r->norgs, r->caporgs);
    t = &r->orgs[r->norgs++];
    memset(t, 0, sizeof(*t));
    snprintf(t->id, sizeof(t->id), "%s", id);
    return t;
}

/* Sum of the project credits of o; traps if it overflows (each raise is
 * checked against V, so it never can). */
static int64_t sum_projects(const struct eng_org *o) {
    int64_t sum = 0;
    for (size_t i = 0; i < o->nproj; i++)
        if (o->proj[i].has_credit && __builtin_add_overflow(sum, o->proj[i].value, &sum))
            fz_violation("allocation", "org %s: sum of project credits overflows", o->id);
    return sum;
}

/* Record every org's state before the message. */
static void snapshot(struct fz_run *r) {
    r->norgs = r->nprojs = 0;
    for (size_t i = 0; i < r->ms.norgs; i++) {
        const struct eng_org *o = &r->ms.orgs[i];
        GROW(r->orgs, r->norgs, r->caporgs);
        struct fz_org *t = &r->orgs[r->norgs++]; /* memstore ids are unique */
        memset(t, 0, sizeof(*t));
        memcpy(t->id, o->id, sizeof(t->id));
        t->v0 = o->value;
        t->sump0 = sum_projects(o);
        t->seq[0] = o->seq[0];
        t->seq[1] = o->seq[1];
        t->seq[ENG_OUT_ALERT] = o->alert_seq;
    }
}

static void note_project(struct fz_run *r, const char *org, const char *project, int64_t bal) {
    for (size_t i = 0; i < r->nprojs; i++)
        if (strcmp(r->projs[i].org, org) == 0 && strcmp(r->projs[i].project, project) == 0) {
            r->projs[i].balance = bal;
            return;
        }
    GROW(r->projs, r->nprojs, r->capprojs);
    struct fz_proj *p = &r->projs[r->nprojs++];
    snprintf(p->org, sizeof(p->org), "%s", org);
    snprintf(p->project, sizeof(p->project), "%s", project);
    p->balance = bal;
}

/* Fold one checked output into the tracking: sequences without gaps, the
 * last balances shown.  root was checked by fz_check_output. */
static void note_output(struct fz_run *r, enum eng_out_kind kind, json_t *root) {
    json_t *d = json_object_get(root, "data");
    if (kind == ENG_OUT_REJECTED) return;
    struct fz_org *t = track_org(r, fz_str(d, "org"));
    uint64_t seq = (uint64_t)json_integer_value(json_object_get(d, "seq"));
    if (seq != t->seq[kind] + 1)
        fz_violation("sequence", "org %s: output seq %" PRIu64 " after %" PRIu64, t->id, seq,
                     t->seq[kind]);
    t->seq[kind] = seq;
    if (kind != ENG_OUT_LEDGER) return;
    int64_t delta, bal;
    fz_money_parse(fz_str(d, "org_balance"), &t->last_orgbal);
    fz_money_parse(fz_str(d, "delta"), &delta);
    fz_money_parse(fz_str(d, "balance"), &bal);
    t->ledger = 1;
    if (strcmp(fz_str(d, "entry"), "allocation") == 0 && delta > 0) t->raised = 1;
    if (strcmp(fz_str(d, "entry"), "refund") == 0 && strcmp(fz_str(d, "account"), "project") == 0 &&
        __builtin_add_overflow(t->proj_refund, delta, &t->proj_refund))
        fz_violation("ledger_explains", "org %s: project refunds overflow", t->id);
    if (strcmp(fz_str(d, "account"), "project") == 0)
        note_project(r, t->id, fz_str(d, "project"), bal);
}

/* ---- checks after one message ---------------------------------------------- */

/* Balances, sequences and allocations of org o after the message. */
static void check_org(struct fz_run *r, const struct eng_org *o, int applied) {
    struct fz_org *t = track_org(r, o->id);
    if (o->value < 0 || (!o->has_credit && o->value != 0))
        fz_violation("balance", "org %s: V = %" PRId64 " (has credit: %d)", o->id, o->value,
                     o->has_credit);
    for (size_t i = 0; i < o->nproj; i++) {
        const struct eng_project *p = &o->proj[i];
        if (p->value < 0 || (!p->has_credit && p->value != 0))
            fz_violation("balance", "org %s project %s: P = %" PRId64 " (has credit: %d)", o->id,
                         p->id, p->value, p->has_credit);
    }
    if (o->seq[0] != t->seq[0] || o->seq[1] != t->seq[1] || o->alert_seq != t->seq[ENG_OUT_ALERT])
        fz_violation("sequence", "org %s: stored sequences %" PRIu64 "/%" PRIu64 "/%" PRIu64
                     ", outputs used %" PRIu64 "/%" PRIu64 "/%" PRIu64, o->id, o->seq[0],
                     o->seq[1], o->alert_seq, t->seq[0], t->seq[1], t->seq[ENG_OUT_ALERT]);
    if (o->value != t->v0 && !t->ledger)
        fz_violation("ledger_explains", "org %s: V went from %" PRId64 " to %" PRId64
                     " without a ledger entry", o->id, t->v0, o->value);
    if (t->ledger && t->last_orgbal != o->value)
        fz_violation("ledger_explains", "org %s: last ledger org_balance %" PRId64
                     ", stored V %" PRId64, o->id, t->last_orgbal, o->value);
    int64_t sump = sum_projects(o);
    /* a void's project refunds raise the sum by their total (V with it) */
    int refund_ok = applied && t->proj_refund > 0 && sump - t->sump0 <= t->proj_refund;
    if (sump > t->sump0 && !refund_ok && (!applied || !t->raised || sump > o->value))
        fz_violation("allocation", "org %s: project credits rose from %" PRId64 " to %" PRId64
                     " with V %" PRId64 " (%s)", o->id, t->sump0, sump, o->value,
                     !applied ? "message not applied" :
                     !t->raised ? "no positive allocation entry" : "above V");
}

static void check_state(struct fz_run *r, int applied) {
    for (size_t i = 0; i < r->ms.norgs; i++) check_org(r, &r->ms.orgs[i], applied);
    for (size_t i = 0; i < r->nprojs; i++) {
        const struct fz_proj *fp = &r->projs[i];
        struct eng_org *o = memstore_org(&r->ms, fp->org);
        struct eng_project *p = o ? eng_org_find_project(o, fp->project) : NULL;
        /* A project left with neither credit nor months is gone from the
         * store (memstore as LMDB): its P is 0. */
        int64_t stored = p ? p->value : 0;
        if (!o || stored != fp->balance)
            fz_violation("ledger_explains", "org %s project %s: last ledger balance %" PRId64
                         ", stored %" PRId64 "%s", fp->org, fp->project, fp->balance, stored,
                         p ? "" : " (project gone)");
    }
}

/* Each output (as LMDB emitted it: exact bytes), and the accounting of the
 * message's outcome. */
static void check_outputs(struct fz_run *r, const struct fz_line *l, const struct engine_result *res) {
    size_t nrej = 0;
    for (size_t i = 0; i < G.nlout; i++) {
        const struct fz_out *o = &G.lout[i];
        int first_rej = o->kind == ENG_OUT_REJECTED && nrej++ == 0;
        json_t *root = fz_check_output(l, o->kind, o->key, o->json, o->len);
        if (!root) continue; /* unreadable, and tolerated as a known open bug */
        const char *reason = fz_str(json_object_get(root, "data"), "reason");
        if (first_rej &&
            (res->outcome != ENG_REJECTED || !reason || strcmp(reason, event_reason_name(res->reason))))
            fz_violation("accounting", "line %" PRId64 ": credit.rejected says %s, the outcome is"
                         " %d reason %s", l->offset, reason, res->outcome,
                         event_reason_name(res->reason));
        note_output(r, o->kind, root);
        json_decref(root);
    }
    int ok = res->outcome == ENG_APPLIED ? nrej == 0
           : res->outcome == ENG_DUPLICATE ? G.nlout == 0
           : res->outcome == ENG_REJECTED ? nrej == 1 && res->reason != ENG_R_NONE : 0;
    if (!ok)
        fz_violation("accounting", "line %" PRId64 ": outcome %d reason %d with %zu outputs, %zu"
                     " credit.rejected", l->offset, res->outcome, res->reason, G.nlout, nrej);
    r->applied += res->outcome == ENG_APPLIED;
    r->duplicates += res->outcome == ENG_DUPLICATE;
    r->rejected += res->outcome == ENG_REJECTED;
}

/* Would the text parse if every number out of jansson's range were an
 * in-range one?  (Each such lexeme is replaced by "0" padded with spaces,
 * at most 64 times.)  1 yes, 0 no. */
static int parses_with_small_numbers(const char *buf, size_t len) {
    char *c = malloc(len ? len : 1);
    json_error_t e;
    json_t *root = NULL;
    if (!c) return 0;
    memcpy(c, buf, len);
    for (int i = 0; i < 64 && !(root = json_loadb(c, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &e)); i++) {
        if (json_error_code(&e) != json_error_numeric_overflow || e.position <= 0) break;
        size_t end = (size_t)e.position > len ? len : (size_t)e.position, start = end;
        while (start > 0 && strchr("0123456789+-.eE", c[start - 1]) && c[start - 1]) start--;
        if (start == end) break;
        c[start] = '0';
        memset(c + start + 1, ' ', end - start - 1);
    }
    json_decref(root);
    free(c);
    return root != NULL;
}

/* invalid_json only for text that is not JSON (§2: a value out of range is
 * invalid_event naming the field). */
static void check_invalid_json(const struct fz_line *l, const struct engine_result *res) {
    if (res->outcome != ENG_REJECTED || res->reason != ENG_R_INVALID_JSON) return;
    json_error_t jerr;
    json_t *root = json_loadb(l->buf, l->len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    json_decref(root);
    if (root)
        fz_violation("invalid_json", "line %" PRId64 ": rejected invalid_json, but it parses",
                     l->offset);
    else if (json_error_code(&jerr) == json_error_numeric_overflow &&
             !memmem(l->buf, l->len, "\\u0000", 6) && parses_with_small_numbers(l->buf, l->len))
        fz_violation("json_number_range", "line %" PRId64 ": rejected invalid_json for a number"
                     " out of range (%s): semantics §2 says invalid_event naming the field",
                     l->offset, jerr.text);
}

/* Both stores: same outcome, byte-identical outputs in the same order. */
static void check_same(const struct fz_run *r, const struct fz_line *l,
                       const struct engine_result *a, const struct engine_result *b) {
    if (a->outcome != b->outcome || a->reason != b->reason)
        fz_violation("differential", "line %" PRId64 ": memstore outcome %d/%d, LMDB %d/%d",
                     l->offset, a->outcome, a->reason, b->outcome, b->reason);
    if (r->ms.nout != G.nlout)
        fz_violation("differential", "line %" PRId64 ": memstore %zu outputs, LMDB %zu",
                     l->offset, r->ms.nout, G.nlout);
    for (size_t i = 0; i < G.nlout; i++) {
        const struct memstore_out *m = &r->ms.out[i];
        const struct fz_out *o = &G.lout[i];
        int same_key = m->key && o->key ? strcmp(m->key, o->key) == 0 : m->key == o->key;
        if (m->kind != o->kind || !same_key || strlen(m->json) != o->len ||
            memcmp(m->json, o->json, o->len))
            fz_violation("differential", "line %" PRId64 " output %zu:\n memstore %s\n LMDB     %s",
                         l->offset, i, m->json, o->json);
    }
}

/* ---- end of input: the two stores hold the same state ---------------------- */

static const char *terms_diff(const struct eng_terms *a, const struct eng_terms *b) {
    if (a->logic != b->logic || a->grace != b->grace || a->apply_min != b->apply_min ||
        a->reserve != b->reserve || a->use_org_credit != b->use_org_credit ||
        a->mark_unused != b->mark_unused)
        return "terms flags";
    if (a->end_month != b->end_month) return "terms end_month";
    return a->expected != b->expected ? "terms expected" : NULL;
}

static const char *acct_diff(const struct eng_acct *a, int na, const struct eng_acct *b, int nb) {
    if (na != nb) return "month count";
    for (int i = 0; i < na; i++)
        if (a[i].month != b[i].month || a[i].consumed != b[i].consumed) return "month consumption";
    return NULL;
}

/* A project the LMDB store keeps: one with a credit or with consumption
 * (memstore also keeps ended ones with neither). */
static int kept(const struct eng_project *p) { return p->has_credit || p->nacct > 0; }

static const char *proj_diff(const struct eng_org *a, const struct eng_org *b) {
    size_t i = 0, j = 0;
    for (;; i++, j++) {
        while (i < a->nproj && !kept(&a->proj[i])) i++;
        while (j < b->nproj && !kept(&b->proj[j])) j++;
        if (i == a->nproj || j == b->nproj) return i == a->nproj && j == b->nproj ? NULL : "projects";
        const struct eng_project *p = &a->proj[i], *q = &b->proj[j];
        if (strcmp(p->id, q->id) || p->has_credit != q->has_credit || p->value != q->value)
            return "project credit";
        const char *d = p->has_credit ? terms_diff(&p->terms, &q->terms) : NULL;
        if (d || (d = acct_diff(p->acct, p->nacct, q->acct, q->nacct))) return d;
    }
}

static const char *org_diff(const struct eng_org *a, const struct eng_org *b) {
    if (a->partition != b->partition || a->watermark != b->watermark ||
        a->open_month != b->open_month)
        return "partition, watermark or open month";
    if (a->seq[0] != b->seq[0] || a->seq[1] != b->seq[1]) return "sequences";
    if (a->has_credit != b->has_credit || a->value != b->value) return "credit";
    if (a->has_credit) {
        const char *d = terms_diff(&a->terms, &b->terms);
        if (d) return d;
        if (a->noff != b->noff) return "offerings";
        for (int i = 0; i < a->noff; i++)
            if (strcmp(a->off[i], b->off[i])) return "offerings";
    }
    const char *d = acct_diff(a->acct, a->nacct, b->acct, b->nacct);
    return d ? d : proj_diff(a, b);
}

static int count_org(void *arg, const struct eng_org *o) {
    (void)o;
    ++*(size_t *)arg;
    return 0;
}

static void compare_stores(struct fz_run *r) {
    char err[512];
    size_t n = 0;
    struct eng_org lo;
    if (store_scan_orgs(G.st, count_org, &n, err, sizeof(err)))
        fz_violation("store_error", "scan orgs: %s", err);
    if (n != r->ms.norgs)
        fz_violation("differential_state", "memstore has %zu orgs, LMDB %zu", r->ms.norgs, n);
    eng_org_init(&lo);
    for (size_t i = 0; i < r->ms.norgs; i++) {
        const struct eng_org *m = &r->ms.orgs[i];
        int rc = store_get_org(G.st, m->id, &lo, err, sizeof(err));
        const char *d = rc ? "missing in LMDB" : org_diff(m, &lo);
        if (rc < 0) fz_violation("store_error", "get org %s: %s", m->id, err);
        if (d) fz_violation("differential_state", "org %s: %s differs", m->id, d);
    }
    eng_org_free(&lo);
}

/* ---- one message, one input ------------------------------------------------ */

/* Known open bug "key_add_bound": an org event whose id, source and data.org
 * are all at their maximum aborts in engine.c key_add.  While it is open the
 * fuzzer skips such lines (see fuzz_check.h). */
static int key_over_bound(const struct fz_line *l) {
    json_t *root = json_loadb(l->buf, l->len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
    json_t *id = json_object_get(root, "id"), *src = json_object_get(root, "source");
    json_t *org = json_object_get(json_object_get(root, "data"), "org");
    const char *type = fz_str(root, "type");
    size_t ni = json_string_length(id), ns = json_string_length(src), no = json_string_length(org);
    int over = json_is_string(id) && json_is_string(src) && json_is_string(org) &&
               !(type && strcmp(type, "clock.tick") == 0) && ni && ni <= ENG_KEYPART_MAX && ns &&
               ns <= ENG_KEYPART_MAX && no && no <= ENG_ID_MAX && 4 + ni + ns + no > ENG_DKEY_MAX;
    json_decref(root);
    return over;
}

static void run_line(struct fz_run *r, const char *buf, size_t len, int64_t lineno) {
    struct fz_line l = {buf, len, NULL, 0, lineno};
    if (len >= 3 && buf[0] == '@' && buf[1] >= '0' && buf[1] <= '9' && buf[2] == ' ') {
        l.partition = buf[1] - '0';
        l.topic = FZ_TOPIC;
        l.buf += 3;
        l.len -= 3;
    }
    if (fz_known_open("key_add_bound") && key_over_bound(&l) &&
        fz_violation("key_add_bound", "line %" PRId64 ": id, source and data.org at their maximum"
                     " (skipped: it aborts in engine.c key_add)", lineno))
        return;
    struct engine_msg m = {l.buf, l.len, l.topic, l.partition, l.offset};
    struct engine_result rm, rl;
    char errm[512] = "", errl[512] = "";
    snapshot(r);
    int rcm = engine_apply(G.em, &r->mops, &m, &rm, errm, sizeof(errm));
    int rcl = engine_apply(G.el, &G.lops, &m, &rl, errl, sizeof(errl));
    if (rcm || rcl)
        fz_violation("store_error", "line %" PRId64 ": engine_apply failed: memstore %d (%s),"
                     " LMDB %d (%s)", lineno, rcm, errm, rcl, errl);
    r->fed++;
    check_outputs(r, &l, &rm);
    check_same(r, &l, &rm, &rl);
    check_invalid_json(&l, &rm);
    check_state(r, rm.outcome == ENG_APPLIED);
    clear_outputs(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct fz_run r;
    char err[512];
    memset(&r, 0, sizeof(r));
    memstore_init(&r.ms);
    memstore_ops(&r.ms, &r.mops);
    if (store_begin(G.st, err, sizeof(err))) {
        fprintf(stderr, "fuzz_engine: store_begin: %s\n", err);
        abort();
    }
    int64_t lineno = 0;
    for (size_t at = 0; at < size;) {
        const char *p = (const char *)data + at, *nl = memchr(p, '\n', size - at);
        size_t n = nl ? (size_t)(nl - p) : size - at;
        run_line(&r, p, n, ++lineno);
        at += n + 1;
    }
    compare_stores(&r);
    if (r.applied + r.duplicates + r.rejected != r.fed)
        fz_violation("accounting", "%lu applied + %lu duplicates + %lu rejected != %lu lines",
                     r.applied, r.duplicates, r.rejected, r.fed);
    store_abort(G.st);
    clear_outputs(&r);
    memstore_free(&r.ms);
    free(r.orgs);
    free(r.projs);
    return 0;
}
