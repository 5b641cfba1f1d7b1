/* store_poke -- raw reads and writes of one record of a creditd store, past
 * the store's checks: the scenarios use it to forge corrupt records.  A test
 * tool only (it is the one program outside store/ that includes lmdb.h).
 *
 *   store-poke DIR get DB KEYHEX          print the value as hex
 *   store-poke DIR put DB KEYHEX VALHEX   write the value (VALHEX may be "")
 *   store-poke DIR del DB KEYHEX          delete the record
 *
 * Keys and values are hex (two digits a byte).  Exit 0 ok, 1 not found,
 * 2 usage or LMDB error.  Do not run it while a writer holds the store. */
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int unhex(const char *h, unsigned char **out, size_t *n) {
    size_t len = strlen(h);
    if (len % 2) return -1;
    *n = len / 2;
    *out = malloc(*n + 1);
    if (!*out) return -1;
    for (size_t i = 0; i < *n; i++) {
        unsigned v;
        if (sscanf(h + 2 * i, "%2x", &v) != 1) return -1;
        (*out)[i] = (unsigned char)v;
    }
    return 0;
}

static int lmdb_err(const char *what, int rc) {
    fprintf(stderr, "store-poke: %s: %s\n", what, mdb_strerror(rc));
    return 2;
}

int main(int argc, char **argv) {
    MDB_env *env;
    MDB_txn *t;
    MDB_dbi dbi;
    MDB_val k, v = { 0, NULL };
    unsigned char *kb, *vb = NULL;
    int get = argc > 2 && strcmp(argv[2], "get") == 0, del = argc > 2 && strcmp(argv[2], "del") == 0;
    int put = argc > 2 && strcmp(argv[2], "put") == 0;
    if (argc != (put ? 6 : 5) || !(get || del || put) || unhex(argv[4], &kb, &k.mv_size) ||
        (put && unhex(argv[5], &vb, &v.mv_size))) {
        fprintf(stderr, "usage: store-poke DIR get|put|del DB KEYHEX [VALHEX]\n");
        return 2;
    }
    k.mv_data = kb;
    v.mv_data = vb;
    int rc = mdb_env_create(&env);
    if (!rc) rc = mdb_env_set_maxdbs(env, 16);
    if (!rc) rc = mdb_env_open(env, argv[1], 0, 0600);
    if (!rc) rc = mdb_txn_begin(env, NULL, 0, &t);
    if (!rc) rc = mdb_dbi_open(t, argv[3], 0, &dbi);
    if (rc) return lmdb_err(argv[1], rc);
    if (get) rc = mdb_get(t, dbi, &k, &v);
    else if (del) rc = mdb_del(t, dbi, &k, NULL);
    else rc = mdb_put(t, dbi, &k, &v, 0);
    if (rc == MDB_NOTFOUND) return 1;
    if (rc) return lmdb_err(argv[2], rc);
    for (size_t i = 0; get && i < v.mv_size; i++) printf("%02x", ((unsigned char *)v.mv_data)[i]);
    if (get) putchar('\n');
    rc = mdb_txn_commit(t);
    if (rc) return lmdb_err("commit", rc);
    mdb_env_close(env);
    free(kb);
    free(vb);
    return 0;
}
