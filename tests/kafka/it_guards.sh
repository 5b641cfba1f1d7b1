#!/usr/bin/env bash
# Integration test on a real Kafka 4 broker: the v1.3 §11 future-time guard
# end to end.  Example F through Kafka, ticks on every partition as
# credit-tick sends them: the far-future usage lands on the dead-letter topic
# twice (not remembered), the usage too far past the watermark is rejected
# and then applied when re-sent after the ticks moved the clock; balances
# exact (V 990) and equal to credit-replay --from-kafka of the same log.
# Closing line: "it_guards: N passed, N failed".
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
. "$ROOT/tests/kafka/lib.sh"
cd "$ROOT"
NAME=it_guards
B=build
BROKER=tests/kafka/broker.sh
PY=/usr/bin/python3
T=$(mktemp -d "${TMPDIR:-/tmp}/it_guards.XXXXXX")
SEED=none
pass=0 fail=0 t0=$SECONDS pid="" prod_pid="" ref_pid=""
trap finish EXIT   # lib.sh: stops what runs, prints the closing line, exits 1 on any failure

BS=$(bash "$BROKER" start "$T/kafka") || { bad "broker start"; exit 1; }
for tp in credit.events:4 credit.overage:1 credit.ledger:1 credit.rejected:1 credit.alerts:1; do
    bash "$BROKER" create-topic "$T/kafka" "${tp%%:*}" "${tp##*:}" >/dev/null || bad "create topic $tp"
done

"$B/creditd" -X "bootstrap.servers=$BS" --db "$T/live" -X stats.interval_ms=500 >/dev/null 2>"$T/creditd.log" &
pid=$!
# Produced after creditd started: it reads the stream as it arrives, in order per partition.
N=$(bash tools/run-demo.sh feed "$BS" credit.events tests/scenarios/ex_F.jsonl) || { bad "produce"; exit 1; }
ok "produced $N messages (every tick to each of the 4 partitions)"

wait_done() { # COUNT: everything seen and the outbox delivered, bounded
    local deadline=$((SECONDS + 90))
    while :; do
        read_stats "$T/live"
        ((SEEN >= $1)) && [[ "$OUTBOX" == 0 ]] && return 0
        ((SECONDS < deadline)) && alive "$pid" || return 1
        sleep 0.2
    done
}
check "creditd saw all $N messages and delivered its outbox" wait_done "$N"
rc=0; stop_creditd "$pid" || rc=$?; pid=""
check "creditd exits 0 on SIGTERM" test "$rc" -eq 0

timeout 60 kcat -C -b "$BS" -t credit.rejected -e -q -f '%s\n' > "$T/rejected.jsonl"
check "dead letters: u-bad twice and u-gap once, time_in_future naming time" "$PY" - "$T/rejected.jsonl" <<'PYEOF'
import json, sys
recs = [json.loads(l)["data"] for l in open(sys.argv[1])]
got = sorted((r["event_id"], r["reason"]) for r in recs)
assert got == [("u-bad", "time_in_future"), ("u-bad", "time_in_future"), ("u-gap", "time_in_future")], got
assert all(r["message"].startswith("time: ") and r["topic"] == "credit.events" for r in recs), recs
PYEOF
"$B/creditctl" --db "$T/live" balances --json > "$T/live.bal"
check "o6 ends at 990 (u-gap applied once the clock caught up)" \
    grep -q '"org":"o6","value":"990.000000"' "$T/live.bal"
timeout 60 kcat -C -b "$BS" -t credit.ledger -e -q -f '%s\n' > "$T/ledger.jsonl"
check "u-gap drew 10 on the ledger once" test "$(jq -c 'select(.data.event_id == "u-gap")' "$T/ledger.jsonl" | wc -l)" -eq 1

"$B/credit-replay" --db "$T/audit" --from-kafka "$BS" --out "$T/audit.out" 2>"$T/audit.log"
check "credit-replay --from-kafka exits 0" test $? -eq 0
"$B/creditctl" --db "$T/audit" balances --json > "$T/audit.bal"
check "audit replay balances == live balances" cmp -s "$T/live.bal" "$T/audit.bal"
jq -c 'select(.type == "credit.rejected") | .data.event_id' "$T/audit.out" | sort > "$T/audit.rej"
jq -c '.data.event_id' "$T/rejected.jsonl" | sort > "$T/live.rej"
check "audit replay rejects == the dead-letter topic" cmp -s "$T/live.rej" "$T/audit.rej"
