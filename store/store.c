/* store.c -- creditd's durable state on LMDB (see store.h): the environment,
 * open/close and the writer lock, batch transactions, meta records (format,
 * result-changing config, counters, user strings), stats, dump, and the
 * engine-ops binding.  The other files of store/ are listed in store_int.h.
 *
 * LMDB failures (map full, I/O) are reported through err; a record that
 * fails its checks is STORE_ECORRUPT naming db and key (st_corrupt).
 */
#undef NDEBUG /* asserts (programmer errors only, never read data) stay on in release builds */
#include "store/store_int.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

const char *const st_db_names[DB_COUNT] = {
    "meta", "orgs", "project_credits",
    "org_partition", "partitions", "dedupe", "outbox", "offsets", "dedupe_expiry",
    "changes", "changelog"
};

#define DEFAULT_MAP_SIZE ((size_t)1 << 30)

/* ---- errors ------------------------------------------------------------ */

int st_fail(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen) vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return STORE_ERR;
}

int st_lmdb_fail(struct store *s, int rc, const char *what, const char *db, char *err, size_t errlen) {
    if (rc == MDB_MAP_FULL) {
        s->map_full = 1;
        s->grow_pending = 1;
        return st_fail(err, errlen, "store %s: %s %s: map full (grown on abort: retry the batch)",
                       s->path, what, db);
    }
    return st_fail(err, errlen, "store %s: %s %s: %s", s->path, what, db, mdb_strerror(rc));
}

int st_pub_rc(const struct store *s, int rc) {
    return (rc < 0 && s->map_full) ? STORE_EMAPFULL : rc;
}

#define KEYTEXT_MAX 200

/* kl bytes quoted, printable ASCII as is, other bytes (and " \) as \xNN;
 * a long key is cut, with its length. */
static void quote(const uint8_t *k, size_t kl, char *out, size_t cap) {
    static const char hex[] = "0123456789abcdef";
    size_t n = 0, i;
    assert(cap >= 64);
    out[n++] = '"';
    for (i = 0; i < kl && n + 4 + 40 < cap; i++) {
        if (k[i] >= 0x20 && k[i] < 0x7f && k[i] != '"' && k[i] != '\\') {
            out[n++] = (char)k[i];
            continue;
        }
        out[n++] = '\\';
        out[n++] = 'x';
        out[n++] = hex[k[i] >> 4];
        out[n++] = hex[k[i] & 15];
    }
    out[n++] = '"';
    out[n] = 0;
    if (i < kl) snprintf(out + n, cap - n, "... (%zu bytes)", kl);
}

void st_key_text(int db, const void *kv, size_t kl, char *out, size_t cap) {
    const uint8_t *k = kv;
    size_t n = 0;
    if (db == DB_OUTBOX && kl == 8) {
        snprintf(out, cap, "seq %llu", (unsigned long long)st_get_be64(k));
        return;
    }
    if (((db == DB_PARTS || db == DB_CLOFF) && kl == 4) || (db == DB_ORGPART && kl > 4)) {
        uint32_t p = (uint32_t)k[0] << 24 | (uint32_t)k[1] << 16 | (uint32_t)k[2] << 8 | k[3];
        n = (size_t)snprintf(out, cap, "partition %u%s", (unsigned)p, kl > 4 ? " org " : "");
        if (kl == 4) return;
        k += 4;
        kl -= 4;
    }
    quote(k, kl, out + n, cap - n);
}

int st_corrupt(const struct store *s, int db, const void *k, size_t kl, const char *why,
               char *err, size_t errlen) {
    char kt[KEYTEXT_MAX];
    st_key_text(db, k, kl, kt, sizeof(kt));
    st_fail(err, errlen, "corrupt store %s: db %s key %s: %s", s->path, st_db_names[db], kt, why);
    return STORE_ECORRUPT;
}

int st_corrupt_skip(struct store *s, int rc, const char *err) {
    if (rc != STORE_ECORRUPT || !s->corrupt_fn) return 0;
    s->corrupt_fn(s->corrupt_arg, err);
    return 1;
}

void store_set_corrupt_hook(struct store *s, store_corrupt_fn fn, void *arg) {
    assert(s->readonly);  /* a writer must never skip what it cannot read */
    s->corrupt_fn = fn;
    s->corrupt_arg = arg;
}

/* ---- LMDB helpers ------------------------------------------------------ */

int st_db_get(struct store *s, MDB_txn *t, int db, const void *k, size_t kl, MDB_val *v,
              char *err, size_t errlen) {
    MDB_val key = { kl, (void *)k };
    int rc = mdb_get(t, s->dbi[db], &key, v);
    if (rc == MDB_NOTFOUND) return STORE_NOTFOUND;
    if (rc) return st_lmdb_fail(s, rc, "get", st_db_names[db], err, errlen);
    return 0;
}

