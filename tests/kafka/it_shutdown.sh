#!/usr/bin/env bash
# Stopping and failing fast, with Kafka faults injected: no real broker here,
# but a port where nothing listens and build/kmock (librdkafka's mock cluster
# with fault injection, tests/kafka/kmock.c).  Every wait is bounded.
#
# 1. creditd waiting at start-up for an unreachable broker: SIGTERM stops it
#    within 3 s, exit 0 ("stopped during start-up").
# 2. credit-replay --from-kafka of an unreachable broker exits 2 within 15 s
#    naming the cause (no broker reachable), not after an idle timeout (the
#    other causes, on a real broker: it_faults.sh).
# 3. creditd in its start-up read-back of the outputs (an output partition
#    holds a message past the confirmed offset; every Fetch fails with a
#    retriable error): SIGTERM stops it within 3 s, exit 0, store unchanged.
# 4. creditd running with undelivered outputs (every Produce fails with a
#    retriable error) when the broker goes down: SIGTERM stops it within
#    shutdown.flush_timeout_ms (2 s) + 3 s, exit 0, the outbox keeps the
#    entries; once the broker is back, a restart delivers each output once
#    (as many as credit-replay of the same events, no id twice).
# Needs make build/creditd build/kmock build/credit-replay build/credit-produce;
# kcat, jq.  Closing line: "it_shutdown: N passed, N failed".
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
. "$ROOT/tests/kafka/lib.sh"
cd "$ROOT"
NAME=it_shutdown
B=build
BROKER=tests/kafka/broker.sh
T=$(mktemp -d "${TMPDIR:-/tmp}/it_shutdown.XXXXXX")
SEED=none
NOWHERE=127.0.0.1:1   # nothing listens there: connection refused
FLUSH_MS=2000
API_PRODUCE=0 API_FETCH=1 NOT_LEADER=6 NOT_ENOUGH_REPLICAS=19
pass=0 fail=0 t0=$SECONDS pid="" prod_pid="" ref_pid=""
trap finish EXIT   # lib.sh: stops what runs, prints the closing line, exits 1 on any failure

now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
wait_log() { # FILE PATTERN SECONDS
    local deadline=$((SECONDS + $3))
    until grep -q -- "$2" "$1" 2>/dev/null; do
        ((SECONDS < deadline)) || return 1
        alive "$pid" || return 1
        sleep 0.05
    done
}
# SIGTERM creditd ($pid), at most BOUND seconds: sets rc and took (ms).
term_within() { # BOUND
    local t=$(now_ms)
    rc=0; stop_creditd "$pid" "$1" || rc=$?; pid=""
    took=$(( $(now_ms) - t ))
}
start_creditd() { # LOG [ARGS...]
    local log=$1; shift
    "$B/creditd" -X "bootstrap.servers=$BS" --db "$T/store" -X stats.interval_ms=200 \
        -X "shutdown.flush_timeout_ms=$FLUSH_MS" "$@" >/dev/null 2>"$log" &
    pid=$!
}

# ---- 1. start-up wait for an unreachable broker ------------------------------
"$B/creditd" -X "bootstrap.servers=$NOWHERE" --db "$T/nowhere" >/dev/null 2>"$T/c1.log" &
pid=$!
check "creditd reports that no broker is reachable" wait_log "$T/c1.log" "brokers are down" 20
term_within 10
check "SIGTERM while waiting for a broker at start-up: exit 0 within 3 s (exit $rc, $took ms)" \
    test "$rc" = 0 -a "$took" -lt 3000
check "... saying it stopped during start-up" grep -q "stopped during start-up" "$T/c1.log"

# ---- 2. credit-replay --from-kafka fails fast, naming the cause ----------------
t=$(now_ms); rrc=0
timeout 60 "$B/credit-replay" --db "$T/r1" --from-kafka "$NOWHERE" --out /dev/null 2>"$T/r1.log" || rrc=$?
took=$(( $(now_ms) - t ))
check "credit-replay --from-kafka, no broker: exit 2 within 15 s (exit $rrc, $took ms)" \
    test "$rrc" = 2 -a "$took" -lt 15000
check "... naming the cause" grep -q "no Kafka broker reachable.*Connection refused" "$T/r1.log"

coproc KM { exec "$B/kmock" credit.events:1 credit.overage:1 credit.ledger:1 credit.rejected:1 credit.alerts:1 2>"$T/kmock.log"; }
read -r -t 30 -u "${KM[0]}" BS || { bad "kmock start"; exit 1; }
km() { # COMMAND: one kmock command, its answer must be ok
    local reply
    echo "$*" >&"${KM[1]}" && read -r -t 30 -u "${KM[0]}" reply && [[ "$reply" == ok ]] \
        || { bad "kmock $*: ${reply:-no answer}"; return 1; }
}
note "kmock at $BS"

