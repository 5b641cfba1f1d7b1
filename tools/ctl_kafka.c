/* ctl_kafka -- creditctl --from-kafka; see ctl_kafka.h. */
#include "tools/ctl_kafka.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "consumer/changelog.h"
#include "consumer/kclient.h"
#include "store/store.h"

#define EXIT_USAGE 1
#define EXIT_STORE 2
#define ERRLEN     1024

/* SIGINT / SIGTERM: the restore stops (changelog_restore sees it). */
static volatile sig_atomic_t stop_flag;

static void on_signal(int sig) {
    (void)sig;
    stop_flag = 1;
}

static void catch_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
}

/* A fresh private directory under $TMPDIR (else /tmp). */
static int make_dir(char dir[CTLKAFKA_DIR_MAX]) {
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp) tmp = "/tmp";
    int n = snprintf(dir, CTLKAFKA_DIR_MAX, "%s/creditctl-from-kafka.XXXXXX", tmp);
    if (n < 0 || n >= CTLKAFKA_DIR_MAX) {
        fprintf(stderr, "creditctl: --from-kafka: TMPDIR %s: path too long\n", tmp);
        return -1;
    }
    if (mkdtemp(dir)) return 0;
    fprintf(stderr, "creditctl: --from-kafka: cannot make a directory under %s: %s\n", tmp,
            strerror(errno));
    return -1;
}

int ctlkafka_remove(const char *dir) {
    DIR *d = opendir(dir);
    int rc = 0;
    if (!d) {
        fprintf(stderr, "creditctl: --from-kafka: removing %s: %s\n", dir, strerror(errno));
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {   /* the store's files: no subdirectories */
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (unlinkat(dirfd(d), e->d_name, 0) != 0) {
            fprintf(stderr, "creditctl: --from-kafka: removing %s/%s: %s\n", dir, e->d_name,
                    strerror(errno));
            rc = -1;
        }
    }
    closedir(d);
    if (rc == 0 && rmdir(dir) != 0) {
        fprintf(stderr, "creditctl: --from-kafka: removing %s: %s\n", dir, strerror(errno));
        rc = -1;
    }
    return rc;
}

/* Every partition of the changelog into a new store at dir.  0 or EXIT_STORE. */
static int restore(const struct config *cfg, const char *bootstrap, const char *dir,
                   const char *where) {
    char err[ERRLEN];
    struct store *s = NULL;
    struct changelog *cl = NULL;
    struct store_opts so = {.path = dir, .nosync = 1,   /* a scratch store: nothing to keep */
                            .close_after_s = cfg->credit_close_after_s,
                            .max_future_s = cfg->credit_max_future_s,
                            .retention_days = cfg->credit_retention_days,
                            .currency = cfg->credit_currency};
    if (store_open(&s, &so, err, sizeof(err))) {
        fprintf(stderr, "creditctl: --from-kafka: a store in %s: %s\n", dir, err);
        return EXIT_STORE;
    }
    int rc = changelog_open(&cl, cfg, bootstrap, "restore", &stop_flag, err, sizeof(err));
    int32_t n = rc ? 0 : changelog_partition_count(cl);
    int32_t *parts = rc ? NULL : malloc((size_t)(n > 0 ? n : 1) * sizeof(*parts));
    uint64_t records = 0;
    if (rc == 0 && !parts) {
        snprintf(err, sizeof(err), "out of memory (%d partitions)", (int)n);
        rc = -1;
    }
    for (int32_t p = 0; rc == 0 && p < n; p++) parts[p] = p;
    if (rc == 0) rc = changelog_restore(cl, s, parts, (size_t)n, &records, err, sizeof(err));
    if (rc == KCLIENT_STOPPED) fprintf(stderr, "creditctl: --from-kafka: %s: interrupted\n", where);
    else if (rc) fprintf(stderr, "creditctl: --from-kafka: %s\n", err);
    free(parts);
    changelog_close(cl);
    store_close(s);
    return rc ? EXIT_STORE : 0;
}

int ctlkafka_build(const char *bootstrap, const char *config, char *const *xs, int nx,
                   char dir[CTLKAFKA_DIR_MAX], char where[CTLKAFKA_WHERE_MAX]) {
    struct config cfg;
    char err[ERRLEN];
    if (kclient_tool_config(&cfg, "creditctl", config, xs, nx, err, sizeof(err))) {
        fprintf(stderr, "creditctl: %s\n", err);
        config_free(&cfg);
        return EXIT_USAGE;
    }
    catch_signals();
    snprintf(where, CTLKAFKA_WHERE_MAX, "changelog %s at %s", cfg.state_changelog_topic, bootstrap);
    int made = make_dir(dir) == 0;
    int rc = made ? restore(&cfg, bootstrap, dir, where) : EXIT_STORE;
    if (rc && made) ctlkafka_remove(dir);
    config_free(&cfg);
    return rc;
}
