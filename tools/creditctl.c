/* creditctl -- read-only views of a creditd store (semantics §10).
 *
 *   creditctl --db DIR balances [--json]
 *   creditctl --db DIR show ORG [--json]
 *   creditctl --db DIR outbox [--limit N]
 *   creditctl --db DIR stats
 *   creditctl --from-kafka BOOTSTRAP [--config FILE] [-X KEY=VALUE]... balances|show ORG
 *
 * --from-kafka builds the read-committed state of every partition from the
 * state changelog of group mode into a scratch store (tools/ctl_kafka.h)
 * and prints what --db DIR prints for a store holding that state.
 *
 * The store is opened read-only (LMDB MDB_RDONLY): every view runs in its own
 * read transaction, sees one committed state, and never blocks a writer.
 * Output is a function of the store's contents only (no wall clock, no
 * locale), so identical stores print byte-identical views.
 * A corrupt record is reported on stderr (naming its database and key) and
 * skipped: the view shows the rest (balances without that organisation,
 * outbox without that entry, stats with that value zero), and the exit
 * status is then 2 so scripts notice.
 * Exit 0 ok, 1 bad usage or unknown organisation, 2 store or output error
 * or a corrupt record. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/engine.h"
#include "engine/jsonw.h"
#include "engine/money.h"
#include "engine/state.h"
#include "engine/timeutil.h"
#include "store/store.h"
#include "tools/ctl_cmds.h"
#include "tools/ctl_kafka.h"
#include "tools/view.h"

#define ERRLEN     512
#define EXIT_USAGE 1
#define EXIT_STORE 2
#define CB_FAIL    1000          /* a callback's own failure (message in its context) */
#define CB_STOP    1001          /* a callback asked to stop early (outbox --limit) */
#define ID_TEXT_MAX (4 * ENG_ID_MAX + 1) /* an id with every byte escaped as \xNN */
#define MAX_XS     256           /* -X options */

struct opts {
    const char *db, *cmd, *org;
    int json, help, has_limit;
    uint64_t limit;
    const char *from_kafka, *config;  /* --from-kafka BOOTSTRAP, its --config FILE */
    char *xs[MAX_XS];                 /* its -X KEY=VALUE */
    int nx;
};

static void usage(FILE *f) {
    fprintf(f,
            "usage: creditctl --db DIR COMMAND [ARGS]\n"
            "       creditctl --from-kafka BOOTSTRAP [--config FILE] [-X KEY=VALUE]...\n"
            "                 balances|show ORG [--json]\n"
            "Read-only views of a creditd store (safe while a writer runs).\n"
            "--from-kafka: the same views of the state in the changelog of group mode\n"
            "(state.changelog.topic, read committed), read into a temporary store;\n"
            "--config and -X as for creditd (kafka.*, the pinned credit.* settings)\n"
            "commands:\n"
            "  balances [--json]    organisations with a credit and their project credits:\n"
            "                       value, free, open month, its consumption and minimum, terms\n"
            "  show ORG [--json]    everything about one organisation\n"
            "  outbox [--limit N]   pending outputs in order: seq, kind, key, json\n"
            "  stats                entries per database, sizes, counters, configuration,\n"
            "                       remembered keys and the oldest remembered event time\n"
            "  --help               this text\n"
            "staff and owner commands (produce an event; see creditctl grant --help):\n"
            "  grant, adjust, revoke, allocate, deallocate, terminate, void\n"
            "corrupt records are reported on stderr and skipped (exit status 2)\n"
            "exit status: 0 ok, 1 usage or unknown organisation, 2 store or output error\n"
            "             or corrupt records\n");
}

/* ---- values of the open month (semantics §4, §6) ------------------------- */

static const char *logic_name(uint8_t logic) { return logic == ENG_LINEAR ? "linear" : "fixed"; }

static const char *kind_name(enum eng_out_kind k) {
    switch (k) {
    case ENG_OUT_OVERAGE:  return "overage";
    case ENG_OUT_LEDGER:   return "ledger";
    case ENG_OUT_REJECTED: return "rejected";
    case ENG_OUT_ALERT:    return "alert";
    }
    return "unknown";
}

