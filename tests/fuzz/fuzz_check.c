/* fuzz_check.c -- see fuzz_check.h.  Output checks follow
 * ../shared/credit-semantics.md §8 and the output code's documented shapes. */
#include "tests/fuzz/fuzz_check.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The known-open list is loaded configuration (set once at start-up); the
 * hit counts are the only other state, reported at exit. */
#define FZ_KNOWN_MAX 16
static struct { char name[48]; unsigned long hits; } known[FZ_KNOWN_MAX];
static int nknown;

void fz_known_open_set(const char *list) {
    nknown = 0;
    while (list && *list && nknown < FZ_KNOWN_MAX) {
        size_t n = strcspn(list, ", \t\n");
        if (n > 0 && n < sizeof(known[0].name)) {
            memcpy(known[nknown].name, list, n);
            known[nknown].name[n] = 0;
            known[nknown++].hits = 0;
        }
        list += n;
        list += strspn(list, ", \t\n");
    }
}

static int known_index(const char *bug) {
    for (int i = 0; i < nknown; i++)
        if (strcmp(known[i].name, bug) == 0) return i;
    return -1;
}

int fz_known_open(const char *bug) { return known_index(bug) >= 0; }

void fz_known_open_report(void) {
    for (int i = 0; i < nknown; i++)
        fprintf(stderr, "fuzz_engine: known open bug %s: %lu hits\n", known[i].name, known[i].hits);
}

int fz_violation(const char *bug, const char *fmt, ...) {
    int k = known_index(bug);
    if (k >= 0 && known[k].hits++ > 0) return 1;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz_engine: %s [%s]: ", k >= 0 ? "known open bug" : "VIOLATION", bug);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    if (k >= 0) return 1;
    __builtin_trap();
}

int fz_utf8_valid(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    for (size_t i = 0; i < n;) {
        unsigned c = s[i], need;
        uint32_t cp, min;
        if (c == 0) return 0;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) { need = 1; cp = c & 0x1F; min = 0x80; }
        else if (c >= 0xE0 && c <= 0xEF) { need = 2; cp = c & 0x0F; min = 0x800; }
        else if (c >= 0xF0 && c <= 0xF4) { need = 3; cp = c & 0x07; min = 0x10000; }
        else return 0;
        if (n - i <= need) return 0;
        for (unsigned k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += need + 1;
    }
    return 1;
}

int fz_money_parse(const char *s, int64_t *micro) {
    int neg = *s == '-';
    const char *p = s + neg, *dot = strchr(p, '.');
    if (!dot || dot == p || strlen(dot + 1) != 6) return -1;
    int64_t v = 0;
    for (; *p; p++) {
        if (p == dot) continue;
        if (*p < '0' || *p > '9') return -1;
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, *p - '0', &v)) return -1;
    }
    *micro = neg ? -v : v;
    return 0;
}

const char *fz_str(json_t *obj, const char *name) {
    return json_string_value(json_object_get(obj, name));
}

/* Shorthands: a failed check traps (or returns 1 for a known-open bug). */
#define FAIL(...) fz_violation("output_shape", __VA_ARGS__)

static int want_str(json_t *o, const char *k, const char *want, const char *what) {
    const char *v = fz_str(o, k);
    if (!v || (want && strcmp(v, want) != 0))
        return FAIL("%s: %s is %s, want %s", what, k, v ? v : "(missing)", want ? want : "a string");
    return 0;
}

static int want_str_or_null(json_t *o, const char *k, const char *what) {
    json_t *v = json_object_get(o, k);
    return json_is_string(v) || json_is_null(v) ? 0 : FAIL("%s: %s must be a string or null", what, k);
}

static int want_money(json_t *o, const char *k, int64_t *out, const char *what) {
    const char *v = fz_str(o, k);
    if (!v || fz_money_parse(v, out)) return FAIL("%s: %s is not money: %s", what, k, v ? v : "(missing)");
    return 0;
}