# ---- 3. SIGTERM during the start-up read-back --------------------------------
"$B/credit-produce" -b "$BS" tests/scenarios/ex_C.jsonl 2>/dev/null || bad "produce ex_C"
start_creditd "$T/c3a.log"
deadline=$((SECONDS + 30))
while read_stats "$T/store"; ((SEEN < 7)) || ((OUTBOX > 0)); do
    ((SECONDS < deadline)) && alive "$pid" || break
    sleep 0.1
done
check "first run applied ex_C and delivered its outputs ($SEEN seen, outbox $OUTBOX)" test "$SEEN" = 7 -a "$OUTBOX" = 0
term_within 30
check "first run: SIGTERM exit 0" test "$rc" = 0
echo foreign | timeout 30 kcat -P -b "$BS" -t credit.overage -p 0 || bad "produce a foreign output"
km errors $API_FETCH 1000000 $NOT_LEADER
start_creditd "$T/c3b.log"
check "restart reads the outputs back (Fetch failing)" wait_log "$T/c3b.log" "reading back" 30
term_within 10
check "SIGTERM during the read-back: exit 0 within 3 s (exit $rc, $took ms)" test "$rc" = 0 -a "$took" -lt 3000
check "... saying it stopped during start-up" grep -q "stopped during start-up" "$T/c3b.log"
read_stats "$T/store"
check "store unchanged ($SEEN seen, outbox $OUTBOX)" test "$SEEN" = 7 -a "$OUTBOX" = 0
km clear-errors $API_FETCH

# ---- 4. SIGTERM with undelivered outputs while the broker is down ---------------
"$B/credit-produce" -b "$BS" tests/scenarios/ex_D.jsonl 2>/dev/null || bad "produce ex_D"
nd=$(grep -c . tests/scenarios/ex_D.jsonl)
km errors $API_PRODUCE 1000000 $NOT_ENOUGH_REPLICAS   # creditd's outputs are not delivered
start_creditd "$T/c4a.log"
deadline=$((SECONDS + 30))
while read_stats "$T/store"; ((SEEN < 7 + nd)) || ((OUTBOX == 0)); do
    ((SECONDS < deadline)) && alive "$pid" || break
    sleep 0.1
done
check "ex_D applied, its outputs undelivered ($SEEN seen, outbox $OUTBOX)" test "$SEEN" = $((7 + nd)) -a "$OUTBOX" -gt 0
kept=$OUTBOX
km down
check "creditd sees the broker go" wait_log "$T/c4a.log" "brokers are down" 30
term_within 30
check "SIGTERM, broker down, outbox not empty: exit 0 within $FLUSH_MS ms + 3 s (exit $rc, $took ms)" \
    test "$rc" = 0 -a "$took" -lt $((FLUSH_MS + 3000))
check "... the flush timed out" grep -q "flush timed out" "$T/c4a.log"
read_stats "$T/store"
check "the outbox keeps the undelivered entries ($OUTBOX of $kept)" test "$OUTBOX" = "$kept"
km up
km clear-errors $API_PRODUCE
start_creditd "$T/c4b.log"
deadline=$((SECONDS + 60))
while read_stats "$T/store"; ((OUTBOX > 0)); do
    ((SECONDS < deadline)) && alive "$pid" || break
    sleep 0.1
done
check "after the restart the outbox is delivered" test "$OUTBOX" = 0
term_within 30
check "restart: SIGTERM exit 0" test "$rc" = 0
cat tests/scenarios/ex_C.jsonl tests/scenarios/ex_D.jsonl > "$T/ref.jsonl"
"$B/credit-replay" --db "$T/ref" --out "$T/ref.out" "$T/ref.jsonl" 2>/dev/null || bad "credit-replay"
for kind in overage ledger; do
    timeout 60 kcat -C -b "$BS" -t "credit.$kind" -e -q -f '%s\n' | grep -v '^foreign$' > "$T/$kind.raw"
    want=$(grep -c "\"type\":\"credit.$kind\"" "$T/ref.out")
    check "credit.$kind: as many outputs as credit-replay ($(wc -l < "$T/$kind.raw") vs $want)" \
        test "$(wc -l < "$T/$kind.raw")" = "$want"
    check "credit.$kind: no output id twice" test -z "$(dup_ids "$T/$kind.raw")"
done
