/* tmpdir.h -- the unit tests' scratch directories: removed whole, files and
 * subdirectories (stores), at teardown.  Header only, static. */
#ifndef CREDITD_TESTS_TMPDIR_H
#define CREDITD_TESTS_TMPDIR_H

#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>

static int tmpdir_rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st; (void)flag; (void)ftw;
    return remove(p);
}

/* Remove dir and everything below it (errors ignored: a teardown). */
static inline void tmpdir_rm(const char *dir) { nftw(dir, tmpdir_rm_one, 16, FTW_DEPTH | FTW_PHYS); }

#endif
