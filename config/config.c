/* config.c -- creditd.conf parsing, -X overrides, validation and dump.
 *
 * Every creditd key is described once in SPECS (name, kind, field, bounds);
 * setting, validating and dumping are driven by that table.  The bounds of
 * credit.* repeat the engine's (ENGINE_MAX_CLOSE_AFTER, ENGINE_CURRENCY_MAX in
 * engine/engine.h, which engine_new() checks again); engine.h is not included
 * because it pulls in jansson and this module is pure parsing. */
#include "config/config.h"
#include "config/config_int.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <fcntl.h>

#include "engine/guard.h"  /* pure: the engine's own parser checks the source lists */

_Static_assert(CONFIG_SOURCES == GUARD_NCLASS, "one sources.* key per guard class");

#define DEFAULT_MAP_SIZE (UINT64_C(1) << 30)
#define MSG_MAX 192   /* a parse message, before "ORIGIN: KEY: " */

enum kind { K_STRING, K_TOPIC, K_CURRENCY, K_INT, K_SIZE, K_PARTITIONS, K_SOURCES, K_LISTEN, K_CHOICE };

struct spec {
    const char *name;
    enum kind kind;
    size_t off;          /* offsetof(struct config, field) */
    size_t cap;          /* strings: sizeof the char array */
    int64_t min, max;    /* K_INT, K_SIZE */
    const char *const *choices;   /* K_CHOICE: the allowed values, NULL-terminated */
};

#define STR(n, f, k) {n, k, offsetof(struct config, f), sizeof(((struct config *)0)->f), 0, 0, NULL}
#define NUM(n, f, k, lo, hi) {n, k, offsetof(struct config, f), 0, lo, hi, NULL}
#define CHOICE(n, f, list) \
    {n, K_CHOICE, offsetof(struct config, f), sizeof(((struct config *)0)->f), 0, 0, list}

/* The values of log.format and log.level: the names consumer/log.c parses
 * (test_log checks every one is accepted by log_init). */
static const char *const LOG_FORMATS[] = {"text", "json", NULL};
static const char *const LOG_LEVELS[] = {"debug", "info", "warn", "error", NULL};
static const char *const ASSIGNMENTS[] = {"static", "group", NULL};

/* Sorted by name: config_dump() prints them in this order. */
static const struct spec SPECS[] = {
    NUM("batch.linger_ms", batch_linger_ms, K_INT, 0, 60000),
    NUM("batch.max_messages", batch_max_messages, K_INT, 1, 1000000),
    NUM("batch.max_ms", batch_max_ms, K_INT, 1, 60000),
    NUM("credit.close_after", credit_close_after_s, K_INT, 0, 90 * 86400),
    STR("credit.currency", credit_currency, K_CURRENCY),
    NUM("credit.max_future", credit_max_future_s, K_INT, 0, GUARD_MAX_FUTURE_MAX),
    NUM("credit.retention_days", credit_retention_days, K_INT, 0, GUARD_RETENTION_DAYS_MAX),
    STR("creditctl.source_owner", ctl_source_owner, K_STRING),
    STR("creditctl.source_staff", ctl_source_staff, K_STRING),
    STR("group.id", group_id, K_STRING),
    STR("http.listen", http_listen, K_LISTEN),
    NUM("http.max_connections", http_max_connections, K_INT, 1, 1024),
    NUM("http.ready_max_lag", http_ready_max_lag, K_INT, 1, INT64_C(1000000000000)),
    NUM("http.timeout_s", http_timeout_s, K_INT, 1, 300),
    CHOICE("input.assignment", input_assignment, ASSIGNMENTS),
    NUM("input.parse_threads", input_parse_threads, K_INT, 0, CONFIG_PARSE_THREADS_MAX),
    {"input.partitions", K_PARTITIONS, offsetof(struct config, input_partitions), 0, 0, 0, NULL},
    CHOICE("log.format", log_format, LOG_FORMATS),
    CHOICE("log.level", log_level, LOG_LEVELS),
    NUM("outbox.max_pending", outbox_max_pending, K_INT, 1, 100000000),
    STR("output.alerts", topic_alerts, K_TOPIC),
    NUM("shutdown.flush_timeout_ms", shutdown_flush_timeout_ms, K_INT, 0, 3600000),
    /* min = the guard class (enum guard_class) */
    {"sources.allocate", K_SOURCES, offsetof(struct config, sources[GUARD_ALLOCATE]), 0, GUARD_ALLOCATE, 0, NULL},
    {"sources.clock", K_SOURCES, offsetof(struct config, sources[GUARD_CLOCK]), 0, GUARD_CLOCK, 0, NULL},
    {"sources.grant", K_SOURCES, offsetof(struct config, sources[GUARD_GRANT]), 0, GUARD_GRANT, 0, NULL},
    {"sources.usage", K_SOURCES, offsetof(struct config, sources[GUARD_USAGE]), 0, GUARD_USAGE, 0, NULL},
    STR("state.changelog.topic", state_changelog_topic, K_TOPIC),
    NUM("state.standby_replicas", state_standby_replicas, K_INT, 0, 1),
    NUM("stats.interval_ms", stats_interval_ms, K_INT, 0, 86400000),
    NUM("store.map_size", store_map_size, K_SIZE, INT64_C(1) << 20, INT64_C(1) << 44),
    STR("store.path", store_path, K_STRING),
    STR("topic.input", topic_input, K_TOPIC),
    STR("topic.ledger", topic_ledger, K_TOPIC),
    STR("topic.overage", topic_overage, K_TOPIC),
    STR("topic.rejected", topic_rejected, K_TOPIC),
};
#define NSPECS (sizeof SPECS / sizeof SPECS[0])

