#!/usr/bin/env bash
# Integration test of the producer tools against a real Kafka 4 broker
# (tests/kafka/broker.sh):
#
# 1. credit-produce puts tests/scenarios/ex_C.jsonl (7 events of org o3) on a
#    4-partition credit.events: all 7 arrive, verbatim, keyed o3, on the
#    partition Java's murmur2 partitioner chooses for "o3" (computed here
#    independently in Python).
# 2. credit-tick --time 2026-04-01T00:00:00Z puts exactly one clock.tick on
#    each partition, ids tick-2026-04-01T00:00:00Z-pP, all distinct.
# 3. credit-tick with a bad --time fails (exit 1 or 2) with a message.
# Needs make build/credit-produce build/credit-tick; kcat, jq, /usr/bin/python3.
# Closing line: "it_tools: N passed, N failed".
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
B=build
BROKER=tests/kafka/broker.sh
PY=/usr/bin/python3
TOPIC=credit.events
PARTS=4
INPUT=tests/scenarios/ex_C.jsonl
TICK_TIME=2026-04-01T00:00:00Z
T=$(mktemp -d "${TMPDIR:-/tmp}/it_tools.XXXXXX")
pass=0 fail=0

ok() { pass=$((pass + 1)); echo "it_tools: ok: $*" >&2; }
bad() { fail=$((fail + 1)); echo "it_tools: FAIL: $*" >&2; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
to() { local f=$1; shift; "$@" 2>"$f"; } # FILE CMD...: CMD with stderr to FILE

finish() {
    bash "$BROKER" stop "$T/kafka" >/dev/null 2>&1 || true
    if ((fail)); then echo "it_tools: kept $T for inspection" >&2; else rm -rf "$T"; fi
    echo "it_tools: $pass passed, $fail failed"
    if ((fail)); then exit 1; fi
    exit 0
}
trap finish EXIT

# Java's Utils.murmur2 / toPositive, then the default partitioner's modulo.
java_partition() { # PARTITIONS KEY...: "PARTITION KEY" per key
    "$PY" - "$@" <<'EOF'
import sys

def murmur2(data):
    m, r = 0x5bd1e995, 24
    h = (0x9747b28c ^ len(data)) & 0xffffffff
    n4 = len(data) // 4
    for i in range(n4):
        k = int.from_bytes(data[4 * i:4 * i + 4], "little")
        k = (k * m) & 0xffffffff
        k ^= k >> r
        k = (k * m) & 0xffffffff
        h = (h * m) & 0xffffffff
        h ^= k
    tail, rest = len(data) % 4, data[4 * n4:]
    if tail >= 3: h ^= rest[2] << 16
    if tail >= 2: h ^= rest[1] << 8
    if tail >= 1:
        h ^= rest[0]
        h = (h * m) & 0xffffffff
    h ^= h >> 13
    h = (h * m) & 0xffffffff
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h   # Java int

# Kafka's UtilsTest.testMurmur2 vectors: the implementation must match them.
for s, want in [("21", -973932308), ("foobar", -790332482),
                ("a-little-bit-long-string", -985981536),
                ("a-little-bit-longer-string", -1486304829),
                ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
                ("abc", 479470107)]:
    got = murmur2(s.encode())
    if got != want:
        sys.exit("murmur2(%r) = %d, Kafka says %d" % (s, got, want))
for key in sys.argv[2:]:
    print((murmur2(key.encode()) & 0x7fffffff) % int(sys.argv[1]), key)
EOF
}

# Every message of TOPIC as kcat prints it with FORMAT, polled until at least
# WANT lines are there or SECONDS pass (the last read is printed either way).
consume() { # FORMAT WANT SECONDS [TOPIC]
    local deadline=$((SECONDS + $3)) out
    while :; do
        out=$(timeout 30 kcat -C -q -b "$BS" -t "${4:-$TOPIC}" -e -o beginning -f "$1" 2>>"$T/kcat.err")
        (($(printf '%s' "$out" | grep -c '') >= $2)) || ((SECONDS >= deadline)) || continue
        printf '%s\n' "$out"
        return 0
    done
}

for tool in credit-produce credit-tick; do
    [[ -x "$B/$tool" ]] || { bad "$B/$tool missing (make $B/$tool)"; exit 1; }
done
BS=$(bash "$BROKER" start "$T/kafka") || { bad "broker start"; exit 1; }
bash "$BROKER" create-topic "$T/kafka" "$TOPIC" "$PARTS" >/dev/null || { bad "create-topic"; exit 1; }

# ---- 1. credit-produce -------------------------------------------------------
want=$(grep -c . "$INPUT")
expect=$(java_partition "$PARTS" o3 | cut -d' ' -f1)
[[ -n "$expect" ]] || { bad "python murmur2"; exit 1; }
echo "it_tools: Java murmur2 puts o3 on partition $expect of $PARTS" >&2
check "credit-produce exits 0" to "$T/produce.err" "$B/credit-produce" -b "$BS" "$INPUT"
check "credit-produce reports $want messages" \
    grep -q "credit-produce: $want messages produced to $TOPIC" "$T/produce.err"
consume '%p %k\n' "$want" 30 > "$T/keys"
check "all $want messages arrived" test "$(wc -l < "$T/keys")" -eq "$want"
check "every o3 message is on partition $expect" \
    test "$(grep -c "^$expect o3\$" "$T/keys")" -eq "$want"
consume '%s\n' "$want" 30 | sort > "$T/values"
check "values are the input lines verbatim" cmp -s "$T/values" <(sort "$INPUT")

# Many keys, from stdin, to another topic (-t): each on Java's partition.
keys=(o1 o2 o4 org-17 acme "a-little-bit-longer-string" x yz 12345 zz-top)
bash "$BROKER" create-topic "$T/kafka" keys.check "$PARTS" >/dev/null || bad "create-topic keys.check"
for k in "${keys[@]}"; do
    printf '{"type":"usage","data":{"org":"%s"}}\n' "$k"
done | to "$T/keys.err" "$B/credit-produce" -b "$BS" -t keys.check -
check "credit-produce from stdin to -t keys.check" test "${PIPESTATUS[1]}" -eq 0
consume '%p %k\n' "${#keys[@]}" 30 keys.check | sort > "$T/keys2"
check "${#keys[@]} keys each on Java's partition" cmp -s "$T/keys2" \
    <(java_partition "$PARTS" "${keys[@]}" | sort)

# ---- 2. credit-tick ----------------------------------------------------------
check "credit-tick exits 0" to "$T/tick.err" "$B/credit-tick" -b "$BS" --time "$TICK_TIME"
consume '%p %s\n' $((want + PARTS)) 30 | grep '"clock.tick"' > "$T/ticks"
check "one tick per partition" \
    test "$(cut -d' ' -f1 "$T/ticks" | sort -n | tr '\n' ' ')" = "0 1 2 3 "
ids_ok() {
    local p json
    while read -r p json; do
        [[ "$(jq -r '.id' <<<"$json")" == "tick-$TICK_TIME-p$p" ]] || return 1
        [[ "$(jq -r '[.specversion, .source, .type, .time] | join(" ")' <<<"$json")" == \
            "1.0 clock clock.tick $TICK_TIME" ]] || return 1
    done < "$T/ticks"
}
check "tick ids are tick-TIME-pP, fields right" ids_ok
check "tick ids are distinct" \
    test "$(cut -d' ' -f2- "$T/ticks" | jq -r .id | sort -u | wc -l)" -eq "$PARTS"

# ---- 3. bad --time -----------------------------------------------------------
"$B/credit-tick" -b "$BS" --time 2026-04-31T00:00:00Z 2>"$T/badtime.err"
rc=$?
check "credit-tick with a bad --time exits 1 or 2 (got $rc)" test "$rc" -eq 1 -o "$rc" -eq 2
check "credit-tick with a bad --time says why" grep -q -- "--time" "$T/badtime.err"
