/* http.c -- see http.h. */
#include "consumer/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "consumer/httpurl.h"
#include "engine/jsonw.h"
#include "tools/view.h"

#define ERRLEN   512
#define CT_JSON  "application/json"
#define CT_PROM  "text/plain; version=0.0.4; charset=utf-8"
#define CB_STOP    1000  /* a scan callback: the page is full */
#define CB_CORRUPT 1001  /* a scan callback: an org failed view_org_check */

struct http {
    struct MHD_Daemon *d;
    const struct config *c;
    struct store *s;
    struct metrics *m;
};

/* One response being built: status, content type, body (a JSON writer, or
 * raw bytes for /metrics), and whether it needs an Allow header (405). */
struct reply {
    unsigned status;
    const char *type;
    struct jsonw w;
    char *raw;   /* malloc'd, or NULL: the body is w */
    size_t rawlen;
    int allow;
};

/* ---- JSON bodies ------------------------------------------------------------ */

/* Text that may come from outside the process (a store path, a corrupt
 * record's key) as a JSON string that is valid UTF-8: invalid bytes become
 * '?'. */
static void json_text(struct jsonw *w, const char *key, const char *s) {
    char buf[ERRLEN * 2];
    size_t n = 0;
    for (size_t i = 0; s[i] && n + 5 < sizeof(buf);) {
        size_t len = 1;
        while (len < 4 && s[i + len] && ((unsigned char)s[i + len] & 0xc0) == 0x80) len++;
        while (len > 1 && !httpurl_utf8(s + i, len)) len--;
        if (!httpurl_utf8(s + i, len)) { buf[n++] = '?'; i++; continue; }
        memcpy(buf + n, s + i, len);
        n += len;
        i += len;
    }
    jsonw_key(w, key);
    jsonw_strn(w, buf, n);
}

/* {"error":msg[,"org":org]} */
static void reply_error(struct reply *r, unsigned status, const char *msg, const char *org) {
    r->status = status;
    r->type = CT_JSON;
    jsonw_reset(&r->w);
    jsonw_obj_open(&r->w);
    json_text(&r->w, "error", msg);
    if (org) json_text(&r->w, "org", org);
    jsonw_obj_close(&r->w);
}

/* {"status":status[,"reason":why]} */
static void reply_status(struct reply *r, unsigned code, const char *status, const char *why) {
    r->status = code;
    r->type = CT_JSON;
    jsonw_obj_open(&r->w);
    jsonw_kstr(&r->w, "status", status);
    if (why) json_text(&r->w, "reason", why);
    jsonw_obj_close(&r->w);
}

/* ---- endpoints ----------------------------------------------------------------- */

static void serve_metrics(struct http *h, struct reply *r) {
    if (metrics_render(h->m, &r->raw, &r->rawlen)) {
        r->raw = NULL;
        reply_error(r, 500, "metrics: out of memory", NULL);
        return;
    }
    r->status = 200;
    r->type = CT_PROM;
}

static void serve_ready(struct http *h, struct reply *r) {
    char why[256] = "";
    if (metrics_ready(h->m, h->c->http_ready_max_lag, why, sizeof(why)))
        reply_status(r, 200, "ready", NULL);
    else
        reply_status(r, 503, "not ready", why);
}

/* GET /v1/orgs/{org}: creditctl show ORG --json, the same bytes. */
static void serve_org(struct http *h, const char *id, struct reply *r) {
    char err[ERRLEN];
    struct store_view *v = NULL;
    struct eng_org *o = malloc(sizeof(*o));
    if (!o) { reply_error(r, 500, "out of memory", id); return; }
    eng_org_init(o);
    int rc = store_view_begin(h->s, &v, err, sizeof(err));
    if (!rc) rc = store_view_get_org(v, id, o, err, sizeof(err));
    store_view_end(v);
    if (rc == STORE_NOTFOUND) reply_error(r, 404, "no such organisation", id);
    else if (rc) reply_error(r, 500, err, id);
    else if (view_org_check(h->c->store_path, o, err, sizeof(err))) reply_error(r, 500, err, id);
    else {
        r->status = 200;
        r->type = CT_JSON;
        view_show_json(&r->w, o);
    }
    eng_org_free(o);
    free(o);
}

/* GET /v1/orgs: a page of balances objects, as store_view_scan_orgs walks. */
struct page {
    struct http *h;
    struct jsonw *w;
    int limit, items, scanned;
    char last[ENG_ID_MAX + 1];   /* the last org put on the page */
    char next[ENG_ID_MAX + 1];   /* where the next page starts ("" = no next page) */
    int has_next;
    char err[ERRLEN];
    char bad[ENG_ID_MAX + 1];
};