int st_db_put(struct store *s, int db, const void *k, size_t kl, const void *v, size_t vl,
              char *err, size_t errlen) {
    MDB_val key = { kl, (void *)k }, val = { vl, (void *)v };
    assert(s->txn && kl > 0 && kl <= 511 && vl >= 1);
    assert(((const uint8_t *)v)[0] == STORE_FORMAT_VERSION);
    int rc = mdb_put(s->txn, s->dbi[db], &key, &val, 0);
    if (rc) return st_lmdb_fail(s, rc, "put", st_db_names[db], err, errlen);
    return s->capture ? st_change_note(s, db, k, kl, err, errlen) : 0;
}

int st_db_del(struct store *s, int db, const void *k, size_t kl, char *err, size_t errlen) {
    MDB_val key = { kl, (void *)k };
    assert(s->txn && kl > 0 && kl <= 511);
    int rc = mdb_del(s->txn, s->dbi[db], &key, NULL);
    if (rc == MDB_NOTFOUND) return 0;
    if (rc) return st_lmdb_fail(s, rc, "delete", st_db_names[db], err, errlen);
    return s->capture ? st_change_note(s, db, k, kl, err, errlen) : 0;
}

int st_cursor_open(struct store *s, MDB_txn *t, int db, MDB_cursor **c, char *err, size_t errlen) {
    int rc = mdb_cursor_open(t, s->dbi[db], c);
    return rc ? st_lmdb_fail(s, rc, "cursor on", st_db_names[db], err, errlen) : 0;
}

int st_rtxn_begin(struct store *s, MDB_txn **t, int *own, char *err, size_t errlen) {
    *own = 0;
    if (s->txn) { *t = s->txn; return 0; }
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, t);
    if (rc == MDB_MAP_RESIZED) { /* the writer grew the map */
        rc = st_set_mapsize(s, 0);
        if (!rc) rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, t);
    }
    if (rc) return st_fail(err, errlen, "store %s: begin read txn: %s", s->path, mdb_strerror(rc));
    *own = 1;
    return 0;
}
void st_rtxn_end(MDB_txn *t, int own) { if (own) mdb_txn_abort(t); }

int st_set_mapsize(struct store *s, size_t size) {
    int rc = pthread_rwlock_wrlock(&s->map_lock);
    assert(rc == 0);  /* EDEADLK: this thread holds a view (a programmer error) */
    rc = mdb_env_set_mapsize(s->env, size);
    pthread_rwlock_unlock(&s->map_lock);
    return rc;
}

static int grow_map(struct store *s) {
    MDB_envinfo info;
    assert(!s->txn);
    int rc = mdb_env_info(s->env, &info);
    if (!rc) rc = st_set_mapsize(s, info.me_mapsize * 2);
    if (!rc) s->grow_pending = 0;
    return rc;
}

/* ---- counters, meta strings -------------------------------------------- */

/* Missing counters are zero. */
static int counters_read(struct store *s, MDB_txn *t, struct store_counters *c, char *err, size_t errlen) {
    char why[ST_WHY_MAX];
    MDB_val v;
    memset(c, 0, sizeof(*c));
    int rc = st_db_get(s, t, DB_META, MK_COUNTERS, strlen(MK_COUNTERS), &v, err, errlen);
    if (rc) return rc < 0 ? rc : 0;
    if (st_dec_counters(&v, c, why, sizeof(why)) == 0) return 0;
    memset(c, 0, sizeof(*c));
    return st_corrupt(s, DB_META, MK_COUNTERS, strlen(MK_COUNTERS), why, err, errlen);
}

int store_counters_add(struct store *s, const struct store_counters *delta, char *err, size_t errlen) {
    struct store_counters c;
    uint8_t buf[1 + 24];
    assert(s->txn);
    int rc = counters_read(s, s->txn, &c, err, errlen);
    if (rc) return rc;
    c.applied += delta->applied;
    c.duplicates += delta->duplicates;
    c.rejected += delta->rejected;
    size_t n = st_enc_counters(buf, sizeof(buf), &c);
    return st_pub_rc(s, st_db_put(s, DB_META, MK_COUNTERS, strlen(MK_COUNTERS), buf, n, err, errlen));
}

#define META_VAL_MAX 1024

static size_t user_key(char *k, const char *name) {
    size_t n = strlen(name), p = strlen(MK_USER);
    assert(n > 0 && n <= NAME_MAX_B);
    memcpy(k, MK_USER, p);
    memcpy(k + p, name, n);
    return p + n;
}

int store_meta_get(struct store *s, const char *name, char *val, size_t vallen, char *err, size_t errlen) {
    char k[sizeof(MK_USER) + NAME_MAX_B], why[ST_WHY_MAX];
    const char *p;
    size_t n, kl = user_key(k, name);
    MDB_txn *t;
    MDB_val v;
    int own;
    int rc = st_rtxn_begin(s, &t, &own, err, errlen);
    if (rc) return rc;
    rc = st_db_get(s, t, DB_META, k, kl, &v, err, errlen);
    if (rc == 0 && st_dec_text(&v, &p, &n, why, sizeof(why)))
        rc = st_corrupt(s, DB_META, k, kl, why, err, errlen);
    else if (rc == 0 && n >= vallen)
        rc = st_fail(err, errlen, "store %s: meta %s: value of %zu bytes does not fit in %zu",
                     s->path, name, n, vallen);
    else if (rc == 0) {
        memcpy(val, p, n);
        val[n] = 0;
    }
    st_rtxn_end(t, own);
    return rc;
}

