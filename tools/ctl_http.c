/* ctl_http -- see ctl_http.h. */
#include "tools/ctl_http.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "engine/money.h"

#define HOST_MAX   256
#define TARGET_MAX 2048

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the URL ------------------------------------------------------------------ */

static int unreserved(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '~';
}

/* host and port of the authority a[0..n). */
static int split_authority(const char *a, size_t n, char *host, size_t hostlen, int *port) {
    const char *hb = a, *he, *colon;
    if (n && a[0] == '[') {
        hb = a + 1;
        he = memchr(a, ']', n);
        if (!he) return -1;
        colon = he + 1 < a + n ? he + 1 : NULL;
        if (colon && *colon != ':') return -1;
    } else {
        colon = memchr(a, ':', n);
        he = colon ? colon : a + n;
    }
    size_t hl = (size_t)(he - hb);
    if (hl == 0 || hl >= hostlen) return -1;
    memcpy(host, hb, hl);
    host[hl] = 0;
    *port = 80;
    if (!colon) return 0;
    const char *p = colon + 1, *end = a + n;
    long v = 0;
    if (p == end || end - p > 5) return -1;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9') return -1;
        v = v * 10 + (*p - '0');
    }
    if (v < 1 || v > 65535) return -1;
    *port = (int)v;
    return 0;
}

int ctlhttp_target(const char *url, const char *org, char *host, size_t hostlen, int *port,
                   char *target, size_t targetlen, char *err, size_t errlen) {
    static const char hex[] = "0123456789ABCDEF";
    if (strncasecmp(url, "http://", 7) != 0) {
        snprintf(err, errlen, "--http %s: not an http:// URL (https is not supported)", url);
        return -1;
    }
    const char *a = url + 7, *path = a + strcspn(a, "/?#");
    if (*path == '?' || *path == '#' || strpbrk(path, "?#")) {
        snprintf(err, errlen, "--http %s: a query or fragment is not allowed", url);
        return -1;
    }
    if (split_authority(a, (size_t)(path - a), host, hostlen, port)) {
        snprintf(err, errlen, "--http %s: expected http://HOST[:PORT][/PREFIX]", url);
        return -1;
    }
    size_t plen = strlen(path);
    while (plen && path[plen - 1] == '/') plen--;
    size_t n = (size_t)snprintf(target, targetlen, "%.*s/v1/orgs/", (int)plen, path);
    for (const unsigned char *p = (const unsigned char *)org; *p && n + 4 < targetlen; p++) {
        if (unreserved(*p)) target[n++] = (char)*p;
        else { target[n++] = '%'; target[n++] = hex[*p >> 4]; target[n++] = hex[*p & 15]; }
    }
    if (n + 4 >= targetlen) {
        snprintf(err, errlen, "--http %s: URL too long", url);
        return -1;
    }
    target[n] = 0;
    return 0;
}

/* ---- one exchange ----------------------------------------------------------------- */

/* Wait for ev on fd until deadline: 0, or -1 (timeout: errno ETIMEDOUT). */
static int wait_fd(int fd, short ev, int64_t deadline) {
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0) { errno = ETIMEDOUT; return -1; }
        struct pollfd p = { fd, ev, 0 };
        int rc = poll(&p, 1, (int)left);
        if (rc > 0) return 0;
        if (rc < 0 && errno != EINTR) return -1;
    }
}

/* A connected non-blocking socket to host:port, or -1 with err. */
static int dial(const char *host, int port, int64_t deadline, char *err, size_t errlen) {
    struct addrinfo hints, *ai, *a;
    char ps[8];
    int fd = -1, e = 0;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    snprintf(ps, sizeof(ps), "%d", port);
    int rc = getaddrinfo(host, ps, &hints, &ai);
    if (rc) {
        snprintf(err, errlen, "%s: %s", host, gai_strerror(rc));
        return -1;
    }
    for (a = ai; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) { e = errno; continue; }
        socklen_t sl = sizeof(e);
        e = connect(fd, a->ai_addr, a->ai_addrlen) == 0 ? 0 : errno;
        if (e == EINPROGRESS) {  /* wait, then the outcome is SO_ERROR */
            e = wait_fd(fd, POLLOUT, deadline) ? errno : 0;
            if (!e && getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &sl)) e = errno;
        }
        if (e == 0) break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd < 0) snprintf(err, errlen, "connect to %s port %d: %s", host, port, strerror(e));
    return fd;
}

static int send_all(int fd, const char *p, size_t n, int64_t deadline) {
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w > 0) { p += w; n -= (size_t)w; continue; }
        if (w < 0 && errno != EAGAIN && errno != EINTR) return -1;
        if (wait_fd(fd, POLLOUT, deadline)) return -1;
    }
    return 0;
}