static int page_cb(void *arg, const struct eng_org *o) {
    struct page *pg = arg;
    if (view_org_check(pg->h->c->store_path, o, pg->err, sizeof(pg->err))) {
        snprintf(pg->bad, sizeof(pg->bad), "%s", o->id);
        return CB_CORRUPT;
    }
    if (o->has_credit && pg->items == pg->limit) {  /* full: the next page starts after last */
        strcpy(pg->next, pg->last);
        pg->has_next = 1;
        return CB_STOP;
    }
    pg->scanned++;
    if (o->has_credit) {
        view_balance_org_json(pg->w, o);
        for (size_t i = 0; i < o->nproj; i++)
            if (o->proj[i].has_credit) view_balance_project_json(pg->w, o, &o->proj[i]);
        strcpy(pg->last, o->id);
        pg->items++;
    }
    if (pg->scanned >= HTTP_SCAN_MAX) {  /* bounded work per request */
        strcpy(pg->next, o->id);
        pg->has_next = 1;
        return CB_STOP;
    }
    return 0;
}

static void serve_orgs(struct http *h, const struct httpurl *u, struct reply *r) {
    struct page pg;
    struct store_view *v = NULL;
    char err[ERRLEN], bad[ENG_ID_MAX + 1] = "";
    memset(&pg, 0, sizeof(pg));
    pg.h = h;
    pg.w = &r->w;
    pg.limit = u->limit;
    jsonw_obj_open(&r->w);
    jsonw_key(&r->w, "balances");
    jsonw_arr_open(&r->w);
    int rc = store_view_begin(h->s, &v, err, sizeof(err));
    if (!rc) rc = store_view_scan_orgs(v, u->after, page_cb, &pg, bad, err, sizeof(err));
    store_view_end(v);
    if (rc == CB_CORRUPT) { reply_error(r, 500, pg.err, pg.bad); return; }
    if (rc && rc != CB_STOP) { reply_error(r, 500, err, *bad ? bad : NULL); return; }
    jsonw_arr_close(&r->w);
    jsonw_key(&r->w, "next");
    if (pg.has_next) jsonw_str(&r->w, pg.next);
    else jsonw_null(&r->w);
    jsonw_obj_close(&r->w);
    r->status = 200;
    r->type = CT_JSON;
}

/* ---- requests ---------------------------------------------------------------- */

struct params { struct httpurl *u; int rc; char err[256]; };

static enum MHD_Result param_cb(void *arg, enum MHD_ValueKind kind, const char *key, const char *value) {
    struct params *p = arg;
    (void)kind;
    p->rc = httpurl_param(p->u, key, value, p->err, sizeof(p->err));
    return p->rc ? MHD_NO : MHD_YES;
}

/* Route and serve one request into r. */
static void serve(struct http *h, struct MHD_Connection *con, const char *url, const char *method,
                  struct reply *r) {
    struct httpurl u;
    struct params p = { &u, 0, "" };
    if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD)) {
        r->allow = 1;
        reply_error(r, 405, "method not allowed: this API is read-only (GET, HEAD)", NULL);
        return;
    }
    if (httpurl_path(&u, url, p.err, sizeof(p.err))) { reply_error(r, 400, p.err, NULL); return; }
    MHD_get_connection_values(con, MHD_GET_ARGUMENT_KIND, param_cb, &p);
    if (p.rc) { reply_error(r, 400, p.err, NULL); return; }
    switch (u.route) {
    case HTTPURL_HEALTHZ: reply_status(r, 200, "alive", NULL); break;
    case HTTPURL_READYZ: serve_ready(h, r); break;
    case HTTPURL_METRICS: serve_metrics(h, r); break;
    case HTTPURL_ORG: serve_org(h, u.org, r); break;
    case HTTPURL_ORGS: serve_orgs(h, &u, r); break;
    default: reply_error(r, 404, "no such path (GET /metrics, /healthz, /readyz, /v1/orgs, "
                         "/v1/orgs/{org})", NULL);
    }
}

