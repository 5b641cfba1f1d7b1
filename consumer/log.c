/* log.c -- see log.h.
 *
 * JSON is written by hand rather than with engine/jsonw or jansson: both
 * allocate, jsonw needs valid UTF-8 and jansson refuses invalid UTF-8, while
 * this writer runs on librdkafka's threads with a bounded stack buffer and
 * must turn any bytes into a valid line. */
#include "consumer/log.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Room kept at the end of a JSON line for `","truncated":true}` + "\n". */
#define JSON_TAIL 32

static const char *const LEVEL_NAMES[] = {"debug", "info", "warn", "error"};
static const char *const FORMAT_NAMES[] = {"text", "json"};
static const char *const RESERVED_KEYS[] = {"time", "level", "message", "component", "truncated"};

/* The logging part of the loaded configuration: written by log_init()
 * before any thread starts, read-only afterwards (log.h, State). */
static struct {
    char prog[LOG_PROG_MAX + 1];
    enum log_format format;
    enum log_level level;
    int fd;
} settings = {"creditd", LOG_FORMAT_TEXT, LOG_LEVEL_INFO, 2};

/* Serialises the writes of whole lines. */
static pthread_mutex_t write_mu = PTHREAD_MUTEX_INITIALIZER;

/* The secrets kept out of the lines (log_add_secret): also part of the
 * loaded configuration, written before any thread starts.  Strings with the
 * same first byte are chained longest first (indexes + 1; 0 ends a chain),
 * so a match found first is the longest there. */
static struct {
    char *s[LOG_SECRETS_MAX];
    size_t len[LOG_SECRETS_MAX];
    unsigned short next[LOG_SECRETS_MAX];
    unsigned short head[256];
    size_t n;
} secrets;

#define MASK "********"

/* ---- names ------------------------------------------------------------- */

static int name_index(const char *name, const char *const *names, size_t n) {
    for (size_t i = 0; name && i < n; i++)
        if (strcmp(name, names[i]) == 0) return (int)i;
    return -1;
}

int log_level_parse(const char *name, enum log_level *out) {
    int i = name_index(name, LEVEL_NAMES, sizeof LEVEL_NAMES / sizeof LEVEL_NAMES[0]);
    if (i < 0) return -1;
    *out = (enum log_level)i;
    return 0;
}

int log_format_parse(const char *name, enum log_format *out) {
    int i = name_index(name, FORMAT_NAMES, sizeof FORMAT_NAMES / sizeof FORMAT_NAMES[0]);
    if (i < 0) return -1;
    *out = (enum log_format)i;
    return 0;
}

const char *log_level_name(enum log_level l) {
    return (unsigned)l < sizeof LEVEL_NAMES / sizeof LEVEL_NAMES[0] ? LEVEL_NAMES[l] : "error";
}

int log_init(const struct log_opts *o, char *err, size_t errlen) {
    enum log_format f = LOG_FORMAT_TEXT;
    enum log_level l = LOG_LEVEL_INFO;
    const char *prog = o->prog ? o->prog : "creditd";
    if (o->format && log_format_parse(o->format, &f)) {
        snprintf(err, errlen, "log.format: \"%.32s\": not text or json", o->format);
        return -1;
    }
    if (o->level && log_level_parse(o->level, &l)) {
        snprintf(err, errlen, "log.level: \"%.32s\": not debug, info, warn or error", o->level);
        return -1;
    }
    if (!*prog || strlen(prog) > LOG_PROG_MAX) {
        snprintf(err, errlen, "log: the program name must be 1..%d bytes", LOG_PROG_MAX);
        return -1;
    }
    memcpy(settings.prog, prog, strlen(prog) + 1);
    settings.format = f;
    settings.level = l;
    settings.fd = o->fd > 0 ? o->fd : 2;
    return 0;
}

int log_enabled(enum log_level l) { return l >= settings.level; }

const char *log_prog(void) { return settings.prog; }

/* ---- a bounded line ---------------------------------------------------- */

struct line {
    char *b;
    size_t len, cap;   /* cap: usable bytes, the NUL excluded */
    size_t limit;      /* JSON: cap - JSON_TAIL, the end of ordinary writes */
    int cut;
};

/* Append n bytes when they fit below the limit; else mark the line cut. */
static int put(struct line *ln, const char *s, size_t n) {
    if (ln->cut || ln->len + n > ln->limit) {
        ln->cut = 1;
        return -1;
    }
    memcpy(ln->b + ln->len, s, n);
    ln->len += n;
    return 0;
}