/* ---- text helpers -------------------------------------------------------- */

/* An id for text output: control bytes, DEL and backslash as \xNN, so that
 * an id can neither break a line nor be mistaken for another. */
static void text_id(const char *in, char out[ID_TEXT_MAX]) {
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p && n + 5 <= ID_TEXT_MAX; p++) {
        if (*p >= 0x20 && *p != 0x7f && *p != '\\') { out[n++] = (char)*p; continue; }
        out[n++] = '\\';
        out[n++] = 'x';
        out[n++] = hex[*p >> 4];
        out[n++] = hex[*p & 15];
    }
    out[n] = 0;
}

static const char *money_text(int64_t v, char buf[MONEY_FMT_MAX]) {
    money_format(v, MONEY_DIGITS, buf);
    return buf;
}

static const char *month_text(int32_t m, char buf[8]) {
    if (m == ENG_NO_MONTH) return "-";
    time_format_month(m, buf);
    return buf;
}

static const char *date_text(int32_t m, char buf[11]) {
    if (m == ENG_NO_MONTH) return "-";
    time_format_month_date(m, buf);
    return buf;
}

/* Display width of UTF-8 text: code points, not bytes. */
static int text_width(const char *s) {
    int w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80) w++;
    return w;
}

/* Write the writer's buffer as one line; CB_FAIL with a message on error. */
static int json_line(struct jsonw *w, char *err, size_t errlen) {
    if (!jsonw_ok(w)) {
        snprintf(err, errlen, "out of memory");
        return CB_FAIL;
    }
    if (fwrite(w->buf, 1, w->len, stdout) != w->len || putchar('\n') == EOF) {
        snprintf(err, errlen, "writing output: %s", strerror(errno));
        return CB_FAIL;
    }
    return 0;
}

/* ---- balances ------------------------------------------------------------ */

#define NCOL 9
static const char *const bal_head[NCOL] = {"ORG", "PROJECT", "VALUE", "FREE", "OPEN",
                                            "CONSUMED", "MINIMUM", "END", "LOGIC"};
static const int bal_right[NCOL] = {0, 0, 1, 1, 0, 1, 1, 0, 0};

/* Rows of text cells, kept NUL-separated in one buffer until the widths are known. */
struct table {
    char *buf;
    size_t len, cap, nrows;
    int width[NCOL];
};

static int table_add(struct table *t, const char *const cells[NCOL]) {
    for (int c = 0; c < NCOL; c++) {
        size_t n = strlen(cells[c]) + 1;
        if (t->len + n > t->cap) {
            size_t cap = t->cap ? t->cap * 2 : 4096;
            while (cap < t->len + n) cap *= 2;
            char *b = realloc(t->buf, cap);
            if (!b) return -1;
            t->buf = b;
            t->cap = cap;
        }
        memcpy(t->buf + t->len, cells[c], n);
        t->len += n;
        int w = text_width(cells[c]);
        if (w > t->width[c]) t->width[c] = w;
    }
    t->nrows++;
    return 0;
}

static void table_print(const struct table *t) {
    const char *p = t->buf;
    for (size_t r = 0; r < t->nrows; r++) {
        for (int c = 0; c < NCOL; c++) {
            int pad = t->width[c] - text_width(p);
            if (c) fputs("  ", stdout);
            if (bal_right[c]) printf("%*s%s", pad, "", p);
            else if (c + 1 < NCOL) printf("%s%*s", p, pad, "");
            else fputs(p, stdout);
            p += strlen(p) + 1;
        }
        putchar('\n');
    }
}

/* Corrupt records the views skipped, each reported as it is met. */
struct corrupt_ctx { const char *cmd; unsigned long n; };

static void corrupt_cb(void *arg, const char *msg) {
    struct corrupt_ctx *c = arg;
    fprintf(stderr, "creditctl: %s: %s (skipped)\n", c->cmd, msg);
    c->n++;
}

