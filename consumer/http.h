/* http.h -- creditd's read-only HTTP endpoint (libmicrohttpd), off unless
 * http.listen is set.  README "HTTP API" lists the endpoints:
 *
 *   GET /metrics          metrics_render(): Prometheus text format 0.0.4
 *   GET /healthz          200 {"status":"alive"} while the process serves
 *   GET /readyz           metrics_ready(): 200 {"status":"ready"}, or 503
 *                         {"status":"not ready","reason":"..."}
 *   GET /v1/orgs/{org}    creditctl show ORG --json, byte for byte; 404 for
 *                         an unknown org
 *   GET /v1/orgs?after=ORG&limit=N
 *                         {"balances":[creditctl balances --json objects of
 *                         up to N orgs with an id after ORG],"next":ID|null}
 *
 * Read-only by construction: it reads the store through store views (its
 * own LMDB read txns: the pipeline's writer is never blocked, and a view
 * sees one committed state) and the metrics (their own lock).  HEAD is
 * served like GET without the body; any other method is 405 with Allow.
 * Error bodies are JSON, {"error":"...","org":"..."}, always valid UTF-8.
 *
 * Bounds: http.max_connections concurrent connections (half of them per
 * client address; beyond, libmicrohttpd closes a new connection at once),
 * http.timeout_s of idleness per connection, HTTP_CONN_MEMORY bytes per
 * connection (a request line or headers that do not fit get 414 or 431),
 * HTTPURL_LIMIT_MAX orgs per page and HTTP_SCAN_MAX orgs looked at per
 * page (orgs without credit are skipped: a page may hold fewer than
 * `limit` and still have a `next`), no request body is read.
 *
 * Threads: one, libmicrohttpd's internal polling thread, which runs every
 * request; at most one store view is open at a time. */
#ifndef CREDITD_CONSUMER_HTTP_H
#define CREDITD_CONSUMER_HTTP_H

#include <stddef.h>

#include "config/config.h"
#include "consumer/metrics.h"
#include "store/store.h"

#define HTTP_CONN_MEMORY ((size_t)32 * 1024)  /* per connection: request line, headers */
#define HTTP_SCAN_MAX    10000                /* orgs looked at for one page of /v1/orgs */
#define HTTP_BACKLOG     128                  /* listen(2) backlog */

struct http;

/* Start serving when c->http_listen is set (else *out = NULL and 0).  The
 * socket is bound before this returns: a failure is -1 with err naming
 * http.listen ("http.listen 127.0.0.1:8080: bind: Address already in
 * use").  Prints "creditd: http listening on http://HOST:PORT" on stdout
 * (the port the kernel chose for port 0).  c, s and m are borrowed: they
 * must stay valid until http_stop has returned. */
int http_start(struct http **out, const struct config *c, struct store *s, struct metrics *m,
               char *err, size_t errlen);

/* Stop: closes the socket and every connection, and returns once the
 * server thread has ended (no request in flight, no store view open).
 * NULL is fine. */
void http_stop(struct http *h);

#endif
