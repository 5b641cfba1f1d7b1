/* ctl_http -- creditctl's HTTP client: the organisation's current balance
 * from creditd's HTTP API (GET /v1/orgs/{org}), for `grant --http URL`
 * (if_value) as an alternative to reading the store with --db.
 *
 * A minimal blocking HTTP/1.1 client over one TCP connection ("Connection:
 * close"): URL is http://HOST[:PORT][/PREFIX] (HOST a name, an IPv4
 * address or a bracketed IPv6 address; PORT 80 by default; PREFIX for a
 * proxy that mounts the API under a path); no TLS, no redirects, no
 * chunked bodies (creditd sends Content-Length).  The whole exchange --
 * name lookup aside -- is bounded by timeout_ms, and the response by
 * CTLHTTP_MAX_RESPONSE bytes.  The body is parsed with jansson. */
#ifndef TOOLS_CTL_HTTP_H
#define TOOLS_CTL_HTTP_H

#include <stddef.h>
#include <stdint.h>

#define CTLHTTP_MAX_RESPONSE ((size_t)4 << 20)

/* The credit value of org: 0 with *has = 1 and *value (micro-units), or
 * *has = 0 when the org has no credit or is unknown (404); -1 with err on
 * a bad URL, a connection or protocol failure, another status (err quotes
 * the body's "error"), or a body that is not the expected JSON. */
int ctlhttp_org_value(const char *url, const char *org, int timeout_ms, int *has, int64_t *value,
                      char *err, size_t errlen);

/* The request target of org under the URL's prefix: "/PREFIX/v1/orgs/"
 * then the id percent-encoded (every byte but A-Z a-z 0-9 - _ ~ as %XX,
 * '.' included, so "." and ".." are ids, not dot segments).  The host and
 * port into host (hostlen) and *port.  0, or -1 with err. */
int ctlhttp_target(const char *url, const char *org, char *host, size_t hostlen, int *port,
                   char *target, size_t targetlen, char *err, size_t errlen);

#endif
