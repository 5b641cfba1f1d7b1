/* ctl_cmds -- creditctl's staff and owner commands; see ctl_cmds.h. */
#include "tools/ctl_cmds.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "config/config.h"
#include "engine/event.h"
#include "engine/money.h"
#include "engine/state.h"
#include "engine/timeutil.h"
#include "store/store.h"
#include "tools/ctl_http.h"
#include "tools/ctl_wait.h"
#include "tools/kprod.h"

#define EXIT_USAGE   1
#define EXIT_RUNTIME 2
#define EXIT_REJECTED 3       /* --wait: creditd rejected the event */
#define EXIT_NO_OUTCOME 4     /* --wait: no outcome within the time */
#define WAIT_MAX_S   3600
#define ERRLEN       512
#define FLUSH_MS     30000
#define HTTP_TIMEOUT_MS 10000 /* --http: the whole GET of the balance */
#define SOURCE_MAX   256      /* id / source bytes (semantics §1) */
#define MAX_XS       256      /* -X and config kafka.* properties */

/* ---- the commands and their flags ---------------------------------------- */

enum ftype { F_MONEY, F_DELTA, F_BOOL, F_LOGIC, F_GRACE, F_DATE, F_THRESH, F_OFFERINGS,
             F_REASON, F_TIME, F_EVID };

enum { C_GRANT = 1, C_ADJUST = 2, C_REVOKE = 4, C_ALLOC = 8, C_DEALLOC = 16, C_TERM = 32,
       C_VOID = 64 };
#define C_SETS (C_GRANT | C_ALLOC)

struct cmd {
    const char *name, *type;
    unsigned bit;
    int owner;        /* 1: creditctl.source_owner, 0: creditctl.source_staff */
    int nargs;        /* ORG, or ORG PROJECT */
};

static const struct cmd CMDS[] = {
    {"grant", "org_credit.set", C_GRANT, 0, 1},
    {"adjust", "org_credit.adjust", C_ADJUST, 0, 1},
    {"revoke", "org_credit.delete", C_REVOKE, 0, 1},
    {"allocate", "project_credit.set", C_ALLOC, 1, 2},
    {"deallocate", "project_credit.delete", C_DEALLOC, 1, 2},
    {"terminate", "project.terminate", C_TERM, 1, 2},
    {"void", "usage.void", C_VOID, 0, 1},
};
#define NCMDS (sizeof CMDS / sizeof CMDS[0])

/* One data field per flag; `required` for the commands in that mask.  Data
 * fields are written in this order. */
struct flag {
    const char *flag, *field;
    enum ftype type;
    unsigned cmds, required;
};

static const struct flag FLAGS[] = {
    {"--value", "value", F_MONEY, C_SETS, C_SETS},
    {"--if-value", "if_value", F_MONEY, C_GRANT, 0},
    {"--delta", "delta", F_DELTA, C_ADJUST, C_ADJUST},
    {"--offerings", "offerings", F_OFFERINGS, C_GRANT, 0},
    {"--consumption-logic", "consumption_logic", F_LOGIC, C_SETS, 0},
    {"--expected-consumption", "expected_consumption", F_MONEY, C_SETS, 0},
    {"--grace-coefficient", "grace_coefficient", F_GRACE, C_SETS, 0},
    {"--apply-as-minimal-consumption", "apply_as_minimal_consumption", F_BOOL, C_SETS, 0},
    {"--reserve-allocations", "reserve_allocations", F_BOOL, C_GRANT, 0},
    {"--use-org-credit", "use_org_credit", F_BOOL, C_ALLOC, 0},
    {"--mark-unused-as-spent-on-termination", "mark_unused_as_spent_on_termination", F_BOOL,
     C_ALLOC, 0},
    {"--end-date", "end_date", F_DATE, C_SETS, 0},
    {"--alert-thresholds", "alert_thresholds", F_THRESH, C_SETS, 0},
    {"--usage-source", "usage_source", F_EVID, C_VOID, C_VOID},
    {"--usage-id", "usage_id", F_EVID, C_VOID, C_VOID},
    {"--usage-time", "usage_time", F_TIME, C_VOID, C_VOID},
    {"--reason", "reason", F_REASON, C_VOID, 0},
};
#define NFLAGS (sizeof FLAGS / sizeof FLAGS[0])