/* The six topics (the changelog's too), which must differ (outputs written to the input would loop). */
static const char *const TOPIC_KEYS[] = {"topic.input", "topic.overage", "topic.ledger",
                                         "topic.rejected", "output.alerts", "state.changelog.topic"};

/* Working value of a creditd key between parsing and assignment. */
union parsed {
    int64_t i;
    char *text;     /* K_SOURCES: malloc'ed copy */
    struct {
        int32_t v[CONFIG_PARTITIONS_MAX];
        size_t n;
    } parts;
};

/* ---- small helpers ---------------------------------------------------- */

static int fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static char *skip_ws(char *s) {
    while (isspace((unsigned char)*s)) s++;
    return s;
}

static void rtrim(char *s) {
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
}

/* Trim the range [*b, *e) of whitespace. */
static void trim_range(const char **b, const char **e) {
    while (*b < *e && isspace((unsigned char)**b)) (*b)++;
    while (*e > *b && isspace((unsigned char)(*e)[-1])) (*e)--;
}

/* a followed by b, malloc'ed; NULL when out of memory. */
static char *concat(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 1);
    if (!s) return NULL;
    memcpy(s, a, la);
    memcpy(s + la, b, lb + 1);
    return s;
}

/* Zero then free (kafka values may be credentials). */
static void wipe_free(char *s) {
    if (!s) return;
    volatile char *p = s;
    while (*p) *p++ = '\0';
    free(s);
}

/* arr grown to hold at least need elements of size bytes (*cap updated), or
 * NULL when out of memory (arr and *cap untouched). */
static void *grow(void *arr, size_t *cap, size_t need, size_t size) {
    if (need <= *cap) return arr;
    size_t ncap = *cap ? *cap * 2 : 8;
    while (ncap < need) ncap *= 2;
    void *p = realloc(arr, ncap * size);
    if (p) *cap = ncap;
    return p;
}

static int name_char(char ch) {
    return isalnum((unsigned char)ch) || ch == '.' || ch == '_' || ch == '-';
}

/* Non-empty and only [A-Za-z0-9._-]. */
static int name_ok(const char *s) {
    if (*s == '\0') return 0;
    for (; *s; s++)
        if (!name_char(*s)) return 0;
    return 1;
}

/* The semantics (v1.3 §6, §11, §14) and issue 7 name these settings without
 * the "credit." prefix: both spellings set the same key (dumped with it). */
static const char *const ALIASES[][2] = {
    {"close_after", "credit.close_after"},
    {"max_future", "credit.max_future"},
    {"retention_days", "credit.retention_days"},
};

static const struct spec *spec_find(const char *name) {
    for (size_t i = 0; i < sizeof ALIASES / sizeof ALIASES[0]; i++)
        if (strcmp(ALIASES[i][0], name) == 0) name = ALIASES[i][1];
    for (size_t i = 0; i < NSPECS; i++)
        if (strcmp(SPECS[i].name, name) == 0) return &SPECS[i];
    return NULL;
}

/* Key whose first dot-component is that of some creditd key ("batch.size"). */
static int creditd_namespace(const char *key) {
    size_t n = strcspn(key, ".");
    for (size_t i = 0; i < NSPECS; i++)
        if (strncmp(SPECS[i].name, key, n) == 0 && SPECS[i].name[n] == '.') return 1;
    return 0;
}

/* ---- origins: duplicates and messages --------------------------------- */

/* Length of origin without a trailing ":LINE" (its source). */
static size_t source_len(const char *origin) {
    size_t n = strlen(origin), i = n;
    while (i > 0 && isdigit((unsigned char)origin[i - 1])) i--;
    return (i < n && i > 0 && origin[i - 1] == ':') ? i - 1 : n;
}

static int is_file_origin(const char *origin) {
    return source_len(origin) != strlen(origin);
}

static struct config_origin *origin_find(const struct config *c, const char *key) {
    for (size_t i = 0; i < c->norigins; i++)
        if (strcmp(c->origins[i].key, key) == 0) return &c->origins[i];
    return NULL;
}

static const char *origin_of(const struct config *c, const char *key) {
    const struct config_origin *o = origin_find(c, key);
    return o ? o->origin : "default";
}

/* Error when key was already set from the same source as origin. */
static int check_dup(const struct config *c, const char *key, const char *origin, char *err,
                     size_t errlen) {
    const struct config_origin *o = origin_find(c, key);
    if (!o) return 0;
    size_t a = source_len(o->origin), b = source_len(origin);
    if (a != b || memcmp(o->origin, origin, a) != 0) return 0;
    return fail(err, errlen, "%s: %s: duplicate key (already set at %s)", origin, key, o->origin);
}

