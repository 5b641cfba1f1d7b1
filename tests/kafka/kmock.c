/* kmock -- a Kafka broker for fault-injection tests: librdkafka's mock
 * cluster (the same as creditd's embedded broker, consumer/mock.c), driven
 * by commands on stdin.  Test-only (build/kmock).
 *
 *   kmock TOPIC:PARTITIONS...
 *
 * Prints "HOST:PORT" (the bootstrap) on stdout, then reads one command per
 * line and answers each with one line, "ok" or "error: ...":
 *   errors API N CODE     the next N requests of ApiKey API (0 Produce, 1 Fetch)
 *                         fail with Kafka error CODE (e.g. 6 NOT_LEADER_OR_FOLLOWER,
 *                         19 NOT_ENOUGH_REPLICAS: both retried by clients)
 *   clear-errors API      forget the ones not used yet
 *   down | up             the broker stops / resumes answering
 * It exits at end of input (or on "quit"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consumer/mock.h"

#define MAX_ERRORS 1000000
#define BROKER 1

static int command(rd_kafka_mock_cluster_t *mc, char *line) {
    long api, n, code;
    char extra;
    line[strcspn(line, "\n")] = 0;
    if (sscanf(line, "errors %ld %ld %ld %c", &api, &n, &code, &extra) == 3 && api >= 0 &&
        api < 100 && n > 0 && n <= MAX_ERRORS) {
        rd_kafka_resp_err_t *e = malloc((size_t)n * sizeof(*e));
        if (!e) return -1;
        for (long i = 0; i < n; i++) e[i] = (rd_kafka_resp_err_t)code;
        rd_kafka_mock_push_request_errors_array(mc, (int16_t)api, (size_t)n, e);
        free(e);
    } else if (sscanf(line, "clear-errors %ld %c", &api, &extra) == 1 && api >= 0 && api < 100) {
        rd_kafka_mock_clear_request_errors(mc, (int16_t)api);
    } else if (strcmp(line, "down") == 0) {
        if (rd_kafka_mock_broker_set_down(mc, BROKER)) return -1;
    } else if (strcmp(line, "up") == 0) {
        if (rd_kafka_mock_broker_set_up(mc, BROKER)) return -1;
    } else {
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *topics[64];
    int parts[64];
    size_t n = 0;
    char err[512], line[256];
    for (int i = 1; i < argc; i++) {
        char *colon = strrchr(argv[i], ':');
        if (!colon || n == 64 || (parts[n] = atoi(colon + 1)) <= 0) {
            fprintf(stderr, "usage: kmock TOPIC:PARTITIONS...\n");
            return 1;
        }
        *colon = 0;
        topics[n++] = argv[i];
    }
    struct mock *m;
    if (mock_start_topics(&m, "kmock", topics, parts, n, err, sizeof(err))) {
        fprintf(stderr, "kmock: %s\n", err);
        return 2;
    }
    printf("%s\n", mock_bootstrap(m));
    fflush(stdout);
    while (fgets(line, sizeof(line), stdin) && strncmp(line, "quit", 4) != 0) {
        if (command(mock_cluster(m), line)) printf("error: %s\n", line);
        else printf("ok\n");
        fflush(stdout);
    }
    mock_stop(m);
    return 0;
}