/* Options of every command: those taking a value, then the switches. */
static const char *const COMMON_VAL[] = {"--db", "--http", "--config", "-b", "--bootstrap", "-X",
                                         "--topic", "--source", "--id", "--time", "--wait"};
static const char *const SWITCHES[] = {"--dry-run", "--force", "--json", "--help", "-h"};

struct args {
    const struct cmd *cmd;
    const char *org, *project;
    const char *val[NFLAGS];
    const char *db, *http, *config, *bootstrap, *topic, *source, *id;
    const char *time; /* --time: the event's time as given (a retry repeats it), else now */
    int wait_s;       /* --wait S, 0: no wait */
    char *xs[MAX_XS];
    int nx, dry_run, force;
};

static void usage(FILE *f) {
    fprintf(f,
        "usage: creditctl [OPTIONS] COMMAND ORG [PROJECT] [FLAGS]\n"
        "Staff and owner commands: produce one event to the input topic, keyed by ORG.\n"
        "  grant ORG --value V [--if-value V] [--offerings ID,...] [--consumption-logic\n"
        "        fixed|linear] [--expected-consumption M] [--grace-coefficient 0..100]\n"
        "        [--apply-as-minimal-consumption true|false] [--reserve-allocations\n"
        "        true|false] [--end-date YYYY-MM-01] [--alert-thresholds PCT,...]\n"
        "  adjust ORG --delta D                   (signed, not 0)\n"
        "  revoke ORG\n"
        "  allocate ORG PROJECT --value V [--use-org-credit true|false]\n"
        "        [--mark-unused-as-spent-on-termination true|false] [--end-date D]\n"
        "        [--consumption-logic L] [--expected-consumption M] [--grace-coefficient N]\n"
        "        [--apply-as-minimal-consumption B] [--alert-thresholds PCT,...]\n"
        "  deallocate ORG PROJECT\n"
        "  terminate ORG PROJECT\n"
        "  void ORG --usage-source S --usage-id ID --usage-time RFC3339 [--reason TEXT]\n"
        "options:\n"
        "  --db DIR          the store (read-only): grant sends if_value = the current\n"
        "                    balance read from it (grant needs --db or --http, or --force)\n"
        "  --http URL        or read that balance from creditd's HTTP API instead\n"
        "                    (http://HOST:PORT, GET /v1/orgs/ORG; 10 s at most)\n"
        "  --force           grant without if_value (may overwrite a concurrent change)\n"
        "  --config FILE     creditd.conf: kafka.*, topic.*, creditctl.source_*, log.*\n"
        "  -b, --bootstrap S bootstrap servers (else kafka.bootstrap.servers)\n"
        "  -X key=value      a key after --config, as for creditd: a librdkafka property\n"
        "                    (after creditctl's defaults) or a creditd key\n"
        "  --topic T         input topic (else topic.input, default credit.events)\n"
        "  --source S        event source (else creditctl.source_staff / _owner)\n"
        "  --id ID           event id (default: a random UUID)\n"
        "  --time T          event time, RFC 3339 (default: now); to retry a send whose\n"
        "                    delivery was not confirmed, repeat --id, --time and every\n"
        "                    flag (grant: --if-value or --force, not a new read of --db):\n"
        "                    the same event again is a duplicate, never applied twice\n"
        "  --dry-run         print the event JSON instead of producing it\n"
        "  --wait S          then wait up to S seconds for creditd's outcome on the ledger,\n"
        "                    overage and rejected topics: \"applied\" and its outputs, or\n"
        "                    \"rejected REASON: MESSAGE\" (value_changed: the current balance\n"
        "                    from --db or --http too)\n"
        "prints the event id once the broker confirmed delivery\n"
        "exit status: 0 ok, 1 usage, 2 store or Kafka error, 3 rejected (--wait),\n"
        "             4 no outcome within S seconds (--wait)\n");
}

