#!/usr/bin/env bash
# Faults on a real Kafka 4 broker (tests/kafka/broker.sh): creditd stops
# loudly instead of losing or half-applying anything, and the tools fail
# fast naming the cause.  Input: examples/timeline.jsonl on one partition.
#
# 1. Permanent delivery error: credit.ledger accepts at most 64-byte batches
#    (max.message.bytes), so every ledger output fails with
#    MSG_SIZE_TOO_LARGE.  creditd exits non-zero naming the topic and the
#    error; the outbox keeps the undelivered entries (creditctl outbox).
#    Once max.message.bytes is raised, a restart delivers every output
#    exactly once: credit.overage and credit.ledger hold exactly
#    credit-replay's outputs (whole messages), no id twice.
# 2. Crash-loop guard: build/creditd-test (creditd with its test hook) with
#    CREDITD_TEST_FAIL_ON set to one event's id fails the engine on that
#    message.  It exits 3 (needs an operator) naming topic, partition, offset and the first
#    bytes of the message in hex; nothing of the batch is applied (no
#    counters, no balances, no outputs); a restart stops at the same
#    message; the production creditd then applies every event once, with
#    credit-replay's balances.
# 3. credit-replay --from-kafka fails at once (exit 2) naming the cause: a
#    topic that does not exist, an authentication failure (SASL against the
#    plaintext listener).
# Needs make all; kcat, jq, python3-confluent-kafka.
# Closing line: "it_faults: N passed, N failed".
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
. "$ROOT/tests/kafka/lib.sh"
cd "$ROOT"
NAME=it_faults
B=build
BROKER=tests/kafka/broker.sh
PY=/usr/bin/python3
T=$(mktemp -d "${TMPDIR:-/tmp}/it_faults.XXXXXX")
SEED=none
IN=examples/timeline.jsonl
pass=0 fail=0 t0=$SECONDS pid="" prod_pid="" ref_pid=""
trap finish EXIT   # lib.sh: stops what runs, prints the closing line, exits 1 on any failure

now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
# Whole messages of TOPIC, sorted (lib.sh topic_dump reads committed ones).
sorted_topic() { topic_dump "$1" "$2.raw" && LC_ALL=C sort "$2.raw" > "$2"; }
wait_done() { # STORE SECONDS: all $n messages seen, the outbox delivered (creditd $pid running)
    local deadline=$((SECONDS + $2))
    while read_stats "$1"; ((SEEN < n || OUTBOX > 0)); do
        ((SECONDS < deadline)) && alive "$pid" || return 1
        sleep 0.2
    done
}

