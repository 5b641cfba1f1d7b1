/* memstore.c -- see memstore.h.  Linear searches: tests are small. */
#include "tests/unit/memstore.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void memstore_init(struct memstore *s) {
    memset(s, 0, sizeof(*s));
    s->fail_after = -1;
}

void memstore_free(struct memstore *s) {
    for (size_t i = 0; i < s->norgs; i++) eng_org_free(&s->orgs[i]);
    for (size_t i = 0; i < s->nout; i++) {
        free(s->out[i].key);
        free(s->out[i].json);
    }
    for (size_t i = 0; i < s->nalerts; i++) {
        free(s->alerts[i].key);
        free(s->alerts[i].json);
    }
    free(s->alerts);
    free(s->orgs);
    free(s->dd);
    free(s->out);
    memset(s, 0, sizeof(*s));
}

static int failing(struct memstore *s, char *err, size_t errlen) {
    if (s->fail_after < 0) return 0;
    if (s->fail_after-- > 0) return 0;
    snprintf(err, errlen, "memstore: injected failure");
    return 1;
}

struct eng_org *memstore_org(struct memstore *s, const char *id) {
    for (size_t i = 0; i < s->norgs; i++)
        if (strcmp(s->orgs[i].id, id) == 0) return &s->orgs[i];
    return NULL;
}

/* Like the LMDB store: the org without its projects (project_get and
 * projects_get load them). */
static int org_get(void *ctx, const char *id, struct eng_org *out, char *err, size_t errlen) {
    struct memstore *s = ctx;
    if (failing(s, err, errlen)) return ENG_ESTORE;
    struct eng_org *o = memstore_org(s, id);
    if (!o) return ENG_NOTFOUND;
    struct eng_project *keep = out->proj;
    size_t cap = out->capproj;
    memcpy(out, o, sizeof(*out));
    out->proj = keep;
    out->capproj = cap;
    out->nproj = 0;
    out->all_projects = 0;
    out->dirty = 0;
    return ENG_OK;
}

static int project_get(void *ctx, const char *org, const char *project, struct eng_project *out,
                       char *err, size_t errlen) {
    struct memstore *s = ctx;
    if (failing(s, err, errlen)) return ENG_ESTORE;
    s->project_gets++;
    struct eng_org *o = memstore_org(s, org);
    struct eng_project *p = o ? eng_org_find_project(o, project) : NULL;
    if (!p) return ENG_NOTFOUND;
    *out = *p;
    out->dirty = 0;
    return ENG_OK;
}

static int projects_get(void *ctx, const char *org, struct eng_org *out, char *err,
                        size_t errlen) {
    struct memstore *s = ctx;
    if (failing(s, err, errlen)) return ENG_ESTORE;
    s->projects_gets++;
    struct eng_org *o = memstore_org(s, org);
    out->nproj = 0;
    for (size_t i = 0; o && i < o->nproj; i++) {
        struct eng_project *p = eng_org_add_project(out, o->proj[i].id);
        if (!p) return ENG_ESTORE;
        *p = o->proj[i];
        p->dirty = 0;
    }
    return ENG_OK;
}

/* Writes the org's own fields and its dirty projects; a project left with
 * neither credit nor months is gone, as in the LMDB store. */
static int org_put(void *ctx, const struct eng_org *o, char *err, size_t errlen) {
    struct memstore *s = ctx;
    if (failing(s, err, errlen)) return ENG_ESTORE;
    struct eng_org *dst = memstore_org(s, o->id);
    if (!dst) {
        s->orgs = realloc(s->orgs, (s->norgs + 1) * sizeof(*s->orgs));
        dst = &s->orgs[s->norgs++];
        eng_org_init(dst);
    }
    struct eng_project *keep = dst->proj;
    size_t n = dst->nproj, cap = dst->capproj;
    memcpy(dst, o, sizeof(*dst));
    dst->proj = keep;
    dst->nproj = n;
    dst->capproj = cap;
    dst->dirty = 0;
    for (size_t i = 0; i < o->nproj; i++) {
        const struct eng_project *src = &o->proj[i];
        if (!src->dirty) continue;
        struct eng_project *p = eng_org_add_project(dst, src->id);
        if (!p) return ENG_ESTORE;
        *p = *src;
        p->dirty = 0;
        if (!p->has_credit && p->nacct == 0) {
            size_t at = (size_t)(p - dst->proj);
            memmove(p, p + 1, (dst->nproj - at - 1) * sizeof(*p));
            dst->nproj--;
        }
    }
    return ENG_OK;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int orgs_on_partition(void *ctx, int32_t partition, int (*cb)(void *, const char *),
                             void *arg, char *err, size_t errlen) {
    struct memstore *s = ctx;
    if (failing(s, err, errlen)) return ENG_ESTORE;
    char **ids = malloc((s->norgs + 1) * sizeof(*ids));
    size_t n = 0;
    for (size_t i = 0; i < s->norgs; i++)
        if (s->orgs[i].partition == partition) ids[n++] = strdup(s->orgs[i].id);
    qsort(ids, n, sizeof(*ids), cmp_str);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (!rc) rc = cb(arg, ids[i]);
        free(ids[i]);
    }
    free(ids);
    return rc;
}

