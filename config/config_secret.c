/* config_secret.c -- which keys hold secrets, and "file:PATH" values
 * (see config.h, config_int.h).  Split from config.c by concern. */
#include "config/config.h"
#include "config/config_int.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* The secret librdkafka properties (config_is_secret, README "Secrets"), any
 * case: these names, and every name containing one of SECRET_WORDS (which
 * covers all of them but sasl.oauthbearer.config, and future properties such
 * as sasl.oauthbearer.assertion.private.key.passphrase).  Not secret: names,
 * paths and public material (sasl.username, ssl.key.location,
 * ssl.keystore.location, ssl.certificate.pem, sasl.kerberos.keytab). */
static const char *const SECRET_NAMES[] = {"sasl.password", "ssl.key.password",
                                           "ssl.keystore.password", "ssl.key.pem",
                                           "sasl.oauthbearer.client.secret",
                                           "sasl.oauthbearer.config"};
static const char *const SECRET_WORDS[] = {"password", "secret", "passphrase", "key.pem"};

static int contains_nocase(const char *hay, const char *needle) {
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] && tolower((unsigned char)hay[i]) == needle[i]) i++;
        if (i == n) return 1;
    }
    return 0;
}

int config_is_secret(const char *name) {
    if (strncmp(name, "kafka.", 6) == 0) name += 6;
    for (size_t i = 0; i < sizeof SECRET_NAMES / sizeof SECRET_NAMES[0]; i++)
        if (strcasecmp(name, SECRET_NAMES[i]) == 0) return 1;
    for (size_t i = 0; i < sizeof SECRET_WORDS / sizeof SECRET_WORDS[0]; i++)
        if (contains_nocase(name, SECRET_WORDS[i])) return 1;
    return 0;
}


#define CRED_DIR "${CREDENTIALS_DIRECTORY}"

/* n bytes zeroed, then freed (a file's content may be a credential). */
void config_wipe_free_n(char *s, size_t n) {
    if (!s) return;
    volatile char *p = s;
    for (size_t i = 0; i < n; i++) p[i] = '\0';
    free(s);
}

/* The path of a "file:PATH" value: PATH, with a leading ${CREDENTIALS_DIRECTORY}
 * replaced by that environment variable (the directory systemd gives a unit
 * with LoadCredential=, one per unit).  malloc'ed, or NULL with msg. */
char *config_value_path(const char *path, char *msg, size_t msglen) {
    size_t n = strlen(CRED_DIR);
    const char *dir = "";
    if (*path == '\0') {
        snprintf(msg, msglen, "no path after \"file:\"");
        return NULL;
    }
    if (strncmp(path, CRED_DIR, n) == 0) {
        dir = getenv("CREDENTIALS_DIRECTORY");
        if (!dir || !*dir) {
            snprintf(msg, msglen, "CREDENTIALS_DIRECTORY is not set (systemd sets it in a unit "
                     "with LoadCredential=)");
            return NULL;
        }
        path += n;
    }
    size_t len = strlen(dir) + strlen(path) + 1;
    char *p = malloc(len);
    if (!p) snprintf(msg, msglen, "out of memory");
    else snprintf(p, len, "%s%s", dir, path);
    return p;
}

/* The content of the regular file at path into *out (malloc'ed): at most
 * CONFIG_FILE_VALUE_MAX bytes, no NUL byte, one trailing newline dropped.
 * 0, or -1 with msg saying what is wrong. */
int config_read_value_file(const char *path, char **out, char *msg, size_t msglen) {
    struct stat st;
    size_t len = 0, cap = CONFIG_FILE_VALUE_MAX + 1;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY), rc = 0;
    char *buf = NULL;
    if (fd < 0) {
        snprintf(msg, msglen, "cannot open: %s", strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) rc = snprintf(msg, msglen, "not a regular file");
    else if (st.st_size > CONFIG_FILE_VALUE_MAX)
        rc = snprintf(msg, msglen, "larger than %d bytes", CONFIG_FILE_VALUE_MAX);
    else if (!(buf = malloc(cap + 1))) rc = snprintf(msg, msglen, "out of memory");
    while (rc == 0 && len < cap) {   /* the file may have grown since fstat */
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) rc = snprintf(msg, msglen, "read error: %s", strerror(errno));
        if (r <= 0) break;
        len += (size_t)r;
    }
    close(fd);
    if (rc == 0 && len > CONFIG_FILE_VALUE_MAX)
        rc = snprintf(msg, msglen, "larger than %d bytes", CONFIG_FILE_VALUE_MAX);
    else if (rc == 0 && memchr(buf, '\0', len)) rc = snprintf(msg, msglen, "contains a NUL byte");
    if (rc) {
        config_wipe_free_n(buf, len);
        return -1;
    }
    if (len > 0 && buf[len - 1] == '\n') len--;
    buf[len] = '\0';
    *out = buf;
    return 0;
}