int store_meta_put(struct store *s, const char *name, const char *val, char *err, size_t errlen) {
    char k[sizeof(MK_USER) + NAME_MAX_B];
    uint8_t buf[1 + META_VAL_MAX];
    size_t n = strlen(val);
    assert(s->txn);
    if (n > META_VAL_MAX)
        return st_fail(err, errlen, "store %s: meta %s: value of %zu bytes (max %d)", s->path, name, n,
                       META_VAL_MAX);
    size_t vn = st_enc_bytes(buf, sizeof(buf), val, n);
    return st_pub_rc(s, st_db_put(s, DB_META, k, user_key(k, name), buf, vn, err, errlen));
}

/* ---- open / close ------------------------------------------------------ */

static int mkdir_p(const char *path, char *err, size_t errlen) {
    char tmp[PATH_MAX];
    struct stat st;
    size_t n = strlen(path);
    assert(n > 0 && n < sizeof(tmp));
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; ; p++) {
        if (*p != '/' && *p != 0) continue;
        char c = *p;
        *p = 0;
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
            return st_fail(err, errlen, "store %s: mkdir %s: %s", path, tmp, strerror(errno));
        *p = c;
        if (!c) break;
    }
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return st_fail(err, errlen, "store %s: not a directory", path);
    return 0;
}