BS=$("$BROKER" start "$T/kafka") || { bad "broker start"; exit 1; }
note "broker at $BS"
for tp in credit.events:retention.ms=-1 credit.overage: credit.ledger:max.message.bytes=64 \
          credit.rejected: credit.alerts: g.events:retention.ms=-1 g.overage: g.ledger: g.rejected: \
          g.alerts:; do
    "$BROKER" create-topic "$T/kafka" "${tp%%:*}" 1 ${tp#*:} >/dev/null || bad "create topic $tp"
done
n=$(grep -c . "$IN")
"$B/credit-replay" --db "$T/ref" --out "$T/ref.out" "$IN" 2>/dev/null || bad "credit-replay"
"$B/creditctl" --db "$T/ref" balances --json > "$T/ref.balances"

# ---- 1. permanent delivery error ----------------------------------------------
"$B/credit-produce" -b "$BS" -t credit.events "$IN" 2>/dev/null || bad "produce $IN"
rc=0; timeout 60 "$B/creditd" -X "bootstrap.servers=$BS" --db "$T/store" >/dev/null 2>"$T/c1.log" || rc=$?
check "a permanent delivery error stops creditd: exit 2 (exit $rc)" test "$rc" = 2
check "... naming the topic and the error" grep -q "credit.ledger failed: MSG_SIZE_TOO_LARGE" "$T/c1.log"
read_stats "$T/store"
"$B/creditctl" --db "$T/store" outbox > "$T/outbox.txt" 2>&1
check "the outbox keeps the undelivered entries ($OUTBOX, the first is a ledger entry)" \
    test "$OUTBOX" -gt 0 -a "$(awk 'NR == 1 {print $2}' "$T/outbox.txt")" = ledger
"$PY" - "$BS" <<'PYEOF' || bad "raise max.message.bytes of credit.ledger"
import sys
from confluent_kafka.admin import AdminClient, ConfigResource
a = AdminClient({"bootstrap.servers": sys.argv[1]})
r = ConfigResource("topic", "credit.ledger", set_config={"max.message.bytes": "1048588"})
for f in a.alter_configs([r]).values():
    f.result(timeout=60)
PYEOF
"$B/creditd" -X "bootstrap.servers=$BS" --db "$T/store" >/dev/null 2>"$T/c2.log" &
pid=$!
check "after the cause is fixed, a restart applies everything and delivers the outbox" wait_done "$T/store" 60
rc=0; stop_creditd "$pid" 30 || rc=$?; pid=""
check "restart: SIGTERM exit 0" test "$rc" = 0
for kind in overage ledger; do
    grep -F "\"type\":\"credit.$kind\"" "$T/ref.out" | LC_ALL=C sort > "$T/ref.$kind"
    sorted_topic "credit.$kind" "$T/$kind" || bad "reading credit.$kind"
    check "credit.$kind == credit-replay's outputs ($(wc -l < "$T/$kind") vs $(wc -l < "$T/ref.$kind"))" \
        cmp -s "$T/ref.$kind" "$T/$kind"
    check "credit.$kind: no output id twice" test -z "$(dup_ids "$T/$kind.raw")"
done
topic_dump credit.rejected "$T/rejected.raw" || bad "reading credit.rejected"
want=$(grep -c '"type":"credit.rejected"' "$T/ref.out")
check "credit.rejected: as many dead letters as credit-replay's ($(wc -l < "$T/rejected.raw") vs $want)" \
    test "$(wc -l < "$T/rejected.raw")" = "$want"
check "credit.rejected: no id twice" test -z "$(dup_ids "$T/rejected.raw")"

# ---- 2. crash-loop guard ----------------------------------------------------------
line=8
id=$(sed -n "${line}p" "$IN" | jq -r .id)
poison="\"id\":\"$id\""
check "event id $id occurs once in $IN" test "$(grep -cF "$poison" "$IN")" = 1
"$B/credit-produce" -b "$BS" -t g.events "$IN" 2>/dev/null || bad "produce $IN to g.events"
gargs=(-X "bootstrap.servers=$BS" --db "$T/g" -X topic.input=g.events -X topic.overage=g.overage
       -X topic.ledger=g.ledger -X topic.rejected=g.rejected -X output.alerts=g.alerts)
for run in 1 2; do
    # batch.max_ms: the first batch holds every message (all are there before the start).
    rc=0; CREDITD_TEST_FAIL_ON=$poison timeout 60 "$B/creditd-test" "${gargs[@]}" -X batch.max_ms=3000 \
        >/dev/null 2>"$T/g$run.log" || rc=$?
    check "run $run: the engine failure stops creditd: exit 3, needs an operator (exit $rc)" test "$rc" = 3
    check "run $run: ... naming topic, partition and offset" \
        grep -q "input g.events \[0\] offset $((line - 1)): the engine failed" "$T/g$run.log"
    check "run $run: ... and the message's first bytes in hex" \
        grep -q "starts: 7b 22 73 70 65 63 76 65 72 73 69 6f 6e" "$T/g$run.log"
    read_stats "$T/g"
    check "run $run: nothing of the batch applied ($SEEN seen, outbox $OUTBOX)" test "$SEEN" = 0 -a "$OUTBOX" = 0
    check "run $run: no balance" test -z "$("$B/creditctl" --db "$T/g" balances --json 2>/dev/null)"
done
topic_dump g.ledger "$T/g.ledger.raw" || bad "reading g.ledger"
check "no output was sent" test ! -s "$T/g.ledger.raw"
"$B/creditd" "${gargs[@]}" >/dev/null 2>"$T/g3.log" &
pid=$!
wait_done "$T/g" 60
check "without the fault every event is applied once ($SEEN of $n), outbox delivered" \
    test "$SEEN" = "$n" -a "$OUTBOX" = 0
rc=0; stop_creditd "$pid" 30 || rc=$?; pid=""
check "SIGTERM exit 0" test "$rc" = 0
"$B/creditctl" --db "$T/g" balances --json > "$T/g.balances"
check "balances == credit-replay's" cmp -s "$T/ref.balances" "$T/g.balances"

# ---- 3. credit-replay --from-kafka: causes named at once ----------------------------
replay_fails() { # WHAT PATTERN ARGS...: exit 2 within 5 s, stderr matching PATTERN
    local what=$1 pat=$2 rrc=0 t; shift 2
    t=$(now_ms)
    timeout 60 "$B/credit-replay" --db "$T/r.$RANDOM" --from-kafka "$BS" --out /dev/null "$@" \
        2>"$T/r.log" || rrc=$?
    t=$(( $(now_ms) - t ))
    check "credit-replay --from-kafka, $what: exit 2 within 5 s (exit $rrc, $t ms)" test "$rrc" = 2 -a "$t" -lt 5000
    check "... naming the cause" grep -q "$pat" "$T/r.log"
}
replay_fails "unknown topic" "topic no.such.topic does not exist" --topic no.such.topic
replay_fails "authentication failure" "Kafka authentication failed" -X security.protocol=SASL_PLAINTEXT \
    -X sasl.mechanisms=PLAIN -X sasl.username=nobody -X sasl.password=wrong