/* Remember that key was set at origin; -1 when out of memory (c unchanged). */
static int origin_record(struct config *c, const char *key, const char *origin) {
    struct config_origin *o = origin_find(c, key);
    char *org = concat(origin, "");
    if (!org) return -1;
    if (o) {
        free(o->origin);
        o->origin = org;
        return 0;
    }
    char *k = concat(key, "");
    void *arr = k ? grow(c->origins, &c->origins_cap, c->norigins + 1, sizeof *c->origins) : NULL;
    if (!arr) {
        free(k);
        free(org);
        return -1;
    }
    c->origins = arr;
    c->origins[c->norigins].key = k;
    c->origins[c->norigins].origin = org;
    c->norigins++;
    return 0;
}

/* ---- value parsing ---------------------------------------------------- */

/* Decimal integer s[0..len) with optional '-'; magnitudes beyond int64
 * saturate (the range check then refuses them).  -1 if not an integer. */
static int parse_int(const char *s, size_t len, int64_t *out) {
    size_t i = (len > 0 && s[0] == '-') ? 1 : 0;
    int64_t v = 0;
    if (i == len) return -1;
    for (size_t j = i; j < len; j++) {
        if (s[j] < '0' || s[j] > '9') return -1;
        int d = s[j] - '0';
        v = (v > (INT64_MAX - d) / 10) ? INT64_MAX : v * 10 + d;
    }
    *out = i ? -v : v;
    return 0;
}

/* shown (the value as written) must be within the spec's bounds. */
static int check_range(const struct spec *ks, int64_t v, const char *shown, char *msg,
                       size_t msglen) {
    if (v >= ks->min && v <= ks->max) return 0;
    snprintf(msg, msglen, "%s is outside %lld..%lld%s", shown, (long long)ks->min,
             (long long)ks->max, ks->kind == K_SIZE ? " bytes" : "");
    return -1;
}

/* Bytes, optionally with a binary suffix K, M or G (either case). */
static int parse_size(const struct spec *ks, const char *s, int64_t *out, char *msg,
                      size_t msglen) {
    size_t len = strlen(s);
    int shift = 0;
    if (len > 0 && strchr("KkMmGg", s[len - 1])) {
        char u = (char)toupper((unsigned char)s[len - 1]);
        shift = u == 'K' ? 10 : u == 'M' ? 20 : 30;
        len--;
    }
    int64_t v;
    if (parse_int(s, len, &v) != 0) {
        snprintf(msg, msglen, "not a size (bytes, or a number with suffix K, M or G)");
        return -1;
    }
    if (v > (INT64_MAX >> shift)) v = INT64_MAX;
    else if (v < -(INT64_MAX >> shift)) v = -INT64_MAX;
    else v *= INT64_C(1) << shift;
    if (check_range(ks, v, s, msg, msglen)) return -1;
    *out = v;
    return 0;
}

static int parse_bounded(const struct spec *ks, const char *s, int64_t *out, char *msg,
                         size_t msglen) {
    int64_t v;
    if (parse_int(s, strlen(s), &v) != 0) {
        snprintf(msg, msglen, "not an integer");
        return -1;
    }
    if (check_range(ks, v, s, msg, msglen)) return -1;
    *out = v;
    return 0;
}

/* One list element [b, e): "N" or "N-M", each 0..INT32_MAX, N <= M. */
static int parse_range(const char *b, const char *e, int64_t *lo, int64_t *hi, char *msg,
                       size_t msglen) {
    trim_range(&b, &e);
    if (b == e) {
        snprintf(msg, msglen, "empty element in the list");
        return -1;
    }
    const char *dash = memchr(b, '-', (size_t)(e - b));
    const char *b2 = dash ? dash + 1 : b, *e1 = dash ? dash : e;
    const char *b1 = b, *e2 = e;
    trim_range(&b1, &e1);
    trim_range(&b2, &e2);
    if (b1 == e1 || b2 == e2 || parse_int(b1, (size_t)(e1 - b1), lo) != 0 ||
        parse_int(b2, (size_t)(e2 - b2), hi) != 0) {
        snprintf(msg, msglen, "\"%.*s\" is not a partition or range N-M", (int)(e - b), b);
        return -1;
    }
    if (*lo > INT32_MAX || *hi > INT32_MAX) {
        snprintf(msg, msglen, "\"%.*s\": partitions are 0..%ld", (int)(e - b), b, (long)INT32_MAX);
        return -1;
    }
    if (*lo > *hi) {
        snprintf(msg, msglen, "range %lld-%lld is reversed", (long long)*lo, (long long)*hi);
        return -1;
    }
    return 0;
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Sort and dedupe v[0..n); returns the new count. */
static size_t sort_unique(int32_t *v, size_t n) {
    size_t k = 0;
    qsort(v, n, sizeof *v, cmp_i32);
    for (size_t i = 0; i < n; i++)
        if (k == 0 || v[i] != v[k - 1]) v[k++] = v[i];
    return k;
}

static int too_many(char *msg, size_t msglen) {
    snprintf(msg, msglen, "more than %d partitions", CONFIG_PARTITIONS_MAX);
    return -1;
}

/* "0,2,5-7" -> ascending distinct partitions; "" -> none (all).  Expansion
 * goes through a buffer of twice the limit, compacted when the next range
 * would not fit, so huge or repeated ranges never need more memory. */
static int parse_partitions(const char *s, int32_t *out, size_t *nout, char *msg,
                            size_t msglen) {
    int32_t work[2 * CONFIG_PARTITIONS_MAX];
    size_t n = 0;
    const char *p = s, *end = s + strlen(s);
    trim_range(&p, &end);
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        int64_t lo, hi;
        if (parse_range(p, comma ? comma : end, &lo, &hi, msg, msglen)) return -1;
        size_t count = (size_t)(hi - lo) + 1;   /* 0 <= hi - lo < 2^31 */
        if (count > CONFIG_PARTITIONS_MAX) return too_many(msg, msglen);
        if (n + count > 2 * CONFIG_PARTITIONS_MAX) {   /* full: compact; n <= MAX leaves room */
            n = sort_unique(work, n);
            if (n > CONFIG_PARTITIONS_MAX) return too_many(msg, msglen);
        }
        for (int64_t v = lo; v <= hi; v++) work[n++] = (int32_t)v;
        p = comma ? comma + 1 : end;
        if (comma && p == end) return parse_range(p, end, &lo, &hi, msg, msglen); /* "1," */
    }
    n = sort_unique(work, n);
    if (n > CONFIG_PARTITIONS_MAX) return too_many(msg, msglen);
    memcpy(out, work, n * sizeof *work);
    *nout = n;
    return 0;
}