static int puts_(struct line *ln, const char *s) { return put(ln, s, strlen(s)); }

/* Length of the valid UTF-8 character at s (n bytes left), or 0 when the
 * bytes there are not one: strict RFC 3629 (no overlong forms, no
 * surrogates, nothing beyond U+10FFFF). */
static size_t utf8_char(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf;   /* the second byte's range */
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) len = 2;
    else if (c >= 0xe0 && c <= 0xef) len = 3;
    else if (c >= 0xf0 && c <= 0xf4) len = 4;
    else return 0;
    if (c == 0xe0) lo = 0xa0;
    else if (c == 0xed) hi = 0x9f;
    else if (c == 0xf0) lo = 0x90;
    else if (c == 0xf4) hi = 0x8f;
    if (n < len || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf) return 0;
    return len;
}

/* The JSON form of the character at s into out[8]: its length in out, and
 * in *used the bytes of s it stands for. */
static size_t json_unit(const unsigned char *s, size_t n, char out[8], size_t *used) {
    unsigned char c = s[0];
    *used = 1;
    switch (c) {
    case '"': memcpy(out, "\\\"", 2); return 2;
    case '\\': memcpy(out, "\\\\", 2); return 2;
    case '\n': memcpy(out, "\\n", 2); return 2;
    case '\r': memcpy(out, "\\r", 2); return 2;
    case '\t': memcpy(out, "\\t", 2); return 2;
    case '\b': memcpy(out, "\\b", 2); return 2;
    case '\f': memcpy(out, "\\f", 2); return 2;
    default: break;
    }
    if (c < 0x20 || c == 0x7f) {
        snprintf(out, 8, "\\u%04x", c);
        return 6;
    }
    size_t len = utf8_char(s, n);
    if (len == 0) {   /* not UTF-8: the replacement character */
        memcpy(out, "\\ufffd", 6);
        return 6;
    }
    memcpy(out, s, len);
    *used = len;
    return len;
}

/* A JSON string of s: whole characters while they fit with the closing
 * quote; a cut string is closed and the line marked cut. */
static void put_jstr(struct line *ln, const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    if (put(ln, "\"", 1)) return;
    ln->limit -= 1;   /* keep the closing quote's byte */
    while (n > 0) {
        char u[8];
        size_t used, k = json_unit(p, n, u, &used);
        if (put(ln, u, k)) break;
        p += used;
        n -= used;
    }
    ln->limit += 1;
    ln->b[ln->len++] = '"';
}

/* ,"key":"value" (value NULL: the number num).  Skipped once the line is
 * cut, or whole when even the empty pair would not fit. */
static void put_field(struct line *ln, const char *key, const char *str, int64_t num) {
    char nb[24];
    if (!str) snprintf(nb, sizeof nb, "%lld", (long long)num);
    size_t need = strlen(key) + 6 + (str ? 2 : strlen(nb));   /* ,"k":"" */
    if (ln->cut || ln->len + need > ln->limit) {
        ln->cut = 1;
        return;
    }
    put(ln, ",", 1);
    put_jstr(ln, key);
    put(ln, ":", 1);
    if (str) put_jstr(ln, str);
    else puts_(ln, nb);
}

static int reserved(const char *key) {
    for (size_t i = 0; i < sizeof RESERVED_KEYS / sizeof RESERVED_KEYS[0]; i++)
        if (strcmp(key, RESERVED_KEYS[i]) == 0) return 1;
    return 0;
}

/* "2026-12-01T06:08:02.123Z" */
static void rfc3339_ms(int64_t ms, char out[32]) {
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    size_t n = ms >= 0 && gmtime_r(&s, &tm) ? strftime(out, 20, "%Y-%m-%dT%H:%M:%S", &tm) : 0;
    if (n != 19) {   /* before 1970 or after 9999: never from the clock */
        memcpy(out, "1970-01-01T00:00:00.000Z", 25);
        return;
    }
    snprintf(out + 19, 32 - 19, ".%03dZ", (int)(ms % 1000));
}

