#!/usr/bin/env bash
# Smoke test of the test broker: start a real Kafka broker, create a
# 3-partition topic, produce 100 messages with kcat, consume them back, stop.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BROKER="$HERE/broker.sh"
DIR="$(mktemp -d "${TMPDIR:-/tmp}/kafka-smoke.XXXXXX")"
TOPIC=smoke
N=100
ok=0

finish() {
    "$BROKER" stop "$DIR" || true
    if ((ok)); then
        rm -rf "$DIR"
        echo "kafka-smoke: 1 passed, 0 failed"
    else
        if [[ -f "$DIR/broker.log" ]]; then
            echo "---- last lines of $DIR/broker.log:" >&2
            tail -n 40 "$DIR/broker.log" >&2
        fi
        echo "kafka-smoke: broker dir kept in $DIR" >&2
        echo "kafka-smoke: 0 passed, 1 failed"
        exit 1
    fi
}
trap finish EXIT

fail() { echo "kafka-smoke: FAIL: $*" >&2; exit 1; }

t0=$SECONDS
BS="$("$BROKER" start "$DIR")" || fail "broker did not start"
echo "kafka-smoke: broker at $BS after $((SECONDS - t0))s" >&2

"$BROKER" create-topic "$DIR" "$TOPIC" 3 || fail "create-topic"

for i in $(seq 1 "$N"); do echo "key-$i:value-$i"; done \
    | timeout 60 kcat -P -b "$BS" -t "$TOPIC" -K: -X acks=all \
    || fail "kcat produce failed"

out="$(timeout 60 kcat -C -b "$BS" -t "$TOPIC" -e -o beginning -q -f '%p %k %s\n')" \
    || fail "kcat consume failed"

count="$(printf '%s\n' "$out" | grep -c '^[0-9]* key-[0-9]* value-[0-9]*$' || true)"
distinct="$(printf '%s\n' "$out" | awk '{print $3}' | sort -u | grep -c . || true)"
parts="$(printf '%s\n' "$out" | awk '{print $1}' | sort -u | grep -c . || true)"
echo "kafka-smoke: consumed $count messages ($distinct distinct) from $parts partitions" >&2
[[ "$count" == "$N" ]] || fail "expected $N messages, got $count"
[[ "$distinct" == "$N" ]] || fail "expected $N distinct values, got $distinct"
[[ "$parts" == 3 ]] || fail "expected messages in 3 partitions, got $parts"
ok=1