static enum MHD_Result send_reply(struct MHD_Connection *con, struct reply *r) {
    if (!r->raw && !jsonw_ok(&r->w)) reply_error(r, 500, "out of memory", NULL);
    const char *body = r->raw ? r->raw : r->w.buf ? r->w.buf : "";
    size_t len = r->raw ? r->rawlen : r->w.len;
    char *copy = malloc(len + 1);
    if (!copy) return MHD_NO;
    memcpy(copy, body, len);
    if (!r->raw) copy[len++] = '\n';  /* as creditctl prints it */
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, copy, MHD_RESPMEM_MUST_FREE);
    if (!resp) { free(copy); return MHD_NO; }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (r->allow) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result ret = MHD_queue_response(con, r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* The whole answer is decided on the first call, before any request body
 * is read (none is: a body is never needed, and libmicrohttpd closes the
 * connection after the response instead of reading it). */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *con, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **req) {
    struct reply r;
    (void)version;
    (void)upload;
    (void)upload_size;
    (void)req;
    memset(&r, 0, sizeof(r));
    jsonw_init(&r.w);
    serve(cls, con, url, method, &r);
    enum MHD_Result ret = send_reply(con, &r);
    jsonw_free(&r.w);
    free(r.raw);
    return ret;
}

/* libmicrohttpd must hand over the path and query raw: httpurl decodes
 * them itself (its own decoder would turn %00 into a NUL that cuts the
 * path short, and could not tell %2F from '/'). */
static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s) {
    (void)cls;
    (void)c;
    return strlen(s);
}

/* ---- start, stop -------------------------------------------------------------- */

/* The bound address as a URL: http://HOST:PORT (IPv6 in brackets). */
static void bound_url(int fd, int v6, const char *host, char *url, size_t len) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int port = 0;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        port = ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
    snprintf(url, len, "http://%s%s%s:%d", v6 ? "[" : "", host, v6 ? "]" : "", port);
}

/* A listening socket on http.listen: the fd, or -1 with err naming it. */
static int listen_on(const struct config *c, int *v6, char *url, size_t urllen, char *err, size_t errlen) {
    char host[CONFIG_LISTEN_HOST_MAX + 1], msg[256];
    struct sockaddr_storage ss;
    socklen_t sl;
    int port, one = 1;
    memset(&ss, 0, sizeof(ss));
    if (config_listen_split(c->http_listen, host, sizeof(host), &port, v6, msg, sizeof(msg))) {
        snprintf(err, errlen, "http.listen: %s", msg);
        return -1;
    }
    if (*v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        inet_pton(AF_INET6, host, &a->sin6_addr);
        sl = sizeof(*a);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        inet_pton(AF_INET, host, &a->sin_addr);
        sl = sizeof(*a);
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const char *what = fd < 0 ? "socket" : NULL;
    if (!what && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one))) what = "SO_REUSEADDR";
    if (!what && *v6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one))) what = "IPV6_V6ONLY";
    if (!what && bind(fd, (struct sockaddr *)&ss, sl)) what = "bind";
    if (!what && listen(fd, HTTP_BACKLOG)) what = "listen";
    if (what) {
        snprintf(err, errlen, "http.listen %s: %s: %s", c->http_listen, what, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    bound_url(fd, *v6, host, url, urllen);
    return fd;
}

int http_start(struct http **out, const struct config *c, struct store *s, struct metrics *m,
               char *err, size_t errlen) {
    char url[CONFIG_LISTEN_HOST_MAX + 32];
    int v6 = 0;
    *out = NULL;
    if (!c->http_listen[0]) return 0;
    struct http *h = calloc(1, sizeof(*h));
    if (!h) {
        snprintf(err, errlen, "http: out of memory");
        return -1;
    }
    h->c = c;
    h->s = s;
    h->m = m;
    int fd = listen_on(c, &v6, url, sizeof(url), err, errlen);
    if (fd < 0) {
        free(h);
        return -1;
    }
    unsigned max = (unsigned)c->http_max_connections, per_ip = max / 2 ? max / 2 : 1;
    /* The server thread inherits this mask: SIGTERM and SIGINT stay with
     * the pipeline's thread, whose waits they are meant to end. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    h->d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | (v6 ? MHD_USE_IPv6 : 0), 0, NULL, NULL,
        on_request, h, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT, max,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)c->http_timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, HTTP_CONN_MEMORY,
        MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, NULL, MHD_OPTION_END);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!h->d) {
        snprintf(err, errlen, "http.listen %s: libmicrohttpd did not start", c->http_listen);
        close(fd);
        free(h);
        return -1;
    }
    printf("creditd: http listening on %s\n", url);
    fflush(stdout);
    *out = h;
    return 0;
}

void http_stop(struct http *h) {
    if (!h) return;
    MHD_stop_daemon(h->d);  /* joins the server thread; closes the listening socket */
    free(h);
}