/* One of the spec's choices, exactly (case matters, as in the example). */
static int check_choice(const struct spec *ks, const char *s, char *msg, size_t msglen) {
    size_t w = 0;
    for (const char *const *c = ks->choices; *c; c++)
        if (strcmp(s, *c) == 0) return 0;
    w += (size_t)snprintf(msg, msglen, "\"%.32s\": not ", s);
    for (const char *const *c = ks->choices; *c && w < msglen; c++)
        w += (size_t)snprintf(msg + w, msglen - w, "%s%s", *c,
                              !c[1] ? "" : !c[2] ? " or " : ", ");
    return -1;
}

/* A string value for a K_STRING/K_TOPIC/K_CURRENCY/K_CHOICE/K_LISTEN key. */
static int check_string(const struct spec *ks, const char *s, char *msg, size_t msglen) {
    if (ks->kind == K_CHOICE) return check_choice(ks, s, msg, msglen);
    size_t len = strlen(s);
    if (ks->kind == K_LISTEN) {
        char host[CONFIG_LISTEN_HOST_MAX + 1];
        int port, v6;
        if (len >= ks->cap) {
            snprintf(msg, msglen, "longer than %zu bytes", ks->cap - 1);
            return -1;
        }
        return len == 0 ? 0 : config_listen_split(s, host, sizeof host, &port, &v6, msg, msglen);
    }
    if (len == 0 || len >= ks->cap) {
        snprintf(msg, msglen, "must be 1..%zu bytes", ks->cap - 1);
        return -1;
    }
    if (ks->kind == K_STRING) return 0;
    for (const char *q = s; *q; q++) {
        if (name_char(*q) && (*q != '.' || ks->kind == K_TOPIC)) continue;
        snprintf(msg, msglen, "\"%s\": only letters, digits, %s allowed", s,
                 ks->kind == K_TOPIC ? "'.', '_' and '-' are" : "'_' and '-' are");
        return -1;
    }
    if (ks->kind == K_TOPIC && (strcmp(s, ".") == 0 || strcmp(s, "..") == 0)) {
        snprintf(msg, msglen, "\"%s\" is not a valid topic name", s);
        return -1;
    }
    return 0;
}

/* A sources.* list: the engine's parser decides (guard.h). */
static int check_sources(const char *s, char *msg, size_t msglen) {
    struct guard_list l;
    if (strlen(s) > CONFIG_SOURCES_TEXT_MAX) {
        snprintf(msg, msglen, "longer than %d bytes", CONFIG_SOURCES_TEXT_MAX);
        return -1;
    }
    if (guard_list_parse(&l, s, msg, msglen)) return -1;
    guard_list_free(&l);
    return 0;
}

static int parse_known(const struct spec *ks, const char *value, union parsed *p, char *msg,
                       size_t msglen) {
    switch (ks->kind) {
    case K_SOURCES:
        if (check_sources(value, msg, msglen)) return -1;
        if (!(p->text = concat(value, ""))) {
            snprintf(msg, msglen, "out of memory");
            return -1;
        }
        return 0;
    case K_INT: return parse_bounded(ks, value, &p->i, msg, msglen);
    case K_SIZE: return parse_size(ks, value, &p->i, msg, msglen);
    case K_PARTITIONS: return parse_partitions(value, p->parts.v, &p->parts.n, msg, msglen);
    default: return check_string(ks, value, msg, msglen);
    }
}

