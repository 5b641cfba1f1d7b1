#!/usr/bin/env bash
# Integration test on a real Kafka 4 broker: a gap in the input log (here the
# input topic deleted and re-created, as a retention gap would look) stops
# creditd with a clear message instead of skipping events, and the store is
# left as it was.  Closing line: "it_gap: N passed, N failed".
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
. "$ROOT/tests/kafka/lib.sh"
cd "$ROOT"
NAME=it_gap
B=build
BROKER=tests/kafka/broker.sh
PY=/usr/bin/python3
T=$(mktemp -d "${TMPDIR:-/tmp}/it_gap.XXXXXX")
SEED=none
pass=0 fail=0 t0=$SECONDS pid="" prod_pid="" ref_pid=""
trap finish EXIT   # lib.sh: stops what runs, prints the closing line, exits 1 on any failure
# Events the store applied or rejected (lib.sh read_stats).
applied() { read_stats "$T/store"; echo $((APPLIED + REJECTED)); }

BS=$(bash "$BROKER" start "$T/kafka") || { bad "broker start"; exit 1; }
for tp in credit.events:1 credit.overage:1 credit.ledger:1 credit.rejected:1 credit.alerts:1; do
    bash "$BROKER" create-topic "$T/kafka" "${tp%%:*}" "${tp##*:}" >/dev/null || bad "create topic $tp"
done
"$B/credit-produce" -b "$BS" tests/scenarios/ex_C.jsonl 2>/dev/null || bad "produce"

"$B/creditd" -X "bootstrap.servers=$BS" --db "$T/store" >/dev/null 2>"$T/run1.log" &
pid=$!
deadline=$((SECONDS + 60))
while (( $(applied) < 7 )) && (( SECONDS < deadline )) && kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
check "first run applied the 7 events" test "$(applied)" -eq 7
rc=0; stop_creditd "$pid" || rc=$?; pid=""
check "first run: SIGTERM exit 0" test "$rc" -eq 0
"$B/creditctl" --db "$T/store" balances --json > "$T/before.bal"

# Delete the input topic and create it again, empty: offset 7 is gone.
"$PY" - "$BS" <<'PYEOF' || bad "re-create credit.events"
import sys, time
from confluent_kafka.admin import AdminClient, NewTopic
a = AdminClient({"bootstrap.servers": sys.argv[1]})
for f in a.delete_topics(["credit.events"], operation_timeout=30).values(): f.result()
deadline = time.time() + 60
while True:  # deletion is asynchronous in the broker: retry the creation, bounded
    try:
        for f in a.create_topics([NewTopic("credit.events", 1, 1)]).values(): f.result()
        break
    except Exception as e:
        if time.time() > deadline: sys.exit(f"create: {e}")
        time.sleep(0.5)
while True:  # and wait until it is visible with a leader, bounded
    t = a.list_topics(timeout=10).topics.get("credit.events")
    if t and not t.error and t.partitions and all(p.leader >= 0 for p in t.partitions.values()):
        break
    if time.time() > deadline: sys.exit("credit.events has no leader after re-creation")
    time.sleep(0.2)
PYEOF

"$B/creditd" -X "bootstrap.servers=$BS" --db "$T/store" >/dev/null 2>"$T/run2.log" &
pid=$!
deadline=$((SECONDS + 60))
while kill -0 "$pid" 2>/dev/null && (( SECONDS < deadline )); do sleep 0.2; done
if kill -0 "$pid" 2>/dev/null; then
    bad "creditd kept running on a log with a gap"
else
    rc=0; wait "$pid" || rc=$?
    check "creditd stops with a non-zero exit on a gap (exit $rc)" test "$rc" -ne 0
    check "its message says the next offset is no longer in the log" \
        grep -q "no longer in the log" "$T/run2.log"
fi
pid=""
"$B/creditctl" --db "$T/store" balances --json > "$T/after.bal"
check "the store is unchanged" cmp -s "$T/before.bal" "$T/after.bal"
check "nothing new applied" test "$(applied)" -eq 7