static int in_list(const char *a, const char *const *l, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(a, l[i]) == 0) return 1;
    return 0;
}

static const struct cmd *cmd_find(const char *name) {
    for (size_t i = 0; i < NCMDS; i++)
        if (strcmp(CMDS[i].name, name) == 0) return &CMDS[i];
    return NULL;
}

/* An option that takes a value (every flag but the switches). */
static int takes_value(const char *a) {
    return !in_list(a, SWITCHES, sizeof SWITCHES / sizeof SWITCHES[0]) && !strchr(a, '=');
}

int ctlcmd_wanted(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) return i + 1 < argc && cmd_find(argv[i + 1]);
        if (a[0] == '-' && a[1]) {
            if (takes_value(a)) i++;
            continue;
        }
        return cmd_find(a) != NULL;
    }
    return 0;
}

/* ---- argument parsing ---------------------------------------------------- */

static int bad(const char *fmt, const char *a, const char *b) {
    fprintf(stderr, "creditctl: ");
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
    return EXIT_USAGE;
}

static int set_common(struct args *g, const char *name, const char *v) {
    if (!strcmp(name, "--db")) g->db = v;
    else if (!strcmp(name, "--http")) g->http = v;
    else if (!strcmp(name, "--config")) g->config = v;
    else if (!strcmp(name, "-b") || !strcmp(name, "--bootstrap")) g->bootstrap = v;
    else if (!strcmp(name, "--topic")) g->topic = v;
    else if (!strcmp(name, "--source")) g->source = v;
    else if (!strcmp(name, "--id")) g->id = v;
    else if (!strcmp(name, "--time")) g->time = v;
    else if (!strcmp(name, "--wait")) {
        char *end;
        long w = strtol(v, &end, 10);
        if (*end || v[0] < '0' || v[0] > '9' || w < 1 || w > WAIT_MAX_S)
            return bad("--wait: \"%s\" is not a number of seconds from 1 to %s", v, "3600");
        g->wait_s = (int)w;
    }
    else if (g->nx >= MAX_XS) return bad("too many -X options (at most %d)%s", "256", "");
    else g->xs[g->nx++] = (char *)v;
    return 0;
}

/* One option at argv[*i] ("--flag value" or "--flag=value"). */
static int parse_option(struct args *g, int argc, char **argv, int *i) {
    const char *a = argv[*i];
    if (!strcmp(a, "--dry-run")) { g->dry_run = 1; return 0; }
    if (!strcmp(a, "--force")) { g->force = 1; return 0; }
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); exit(0); }
    char name[64];
    const char *eq = strchr(a, '='), *v;
    size_t n = eq ? (size_t)(eq - a) : strlen(a);
    if (n >= sizeof name) return bad("unknown option %s%s", a, "");
    memcpy(name, a, n);
    name[n] = 0;
    if (eq) v = eq + 1;
    else if (*i + 1 < argc) v = argv[++*i];
    else return bad("%s needs a value%s", name, "");
    if (in_list(name, COMMON_VAL, sizeof COMMON_VAL / sizeof COMMON_VAL[0]))
        return set_common(g, name, v);
    for (size_t f = 0; f < NFLAGS; f++) {
        if (strcmp(FLAGS[f].flag, name)) continue;
        if (g->cmd && !(FLAGS[f].cmds & g->cmd->bit))
            return bad("%s does not apply to %s", name, g->cmd->name);
        if (g->val[f]) return bad("%s given twice%s", name, "");
        g->val[f] = v;
        return 0;
    }
    return bad("unknown option %s%s", name, "");
}

