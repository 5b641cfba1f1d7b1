/* store_cache.c -- the write-back cache of organisations (store.h "The
 * organisation cache").
 *
 * A writer keeps decoded organisations in memory across batches: the
 * engine's org_get, project_get and projects_get are answered from it, and
 * its org_put only changes the cached copy and marks the records it dirtied.
 * Dirty organisations are written to LMDB once, by st_cache_flush (before
 * the commit, the sweep, the change scan, a walk of the tick index), or when
 * the bound evicts them.  So an organisation is read and decoded once while
 * it stays cached and written once per batch, however many events touch it.
 *
 * Exactness: the cache must answer exactly what the store would have read
 * back after the same writes.  A cached org holds, per record (the org's,
 * each project's), either the values last loaded from LMDB or the engine's
 * values of a record it wrote (any dirty bit rewrites the whole record, as
 * st_org_write does; a credit or months the engine removed reads back as the
 * loader's defaults); records the engine did not mark dirty keep the cached
 * values, as LMDB would.
 * Projects: present = has a credit or months (as in LMDB, where a project is
 * its records); a project the store does not have is cached as absent, so it
 * is not looked up again.
 *
 * Change capture (group mode): a write-back is captured with the org's own
 * partition (the partition of every message that can write it); a project
 * record put and then deleted within one batch is still noted, as the direct
 * writes would have noted it (the put).  (An orgs record is never deleted
 * by the engine.)
 *
 * Memory: entries are counted in bytes (the entry, its offerings, its
 * project array) against max_bytes; the least recently used are evicted
 * (written back first when dirty).  The entry being worked on is never
 * evicted, so one org larger than the bound still works.  An evicted entry's
 * memory is reused for the next one (no allocation per event once warm).
 * store_abort drops everything: the batch's changes are gone, and a retried
 * batch reads the committed state again. */
#undef NDEBUG /* asserts (programmer errors only, never read data) stay on in release builds */
#include "store/store_int.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

struct cproj {
    struct eng_project p;   /* canonical: a project_get of the written record (dirty: to write) */
    uint8_t put;            /* its record was put in this txn, not yet written */
};

struct corg {
    struct corg *hnext;               /* hash chain */
    struct corg *prev, *next;         /* LRU list, most recent first */
    struct corg *dnext, *dprev;       /* dirty list (doubly linked: evictions unlink) */
    uint64_t h;
    size_t bytes;                     /* counted against the bound */
    unsigned dirty;                   /* the orgs record is to be written (ENG_DIRTY_* seen) */
    uint8_t listed;                   /* on the dirty list */
    uint8_t all_projects;             /* proj holds every project the store has */
    uint8_t any_proj_dirty;
    /* The org-level fields of struct eng_org (head_from / head_to). */
    char id[ENG_ID_MAX + 1];
    int32_t partition;
    int64_t watermark;
    int32_t open_month;
    uint64_t seq[2], alert_seq, credit_seq;
    uint8_t has_credit;
    int64_t value, alloc_sum;
    struct eng_terms terms;
    struct eng_alerts al;
    uint64_t serial;
    int noff, capoff;
    char (*off)[ENG_ID_MAX + 1];
    int nacct;
    struct eng_acct acct[ENG_MAX_MONTHS];
    size_t nproj, capproj;
    struct cproj *proj;               /* sorted by id */
};

struct st_cache {
    struct corg **tab;
    size_t nb, n;                     /* buckets (power of 2), entries */
    struct corg *head, *tail, *dirty, *spare;
    size_t bytes, max_bytes;
    size_t ndirty;                    /* entries on the dirty list */
    struct corg **order;              /* st_cache_flush: the dirty entries by id */
    size_t caporder;
    struct eng_org *scratch;          /* write-back and loads */
    struct store_cache_stats st;
};

/* ---- the table ------------------------------------------------------------ */

static uint64_t id_hash(const char *id) {
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (; *id; id++) h = (h ^ (uint8_t)*id) * UINT64_C(0x100000001b3);
    return h;
}

static struct corg *find(struct st_cache *c, const char *id, uint64_t h) {
    for (struct corg *e = c->tab[h & (c->nb - 1)]; e; e = e->hnext)
        if (e->h == h && strcmp(e->id, id) == 0) return e;
    return NULL;
}

