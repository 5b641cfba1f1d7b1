/* config_listen.c -- http.listen's address form (config.h
 * config_listen_split).  Split from config.c by concern. */
#include "config/config.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* "0".."65535" (digits only). */
static int parse_port(const char *s, int *port) {
    size_t n = strlen(s);
    long v = 0;
    if (n == 0 || n > 5 || strspn(s, "0123456789") != n) return -1;
    for (size_t i = 0; i < n; i++) v = v * 10 + (s[i] - '0');
    if (v > 65535) return -1;
    *port = (int)v;
    return 0;
}

int config_listen_split(const char *s, char *host, size_t hostlen, int *port, int *ipv6,
                        char *msg, size_t msglen) {
    const char *b = s, *e, *colon;
    unsigned char addr[16];
    *ipv6 = s[0] == '[';
    if (*ipv6) {
        b = s + 1;
        e = strchr(b, ']');
        colon = e && e[1] == ':' ? e + 1 : NULL;
    } else {
        colon = strrchr(s, ':');
        e = colon;
    }
    if (!colon || !e) {
        snprintf(msg, msglen, "\"%s\": expected HOST:PORT or [IPV6]:PORT", s);
        return -1;
    }
    size_t n = (size_t)(e - b);
    if (n == 0 || n >= hostlen || n > CONFIG_LISTEN_HOST_MAX) {
        snprintf(msg, msglen, "\"%s\": no address or too long an address before the port", s);
        return -1;
    }
    memcpy(host, b, n);
    host[n] = '\0';
    if (inet_pton(*ipv6 ? AF_INET6 : AF_INET, host, addr) != 1) {
        snprintf(msg, msglen, "\"%s\": %s is not an %s address%s", s, host, *ipv6 ? "IPv6" : "IPv4",
                 *ipv6 ? "" : " (names are not resolved; IPv6 goes in brackets: [::1]:8080)");
        return -1;
    }
    if (parse_port(colon + 1, port)) {
        snprintf(msg, msglen, "\"%s\": port \"%s\" is not 0..65535", s, colon + 1);
        return -1;
    }
    return 0;
}

