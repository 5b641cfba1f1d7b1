/* guard.h -- the guards of semantics §11 that need no JSON: source lists
 * (source authority) and the type classes they apply to.
 *
 * Pure: no jansson, no I/O, so config/ validates a list with the very parser
 * the engine uses (a value config accepts is a value engine_new accepts).
 *
 * A list is the text of a `sources.<class>` key: entries separated by ',',
 * each trimmed of blanks (space, tab); an entry ending in '*' allows every
 * source that starts with what precedes the '*' (a lone "*" allows all); any
 * other entry allows exactly that source (bytes, case-sensitive).  An empty
 * or blank text allows no source; the key left out (NULL) allows every
 * source.  Bounds: GUARD_LIST_MAX entries of 1..GUARD_ENTRY_MAX bytes; an
 * empty entry ("a,,b", "a,") and a '*' that is not the entry's last byte are
 * errors (they are mistakes, never sources anyone meant).
 */
#ifndef CREDITD_GUARD_H
#define CREDITD_GUARD_H

#include <stddef.h>
#include <stdint.h>

#define GUARD_LIST_MAX  64
#define GUARD_ENTRY_MAX 256            /* == ENG_KEYPART_MAX: a source's bound */
#define GUARD_MAX_FUTURE_MAX (366 * 86400)
#define GUARD_MAX_FUTURE_DEFAULT (31 * 86400)
/* §14 retention_days: 0 = remember every key forever.  The default is the
 * contract's (35: a month plus the days a billing pipeline needs to catch
 * up).  The upper bound, 3660 days (ten years), is this implementation's
 * choice: longer than any billing correction window or Kafka retention
 * anyone runs, and far from the int64 nanosecond range (the horizon
 * watermark - retention stays well inside 1970..2261 arithmetic). */
#define GUARD_RETENTION_DAYS_MAX 3660
#define GUARD_RETENTION_DAYS_DEFAULT 35

/* Type classes of §11, each with its own list. */
enum guard_class { GUARD_GRANT = 0, GUARD_ALLOCATE, GUARD_USAGE, GUARD_CLOCK, GUARD_NCLASS };

/* "sources.grant", ... for class c (the configuration key). */
const char *guard_class_key(int c);
/* Class of a type name: org_credit.{set,adjust,delete} grant;
 * project_credit.{set,delete}, project.terminate allocate; usage, usage.void
 * usage; clock.tick clock.  -1 for any other name (no list applies). */
int guard_class_of(const char *type);

struct guard_list {
    int any;                           /* the key was left out: every source */
    size_t n;
    struct { char *s; size_t len; int prefix; } e[GUARD_LIST_MAX]; /* owned */
};

/* Parse text (NULL = key left out) into *l.  0, or -1 with msg saying what
 * is wrong (naming the entry, not the key: the caller names the key); on
 * error *l holds nothing to free. */
int  guard_list_parse(struct guard_list *l, const char *text, char *msg, size_t msglen);
void guard_list_free(struct guard_list *l);
/* 1 when l allows source (NUL-terminated, at most GUARD_ENTRY_MAX bytes). */
int  guard_list_allows(const struct guard_list *l, const char *source);

#endif
