/* engine.c -- the order of checks (§7) and the dispatch of one message:
 * JSON -> id/source -> data.org (or tick) -> partition -> source authority
 * and future time (§11), too_late (§14) -> idempotency (keys past the
 * retention horizon count as unknown, §14) -> envelope and fields ->
 * watermark and closes -> state rules. */
#include "engine/engine.h"

#include <assert.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_int.h"
#include "engine/timeutil.h"

int engine_new(struct engine **out, const struct engine_config *cfg, char *err, size_t errlen) {
    if (cfg->close_after_s < 0 || cfg->close_after_s > ENGINE_MAX_CLOSE_AFTER) {
        snprintf(err, errlen, "close_after: %lld is outside 0..%d seconds",
                 (long long)cfg->close_after_s, ENGINE_MAX_CLOSE_AFTER);
        return -1;
    }
    const char *cur = cfg->currency ? cfg->currency : "EUR";
    if (strlen(cur) == 0 || strlen(cur) > ENGINE_CURRENCY_MAX) {
        snprintf(err, errlen, "currency: must be 1..%d bytes", ENGINE_CURRENCY_MAX);
        return -1;
    }
    if (cfg->max_future_s < 0 || cfg->max_future_s > GUARD_MAX_FUTURE_MAX) {
        snprintf(err, errlen, "max_future: %lld is outside 0..%d seconds",
                 (long long)cfg->max_future_s, GUARD_MAX_FUTURE_MAX);
        return -1;
    }
    if (cfg->retention_days < 0 || cfg->retention_days > GUARD_RETENTION_DAYS_MAX) {
        snprintf(err, errlen, "retention_days: %lld is outside 0..%d days",
                 (long long)cfg->retention_days, GUARD_RETENTION_DAYS_MAX);
        return -1;
    }
    struct engine *e = calloc(1, sizeof(*e));
    if (!e) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int c = 0; c < GUARD_NCLASS; c++) {
        char msg[160];
        if (guard_list_parse(&e->sources[c], cfg->sources[c], msg, sizeof(msg)) == 0) continue;
        snprintf(err, errlen, "%s: %s", guard_class_key(c), msg);
        engine_free(e);
        return -1;
    }
    e->close_after_ns = cfg->close_after_s * INT64_C(1000000000);
    e->max_future_ns = cfg->max_future_s * INT64_C(1000000000);
    e->retention_ns = cfg->retention_days * INT64_C(86400) * INT64_C(1000000000);
    strcpy(e->currency, cur);
    eng_org_init(&e->org);
    eng_org_init(&e->scratch);
    jsonw_init(&e->w);
    *out = e;
    return 0;
}

void engine_free(struct engine *e) {
    if (!e) return;
    for (int c = 0; c < GUARD_NCLASS; c++) guard_list_free(&e->sources[c]);
    eng_org_free(&e->org);
    eng_org_free(&e->scratch);
    jsonw_free(&e->w);
    free(e->draws);
    free(e->aq);
    free(e);
}

/* A CloudEvents time attribute that parses, or NULL. */
static const char *time_of_tree(json_t *root, int64_t *ns) {
    json_t *t = json_object_get(root, "time");
    int64_t tmp;
    if (!json_is_string(t) || time_parse_rfc3339(json_string_value(t), ns ? ns : &tmp) != 0)
        return NULL;
    return json_string_value(t);
}

/* The same, from engine_prepare's reading when there is one. */
static const char *readable_time(const struct engine *e, json_t *root, int64_t *ns) {
    const struct engine_pre *p = e->pre;
    if (!p || !p->timed) return time_of_tree(root, ns);
    if (p->time_str && ns) *ns = p->time_ns;
    return p->time_str;
}

/* The envelope and fields step (§7): event_decode, or its result prepared
 * ahead.  id, source and org stay as the earlier steps read them. */
static int decode(struct engine *e, json_t *root) {
    const struct engine_pre *p = e->pre;
    if (!p || !p->decoded) return event_decode(root, &e->ev, e->msg, sizeof(e->msg));
    const char *id = e->ev.id, *source = e->ev.source, *org = e->ev.org;
    e->ev = p->ev;
    e->ev.id = id;
    e->ev.source = source;
    e->ev.org = org;
    return 0;
}