static void lru_unlink(struct st_cache *c, struct corg *e) {
    if (e->prev) e->prev->next = e->next; else c->head = e->next;
    if (e->next) e->next->prev = e->prev; else c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_front(struct st_cache *c, struct corg *e) {
    if (c->head == e) return;
    if (e->prev || e->next || c->tail == e) lru_unlink(c, e);
    e->next = c->head;
    if (c->head) c->head->prev = e;
    c->head = e;
    if (!c->tail) c->tail = e;
}

static void tab_unlink(struct st_cache *c, struct corg *e) {
    struct corg **pp = &c->tab[e->h & (c->nb - 1)];
    while (*pp != e) pp = &(*pp)->hnext;
    *pp = e->hnext;
    c->n--;
}

/* Doubles the buckets when the entries outnumber them (rare: amortised). */
static int tab_grow(struct st_cache *c) {
    if (c->n < c->nb) return 0;
    size_t nb = c->nb * 2;
    struct corg **t = calloc(nb, sizeof(*t));
    if (!t) return -1;
    for (size_t i = 0; i < c->nb; i++)
        for (struct corg *e = c->tab[i], *nx; e; e = nx) {
            nx = e->hnext;
            e->hnext = t[e->h & (nb - 1)];
            t[e->h & (nb - 1)] = e;
        }
    free(c->tab);
    c->tab = t;
    c->nb = nb;
    return 0;
}

static size_t entry_bytes(const struct corg *e) {
    return sizeof(*e) + (size_t)e->capoff * sizeof(*e->off) + e->capproj * sizeof(*e->proj);
}

static void recount(struct st_cache *c, struct corg *e) {
    size_t b = entry_bytes(e);
    c->bytes = c->bytes - e->bytes + b;
    e->bytes = b;
}

static void entry_free(struct corg *e) {
    if (!e) return;
    free(e->off);
    free(e->proj);
    free(e);
}

/* ---- org-level fields ------------------------------------------------------ */

/* The parts `which` (ENG_DIRTY_*) of o into e.  A credit or months record
 * that o no longer has reads back as the loader's defaults (eng_org_init). */
static int head_from(struct corg *e, const struct eng_org *o, unsigned which) {
    if (which & ENG_DIRTY_META) {
        e->partition = o->partition;
        e->watermark = o->watermark;
        e->open_month = o->open_month;
    }
    if (which & ENG_DIRTY_SEQ) {
        memcpy(e->seq, o->seq, sizeof(e->seq));
        e->alert_seq = o->alert_seq;
        e->credit_seq = o->credit_seq;
    }
    if (which & ENG_DIRTY_CREDIT) {
        struct eng_org d;  /* only the head is read: the defaults of a load */
        const struct eng_org *src = o;
        if (!o->has_credit) {
            eng_org_init(&d);
            src = &d;
        }
        if (src->noff > e->capoff) {
            void *p = realloc(e->off, (size_t)src->noff * sizeof(*e->off));
            if (!p) return -1;
            e->off = p;
            e->capoff = src->noff;
        }
        e->has_credit = src->has_credit;
        e->value = src->value;
        e->alloc_sum = src->alloc_sum;
        e->terms = src->terms;
        e->al = src->al;
        e->serial = src->serial;
        e->noff = src->noff;
        for (int i = 0; i < src->noff; i++) strcpy(e->off[i], src->off[i]);
    }
    if (which & ENG_DIRTY_ACCT) {
        memset(e->acct, 0, sizeof(e->acct));
        e->nacct = o->nacct;
        memcpy(e->acct, o->acct, (size_t)o->nacct * sizeof(e->acct[0]));
    }
    return 0;
}

/* e's org-level state into o, as st_load_org leaves it (no projects; o's
 * project array is kept for reuse). */
static void head_to(struct eng_org *o, const struct corg *e) {
    struct eng_project *keep = o->proj;
    size_t cap = o->capproj;
    eng_org_init(o);
    o->proj = keep;
    o->capproj = cap;
    strcpy(o->id, e->id);
    o->partition = e->partition;
    o->watermark = e->watermark;
    o->open_month = e->open_month;
    memcpy(o->seq, e->seq, sizeof(o->seq));
    o->alert_seq = e->alert_seq;
    o->credit_seq = e->credit_seq;
    o->has_credit = e->has_credit;
    o->value = e->value;
    o->alloc_sum = e->alloc_sum;
    o->terms = e->terms;
    o->al = e->al;
    o->serial = e->serial;
    o->noff = e->noff;
    for (int i = 0; i < e->noff; i++) strcpy(o->off[i], e->off[i]);
    o->nacct = e->nacct;
    memcpy(o->acct, e->acct, sizeof(o->acct));
}

/* ---- projects -------------------------------------------------------------- */

static int proj_exists(const struct eng_project *p) { return p->has_credit || p->nacct > 0; }

static struct cproj *pfind(struct corg *e, const char *id, size_t *pos) {
    size_t lo = 0, hi = e->nproj;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(e->proj[mid].p.id, id);
        if (c == 0) { *pos = mid; return &e->proj[mid]; }
        if (c < 0) lo = mid + 1; else hi = mid;
    }
    *pos = lo;
    return NULL;
}

