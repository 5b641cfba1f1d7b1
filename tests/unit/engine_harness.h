/* engine_harness.h -- the engine test harness shared by test_engine.c and
 * test_guards.c: the in-memory store, feeding messages as file replay or
 * per partition, and field-by-field checks of every output (moved out of
 * test_engine.c unchanged, plus h_open_cfg).  Static functions: each test
 * file uses a part of them. */
#ifndef CREDITD_ENGINE_HARNESS_H
#define CREDITD_ENGINE_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "engine/engine.h"
#include "engine/timeutil.h"
#include "tests/unit/memstore.h"

#pragma GCC diagnostic ignored "-Wunused-function"
/* ---- harness -------------------------------------------------------------- */

struct h {
    struct memstore ms;
    struct engine_store ops;
    struct engine *e;
    int64_t line;              /* offset of the last message fed */
    size_t mark;               /* first output of the last message fed */
    json_t **parsed;           /* parsed outputs (lazily), index = output index */
    size_t nparsed;
    struct engine_result res;
    char err[512];
    /* The last message fed, as far as it was readable. */
    char *last;
    size_t lastlen;
    const char *topic;
    int32_t part;
    char time[128], id[300], source[300];
};

/* A fresh store and an engine with cfg (currency must be EUR). */
static void h_open_cfg(struct h *h, const struct engine_config *cfg) {
    char err[256];
    memset(h, 0, sizeof(*h));
    memstore_init(&h->ms);
    h->ms.split_alerts = 1; /* alerts in h->ms.alerts (alert tests: test_alerts.c) */
    memstore_ops(&h->ms, &h->ops);
    if (engine_new(&h->e, cfg, err, sizeof(err)) != 0) fail_msg("engine_new: %s", err);
}

/* The guards off (max_future 0, no source lists), as before v1.3. */
static void h_open(struct h *h, int64_t close_after) {
    struct engine_config cfg = {.close_after_s = close_after, .currency = "EUR"};
    h_open_cfg(h, &cfg);
}

static void h_close(struct h *h) {
    engine_free(h->e);
    memstore_free(&h->ms);
    for (size_t i = 0; i < h->nparsed; i++) json_decref(h->parsed[i]);
    free(h->parsed);
    free(h->last);
    memset(h, 0, sizeof(*h));
}

static void h_reset(struct h *h, int64_t close_after) {
    h_close(h);
    h_open(h, close_after);
}

static int setup(void **state) {
    struct h *h = calloc(1, sizeof(*h));
    if (!h) return -1;
    h_open(h, 0);
    *state = h;
    return 0;
}

static int teardown(void **state) {
    struct h *h = *state;
    h_close(h);
    free(h);
    return 0;
}

static void copy_attr(json_t *root, const char *k, char *dst, size_t n) {
    json_t *v = json_is_object(root) ? json_object_get(root, k) : NULL;
    snprintf(dst, n, "%s", json_is_string(v) ? json_string_value(v) : "");
}

/* Apply one message; returns engine_apply's return value. */
static int feed_raw(struct h *h, const char *topic, int32_t part, const char *buf, size_t len) {
    free(h->last);
    h->last = malloc(len + 1);
    assert_non_null(h->last);
    memcpy(h->last, buf, len);
    h->last[len] = 0;
    h->lastlen = len;
    h->topic = topic;
    h->part = part;
    json_t *root = json_loadb(buf, len, 0, NULL);
    copy_attr(root, "time", h->time, sizeof(h->time));
    copy_attr(root, "id", h->id, sizeof(h->id));
    copy_attr(root, "source", h->source, sizeof(h->source));
    json_decref(root);
    struct engine_msg m = {buf, len, topic, part, ++h->line};
    h->mark = h->ms.nout;
    h->err[0] = 0;
    memset(&h->res, 0xff, sizeof(h->res));
    return engine_apply(h->e, &h->ops, &m, &h->res, h->err, sizeof(h->err));
}

