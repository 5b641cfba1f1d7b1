/* log.h -- the one log writer of creditd and the tools that link
 * consumer/kclient.o: one line per message on stderr, as text or as JSON.
 *
 * Formats (log.format):
 *   text  "PROG: COMPONENT: MESSAGE\n", or "PROG: MESSAGE\n" without a
 *         component: exactly the lines creditd printed before this module
 *         (the message's bytes as formatted; fields are not shown).
 *   json  one object per line, keys in this order:
 *         {"time":"2026-12-01T06:08:02.123Z","level":"info","message":"...",
 *          "component":"relay", FIELDS..., "truncated":true}
 *         time is RFC 3339 UTC with milliseconds; level is debug, info, warn
 *         or error; component and each field only when given; "truncated"
 *         only when the line had to be cut.  Any bytes are escaped: control
 *         characters as \n, \t... or \u00XX, '"' and '\' with a backslash,
 *         and every byte that is not part of valid UTF-8 (overlong forms,
 *         surrogates, stray continuation bytes, beyond U+10FFFF) becomes
 *         U+FFFD, so every line is valid UTF-8 JSON whatever the message.
 * Levels (log.level): debug < info < warn < error; a message below the
 * configured level is dropped before it is formatted (log_enabled).
 *
 * Bounds: the formatted message is cut at LOG_MSG_MAX - 1 bytes, the whole
 * line at LOG_LINE_MAX bytes (JSON: the last string is cut at a character
 * and "truncated":true is added; the object stays valid).  Nothing is
 * allocated: the line is built on the caller's stack.
 *
 * Threads: librdkafka calls its log callback from its own threads, so the
 * writers may run on any thread.  Each line is written with one write(2)
 * under a mutex (a partial write is continued inside the same critical
 * section), so lines never interleave between threads; a line shorter than
 * PIPE_BUF is also atomic towards other writers of the same pipe.  errno is
 * preserved.  A failed write (stderr closed) loses the line silently.
 *
 * Secrets: every string registered with log_add_secret() (the secret
 * kafka.* values, consumer/kclient.h kclient_log_setup) is replaced by
 * ******** in the message and in every string field before the line is
 * formatted, whatever wrote it (creditd, a tool, librdkafka's log and error
 * callbacks); so are its words of at least LOG_SECRET_WORD_MIN bytes (see
 * there).  A message cut at LOG_MSG_MAX that ends with the beginning of a
 * secret has that beginning masked too.  With secrets registered, at most
 * LOG_FIELDS_MAX fields are written.
 *
 * State: the settings (program name, format, level, fd) are part of the
 * loaded configuration: log_init() writes them once, before the program
 * starts any thread or Kafka client; afterwards they are only read.  Before
 * log_init() the writer uses text, info, "creditd", stderr. */
#ifndef CREDITD_CONSUMER_LOG_H
#define CREDITD_CONSUMER_LOG_H

#include <stddef.h>
#include <stdint.h>

#define LOG_MSG_MAX  4096   /* bytes of one formatted message, NUL included */
#define LOG_LINE_MAX 8192   /* bytes of one line, '\n' included */
#define LOG_PROG_MAX 63     /* bytes of the program name */
#define LOG_SECRETS_MAX 512 /* strings kept out of the lines (secrets and their words) */
#define LOG_SECRET_WORD_MIN 8 /* bytes of a secret's word registered on its own */
#define LOG_FIELDS_MAX 16   /* fields of one line written while secrets are registered */

enum log_level { LOG_LEVEL_DEBUG = 0, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };
enum log_format { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JSON };

/* One structured field of a JSON line: a string (str != NULL, any bytes,
 * escaped) or an integer (str == NULL).  key is plain ASCII chosen by the
 * code ("partition", "error", ...), never "time", "level", "message",
 * "component" or "truncated" (such a field is skipped). */
struct log_field {
    const char *key;
    const char *str;
    int64_t num;
};

#define LOG_S(k, v) ((struct log_field){(k), (v), 0})
#define LOG_I(k, v) ((struct log_field){(k), NULL, (int64_t)(v)})
/* LOG_FIELDS(LOG_S("error", e), LOG_I("partition", p)) expands to the two
 * arguments (array, count) that log_msg() takes. */