static void render_json(const struct log_rec *r, struct line *ln) {
    char ts[32];
    rfc3339_ms(r->time_ms, ts);
    ln->limit = ln->cap - JSON_TAIL;
    puts_(ln, "{\"time\":\"");
    puts_(ln, ts);
    puts_(ln, "\",\"level\":\"");
    puts_(ln, log_level_name(r->level));
    puts_(ln, "\"");
    put_field(ln, "message", r->message, 0);
    if (r->component) put_field(ln, "component", r->component, 0);
    for (size_t i = 0; i < r->nfields; i++) {
        const struct log_field *f = &r->fields[i];
        if (f->key && !reserved(f->key)) put_field(ln, f->key, f->str, f->num);
    }
    int cut = ln->cut || r->cut;
    ln->cut = 0;
    ln->limit = ln->cap;   /* the tail always fits: JSON_TAIL was kept */
    if (cut) puts_(ln, ",\"truncated\":true");
    puts_(ln, "}\n");
}

/* PROG: [COMPONENT: ]MESSAGE, cut so that the '\n' always fits. */
static void render_text(const struct log_rec *r, struct line *ln) {
    ln->limit = ln->cap - 1;
    if (!puts_(ln, r->prog ? r->prog : "creditd") && !puts_(ln, ": ") && r->component) {
        puts_(ln, r->component);
        puts_(ln, ": ");
    }
    const char *m = r->message ? r->message : "";
    size_t n = strlen(m), room = ln->limit - ln->len;
    if (!ln->cut) put(ln, m, n < room ? n : room);
    ln->limit = ln->cap;
    put(ln, "\n", 1);
}

size_t log_render(enum log_format f, const struct log_rec *r, char *buf, size_t cap) {
    if (cap < LOG_RENDER_MIN) {
        if (cap > 0) buf[0] = '\0';
        return 0;
    }
    struct line ln = {buf, 0, cap - 1, cap - 1, 0};
    if (f == LOG_FORMAT_JSON) render_json(r, &ln);
    else render_text(r, &ln);
    buf[ln.len] = '\0';
    return ln.len;
}

/* ---- secrets ----------------------------------------------------------- */

static int secret_add(const char *v, size_t len) {
    unsigned char b = (unsigned char)v[0];
    for (size_t i = 0; i < secrets.n; i++)
        if (secrets.len[i] == len && memcmp(secrets.s[i], v, len) == 0) return 0;
    if (secrets.n == LOG_SECRETS_MAX) return -1;
    char *copy = malloc(len + 1);
    if (!copy) return -1;
    memcpy(copy, v, len);
    copy[len] = '\0';
    size_t k = secrets.n++;
    secrets.s[k] = copy;
    secrets.len[k] = len;
    unsigned short *at = &secrets.head[b];   /* the link to rewrite: longest first */
    while (*at && secrets.len[*at - 1] >= len) at = &secrets.next[*at - 1];
    secrets.next[k] = *at;
    *at = (unsigned short)(k + 1);
    return 0;
}

int log_add_secret(const char *value) {
    if (!value || !*value) return 0;
    if (secret_add(value, strlen(value))) return -1;
    for (const char *p = value; *p;) {   /* the words, and their parts after '=' */
        while (*p && isspace((unsigned char)*p)) p++;
        size_t n = 0;
        while (p[n] && !isspace((unsigned char)p[n])) n++;
        const char *eq = memchr(p, '=', n);
        size_t tail = eq ? n - (size_t)(eq + 1 - p) : 0;
        if (n >= LOG_SECRET_WORD_MIN && secret_add(p, n)) return -1;
        if (tail >= LOG_SECRET_WORD_MIN && secret_add(eq + 1, tail)) return -1;
        p += n;
    }
    return 0;
}

void log_forget_secrets(void) {
    for (size_t i = 0; i < secrets.n; i++) {
        volatile char *p = secrets.s[i];
        for (size_t j = 0; j < secrets.len[i]; j++) p[j] = '\0';
        free(secrets.s[i]);
    }
    memset(&secrets, 0, sizeof secrets);
}

/* Bytes of s to mask: the longest registered secret that starts there, or,
 * when s was cut (cut != 0), one whose beginning ends s; else 0. */
static size_t secret_at(const char *s, int cut) {
    for (unsigned short i = secrets.head[(unsigned char)*s]; i; i = secrets.next[i - 1]) {
        const char *v = secrets.s[i - 1];
        size_t k = 0, len = secrets.len[i - 1];
        while (k < len && s[k] == v[k]) k++;
        if (k == len || (cut && s[k] == '\0')) return k;
    }
    return 0;
}

/* in copied to out (cap bytes, NUL-terminated, cut to fit) with each
 * secret replaced by MASK; *hit set when one was.  The copy's length. */
