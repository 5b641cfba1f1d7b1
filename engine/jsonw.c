/* jsonw.c -- see jsonw.h. */
#include "engine/jsonw.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/money.h"

void jsonw_init(struct jsonw *w) { memset(w, 0, sizeof(*w)); }
void jsonw_free(struct jsonw *w) { free(w->buf); memset(w, 0, sizeof(*w)); }
void jsonw_reset(struct jsonw *w) { w->len = 0; w->oom = 0; w->need_comma = 0; if (w->buf) w->buf[0] = 0; }
int  jsonw_ok(const struct jsonw *w) { return !w->oom; }

/* Slow path: grow to hold n more bytes and the NUL. */
static __attribute__((noinline)) int grow(struct jsonw *w, size_t n) {
    if (w->oom) return -1;
    size_t cap = w->cap ? w->cap : 1024;
    while (cap < w->len + n + 1) cap *= 2;
    char *b = realloc(w->buf, cap);
    if (!b) { w->oom = 1; return -1; }
    w->buf = b;
    w->cap = cap;
    return 0;
}

/* Room for n more bytes and the NUL: 0, or -1 after an allocation failure. */
static inline int room(struct jsonw *w, size_t n) {
    return w->len + n + 1 <= w->cap ? 0 : grow(w, n);
}

static inline void put(struct jsonw *w, const char *s, size_t n) {
    if (room(w, n)) return;
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = 0;
}

static inline void comma(struct jsonw *w) {
    if (w->need_comma) put(w, ",", 1);
    w->need_comma = 1;
}

void jsonw_obj_open(struct jsonw *w) { comma(w); put(w, "{", 1); w->need_comma = 0; }
void jsonw_obj_close(struct jsonw *w) { put(w, "}", 1); w->need_comma = 1; }
void jsonw_arr_open(struct jsonw *w) { comma(w); put(w, "[", 1); w->need_comma = 0; }
void jsonw_arr_close(struct jsonw *w) { put(w, "]", 1); w->need_comma = 1; }

void jsonw_key(struct jsonw *w, const char *k) {
    size_t n = strlen(k);
    if (room(w, n + 4)) return;
    char *p = w->buf + w->len;
    if (w->need_comma) *p++ = ',';
    *p++ = '"';
    memcpy(p, k, n);
    p += n;
    *p++ = '"';
    *p++ = ':';
    *p = 0;
    w->len = (size_t)(p - w->buf);
    w->need_comma = 0;
}

/* Escapes '"', '\\' and control characters; other bytes (UTF-8) verbatim.
 * Room for the worst case (every byte as \u00XX) is made once. */
static void escaped(struct jsonw *w, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    if (room(w, 6 * n + 2)) return;
    char *p = w->buf + w->len;
    *p++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') { *p++ = (char)c; continue; }
        *p++ = '\\';
        switch (c) {
        case '"':  *p++ = '"'; break;
        case '\\': *p++ = '\\'; break;
        case '\n': *p++ = 'n'; break;
        case '\r': *p++ = 'r'; break;
        case '\t': *p++ = 't'; break;
        case '\b': *p++ = 'b'; break;
        case '\f': *p++ = 'f'; break;
        default:
            memcpy(p, "u00", 3);
            p += 3;
            *p++ = hex[c >> 4];
            *p++ = hex[c & 15];
        }
    }
    *p++ = '"';
    *p = 0;
    w->len = (size_t)(p - w->buf);
}

void jsonw_strn(struct jsonw *w, const char *s, size_t n) { comma(w); escaped(w, s, n); }
void jsonw_str(struct jsonw *w, const char *s) {
    if (!s) { jsonw_null(w); return; }
    jsonw_strn(w, s, strlen(s));
}
void jsonw_raw(struct jsonw *w, const char *s) { comma(w); put(w, s, strlen(s)); }
void jsonw_null(struct jsonw *w) { comma(w); put(w, "null", 4); }
void jsonw_bool(struct jsonw *w, int b) { comma(w); if (b) put(w, "true", 4); else put(w, "false", 5); }

void jsonw_int(struct jsonw *w, int64_t v) {
    char b[MONEY_FMT_MAX];
    size_t n = money_format(v, 0, b); /* an integer is money with no fraction */
    comma(w);
    put(w, b, n);
}

void jsonw_money(struct jsonw *w, int64_t micro) {
    char b[MONEY_FMT_MAX + 2];
    b[0] = '"';
    size_t n = money_format(micro, MONEY_DIGITS, b + 1);
    b[n + 1] = '"';
    comma(w);
    put(w, b, n + 2);
}

void jsonw_kstr(struct jsonw *w, const char *k, const char *s) { jsonw_key(w, k); jsonw_str(w, s); }
void jsonw_kint(struct jsonw *w, const char *k, int64_t v) { jsonw_key(w, k); jsonw_int(w, v); }
void jsonw_kbool(struct jsonw *w, const char *k, int b) { jsonw_key(w, k); jsonw_bool(w, b); }
void jsonw_kmoney(struct jsonw *w, const char *k, int64_t m) { jsonw_key(w, k); jsonw_money(w, m); }