struct bal_ctx {
    int json;
    struct jsonw w;
    struct table t;
    char err[ERRLEN];
    const char *db;
    struct corrupt_ctx *cc;
};

static int bal_json(struct bal_ctx *b, const struct eng_org *o) {
    jsonw_reset(&b->w);
    view_balance_org_json(&b->w, o);
    int rc = json_line(&b->w, b->err, sizeof(b->err));
    for (size_t i = 0; rc == 0 && i < o->nproj; i++) {
        if (!o->proj[i].has_credit) continue;
        jsonw_reset(&b->w);
        view_balance_project_json(&b->w, o, &o->proj[i]);
        rc = json_line(&b->w, b->err, sizeof(b->err));
    }
    return rc;
}

static int bal_table(struct bal_ctx *b, const struct eng_org *o) {
    char org[ID_TEXT_MAX], proj[ID_TEXT_MAX], v[MONEY_FMT_MAX], f[MONEY_FMT_MAX];
    char c[MONEY_FMT_MAX], mn[MONEY_FMT_MAX], om[8], end[11];
    int32_t open = o->open_month;
    text_id(o->id, org);
    const char *row[NCOL] = {org, "-", money_text(o->value, v), money_text(engine_free_credit(o), f),
                             month_text(open, om),
                             money_text(engine_month_consumed(o->acct, o->nacct, open), c),
                             money_text(engine_month_minimum(&o->terms, open), mn),
                             date_text(o->terms.end_month, end), logic_name(o->terms.logic)};
    int rc = table_add(&b->t, row);
    for (size_t i = 0; rc == 0 && i < o->nproj; i++) {
        const struct eng_project *p = &o->proj[i];
        if (!p->has_credit) continue;
        text_id(p->id, proj);
        const char *prow[NCOL] = {org, proj, money_text(p->value, v), "-", "-",
                                  money_text(engine_month_consumed(p->acct, p->nacct, open), c),
                                  money_text(engine_month_minimum(&p->terms, open), mn),
                                  date_text(p->terms.end_month, end), logic_name(p->terms.logic)};
        rc = table_add(&b->t, prow);
    }
    if (rc) snprintf(b->err, sizeof(b->err), "out of memory");
    return rc ? CB_FAIL : 0;
}

static int bal_cb(void *arg, const struct eng_org *o) {
    struct bal_ctx *b = arg;
    char msg[ERRLEN];
    if (view_org_check(b->db, o, msg, sizeof(msg))) {
        corrupt_cb(b->cc, msg);
        return 0;
    }
    if (!o->has_credit) return 0;
    return b->json ? bal_json(b, o) : bal_table(b, o);
}

static int cmd_balances(struct store *s, const struct opts *op, struct corrupt_ctx *cc) {
    struct bal_ctx b;
    char err[ERRLEN] = "";
    memset(&b, 0, sizeof(b));
    b.json = op->json;
    b.db = op->db;
    b.cc = cc;
    jsonw_init(&b.w);
    int rc = b.json ? 0 : table_add(&b.t, bal_head);
    if (rc) snprintf(b.err, sizeof(b.err), "out of memory");
    else rc = store_scan_orgs(s, bal_cb, &b, err, sizeof(err));
    if (rc == 0 && !b.json) table_print(&b.t);
    if (rc) fprintf(stderr, "creditctl: balances: %s\n", rc == CB_FAIL || !*err ? b.err : err);
    jsonw_free(&b.w);
    free(b.t.buf);
    return rc ? EXIT_STORE : 0;
}

/* ---- show ---------------------------------------------------------------- */

static int al_bit(const uint64_t m[2], int k) { return (int)((m[k / 64] >> (k % 64)) & 1); }

static void text_pcts(const uint64_t m[2]) {
    int any = 0;
    for (int i = ENG_ALERT_PCT_MAX; i >= 1; i--)
        if (al_bit(m, i)) printf("%s%d%%", any++ ? ", " : " ", i);
    if (!any) printf(" none");
}