static int parse_args(struct args *g, int argc, char **argv) {
    const char *pos[4];
    int npos = 0, done = 0, rc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!done && !strcmp(a, "--")) { done = 1; continue; }
        if (!done && a[0] == '-' && a[1]) {
            if ((rc = parse_option(g, argc, argv, &i))) return rc;
            continue;
        }
        if (npos == 3) return bad("unexpected argument %s%s", a, "");
        pos[npos++] = a;
        if (npos == 1 && !(g->cmd = cmd_find(a))) return bad("unknown command %s%s", a, "");
    }
    if (!g->cmd) return bad("missing command%s%s", "", "");
    if (g->wait_s && g->dry_run) return bad("--wait does not apply to --dry-run%s%s", "", "");
    if (npos - 1 != g->cmd->nargs)
        return bad("%s needs %s", g->cmd->name, g->cmd->nargs == 1 ? "ORG" : "ORG PROJECT");
    g->org = pos[1];
    g->project = g->cmd->nargs == 2 ? pos[2] : NULL;
    for (size_t f = 0; f < NFLAGS; f++) {
        if (g->val[f] && !(FLAGS[f].cmds & g->cmd->bit)) /* given before the command */
            return bad("%s does not apply to %s", FLAGS[f].flag, g->cmd->name);
        if (!g->val[f] && (FLAGS[f].required & g->cmd->bit))
            return bad("%s needs %s", g->cmd->name, FLAGS[f].flag);
    }
    return 0;
}

/* ---- field values: the engine's parsers, errors naming the flag ---------- */

/* A money flag: at most 6 fractional digits, in range; F_MONEY >= 0, F_DELTA
 * not 0.  Written back normalised ("10" -> "10.000000"). */
static int conv_money(const struct flag *f, const char *s, int64_t *m, json_t **out) {
    char buf[MONEY_FMT_MAX];
    int rc = money_parse(s, strlen(s), MONEY_DIGITS, m);
    if (rc == MONEY_EDIGITS) return bad("%s: \"%s\" has more than 6 fractional digits", f->flag, s);
    if (rc == MONEY_ERANGE) return bad("%s: \"%s\" is out of range", f->flag, s);
    if (rc) return bad("%s: \"%s\" is not a decimal amount", f->flag, s);
    if (f->type == F_MONEY && *m < 0) return bad("%s: \"%s\" is negative", f->flag, s);
    if (f->type == F_DELTA && *m == 0) return bad("%s: must not be 0%s", f->flag, "");
    money_format(*m, MONEY_DIGITS, buf);
    *out = json_string(buf);
    return 0;
}

/* A comma-separated list: offering ids, or threshold percentages 1..99. */
static int conv_list(const struct flag *f, const char *s, json_t **out) {
    int seen[ENG_ALERT_PCT_MAX + 1] = {0};
    size_t n = 0;
    *out = json_array();
    for (const char *p = s; *s && p;) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        char item[ENG_ID_MAX + 1];
        if (len == 0 || len > ENG_ID_MAX) return bad("%s: empty or over-long item in \"%s\"", f->flag, s);
        if (++n > ENG_MAX_OFFERINGS) return bad("%s: more than 64 items in \"%s\"", f->flag, s);
        memcpy(item, p, len);
        item[len] = 0;
        if (f->type == F_OFFERINGS) {
            json_t *j = json_string(item);
            if (!j) return bad("%s: \"%s\" is not UTF-8", f->flag, item);
            json_array_append_new(*out, j);
        } else {
            char *end;
            long v = strtol(item, &end, 10);
            if (*end || item[0] < '0' || item[0] > '9' || v < 1 || v > ENG_ALERT_PCT_MAX)
                return bad("%s: \"%s\" is not an integer from 1 to 99", f->flag, item);
            if (seen[v]++) return bad("%s: %s appears more than once", f->flag, item);
            json_array_append_new(*out, json_integer(v));
        }
        p = c ? c + 1 : NULL;
    }
    return 0;
}