static size_t scrub_copy(const char *in, int cut, char *out, size_t cap, int *hit) {
    size_t o = 0;
    while (*in && o + 1 < cap) {
        size_t m = secret_at(in, cut);
        if (m == 0) {
            out[o++] = *in++;
            continue;
        }
        size_t k = sizeof MASK - 1 < cap - 1 - o ? sizeof MASK - 1 : cap - 1 - o;
        memcpy(out + o, MASK, k);
        o += k;
        in += m;
        *hit = 1;
    }
    out[o] = '\0';
    return o;
}

int log_scrub(char *s, size_t cap) {
    char copy[LOG_MSG_MAX];
    int hit = 0;
    if (!secrets.n || cap == 0) return 0;
    scrub_copy(s, 0, copy, sizeof copy < cap ? sizeof copy : cap, &hit);
    if (hit) memcpy(s, copy, strlen(copy) + 1);
    return hit;
}

/* The string fields (at most LOG_FIELDS_MAX) scrubbed into buf (one
 * LOG_MSG_MAX for all; a field that no longer fits is emptied), in out. */
static size_t scrub_fields(const struct log_field *f, size_t n, struct log_field *out, char *buf) {
    size_t used = 0;
    int hit = 0;
    if (n > LOG_FIELDS_MAX) n = LOG_FIELDS_MAX;
    for (size_t i = 0; i < n; i++) {
        out[i] = f[i];
        if (!f[i].str) continue;
        out[i].str = buf + used;
        used += scrub_copy(f[i].str, 0, buf + used, LOG_MSG_MAX - used, &hit) + 1;
        if (used >= LOG_MSG_MAX) used = LOG_MSG_MAX - 1;   /* the rest: "" at the last byte */
    }
    return n;
}

/* ---- writing ----------------------------------------------------------- */

/* The whole line, continuing partial writes, under the mutex. */
static void write_line(const char *s, size_t n) {
    pthread_mutex_lock(&write_mu);
    while (n > 0) {
        ssize_t w = write(settings.fd, s, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        s += w;
        n -= (size_t)w;
    }
    pthread_mutex_unlock(&write_mu);
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void vlog(const char *prog, enum log_level l, const char *component,
                 const struct log_field *fields, size_t nfields, const char *fmt, va_list ap) {
    if (!log_enabled(l)) return;
    int saved = errno;
    char msg[LOG_MSG_MAX], clean[LOG_MSG_MAX], fbuf[LOG_MSG_MAX], line[LOG_LINE_MAX];
    struct log_field fl[LOG_FIELDS_MAX];
    int w = vsnprintf(msg, sizeof msg, fmt, ap), cut = w >= LOG_MSG_MAX;
    struct log_rec r = {now_ms(), l, prog, component, fields, nfields, msg, cut};
    if (secrets.n) {   /* nothing registered: nothing to scrub */
        int hit = 0;
        if (scrub_copy(msg, cut, clean, sizeof clean, &hit) + 1 == sizeof clean && hit) r.cut = 1;
        r.message = clean;
        r.fields = fields ? fl : NULL;
        r.nfields = fields ? scrub_fields(fields, nfields, fl, fbuf) : 0;
    }
    size_t n = log_render(settings.format, &r, line, sizeof line);
    write_line(line, n);
    errno = saved;
}

void log_msg(enum log_level l, const char *component, const struct log_field *fields,
             size_t nfields, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vlog(settings.prog, l, component, fields, nfields, fmt, ap);
    va_end(ap);
}

void log_msg_as(const char *prog, enum log_level l, const char *component,
                const struct log_field *fields, size_t nfields, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vlog(prog ? prog : settings.prog, l, component, fields, nfields, fmt, ap);
    va_end(ap);
}

#define LOG_SHORTHAND(name, level)                                  \
    void name(const char *component, const char *fmt, ...) {        \
        va_list ap;                                                 \
        va_start(ap, fmt);                                          \
        vlog(settings.prog, level, component, NULL, 0, fmt, ap);    \
        va_end(ap);                                                 \
    }
LOG_SHORTHAND(log_debug, LOG_LEVEL_DEBUG)
LOG_SHORTHAND(log_info, LOG_LEVEL_INFO)
LOG_SHORTHAND(log_warn, LOG_LEVEL_WARN)
LOG_SHORTHAND(log_error, LOG_LEVEL_ERROR)
