/* state.c -- helpers for the in-memory organisation state (see state.h). */
#include "engine/state.h"

#include <assert.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* Zeroes everything but the offerings table (13 KB, read only up to noff):
 * the engine re-inits an org for every event, and a whole-struct memset was
 * 18% of replay's main thread. */
void eng_org_init(struct eng_org *o) {
    memset(o, 0, offsetof(struct eng_org, off));
    memset((char *)o + offsetof(struct eng_org, off) + sizeof(o->off), 0,
           sizeof(*o) - offsetof(struct eng_org, off) - sizeof(o->off));
    o->watermark = ENG_NO_TIME;
    o->open_month = ENG_NO_MONTH;
    o->partition = -1;
    o->terms.end_month = ENG_NO_MONTH;
}

void eng_org_free(struct eng_org *o) {
    free(o->proj);
    o->proj = NULL;
    o->nproj = o->capproj = 0;
}

int eng_org_copy(struct eng_org *dst, const struct eng_org *src) {
    struct eng_project *p = dst->proj;
    size_t cap = dst->capproj;
    if (cap < src->nproj) {
        p = realloc(p, src->nproj * sizeof(*p));
        if (!p) return -1;
        cap = src->nproj;
    }
    memcpy(dst, src, sizeof(*dst));
    dst->proj = p;
    dst->capproj = cap;
    if (src->nproj) memcpy(p, src->proj, src->nproj * sizeof(*p));
    return 0;
}

/* Binary search; *pos receives the insertion point. */
static struct eng_project *find(struct eng_org *o, const char *id, size_t *pos) {
    size_t lo = 0, hi = o->nproj;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(o->proj[mid].id, id);
        if (c == 0) { *pos = mid; return &o->proj[mid]; }
        if (c < 0) lo = mid + 1; else hi = mid;
    }
    *pos = lo;
    return NULL;
}

struct eng_project *eng_org_find_project(struct eng_org *o, const char *id) {
    size_t pos;
    return find(o, id, &pos);
}

struct eng_project *eng_org_add_project(struct eng_org *o, const char *id) {
    size_t pos;
    struct eng_project *p = find(o, id, &pos);
    if (p) return p;
    assert(strlen(id) <= ENG_ID_MAX);
    if (o->nproj == o->capproj) {
        size_t cap = o->capproj ? o->capproj * 2 : 4;
        struct eng_project *np = realloc(o->proj, cap * sizeof(*np));
        if (!np) return NULL;
        o->proj = np;
        o->capproj = cap;
    }
    memmove(&o->proj[pos + 1], &o->proj[pos], (o->nproj - pos) * sizeof(*o->proj));
    o->nproj++;
    p = &o->proj[pos];
    memset(p, 0, sizeof(*p));
    strcpy(p->id, id);
    p->terms.end_month = ENG_NO_MONTH;
    return p;
}

int eng_org_merge_projects(struct eng_org *o, const struct eng_org *from) {
    size_t n = o->nproj + from->nproj, i = 0, j = 0, k = 0;
    if (n == 0) return 0;
    struct eng_project *m = malloc(n * sizeof(*m));
    if (!m) return -1;
    /* A merge of two sorted lists; on equal ids o's copy wins. */
    while (i < o->nproj || j < from->nproj) {
        int c = i == o->nproj ? 1 : j == from->nproj ? -1 : strcmp(o->proj[i].id, from->proj[j].id);
        if (c <= 0) m[k++] = o->proj[i++];
        else m[k++] = from->proj[j++];
        if (c == 0) j++;
    }
    free(o->proj);
    o->proj = m;
    o->nproj = k;
    o->capproj = n;
    return 0;
}