/* end_date: the first day of a month after the current month (the event's). */
static int conv_date(const struct flag *f, const char *s, int64_t now, json_t **out) {
    int32_t m;
    int day;
    if (time_parse_date(s, &m, &day)) return bad("%s: \"%s\" is not a date YYYY-MM-DD", f->flag, s);
    if (day != 1) return bad("%s: %s is not the first day of a month", f->flag, s);
    if (m <= time_month_of(now)) return bad("%s: %s is not after the current month", f->flag, s);
    *out = json_string(s);
    return 0;
}

static int conv_text(const struct flag *f, const char *s, size_t max, json_t **out) {
    if ((f->type == F_EVID && !*s) || strlen(s) > max)
        return bad("%s: must be 1..%s bytes", f->flag, f->type == F_EVID ? "256" : "200");
    if (f->type == F_TIME) {
        int64_t t;
        if (time_parse_rfc3339(s, &t)) return bad("%s: \"%s\" is not an RFC 3339 date-time", f->flag, s);
    }
    if (!(*out = json_string(s))) return bad("%s: \"%s\" is not UTF-8", f->flag, s);
    return 0;
}

static int conv_field(const struct flag *f, const char *s, int64_t now, int64_t *money, json_t **out) {
    char *end;
    long v;
    *out = NULL;
    switch (f->type) {
    case F_MONEY: case F_DELTA: return conv_money(f, s, money, out);
    case F_BOOL:
        if (strcmp(s, "true") && strcmp(s, "false")) return bad("%s: \"%s\" is not true or false", f->flag, s);
        *out = json_boolean(s[0] == 't');
        return 0;
    case F_LOGIC:
        if (strcmp(s, "fixed") && strcmp(s, "linear")) return bad("%s: \"%s\" is not fixed or linear", f->flag, s);
        *out = json_string(s);
        return 0;
    case F_GRACE:
        v = strtol(s, &end, 10);
        if (*end || s[0] < '0' || s[0] > '9' || v > 100)
            return bad("%s: \"%s\" is not an integer from 0 to 100", f->flag, s);
        *out = json_integer(v);
        return 0;
    case F_DATE: return conv_date(f, s, now, out);
    case F_THRESH: case F_OFFERINGS: return conv_list(f, s, out);
    case F_REASON: return conv_text(f, s, EVENT_VOID_REASON_MAX, out);
    case F_TIME: case F_EVID: return conv_text(f, s, SOURCE_MAX, out);
    }
    return EXIT_USAGE;
}

static int flag_index(const char *field) {
    for (size_t f = 0; f < NFLAGS; f++)
        if (!strcmp(FLAGS[f].field, field)) return (int)f;
    return -1;
}

/* Checks across flags the engine would otherwise reject after sending. */
static int cross_checks(const struct args *g, const int64_t money[NFLAGS]) {
    int val = flag_index("value"), exp = flag_index("expected_consumption");
    int logic = flag_index("consumption_logic"), end = flag_index("end_date");
    if (g->val[val] && g->val[exp] && money[exp] > money[val])
        return bad("--expected-consumption: %s is more than --value %s", g->val[exp], g->val[val]);
    if (g->val[logic] && !strcmp(g->val[logic], "linear") && !g->val[end])
        return bad("--consumption-logic linear needs --end-date%s%s", "", "");
    return 0;
}

/* data: org, project, then the given flags in table order. */
static int build_data(const struct args *g, int64_t now, json_t *data) {
    int64_t money[NFLAGS] = {0};
    json_t *v;
    size_t org_len = strlen(g->org), pj_len = g->project ? strlen(g->project) : 1;
    if (!org_len || org_len > ENG_ID_MAX) return bad("ORG: must be 1..200 bytes%s%s", "", "");
    if (!pj_len || pj_len > ENG_ID_MAX) return bad("PROJECT: must be 1..200 bytes%s%s", "", "");
    if (!(v = json_string(g->org))) return bad("ORG: \"%s\" is not UTF-8%s", g->org, "");
    json_object_set_new(data, "org", v);
    if (g->project) {
        if (!(v = json_string(g->project))) return bad("PROJECT: \"%s\" is not UTF-8%s", g->project, "");
        json_object_set_new(data, "project", v);
    }
    for (size_t f = 0; f < NFLAGS; f++) {
        if (!g->val[f]) continue;
        int rc = conv_field(&FLAGS[f], g->val[f], now, &money[f], &v);
        if (rc) { json_decref(v); return rc; }
        if (!v) return bad("%s: out of memory%s", FLAGS[f].flag, "");
        json_object_set_new(data, FLAGS[f].field, v);
    }
    return cross_checks(g, money);
}