static void text_alerts(const struct eng_alerts *a) {
    char r[MONEY_FMT_MAX];
    printf("  alerts       thresholds");
    text_pcts(a->thr);
    printf("; reference %s; armed", money_text(a->reference, r));
    text_pcts(a->armed);
    printf("; exhausted %s\n", a->exhausted ? "yes" : "no");
}

static int show_json(const struct eng_org *o) {
    struct jsonw w;
    char err[ERRLEN];
    jsonw_init(&w);
    view_show_json(&w, o);
    int rc = json_line(&w, err, sizeof(err));
    if (rc) fprintf(stderr, "creditctl: show: %s\n", err);
    jsonw_free(&w);
    return rc ? EXIT_STORE : 0;
}

static void text_terms(const struct eng_terms *t, int32_t open) {
    char e[MONEY_FMT_MAX], m[MONEY_FMT_MAX], end[11];
    printf("  terms        %s, expected %s, minimum %s, grace %d%%, minimal consumption %s, "
           "end date %s\n", logic_name(t->logic), money_text(t->expected, e),
           money_text(engine_month_minimum(t, open), m), (int)t->grace, t->apply_min ? "yes" : "no",
           date_text(t->end_month, end));
}

static void text_acct(const struct eng_acct *a, int n) {
    struct eng_acct s[ENG_MAX_MONTHS];
    char mb[8], v[MONEY_FMT_MAX];
    n = view_sorted_acct(a, n, s);
    printf("  consumption ");
    if (n == 0) printf(" -");
    for (int i = 0; i < n; i++)
        printf(" %s %s%s%s", month_text(s[i].month, mb), money_text(s[i].consumed, v),
               s[i].overage ? " (overage started)" : "", i + 1 < n ? "," : "");
    putchar('\n');
}

static void text_org_credit(const struct eng_org *o) {
    char v[MONEY_FMT_MAX], f[MONEY_FMT_MAX], id[ID_TEXT_MAX];
    if (!o->has_credit) { printf("credit         none\n"); return; }
    printf("credit         value %s, free %s, reserve allocations %s\n", money_text(o->value, v),
           money_text(engine_free_credit(o), f), o->terms.reserve ? "yes" : "no");
    text_terms(&o->terms, o->open_month);
    printf("  offerings   ");
    if (o->noff == 0) printf(" all");
    for (int i = 0; i < o->noff; i++) {
        text_id(o->off[i], id);
        printf(" %s%s", id, i + 1 < o->noff ? "," : "");
    }
    putchar('\n');
    text_alerts(&o->al);
}

static void text_project(const struct eng_org *o, const struct eng_project *p) {
    char id[ID_TEXT_MAX], v[MONEY_FMT_MAX], sp[MONEY_FMT_MAX];
    text_id(p->id, id);
    printf("project %s\n", id);
    if (!p->has_credit) printf("  credit       none\n");
    else {
        printf("  credit       value %s, spendable %s, use org credit %s, "
               "mark unused as spent on termination %s\n", money_text(p->value, v),
               money_text(p->value < o->value ? p->value : o->value, sp),
               p->terms.use_org_credit ? "yes" : "no", p->terms.mark_unused ? "yes" : "no");
        text_terms(&p->terms, o->open_month);
        text_alerts(&p->al);
    }
    text_acct(p->acct, p->nacct);
}

static int show_text(const struct eng_org *o) {
    char id[ID_TEXT_MAX], wm[40], om[8];
    text_id(o->id, id);
    if (o->watermark == ENG_NO_TIME) strcpy(wm, "-");
    else time_format(o->watermark, wm);
    printf("organisation   %s\n", id);
    printf("partition      %" PRId32 "\n", o->partition);
    printf("watermark      %s\n", wm);
    printf("open month     %s\n", month_text(o->open_month, om));
    printf("sequences      overage %" PRIu64 ", ledger %" PRIu64 ", alert %" PRIu64 "\n",
           o->seq[ENG_OUT_OVERAGE], o->seq[ENG_OUT_LEDGER], o->alert_seq);
    text_org_credit(o);
    text_acct(o->acct, o->nacct);
    for (size_t i = 0; i < o->nproj; i++) text_project(o, &o->proj[i]);
    return 0;
}

