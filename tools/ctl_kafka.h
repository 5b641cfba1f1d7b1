/* ctl_kafka -- creditctl --from-kafka BOOTSTRAP: the read-committed state
 * of every partition, built from the state changelog (group mode,
 * consumer/changelog.h) into a store of its own, which creditctl's views
 * then read as they read --db DIR.
 *
 *   creditctl --from-kafka BOOTSTRAP [--config FILE] [-X KEY=VALUE]... balances [--json]
 *   creditctl --from-kafka BOOTSTRAP [--config FILE] [-X KEY=VALUE]... show ORG [--json]
 *
 * The configuration (--config, -X: kclient_tool_config, as for every tool)
 * gives the Kafka client settings, state.changelog.topic and the pinned
 * credit.* values of the changelog's fingerprint (a changelog written with
 * another one is refused, naming both).  The store is made in a fresh
 * private directory (mkdtemp, mode 0700) under $TMPDIR (else /tmp) and
 * removed by ctlkafka_remove(); ctlkafka_build() removes it itself when it
 * fails.  SIGINT and SIGTERM stop the restore (the directory is removed),
 * SIGPIPE is ignored (a closed stdout is a write error, and the directory
 * still goes). */
#ifndef TOOLS_CTL_KAFKA_H
#define TOOLS_CTL_KAFKA_H

#include <stddef.h>

#define CTLKAFKA_DIR_MAX   4096
#define CTLKAFKA_WHERE_MAX 512

/* Build the store.  dir: its directory; where: "changelog TOPIC at
 * BOOTSTRAP", for messages naming what was read.  Errors are printed on
 * stderr ("creditctl: ...").  Returns 0, 1 (a configuration error, as
 * creditctl's other usage errors) or 2 (Kafka, the changelog or the store;
 * also when stopped by a signal). */
int ctlkafka_build(const char *bootstrap, const char *config, char *const *xs, int nx,
                   char dir[CTLKAFKA_DIR_MAX], char where[CTLKAFKA_WHERE_MAX]);

/* Remove the directory ctlkafka_build() made (its files, then itself);
 * a failure is printed.  0 or -1. */
int ctlkafka_remove(const char *dir);

#endif