/* A non-empty string of at most max bytes without an embedded NUL; NULL if
 * not.  (jansson refuses \u0000 in input; the only NULs are engine_parse's
 * marks of out-of-range numbers, which are not strings to the sender.) */
static const char *id_string(json_t *v, size_t max) {
    if (!json_is_string(v)) return NULL;
    size_t n = json_string_length(v);
    const char *s = json_string_value(v);
    return n == 0 || n > max || memchr(s, 0, n) ? NULL : s;
}

/* id / source: non-empty strings of at most 256 bytes; NULL if not. */
static const char *key_part(json_t *root, const char *name) {
    return id_string(json_object_get(root, name), ENG_KEYPART_MAX);
}

static void fmt(struct engine *e, const char *f, const char *a, const char *b) {
    snprintf(e->msg, sizeof(e->msg), f, a, b);
}

/* Reject before idempotency: nothing is remembered. */
static int reject_unkeyed(struct engine *e, struct engine_result *res, int reason, json_t *root,
                          const char *key) {
    res->outcome = ENG_REJECTED;
    res->reason = reason;
    const char *src = root ? key_part(root, "source") : NULL;
    /* event_id names a key: null unless both id and source are readable
     * (v1.3: an id or source over 256 bytes has event_id null). */
    const char *id = root && src ? key_part(root, "id") : NULL;
    return out_rejected(e, reason, key, src, id, root ? readable_time(e, root, NULL) : NULL);
}

static int check_clock(struct engine *e, int64_t clock);

/* ---- guards (§11): before idempotency, their rejects are not remembered -- */

/* Source authority: 0 to go on, 1 when rejected, <0 store error.  A type
 * that is not a string or not one of the classes' types has no list: it
 * goes on (to unknown_type or invalid_event at the envelope step). */
static int guard_source(struct engine *e, json_t *root, const char *key,
                        struct engine_result *res) {
    json_t *type = json_object_get(root, "type");
    int c = json_is_string(type) ? guard_class_of(json_string_value(type)) : -1;
    if (c < 0 || guard_list_allows(&e->sources[c], e->ev.source)) return 0;
    snprintf(e->msg, sizeof(e->msg), "source: \"%s\" is not allowed for type %s (%s)",
             e->ev.source, json_string_value(type), guard_class_key(c));
    int rc = reject_unkeyed(e, res, ENG_R_SOURCE_NOT_ALLOWED, root, key);
    return rc ? rc : 1;
}

/* Future time: an org event later than its org's watermark + max_future is
 * rejected once the partition has a clock.  The reference is the org's
 * watermark, or the partition clock when it has none (a new org starts
 * there, choice 3); every org on a partition is at or past its clock.  A
 * time that does not parse goes on to the envelope step (invalid_event).
 * The clock is read only when the time is past watermark + max_future, so
 * the common case costs nothing.  0 to go on, 1 when rejected, <0 error. */
static int guard_time(struct engine *e, json_t *root, const struct eng_org *o,
                      struct engine_result *res) {
    const struct engine_store *st = e->st;
    int64_t t, clock, ref = o->watermark;
    const char *ts = readable_time(e, root, &t);
    if (!e->max_future_ns || !ts) return 0;
    if (ref != ENG_NO_TIME && (ref > INT64_MAX - e->max_future_ns || t <= ref + e->max_future_ns))
        return 0;
    int rc = st->clock_get(st->ctx, e->m->partition, &clock, e->err, e->errlen);
    if (rc < 0) return rc;
    if (rc == ENG_NOTFOUND) return 0;  /* no tick on the partition yet: off */
    if ((rc = check_clock(e, clock))) return rc;
    if (ref == ENG_NO_TIME || clock > ref) ref = clock;
    if (ref > INT64_MAX - e->max_future_ns || t <= ref + e->max_future_ns) return 0;
    char wm[48], lim[48];
    time_format(ref, wm);
    time_format(ref + e->max_future_ns, lim);
    snprintf(e->msg, sizeof(e->msg),
             "time: \"%s\" is later than %s, the watermark of organisation %s (%s) plus "
             "max_future (%lld s): send it again once ticks have moved the clock",
             ts, lim, o->id, wm, (long long)(e->max_future_ns / INT64_C(1000000000)));
    rc = reject_unkeyed(e, res, ENG_R_TIME_IN_FUTURE, root, o->id);
    return rc ? rc : 1;
}