static int cmd_show(struct store *s, const struct opts *op) {
    char err[ERRLEN], id[ID_TEXT_MAX];
    struct eng_org *o = malloc(sizeof(*o));
    if (!o) { fprintf(stderr, "creditctl: show: out of memory\n"); return EXIT_STORE; }
    eng_org_init(o);
    size_t n = strlen(op->org);
    int rc = n == 0 || n > ENG_ID_MAX ? STORE_NOTFOUND : store_get_org(s, op->org, o, err, sizeof(err));
    if (rc == STORE_NOTFOUND) {
        text_id(op->org, id);
        fprintf(stderr, "creditctl: no organisation %s in %s\n", id, op->db);
        rc = EXIT_USAGE;
    } else if (rc || view_org_check(op->db, o, err, sizeof(err))) {
        fprintf(stderr, "creditctl: show %s: %s\n", op->org, err);
        rc = EXIT_STORE;
    } else {
        rc = op->json ? show_json(o) : show_text(o);
    }
    eng_org_free(o);
    free(o);
    return rc;
}

/* ---- outbox -------------------------------------------------------------- */

struct outbox_ctx { uint64_t limit, n; int has_limit; char err[ERRLEN]; };

static int outbox_cb(void *arg, uint64_t seq, enum eng_out_kind kind, const char *key,
                     const char *json, size_t len) {
    struct outbox_ctx *c = arg;
    char k[ID_TEXT_MAX];
    if (c->has_limit && c->n >= c->limit) return CB_STOP;
    if (key) text_id(key, k);
    else strcpy(k, "-");
    printf("%" PRIu64 "\t%s\t%s\t", seq, kind_name(kind), k);
    if (fwrite(json, 1, len, stdout) != len || putchar('\n') == EOF) {
        snprintf(c->err, sizeof(c->err), "writing output: %s", strerror(errno));
        return CB_FAIL;
    }
    c->n++;
    return 0;
}

static int cmd_outbox(struct store *s, const struct opts *op) {
    struct outbox_ctx c;
    char err[ERRLEN] = "";
    memset(&c, 0, sizeof(c));
    c.limit = op->limit;
    c.has_limit = op->has_limit;
    int rc = store_outbox_scan(s, 0, outbox_cb, &c, err, sizeof(err));
    if (rc == CB_STOP) rc = 0;
    if (rc) fprintf(stderr, "creditctl: outbox: %s\n", rc == CB_FAIL ? c.err : err);
    return rc ? EXIT_STORE : 0;
}

/* ---- stats --------------------------------------------------------------- */

static int cmd_stats(struct store *s) {
    struct store_stats st;
    char err[ERRLEN];
    if (store_stats(s, &st, err, sizeof(err))) {
        fprintf(stderr, "creditctl: stats: %s\n", err);
        return EXIT_STORE;
    }
    printf("%-16s %s\n", "database", "entries");
    for (int i = 0; i < st.ndb; i++)
        printf("%-16s %" PRIu64 "\n", st.db[i].name ? st.db[i].name : "?", st.db[i].entries);
    printf("%-16s %" PRIu64 "\n", "map_size", st.map_size);
    printf("%-16s %" PRIu64 "\n", "used_bytes", st.used_bytes);
    printf("%-16s %" PRIu64 "\n", "file_bytes", st.file_bytes);
    printf("%-16s %" PRIu64 "\n", "applied", st.counters.applied);
    printf("%-16s %" PRIu64 "\n", "duplicates", st.counters.duplicates);
    printf("%-16s %" PRIu64 "\n", "rejected", st.counters.rejected);
    printf("%-16s %" PRId64 "\n", "close_after", st.close_after_s);
    printf("%-16s %" PRId64 "\n", "max_future", st.max_future_s);
    printf("%-16s %" PRId64 "\n", "retention_days", st.retention_days);
    /* §14: the keys the store remembers (expired ones not yet removed
     * included) and the oldest time among those that can expire. */
    for (int i = 0; i < st.ndb; i++)
        if (st.db[i].name && strcmp(st.db[i].name, "dedupe") == 0)
            printf("%-16s %" PRIu64 "\n", "remembered_keys", st.db[i].entries);
    char ot[48] = "none";
    if (st.oldest_key_time != ENG_NO_TIME) time_format(st.oldest_key_time, ot);
    printf("%-16s %s\n", "oldest_key_time", ot);
    printf("%-16s %s\n", "currency", st.currency);
    return 0;
}

