/* jsonw.h -- a small append-only JSON writer for output events.
 *
 * Output events are built by hand rather than through jansson objects: it is
 * faster, and the byte order of keys is exactly the order of the calls, which
 * keeps outputs byte-identical across runs.  The buffer grows with realloc;
 * on allocation failure the writer latches `oom` and later calls do nothing,
 * so callers check once at the end (jsonw_ok).
 */
#ifndef CREDITD_JSONW_H
#define CREDITD_JSONW_H

#include <stddef.h>
#include <stdint.h>

struct jsonw {
    char *buf;       /* owned; NUL-terminated after every call */
    size_t len, cap;
    int oom;
    int need_comma;  /* a value was written at this nesting level */
};

void jsonw_init(struct jsonw *w);
void jsonw_free(struct jsonw *w);
void jsonw_reset(struct jsonw *w);           /* len = 0, keeps capacity */
int  jsonw_ok(const struct jsonw *w);        /* 1 unless an allocation failed */

void jsonw_obj_open(struct jsonw *w);        /* '{' (as a value) */
void jsonw_obj_close(struct jsonw *w);       /* '}' */
void jsonw_arr_open(struct jsonw *w);
void jsonw_arr_close(struct jsonw *w);
void jsonw_key(struct jsonw *w, const char *k);            /* "k": (k is plain ASCII) */
void jsonw_str(struct jsonw *w, const char *s);            /* escaped string, NULL -> null */
void jsonw_strn(struct jsonw *w, const char *s, size_t n); /* escaped string of n bytes (valid UTF-8) */
void jsonw_raw(struct jsonw *w, const char *s);            /* s written verbatim as a value */
void jsonw_int(struct jsonw *w, int64_t v);
void jsonw_bool(struct jsonw *w, int b);
void jsonw_null(struct jsonw *w);
void jsonw_money(struct jsonw *w, int64_t micro);          /* "70.000000" */

/* key + value shorthands */
void jsonw_kstr(struct jsonw *w, const char *k, const char *s);
void jsonw_kint(struct jsonw *w, const char *k, int64_t v);
void jsonw_kbool(struct jsonw *w, const char *k, int b);
void jsonw_kmoney(struct jsonw *w, const char *k, int64_t micro);

#endif