static void apply_known(struct config *c, const struct spec *ks, const char *value,
                        const union parsed *p) {
    char *field = (char *)c + ks->off;
    switch (ks->kind) {
    case K_INT: *(int64_t *)(void *)field = p->i; break;
    case K_SIZE: *(uint64_t *)(void *)field = (uint64_t)p->i; break;
    case K_PARTITIONS:
        memcpy(c->input_partitions, p->parts.v, p->parts.n * sizeof p->parts.v[0]);
        c->input_npartitions = p->parts.n;
        break;
    case K_SOURCES:
        free(*(char **)(void *)field);
        *(char **)(void *)field = p->text;
        break;
    default: memcpy(field, value, strlen(value) + 1); break;
    }
}

/* ---- setting ---------------------------------------------------------- */

static int set_known(struct config *c, const struct spec *ks, const char *value,
                     const char *origin, char *err, size_t errlen) {
    union parsed p;
    char msg[MSG_MAX];
    if (check_dup(c, ks->name, origin, err, errlen)) return -1;
    if (parse_known(ks, value, &p, msg, sizeof msg))
        return fail(err, errlen, "%s: %s: %s", origin, ks->name, msg);
    if (origin_record(c, ks->name, origin)) {
        if (ks->kind == K_SOURCES) free(p.text);
        return fail(err, errlen, "%s: %s: out of memory", origin, ks->name);
    }
    apply_known(c, ks, value, &p);
    return 0;
}

static size_t kafka_find(const struct config *c, const char *name) {
    size_t i = 0;
    while (i < c->nkafka && strcmp(c->kafka[i].name, name) != 0) i++;
    return i;
}

/* A kafka.* value into *val (malloc'ed): value itself, or for "file:PATH"
 * the file's content, with *file = PATH as written (malloc'ed; else NULL).
 * 0, or -1 with err naming origin, key and path. */
static int kafka_value(const char *name, const char *value, const char *origin, char **val,
                       char **file, char *err, size_t errlen) {
    char msg[MSG_MAX];
    *file = NULL;
    if (strncmp(value, "file:", 5) != 0) {
        *val = concat(value, "");
        return *val ? 0 : fail(err, errlen, "%s: kafka.%s: out of memory", origin, name);
    }
    char *path = config_value_path(value + 5, msg, sizeof msg);
    int rc = path ? config_read_value_file(path, val, msg, sizeof msg) : -1;
    if (rc == 0 && !(*file = concat(value + 5, ""))) {
        wipe_free(*val);
        rc = snprintf(msg, sizeof msg, "out of memory");
    }
    if (rc && path && strcmp(path, value + 5) != 0)
        fail(err, errlen, "%s: kafka.%s: %s (%s): %s", origin, name, value, path, msg);
    else if (rc)
        fail(err, errlen, "%s: kafka.%s: %s: %s", origin, name, value, msg);
    free(path);
    return rc ? -1 : 0;
}

/* kafka property name (without "kafka."): append, or replace in place. */
static int set_kafka(struct config *c, const char *name, const char *value, const char *origin,
                     char *err, size_t errlen) {
    if (!name_ok(name))
        return fail(err, errlen, "%s: kafka.%s: not a valid property name", origin, name);
    if (strcmp(name, "group.id") == 0)
        return fail(err, errlen, "%s: kafka.group.id: set creditd's group.id instead", origin);
    char *key = concat("kafka.", name), *val = NULL, *file = NULL;
    if (!key) return fail(err, errlen, "%s: kafka.%s: out of memory", origin, name);
    if (check_dup(c, key, origin, err, errlen) ||
        kafka_value(name, value, origin, &val, &file, err, errlen)) {
        free(key);
        return -1;
    }
    size_t i = kafka_find(c, name);
    int add = i == c->nkafka;
    char *nm = add ? concat(name, "") : NULL;
    void *arr = add ? grow(c->kafka, &c->kafka_cap, c->nkafka + 1, sizeof *c->kafka) : c->kafka;
    if (arr) c->kafka = arr;
    if ((add && (!nm || !arr)) || origin_record(c, key, origin)) {
        wipe_free(val);
        free(file);
        free(nm);
        free(key);
        return fail(err, errlen, "%s: kafka.%s: out of memory", origin, name);
    }
    free(key);
    if (add) {
        c->kafka[c->nkafka] = (struct config_kv){nm, val, file};
        c->nkafka++;
    } else {
        wipe_free(c->kafka[i].value);
        free(c->kafka[i].file);
        c->kafka[i].value = val;
        c->kafka[i].file = file;
    }
    return 0;
}

