/* memstore.h -- an in-memory implementation of the engine's store interface
 * (engine/state.h) for unit tests: no disk, no LMDB. */
#ifndef CREDITD_MEMSTORE_H
#define CREDITD_MEMSTORE_H

#include <stddef.h>

#include "engine/state.h"

struct memstore_out {
    enum eng_out_kind kind;
    char *key;
    char *json;
    size_t ord;        /* emission order over out and alerts */
};

struct memstore {
    struct eng_org *orgs;
    size_t norgs;
    int64_t clock[64];
    int has_clock[64];
    struct { uint8_t k[ENG_DKEY_MAX]; size_t n; struct eng_dedupe rec; } *dd;
    size_t ndd;
    struct memstore_out *out;
    size_t nout;
    /* split_alerts: credit.alert outputs go to alerts instead of out, so
     * tests of the other outputs index them as before; ord keeps the
     * order between the two lists. */
    int split_alerts;
    struct memstore_out *alerts;
    size_t nalerts, nemitted;
    long fail_after;   /* >= 0: the call after that many more calls fails with ENG_ESTORE */
    long project_gets, projects_gets;   /* calls, for tests of what an event loads */
};

void memstore_init(struct memstore *s);
void memstore_free(struct memstore *s);
void memstore_ops(struct memstore *s, struct engine_store *ops);
struct eng_org *memstore_org(struct memstore *s, const char *id);

#endif