/* ---- arguments and main -------------------------------------------------- */

static int parse_u64(const char *s, uint64_t *out) {
    char *end;
    if (*s < '0' || *s > '9') return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) return -1;
    *out = v;
    return 0;
}

static int bad_usage(const char *what, const char *arg) {
    fprintf(stderr, "creditctl: %s%s%s\n", what, arg ? ": " : "", arg ? arg : "");
    usage(stderr);
    return EXIT_USAGE;
}

/* The options that take a value, "--opt V" or "--opt=V" (-X: "-X V" only). */
static const char *const VALUE_OPTS[] = {"--db", "--limit", "--from-kafka", "--config", "-X"};

static int set_value(struct opts *o, const char *name, const char *v) {
    if (strcmp(name, "--db") == 0) o->db = v;
    else if (strcmp(name, "--limit") == 0) {
        if (parse_u64(v, &o->limit)) return bad_usage("bad --limit", v);
        o->has_limit = 1;
    } else if (strcmp(name, "--from-kafka") == 0) o->from_kafka = v;
    else if (strcmp(name, "--config") == 0) o->config = v;
    else if (o->nx < MAX_XS) o->xs[o->nx++] = (char *)v;
    else return bad_usage("too many -X options (at most 256)", NULL);
    return 0;
}

/* argv[*i] is an option with a value: set it.  1: not such an option. */
static int value_opt(int argc, char **argv, int *i, struct opts *o) {
    const char *a = argv[*i];
    for (size_t k = 0; k < sizeof VALUE_OPTS / sizeof VALUE_OPTS[0]; k++) {
        size_t n = strlen(VALUE_OPTS[k]);
        if (strncmp(a, VALUE_OPTS[k], n) != 0) continue;
        if (a[n] == '=' && a[1] == '-') return set_value(o, VALUE_OPTS[k], a + n + 1);
        if (a[n] != 0) continue;
        if (*i + 1 >= argc) return bad_usage("missing value for", a);
        return set_value(o, VALUE_OPTS[k], argv[++*i]);
    }
    return 1;
}

/* Where the state comes from: --db DIR, or --from-kafka BOOTSTRAP with
 * its --config and -X, for balances and show. */
static int check_source(const struct opts *o) {
    if (o->db && o->from_kafka)
        return bad_usage("give --db DIR or --from-kafka BOOTSTRAP, not both", NULL);
    if (o->from_kafka && !*o->from_kafka)
        return bad_usage("--from-kafka: empty bootstrap servers", NULL);
    if (!o->from_kafka && (o->config || o->nx))
        return bad_usage("--config and -X apply to --from-kafka only", NULL);
    if (!o->from_kafka && (!o->db || !*o->db))
        return bad_usage("missing --db DIR (or --from-kafka BOOTSTRAP)", NULL);
    return 0;
}

