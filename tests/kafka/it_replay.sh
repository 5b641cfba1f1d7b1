#!/usr/bin/env bash
# Integration test on a real Kafka 4 broker: bad input through Kafka lands on
# the dead-letter topic with reason, partition and offset while the stream
# goes on, and `credit-replay --from-kafka` of the live input equals the live
# store.  Closing line: "it_replay: N passed, N failed".
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
. "$ROOT/tests/kafka/lib.sh"
cd "$ROOT"
NAME=it_replay
B=build
BROKER=tests/kafka/broker.sh
PY=/usr/bin/python3
T=$(mktemp -d "${TMPDIR:-/tmp}/it_replay.XXXXXX")
SEED=none
pass=0 fail=0 t0=$SECONDS pid="" prod_pid="" ref_pid=""
trap finish EXIT   # lib.sh: stops what runs, prints the closing line, exits 1 on any failure
# STORE: applied + duplicates + rejected, and the outbox (lib.sh read_stats)
seen() { read_stats "$1"; echo "$SEEN"; }
outbox() { read_stats "$1"; echo "$OUTBOX"; }

BS=$(bash "$BROKER" start "$T/kafka") || { bad "broker start"; exit 1; }
for tp in credit.events:4 credit.overage:1 credit.ledger:1 credit.rejected:1 credit.alerts:1; do
    bash "$BROKER" create-topic "$T/kafka" "${tp%%:*}" "${tp##*:}" >/dev/null || bad "create topic $tp"
done

# Produce the worked examples and the bad input keyed by data.org (murmur2),
# plus an org "ow*" on partition 0 and one of its events sent on purpose to
# partition 1 (after it: the audit replay reads partitions in order, so the
# org is pinned to 0 there as in the live run).
# tests/scenarios/hostile.jsonl: every field at its maximum length (once
# enough to stop every creditd), numbers beyond 64 bits, a long multi-byte
# unknown type.  Examples A-F and H: example C raises the alerts checked
# below, example H voids (refunds, a credit.overage.void on the invoicing
# topic, already_voided and unknown_usage on the dead-letter topic);
# it_basic compares the alerts topic of its own stream, and ex_G's exact
# alerts are checked by tests/scenarios/alerts.sh.
N=$("$PY" - "$BS" tests/scenarios/ex_[A-FH].jsonl tests/scenarios/bad_input.jsonl tests/scenarios/hostile.jsonl "$T/msg" <<'PYEOF'
import json, sys
from confluent_kafka import Producer
p = Producer({"bootstrap.servers": sys.argv[1], "partitioner": "murmur2_random",
              "enable.idempotence": True, "compression.type": "none", "acks": "all"})
def murmur2(data):  # Kafka's (Java) murmur2, as librdkafka's murmur2_random
    m, r, seed, length = 0x5bd1e995, 24, 0x9747b28c, len(data)
    h = (seed ^ length) & 0xffffffff
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & 0xffffffff; k ^= k >> r; k = (k * m) & 0xffffffff
        h = (h * m) & 0xffffffff; h ^= k
    rest = length % 4; tail = data[length - rest:]
    if rest == 3: h ^= tail[2] << 16
    if rest >= 2: h ^= tail[1] << 8
    if rest >= 1: h ^= tail[0]; h = (h * m) & 0xffffffff
    h ^= h >> 13; h = (h * m) & 0xffffffff; h ^= h >> 15
    return h
errors, n = [], 0
def report(err, msg):
    if err: errors.append(str(err))
    elif msg.key() and (murmur2(msg.key()) & 0x7fffffff) % 4 != msg.partition() and msg.value().find(b"wp-1") < 0:
        errors.append(f"key {msg.key()} on partition {msg.partition()}, murmur2 says otherwise")
for path in sys.argv[2:-1]:
    for line in open(path, "rb").read().split(b"\n"):
        if path.endswith("bad_input.jsonl") and not line: continue
        if not line: continue
        try: ev = json.loads(line)
        except Exception: ev = None
        if isinstance(ev, dict) and ev.get("type") == "clock.tick":
            # The clock reaches every partition, each copy with its own id, as
            # credit-tick sends it: a keyless tick would land on a random
            # partition, and partition clocks (and so the §11 guard) would
            # differ from run to run.
            for part in range(4):
                copy = dict(ev, id=f"{ev['id']}-p{part}")
                p.produce("credit.events", json.dumps(copy).encode(), partition=part,
                          on_delivery=report); n += 1
            continue
        try: key = ev["data"]["org"].encode()
        except Exception: key = None
        p.produce("credit.events", line, key=key, on_delivery=report); n += 1
p.flush(60)
ow = next(f"ow{i}" for i in range(100) if (murmur2(f"ow{i}".encode()) & 0x7fffffff) % 4 == 0)
for i in ("wp-0", "wp-1"):
    ev = {"specversion": "1.0", "id": i, "source": "test/kafka", "type": "org_credit.set",
          "time": "2026-03-06T10:00:00Z", "data": {"org": ow, "value": "10"}}
    if i == "wp-0":
        p.produce("credit.events", json.dumps(ev).encode(), key=ow.encode(), on_delivery=report); n += 1
    else:  # sent by the shell once creditd has applied everything else
        open(sys.argv[-1] + ".wp1", "w").write(ow + "\t" + json.dumps(ev) + "\n")
p.flush(60)
if errors: sys.exit("produce failed: " + errors[0])
print(n)
PYEOF
) || { bad "produce"; exit 1; }
ok "produced $N messages"