/* ---- bounded idempotency memory (§14) ------------------------------------ */

/* The retention horizon of reference ref (an org's watermark before the
 * message, or a partition's tick clock): instants earlier than it no longer
 * count.  ENG_NO_TIME (nothing is earlier) when retention is off or there is
 * no reference yet.  ref is in the time module's range (1970..2261) and the
 * retention at most ten years, so the subtraction cannot overflow. */
static int64_t horizon_of(const struct engine *e, int64_t ref) {
    return !e->retention_ns || ref == ENG_NO_TIME ? ENG_NO_TIME : ref - e->retention_ns;
}

/* too_late: a message whose readable time is earlier than the horizon of ref
 * (org's watermark; org NULL: the partition clock of a tick) is rejected
 * before the idempotency step and not remembered: its key may be forgotten
 * already, so applying it could apply it twice.  A time that does not parse
 * goes on to the envelope step (invalid_event).  0 to go on, 1 when
 * rejected, <0 error.
 * A usage.void whose data.usage_time is earlier than the same horizon is
 * too_late as well (§14): the voided usage's key may be forgotten. */
static int guard_late(struct engine *e, json_t *root, int64_t ref, const char *org,
                      struct engine_result *res) {
    int64_t t, h = horizon_of(e, ref);
    const char *ts = readable_time(e, root, &t), *field = "time";
    if (h == ENG_NO_TIME) return 0;
    if ((!ts || t >= h) && org) { /* the voided usage's time (§13, §14) */
        json_t *type = json_object_get(root, "type"), *data = json_object_get(root, "data");
        json_t *ut = json_object_get(data, "usage_time");
        if (!json_is_string(type) || strcmp(json_string_value(type), "usage.void") != 0 ||
            !json_is_string(ut) || time_parse_rfc3339(json_string_value(ut), &t) != 0)
            return 0;
        ts = json_string_value(ut);
        field = "data.usage_time";
    }
    if (!ts || t >= h) return 0;
    char rs[48], hs[48], whose[ENG_ID_MAX + 40];
    time_format(ref, rs);
    time_format(h, hs);
    if (org) snprintf(whose, sizeof(whose), "the watermark of organisation %s", org);
    else snprintf(whose, sizeof(whose), "the clock of partition %d", (int)e->m->partition);
    snprintf(e->msg, sizeof(e->msg),
             "%s: \"%s\" is earlier than %s, %s (%s) minus retention_days (%lld): too late, "
             "its key is no longer remembered (send a correction as a new event)",
             field, ts, hs, whose, rs, (long long)(e->retention_ns / (INT64_C(86400) * 1000000000)));
    int rc = reject_unkeyed(e, res, ENG_R_TOO_LATE, root, org);
    return rc ? rc : 1;
}

/* Content hash (§7): a 64-bit MurmurHash3-style hash over a canonical encoding of the parsed
 * message -- object keys in byte order, every value typed and
 * length-prefixed, no whitespace -- so two messages hash alike exactly when
 * their canonical JSON forms are equal.  Walking the tree avoids building
 * the canonical text (json_dumps with JSON_SORT_KEYS was ~15% of replay). */
static uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

/* Mixes 8 bytes at a time (MurmurHash3's 64-bit block step), then the tail
 * with its length; h_final finishes with MurmurHash3's fmix64. */
static void h_bytes(uint64_t *h, const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t x = *h, w;
    for (; n >= 8; s += 8, n -= 8) {
        memcpy(&w, s, 8);
        w *= UINT64_C(0x87c37b91114253d5);
        x ^= rotl64(w, 31) * UINT64_C(0x4cf5ad432745937f);
        x = rotl64(x, 27) * 5 + UINT64_C(0x52dce729);
    }
    w = (uint64_t)n << 56;
    for (size_t i = 0; i < n; i++) w |= (uint64_t)s[i] << (8 * i);
    w *= UINT64_C(0x87c37b91114253d5);
    x ^= rotl64(w, 31) * UINT64_C(0x4cf5ad432745937f);
    *h = rotl64(x, 27) * 5 + UINT64_C(0x52dce729);
}