/* id == prefix + org + "/" + seq, seq >= 1. */
static int want_seq_id(json_t *root, json_t *d, const char *prefix, const char *what) {
    json_t *seq = json_object_get(d, "seq");
    const char *org = fz_str(d, "org"), *id = fz_str(root, "id");
    if (!json_is_integer(seq) || json_integer_value(seq) < 1 || !org || !id)
        return FAIL("%s: seq, org or id missing", what);
    char want[ENG_ID_MAX + 64];
    snprintf(want, sizeof(want), "%s%s/%" PRId64, prefix, org, (int64_t)json_integer_value(seq));
    return strcmp(id, want) ? FAIL("%s: id %s, want %s", what, id, want) : 0;
}

static int check_ledger(json_t *root, json_t *d) {
    static const char *const entries[] = {"staff_grant", "allocation", "compensation",
                                          "minimal_draw", "expiry", "revoked",
                                          "spent_on_termination", "terms", "month_closed",
                                          "refund"};
    int64_t delta, bal, orgbal;
    const char *entry = fz_str(d, "entry"), *acct = fz_str(d, "account");
    size_t i, n = sizeof(entries) / sizeof(entries[0]);
    for (i = 0; entry && i < n && strcmp(entry, entries[i]); i++) {}
    if (!entry || i == n) return FAIL("ledger: unknown entry %s", entry ? entry : "(missing)");
    if (want_seq_id(root, d, "ledger/", "ledger") || want_money(d, "delta", &delta, "ledger") ||
        want_money(d, "balance", &bal, "ledger") || want_money(d, "org_balance", &orgbal, "ledger") ||
        want_str(d, "month", NULL, "ledger") || want_str_or_null(d, "project", "ledger") ||
        want_str(d, "event_source", NULL, "ledger") || want_str(d, "event_id", NULL, "ledger"))
        return 1;
    if (!acct || (strcmp(acct, "org") && strcmp(acct, "project")))
        return FAIL("ledger: account %s", acct ? acct : "(missing)");
    if (strcmp(acct, "project") == 0 && !fz_str(d, "project"))
        return FAIL("ledger: account project without a project");
    int zero_entry = strcmp(entry, "terms") == 0 || strcmp(entry, "month_closed") == 0;
    if ((delta == 0) != zero_entry) return FAIL("ledger: %s with delta %" PRId64, entry, delta);
    if (bal < 0 || orgbal < 0) return FAIL("ledger: negative balance in %s", entry);
    if (strcmp(acct, "org") == 0 && bal != orgbal)
        return FAIL("ledger: org account balance %" PRId64 " != org_balance %" PRId64, bal, orgbal);
    return 0;
}

/* credit.overage.void (§13): voids an earlier overage of the same org. */
static int check_overage_void(json_t *root, json_t *d) {
    int64_t amount;
    const char *voids = fz_str(d, "voids"), *org = fz_str(d, "org");
    if (want_seq_id(root, d, "overage/", "overage void") ||
        want_money(d, "amount", &amount, "overage void") ||
        want_str(d, "currency", NULL, "overage void") || want_str(d, "period", NULL, "overage void") ||
        want_str(d, "billing_month", NULL, "overage void") ||
        want_str(d, "usage_source", NULL, "overage void") ||
        want_str(d, "usage_id", NULL, "overage void") ||
        want_str_or_null(d, "reason", "overage void"))
        return 1;
    char pfx[ENG_ID_MAX + 16];
    snprintf(pfx, sizeof(pfx), "overage/%s/", org);
    if (amount <= 0 || !voids || strncmp(voids, pfx, strlen(pfx)))
        return FAIL("overage void: amount %" PRId64 " (must be > 0), voids %s", amount,
                    voids ? voids : "(missing)");
    return 0;
}

static int check_overage(json_t *root, json_t *d) {
    int64_t cost, covered, amount, sum;
    const char *type = fz_str(root, "type");
    if (type && strcmp(type, "credit.overage.void") == 0) return check_overage_void(root, d);
    if (want_seq_id(root, d, "overage/", "overage") || want_money(d, "cost", &cost, "overage") ||
        want_money(d, "covered", &covered, "overage") ||
        want_money(d, "amount", &amount, "overage") || want_str(d, "reason", NULL, "overage") ||
        want_str(d, "currency", NULL, "overage") || want_str(d, "period", NULL, "overage") ||
        want_str(d, "billing_month", NULL, "overage"))
        return 1;
    if (amount <= 0 || covered < 0 || __builtin_add_overflow(covered, amount, &sum) || sum != cost)
        return FAIL("overage: covered %" PRId64 " + amount %" PRId64 " != cost %" PRId64
                    " (amount must be > 0)", covered, amount, cost);
    return 0;
}