static int data_file(const struct store *s, char *buf, size_t len) {
    int n = snprintf(buf, len, "%s/data.mdb", s->path);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

#define LOCK_FILE "writer.lock"

/* The pid a writer wrote into the lock file, as text ("?" if unreadable). */
static void lock_holder(int fd, char *pid, size_t len) {
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    long v = 0;
    int used = 0;
    if (n > 0) {
        buf[n] = 0;
        if (sscanf(buf, "%ld%n", &v, &used) == 1 && v > 0 && (buf[used] == '\n' || buf[used] == 0)) {
            snprintf(pid, len, "%ld", v);
            return;
        }
    }
    snprintf(pid, len, "?");
}

/* One writer per store: an exclusive, non-blocking flock on DIR/writer.lock,
 * held through s->lock_fd until store_close.  flock locks belong to the open
 * file description, so a second open in the same process is refused too. */
static int writer_lock(struct store *s, char *err, size_t errlen) {
    char f[PATH_MAX + 16], pid[24];
    int n = snprintf(f, sizeof(f), "%s/" LOCK_FILE, s->path);
    if (n < 0 || (size_t)n >= sizeof(f)) return st_fail(err, errlen, "store %s: path too long", s->path);
    int fd = open(f, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return st_fail(err, errlen, "store %s: open %s: %s", s->path, f, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        lock_holder(fd, pid, sizeof(pid));
        close(fd);
        if (e != EWOULDBLOCK) return st_fail(err, errlen, "store %s: lock %s: %s", s->path, f, strerror(e));
        st_fail(err, errlen, "store %s is already open for writing (pid %s holds %s): refusing "
                "a second writer; read-only tools still work", s->path, pid, f);
        return STORE_ELOCKED;
    }
    n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
        int e = errno;
        close(fd);
        return st_fail(err, errlen, "store %s: write %s: %s", s->path, f, strerror(e));
    }
    s->lock_fd = fd;
    return 0;
}

static int env_open(struct store *s, const struct store_opts *o, char *err, size_t errlen) {
    /* Writers map the file writable (MDB_WRITEMAP): a batch's dirty pages are
     * the file's own pages in the page cache, not malloc'd copies, so the
     * writer's private memory does not grow with what one batch writes (one
     * far clock.tick can put millions of outputs in the outbox).  Pages are
     * still copy-on-write (a crash leaves the last commit intact) and a
     * commit is msync'd before its meta page.  Every writer opens through
     * here, so writers never mix with and without the flag; readers are
     * MDB_RDONLY, which ignores it. */
    unsigned flags = MDB_NORDAHEAD | (o->readonly ? MDB_RDONLY : MDB_WRITEMAP) |
                     (o->nosync ? MDB_NOSYNC : 0);
    char f[PATH_MAX + 16];
    struct stat st;
    if (o->readonly && (data_file(s, f, sizeof(f)) || stat(f, &st) != 0))
        return st_fail(err, errlen, "store %s: no store there (%s: %s)", s->path, f, strerror(errno));
    int rc = mdb_env_create(&s->env);
    if (rc) {
        s->env = NULL;
        return st_fail(err, errlen, "store %s: create LMDB env: %s", s->path, mdb_strerror(rc));
    }
    rc = mdb_env_set_maxdbs(s->env, DB_COUNT);
    if (!rc && !o->readonly) {
        size_t map = o->map_size ? o->map_size : DEFAULT_MAP_SIZE;
        map = (map + 65535) & ~(size_t)65535;  /* a multiple of any page size */
        rc = mdb_env_set_mapsize(s->env, map);
    }
    if (!rc) rc = mdb_env_open(s->env, s->path, flags, 0600);
    if (rc) return st_fail(err, errlen, "store %s: open LMDB env: %s", s->path, mdb_strerror(rc));
    if (!o->readonly) {
        int dead; /* slots of crashed readers would pin old pages */
        rc = mdb_reader_check(s->env, &dead);
        if (rc) return st_fail(err, errlen, "store %s: clearing stale readers: %s", s->path, mdb_strerror(rc));
    }
    return 0;
}

/* A new store records the format and the result-changing config. */
static int meta_create(struct store *s, const struct store_opts *o, char *err, size_t errlen) {
    uint8_t buf[1 + 32];
    size_t n = st_enc_bytes(buf, sizeof(buf), NULL, 0);
    int rc = st_db_put(s, DB_META, MK_FORMAT, strlen(MK_FORMAT), buf, n, err, errlen);
    n = st_enc_i64(buf, sizeof(buf), o->close_after_s);
    if (!rc) rc = st_db_put(s, DB_META, MK_CLOSE, strlen(MK_CLOSE), buf, n, err, errlen);
    n = st_enc_i64(buf, sizeof(buf), o->max_future_s);
    if (!rc) rc = st_db_put(s, DB_META, MK_FUTURE, strlen(MK_FUTURE), buf, n, err, errlen);
    n = st_enc_i64(buf, sizeof(buf), o->retention_days);
    if (!rc) rc = st_db_put(s, DB_META, MK_RETENTION, strlen(MK_RETENTION), buf, n, err, errlen);
    n = st_enc_bytes(buf, sizeof(buf), o->currency, strlen(o->currency));
    if (!rc) rc = st_db_put(s, DB_META, MK_CURRENCY, strlen(MK_CURRENCY), buf, n, err, errlen);
    return rc;
}

/* close_after recorded in t; a missing record is an error. */
static int meta_close_after(struct store *s, MDB_txn *t, int64_t *close_after, char *err, size_t errlen) {
    char why[ST_WHY_MAX];
    MDB_val v;
    *close_after = 0;
    int rc = st_db_get(s, t, DB_META, MK_CLOSE, strlen(MK_CLOSE), &v, err, errlen);
    if (rc == STORE_NOTFOUND) return st_fail(err, errlen, "store %s: meta close_after missing", s->path);
    if (rc) return rc;
    if (st_dec_i64(&v, close_after, 0, why, sizeof(why)) == 0) return 0;
    *close_after = 0;
    return st_corrupt(s, DB_META, MK_CLOSE, strlen(MK_CLOSE), why, err, errlen);
}

/* max_future recorded in t.  Stores of format 2 made before the guards
 * (v1.3 §11) lack the record: refused, never read as some default. */
static int meta_max_future(struct store *s, MDB_txn *t, int64_t *max_future, char *err, size_t errlen) {
    char why[ST_WHY_MAX];
    MDB_val v;
    *max_future = 0;
    int rc = st_db_get(s, t, DB_META, MK_FUTURE, strlen(MK_FUTURE), &v, err, errlen);
    if (rc == STORE_NOTFOUND)
        return st_fail(err, errlen,
                       "store %s has no max_future record (it was made before the time guard): "
                       "rebuild it by replaying the input into a new store (credit-replay --db "
                       "NEWDIR FILE..., or --from-kafka), then point creditd at NEWDIR", s->path);
    if (rc) return rc;
    if (st_dec_i64(&v, max_future, 0, why, sizeof(why)) == 0) return 0;
    *max_future = 0;
    return st_corrupt(s, DB_META, MK_FUTURE, strlen(MK_FUTURE), why, err, errlen);
}

/* retention_days recorded in t (§14); a format-3 store always has it, so a
 * missing record is corruption, never read as a default. */
static int meta_retention(struct store *s, MDB_txn *t, int64_t *days, char *err, size_t errlen) {
    char why[ST_WHY_MAX];
    MDB_val v;
    *days = 0;
    int rc = st_db_get(s, t, DB_META, MK_RETENTION, strlen(MK_RETENTION), &v, err, errlen);
    if (rc == STORE_NOTFOUND)
        return st_corrupt(s, DB_META, MK_RETENTION, strlen(MK_RETENTION), "record missing", err,
                          errlen);
    if (rc) return rc;
    if (st_dec_i64(&v, days, 0, why, sizeof(why)) == 0 && *days <= STORE_RETENTION_DAYS_MAX)
        return 0;
    if (*days > STORE_RETENTION_DAYS_MAX)
        snprintf(why, sizeof(why), "%lld days (0..%d)", (long long)*days, STORE_RETENTION_DAYS_MAX);
    *days = 0;
    return st_corrupt(s, DB_META, MK_RETENTION, strlen(MK_RETENTION), why, err, errlen);
}

/* currency recorded in t; a missing record is an error. */
static int meta_currency(struct store *s, MDB_txn *t, char cur[32], char *err, size_t errlen) {
    char why[ST_WHY_MAX];
    const char *p;
    size_t n;
    MDB_val v;
    cur[0] = 0;
    int rc = st_db_get(s, t, DB_META, MK_CURRENCY, strlen(MK_CURRENCY), &v, err, errlen);
    if (rc == STORE_NOTFOUND) return st_fail(err, errlen, "store %s: meta currency missing", s->path);
    if (rc) return rc;
    if (st_dec_text(&v, &p, &n, why, sizeof(why)) == 0) {
        if (n < 32) {
            memcpy(cur, p, n);
            cur[n] = 0;
            return 0;
        }
        snprintf(why, sizeof(why), "currency of %zu bytes (at most 31)", n);
    }
    return st_corrupt(s, DB_META, MK_CURRENCY, strlen(MK_CURRENCY), why, err, errlen);
}

/* retention_days recorded in t, into s->retention_ns (writers and
 * readers: the writer removes what it makes expire). */
static int meta_load_retention(struct store *s, MDB_txn *t, int64_t *days, char *err, size_t errlen) {
    int rc = meta_retention(s, t, days, err, errlen);
    if (!rc) s->retention_ns = *days * INT64_C(86400) * INT64_C(1000000000);
    return rc;
}

static int meta_check(struct store *s, MDB_txn *t, const struct store_opts *o, char *err, size_t errlen) {
    int64_t close_after, max_future, retention;
    char cur[32];
    MDB_val v;
    int rc = st_db_get(s, t, DB_META, MK_FORMAT, strlen(MK_FORMAT), &v, err, errlen);
    if (rc < 0) return rc;
    if (rc == STORE_NOTFOUND) {
        if (s->readonly) return st_fail(err, errlen, "store %s: not initialised (no format record)", s->path);
        rc = meta_create(s, o, err, errlen);
        return rc ? rc : meta_load_retention(s, t, &retention, err, errlen);
    }
    const uint8_t *p = v.mv_data;
    if (v.mv_size != 1 || p[0] != STORE_FORMAT_VERSION) {
        st_fail(err, errlen,
                "store %s has format %u, this build reads format %d: rebuild it by replaying the "
                "input into a new store (credit-replay --db NEWDIR FILE..., or --from-kafka), "
                "then point creditd at NEWDIR",
                s->path, v.mv_size ? p[0] : 0u, STORE_FORMAT_VERSION);
        return STORE_EMISMATCH;
    }
    if ((rc = meta_load_retention(s, t, &retention, err, errlen)) != 0) return rc;
    if (!o->currency) return 0;
    if ((rc = meta_close_after(s, t, &close_after, err, errlen)) != 0 ||
        (rc = meta_max_future(s, t, &max_future, err, errlen)) != 0 ||
        (rc = meta_currency(s, t, cur, err, errlen)) != 0)
        return rc;
    if (close_after != o->close_after_s) {
        st_fail(err, errlen, "store %s was created with close_after=%lld, config says %lld", s->path,
                (long long)close_after, (long long)o->close_after_s);
        return STORE_EMISMATCH;
    }
    if (max_future != o->max_future_s) {
        st_fail(err, errlen, "store %s was created with max_future=%lld, config says %lld", s->path,
                (long long)max_future, (long long)o->max_future_s);
        return STORE_EMISMATCH;
    }
    if (retention != o->retention_days) {
        st_fail(err, errlen, "store %s was created with retention_days=%lld, config says %lld",
                s->path, (long long)retention, (long long)o->retention_days);
        return STORE_EMISMATCH;
    }
    if (strcmp(cur, o->currency) != 0) {
        st_fail(err, errlen, "store %s was created with currency=%s, config says %s", s->path, cur,
                o->currency);
        return STORE_EMISMATCH;
    }
    return 0;
}

/* Open (or create) the named DBs and check or record meta, in one txn. */
static int dbs_open(struct store *s, const struct store_opts *o, char *err, size_t errlen) {
    MDB_txn *t;
    int rc = mdb_txn_begin(s->env, NULL, s->readonly ? MDB_RDONLY : 0, &t);
    if (rc) return st_lmdb_fail(s, rc, "begin", "setup txn", err, errlen);
    for (int i = 0; !rc && i < DB_COUNT; i++) {
        rc = mdb_dbi_open(t, st_db_names[i], s->readonly ? 0 : MDB_CREATE, &s->dbi[i]);
        if (rc == MDB_NOTFOUND && i >= DB_FIRST_OPTIONAL) {  /* store_int.h */
            s->absent |= 1u << i;
            rc = 0;
        } else if (rc == MDB_NOTFOUND)
            rc = st_fail(err, errlen, "store %s: not a creditd store (database %s missing)", s->path,
                         st_db_names[i]);
        else if (rc)
            rc = st_lmdb_fail(s, rc, "open database", st_db_names[i], err, errlen);
    }
    if (!rc) {
        if (!s->readonly) s->txn = t;
        rc = meta_check(s, t, o, err, errlen);
        s->txn = NULL;
    }
    if (rc) {
        mdb_txn_abort(t);
        return rc;
    }
    rc = mdb_txn_commit(t);  /* also for the read txn: keeps the DB handles */
    return rc ? st_lmdb_fail(s, rc, "commit", "setup txn", err, errlen) : 0;
}

/* Writer-preferring: once growth waits, new views wait behind it (glibc's
 * default prefers readers, and steady HTTP load would starve growth). */
static int map_lock_init(struct store *s, char *err, size_t errlen) {
    pthread_rwlockattr_t a;
    int rc = pthread_rwlockattr_init(&a);
    if (!rc) rc = pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    if (!rc) rc = pthread_rwlock_init(&s->map_lock, &a);
    pthread_rwlockattr_destroy(&a);
    if (rc) return st_fail(err, errlen, "store %s: map lock: %s", s->path, strerror(rc));
    s->map_lock_ok = 1;
    return 0;
}

int store_open(struct store **out, const struct store_opts *o, char *err, size_t errlen) {
    *out = NULL;
    assert(o && o->path && (o->readonly || o->currency));
    if (o->currency && strlen(o->currency) >= 32)
        return st_fail(err, errlen, "store %s: currency '%s' too long", o->path, o->currency);
    if (o->currency && o->close_after_s < 0)
        return st_fail(err, errlen, "store %s: close_after %lld < 0", o->path, (long long)o->close_after_s);
    if (o->currency && o->max_future_s < 0)
        return st_fail(err, errlen, "store %s: max_future %lld < 0", o->path, (long long)o->max_future_s);
    if (o->currency && (o->retention_days < 0 || o->retention_days > STORE_RETENTION_DAYS_MAX))
        return st_fail(err, errlen, "store %s: retention_days %lld outside 0..%d", o->path,
                       (long long)o->retention_days, STORE_RETENTION_DAYS_MAX);
    if (strlen(o->path) == 0 || strlen(o->path) >= PATH_MAX)
        return st_fail(err, errlen, "store: bad path '%s'", o->path);
    struct store *s = calloc(1, sizeof(*s));
    if (!s) return st_fail(err, errlen, "store %s: out of memory", o->path);
    strcpy(s->path, o->path);
    s->readonly = o->readonly;
    s->lock_fd = -1;
    s->cap_part = -1;
    int rc = map_lock_init(s, err, errlen);
    if (!rc && !o->readonly) rc = mkdir_p(s->path, err, errlen);
    if (!rc && !o->readonly) rc = writer_lock(s, err, errlen);  /* before LMDB opens anything */
    if (!rc) rc = env_open(s, o, err, errlen);
    if (!rc) rc = dbs_open(s, o, err, errlen);
    if (!rc && !o->readonly && !o->no_cache)
        rc = st_cache_open(s, o->cache_bytes ? o->cache_bytes : STORE_CACHE_DEFAULT, err, errlen);
    if (rc) {
        store_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

void store_close(struct store *s) {
    if (!s) return;
    if (s->txn) mdb_txn_abort(s->txn);
    if (s->env) mdb_env_close(s->env);
    if (s->lock_fd >= 0) close(s->lock_fd);  /* releases the writer lock */
    if (s->map_lock_ok) pthread_rwlock_destroy(&s->map_lock);
    st_cache_close(s);
    free(s->sweep_parts);
    free(s);
}

/* ---- batch transaction ------------------------------------------------- */

int store_begin(struct store *s, char *err, size_t errlen) {
    assert(!s->txn);
    if (s->readonly) return st_fail(err, errlen, "store %s: opened readonly", s->path);
    s->map_full = 0;
    s->out_valid = s->out_dirty = 0;
    s->dd_new = 0;
    st_changes_txn_reset(s);
    int rc = s->grow_pending ? grow_map(s) : 0;
    if (rc) return st_fail(err, errlen, "store %s: growing the map: %s", s->path, mdb_strerror(rc));
    rc = mdb_txn_begin(s->env, NULL, 0, &s->txn);
    if (rc == MDB_MAP_RESIZED) {
        rc = st_set_mapsize(s, 0);
        if (!rc) rc = mdb_txn_begin(s->env, NULL, 0, &s->txn);
    }
    if (rc) {
        s->txn = NULL;
        return st_fail(err, errlen, "store %s: begin write txn: %s", s->path, mdb_strerror(rc));
    }
    return 0;
}

void store_abort(struct store *s) {
    st_cache_drop(s);  /* its dirty entries were the batch's */
    if (s->txn) mdb_txn_abort(s->txn);
    s->txn = NULL;
    s->dd_new = 0;
    s->out_valid = s->out_dirty = 0;
    st_changes_txn_reset(s);
    if (s->grow_pending) grow_map(s);  /* on failure store_begin retries and reports */
}

int store_commit(struct store *s, char *err, size_t errlen) {
    assert(s->txn);
    /* The cached orgs the batch changed, then (§14) expired keys in
     * bounded work per batch (store.h), unless store_sweep did it already
     * in this txn. */
    int xrc = s->map_full ? 0 : st_cache_flush(s, err, errlen);
    if (!xrc && !s->map_full && s->out_dirty) xrc = st_outbox_flush(s, err, errlen);
    if (!xrc) xrc = s->map_full || s->swept ? 0 : st_sweep(s, err, errlen);
    if (xrc && !s->map_full) {
        store_abort(s);
        return xrc;
    }
    s->dd_new = 0;
    s->dd_removed = s->dd_txn_removed;
    if (s->map_full) {
        store_abort(s);
        st_fail(err, errlen, "store %s: map was full: batch discarded, map grown, retry it", s->path);
        return STORE_EMAPFULL;
    }
    int rc = mdb_txn_commit(s->txn);  /* frees the txn, also on failure */
    s->txn = NULL;
    s->out_valid = s->out_dirty = 0;
    if (rc) st_cache_drop(s);  /* it holds the lost batch's writes as written */
    if (rc == MDB_MAP_FULL) {
        s->map_full = 1;
        s->grow_pending = 1;
        grow_map(s);
        st_fail(err, errlen, "store %s: commit: map full: batch discarded, map grown, retry it", s->path);
        return STORE_EMAPFULL;
    }
    return rc ? st_lmdb_fail(s, rc, "commit", "batch", err, errlen) : 0;
}

int store_map_full(const struct store *s) { return s->map_full; }

uint64_t store_last_removed(const struct store *s) { return s->dd_removed; }

void store_set_emit_hook(struct store *s, store_emit_fn fn, void *arg) {
    s->emit_fn = fn;
    s->emit_arg = arg;
}

/* ---- the engine's view (state.h) ----------------------------------------- */

/* The engine has its own result codes: a STORE_* value never crosses this
 * boundary as is (STORE_EMAPFULL, 2, would read as a positive "handled"
 * answer).  NOTFOUND is an answer of the three lookups only; every other
 * failure, whatever its STORE_* code, is ENG_ESTORE with err set (a full map
 * is also flagged for store_map_full, which callers use to grow and retry). */
static int to_eng(int rc, int lookup, char *err, size_t errlen) {
    if (rc == STORE_OK) return ENG_OK;
    if (rc == STORE_NOTFOUND && lookup) return ENG_NOTFOUND;
    if (rc == STORE_NOTFOUND) st_fail(err, errlen, "store: unexpected not-found");
    return ENG_ESTORE;
}
_Static_assert(ENG_OK == 0 && STORE_OK == 0, "success is 0 in both: callers test `if (rc)`");
_Static_assert(ENG_ESTORE < 0 && ENG_NOTFOUND > 0, "to_eng: ENG_* as state.h defines them");

static int eng_org_get(void *ctx, const char *id, struct eng_org *out, char *err, size_t errlen) {
    return to_eng(st_org_get(ctx, id, out, err, errlen), 1, err, errlen);
}
static int eng_project_get(void *ctx, const char *org, const char *project,
                           struct eng_project *out, char *err, size_t errlen) {
    return to_eng(st_project_get(ctx, org, project, out, err, errlen), 1, err, errlen);
}
static int eng_projects_get(void *ctx, const char *org, struct eng_org *out, char *err,
                            size_t errlen) {
    return to_eng(st_projects_get(ctx, org, out, err, errlen), 0, err, errlen);
}
static int eng_org_put(void *ctx, const struct eng_org *o, char *err, size_t errlen) {
    return to_eng(st_org_put(ctx, o, err, errlen), 0, err, errlen);
}
/* cb is the engine's: its result is already an engine code and passes as is. */
static int eng_orgs_on_partition(void *ctx, int32_t partition, int (*cb)(void *arg, const char *org),
                                 void *arg, char *err, size_t errlen) {
    int cbrc, rc = st_orgs_on_partition(ctx, partition, cb, arg, &cbrc, err, errlen);
    return rc ? to_eng(rc, 0, err, errlen) : cbrc;
}
static int eng_clock_get(void *ctx, int32_t partition, int64_t *ns, char *err, size_t errlen) {
    return to_eng(st_clock_get(ctx, partition, ns, err, errlen), 1, err, errlen);
}
static int eng_clock_put(void *ctx, int32_t partition, int64_t ns, char *err, size_t errlen) {
    return to_eng(st_clock_put(ctx, partition, ns, err, errlen), 0, err, errlen);
}
static int eng_dedupe_get(void *ctx, const uint8_t *key, size_t klen, struct eng_dedupe *out,
                          char *err, size_t errlen) {
    return to_eng(st_dedupe_get(ctx, key, klen, out, err, errlen), 1, err, errlen);
}
static int eng_dedupe_put(void *ctx, const uint8_t *key, size_t klen, const struct eng_dedupe *rec,
                          char *err, size_t errlen) {
    return to_eng(st_dedupe_put(ctx, key, klen, rec, err, errlen), 0, err, errlen);
}
static int eng_emit(void *ctx, enum eng_out_kind kind, const char *key, const char *json, size_t len,
                    char *err, size_t errlen) {
    return to_eng(st_emit(ctx, kind, key, json, len, err, errlen), 0, err, errlen);
}

void store_engine_ops(struct store *s, struct engine_store *ops) {
    ops->ctx = s;
    ops->org_get = eng_org_get;
    ops->org_put = eng_org_put;
    ops->project_get = eng_project_get;
    ops->projects_get = eng_projects_get;
    ops->orgs_on_partition = eng_orgs_on_partition;
    ops->clock_get = eng_clock_get;
    ops->clock_put = eng_clock_put;
    ops->dedupe_get = eng_dedupe_get;
    ops->dedupe_put = eng_dedupe_put;
    ops->emit = eng_emit;
}

/* ---- stats, dump -------------------------------------------------------- */

static int stats_txn(struct store *s, MDB_txn *t, struct store_stats *st, char *err, size_t errlen) {
    MDB_envinfo info;
    MDB_stat ms;
    char f[PATH_MAX + 16];
    struct stat fst;
    for (int i = 0; i < DB_COUNT; i++) {
        int rc = (s->absent >> i) & 1 ? 0 : mdb_stat(t, s->dbi[i], &ms);
        if (rc) return st_lmdb_fail(s, rc, "stat", st_db_names[i], err, errlen);
        st->db[i].name = st_db_names[i];
        st->db[i].entries = (s->absent >> i) & 1 ? 0 : ms.ms_entries;
    }
    st->ndb = DB_COUNT;
    int rc = mdb_env_info(s->env, &info);
    if (!rc) rc = mdb_env_stat(s->env, &ms);
    if (rc) return st_lmdb_fail(s, rc, "stat", "env", err, errlen);
    st->map_size = info.me_mapsize;
    st->used_bytes = (uint64_t)(info.me_last_pgno + 1) * ms.ms_psize;
    if (data_file(s, f, sizeof(f)) || stat(f, &fst) != 0)
        return st_fail(err, errlen, "store %s: stat data.mdb: %s", s->path, strerror(errno));
    /* Blocks in use: with MDB_WRITEMAP the file's apparent size is the map. */
    st->file_bytes = (uint64_t)fst.st_blocks * 512;
    rc = counters_read(s, t, &st->counters, err, errlen);
    if (st_corrupt_skip(s, rc, err)) rc = 0;
    if (!rc) rc = meta_close_after(s, t, &st->close_after_s, err, errlen);
    if (st_corrupt_skip(s, rc, err)) rc = 0;
    if (!rc) rc = meta_max_future(s, t, &st->max_future_s, err, errlen);
    if (st_corrupt_skip(s, rc, err)) rc = 0;
    if (!rc) rc = meta_retention(s, t, &st->retention_days, err, errlen);
    if (st_corrupt_skip(s, rc, err)) rc = 0;
    if (!rc) rc = meta_currency(s, t, st->currency, err, errlen);
    if (st_corrupt_skip(s, rc, err)) rc = 0;
    if (!rc) rc = st_dedupe_oldest(s, t, &st->oldest_key_time, err, errlen);
    if (st_corrupt_skip(s, rc, err)) rc = 0;
    return rc;
}

int store_stats(struct store *s, struct store_stats *st, char *err, size_t errlen) {
    MDB_txn *t;
    int own;
    _Static_assert(DB_COUNT <= sizeof(st->db) / sizeof(st->db[0]), "stats db slots");
    memset(st, 0, sizeof(*st));
    int rc = s->txn ? st_cache_flush(s, err, errlen) : 0;
    if (!rc) rc = st_rtxn_begin(s, &t, &own, err, errlen);
    if (rc) return st_pub_rc(s, rc);
    rc = stats_txn(s, t, st, err, errlen);
    st_rtxn_end(t, own);
    return rc;
}

static int dump_db(struct store *s, MDB_txn *t, int db, store_dump_cb cb, void *arg,
                   char *err, size_t errlen) {
    MDB_cursor *c;
    MDB_val k, v;
    int rc = st_cursor_open(s, t, db, &c, err, errlen);
    if (rc) return rc;
    int mrc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (mrc == 0) {
        rc = cb(arg, st_db_names[db], k.mv_data, k.mv_size, v.mv_data, v.mv_size);
        if (rc) break;
        mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    if (!rc && mrc != 0 && mrc != MDB_NOTFOUND)
        rc = st_lmdb_fail(s, mrc, "read", st_db_names[db], err, errlen);
    return rc;
}

int store_dump(struct store *s, store_dump_cb cb, void *arg, char *err, size_t errlen) {
    MDB_txn *t;
    int own;
    int rc = s->txn ? st_cache_flush(s, err, errlen) : 0;
    if (!rc) rc = st_rtxn_begin(s, &t, &own, err, errlen);
    if (rc) return rc;
    for (int i = 0; !rc && i < DB_COUNT; i++)
        if (!((s->absent >> i) & 1)) rc = dump_db(s, t, i, cb, arg, err, errlen);
    st_rtxn_end(t, own);
    return rc;
}