int config_set(struct config *c, const char *key, const char *value, const char *origin,
               char *err, size_t errlen) {
    if (!origin) origin = "config_set";
    if (!key || !value) return fail(err, errlen, "%s: missing key or value", origin);
    if (!name_ok(key))
        return fail(err, errlen, "%s: %s: not a valid key (letters, digits, '.', '_', '-')",
                    origin, key);
    const struct spec *ks = spec_find(key);
    if (ks) return set_known(c, ks, value, origin, err, errlen);
    if (strncmp(key, "kafka.", 6) == 0) return set_kafka(c, key + 6, value, origin, err, errlen);
    if (is_file_origin(origin))
        return fail(err, errlen, "%s: %s: unknown key%s", origin, key,
                    creditd_namespace(key) ? ""
                                           : " (librdkafka properties take the kafka. prefix)");
    if (creditd_namespace(key))
        return fail(err, errlen, "%s: %s: unknown creditd key (for the librdkafka property write "
                    "kafka.%s)", origin, key, key);
    return set_kafka(c, key, value, origin, err, errlen);
}

int config_set_arg(struct config *c, const char *arg, char *err, size_t errlen) {
    const char *eq = strchr(arg, '=');
    char key[256];
    if (!eq) return fail(err, errlen, "-X: %s: expected KEY=VALUE", arg);
    if ((size_t)(eq - arg) >= sizeof key)
        return fail(err, errlen, "-X: %.40s...: key too long", arg);
    memcpy(key, arg, (size_t)(eq - arg));
    key[eq - arg] = '\0';
    return config_set(c, key, eq + 1, "-X", err, errlen);
}

/* ---- the file --------------------------------------------------------- */

/* A quoted value at v (v[0] == '"'), unescaped in place: \" is '"', \\ is
 * '\', any other backslash is itself.  Only whitespace or a comment may
 * follow the closing quote.  NULL, or what is wrong. */
static const char *unquote(char *v, char **value) {
    char *r = v + 1, *w = v + 1;
    for (; *r != '"'; r++) {
        if (*r == '\0') return "unterminated quoted value";
        if (*r == '\\' && (r[1] == '"' || r[1] == '\\')) r++;
        *w++ = *r;
    }
    char *rest = skip_ws(r + 1);
    *w = '\0';
    if (*rest != '\0' && *rest != '#') return "unexpected text after the closing quote";
    *value = v + 1;
    return NULL;
}

/* Split one line in place.  *key stays NULL for blank and comment lines.
 * Returns NULL, or what is wrong (*key set if the key was read). */
static const char *split_line(char *line, char **key, char **value) {
    char *s = skip_ws(line);
    *key = *value = NULL;
    if (*s == '\0' || *s == '#') return NULL;
    char *eq = strchr(s, '=');
    if (!eq) return "expected key = value";
    *eq = '\0';
    rtrim(s);
    if (*s == '\0') return "missing key before '='";
    *key = s;
    char *v = skip_ws(eq + 1);
    if (*v == '"') return unquote(v, value);
    for (char *q = v; *q; q++) {
        if (*q == '#' && (q == v || isspace((unsigned char)q[-1]))) {
            *q = '\0';
            break;
        }
    }
    rtrim(v);
    *value = v;
    return NULL;
}

/* A key of the file whose value is a secret in clear (not file:, not empty). */
static int clear_secret(const char *key, const char *value) {
    return strncmp(key, "kafka.", 6) == 0 && config_is_secret(key) && *value &&
           strncmp(value, "file:", 5) != 0;
}

/* One line; the first secret in clear is noted in clear[clearlen] (key). */
static int load_line(struct config *c, char *line, size_t len, const char *origin, char *clear,
                     size_t clearlen, char *err, size_t errlen) {
    char *key, *value;
    if (strlen(line) != len) return fail(err, errlen, "%s: NUL byte in line", origin);
    const char *why = split_line(line, &key, &value);
    if (why && key) return fail(err, errlen, "%s: %s: %s", origin, key, why);
    if (why) return fail(err, errlen, "%s: %s", origin, why);
    if (key && !clear[0] && clear_secret(key, value)) snprintf(clear, clearlen, "%s", key);
    return key ? config_set(c, key, value, origin, err, errlen) : 0;
}

/* A file holding a secret in clear must be its owner's alone (README
 * "Secrets"): any permission for group or others is refused, with the fix. */
static int check_private(FILE *f, const char *path, const char *key, char *err, size_t errlen) {
    struct stat st;
    if (fstat(fileno(f), &st) != 0)
        return fail(err, errlen, "%s: fstat: %s", path, strerror(errno));
    unsigned mode = (unsigned)st.st_mode & 07777;
    if ((mode & 077) == 0) return 0;
    return fail(err, errlen, "%s: holds %s in clear and is %s by group or others (mode %04o): "
                "chmod 600 %s, or use %s = file:/path (see README)", path, key,
                mode & 044 ? "readable" : "accessible", mode, path, key);
}

int config_load_file(struct config *c, const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "r");
    if (!f) return fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    size_t olen = strlen(path) + 24, cap = 0;
    char *origin = malloc(olen), *line = NULL, clear[128] = "";
    unsigned long lineno = 0;
    ssize_t len;
    int rc = origin ? 0 : fail(err, errlen, "%s: out of memory", path);
    while (rc == 0 && (len = getline(&line, &cap, f)) >= 0) {
        snprintf(origin, olen, "%s:%lu", path, ++lineno);
        rc = load_line(c, line, (size_t)len, origin, clear, sizeof clear, err, errlen);
    }
    if (rc == 0 && ferror(f)) rc = fail(err, errlen, "%s: read error: %s", path, strerror(errno));
    if (rc == 0 && clear[0]) rc = check_private(f, path, clear, err, errlen);
    if (line) config_wipe_free_n(line, cap);   /* it held the lines, secrets too */
    free(origin);
    fclose(f);
    return rc;
}

