/* guard.c -- source lists and type classes (semantics §11); see guard.h. */
#include "engine/guard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const class_keys[GUARD_NCLASS] = {"sources.grant", "sources.allocate",
                                                      "sources.usage", "sources.clock"};

static const struct { const char *type; int cls; } type_class[] = {
    {"org_credit.set", GUARD_GRANT},         {"org_credit.adjust", GUARD_GRANT},
    {"org_credit.delete", GUARD_GRANT},      {"project_credit.set", GUARD_ALLOCATE},
    {"project_credit.delete", GUARD_ALLOCATE}, {"project.terminate", GUARD_ALLOCATE},
    {"usage", GUARD_USAGE},                  {"usage.void", GUARD_USAGE},
    {"clock.tick", GUARD_CLOCK},
};

const char *guard_class_key(int c) { return c >= 0 && c < GUARD_NCLASS ? class_keys[c] : "?"; }

int guard_class_of(const char *type) {
    for (size_t i = 0; i < sizeof(type_class) / sizeof(type_class[0]); i++)
        if (strcmp(type_class[i].type, type) == 0) return type_class[i].cls;
    return -1;
}

static int blank(char c) { return c == ' ' || c == '\t'; }

void guard_list_free(struct guard_list *l) {
    for (size_t i = 0; i < l->n; i++) free(l->e[i].s);
    l->n = 0;
}

/* One entry [b, e), already trimmed, appended to l; 0 or -1 with msg. */
static int add_entry(struct guard_list *l, const char *b, const char *e, char *msg, size_t msglen) {
    size_t n = (size_t)(e - b);
    if (n == 0) {
        snprintf(msg, msglen, "empty entry in the list (write \"\" for no source at all)");
        return -1;
    }
    if (n > GUARD_ENTRY_MAX) {
        snprintf(msg, msglen, "entry \"%.32s...\" is longer than %d bytes", b, GUARD_ENTRY_MAX);
        return -1;
    }
    const char *star = memchr(b, '*', n);
    if (star && star != e - 1) {
        snprintf(msg, msglen, "entry \"%.*s\": '*' is allowed only at the end (a prefix)", (int)n, b);
        return -1;
    }
    if (l->n == GUARD_LIST_MAX) {
        snprintf(msg, msglen, "more than %d entries", GUARD_LIST_MAX);
        return -1;
    }
    char *s = malloc(n + 1);
    if (!s) {
        snprintf(msg, msglen, "out of memory");
        return -1;
    }
    memcpy(s, b, n);
    s[n] = 0;
    l->e[l->n].prefix = star != NULL;
    l->e[l->n].len = star ? n - 1 : n;
    l->e[l->n++].s = s;
    return 0;
}

int guard_list_parse(struct guard_list *l, const char *text, char *msg, size_t msglen) {
    memset(l, 0, sizeof(*l));
    if (!text) {
        l->any = 1;
        return 0;
    }
    const char *p = text, *end = text + strlen(text);
    while (p < end && blank(*p)) p++;
    if (p == end) return 0;   /* empty: no source */
    for (;;) {
        const char *comma = memchr(p, ',', (size_t)(end - p)), *e = comma ? comma : end;
        const char *b = p;
        while (b < e && blank(*b)) b++;
        while (e > b && blank(e[-1])) e--;
        if (add_entry(l, b, e, msg, msglen)) {
            guard_list_free(l);
            return -1;
        }
        if (!comma) return 0;
        p = comma + 1;
    }
}

int guard_list_allows(const struct guard_list *l, const char *source) {
    if (l->any) return 1;
    size_t n = strlen(source);
    for (size_t i = 0; i < l->n; i++) {
        size_t k = l->e[i].len;
        if (l->e[i].prefix ? n >= k && memcmp(source, l->e[i].s, k) == 0
                           : n == k && memcmp(source, l->e[i].s, k) == 0)
            return 1;
    }
    return 0;
}