static uint64_t h_final(uint64_t x) {
    x ^= x >> 33;
    x *= UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x *= UINT64_C(0xc4ceb9fe1a85ec53);
    return x ^ (x >> 33);
}

static void h_tag(uint64_t *h, char tag, uint64_t n) {
    h_bytes(h, &tag, 1);
    h_bytes(h, &n, sizeof(n));
}

struct kv { const char *k; json_t *v; };

static int cmp_keys(const void *a, const void *b) {
    return strcmp(((const struct kv *)a)->k, ((const struct kv *)b)->k);
}

static int h_value(uint64_t *h, json_t *v, int depth);

static int h_object(uint64_t *h, json_t *v, int depth) {
    struct kv stack[32], *kvs = stack;
    const char *k;
    size_t n = json_object_size(v), i = 0;
    json_t *x;
    if (n > 32 && !(kvs = malloc(n * sizeof(*kvs)))) return -1;
    json_object_foreach(v, k, x) {
        kvs[i].k = k;
        kvs[i++].v = x;
    }
    /* Keys are unique (JSON_REJECT_DUPLICATES): any sort gives the same
     * order.  An event's objects are small: insertion sort, no qsort calls. */
    if (n > 32) qsort(kvs, n, sizeof(*kvs), cmp_keys);
    for (size_t a = 1; n <= 32 && a < n; a++) {
        struct kv t = kvs[a];
        size_t b = a;
        for (; b > 0 && strcmp(kvs[b - 1].k, t.k) > 0; b--) kvs[b] = kvs[b - 1];
        kvs[b] = t;
    }
    h_tag(h, 'o', n);
    int rc = 0;
    for (i = 0; i < n && rc == 0; i++) {
        size_t kl = strlen(kvs[i].k);
        h_tag(h, 'k', kl);
        h_bytes(h, kvs[i].k, kl);
        rc = h_value(h, kvs[i].v, depth + 1);
    }
    if (kvs != stack) free(kvs);
    return rc;
}

int engine_hash(json_t *root, uint64_t *hash) {
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    if (!root || h_value(&h, root, 0)) return -1;
    *hash = h_final(h);
    return 0;
}

static int h_value(uint64_t *h, json_t *v, int depth) {
    if (depth > 2048) return -1; /* jansson limits nesting to 2048 too */
    switch (json_typeof(v)) {
    case JSON_OBJECT: return h_object(h, v, depth);
    case JSON_ARRAY:
        h_tag(h, 'a', json_array_size(v));
        for (size_t i = 0; i < json_array_size(v); i++)
            if (h_value(h, json_array_get(v, i), depth + 1)) return -1;
        return 0;
    case JSON_STRING:
        h_tag(h, 's', json_string_length(v));
        h_bytes(h, json_string_value(v), json_string_length(v));
        return 0;
    case JSON_INTEGER: h_tag(h, 'i', (uint64_t)json_integer_value(v)); return 0;
    case JSON_REAL: {
        double d = json_real_value(v);
        uint64_t bits;
        memcpy(&bits, &d, sizeof(bits));
        h_tag(h, 'r', bits);
        return 0;
    }
    case JSON_TRUE: h_tag(h, 't', 0); return 0;
    case JSON_FALSE: h_tag(h, 'f', 0); return 0;
    default: h_tag(h, 'n', 0); return 0;
    }
}

/* Idempotency key (state.h) and content hash of the canonical message. */
struct ikey {
    uint8_t k[ENG_DKEY_MAX];
    size_t n;
    struct eng_dedupe rec;
};

/* Appends s (and a NUL separator when nul).  The parts were bounded by
 * key_part / the data.org check, so the key always fits ENG_DKEY_MAX. */
