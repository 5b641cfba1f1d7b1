/* httpurl.c -- see httpurl.h. */
#include "consumer/httpurl.h"

#include <stdio.h>
#include <string.h>

enum { P_AFTER = 1, P_LIMIT = 2 };

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int httpurl_decode(const char *in, char *out, size_t cap, size_t *n, const char **why) {
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        int c = *p;
        if (c < 0x20 || c == 0x7f) { *why = "a raw control byte is not allowed"; return -1; }
        if (c == '%') {
            int hi = hexval((char)p[1]), lo = hi < 0 ? -1 : hexval((char)p[2]);
            if (lo < 0) { *why = "'%' not followed by two hex digits"; return -1; }
            c = hi * 16 + lo;
            p += 2;
            if (c == 0) { *why = "%00 (a NUL byte) is not allowed"; return -1; }
        }
        if (o + 1 >= cap) { *why = "too long"; return -1; }
        out[o++] = (char)c;
    }
    out[o] = 0;
    *n = o;
    return 0;
}

int httpurl_utf8(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        unsigned c = *p++;
        int more;
        unsigned min, cp;
        if (c < 0x80) continue;
        if (c >= 0xc2 && c <= 0xdf) { more = 1; min = 0x80; cp = c & 0x1f; }
        else if (c >= 0xe0 && c <= 0xef) { more = 2; min = 0x800; cp = c & 0x0f; }
        else if (c >= 0xf0 && c <= 0xf4) { more = 3; min = 0x10000; cp = c & 0x07; }
        else return 0;
        if (end - p < more) return 0;
        for (int i = 0; i < more; i++, p++) {
            if ((*p & 0xc0) != 0x80) return 0;
            cp = cp << 6 | (*p & 0x3fu);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    }
    return 1;
}

/* An org id as the request gives it (raw) into out: 0, or 400 with err
 * naming what (e.g. "org"). */
static int decode_id(const char *what, const char *raw, char out[ENG_ID_MAX + 1], char *err,
                     size_t errlen) {
    const char *why;
    size_t n;
    if (httpurl_decode(raw, out, ENG_ID_MAX + 1, &n, &why)) {
        if (strcmp(why, "too long") == 0)
            snprintf(err, errlen, "%s: longer than %d bytes (an organisation id is at most %d)", what,
                     ENG_ID_MAX, ENG_ID_MAX);
        else
            snprintf(err, errlen, "%s: %s", what, why);
        return 400;
    }
    if (!httpurl_utf8(out, n)) {
        snprintf(err, errlen, "%s: not UTF-8 once percent-decoded", what);
        return 400;
    }
    return 0;
}

/* Segment i (0-based) of path: its start and length, or -1 past the end. */
static int segment(const char *path, int i, const char **s, size_t *n) {
    const char *p = path + 1;
    for (int k = 0; k < i; k++) {
        p = strchr(p, '/');
        if (!p) return -1;
        p++;
    }
    const char *e = strchr(p, '/');
    *s = p;
    *n = e ? (size_t)(e - p) : strlen(p);
    return 0;
}

static int nsegments(const char *path) {
    int n = 1;
    for (const char *p = path + 1; *p; p++) n += *p == '/';
    return n;
}

static int seg_is(const char *path, int i, const char *want) {
    const char *s;
    size_t n;
    return segment(path, i, &s, &n) == 0 && n == strlen(want) && memcmp(s, want, n) == 0;
}

/* No control byte, space or DEL; no "." or ".." segment. */
static int path_bad(const char *path, char *err, size_t errlen) {
    if (path[0] != '/') {
        snprintf(err, errlen, "path: must start with '/' (origin form)");
        return 400;
    }
    for (const unsigned char *p = (const unsigned char *)path; *p; p++)
        if (*p <= 0x20 || *p == 0x7f) {
            snprintf(err, errlen, "path: a space or control byte is not allowed");
            return 400;
        }
    for (int i = 0, n = nsegments(path); i < n; i++)
        if (seg_is(path, i, ".") || seg_is(path, i, "..")) {
            snprintf(err, errlen, "path: \".\" and \"..\" segments are not allowed");
            return 400;
        }
    return 0;
}

int httpurl_path(struct httpurl *u, const char *path, char *err, size_t errlen) {
    memset(u, 0, sizeof(*u));
    u->route = HTTPURL_NOTFOUND;
    u->limit = HTTPURL_LIMIT_DEFAULT;
    int rc = path_bad(path, err, errlen);
    if (rc) return rc;
    int n = nsegments(path);
    if (n == 1 && seg_is(path, 0, "healthz")) u->route = HTTPURL_HEALTHZ;
    else if (n == 1 && seg_is(path, 0, "readyz")) u->route = HTTPURL_READYZ;
    else if (n == 1 && seg_is(path, 0, "metrics")) u->route = HTTPURL_METRICS;
    else if (n == 2 && seg_is(path, 0, "v1") && seg_is(path, 1, "orgs")) u->route = HTTPURL_ORGS;
    else if (n == 3 && seg_is(path, 0, "v1") && seg_is(path, 1, "orgs") && !seg_is(path, 2, "")) {
        const char *s = "";
        size_t len = 0;
        segment(path, 2, &s, &len);
        rc = decode_id("org", s, u->org, err, errlen);
        if (rc) return rc;
        u->route = HTTPURL_ORG;
    }
    return 0;
}

static int parse_limit(const char *v, int *out) {
    long x = 0;
    if (!*v || strspn(v, "0123456789") != strlen(v) || strlen(v) > 4) return -1;
    for (const char *p = v; *p; p++) x = x * 10 + (*p - '0');
    if (x < 1 || x > HTTPURL_LIMIT_MAX) return -1;
    *out = (int)x;
    return 0;
}

int httpurl_param(struct httpurl *u, const char *key, const char *value, char *err, size_t errlen) {
    char name[16];
    const char *why;
    size_t n;
    if (u->route != HTTPURL_ORG && u->route != HTTPURL_ORGS) return 0;
    if (!*key && !value) return 0;  /* "&&", a trailing '&' */
    int p = httpurl_decode(key, name, sizeof name, &n, &why) ? 0
            : strcmp(name, "after") == 0 ? P_AFTER : strcmp(name, "limit") == 0 ? P_LIMIT : 0;
    if (!p || u->route != HTTPURL_ORGS) {
        snprintf(err, errlen, "query: unknown parameter (%s)",
                 u->route == HTTPURL_ORGS ? "GET /v1/orgs takes after and limit" : "this path takes none");
        return 400;
    }
    const char *pname = p == P_AFTER ? "after" : "limit";
    if (u->given & (unsigned)p) {
        snprintf(err, errlen, "%s: given twice", pname);
        return 400;
    }
    u->given |= (unsigned)p;
    if (!value) {
        snprintf(err, errlen, "%s: no value (write %s=...)", pname, pname);
        return 400;
    }
    if (p == P_AFTER) return decode_id("after", value, u->after, err, errlen);
    if (parse_limit(value, &u->limit)) {
        snprintf(err, errlen, "limit: not an integer from 1 to %d", HTTPURL_LIMIT_MAX);
        return 400;
    }
    return 0;
}