/* ---- if_value from the store --------------------------------------------- */

/* grant's if_value: the organisation's balance in the store at db, read-only
 * (store_get_org: the engine's view).  No credit yet: *has = 0 (the engine
 * rejects any if_value without a credit, so a first grant sends none). */
static int read_if_value(const char *db, const char *org, int *has, int64_t *value) {
    char path[4096], err[ERRLEN];
    struct stat st;
    struct store *s;
    int n = snprintf(path, sizeof path, "%s/data.mdb", db);
    if (n < 0 || (size_t)n >= sizeof path) return bad("--db %s: path too long%s", db, "");
    if (stat(path, &st) != 0) {
        fprintf(stderr, "creditctl: --db %s: no creditd store (%s: %s)\n", db, path, strerror(errno));
        return EXIT_RUNTIME;
    }
    struct store_opts so = {.path = db, .readonly = 1};
    if (store_open(&s, &so, err, sizeof err)) {
        fprintf(stderr, "creditctl: --db %s: cannot open store: %s\n", db, err);
        return EXIT_RUNTIME;
    }
    struct eng_org *o = malloc(sizeof *o);
    int rc = o ? 0 : EXIT_RUNTIME;
    if (o) {
        eng_org_init(o);
        int g = store_get_org(s, org, o, err, sizeof err);
        *has = g == 0 && o->has_credit;
        if (*has) *value = o->value;
        if (g && g != STORE_NOTFOUND) {
            fprintf(stderr, "creditctl: --db %s: organisation %s: %s\n", db, org, err);
            rc = EXIT_RUNTIME;
        }
        eng_org_free(o);
        free(o);
    } else fprintf(stderr, "creditctl: out of memory\n");
    store_close(s);
    return rc;
}

/* The same from creditd's HTTP API (GET /v1/orgs/{org}, the store's
 * committed state as creditd sees it). */
static int http_if_value(const char *url, const char *org, int *has, int64_t *value) {
    char err[ERRLEN];
    if (ctlhttp_org_value(url, org, HTTP_TIMEOUT_MS, has, value, err, sizeof err) == 0) return 0;
    fprintf(stderr, "creditctl: --http: organisation %s: %s\n", org, err);
    return EXIT_RUNTIME;
}

/* The balance from --http when given, else from --db. */
static int current_value(const struct args *g, int *has, int64_t *value) {
    return g->http ? http_if_value(g->http, g->org, has, value) : read_if_value(g->db, g->org, has, value);
}

static int add_if_value(const struct args *g, json_t *data) {
    int has = 0;
    int64_t v = 0;
    char buf[MONEY_FMT_MAX];
    if (g->cmd->bit != C_GRANT || g->force || json_object_get(data, "if_value")) return 0;
    if (!g->db && !g->http)
        return bad("grant needs --db DIR or --http URL (to send if_value), or --force%s%s", "", "");
    int rc = current_value(g, &has, &v);
    if (rc || !has) return rc;
    money_format(v, MONEY_DIGITS, buf);
    json_object_set_new(data, "if_value", json_string(buf));
    return 0;
}

/* ---- the event ------------------------------------------------------------ */

