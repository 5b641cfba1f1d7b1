/* creditd -- the credit-management stream processor.
 *
 *   creditd [--config FILE] [-X key=value]... [--db DIR] [--dump-config] [--help] [--version]
 *
 * Consumes the input topic, applies every event through the engine into the
 * LMDB store (one transaction per batch) and relays the outputs to Kafka.
 * Without kafka.bootstrap.servers it runs an embedded (in-memory) broker and
 * prints "creditd: embedded broker at HOST:PORT" on stdout.
 * --version prints "creditd VERSION (librdkafka X.Y.Z)", the librdkafka it
 * runs with (built from source, README "librdkafka, built from source"); the
 * first log line of a run says the same.
 * Every other message goes through the log writer (consumer/log.h,
 * log.format and log.level), from the moment the configuration is read.
 * Exit: 0 after SIGTERM/SIGINT, 1 on bad usage or configuration, 2 on a
 * fatal error (the store never holds a half-applied batch), 3 when the
 * crash-loop guard stopped creditd: a restart would stop at the same message,
 * an operator must act (EXIT_HALTED; packaging/creditd.service does not
 * restart on it). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "config/config.h"
#include "consumer/jarena.h"
#include "consumer/kclient.h"
#include "consumer/log.h"
#include "consumer/group.h"
#include "consumer/pipeline.h"

#define EXIT_USAGE  1
#define EXIT_FATAL  2
#define EXIT_HALTED 3

#define ERRLEN 1024

#ifndef CREDITD_VERSION
#define CREDITD_VERSION "dev"     /* as consumer/pipeline.c */
#endif

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig) {
    (void)sig;
    stop_flag = 1;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: creditd [--config FILE] [-X key=value]... [--db DIR] [--dump-config] [--version]\n"
            "  --config FILE   creditd.conf (key = value lines; see creditd.conf.example)\n"
            "  -X key=value    set a creditd key or a librdkafka property (like kcat);\n"
            "                  applied after --config, in order\n"
            "  --db DIR        the store directory (store.path)\n"
            "  --dump-config   print the effective configuration (secrets masked), exit\n"
            "  --help          this text\n"
            "  --version       print creditd's and librdkafka's versions, exit\n"
            "Without kafka.bootstrap.servers, creditd starts an embedded broker and\n"
            "prints 'creditd: embedded broker at HOST:PORT' on stdout.\n");
}

static int install_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) || sigaction(SIGINT, &sa, NULL)) return -1;
    sa.sa_handler = SIG_IGN;
    return sigaction(SIGPIPE, &sa, NULL);
}

/* The --config file first, then -X and --db in command-line order.
 * 0, 1 for --help / --dump-config done, -1 on error (err set). */
static int load(struct config *c, int argc, char **argv, int *dump, char *err, size_t errlen) {
    const char *file = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) { usage(stdout); return 1; }
        if (strcmp(a, "--version") == 0) {
            printf("creditd %s (librdkafka %s)\n", CREDITD_VERSION, rd_kafka_version_str());
            return 1;
        }
        if (strcmp(a, "--dump-config") == 0) { *dump = 1; continue; }
        int takes = strcmp(a, "--config") == 0 || strcmp(a, "--db") == 0 || strcmp(a, "-X") == 0;
        if (!takes && strncmp(a, "-X", 2) != 0) {
            snprintf(err, errlen, "unknown argument: %s (see --help)", a);
            return -1;
        }
        if (takes && ++i >= argc) {
            snprintf(err, errlen, "%s needs a value", a);
            return -1;
        }
        if (strcmp(a, "--config") == 0) file = argv[i];
    }
    if (file && config_load_file(c, file, err, errlen)) return -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int rc = 0;
        if (strcmp(a, "--config") == 0) i++;
        else if (strcmp(a, "--db") == 0) rc = config_set(c, "store.path", argv[++i], "--db", err, errlen);
        else if (strcmp(a, "-X") == 0) rc = config_set_arg(c, argv[++i], err, errlen);
        else if (strncmp(a, "-X", 2) == 0) rc = config_set_arg(c, a + 2, err, errlen);
        if (rc) return -1;
    }
    return config_validate(c, err, errlen) ? -1 : 0;
}

/* The log writer as configured (log.*, and the secrets kept out of it).
 * Also after a configuration error, so that the error comes in the format
 * asked for as far as the settings were read (log.* values are checked when
 * set: a failure here leaves the defaults). */
static int init_log(const struct config *c, char *err, size_t errlen) {
    return kclient_log_setup("creditd", c, err, errlen);
}

int main(int argc, char **argv) {
    struct config c;
    char err[ERRLEN], lerr[256];
    int dump = 0;
    jarena_install();   /* first, on the only thread: the parsing threads' trees in arenas */
    config_init(&c);
    int rc = load(&c, argc, argv, &dump, err, sizeof(err));
    if (rc == 0 && !dump && init_log(&c, err, sizeof(err))) rc = -1;
    if (rc) {
        if (rc < 0) {
            (void)init_log(&c, lerr, sizeof(lerr));
            log_error(NULL, "%s", err);
        }
        config_free(&c);
        return rc < 0 ? EXIT_USAGE : 0;
    }
    if (dump) {
        config_dump(&c, stdout);
        config_free(&c);
        return 0;
    }
    if (install_signals()) {
        log_error(NULL, "sigaction: %s", strerror(errno));
        config_free(&c);
        return EXIT_FATAL;
    }
    log_info(NULL, "version %s, librdkafka %s", CREDITD_VERSION, rd_kafka_version_str());
    rc = strcmp(c.input_assignment, "group") == 0 ? group_run(&c, &stop_flag, err, sizeof(err))
                                                 : pipeline_run(&c, &stop_flag, err, sizeof(err));
    if (rc) log_error(NULL, "fatal: %s", err);
    config_free(&c);
    return rc == PIPELINE_HALTED ? EXIT_HALTED : rc ? EXIT_FATAL : 0;
}