/* A new absent project `id` in e (a project_get that finds nothing). */
static struct cproj *padd(struct st_cache *c, struct corg *e, const char *id) {
    size_t pos;
    struct cproj *p = pfind(e, id, &pos);
    if (p) return p;
    if (e->nproj == e->capproj) {
        size_t cap = e->capproj ? e->capproj * 2 : 4;
        struct cproj *np = realloc(e->proj, cap * sizeof(*np));
        if (!np) return NULL;
        e->proj = np;
        e->capproj = cap;
        recount(c, e);
    }
    memmove(&e->proj[pos + 1], &e->proj[pos], (e->nproj - pos) * sizeof(*e->proj));
    e->nproj++;
    p = &e->proj[pos];
    memset(p, 0, sizeof(*p));
    strcpy(p->p.id, id);
    return p;
}

/* A project as a store load gives it into canonical form: project_get's
 * (zeroed, then decoded) -- projects_get's loader starts an absent credit's
 * end month at ENG_NO_MONTH instead. */
static void pcanon(struct eng_project *dst, const struct eng_project *src, unsigned which) {
    if (which & ENG_DIRTY_CREDIT) {
        dst->has_credit = src->has_credit;
        dst->value = src->has_credit ? src->value : 0;
        if (src->has_credit) dst->terms = src->terms; else memset(&dst->terms, 0, sizeof(dst->terms));
        if (src->has_credit) dst->al = src->al; else memset(&dst->al, 0, sizeof(dst->al));
        dst->serial = src->has_credit ? src->serial : 0;
    }
    if (which & ENG_DIRTY_ACCT) {
        memset(dst->acct, 0, sizeof(dst->acct));
        dst->nacct = src->nacct;
        memcpy(dst->acct, src->acct, (size_t)src->nacct * sizeof(dst->acct[0]));
    }
}

/* ---- entries --------------------------------------------------------------- */

/* Writes e's dirty records (capture: as e's partition), then marks it clean. */
static int write_back(struct store *s, struct corg *e, char *err, size_t errlen) {
    struct st_cache *c = s->cache;
    struct eng_org *o = c->scratch;
    size_t k = 0;
    head_to(o, e);
    o->dirty = e->dirty;
    o->nproj = 0;
    for (size_t i = 0; e->any_proj_dirty && i < e->nproj; i++)
        if (e->proj[i].p.dirty) k++;
    if (k > o->capproj) {
        struct eng_project *np = realloc(o->proj, k * sizeof(*np));
        if (!np) return st_fail(err, errlen, "store %s: write-back of org %s: out of memory", s->path, e->id);
        o->proj = np;
        o->capproj = k;
    }
    for (size_t i = 0; e->any_proj_dirty && i < e->nproj; i++)
        if (e->proj[i].p.dirty) o->proj[o->nproj++] = e->proj[i].p;
    int32_t keep = s->cap_part;
    s->cap_part = e->partition;
    int rc = st_org_write(s, o, err, errlen);
    /* A project record put then deleted in this batch: noted as the direct
     * put was. */
    uint8_t k2[PKEY_MAX];
    for (size_t i = 0; !rc && s->capture && i < e->nproj; i++) {
        const struct cproj *p = &e->proj[i];
        if (p->put && !proj_exists(&p->p))
            rc = st_change_note(s, DB_PROJCRED, k2, st_proj_key(k2, e->id, p->p.id), err, errlen);
    }
    s->cap_part = keep;
    if (rc) return rc;
    e->dirty = 0;
    for (size_t i = 0; i < e->nproj; i++) e->proj[i].p.dirty = e->proj[i].put = 0;
    e->any_proj_dirty = 0;
    c->st.writebacks++;
    return 0;
}