static void key_add(struct ikey *k, const char *s, int nul) {
    size_t n = strlen(s);
    assert(k->n + n + (nul ? 1 : 0) <= sizeof(k->k));
    memcpy(k->k + k->n, s, n);
    k->n += n;
    if (nul) k->k[k->n++] = 0;
}

/* at: the instant the key counts at when the message has no readable time
 * (the watermark or clock before it; ENG_NO_TIME: kept), partition: the
 * key's (-1: no clock bounds it, state.h). */
static int make_key(struct engine *e, json_t *root, struct ikey *k, int64_t at,
                    int32_t partition) {
    const struct eng_event *ev = &e->ev;
    k->n = 0;
    /* source and id lead the key: producers usually issue ids in time order,
     * so a batch's new keys land on a few adjacent B-tree pages instead of
     * one page per organisation. */
    if (ev->org) {
        key_add(k, "o", 0);
        key_add(k, ev->source, 1);
        key_add(k, ev->id, 1);
        key_add(k, ev->org, 0);
    } else {
        uint32_t p = (uint32_t)e->m->partition;
        key_add(k, "t", 0);
        key_add(k, ev->source, 1);
        key_add(k, ev->id, 1);
        for (int i = 3; i >= 0; i--) k->k[k->n++] = (uint8_t)(p >> (8 * i));
    }
    memset(&k->rec, 0, sizeof(k->rec));
    k->rec.partition = partition;
    if (!readable_time(e, root, &k->rec.time)) k->rec.time = at;
    if (e->pre && e->pre->hashed) {   /* engine_prepare, on the thread that parsed it */
        k->rec.hash = e->pre->hash;
        return 0;
    }
    if (engine_hash(root, &k->rec.hash)) {
        snprintf(e->err, e->errlen, "out of memory hashing event %s", ev->id);
        return ENG_ESTORE;
    }
    return 0;
}

/* Idempotency step: 0 to go on, 1 when handled (duplicate / conflict), <0
 * error.  ref is the watermark (tick: clock) before the message: a stored
 * key that counts at an instant earlier than its retention horizon is
 * treated as unknown (§14), exactly as if the store had removed it already. */
static int check_key(struct engine *e, json_t *root, struct ikey *k, int64_t ref,
                     int32_t partition, struct engine_result *res) {
    const struct engine_store *st = e->st;
    struct eng_dedupe old;
    int64_t h = horizon_of(e, ref);
    int rc = make_key(e, root, k, ref, partition);
    if (rc) return rc;
    rc = st->dedupe_get(st->ctx, k->k, k->n, &old, e->err, e->errlen);
    if (rc == ENG_NOTFOUND) return 0;
    if (rc) return rc;
    if (old.time != ENG_NO_TIME && h != ENG_NO_TIME && old.time < h) return 0; /* expired */
    if (old.hash == k->rec.hash) {
        res->outcome = ENG_DUPLICATE;
        return 1;
    }
    fmt(e, "id: \"%s\" from source \"%s\" was already used for different content", e->ev.id,
        e->ev.source);
    rc = reject_unkeyed(e, res, ENG_R_ID_CONFLICT, root, e->ev.org);
    return rc ? rc : 1;
}

/* Remember the key with its outcome; emit the reject if there is one. */
static int remember(struct engine *e, struct ikey *k, int reason, struct engine_result *res) {
    const struct engine_store *st = e->st;
    int rc;
    k->rec.rejected = reason != 0;
    k->rec.reason = (uint8_t)reason;
    /* §13: an applied usage keeps what a later void needs with its key. */
    if (!reason && e->urec.has) k->rec.u = e->urec;
    if (reason) {
        res->outcome = ENG_REJECTED;
        res->reason = reason;
        rc = out_rejected(e, reason, e->ev.org, e->ev.source, e->ev.id, e->ev.time_str);
        if (rc) return rc;
    }
    return st->dedupe_put(st->ctx, k->k, k->n, &k->rec, e->err, e->errlen);
}

