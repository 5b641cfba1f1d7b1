# creditd -- see README.md.  Targets: all, test, fuzz, fuzz-short, bench, bench-large, bench-kafka, bench-scale,
# run, install, uninstall, clean.
CC      ?= cc
CFLAGS  ?= -O2 -g
WARN     = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wvla
B        = build
# librdkafka 2.12.1 built from source by tools/librdkafka.sh (README "librdkafka, built
# from source"): a static library in $(RDK); its headers come before the system's (-isystem: searched before
# /usr/include, and its own warnings are not ours).
RDK      = $(B)/rdkafka
RDK_A    = $(RDK)/lib/librdkafka.a
RDK_LIBS = $(RDK_A) -lssl -lcrypto -lz -lpthread -lm -ldl -lrt
LIBS     = $(RDK_LIBS) -ljansson -llmdb
# The daemon also serves HTTP (consumer/http.c) from a thread of its own.
DAEMON_LIBS = -lmicrohttpd -lpthread
SAN      = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

CORE_SRC = $(wildcard engine/*.c) $(wildcard store/*.c) $(wildcard config/*.c)
CORE_HDR = $(wildcard engine/*.h) $(wildcard store/*.h) $(wildcard config/*.h) $(wildcard consumer/*.h) \
           $(wildcard tools/*.h)
UNIT_SRC = $(wildcard tests/unit/test_*.c)
UNIT_HELP= $(filter-out $(UNIT_SRC),$(wildcard tests/unit/*.c))
UNITS    = $(patsubst tests/unit/%.c,$(B)/%,$(UNIT_SRC))
UNITS_SAN= $(patsubst tests/unit/%.c,$(B)/asan/%,$(UNIT_SRC))
TOOLS    = $(B)/credit-replay $(B)/creditctl $(B)/credit-produce $(B)/credit-tick
DAEMON_SRC = $(wildcard consumer/*.c)
DAEMON_OBJ = $(patsubst %.c,$(B)/obj/%.o,$(DAEMON_SRC))
# The one Kafka client set-up (consumer/kclient.c), linked into the tools that talk to Kafka,
# with the log writer it logs through (consumer/log.c).
KCLIENT  = $(B)/obj/consumer/kclient.o $(B)/obj/consumer/log.o
# "Parse ahead, apply in order" (consumer/parseq.c): creditd's input and credit-replay's.
# Its trees live in per-chunk arenas (consumer/jarena.c) when the program called jarena_install.
PARSEQ   = $(B)/obj/consumer/parseq.o $(B)/obj/consumer/jarena.o
# Test-only binaries for tests/kafka: creditd with its test hooks, the fault-injecting mock broker,
# the changelog producer of it_changelog.sh.
TEST_BIN = $(B)/creditd-test $(B)/kmock $(B)/clog-feed

.PHONY: all test unit unit-asan scenarios kafka-test fuzz fuzz-short fuzz-cov bench bench-large bench-kafka bench-scale \
        clean deps run \
        install uninstall
# Keep objects: make must not delete them (and print rm lines) after a test run.
.SECONDARY:
all: deps $(TOOLS) $(UNITS) $(B)/creditd $(TEST_BIN)

# Installs missing Debian packages (no-op when everything is there).
deps:
	@sh tools/deps.sh
# librdkafka, built once into $(RDK) (about 25 s on 2 cores, then cached there).  Objects
# depend on it: a new librdkafka (a changed script) recompiles and relinks everything.
$(RDK_A): tools/librdkafka.sh | deps
	@LIBRDKAFKA_PREFIX=$(RDK) sh tools/librdkafka.sh && touch $@

$(B)/obj/%.o: %.c $(CORE_HDR) $(RDK_A)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) -I. -isystem $(RDK)/include -c $< -o $@
$(B)/asan/obj/%.o: %.c $(CORE_HDR) $(RDK_A)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) -O1 -g $(SAN) -I. -isystem $(RDK)/include -c $< -o $@

$(B)/libcreditd.a: $(patsubst %.c,$(B)/obj/%.o,$(CORE_SRC))
	@rm -f $@; ar rcs $@ $^
$(B)/asan/libcreditd.a: $(patsubst %.c,$(B)/asan/obj/%.o,$(CORE_SRC))
	@rm -f $@; ar rcs $@ $^

$(B)/credit-replay: $(B)/obj/tools/credit_replay.o $(B)/obj/tools/lineq.o $(B)/obj/tools/spool.o $(B)/obj/tools/progress.o $(PARSEQ) $(KCLIENT) $(B)/libcreditd.a
	$(CC) $(CFLAGS) -o $@ $^ $(LIBS)
# tools/view.c: the JSON views creditctl prints and creditd's HTTP API serves.
VIEW     = $(B)/obj/tools/view.o
# --from-kafka (tools/ctl_kafka.c) reads the state changelog with consumer/changelog.c.
$(B)/creditctl: $(B)/obj/tools/creditctl.o $(B)/obj/tools/ctl_cmds.o $(B)/obj/tools/ctl_http.o $(VIEW) $(B)/obj/tools/ctl_wait.o $(B)/obj/tools/kprod.o \
                $(B)/obj/tools/ctl_kafka.o $(B)/obj/consumer/changelog.o $(KCLIENT) $(B)/libcreditd.a
	$(CC) $(CFLAGS) -o $@ $^ $(LIBS)
$(B)/credit-produce: $(B)/obj/tools/credit_produce.o $(B)/obj/tools/kprod.o $(KCLIENT) $(B)/libcreditd.a
	$(CC) $(CFLAGS) -o $@ $^ $(LIBS)
$(B)/credit-tick: $(B)/obj/tools/credit_tick.o $(B)/obj/tools/kprod.o $(KCLIENT) $(B)/libcreditd.a
	$(CC) $(CFLAGS) -o $@ $^ $(LIBS)
# The daemon: consumer/*.o are linked into it only, not into libcreditd.a.
$(DAEMON_OBJ): $(wildcard consumer/*.h)
$(B)/creditd: $(DAEMON_OBJ) $(VIEW) $(B)/libcreditd.a
	$(CC) $(CFLAGS) -o $@ $^ $(LIBS) $(DAEMON_LIBS)
# creditd built with -DCREDITD_TEST_HOOKS (CREDITD_TEST_FAIL_ON, consumer/pipeline.c): tests only.
$(B)/testhooks/%.o: %.c $(CORE_HDR) $(RDK_A)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) -DCREDITD_TEST_HOOKS -I. -isystem $(RDK)/include -c $< -o $@
$(B)/creditd-test: $(patsubst %.c,$(B)/testhooks/%.o,$(DAEMON_SRC)) $(VIEW) $(B)/libcreditd.a
	$(CC) $(CFLAGS) -o $@ $^ $(LIBS) $(DAEMON_LIBS)
$(B)/kmock: $(B)/obj/tests/kafka/kmock.o $(B)/obj/consumer/mock.o $(KCLIENT) $(B)/libcreditd.a
	$(CC) $(CFLAGS) -o $@ $^ $(LIBS)
$(B)/clog-feed: $(B)/obj/tests/kafka/clog_feed.o $(B)/obj/consumer/changelog.o $(KCLIENT) $(B)/libcreditd.a
	$(CC) $(CFLAGS) -o $@ $^ $(LIBS)
# gen-events: options and the generator (gen_events), the organisation model and its
# simulation (gen_model), the CloudEvents rendering (gen_render).
$(B)/gen-events: $(B)/obj/tools/gen_events.o $(B)/obj/tools/gen_model.o $(B)/obj/tools/gen_render.o \
                 $(B)/libcreditd.a
	$(CC) $(CFLAGS) -o $@ $^ $(LIBS)
$(B)/bench-parse: $(B)/obj/tools/bench_parse.o $(B)/libcreditd.a
	$(CC) $(CFLAGS) -o $@ $^ $(LIBS)
# Test helper: raw LMDB record reads/writes, to forge corrupt records.
$(B)/store-poke: $(B)/obj/tests/scenarios/store_poke.o
	$(CC) $(CFLAGS) -o $@ $^ -llmdb

# test_lineq also tests tools/lineq.c (objects are linked before the library).
$(B)/test_lineq: $(B)/obj/tools/lineq.o $(PARSEQ)
$(B)/asan/test_lineq: $(B)/asan/obj/tools/lineq.o $(B)/asan/obj/consumer/parseq.o $(B)/asan/obj/consumer/jarena.o
# test_spool tests tools/spool.c (credit-replay's output spool).
$(B)/test_spool: $(B)/obj/tools/spool.o
$(B)/asan/test_spool: $(B)/asan/obj/tools/spool.o
# test_parseq tests consumer/parseq.c.
$(B)/test_parseq: $(PARSEQ)
$(B)/asan/test_parseq: $(B)/asan/obj/consumer/parseq.o $(B)/asan/obj/consumer/jarena.o
# test_jarena tests consumer/jarena.c (the parsing threads' arenas).
$(B)/test_jarena: $(B)/obj/consumer/jarena.o
$(B)/asan/test_jarena: $(B)/asan/obj/consumer/jarena.o
# test_httpurl tests consumer/httpurl.c (the daemon's request targets).
$(B)/test_httpurl: $(B)/obj/consumer/httpurl.o
$(B)/asan/test_httpurl: $(B)/asan/obj/consumer/httpurl.o
# test_ctl_http tests tools/ctl_http.c (creditctl --http).
$(B)/test_ctl_http: $(B)/obj/tools/ctl_http.o
$(B)/asan/test_ctl_http: $(B)/asan/obj/tools/ctl_http.o
# test_metrics tests consumer/metrics.c and consumer/latency.c (threads, fabs).
$(B)/test_metrics: $(B)/obj/consumer/metrics.o $(B)/obj/consumer/latency.o
$(B)/asan/test_metrics: $(B)/asan/obj/consumer/metrics.o $(B)/asan/obj/consumer/latency.o
$(B)/test_metrics $(B)/asan/test_metrics: LIBS += -lpthread -lm
# test_handoff tests consumer/handoff.c (the relay thread's hand-over to the engine thread).
$(B)/test_handoff: $(B)/obj/consumer/handoff.o
$(B)/asan/test_handoff: $(B)/asan/obj/consumer/handoff.o
$(B)/test_handoff $(B)/asan/test_handoff: LIBS += -lpthread
# test_log tests consumer/log.c (not part of the library).
$(B)/test_log: $(B)/obj/consumer/log.o
$(B)/asan/test_log: $(B)/asan/obj/consumer/log.o
# test_changelog tests consumer/changelog.c (the changelog reader) on librdkafka's mock cluster.
$(B)/test_changelog: $(B)/obj/consumer/changelog.o $(B)/obj/consumer/mock.o $(KCLIENT)
$(B)/asan/test_changelog: $(B)/asan/obj/consumer/changelog.o $(B)/asan/obj/consumer/mock.o \
                          $(B)/asan/obj/consumer/kclient.o $(B)/asan/obj/consumer/log.o
# test_progress tests tools/progress.c (credit-replay's progress line).
$(B)/test_progress: $(B)/obj/tools/progress.o
$(B)/asan/test_progress: $(B)/asan/obj/tools/progress.o
$(B)/test_%: $(B)/obj/tests/unit/test_%.o $(patsubst %.c,$(B)/obj/%.o,$(UNIT_HELP)) $(B)/libcreditd.a
	$(CC) $(CFLAGS) -o $@ $(filter-out %.a,$^) $(filter %.a,$^) $(LIBS) -lcmocka
$(B)/asan/test_%: $(B)/asan/obj/tests/unit/test_%.o $(patsubst %.c,$(B)/asan/obj/%.o,$(UNIT_HELP)) $(B)/asan/libcreditd.a
	$(CC) $(SAN) -o $@ $(filter-out %.a,$^) $(filter %.a,$^) $(LIBS) -lcmocka

unit: deps $(UNITS)
	@sh tests/run_units.sh $(UNITS)
unit-asan: deps $(UNITS_SAN)
	@sh tests/run_units.sh $(UNITS_SAN)
# daemon_logs.sh runs creditd (and creditd-test) on the embedded broker; packaging.sh runs make install.
scenarios: deps $(TOOLS) $(B)/gen-events $(B)/store-poke $(B)/test_metrics $(B)/creditd $(B)/creditd-test
	@sh tests/scenarios/run.sh

# Integration tests on a real Apache Kafka broker that the scripts start themselves.
kafka-test: deps $(TOOLS) $(B)/creditd $(TEST_BIN) $(B)/gen-events $(B)/store-poke
	@sh tests/kafka/run.sh

test: unit unit-asan scenarios fuzz-short kafka-test

# The engine fuzzer (README "Fuzzing"): libFuzzer with Debian's clang, the
# engine, store and config compiled with clang too, under ASan+UBSan.
FUZZ_CC      = clang
FUZZ_SAN     = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
FUZZ_SECONDS ?= 300
FUZZ_SRC = $(CORE_SRC) tests/unit/memstore.c $(wildcard tests/fuzz/*.c)
FUZZ_HDR = $(CORE_HDR) tests/unit/memstore.h $(wildcard tests/fuzz/*.h)

$(B)/fuzz/obj/%.o: %.c $(FUZZ_HDR)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(WARN) -O1 -g $(FUZZ_SAN) -fsanitize=fuzzer-no-link -I. -c $< -o $@
$(B)/fuzz/fuzz_engine: $(patsubst %.c,$(B)/fuzz/obj/%.o,$(FUZZ_SRC))
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ -ljansson -llmdb

# Fuzz for FUZZ_SECONDS on build/fuzz/corpus (grown across runs), every check
# on; FUZZ_KNOWN=1 tolerates the bugs in tests/fuzz/known-open.
fuzz: deps $(B)/fuzz/fuzz_engine
	@FUZZ_KNOWN=$(FUZZ_KNOWN) sh tests/fuzz/run.sh long $(FUZZ_SECONDS)
# Line coverage of engine/ and store/ by build/fuzz/corpus (llvm-cov, no sanitizers).
fuzz-cov: deps
	@sh tests/fuzz/coverage.sh
# CI: replay tests/fuzz/regress/, then fuzz 45 s (tests/fuzz/known-open tolerated).
fuzz-short: deps $(B)/fuzz/fuzz_engine
	@sh tests/fuzz/run.sh short 45

# With 10,000 and with 100,000 organisations (BENCH_ORGS=N: that one only).
bench: deps $(TOOLS) $(B)/gen-events $(B)/bench-parse
	@sh tools/bench.sh

# 10M events over 100,000 organisations into one store, in 1M-event chunks: the
# last chunk's rate against the first's, peak RssAnon against the first's (README).
bench-large: deps $(TOOLS) $(B)/gen-events
	@sh tools/bench-large.sh

# creditd on a real Apache Kafka broker against kcat on the same topic, latency, peak RSS.
bench-kafka: deps $(TOOLS) $(B)/creditd $(B)/gen-events
	@bash tools/bench-kafka.sh

# Group mode (issue 10) on a real Apache Kafka broker: throughput with 1, 2, 3 instances, restore
# rate from the changelog, fail-over time with and without a standby (tools/bench-scale.sh).
bench-scale: deps $(TOOLS) $(B)/creditd $(B)/gen-events
	@bash tools/bench-scale.sh

# Demo on the embedded broker: tools/run-demo.sh (fresh store in build/run-store).
run: deps $(B)/creditd $(B)/creditctl $(B)/credit-replay
	@bash tools/run-demo.sh

# ---- installation (README "Installing as a service") ------------------------------
# Binaries into $(PREFIX)/bin, the systemd units into the system unit directory
# (/lib/systemd/system when PREFIX is /usr, as Debian has it; else
# $(PREFIX)/lib/systemd/system, which systemd also reads), the configuration
# example into /etc/creditd (never creditd.conf itself: an existing one is
# never touched), README.md into $(PREFIX)/share/doc/creditd.  The units in
# packaging/ name /usr/local paths; install rewrites them to these.
PREFIX  ?= /usr/local
DESTDIR ?=
BINDIR  ?= $(PREFIX)/bin
DOCDIR  ?= $(PREFIX)/share/doc/creditd
UNITDIR ?= $(if $(filter /usr,$(PREFIX)),/lib/systemd/system,$(PREFIX)/lib/systemd/system)
CONFDIR  = /etc/creditd
INSTALL_BIN   = $(B)/creditd $(TOOLS)
INSTALL_UNITS = creditd.service credit-tick.service credit-tick.timer

install: $(INSTALL_BIN)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR) $(DESTDIR)$(CONFDIR)
	install -m 0755 $(INSTALL_BIN) $(DESTDIR)$(BINDIR)/
	install -m 0644 config/creditd.conf.example $(DESTDIR)$(CONFDIR)/creditd.conf.example
	install -m 0644 README.md $(DESTDIR)$(DOCDIR)/README.md
	for u in $(INSTALL_UNITS); do \
	    sed -e 's|/usr/local/bin/|$(BINDIR)/|g' -e 's|/usr/local/share/doc/creditd/|$(DOCDIR)/|g' \
	        packaging/$$u > $(DESTDIR)$(UNITDIR)/$$u.tmp && \
	    chmod 0644 $(DESTDIR)$(UNITDIR)/$$u.tmp && mv -f $(DESTDIR)$(UNITDIR)/$$u.tmp $(DESTDIR)$(UNITDIR)/$$u \
	    || exit 1; \
	done

# Removes what install put there (not /etc/creditd/creditd.conf, nor the store).
uninstall:
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(notdir $(INSTALL_BIN))) \
	      $(addprefix $(DESTDIR)$(UNITDIR)/,$(INSTALL_UNITS)) \
	      $(DESTDIR)$(CONFDIR)/creditd.conf.example $(DESTDIR)$(DOCDIR)/README.md
	-rmdir $(DESTDIR)$(DOCDIR) $(DESTDIR)$(CONFDIR) 2>/dev/null

clean:
	rm -rf $(B)