/* Options may come before or after the command; "--" ends them. */
static int parse_args(int argc, char **argv, struct opts *o) {
    const char *pos[2];
    int npos = 0, opts_done = 0, rc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (opts_done || a[0] != '-' || a[1] == 0) {
            if (npos == 2) return bad_usage("unexpected argument", a);
            pos[npos++] = a;
        } else if (strcmp(a, "--") == 0) opts_done = 1;
        else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) o->help = 1;
        else if (strcmp(a, "--json") == 0) o->json = 1;
        else if ((rc = value_opt(argc, argv, &i, o)) == 1) return bad_usage("unknown option", a);
        else if (rc) return rc;
    }
    if (o->help) return 0;
    if ((rc = check_source(o))) return rc;
    if (npos == 0) return bad_usage("missing command", NULL);
    o->cmd = pos[0];
    o->org = npos > 1 ? pos[1] : NULL;
    int show = strcmp(o->cmd, "show") == 0;
    if (!show && strcmp(o->cmd, "balances") && strcmp(o->cmd, "outbox") && strcmp(o->cmd, "stats"))
        return bad_usage("unknown command", o->cmd);
    if (show && !o->org) return bad_usage("show needs an organisation id", NULL);
    if (!show && o->org) return bad_usage("unexpected argument", o->org);
    if (o->json && !show && strcmp(o->cmd, "balances"))
        return bad_usage("--json applies to balances and show only", NULL);
    if (o->has_limit && strcmp(o->cmd, "outbox"))
        return bad_usage("--limit applies to outbox only", NULL);
    if (o->from_kafka && !show && strcmp(o->cmd, "balances"))
        return bad_usage("--from-kafka applies to balances and show only", NULL);
    return 0;
}

/* Read-only open; a directory without data.mdb is "no creditd store". */
static int open_store(const char *dir, struct store **s) {
    char path[4096], err[ERRLEN];
    struct stat st;
    int n = snprintf(path, sizeof(path), "%s/data.mdb", dir);
    if (n < 0 || (size_t)n >= sizeof(path)) {
        fprintf(stderr, "creditctl: %s: path too long\n", dir);
        return EXIT_STORE;
    }
    if (stat(path, &st) != 0) {
        fprintf(stderr, "creditctl: %s: no creditd store (%s: %s)\n", dir, path, strerror(errno));
        return EXIT_STORE;
    }
    struct store_opts so = {0};
    so.path = dir;
    so.readonly = 1;
    so.currency = NULL; /* a view: whatever configuration the store was made with */
    if (store_open(s, &so, err, sizeof(err))) {
        fprintf(stderr, "creditctl: %s: cannot open store: %s\n", dir, err);
        return EXIT_STORE;
    }
    return 0;
}

int main(int argc, char **argv) {
    struct opts op;
    struct store *s;
    memset(&op, 0, sizeof(op));
    if (ctlcmd_wanted(argc, argv)) return ctlcmd_main(argc, argv);
    int rc = parse_args(argc, argv, &op);
    if (rc) return rc;
    if (op.help) { usage(stdout); return fflush(stdout) ? EXIT_STORE : 0; }
    char kdir[CTLKAFKA_DIR_MAX] = "", where[CTLKAFKA_WHERE_MAX];
    if (op.from_kafka) {   /* the views name what was read, not the scratch store */
        if ((rc = ctlkafka_build(op.from_kafka, op.config, op.xs, op.nx, kdir, where))) return rc;
        op.db = where;
    }
    rc = open_store(kdir[0] ? kdir : op.db, &s);
    if (rc) {
        if (kdir[0]) ctlkafka_remove(kdir);
        return rc;
    }
    struct corrupt_ctx cc = { op.cmd, 0 };
    store_set_corrupt_hook(s, corrupt_cb, &cc);
    if (strcmp(op.cmd, "balances") == 0) rc = cmd_balances(s, &op, &cc);
    else if (strcmp(op.cmd, "show") == 0) rc = cmd_show(s, &op);
    else if (strcmp(op.cmd, "outbox") == 0) rc = cmd_outbox(s, &op);
    else rc = cmd_stats(s);
    store_close(s);
    if (kdir[0] && ctlkafka_remove(kdir) && rc == 0) rc = EXIT_STORE;
    if (cc.n) {
        fprintf(stderr, "creditctl: %s: %lu corrupt record%s skipped: the output is incomplete\n",
                op.cmd, cc.n, cc.n == 1 ? "" : "s");
        if (rc == 0) rc = EXIT_STORE;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "creditctl: writing output: %s\n", strerror(errno));
        if (rc == 0) rc = EXIT_STORE;
    }
    return rc;
}