static int tick_org(void *arg, const char *id) {
    struct engine *e = arg;
    const struct engine_store *st = e->st;
    int rc = st->org_get(st->ctx, id, &e->org, e->err, e->errlen);
    if (rc == ENG_NOTFOUND) {
        snprintf(e->err, e->errlen, "store: org %s is indexed on partition %d but missing", id,
                 (int)e->m->partition);
        return ENG_ESTORE;
    }
    if (rc) return rc;
    if ((rc = credit_check_org(e, &e->org))) return rc;
    e->naq = 0;
    if ((rc = credit_advance(e, &e->org, e->ev.time))) return rc;
    if ((rc = alert_flush(e, &e->org))) return rc; /* §12: after the org's ledger outputs */
    return e->org.dirty ? st->org_put(st->ctx, &e->org, e->err, e->errlen) : 0;
}

/* The partition clock as clock_get read it: a new org's watermark starts
 * there, so it must be an instant the parser could have accepted. */
static int check_clock(struct engine *e, int64_t clock) {
    if (time_ns_in_range(clock)) return 0;
    snprintf(e->err, e->errlen,
             "corrupt store: partition %d clock: %lld ns is outside 1970..2261",
             (int)e->m->partition, (long long)clock);
    return ENG_ESTORE;
}

/* The partition's clock, or ENG_NO_TIME before its first tick. */
static int partition_clock(struct engine *e, int64_t *clock) {
    const struct engine_store *st = e->st;
    int rc = st->clock_get(st->ctx, e->m->partition, clock, e->err, e->errlen);
    if (rc < 0) return rc;
    if (rc == ENG_NOTFOUND) *clock = ENG_NO_TIME;
    return rc == ENG_OK ? check_clock(e, *clock) : 0;
}

/* clock.tick: moves the clock of every org on the partition (§6). */
static int apply_tick(struct engine *e, json_t *root, struct engine_result *res) {
    const struct engine_store *st = e->st;
    struct ikey k;
    int64_t clock;
    /* ticks have no future-time guard (§11), but too_late (§14) */
    int rc = guard_source(e, root, NULL, res);
    if (!rc) rc = partition_clock(e, &clock);
    if (!rc) rc = guard_late(e, root, clock, NULL, res);
    if (!rc) rc = check_key(e, root, &k, clock, e->m->partition, res);
    if (rc) return rc < 0 ? rc : 0;
    int reason = decode(e, root);
    if (reason) return remember(e, &k, reason, res);
    if (clock == ENG_NO_TIME || e->ev.time > clock) {
        /* Every org on the partition has a watermark >= the clock, so only a
         * tick that moves the clock can move anything. */
        if ((rc = st->clock_put(st->ctx, e->m->partition, e->ev.time, e->err, e->errlen))) return rc;
        rc = st->orgs_on_partition(st->ctx, e->m->partition, tick_org, e, e->err, e->errlen);
        if (rc) return rc;
    }
    return remember(e, &k, 0, res);
}

/* Load the org, or start a new one pinned to this partition whose watermark
 * starts at the partition clock. */
static int load_org(struct engine *e, struct eng_org *o, int *is_new) {
    const struct engine_store *st = e->st;
    int rc = st->org_get(st->ctx, e->ev.org, o, e->err, e->errlen);
    *is_new = rc == ENG_NOTFOUND;
    if (rc == ENG_OK) return credit_check_org(e, o);
    if (rc != ENG_NOTFOUND) return rc;
    eng_org_free(o);
    eng_org_init(o);
    strcpy(o->id, e->ev.org);
    o->partition = e->m->partition;
    o->all_projects = 1; /* a new organisation has none */
    int64_t clock;
    rc = st->clock_get(st->ctx, e->m->partition, &clock, e->err, e->errlen);
    if (rc < 0) return rc;
    if (rc == ENG_OK && (rc = check_clock(e, clock))) return rc;
    if (rc == ENG_OK) o->watermark = clock;
    return 0;
}