static int check_rejected(const struct fz_line *l, json_t *root, json_t *d) {
    char want[64];
    if (l->topic) snprintf(want, sizeof(want), "rejected/%" PRId32 "/%" PRId64, l->partition, l->offset);
    else snprintf(want, sizeof(want), "rejected/file/%" PRId64, l->offset);
    if (want_str(root, "id", want, "rejected") || want_str(d, "reason", NULL, "rejected") ||
        want_str(d, "message", NULL, "rejected") || want_str(d, "raw", NULL, "rejected") ||
        want_str_or_null(d, "event_source", "rejected") ||
        want_str_or_null(d, "event_id", "rejected"))
        return 1;
    json_t *part = json_object_get(d, "partition"), *off = json_object_get(d, "offset");
    const char *topic = fz_str(d, "topic"), *enc = fz_str(d, "raw_encoding");
    if (!json_is_integer(part) || json_integer_value(part) != l->partition ||
        !json_is_integer(off) || json_integer_value(off) != l->offset ||
        (l->topic ? !topic || strcmp(topic, l->topic) : !json_is_null(json_object_get(d, "topic"))))
        return FAIL("rejected: topic, partition or offset do not name the message");
    if (!enc || (strcmp(enc, "utf-8") && strcmp(enc, "base64")))
        return FAIL("rejected: raw_encoding %s", enc ? enc : "(missing)");
    json_t *raw = json_object_get(d, "raw");
    if (strcmp(enc, "utf-8") == 0 && !json_is_true(json_object_get(d, "raw_truncated")) &&
        (json_string_length(raw) != l->len || memcmp(json_string_value(raw), l->buf, l->len)))
        return FAIL("rejected: raw is not the message");
    return 0;
}

json_t *fz_check_output(const struct fz_line *l, enum eng_out_kind kind, const char *key,
                        const char *json, size_t len) {
    static const char *const types[ENG_OUT_NKIND] = {"credit.overage", "credit.ledger",
                                                     "credit.rejected", "credit.alert"};
    if (!fz_utf8_valid(json, len) &&
        fz_violation("output_utf8", "line %" PRId64 ": %s output is not valid UTF-8: %.*s",
                     l->offset, types[kind], (int)(len < 400 ? len : 400), json))
        return NULL;
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!json_is_object(root)) {
        fz_violation("output_json", "line %" PRId64 ": output does not read back as an object: %s",
                     l->offset, jerr.text);
        json_decref(root);
        return NULL;
    }
    json_t *d = json_object_get(root, "data");
    const char *subject = fz_str(root, "subject");
    int bad = want_str(root, "specversion", "1.0", types[kind]) ||
              want_str(root, "source", "creditd", types[kind]) ||
              (kind == ENG_OUT_OVERAGE && fz_str(root, "type") &&
                       strcmp(fz_str(root, "type"), "credit.overage.void") == 0
                   ? 0 : want_str(root, "type", types[kind], types[kind])) ||
              want_str(root, "datacontenttype", "application/json", types[kind]) ||
              (kind != ENG_OUT_REJECTED && want_str(root, "time", NULL, types[kind]));
    if (!bad && !json_is_object(d)) bad = FAIL("%s: data is not an object", types[kind]);
    if (!bad && (key ? !subject || strcmp(subject, key) : subject != NULL))
        bad = FAIL("%s: subject %s, key %s", types[kind], subject ? subject : "-", key ? key : "-");
    if (!bad && kind != ENG_OUT_REJECTED && (!key || strcmp(key, fz_str(d, "org") ? fz_str(d, "org") : "")))
        bad = FAIL("%s: key %s is not data.org", types[kind], key ? key : "-");
    if (!bad && kind == ENG_OUT_LEDGER) bad = check_ledger(root, d);
    if (!bad && kind == ENG_OUT_OVERAGE) bad = check_overage(root, d);
    if (!bad && kind == ENG_OUT_REJECTED) bad = check_rejected(l, root, d);
    if (bad) { /* only reached for a known open bug: the caller skips the output */
        json_decref(root);
        return NULL;
    }
    return root;
}
