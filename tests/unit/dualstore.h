/* dualstore.h -- for unit tests: one engine over either the in-memory store
 * (memstore) or a fresh LMDB store in a temporary directory, so a test can
 * run the same case over both and compare. */
#ifndef CREDITD_DUALSTORE_H
#define CREDITD_DUALSTORE_H

#include "engine/engine.h"
#include "store/store.h"
#include "tests/unit/memstore.h"

struct dualstore {
    int lmdb;                  /* 0: ms, 1: s (LMDB in dir) */
    struct memstore ms;
    struct store *s;
    char dir[64];
    struct engine_store ops;   /* bound to the store in use */
    struct engine *e;
};

/* cfg NULL: close_after 0, currency EUR, no guard.  tag names the temporary
 * directory (/tmp/TAG.XXXXXX).  Fails the test on error. */
void dualstore_open(struct dualstore *d, int lmdb, const char *tag, const struct engine_config *cfg);
/* Frees everything and removes the directory. */
void dualstore_close(struct dualstore *d);
/* The batch transaction (no-ops over memstore); fail the test on error. */
void dualstore_begin(struct dualstore *d);
void dualstore_commit(struct dualstore *d);
void dualstore_abort(struct dualstore *d);

#endif