static int apply_org_event(struct engine *e, json_t *root, struct engine_result *res) {
    const struct engine_store *st = e->st;
    struct eng_org *o = &e->org;
    struct ikey k;
    int is_new, rc = load_org(e, o, &is_new);
    if (rc) return rc;
    if (!is_new && o->partition != e->m->partition) {
        char a[16], b[16];
        snprintf(a, sizeof(a), "%d", (int)o->partition);
        snprintf(b, sizeof(b), "%d", (int)e->m->partition);
        snprintf(e->msg, sizeof(e->msg),
                 "data.org: organisation %s belongs to partition %s, the message came on partition %s",
                 o->id, a, b);
        return reject_unkeyed(e, res, ENG_R_WRONG_PARTITION, root, o->id);
    }
    /* A format reject of an org without a record leaves none, so no
     * partition bounds its key yet (state.h): partition -1, kept. */
    if ((rc = guard_source(e, root, o->id, res)) || (rc = guard_time(e, root, o, res)) ||
        (rc = guard_late(e, root, o->watermark, o->id, res)) ||
        (rc = check_key(e, root, &k, o->watermark, e->m->partition, res)))
        return rc < 0 ? rc : 0;
    int reason = decode(e, root);
    if (reason && is_new) k.rec.partition = -1;
    if (reason) return remember(e, &k, reason, res); /* format reject: only the key */
    if (is_new) o->dirty |= ENG_DIRTY_META;
    if ((rc = credit_advance(e, o, e->ev.time))) return rc;
    rc = credit_apply(e, o);
    if (rc < 0) return rc;
    if ((rc = remember(e, &k, rc, res))) return rc;
    /* §12: alerts follow the event's ledger and overage outputs. */
    if ((rc = alert_flush(e, o))) return rc;
    return o->dirty ? st->org_put(st->ctx, o, e->err, e->errlen) : 0;
}

static int apply_root(struct engine *e, json_t *root, struct engine_result *res) {
    struct eng_event *ev = &e->ev;
    if (!json_is_object(root)) {
        fmt(e, "the message must be a JSON object (a CloudEvent)%s%s", "", "");
        return reject_unkeyed(e, res, ENG_R_INVALID_EVENT, root, NULL);
    }
    ev->id = key_part(root, "id");
    ev->source = key_part(root, "source");
    if (!ev->id || !ev->source) {
        fmt(e, "%s: must be a non-empty string of at most 256 bytes%s", ev->id ? "source" : "id", "");
        return reject_unkeyed(e, res, ENG_R_INVALID_EVENT, root, NULL);
    }
    json_t *type = json_object_get(root, "type");
    if (json_is_string(type) && strcmp(json_string_value(type), "clock.tick") == 0)
        return apply_tick(e, root, res);
    json_t *org = json_object_get(json_object_get(root, "data"), "org");
    if (!(ev->org = id_string(org, ENG_ID_MAX))) {
        if (json_is_string(type) && event_type_of(json_string_value(type)) == ENG_T_UNKNOWN) {
            event_unknown_type_msg(e->msg, sizeof(e->msg), json_string_value(type));
            return reject_unkeyed(e, res, ENG_R_UNKNOWN_TYPE, root, NULL);
        }
        fmt(e, "data.org: %s%s", org ? "must be a non-empty string of at most 200 bytes"
                                     : "required field is missing", "");
        return reject_unkeyed(e, res, ENG_R_INVALID_EVENT, root, NULL);
    }
    return apply_org_event(e, root, res);
}

static json_t *parse(const char *buf, size_t len, json_error_t *jerr) {
    return json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, jerr);
}