# Retention off (retention_days 0): the examples are separate timelines
# that overlap in time, so on a shared clock most of them would be too_late.
# The future-time guard stays at its default: ticks reach every partition,
# so its rejects (ex_F's u-bad, twice) are the same in every run.  Both are
# tested in detail in tests/scenarios and tests/unit.
GUARDS_OFF="-X credit.retention_days=0"
"$B/creditd" -X "bootstrap.servers=$BS" --db "$T/live" -X stats.interval_ms=500 $GUARDS_OFF >/dev/null 2>"$T/creditd.log" &
pid=$!
wait_seen() { # COUNT: applied+duplicates+rejected reach COUNT and the outbox is empty (bounded)
    local deadline=$((SECONDS + 90))
    while (( $(seen "$T/live") < $1 )) || [[ "$(outbox "$T/live")" != 0 ]]; do
        (( SECONDS < deadline )) && kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.2
    done
}
wait_seen "$N"
# Now the wrong-partition event, on partition 1 (its org is pinned to 0).
kcat -P -b "$BS" -t credit.events -p 1 -K $'\t' < "$T/msg.wp1" || bad "produce wrong-partition event"
N=$((N + 1))
wait_seen "$N"
check "creditd applied all $N messages and delivered its outbox" \
    test "$(seen "$T/live")" -eq "$N" -a "$(outbox "$T/live")" = 0
rc=0; stop_creditd "$pid" || rc=$?; pid=""
check "creditd exits 0 on SIGTERM" test "$rc" -eq 0

# Dead-letter topic: one record per rejected message, with reason, partition, offset.
timeout 60 kcat -C -b "$BS" -t credit.rejected -e -q -f '%s\n' > "$T/rejected.jsonl"
check "dead-letter records carry reason, topic, partition and offset" "$PY" - "$T/rejected.jsonl" <<'PYEOF'
import json, sys
# every record strict UTF-8 JSON (bytes, decoded strictly)
recs = [json.loads(l.decode("utf-8"))["data"] for l in open(sys.argv[1], "rb").read().splitlines()]
want = {"invalid_json": 2, "invalid_event": 9, "unknown_type": 2, "id_conflict": 2, "overflow": 1,
        "no_org_credit": 1, "no_project_credit": 1, "allocation_exceeds_org_credit": 1,
        "value_changed": 1, "insufficient_credit": 1, "wrong_partition": 1,
        "time_in_future": 2,  # ex_F's u-bad, sent twice (§11: not remembered)
        "already_voided": 1, "unknown_usage": 1}  # ex_H's v-3 and v-4 (§13)
got = {}
for r in recs:
    got[r["reason"]] = got.get(r["reason"], 0) + 1
    assert r["topic"] == "credit.events" and isinstance(r["partition"], int) and isinstance(r["offset"], int), r
    assert r["message"], r
wp = [r for r in recs if r["reason"] == "wrong_partition"]
assert wp and wp[0]["event_id"] == "wp-1" and "partition" in wp[0]["message"], wp
assert got == want, f"reasons {got} != {want}"
PYEOF

# The audit replay of the live log equals the live store.
"$B/credit-replay" --db "$T/audit" --from-kafka "$BS" --retention-days 0 --out "$T/audit.out" 2>"$T/audit.log"
check "credit-replay --from-kafka exits 0" test $? -eq 0
"$B/creditctl" --db "$T/live" balances --json > "$T/live.bal"
"$B/creditctl" --db "$T/audit" balances --json > "$T/audit.bal"
check "audit replay balances == live balances" cmp -s "$T/live.bal" "$T/audit.bal"
check "audit replay saw every message" grep -q "credit-replay: $N lines" "$T/audit.log"
timeout 60 kcat -C -b "$BS" -t credit.overage -e -q -f '%s\n' | sort > "$T/live.overage"
jq -c 'select(.type == "credit.overage" or .type == "credit.overage.void")' "$T/audit.out" | sort > "$T/audit.overage"
check "audit replay overage events == the invoicing topic" cmp -s "$T/live.overage" "$T/audit.overage"
check "the invoicing topic carries ex_H's overage void" grep -q '"type":"credit.overage.void".*"voids":"overage/o9/1"' "$T/live.overage"
timeout 60 kcat -C -b "$BS" -t credit.alerts -e -q -f '%s\n' | sort > "$T/live.alerts"
jq -c 'select(.type == "credit.alert")' "$T/audit.out" | sort > "$T/audit.alerts"
check "audit replay alerts == the alerts topic (example C raises some)" \
    eval 'test -s "$T/live.alerts" && cmp -s "$T/live.alerts" "$T/audit.alerts"'
no_progress_in() { ! grep -q "messages (" "$1" && ! grep -q $'\r' "$1"; }
# On a terminal (script(1) gives it one): the progress line counts the
# messages against the partitions' end offsets captured at start; the last
# line is all of them, and the outputs are those of the run without one.
timeout 120 script -qec "$B/credit-replay --db $T/audit-tty --from-kafka $BS --retention-days 0 --out $T/audit-tty.out" \
    /dev/null </dev/null >"$T/audit-tty.txt" 2>&1
check "--from-kafka on a terminal exits 0" test $? -eq 0
check "--from-kafka progress: $N/$N messages (100%), events/s, ETA 0:00" \
    grep -Eq "$N lines, $N/$N messages \(100%\), [0-9.]+[kM]? events/s, ETA 0:00" "$T/audit-tty.txt"
check "--from-kafka progress: then the summary on its own line" \
    grep -q "^credit-replay: $N lines: " "$T/audit-tty.txt"
check "--from-kafka: outputs identical with and without a terminal" cmp -s "$T/audit.out" "$T/audit-tty.out"
check "--from-kafka without a terminal: stderr has no progress line" \
    no_progress_in "$T/audit.log"
if "$B/credit-replay" --db "$T/audit" --from-kafka "$BS" --out /dev/null 2>/dev/null; then
    bad "--from-kafka into a used store must be refused"
else ok "--from-kafka refuses a used store"; fi
