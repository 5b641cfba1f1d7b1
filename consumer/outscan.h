/* outscan.h -- start-up check of the output topics: which outbox entries did
 * a previous run deliver without the store learning it (crash between the
 * delivery report and the commit that deletes the entry)?
 *
 * Reads each given output partition from the first offset the store has not
 * confirmed up to its end (high watermark at the start of the scan) with a
 * short-lived consumer, and collects the outbox seqs found in the headers of
 * messages written by this store (RELAY headers, see relay.h). */
#ifndef CREDITD_CONSUMER_OUTSCAN_H
#define CREDITD_CONSUMER_OUTSCAN_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

#define OUTSCAN_HDR_SEQ      "creditd-outbox-seq"  /* decimal outbox seq */
#define OUTSCAN_HDR_INSTANCE "creditd-instance"    /* the store's instance id */
#define OUTSCAN_FOUND_MAX    (16u * 1024 * 1024)   /* bound of the result */

struct outscan_part {
    const char *topic;      /* borrowed */
    int kind;               /* enum eng_out_kind, copied to results */
    int32_t partition;
    int64_t from, to;       /* read offsets [from, to) */
};

struct outscan_found {
    uint64_t seq;
    int kind;
    int32_t partition;
    int64_t offset;
};

/* Scan parts[0..n) (only those with from < to) within timeout_ms.  *found is
 * malloc'ed, sorted by seq, without duplicates; free() it.  0; -1 with err
 * (the scan could not complete: creditd must not start re-sending);
 * KCLIENT_STOPPED when *stop was set meanwhile (nothing found is returned). */
int outscan_run(const struct config *c, const char *bootstrap, volatile sig_atomic_t *stop,
                const char *instance, const struct outscan_part *parts, size_t n, int timeout_ms,
                struct outscan_found **found, size_t *nfound, char *err, size_t errlen);

#endif