int config_load_args(struct config *c, const char *file, char *const *xs, int nx, char *err,
                     size_t errlen) {
    config_init(c);
    if (file && config_load_file(c, file, err, errlen)) return -1;
    for (int i = 0; i < nx; i++)
        if (config_set_arg(c, xs[i], err, errlen)) return -1;
    return config_validate(c, err, errlen);
}

/* ---- validation ------------------------------------------------------- */

/* The current value of one creditd key, as config_set() would accept it. */
static int check_field(const struct config *c, const struct spec *ks, char *msg, size_t msglen) {
    const char *field = (const char *)c + ks->off;
    char shown[32];
    int64_t v;
    switch (ks->kind) {
    case K_INT: v = *(const int64_t *)(const void *)field; break;
    case K_SIZE: {
        uint64_t u = *(const uint64_t *)(const void *)field;
        v = u > INT64_MAX ? INT64_MAX : (int64_t)u;
        break;
    }
    case K_PARTITIONS:
        if (c->input_npartitions > CONFIG_PARTITIONS_MAX) {
            snprintf(msg, msglen, "more than %d partitions", CONFIG_PARTITIONS_MAX);
            return -1;
        }
        for (size_t i = 0; i < c->input_npartitions; i++) {
            int32_t v32 = c->input_partitions[i];
            if (v32 < 0 || (i > 0 && v32 <= c->input_partitions[i - 1])) {
                snprintf(msg, msglen, "not ascending, distinct partitions >= 0");
                return -1;
            }
        }
        return 0;
    case K_SOURCES: {
        const char *text = *(char *const *)(const void *)field;
        return text ? check_sources(text, msg, msglen) : 0;
    }
    default:
        if (!memchr(field, '\0', ks->cap)) {
            snprintf(msg, msglen, "not NUL-terminated");
            return -1;
        }
        return check_string(ks, field, msg, msglen);
    }
    snprintf(shown, sizeof shown, "%lld", (long long)v);
    return check_range(ks, v, shown, msg, msglen);
}

static const char *field_str(const struct config *c, const char *key) {
    return (const char *)c + spec_find(key)->off;
}

int config_validate(const struct config *c, char *err, size_t errlen) {
    char msg[MSG_MAX];
    for (size_t i = 0; i < NSPECS; i++)
        if (check_field(c, &SPECS[i], msg, sizeof msg))
            return fail(err, errlen, "%s: %s: %s", origin_of(c, SPECS[i].name), SPECS[i].name, msg);
    size_t nt = sizeof TOPIC_KEYS / sizeof TOPIC_KEYS[0];
    for (size_t j = 1; j < nt; j++)
        for (size_t i = 0; i < j; i++)
            if (strcmp(field_str(c, TOPIC_KEYS[i]), field_str(c, TOPIC_KEYS[j])) == 0)
                return fail(err, errlen, "%s: %s: same topic \"%s\" as %s (%s)",
                            origin_of(c, TOPIC_KEYS[j]), TOPIC_KEYS[j], field_str(c, TOPIC_KEYS[j]),
                            TOPIC_KEYS[i], origin_of(c, TOPIC_KEYS[i]));
    if (c->outbox_max_pending < c->batch_max_messages)
        return fail(err, errlen, "%s: outbox.max_pending: %lld is below batch.max_messages "
                    "(%lld, %s): consumption would pause after every batch",
                    origin_of(c, "outbox.max_pending"),
                    (long long)c->outbox_max_pending, (long long)c->batch_max_messages,
                    origin_of(c, "batch.max_messages"));
    if (strcmp(c->input_assignment, "group") == 0 && c->input_npartitions)
        return fail(err, errlen, "%s: input.partitions: set with input.assignment = group (%s): "
                    "in group mode the consumer group assigns the partitions; remove one of them",
                    origin_of(c, "input.partitions"), origin_of(c, "input.assignment"));
    if (config_kafka_get(c, "bootstrap.servers") && config_kafka_get(c, "metadata.broker.list"))
        return fail(err, errlen, "%s: kafka.metadata.broker.list: alias of kafka.bootstrap.servers "
                    "(%s): set only one", origin_of(c, "kafka.metadata.broker.list"),
                    origin_of(c, "kafka.bootstrap.servers"));
    return 0;
}

/* ---- queries, dump, free ---------------------------------------------- */

const char *config_kafka_get(const struct config *c, const char *name) {
    size_t i = kafka_find(c, name);
    return i < c->nkafka ? c->kafka[i].value : NULL;
}

int config_has_bootstrap(const struct config *c) {
    const char *b = config_kafka_get(c, "bootstrap.servers");
    if (!b) b = config_kafka_get(c, "metadata.broker.list");
    return b && *b;
}

/* A string value, quoted (and escaped) when the file syntax would otherwise
 * alter it. */
