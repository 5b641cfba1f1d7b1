/* config_int.h -- helpers shared by config/config*.c only (not an API).
 *   config.c         keys, files, -X, validation, dump
 *   config_secret.c  which keys are secrets; "file:PATH" values
 *   config_listen.c  the http.listen address form */
#ifndef CREDITD_CONFIG_INT_H
#define CREDITD_CONFIG_INT_H

#include <stddef.h>

/* n bytes zeroed, then freed (s may hold a credential); NULL is a no-op. */
void config_wipe_free_n(char *s, size_t n);
/* The path of a "file:PATH" value (PATH given without "file:"), a leading
 * ${CREDENTIALS_DIRECTORY} replaced by that variable.  malloc'ed, or NULL
 * with msg. */
char *config_value_path(const char *path, char *msg, size_t msglen);
/* A regular file's content into *out (malloc'ed; caller frees with
 * config_wipe_free_n): at most CONFIG_FILE_VALUE_MAX bytes, no NUL byte, one
 * trailing newline dropped.  0, or -1 with msg. */
int config_read_value_file(const char *path, char **out, char *msg, size_t msglen);

#endif
