/* dualstore.c -- see dualstore.h. */
#include "tests/unit/dualstore.h"
#include "tests/unit/tmpdir.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void dualstore_open(struct dualstore *d, int lmdb, const char *tag, const struct engine_config *cfg) {
    char err[512];
    struct engine_config def = {.close_after_s = 0, .currency = "EUR"};
    memset(d, 0, sizeof(*d));
    d->lmdb = lmdb;
    if (lmdb) {
        snprintf(d->dir, sizeof(d->dir), "/tmp/%.40s.XXXXXX", tag);
        assert_non_null(mkdtemp(d->dir));
        struct store_opts o = {.path = d->dir, .nosync = 1, .currency = "EUR"};
        if (cfg) {
            o.close_after_s = cfg->close_after_s;
            o.max_future_s = cfg->max_future_s;
        }
        if (store_open(&d->s, &o, err, sizeof(err)) != STORE_OK) fail_msg("store_open: %s", err);
        store_engine_ops(d->s, &d->ops);
    } else {
        memstore_init(&d->ms);
        memstore_ops(&d->ms, &d->ops);
    }
    if (engine_new(&d->e, cfg ? cfg : &def, err, sizeof(err))) fail_msg("engine_new: %s", err);
}

void dualstore_close(struct dualstore *d) {
    engine_free(d->e);
    if (d->lmdb) {
        store_close(d->s);
        tmpdir_rm(d->dir);
    } else {
        memstore_free(&d->ms);
    }
    memset(d, 0, sizeof(*d));
}

void dualstore_begin(struct dualstore *d) {
    char err[512];
    if (d->lmdb && store_begin(d->s, err, sizeof(err))) fail_msg("store_begin: %s", err);
}

void dualstore_commit(struct dualstore *d) {
    char err[512];
    if (d->lmdb && store_commit(d->s, err, sizeof(err))) fail_msg("store_commit: %s", err);
}

void dualstore_abort(struct dualstore *d) {
    if (d->lmdb) store_abort(d->s);
}