static void print_string(FILE *out, const char *s) {
    size_t n = strlen(s);
    int quote = n == 0 || isspace((unsigned char)s[0]) || isspace((unsigned char)s[n - 1]) ||
                s[0] == '"' || strchr(s, '#');
    if (!quote) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

static void print_partitions(FILE *out, const int32_t *p, size_t n) {
    if (n == 0) fputs("\"\"", out);
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j + 1 < n && p[j + 1] == p[j] + 1) j++;
        fprintf(out, "%s%ld", i ? "," : "", (long)p[i]);
        if (j > i) fprintf(out, "-%ld", (long)p[j]);
        i = j + 1;
    }
}

static void print_known(const struct config *c, const struct spec *ks, FILE *out) {
    const char *field = (const char *)c + ks->off;
    if (ks->kind == K_SOURCES && !*(char *const *)(const void *)field)
        return;   /* not set (any source): no line, so the dump loads back unset */
    fprintf(out, "%s = ", ks->name);
    switch (ks->kind) {
    case K_INT: fprintf(out, "%lld", (long long)*(const int64_t *)(const void *)field); break;
    case K_SIZE:
        fprintf(out, "%llu", (unsigned long long)*(const uint64_t *)(const void *)field);
        break;
    case K_PARTITIONS: print_partitions(out, c->input_partitions, c->input_npartitions); break;
    case K_SOURCES: print_string(out, *(char *const *)(const void *)field); break;
    default: print_string(out, field); break;
    }
    fputc('\n', out);
}

/* kafka.* lines by name: repeated minimum search, so no allocation. */
static void print_kafka(const struct config *c, FILE *out) {
    const char *prev = NULL;
    for (size_t k = 0; k < c->nkafka; k++) {
        const struct config_kv *best = NULL;
        for (size_t i = 0; i < c->nkafka; i++) {
            const struct config_kv *kv = &c->kafka[i];
            if ((!prev || strcmp(kv->name, prev) > 0) &&
                (!best || strcmp(kv->name, best->name) < 0))
                best = kv;
        }
        if (!best) break;
        prev = best->name;
        fprintf(out, "kafka.%s = ", best->name);
        char *file = best->file ? concat("file:", best->file) : NULL;
        if (file) print_string(out, file);   /* loads back: the file is read again */
        else if (config_is_secret(best->name)) fputs("********", out);
        else print_string(out, best->file ? "file:?" : best->value);   /* "file:?": out of memory */
        free(file);
        fputc('\n', out);
    }
}

void config_dump(const struct config *c, FILE *out) {
    int kafka_done = 0;
    for (size_t i = 0; i < NSPECS; i++) {
        if (!kafka_done && strcmp(SPECS[i].name, "kafka.") > 0) {
            print_kafka(c, out);
            kafka_done = 1;
        }
        print_known(c, &SPECS[i], out);
    }
    if (!kafka_done) print_kafka(c, out);
}

void config_init(struct config *c) {
    memset(c, 0, sizeof *c);
    strcpy(c->store_path, "./creditd-data");
    c->store_map_size = DEFAULT_MAP_SIZE;
    strcpy(c->topic_input, "credit.events");
    strcpy(c->topic_overage, "credit.overage");
    strcpy(c->topic_ledger, "credit.ledger");
    strcpy(c->topic_rejected, "credit.rejected");
    strcpy(c->topic_alerts, "credit.alerts");
    strcpy(c->group_id, "creditd");
    strcpy(c->input_assignment, "static");
    strcpy(c->state_changelog_topic, "credit.changelog");
    c->batch_max_messages = 10000;
    c->batch_max_ms = 100;
    c->batch_linger_ms = 0;
    c->input_parse_threads = 1;
    c->outbox_max_pending = 100000;
    c->shutdown_flush_timeout_ms = 10000;
    c->stats_interval_ms = 10000;
    c->credit_close_after_s = 0;
    strcpy(c->credit_currency, "EUR");
    strcpy(c->ctl_source_staff, "staff/creditctl");
    strcpy(c->ctl_source_owner, "owners/creditctl");
    strcpy(c->log_format, "text");
    strcpy(c->log_level, "info");
    c->credit_max_future_s = GUARD_MAX_FUTURE_DEFAULT;
    c->credit_retention_days = GUARD_RETENTION_DAYS_DEFAULT;
    c->http_ready_max_lag = 10000;
    c->http_max_connections = 64;
    c->http_timeout_s = 10;
}

void config_free(struct config *c) {
    for (size_t i = 0; i < c->nkafka; i++) {
        free(c->kafka[i].name);
        wipe_free(c->kafka[i].value);
        free(c->kafka[i].file);
    }
    free(c->kafka);
    for (size_t i = 0; i < c->norigins; i++) {
        free(c->origins[i].key);
        free(c->origins[i].origin);
    }
    free(c->origins);
    for (size_t i = 0; i < CONFIG_SOURCES; i++) {
        free(c->sources[i]);
        c->sources[i] = NULL;
    }
    c->kafka = NULL;
    c->nkafka = c->kafka_cap = 0;
    c->origins = NULL;
    c->norigins = c->origins_cap = 0;
}