static void mark_dirty(struct st_cache *c, struct corg *e) {
    if (e->listed) return;
    e->listed = 1;
    c->ndirty++;
    e->dprev = NULL;
    e->dnext = c->dirty;
    if (c->dirty) c->dirty->dprev = e;
    c->dirty = e;
}

static void dirty_unlink(struct st_cache *c, struct corg *e) {
    if (e->dprev) e->dprev->dnext = e->dnext; else c->dirty = e->dnext;
    if (e->dnext) e->dnext->dprev = e->dprev;
    e->dnext = e->dprev = NULL;
    e->listed = 0;
    c->ndirty--;
}

/* Evicts from the LRU end (never keep) while the bound is exceeded; a dirty
 * entry is written back first.  The last evicted entry is kept as spare. */
static int evict(struct store *s, struct corg *keep, char *err, size_t errlen) {
    struct st_cache *c = s->cache;
    while (c->bytes > c->max_bytes && c->tail && c->tail != keep) {
        struct corg *e = c->tail;
        if (e->dirty || e->any_proj_dirty) {
            int rc = write_back(s, e, err, errlen);
            if (rc) return rc;
        }
        if (e->listed) dirty_unlink(c, e);
        lru_unlink(c, e);
        tab_unlink(c, e);
        c->bytes -= e->bytes;
        c->st.evictions++;
        entry_free(c->spare);
        c->spare = e;
    }
    return 0;
}

/* A new entry for id (the spare one when there is one), in the table and at
 * the front; its state is the caller's to fill.  NULL: out of memory. */
static struct corg *entry_new(struct st_cache *c, const char *id, uint64_t h) {
    struct corg *e = c->spare;
    if (e) {
        c->spare = NULL;
        struct cproj *p = e->proj;
        char (*off)[ENG_ID_MAX + 1] = e->off;
        size_t capproj = e->capproj;
        int capoff = e->capoff;
        memset(e, 0, sizeof(*e));
        e->proj = p;
        e->capproj = capproj;
        e->off = off;
        e->capoff = capoff;
    } else if (!(e = calloc(1, sizeof(*e)))) {
        return NULL;
    }
    if (tab_grow(c)) {
        entry_free(e);
        return NULL;
    }
    strcpy(e->id, id);
    e->h = h;
    e->hnext = c->tab[h & (c->nb - 1)];
    c->tab[h & (c->nb - 1)] = e;
    c->n++;
    e->bytes = entry_bytes(e);
    c->bytes += e->bytes;
    lru_front(c, e);
    return e;
}

static void cache_clear(struct st_cache *c) {
    for (struct corg *e = c->head, *nx; e; e = nx) {
        nx = e->next;
        entry_free(e);
    }
    memset(c->tab, 0, c->nb * sizeof(*c->tab));
    c->head = c->tail = c->dirty = NULL;
    c->n = c->ndirty = 0;
    c->bytes = 0;
}

/* ---- the interface (store_int.h) -------------------------------------------- */

int st_cache_open(struct store *s, size_t max_bytes, char *err, size_t errlen) {
    struct st_cache *c = calloc(1, sizeof(*c));
    if (c) c->tab = calloc(1024, sizeof(*c->tab));
    if (c && c->tab) c->scratch = malloc(sizeof(*c->scratch));
    if (!c || !c->tab || !c->scratch) {
        if (c) free(c->tab);
        free(c);
        return st_fail(err, errlen, "store %s: org cache: out of memory", s->path);
    }
    eng_org_init(c->scratch);
    c->nb = 1024;
    c->max_bytes = max_bytes;
    s->cache = c;
    return 0;
}

void st_cache_close(struct store *s) {
    struct st_cache *c = s->cache;
    if (!c) return;
    cache_clear(c);
    entry_free(c->spare);
    free(c->order);
    eng_org_free(c->scratch);
    free(c->scratch);
    free(c->tab);
    free(c);
    s->cache = NULL;
}