static int clock_get(void *ctx, int32_t p, int64_t *ns, char *err, size_t errlen) {
    struct memstore *s = ctx;
    if (failing(s, err, errlen)) return ENG_ESTORE;
    if (p < 0 || p >= 64 || !s->has_clock[p]) return ENG_NOTFOUND;
    *ns = s->clock[p];
    return ENG_OK;
}

static int clock_put(void *ctx, int32_t p, int64_t ns, char *err, size_t errlen) {
    struct memstore *s = ctx;
    if (failing(s, err, errlen)) return ENG_ESTORE;
    if (p < 0 || p >= 64) {
        snprintf(err, errlen, "memstore: partition %d out of range (tests use 0..63)", (int)p);
        return ENG_ESTORE;
    }
    s->clock[p] = ns;
    s->has_clock[p] = 1;
    return ENG_OK;
}

static int dedupe_get(void *ctx, const uint8_t *k, size_t n, struct eng_dedupe *out, char *err,
                      size_t errlen) {
    struct memstore *s = ctx;
    if (failing(s, err, errlen)) return ENG_ESTORE;
    for (size_t i = 0; i < s->ndd; i++)
        if (s->dd[i].n == n && memcmp(s->dd[i].k, k, n) == 0) {
            *out = s->dd[i].rec;
            return ENG_OK;
        }
    return ENG_NOTFOUND;
}

static int dedupe_put(void *ctx, const uint8_t *k, size_t n, const struct eng_dedupe *rec,
                      char *err, size_t errlen) {
    struct memstore *s = ctx;
    if (failing(s, err, errlen)) return ENG_ESTORE;
    for (size_t i = 0; i < s->ndd; i++) /* a key judged as new after it expired (§14) */
        if (s->dd[i].n == n && memcmp(s->dd[i].k, k, n) == 0) {
            s->dd[i].rec = *rec;
            return ENG_OK;
        }
    s->dd = realloc(s->dd, (s->ndd + 1) * sizeof(*s->dd));
    memcpy(s->dd[s->ndd].k, k, n);
    s->dd[s->ndd].n = n;
    s->dd[s->ndd].rec = *rec;
    s->ndd++;
    return ENG_OK;
}

static int emit(void *ctx, enum eng_out_kind kind, const char *key, const char *json, size_t len,
                char *err, size_t errlen) {
    struct memstore *s = ctx;
    if (failing(s, err, errlen)) return ENG_ESTORE;
    struct memstore_out **list = &s->out;
    size_t *n = &s->nout;
    if (s->split_alerts && kind == ENG_OUT_ALERT) {
        list = &s->alerts;
        n = &s->nalerts;
    }
    *list = realloc(*list, (*n + 1) * sizeof(**list));
    (*list)[*n].kind = kind;
    (*list)[*n].key = key ? strdup(key) : NULL;
    (*list)[*n].json = strndup(json, len);
    (*list)[*n].ord = s->nemitted++;
    (*n)++;
    return ENG_OK;
}

void memstore_ops(struct memstore *s, struct engine_store *ops) {
    ops->ctx = s;
    ops->org_get = org_get;
    ops->org_put = org_put;
    ops->project_get = project_get;
    ops->projects_get = projects_get;
    ops->orgs_on_partition = orgs_on_partition;
    ops->clock_get = clock_get;
    ops->clock_put = clock_put;
    ops->dedupe_get = dedupe_get;
    ops->dedupe_put = dedupe_put;
    ops->emit = emit;
}