/* Apply one message that must not hit a store error; returns the outcome. */
static int feed_t(struct h *h, const char *topic, int32_t part, const char *s) {
    int rc = feed_raw(h, topic, part, s, strlen(s));
    if (rc != 0) fail_msg("engine_apply: rc %d (%s) for %s", rc, h->err, s);
    return (int)h->res.outcome;
}
static int feed(struct h *h, const char *s) { return feed_t(h, NULL, 0, s); }

/* Single quotes -> double quotes, so JSON can be written readably in C. */
static char *dq(char *s) {
    for (char *p = s; *p; p++)
        if (*p == '\'') *p = '"';
    return s;
}

/* A CloudEvent: id/time NULL = attribute left out; data_fmt NULL = no data.
 * data_fmt is printf-style JSON with single quotes. */
__attribute__((format(printf, 8, 9)))
static int evx(struct h *h, const char *topic, int32_t part, const char *source, const char *id,
               const char *type, const char *t, const char *data_fmt, ...) {
    char data[4096], msg[8192], a[400] = "", b[200] = "";
    data[0] = 0;
    if (data_fmt) {
        va_list ap;
        va_start(ap, data_fmt);
        vsnprintf(data, sizeof(data), data_fmt, ap);
        va_end(ap);
    }
    if (id) snprintf(a, sizeof(a), ",'id':'%s'", id);
    if (t) snprintf(b, sizeof(b), ",'time':'%s'", t);
    snprintf(msg, sizeof(msg), "{'specversion':'1.0'%s,'source':'%s','type':'%s'%s%s%s}", a,
             source, type, b, data_fmt ? ",'data':" : "", data);
    return feed_t(h, topic, part, dq(msg));
}
#define EV(h, id, type, t, ...) evx(h, NULL, 0, "test", id, type, t, __VA_ARGS__)

static int usage(struct h *h, const char *id, const char *t, const char *org, const char *proj,
                 const char *offering, const char *amount) {
    return EV(h, id, "usage", t,
              "{'org':'%s','project':'%s','resource':'r-%s','offering':'%s','component':'cpu',"
              "'amount':'%s'}",
              org, proj, proj, offering, amount);
}

static int tick(struct h *h, const char *t) {
    char id[80];
    snprintf(id, sizeof(id), "tick-%s", t);
    return evx(h, NULL, 0, "clock", id, "clock.tick", t, NULL);
}

/* An org credit of `value` set on 2026-01-05 (fixed, no minimum). */
static void org_1000(struct h *h, const char *org) {
    char id[64];
    snprintf(id, sizeof(id), "set-%s", org);
    assert_int_equal(EV(h, id, "org_credit.set", "2026-01-05T10:00:00Z",
                        "{'org':'%s','value':'1000'}", org),
                     ENG_APPLIED);
}

static size_t nnew(struct h *h) { return h->ms.nout - h->mark; }

static json_t *out_at(struct h *h, size_t i) {
    assert_true(i < h->ms.nout);
    if (i >= h->nparsed) {
        h->parsed = realloc(h->parsed, h->ms.nout * sizeof(*h->parsed));
        assert_non_null(h->parsed);
        for (size_t k = h->nparsed; k < h->ms.nout; k++) h->parsed[k] = NULL;
        h->nparsed = h->ms.nout;
    }
    if (!h->parsed[i]) {
        json_error_t je;
        h->parsed[i] = json_loads(h->ms.out[i].json, JSON_REJECT_DUPLICATES, &je);
        if (!h->parsed[i]) fail_msg("output %zu is not JSON (%s): %s", i, je.text, h->ms.out[i].json);
    }
    return h->parsed[i];
}
#define NEW(h, k) out_at(h, (h)->mark + (k))

static const char *sget(json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}
static const char *dget(json_t *o, const char *k) { return sget(json_object_get(o, "data"), k); }

static json_t *sq_json(const char *s) {
    char *c = strdup(s);
    json_error_t je;
    json_t *j = json_loads(dq(c), 0, &je);
    if (!j) fail_msg("bad expected JSON (%s): %s", je.text, c);
    free(c);
    return j;
}