/* A random UUID v4 (RFC 9562) from getrandom(2). */
static int uuid_v4(char out[37]) {
    unsigned char b[16];
    size_t got = 0;
    while (got < sizeof b) {
        ssize_t n = getrandom(b + got, sizeof b - got, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -1;
        got += (size_t)n;
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    static const char hex[] = "0123456789abcdef";
    for (int i = 0, o = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
        out[o] = 0;
    }
    return 0;
}

/* Wall clock, whole seconds (the producer's timestamp: §1 "time"). */
static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000;
}

static int build_event(const struct args *g, const struct config *cfg, json_t **out, char id[SOURCE_MAX + 1]) {
    char tbuf[48];
    int64_t now = now_ns();
    if (g->time && (strlen(g->time) >= sizeof tbuf || time_parse_rfc3339(g->time, &now)))
        return bad("--time: \"%s\" is not an RFC 3339 date-time%s", g->time, "");
    const char *src = g->source ? g->source : g->cmd->owner ? cfg->ctl_source_owner : cfg->ctl_source_staff;
    if (!*src || strlen(src) > SOURCE_MAX) return bad("--source: must be 1..256 bytes%s%s", "", "");
    if (g->id) {
        if (!*g->id || strlen(g->id) > SOURCE_MAX) return bad("--id: must be 1..256 bytes%s%s", "", "");
        strcpy(id, g->id);
    } else if (uuid_v4(id)) {
        fprintf(stderr, "creditctl: getrandom: %s\n", strerror(errno));
        return EXIT_RUNTIME;
    }
    if (g->time) snprintf(tbuf, sizeof tbuf, "%s", g->time); /* as given: a retry is byte-identical */
    else time_format(now, tbuf);
    json_t *ev = json_object(), *data = json_object();
    json_object_set_new(ev, "specversion", json_string("1.0"));
    json_object_set_new(ev, "id", json_string(id));
    json_object_set_new(ev, "source", json_string(src));
    json_object_set_new(ev, "type", json_string(g->cmd->type));
    json_object_set_new(ev, "time", json_string(tbuf));
    json_object_set_new(ev, "subject", json_string(g->org));
    json_object_set_new(ev, "data", data);
    int rc = build_data(g, now, data);
    if (!rc) rc = add_if_value(g, data);
    if (!rc && (!json_object_get(ev, "id") || !json_object_get(ev, "source")))
        rc = bad("--id or --source is not UTF-8%s%s", "", "");
    if (rc) json_decref(ev);
    else *out = ev;
    return rc;
}

/* ---- configuration and producing ------------------------------------------ */

/* --config and -X (kclient_tool_config, as for every tool). */
static int load_config(const struct args *g, struct config *cfg) {
    char err[ERRLEN];
    if (kclient_tool_config(cfg, "creditctl", g->config, g->xs, g->nx, err, sizeof err)) {
        fprintf(stderr, "creditctl: %s\n", err);
        return EXIT_USAGE;
    }
    return 0;
}

/* The bootstrap servers: -b, else kafka.bootstrap.servers (--config, -X). */
static int bootstrap_of(const struct args *g, const struct config *cfg, const char **bootstrap) {
    char err[ERRLEN];
    if (kclient_tool_bootstrap(cfg, g->bootstrap, bootstrap, err, sizeof err)) return bad("%s%s", err, "");
    return 0;
}

/* Produce the event keyed by org and wait for its delivery report. */
static int produce(const struct args *g, const char *bootstrap, const struct config *cfg,
                   const char *topic, const char *json) {
    static const struct kclient_prop defs[] = {
        {"partitioner", "murmur2_random"}, {"enable.idempotence", "true"},
        {"acks", "all"}, {NULL, NULL}};
    struct kprod k = {.prog = "creditctl"};
    if (kprod_new(&k, bootstrap, defs, cfg)) return EXIT_USAGE;
    int rc = 0;
    rd_kafka_resp_err_t e = rd_kafka_producev(
        kprod_rk(&k), RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_VALUE((void *)json, strlen(json)),
        RD_KAFKA_V_KEY(g->org, strlen(g->org)), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_END);
    if (e) {
        fprintf(stderr, "creditctl: producing to %s: %s\n", topic, rd_kafka_err2str(e));
        rc = EXIT_RUNTIME;
    } else if (kprod_flush(&k, FLUSH_MS) || k.delivered != 1) {
        fprintf(stderr, "creditctl: %s: the event was not confirmed by %s (topic %s)\n",
                g->cmd->name, bootstrap, topic);
        rc = EXIT_RUNTIME;
    }
    kprod_destroy(&k);
    return rc;
}

/* After a value_changed: the balance the event should have been based on. */
static void print_current(const struct args *g) {
    int has = 0;
    int64_t v = 0;
    char buf[MONEY_FMT_MAX];
    if (!g->db && !g->http) {
        printf("current balance: unknown (give --db DIR or --http URL to see it)\n");
        return;
    }
    if (current_value(g, &has, &v)) return;
    money_format(v, MONEY_DIGITS, buf);
    printf("current balance: %s\n", has ? buf : "no credit");
}

/* --wait: the outcome of the event just delivered. */
static int wait_outcome(const struct args *g, struct ctlwait *w, const char *src, const char *id) {
    char reason[CTLWAIT_REASON_MAX], err[ERRLEN];
    int rc = ctlwait_run(w, g->db, src, id, g->wait_s * 1000, reason, err, sizeof err);
    if (rc < 0) { fprintf(stderr, "creditctl: --wait: %s\n", err); return EXIT_RUNTIME; }
    if (rc == CTLWAIT_TIMEOUT) {
        fprintf(stderr, "creditctl: --wait: no outcome of %s within %d s (is creditd running? "
                "a duplicate or an event without ledger entries has none)\n", id, g->wait_s);
        return EXIT_NO_OUTCOME;
    }
    if (rc == CTLWAIT_REJECTED && !strcmp(reason, "value_changed")) print_current(g);
    return rc == CTLWAIT_REJECTED ? EXIT_REJECTED : 0;
}

/* Send (and with --wait, the wait consumer first: it must see the outcome). */
static int send_event(const struct args *g, const struct config *cfg, json_t *ev, const char *json) {
    char err[ERRLEN];
    const char *bootstrap = NULL, *topic = g->topic ? g->topic : cfg->topic_input;
    const char *id = json_string_value(json_object_get(ev, "id"));
    const char *src = json_string_value(json_object_get(ev, "source"));
    struct ctlwait *w = NULL;
    int rc = bootstrap_of(g, cfg, &bootstrap);
    if (!rc && g->wait_s &&
        ctlwait_start(&w, bootstrap, cfg, cfg->topic_ledger, cfg->topic_overage,
                      cfg->topic_rejected, err, sizeof err)) {
        fprintf(stderr, "creditctl: --wait: %s\n", err);
        rc = EXIT_RUNTIME;
    }
    if (!rc && !(rc = produce(g, bootstrap, cfg, topic, json))) {
        printf("%s\n", id);
        fflush(stdout);
        if (w) rc = wait_outcome(g, w, src, id);
    }
    ctlwait_destroy(w);
    return rc;
}

int ctlcmd_main(int argc, char **argv) {
    struct args g;
    struct config cfg;
    json_t *ev = NULL;
    char id[SOURCE_MAX + 1];
    memset(&g, 0, sizeof g);
    int rc = parse_args(&g, argc, argv);
    if (rc) { fprintf(stderr, "creditctl: usage: creditctl COMMAND --help\n"); return rc; }
    if ((rc = load_config(&g, &cfg))) return rc;
    rc = build_event(&g, &cfg, &ev, id);
    char *json = rc ? NULL : json_dumps(ev, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!rc && !json) { fprintf(stderr, "creditctl: out of memory\n"); rc = EXIT_RUNTIME; }
    if (!rc && g.dry_run) printf("%s\n", json);
    else if (!rc) rc = send_event(&g, &cfg, ev, json);
    free(json);
    json_decref(ev);
    config_free(&cfg);
    if (fflush(stdout) && !rc) rc = EXIT_RUNTIME;
    return rc;
}
