#!/usr/bin/env bash
# Integration test of creditd against a real Kafka 4 broker (tests/kafka/broker.sh).
#
#   tests/kafka/it_basic.sh [FILE...]     (default examples/timeline.jsonl:
#                                          the worked examples A-E in time order)
#
# 1. The events, produced with kcat (murmur2, keyed by org, ticks to every
#    partition), are applied by creditd on a 4-partition topic; balances equal
#    credit-replay's of the same file, the overage topic holds exactly the
#    overage events credit-replay printed (data compared), the ledger the same
#    entries; SIGTERM exits 0.
# 2. A restart re-applies nothing and sends nothing again; a new event is
#    applied once.
# 3. Crash: creditd is SIGKILLed while applying and relaying a larger stream;
#    after a restart every event is applied once and no output id appears
#    twice in the output topics.
# Needs make build/creditd build/creditctl build/credit-replay build/gen-events.
# Closing line: "it_basic: N passed, N failed".
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
B=build
BROKER=tests/kafka/broker.sh
DEMO=tools/run-demo.sh
T=$(mktemp -d "${TMPDIR:-/tmp}/it_basic.XXXXXX")
FILES=("$@")
((${#FILES[@]})) || FILES=(examples/timeline.jsonl)
pass=0 fail=0 pid=""

ok() { pass=$((pass + 1)); echo "it_basic: ok: $*" >&2; }
bad() { fail=$((fail + 1)); echo "it_basic: FAIL: $*" >&2; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

finish() {
    [[ -n "$pid" ]] && kill -KILL "$pid" 2>/dev/null
    "$BROKER" stop "$T/kafka" >/dev/null 2>&1 || true
    if ((fail)); then echo "it_basic: kept $T for inspection" >&2; else rm -rf "$T"; fi
    echo "it_basic: $pass passed, $fail failed"
}
trap finish EXIT

counter() { "$B/creditctl" --db "$1" stats 2>/dev/null | awk -v k="$2" '$1 == k {print $2}'; }
seen() { # STORE: applied + duplicates + rejected
    echo $(( $(counter "$1" applied || echo 0) + $(counter "$1" duplicates || echo 0) + $(counter "$1" rejected || echo 0) ))
}

start_creditd() { # STORE LOG
    "$B/creditd" -X "bootstrap.servers=$BS" --db "$1" -X stats.interval_ms=500 \
        -X topic.ledger=credit.ledger > /dev/null 2>> "$2" &
    pid=$!
}
stop_creditd() { # -> exit code
    local rc=0
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" || rc=$?
    pid=""
    return $rc
}
wait_applied() { # STORE WANT SECONDS: every message applied and the outbox empty
    local deadline=$((SECONDS + $3))
    while (($(seen "$1") < $2)) || [[ "$(counter "$1" outbox)" != 0 ]]; do
        ((SECONDS < deadline)) || { echo "it_basic: $(seen "$1") of $2 applied, outbox $(counter "$1" outbox)" >&2; return 1; }
        [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null && { echo "it_basic: creditd died" >&2; return 1; }
        sleep 0.2
    done
}
wait_log() { # LOG PATTERN COUNT SECONDS: PATTERN appears COUNT times in LOG
    local deadline=$((SECONDS + $4))
    while (($(grep -c -- "$2" "$1" 2>/dev/null || true) < $3)); do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}
topic_json() { # TOPIC: every message value, one per line
    timeout 60 kcat -C -b "$BS" -t "$1" -e -q -f '%s\n' -X isolation.level=read_committed
}
# Output data, normalised for comparison: tick copies are ID/pN in Kafka.
norm() { jq -c '.data | (.event_id? // empty) |= sub("/p[0-9]+$"; "")' | sort; }
ref_kind() { jq -c "select(.type == \"$1\")" "$T/ref.out"; }

# ---- broker and topics ------------------------------------------------------
BS=$("$BROKER" start "$T/kafka") || { bad "broker start"; exit 1; }
echo "it_basic: broker at $BS" >&2
for tp in credit.events:4 credit.overage:3 credit.ledger:3 credit.rejected:1 credit.alerts:3 big.events:4; do
    "$BROKER" create-topic "$T/kafka" "${tp%%:*}" "${tp##*:}" >/dev/null || bad "create topic $tp"
done

# ---- 1. apply, compare with credit-replay -----------------------------------
"$B/credit-replay" --db "$T/ref" --out "$T/ref.out" "${FILES[@]}" 2>/dev/null || bad "credit-replay"
want=$("$DEMO" feed "$BS" credit.events "${FILES[@]}") || bad "feed"
echo "it_basic: produced $want messages" >&2
start_creditd "$T/store" "$T/creditd.log"
check "all $want messages applied, outbox delivered" wait_applied "$T/store" "$want" 120
"$B/creditctl" --db "$T/ref" balances --json > "$T/ref.balances"
"$B/creditctl" --db "$T/store" balances --json > "$T/balances"
check "balances equal credit-replay's" cmp -s "$T/ref.balances" "$T/balances"
ref_kind credit.overage | norm > "$T/ref.overage"
topic_json credit.overage | norm > "$T/overage"
check "overage topic == credit-replay overage events ($(wc -l < "$T/ref.overage"))" \
    cmp -s "$T/ref.overage" "$T/overage"
ref_kind credit.ledger | norm > "$T/ref.ledger"
topic_json credit.ledger | norm > "$T/ledger"
check "ledger topic == credit-replay ledger entries ($(wc -l < "$T/ref.ledger"))" \
    cmp -s "$T/ref.ledger" "$T/ledger"
ref_kind credit.alert | norm > "$T/ref.alerts"
topic_json credit.alerts | norm > "$T/alerts"
check "alerts topic == credit-replay alerts ($(wc -l < "$T/ref.alerts"), not none)" \
    eval 'test -s "$T/ref.alerts" && cmp -s "$T/ref.alerts" "$T/alerts"'
check "rejected topic: as many as credit-replay" \
    test "$(topic_json credit.rejected | wc -l)" = "$(ref_kind credit.rejected | wc -l)"
# The outbox relay produces on a thread of its own (README "The relay thread").
check "the relay runs on its own thread" grep -qx relay /proc/"$pid"/task/*/comm
check "SIGTERM: exit 0" stop_creditd

# ---- 2. restart: nothing re-applied, nothing re-sent --------------------------
before=$(seen "$T/store")
n_over=$(topic_json credit.overage | wc -l); n_led=$(topic_json credit.ledger | wc -l)
start_creditd "$T/store" "$T/creditd2.log"
check "restart: running (2 stats lines)" wait_log "$T/creditd2.log" "creditd: stats" 2 60
check "restart: nothing re-applied" test "$(seen "$T/store")" = "$before"
check "restart: no output re-sent" \
    test "$(topic_json credit.overage | wc -l) $(topic_json credit.ledger | wc -l)" = "$n_over $n_led"
printf '%s\t%s\n' o5 '{"specversion":"1.0","id":"it-adjust-1","source":"staff/credits","type":"org_credit.adjust","time":"2026-07-10T10:00:00Z","data":{"org":"o5","delta":"5"}}' \
    | timeout 60 kcat -P -b "$BS" -t credit.events -K "$(printf '\t')" -X partitioner=murmur2_random
check "restart: a new event is applied once" wait_applied "$T/store" $((before + 1)) 60
check "restart: its ledger entry is delivered once" \
    test "$(topic_json credit.ledger | grep -c '"event_id":"it-adjust-1"')" = 1
check "restart: SIGTERM exit 0" stop_creditd

# ---- 3. crash while applying and relaying -------------------------------------
big=$T/big.jsonl
"$B/gen-events" --orgs 200 --events 20000 --seed 7 --out "$big" 2>/dev/null
jq -c 'select(.type != "clock.tick")' "$big" > "$T/big2.jsonl" 2>/dev/null
nbig=$(wc -l < "$T/big2.jsonl")
if ((nbig < 1000)); then
    bad "crash: could not generate events with build/gen-events"
else
    awk -F'"org":"' '{split($2, a, "\""); printf "%s\t%s\n", a[1], $0}' "$T/big2.jsonl" \
        | timeout 120 kcat -P -b "$BS" -t big.events -K "$(printf '\t')" -X partitioner=murmur2_random \
            -X acks=all -X enable.idempotence=true -X linger.ms=20
    crash_args=(-X topic.input=big.events -X topic.overage=big.overage -X topic.ledger=big.ledger
                -X topic.rejected=big.rejected -X output.alerts=big.alerts -X batch.max_messages=200)
    for tp in big.overage big.ledger big.rejected big.alerts; do "$BROKER" create-topic "$T/kafka" "$tp" 3 >/dev/null; done
    kills=0
    for round in 1 2 3; do
        "$B/creditd" -X "bootstrap.servers=$BS" --db "$T/crash" "${crash_args[@]}" >/dev/null 2>> "$T/crash.log" &
        pid=$!
        # Kill it once it is past its start-up and applying (bounded wait).
        deadline=$((SECONDS + 60))
        while (($(seen "$T/crash") < round * nbig / 4)) && ((SECONDS < deadline)) && kill -0 "$pid" 2>/dev/null; do
            sleep 0.05
        done
        kill -KILL "$pid" 2>/dev/null && kills=$((kills + 1))
        wait "$pid" 2>/dev/null
        pid=""
    done
    "$B/creditd" -X "bootstrap.servers=$BS" --db "$T/crash" "${crash_args[@]}" >/dev/null 2>> "$T/crash.log" &
    pid=$!
    grep -h "read back\|WARNING" "$T/crash.log" >&2 || true
    check "crash ($kills SIGKILLs): every event applied once after restart" wait_applied "$T/crash" "$nbig" 180
    check "crash: applied+duplicates+rejected == messages" test "$(seen "$T/crash")" = "$nbig"
    check "crash: SIGTERM exit 0" stop_creditd
    for tp in big.overage big.ledger big.alerts; do
        topic_json "$tp" | jq -r .id | sort | uniq -d > "$T/$tp.dups"
        check "crash: no duplicate ids in $tp ($(topic_json "$tp" | wc -l) messages)" test ! -s "$T/$tp.dups"
    done
    "$B/credit-replay" --db "$T/crash-ref" --out "$T/crash-ref.out" "$T/big2.jsonl" 2>/dev/null
    check "crash: output counts equal credit-replay's" test \
        "$(topic_json big.overage | wc -l) $(topic_json big.ledger | wc -l) $(topic_json big.alerts | wc -l)" = \
        "$(jq -c 'select(.type == "credit.overage")' "$T/crash-ref.out" | wc -l) $(jq -c 'select(.type == "credit.ledger")' "$T/crash-ref.out" | wc -l) $(jq -c 'select(.type == "credit.alert")' "$T/crash-ref.out" | wc -l)"
    "$B/creditctl" --db "$T/crash-ref" balances --json > "$T/crash-ref.balances"
    "$B/creditctl" --db "$T/crash" balances --json > "$T/crash.balances"
    check "crash: balances equal credit-replay's" cmp -s "$T/crash-ref.balances" "$T/crash.balances"
fi
((fail == 0))