void st_cache_drop(struct store *s) {
    if (s->cache && s->cache->n) {
        cache_clear(s->cache);
        s->cache->st.drops++;
    }
}

static int by_id(const void *a, const void *b) {
    return strcmp((*(struct corg *const *)a)->id, (*(struct corg *const *)b)->id);
}

/* In ascending id order: consecutive puts land on the same or neighbouring
 * B-tree pages of each database (still in the CPU's caches), where the
 * list's order sent each one to a random page. */
int st_cache_flush(struct store *s, char *err, size_t errlen) {
    struct st_cache *c = s->cache;
    size_t n = 0;
    if (!c || !c->dirty) return 0;
    if (c->ndirty > c->caporder) {
        struct corg **o = realloc(c->order, c->ndirty * 2 * sizeof(*o));
        if (!o) return st_fail(err, errlen, "store %s: org cache: out of memory", s->path);
        c->order = o;
        c->caporder = c->ndirty * 2;
    }
    for (struct corg *e = c->dirty; e; e = e->dnext) c->order[n++] = e;
    qsort(c->order, n, sizeof(*c->order), by_id);
    for (size_t i = 0; i < n; i++) {
        int rc = write_back(s, c->order[i], err, errlen);
        if (rc) return rc;
        dirty_unlink(c, c->order[i]);
    }
    return 0;
}

int st_cache_org_get(struct store *s, const char *id, struct eng_org *out, char *err,
                     size_t errlen) {
    struct st_cache *c = s->cache;
    uint64_t h = id_hash(id);
    struct corg *e = find(c, id, h);
    if (e) {
        c->st.hits++;
        lru_front(c, e);
        head_to(out, e);
        return 0;
    }
    c->st.misses++;
    int rc = st_load_org(s, s->txn, id, out, 0, err, errlen);
    if (rc) return rc;
    if (!(e = entry_new(c, id, h)) || head_from(e, out, 0xFu))
        return st_fail(err, errlen, "store %s: org cache: out of memory (org %s)", s->path, id);
    recount(c, e);
    return evict(s, e, err, errlen);
}

/* e's project id: cached, or loaded (or noted absent) now. */
static int project_of(struct store *s, struct corg *e, const char *id, struct cproj **out,
                      char *err, size_t errlen) {
    size_t pos;
    struct eng_project t;
    *out = pfind(e, id, &pos);
    if (*out || e->all_projects) return 0;
    memset(&t, 0, sizeof(t));
    int rc = st_project_load(s, e->id, id, &t, err, errlen);
    if (rc < 0) return rc;
    if (!(*out = padd(s->cache, e, id)))
        return st_fail(err, errlen, "store %s: org cache: out of memory (org %s)", s->path, e->id);
    if (rc == 0) (*out)->p = t;
    (*out)->p.dirty = 0;
    return 0;
}

int st_cache_project_get(struct store *s, const char *org, const char *project,
                         struct eng_project *out, char *err, size_t errlen) {
    struct st_cache *c = s->cache;
    struct corg *e = find(c, org, id_hash(org));
    struct cproj *p;
    if (!e) return st_project_load(s, org, project, out, err, errlen);
    int rc = project_of(s, e, project, &p, err, errlen);
    if (rc) return rc;
    if (!p || !proj_exists(&p->p)) return STORE_NOTFOUND;
    *out = p->p;
    out->dirty = 0;
    return 0;
}

/* Every project of e in the cache (the store's added, as loaded). */
static int all_projects(struct store *s, struct corg *e, char *err, size_t errlen) {
    struct eng_org *t = s->cache->scratch;
    if (e->all_projects) return 0;
    int rc = st_projects_load(s, e->id, t, err, errlen);
    for (size_t i = 0; !rc && i < t->nproj; i++) {
        size_t pos;
        if (pfind(e, t->proj[i].id, &pos)) continue;  /* the cached one is newer */
        struct cproj *p = padd(s->cache, e, t->proj[i].id);
        if (!p) return st_fail(err, errlen, "store %s: org cache: out of memory (org %s)", s->path, e->id);
        pcanon(&p->p, &t->proj[i], ENG_DIRTY_CREDIT | ENG_DIRTY_ACCT);
    }
    if (!rc) e->all_projects = 1;
    return rc;
}