static int is_num_char(char c) {
    return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

/* jansson failed on a number that does not fit (its position is the end of
 * the lexeme): a copy of buf with that number replaced by the string
 * EVENT_BIGNUM_MARK + lexeme, or NULL if the error is another one. */
static char *rewrite_bignum(const char *buf, size_t len, const json_error_t *jerr,
                            size_t *outlen) {
    if (!strstr(jerr->text, "too big") && !strstr(jerr->text, "real number overflow")) return NULL;
    size_t end = jerr->position < 0 ? 0 : (size_t)jerr->position, start;
    if (end > len) end = len;
    while (end < len && is_num_char(buf[end])) end++;
    for (start = end; start > 0 && is_num_char(buf[start - 1]); start--) {}
    if (start == end || !(buf[start] == '-' || (buf[start] >= '0' && buf[start] <= '9')))
        return NULL;
    static const char pre[] = "\"\\u0000bignum:";
    size_t np = sizeof(pre) - 1, n = len + np + 1;
    char *out = malloc(n);
    if (!out) return NULL;
    memcpy(out, buf, start);
    memcpy(out + start, pre, np);
    memcpy(out + start + np, buf + start, end - start);
    out[start + np + (end - start)] = '"';
    memcpy(out + start + np + (end - start) + 1, buf + end, len - end);
    *outlen = n;
    return out;
}

/* Parses buf; numbers out of jansson's range are rewritten (rewrite_bignum),
 * at most 64 of them, so their field can be named (§2).  When the message
 * still does not parse, *jerr is jansson's first error on the original. */
json_t *engine_parse(const char *buf, size_t len, json_error_t *jerr) {
    json_t *root = parse(buf, len, jerr);
    json_error_t cur = *jerr;
    char *copy = NULL;
    /* The copy is parsed with JSON_ALLOW_NUL for the marks; a \u0000 of the
     * sender's own must stay invalid_json. */
    if (!root && memmem(buf, len, "\\u0000", 6)) return NULL;
    for (int i = 0; !root && i < 64; i++) {
        size_t n;
        char *next = rewrite_bignum(copy ? copy : buf, len, &cur, &n);
        if (!next) break;
        free(copy);
        copy = next;
        len = n;
        root = json_loadb(copy, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL,
                          &cur);
    }
    free(copy);
    return root;
}

int engine_apply_parsed(struct engine *e, const struct engine_store *st,
                        const struct engine_msg *m, json_t *root, const json_error_t *jerr,
                        struct engine_result *res, char *err, size_t errlen) {
    return engine_apply_prepared(e, st, m, root, jerr, NULL, res, err, errlen);
}

void engine_prepare(json_t *root, struct engine_pre *pre) {
    memset(pre, 0, sizeof(*pre));
    if (!json_is_object(root)) return;
    pre->hashed = engine_hash(root, &pre->hash) == 0;
    pre->time_str = time_of_tree(root, &pre->time_ns);
    pre->timed = 1;
    char msg[ENG_MSG_MAX];
    pre->decoded = event_decode(root, &pre->ev, msg, sizeof(msg)) == 0;
    if (!pre->decoded) memset(&pre->ev, 0, sizeof(pre->ev));
}

int engine_apply_prepared(struct engine *e, const struct engine_store *st,
                          const struct engine_msg *m, json_t *root, const json_error_t *jerr,
                          const struct engine_pre *pre, struct engine_result *res, char *err,
                          size_t errlen) {
    e->pre = root ? pre : NULL;
    e->st = st;
    e->m = m;
    e->err = err;
    e->errlen = errlen;
    memset(&e->ev, 0, sizeof(e->ev));
    e->msg[0] = 0;
    e->naq = 0;
    e->urec.has = 0;
    memset(res, 0, sizeof(*res));
    e->res = res;
    res->outcome = ENG_APPLIED;
    res->reason = ENG_R_NONE;
    if (pre && pre->decoded) res->type = (int)pre->ev.type;
    else {
        json_t *type = json_is_object(root) ? json_object_get(root, "type") : NULL;
        res->type = json_is_string(type) ? (int)event_type_of(json_string_value(type)) : ENG_T_UNKNOWN;
    }
    if (!root) {
        snprintf(e->msg, sizeof(e->msg), "invalid JSON at line %d, column %d: %s", jerr->line,
                 jerr->column, jerr->text);
        return reject_unkeyed(e, res, ENG_R_INVALID_JSON, NULL, NULL);
    }
    return apply_root(e, root, res);
}

int engine_apply(struct engine *e, const struct engine_store *st, const struct engine_msg *m,
                 struct engine_result *res, char *err, size_t errlen) {
    json_error_t jerr;
    json_t *root = engine_parse(m->buf, m->len, &jerr);
    int rc = engine_apply_parsed(e, st, m, root, &jerr, res, err, errlen);
    json_decref(root);
    return rc;
}

int engine_time_of(json_t *root, int64_t *ns) {
    return root && json_is_object(root) && time_of_tree(root, ns) ? 0 : -1;
}
