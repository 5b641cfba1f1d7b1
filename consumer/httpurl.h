/* httpurl.h -- the request targets of creditd's HTTP API (consumer/http.c):
 * routing of the path, percent-decoding of organisation ids, the query
 * parameters of GET /v1/orgs.  Pure functions (no I/O, no allocation), so
 * every rule is unit-tested (tests/unit/test_httpurl.c).
 *
 * Input is what libmicrohttpd hands over with its own unescaping turned off
 * (an identity MHD_OPTION_UNESCAPE_CALLBACK): the path raw, and each query
 * parameter as key and value raw, except that libmicrohttpd has already
 * turned '+' into ' ' (form encoding: send a '+' of an id as %2B).
 *
 * Rules:
 *   - the path must start with '/', hold no space or control byte, and no
 *     "." or ".." segment (not resolved: refused) -- else 400;
 *   - routes: /healthz, /readyz, /metrics, /v1/orgs, /v1/orgs/{org}, compared
 *     byte for byte (no trailing slash, no empty segment) -- else 404;
 *   - {org} and `after` are percent-decoded: %XX (two hex digits) is a byte,
 *     a '%' otherwise is 400; %00 (a NUL byte), more than ENG_ID_MAX bytes
 *     decoded, or a result that is not UTF-8 is 400 (no organisation can
 *     have such an id);
 *   - GET /v1/orgs takes `after` (an org id, "" = from the first) and `limit`
 *     (1..HTTPURL_LIMIT_MAX, default HTTPURL_LIMIT_DEFAULT); /v1/orgs/{org}
 *     takes none; an unknown, repeated or empty-valued parameter is 400;
 *     /healthz, /readyz and /metrics ignore their query (probes and
 *     scrapers may add their own).
 * Error texts name the part at fault ("org: %00 (a NUL byte) is not
 * allowed") and never quote the request's bytes, so they are always valid
 * UTF-8 and safe to put into a JSON body. */
#ifndef CREDITD_CONSUMER_HTTPURL_H
#define CREDITD_CONSUMER_HTTPURL_H

#include <stddef.h>

#include "engine/state.h"

#define HTTPURL_LIMIT_DEFAULT 100
#define HTTPURL_LIMIT_MAX     1000

enum httpurl_route {
    HTTPURL_NOTFOUND, HTTPURL_HEALTHZ, HTTPURL_READYZ, HTTPURL_METRICS, HTTPURL_ORG, HTTPURL_ORGS
};

struct httpurl {
    enum httpurl_route route;
    char org[ENG_ID_MAX + 1];    /* HTTPURL_ORG: the decoded id */
    char after[ENG_ID_MAX + 1];  /* HTTPURL_ORGS: decoded; "" = from the first org */
    int limit;                   /* HTTPURL_ORGS */
    unsigned given;              /* parameters seen (bits): a repeat is an error */
};

/* Route path (raw, without the query) into u, which it initialises.
 * 0: u->route is set (HTTPURL_NOTFOUND for a path that is no route);
 * 400 with err: a malformed path or {org}. */
int httpurl_path(struct httpurl *u, const char *path, char *err, size_t errlen);

/* One query parameter of u's route (after httpurl_path): key raw, value
 * raw or NULL (a parameter without '=').  0, or 400 with err. */
int httpurl_param(struct httpurl *u, const char *key, const char *value, char *err, size_t errlen);

/* Percent-decode in (NUL-terminated) into out (cap bytes, NUL-terminated):
 * 0 with *n the decoded length, or -1 with *why (a static phrase): a bad
 * escape, a raw control byte, %00, more than cap - 1 bytes decoded. */
int httpurl_decode(const char *in, char *out, size_t cap, size_t *n, const char **why);

/* 1 when s[0..n) is UTF-8 as RFC 3629 defines it (no overlong forms, no
 * surrogates, nothing above U+10FFFF), else 0. */
int httpurl_utf8(const char *s, size_t n);

#endif