/* Everything the server sends until it closes, at most CTLHTTP_MAX_RESPONSE
 * bytes: malloc'd into *out (NUL-terminated), *n. */
static int recv_all(int fd, char **out, size_t *n, int64_t deadline) {
    size_t cap = 16384, len = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        ssize_t r = recv(fd, buf + len, cap - len, 0);
        if (r == 0) break;
        if (r > 0) {
            len += (size_t)r;
            if (len < cap) continue;
            char *nb = cap >= CTLHTTP_MAX_RESPONSE ? NULL : realloc(buf, cap * 2 + 1);
            if (!nb) { free(buf); errno = EMSGSIZE; return -1; }
            buf = nb;
            cap *= 2;
            continue;
        }
        if ((errno != EAGAIN && errno != EINTR) || wait_fd(fd, POLLIN, deadline)) {
            free(buf);
            return -1;
        }
    }
    if (!buf) { errno = ENOMEM; return -1; }
    buf[len] = 0;
    *out = buf;
    *n = len;
    return 0;
}

/* GET target from host:port: the status, and the body (malloc'd) in *body. */
static int http_get(const char *host, int port, const char *target, int timeout_ms, int *status,
                    char **body, size_t *blen, char *err, size_t errlen) {
    int64_t deadline = now_ms() + timeout_ms;
    char req[TARGET_MAX + HOST_MAX + 128], *resp = NULL;
    size_t n;
    int fd = dial(host, port, deadline, err, errlen);
    if (fd < 0) return -1;
    int rl = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s%s%s:%d\r\nAccept: application/json\r\n"
                      "User-Agent: creditctl\r\nConnection: close\r\n\r\n", target,
                      strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", port);
    int rc = send_all(fd, req, (size_t)rl, deadline);
    if (!rc) rc = recv_all(fd, &resp, &n, deadline);
    int e = errno;
    close(fd);
    if (rc) {
        snprintf(err, errlen, "GET %s from %s port %d: %s", target, host, port, strerror(e));
        return -1;
    }
    char *head_end = strstr(resp, "\r\n\r\n");
    if (strncmp(resp, "HTTP/1.", 7) != 0 || strlen(resp) < 12 || !head_end ||
        sscanf(resp + 9, "%3d", status) != 1) {
        snprintf(err, errlen, "GET %s from %s port %d: not an HTTP response", target, host, port);
        free(resp);
        return -1;
    }
    *head_end = 0;
    if (strcasestr(resp, "\r\ntransfer-encoding:")) {
        snprintf(err, errlen, "GET %s from %s port %d: a chunked response is not supported", target, host, port);
        free(resp);
        return -1;
    }
    *blen = n - (size_t)(head_end + 4 - resp);
    memmove(resp, head_end + 4, *blen + 1);
    *body = resp;
    return 0;
}

/* ---- the org's value ------------------------------------------------------------ */

/* The body of a 200: the org's credit value, or *has = 0 when credit is null. */
static int credit_value(json_t *j, int *has, int64_t *value, char *err, size_t errlen) {
    json_t *c = json_object_get(j, "credit");
    const char *v = json_string_value(json_object_get(c, "value"));
    if (json_is_null(c)) { *has = 0; return 0; }
    if (!v || money_parse(v, strlen(v), MONEY_DIGITS, value) != 0) {
        snprintf(err, errlen, "the answer has no credit.value amount");
        return -1;
    }
    *has = 1;
    return 0;
}

int ctlhttp_org_value(const char *url, const char *org, int timeout_ms, int *has, int64_t *value,
                      char *err, size_t errlen) {
    char host[HOST_MAX], target[TARGET_MAX], e[256];
    int port, status;
    char *body = NULL;
    size_t blen = 0;
    *has = 0;
    if (ctlhttp_target(url, org, host, sizeof(host), &port, target, sizeof(target), err, errlen) ||
        http_get(host, port, target, timeout_ms, &status, &body, &blen, err, errlen))
        return -1;
    json_error_t je;
    json_t *j = json_loadb(body, blen, 0, &je);
    int rc = 0;
    const char *msg = json_string_value(json_object_get(j, "error"));
    if (status == 404 && msg && !strcmp(msg, "no such organisation")) rc = 0;
    else if (status == 200 && json_is_object(j)) {
        rc = credit_value(j, has, value, e, sizeof(e));
        if (rc) snprintf(err, errlen, "GET %s%s: %s", url, target, e);
    } else {
        snprintf(err, errlen, "GET %s: status %d: %.300s", target, status,
                 msg ? msg : j ? "unexpected JSON" : "not JSON");
        rc = -1;
    }
    json_decref(j);
    free(body);
    return rc;
}