static int streq(const char *a, const char *b) {
    return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

#define CHK(cond, ...)                                                      \
    do {                                                                    \
        if (!(cond)) {                                                      \
            print_error(__VA_ARGS__);                                       \
            print_error("\n  output: %s\n", h->ms.out[h->mark + k].json);   \
            json_decref(want);                                              \
            _fail(file, line);                                              \
        }                                                                   \
    } while (0)

/* Output k of the last message is of `type`, and every key of `want` (stolen)
 * is in its data with an equal value.  Plus what every output of the type
 * must satisfy (§8, choices 11 and 13). */
static void check_out(struct h *h, size_t k, const char *type, json_t *want, const char *file,
                      int line) {
    if (!want) {
        print_error("check_out: bad expectation\n");
        _fail(file, line);
    }
    if (k >= nnew(h)) {
        print_error("output %zu of the last message wanted (%s), it has %zu\n", k, type, nnew(h));
        for (size_t i = h->mark; i < h->ms.nout; i++) print_error("  %s\n", h->ms.out[i].json);
        json_decref(want);
        _fail(file, line);
    }
    json_t *o = NEW(h, k), *d = json_object_get(o, "data");
    const struct memstore_out *mo = &h->ms.out[h->mark + k];
    enum eng_out_kind kind = strcmp(type, "credit.ledger") == 0    ? ENG_OUT_LEDGER
                             : strcmp(type, "credit.overage") == 0 ? ENG_OUT_OVERAGE
                                                                   : ENG_OUT_REJECTED;
    CHK(streq(sget(o, "type"), type), "output %zu: type %s, want %s", k, sget(o, "type"), type);
    CHK(mo->kind == kind, "output %zu: kind %d, want %d", k, (int)mo->kind, (int)kind);
    CHK(streq(sget(o, "specversion"), "1.0"), "output %zu: specversion", k);
    CHK(streq(sget(o, "source"), "creditd"), "output %zu: source", k);
    CHK(json_is_object(d), "output %zu: no data", k);
    const char *key;
    json_t *wv;
    json_object_foreach(want, key, wv) {
        json_t *av = json_object_get(d, key);
        if (!av || !json_equal(av, wv)) {
            char *ws = json_dumps(wv, JSON_ENCODE_ANY);
            char *as = av ? json_dumps(av, JSON_ENCODE_ANY) : NULL;
            print_error("output %zu (%s): data.%s = %s, want %s\n", k, type, key,
                        as ? as : "(missing)", ws);
            free(ws);
            free(as);
            CHK(0, "mismatch");
        }
    }
    if (kind == ENG_OUT_REJECTED) {
        char id[64];
        if (h->topic) snprintf(id, sizeof(id), "rejected/%d/%lld", (int)h->part, (long long)h->line);
        else snprintf(id, sizeof(id), "rejected/file/%lld", (long long)h->line);
        CHK(streq(sget(o, "id"), id), "output %zu: id %s, want %s", k, sget(o, "id"), id);
        CHK(json_integer_value(json_object_get(d, "offset")) == h->line, "output %zu: offset", k);
        CHK(json_integer_value(json_object_get(d, "partition")) == h->part, "output %zu: partition", k);
        CHK(streq(dget(o, "topic"), h->topic), "output %zu: topic", k);
        CHK(json_is_boolean(json_object_get(d, "raw_truncated")), "output %zu: raw_truncated", k);
        if (streq(dget(o, "raw_encoding"), "utf-8") && json_is_false(json_object_get(d, "raw_truncated")))
            CHK(streq(dget(o, "raw"), h->last), "output %zu: raw is not the message", k);
        CHK(dget(o, "message") && strlen(dget(o, "message")) > 0, "output %zu: no message", k);
        if (h->time[0] && sget(o, "time"))
            CHK(streq(sget(o, "time"), h->time), "output %zu: time %s, want %s", k, sget(o, "time"), h->time);
    } else {
        const char *org = dget(o, "org");
        char id[400];
        snprintf(id, sizeof(id), "%s/%s/%lld", kind == ENG_OUT_LEDGER ? "ledger" : "overage",
                 org ? org : "?", (long long)json_integer_value(json_object_get(d, "seq")));
        CHK(org != NULL, "output %zu: no org", k);
        CHK(streq(sget(o, "id"), id), "output %zu: id %s, want %s", k, sget(o, "id"), id);
        CHK(streq(mo->key, org), "output %zu: key %s, want %s", k, mo->key, org);
        CHK(streq(sget(o, "subject"), org), "output %zu: subject", k);
        /* time is the causing event's time string verbatim (choice 11) */
        CHK(streq(sget(o, "time"), h->time), "output %zu: time %s, want %s", k, sget(o, "time"), h->time);
        const char *pfx = kind == ENG_OUT_LEDGER ? "event" : "usage";
        char ks[32], ki[32];
        snprintf(ks, sizeof(ks), "%s_source", pfx);
        snprintf(ki, sizeof(ki), "%s_id", pfx);
        CHK(streq(dget(o, ks), h->source), "output %zu: %s %s, want %s", k, ks, dget(o, ks), h->source);
        CHK(streq(dget(o, ki), h->id), "output %zu: %s %s, want %s", k, ki, dget(o, ki), h->id);
        if (kind == ENG_OUT_LEDGER) {
            const char *e = dget(o, "entry"), *delta = dget(o, "delta");
            int zero = streq(e, "terms") || streq(e, "month_closed");
            CHK(delta && zero == streq(delta, "0.000000"), "output %zu: delta %s of %s", k, delta, e);
        } else {
            CHK(streq(dget(o, "currency"), "EUR"), "output %zu: currency", k);
        }
    }
    json_decref(want);
}

#define LEDGER(h, k, entry, project, account, delta, balance, orgbal, month, late)              \
    check_out(h, k, "credit.ledger",                                                            \
              json_pack("{s:s, s:s?, s:s, s:s, s:s, s:s, s:s, s:b}", "entry", entry, "project", \
                        project, "account", account, "delta", delta, "balance", balance,       \
                        "org_balance", orgbal, "month", month, "late", late),                   \
              __FILE__, __LINE__)

static json_t *with(json_t *o, const char *k, json_t *v) {
    if (o && v) json_object_set_new(o, k, v);
    return o;
}

/* terms entry; terms_sq is the full expected terms object (single quotes). */
#define TERMS(h, k, project, balance, orgbal, month, late, terms_sq)                              \
    check_out(h, k, "credit.ledger",                                                              \
              with(json_pack("{s:s, s:s?, s:s, s:s, s:s, s:s, s:s, s:b}", "entry", "terms",       \
                             "project", project, "account", (project) ? "project" : "org",        \
                             "delta", "0.000000", "balance", balance, "org_balance", orgbal,      \
                             "month", month, "late", late),                                       \
                   "terms", sq_json(terms_sq)),                                                   \
              __FILE__, __LINE__)

#define CLOSED(h, k, project, month, consumed, minimum, draw, expnext, balance, orgbal)             \
    check_out(h, k, "credit.ledger",                                                                \
              json_pack("{s:s, s:s?, s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:s, s:s, s:s}", "entry",   \
                        "month_closed", "project", project, "account",                              \
                        (project) ? "project" : "org", "delta", "0.000000", "balance", balance,     \
                        "org_balance", orgbal, "month", month, "late", 0, "consumed", consumed,     \
                        "minimum", minimum, "draw", draw, "expected_next", expnext),                \
              __FILE__, __LINE__)

#define OVER(h, k, project, reason, cost, covered, amount, period, billing, late)                 \
    check_out(h, k, "credit.overage",                                                             \
              json_pack("{s:s?, s:s, s:s, s:s, s:s, s:s, s:s, s:b}", "project", project,          \
                        "reason", reason, "cost", cost, "covered", covered, "amount", amount,     \
                        "period", period, "billing_month", billing, "late", late),                \
              __FILE__, __LINE__)

/* A reject whose message names `field`. */
static void check_rej(struct h *h, size_t k, const char *reason, const char *field,
                      const char *file, int line) {
    check_out(h, k, "credit.rejected", json_pack("{s:s}", "reason", reason), file, line);
    const char *msg = dget(NEW(h, k), "message");
    if (!msg || !strstr(msg, field)) {
        print_error("reject message \"%s\" does not name \"%s\"\n", msg ? msg : "(null)", field);
        _fail(file, line);
    }
}
#define REJ(h, k, reason, field) check_rej(h, k, reason, field, __FILE__, __LINE__)

/* The last message was rejected with `reason` and produced only the reject. */
#define REJECTED_ONLY(h, reason, field)                               \
    do {                                                              \
        assert_int_equal((h)->res.outcome, ENG_REJECTED);             \
        assert_int_equal(nnew(h), 1);                                 \
        REJ(h, 0, reason, field);                                     \
    } while (0)

#define U(x) ((int64_t)(x) * INT64_C(1000000))

static struct eng_org *org_of(struct h *h, const char *org) {
    struct eng_org *o = memstore_org(&h->ms, org);
    if (!o) fail_msg("org %s is not in the store", org);
    return o;
}
static int64_t V(struct h *h, const char *org) { return org_of(h, org)->value; }
static struct eng_project *proj_of(struct h *h, const char *org, const char *p) {
    struct eng_org *o = org_of(h, org);
    for (size_t i = 0; i < o->nproj; i++)
        if (strcmp(o->proj[i].id, p) == 0) return &o->proj[i];
    fail_msg("project %s/%s is not in the store", org, p);
    return NULL;
}
static int64_t P(struct h *h, const char *org, const char *p) { return proj_of(h, org, p)->value; }
/* A project whose credit ended (and that has no open month) is gone from the store. */
static int has_project_credit(struct h *h, const char *org, const char *p) {
    struct eng_project *pr = eng_org_find_project(org_of(h, org), p);
    return pr && pr->has_credit;
}

static int32_t MON(const char *ym) {
    char d[16];
    int32_t m;
    int day;
    snprintf(d, sizeof(d), "%s-01", ym);
    assert_int_equal(time_parse_date(d, &m, &day), 0);
    return m;
}

/* Sequences: per org and output type, 1, 2, 3... in emission order (§8). */
static void check_seqs(struct h *h) {
    struct { char org[ENG_ID_MAX + 1]; int64_t n[2]; } seen[32];
    size_t ns = 0;
    for (size_t i = 0; i < h->ms.nout; i++) {
        if (h->ms.out[i].kind == ENG_OUT_REJECTED) continue;
        json_t *o = out_at(h, i);
        const char *org = dget(o, "org");
        assert_non_null(org);
        size_t j;
        for (j = 0; j < ns && strcmp(seen[j].org, org) != 0; j++) {}
        if (j == ns) {
            assert_true(ns < 32);
            snprintf(seen[ns].org, sizeof(seen[ns].org), "%s", org);
            seen[ns].n[0] = seen[ns].n[1] = 0;
            ns++;
        }
        int64_t want = ++seen[j].n[h->ms.out[i].kind];
        int64_t got = json_integer_value(json_object_get(json_object_get(o, "data"), "seq"));
        if (got != want) fail_msg("output %zu: seq %lld, want %lld", i, (long long)got, (long long)want);
    }
}

static size_t count_kind(struct h *h, enum eng_out_kind kind) {
    size_t n = 0;
    for (size_t i = 0; i < h->ms.nout; i++) n += h->ms.out[i].kind == kind;
    return n;
}

/* Lines of a file (without newline); *n lines. */
static char **read_lines(const char *path, size_t *n) {
    FILE *f = fopen(path, "r");
    if (!f) fail_msg("cannot open %s (run from the repository root)", path);
    char **v = NULL, *buf = NULL;
    size_t cap = 0;
    ssize_t len;
    *n = 0;
    while ((len = getline(&buf, &cap, f)) >= 0) {
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) buf[--len] = 0;
        if (len == 0) continue;
        v = realloc(v, (*n + 1) * sizeof(*v));
        assert_non_null(v);
        v[(*n)++] = strdup(buf);
    }
    free(buf);
    fclose(f);
    return v;
}

static void free_lines(char **v, size_t n) {
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

#define ORG_TERMS_FIXED(exp, grace, end, offs)                                              \
    "{'consumption_logic':'fixed','expected_consumption':'" exp "','grace_coefficient':" grace \
    ",'apply_as_minimal_consumption':true,'end_date':" end                                   \
    ",'reserve_allocations':true,'offerings':" offs "}"

#endif