#define LOG_FIELDS(...)                                                        \
    (const struct log_field[]){__VA_ARGS__},                                   \
        sizeof((const struct log_field[]){__VA_ARGS__}) / sizeof(struct log_field)

struct log_opts {
    const char *prog;    /* text prefix, 1..LOG_PROG_MAX bytes; NULL: "creditd" */
    const char *format;  /* "text" or "json"; NULL: text */
    const char *level;   /* "debug", "info", "warn" or "error"; NULL: info */
    int fd;              /* where lines go; 0 (unset) means stderr (2) */
};

/* Set the writer up (see State).  0, or -1 with err naming the setting
 * ("log.format: \"xml\": not text or json"); the settings are then
 * unchanged. */
int log_init(const struct log_opts *o, char *err, size_t errlen);

/* Keep value out of every line written from now on (see Secrets): the
 * whole value and each of its whitespace-separated words of at least
 * LOG_SECRET_WORD_MIN bytes, and each such word's part after its first '='
 * of that length: librdkafka quotes the rest of a sasl.oauthbearer.config
 * from a bad "key=value" on, and a PEM key's lines are words.  An empty or
 * NULL value is ignored; a string registered twice counts once.  Part of the
 * loaded configuration: call it before any thread or Kafka client starts.
 * 0, or -1 when more than LOG_SECRETS_MAX strings would be registered or
 * memory is short (those registered stay). */
int log_add_secret(const char *value);

/* Replace the registered secrets in the NUL-terminated s (a buffer of cap
 * bytes; the result is cut to fit, and to LOG_MSG_MAX - 1 bytes) by
 * ********: for text a program prints without the writer (an error message
 * built from librdkafka's).  1 when something was replaced, else 0. */
int log_scrub(char *s, size_t cap);

/* Zero and forget every registered secret (tests). */
void log_forget_secrets(void);

/* Parse a level or format name: 0 with *out, or -1. */
int log_level_parse(const char *name, enum log_level *out);
int log_format_parse(const char *name, enum log_format *out);
const char *log_level_name(enum log_level l);

/* The program name log_init() set ("creditd" before it): what the shared
 * code that names no program of its own (consumer/changelog.c's Kafka
 * client) writes as its prefix.  Valid for the life of the process. */
const char *log_prog(void);

/* 1 when a message of this level would be written. */
int log_enabled(enum log_level l);

/* Write one message (printf format) at level l, if enabled.  component
 * (NULL: none) is the part of the program speaking ("relay", a Kafka
 * client's role); fields (nfields of them, NULL when 0) appear in JSON
 * only.  The message should not end with '\n' (the writer adds it). */
void log_msg(enum log_level l, const char *component, const struct log_field *fields,
             size_t nfields, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* The same, with prog as the text prefix instead of log_init's program:
 * for code shared by several programs that names its program itself
 * (consumer/kclient.c with its spec's prog, tools/kprod.c). */
void log_msg_as(const char *prog, enum log_level l, const char *component,
                const struct log_field *fields, size_t nfields, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Shorthands without fields. */
void log_debug(const char *component, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_info(const char *component, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_warn(const char *component, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_error(const char *component, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One record as log_render() sees it. */
struct log_rec {
    int64_t time_ms;                 /* Unix time in milliseconds (UTC) */
    enum log_level level;
    const char *prog;                /* text prefix */
    const char *component;           /* or NULL */
    const struct log_field *fields;  /* nfields of them, or NULL */
    size_t nfields;
    const char *message;             /* NUL-terminated, any bytes */
    int cut;                         /* the message was cut already (JSON: "truncated") */
};

#define LOG_RENDER_MIN 128   /* the smallest buffer log_render() writes into */

/* Render r as one line ending in '\n' into buf (cap bytes): the writer's
 * formatting, without I/O or clock, for tests.  Returns the line's length
 * (< cap; buf is NUL-terminated); 0 (nothing) when cap < LOG_RENDER_MIN. */
size_t log_render(enum log_format f, const struct log_rec *r, char *buf, size_t cap);

#endif