int st_cache_projects_get(struct store *s, const char *org, struct eng_org *out, char *err,
                          size_t errlen) {
    struct st_cache *c = s->cache;
    struct corg *e = find(c, org, id_hash(org));
    if (!e) return st_projects_load(s, org, out, err, errlen);
    int rc = all_projects(s, e, err, errlen);
    if (rc) return rc;
    strcpy(out->id, org);
    out->nproj = 0;
    for (size_t i = 0; i < e->nproj; i++) {
        const struct eng_project *p = &e->proj[i].p;
        if (!proj_exists(p)) continue;
        struct eng_project *q = eng_org_add_project(out, p->id);  /* ascending: appends */
        if (!q) return st_fail(err, errlen, "store %s: load org %s: out of memory", s->path, org);
        *q = *p;
        q->dirty = 0;
        if (!q->has_credit) q->terms.end_month = ENG_NO_MONTH;  /* that loader's default */
    }
    return 0;
}

/* o's entry: cached, or loaded from LMDB, or new (an org the store has not
 * got, which has no projects there either). */
static int entry_for_put(struct store *s, const struct eng_org *o, struct corg **out, char *err,
                         size_t errlen) {
    struct st_cache *c = s->cache;
    uint64_t h = id_hash(o->id);
    *out = find(c, o->id, h);
    if (*out) return 0;
    struct eng_org *t = c->scratch;
    int rc = st_load_org(s, s->txn, o->id, t, 0, err, errlen);
    if (rc < 0) return rc;
    if (rc == STORE_NOTFOUND) {  /* the defaults of a load (t's project array kept) */
        struct eng_project *keep = t->proj;
        size_t cap = t->capproj;
        eng_org_init(t);
        t->proj = keep;
        t->capproj = cap;
        strcpy(t->id, o->id);
    }
    if (!(*out = entry_new(c, o->id, h)) || head_from(*out, t, 0xFu))
        return st_fail(err, errlen, "store %s: org cache: out of memory (org %s)", s->path, o->id);
    (*out)->all_projects = rc == STORE_NOTFOUND;
    return 0;
}

int st_cache_org_put(struct store *s, const struct eng_org *o, char *err, size_t errlen) {
    struct st_cache *c = s->cache;
    struct corg *e;
    assert((o->dirty & ~0xFu) == 0 && o->has_credit <= 1);
    int rc = entry_for_put(s, o, &e, err, errlen);
    if (rc) return rc;
    lru_front(c, e);
    /* Format 6: any dirty part rewrites the org's whole record, and any
     * dirty part of a project that project's, from o as st_org_write does. */
    if (o->dirty && head_from(e, o, 0xFu))
        return st_fail(err, errlen, "store %s: org cache: out of memory (org %s)", s->path, o->id);
    e->dirty |= o->dirty;
    for (size_t i = 0; i < o->nproj; i++) {
        const struct eng_project *q = &o->proj[i];
        struct cproj *p;
        if (!q->dirty) continue;
        assert((q->dirty & ~(unsigned)(ENG_DIRTY_CREDIT | ENG_DIRTY_ACCT)) == 0);
        if ((rc = project_of(s, e, q->id, &p, err, errlen))) return rc;
        if (!p && !(p = padd(c, e, q->id)))  /* all_projects and new */
            return st_fail(err, errlen, "store %s: org cache: out of memory (org %s)", s->path, o->id);
        pcanon(&p->p, q, ENG_DIRTY_CREDIT | ENG_DIRTY_ACCT);
        p->p.dirty |= q->dirty;
        p->put |= (uint8_t)proj_exists(q);
        e->any_proj_dirty = 1;
    }
    if (e->dirty || e->any_proj_dirty) mark_dirty(c, e);
    recount(c, e);
    return evict(s, e, err, errlen);
}

void store_cache_stats(const struct store *s, struct store_cache_stats *st) {
    memset(st, 0, sizeof(*st));
    if (!s->cache) return;
    *st = s->cache->st;
    st->entries = s->cache->n;
    st->bytes = s->cache->bytes;
    st->max_bytes = s->cache->max_bytes;
}
