#!/usr/bin/env bash
# Broker outages under load (tests/kafka/broker.sh): the one Kafka broker is
# stopped, then crashed, while creditd is in the middle of a stream; creditd
# must neither exit nor lose or repeat anything, and must resume by itself
# (the same process throughout) when the broker is back.
#
#   tests/kafka/it_broker_restart.sh
#
# Environment (all optional):
#   IT_BR_SEED    gen-events seed (default: random, printed)
#   IT_BR_EVENTS  events generated (default 80000)
#   IT_BR_ORGS    organisations (default 800)
#   IT_BR_OUTAGE  seconds each outage is observed (default 10)
#
# 1. gen-events writes the stream; it is produced while creditd starts
#    (credit-produce for the stretches between ticks, credit-tick for each
#    tick, to a 4-partition topic) and the producer finishes before the first
#    outage. creditd runs with a small outbox.max_pending and a small
#    prefetch, so that it has input left to fetch and outputs left to deliver
#    when the broker goes away.
# 2. Outage 1 (clean): once creditd made progress, `broker.sh stop`. With the
#    broker gone, creditd must still have work (messages not applied or
#    outbox entries not delivered) and must stay alive for IT_BR_OUTAGE
#    seconds (its CPU time in that window is reported). `broker.sh start` on
#    the same directory; creditd must resume (the counters move again).
# 3. Outage 2 (crash): as soon as creditd resumed, `broker.sh kill`
#    (SIGKILL), same checks, `broker.sh start`.
# 4. The same creditd finishes: every message applied exactly once
#    (applied+duplicates+rejected == messages, duplicates == the generator's
#    re-sends), outbox empty, SIGTERM exits 0; balances byte-identical to
#    credit-replay of the same events; the overage and ledger topics hold
#    exactly credit-replay's outputs (multisets of whole messages, a tick's
#    -pP suffix removed from event_id) with no id twice; no dead letters;
#    creditd's group offsets (for lag tools) are at the end of every input
#    partition (the last batches ran with the broker up).
# Needs make all build/gen-events; kcat, jq, python3-confluent-kafka.
# Closing line: "it_broker_restart: N passed, N failed".
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
B=build
BROKER=tests/kafka/broker.sh
NAME=it_broker_restart
T=$(mktemp -d "${TMPDIR:-/tmp}/$NAME.XXXXXX")
PARTS=4
EVENTS=${IT_BR_EVENTS:-80000}
ORGS=${IT_BR_ORGS:-800}
OUTAGE=${IT_BR_OUTAGE:-10}
SEED=${IT_BR_SEED:-$(( ${SRANDOM:-$$} % 1000000 + 1 ))}
pass=0 fail=0 pid="" prod_pid="" ref_pid="" t0=$SECONDS

ok() { pass=$((pass + 1)); echo "$NAME: ok: $*" >&2; }
bad() { fail=$((fail + 1)); echo "$NAME: FAIL: $*" >&2; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; return 1; fi; }
note() { echo "$NAME: [$((SECONDS - t0))s] $*" >&2; }

finish() {
    local p
    for p in "$pid" "$prod_pid" "$ref_pid"; do
        [[ -n "$p" ]] && kill -KILL "$p" 2>/dev/null && wait "$p" 2>/dev/null
    done
    "$BROKER" stop "$T/kafka" >/dev/null 2>&1 || true
    if ((fail)); then
        echo "$NAME: seed $SEED; kept $T for inspection" >&2
    else
        rm -rf "$T"
    fi
    echo "$NAME: $pass passed, $fail failed"
    ((fail == 0)) || exit 1
    exit 0
}
trap finish EXIT

# ---- store counters ----------------------------------------------------------
# One creditctl call: sets APPLIED DUPS REJECTED OUTBOX SEEN (0 before the
# store exists).
read_stats() { # STORE
    local out
    out=$("$B/creditctl" --db "$1" stats 2>/dev/null) || out=""
    read -r APPLIED DUPS REJECTED OUTBOX < <(awk '
        $1 == "applied" {a = $2} $1 == "duplicates" {d = $2} $1 == "rejected" {r = $2}
        $1 == "outbox" {o = $2}
        END {print a + 0, d + 0, r + 0, o + 0}' <<<"$out")
    SEEN=$((APPLIED + DUPS + REJECTED))
}

alive() { [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; } # utime+stime

now_ms() { date +%s%3N; }

# Wait until creditd made progress: more messages seen than S or an outbox
# smaller than O (delivery), creditd staying alive; bounded by SECONDS.
wait_progress() { # S O SECONDS
    local deadline=$((SECONDS + $3))
    while :; do
        read_stats "$T/store"
        ((SEEN > $1 || OUTBOX < $2)) && return 0
        alive "$pid" || { echo "$NAME: creditd exited" >&2; return 1; }
        ((SECONDS < deadline)) || { echo "$NAME: timeout: seen $SEEN, outbox $OUTBOX" >&2; return 1; }
        sleep 0.02
    done
}

# After an outage: creditd applies input again (more than S messages seen)
# or, if it had applied everything, delivers again (outbox below O).
wait_resumed() { # S O SECONDS
    if (($1 < want)); then wait_progress "$1" 0 "$3"; else wait_progress "$1" "$2" "$3"; fi
}

# Everything seen and delivered.
wait_done() { # WANT SECONDS
    local deadline=$((SECONDS + $2))
    while :; do
        read_stats "$T/store"
        ((SEEN >= $1 && OUTBOX == 0)) && return 0
        alive "$pid" || { echo "$NAME: creditd exited" >&2; return 1; }
        ((SECONDS < deadline)) || { echo "$NAME: timeout: seen $SEEN of $1, outbox $OUTBOX" >&2; return 1; }
        sleep 0.1
    done
}

# The broker is down: creditd has work left and stays alive for OUTAGE
# seconds (an observation window measured on the clock, nothing waits on it).
outage() { # N HOW
    local n=$1 how=$2 c0 c1 l0 end
    read_stats "$T/store"
    note "outage $n ($how): broker down; seen $SEEN of $want, outbox $OUTBOX"
    check "outage $n: creditd had work left when the broker went down" \
        test "$SEEN" -lt "$want" -o "$OUTBOX" -gt 0
    c0=$(cpu_ticks "$pid")
    l0=$(wc -l < "$T/creditd.log")
    end=$((SECONDS + OUTAGE))
    while ((SECONDS < end)) && alive "$pid"; do sleep 0.2; done
    c1=$(cpu_ticks "$pid")
    check "outage $n: creditd still running after ${OUTAGE}s without a broker" alive "$pid"
    read_stats "$T/store"
    note "outage $n: after ${OUTAGE}s: seen $SEEN, outbox $OUTBOX; creditd used $(( (c1 - c0) * 1000 / $(getconf CLK_TCK) )) ms CPU, wrote $(( $(wc -l < "$T/creditd.log") - l0 )) log lines"
    # Not a busy loop: well under one core for the window.
    check "outage $n: creditd idles while waiting (< 50% of a core)" \
        test $(( (c1 - c0) * 2 )) -lt $(( OUTAGE * $(getconf CLK_TCK) ))
}

topic_dump() { # TOPIC FILE: every message value, one per line
    timeout 120 kcat -C -b "$BS" -t "$1" -e -q -f '%s\n' -X isolation.level=read_committed > "$2"
}
# Whole output messages, comparable across partitionings: a tick's copy on
# partition P is tick-TIME-pP in Kafka (tick-TIME-p0 in the reference).
norm() { sed -E 's/("event_id":"tick-[^"]*)-p[0-9]+"/\1"/' "$1" | LC_ALL=C sort; }
dup_ids() { jq -r .id "$1" | LC_ALL=C sort | uniq -d | head -n 5; }

# The offsets creditd published for its group (for lag tools) are the end of
# every input partition.
group_at_end() { # TOPIC PARTITIONS GROUP
    timeout 60 /usr/bin/python3 - "$BS" "$@" <<'PY'
import sys
from confluent_kafka import Consumer, TopicPartition
bs, topic, n, group = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
c = Consumer({"bootstrap.servers": bs, "group.id": group, "enable.auto.commit": False})
rc = 0
for tp in c.committed([TopicPartition(topic, p) for p in range(n)], timeout=30):
    lo, hi = c.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=30)
    if tp.offset != hi:
        print(f"group {group} {topic} [{tp.partition}]: committed {tp.offset}, end {hi}", file=sys.stderr)
        rc = 1
c.close()
sys.exit(rc)
PY
}

# ---- the stream --------------------------------------------------------------
note "seed $SEED: $EVENTS events, $ORGS organisations, outages observed ${OUTAGE}s"
"$B/gen-events" --orgs "$ORGS" --events "$EVENTS" --seed "$SEED" --out "$T/events.jsonl" 2>/dev/null \
    || { bad "gen-events"; exit 1; }
# Split at the ticks: seg.N holds the lines before tick N; ticks.txt the times.
awk -v dir="$T" '
    BEGIN { n = 0; f = dir "/seg.0"; printf "" > f }
    /"type":"clock\.tick"/ {
        if (!match($0, /"time":"[^"]*"/)) { print "tick without time" > "/dev/stderr"; exit 1 }
        print substr($0, RSTART + 8, RLENGTH - 9) > (dir "/ticks.txt")
        close(f); n++; f = dir "/seg." n; printf "" > f; next
    }
    { print > f }' "$T/events.jsonl" || { bad "splitting the stream"; exit 1; }
touch "$T/ticks.txt"
nticks=$(wc -l < "$T/ticks.txt")
nlines=$(wc -l < "$T/events.jsonl")
want=$(( nlines - nticks + nticks * PARTS ))
gen_dups=$(awk '$0 == prev {n++} {prev = $0} END {print n + 0}' "$T/events.jsonl")
awk '/"type":"clock\.tick"/ && match($0, /"time":"[^"]*"/) {
        t = substr($0, RSTART + 8, RLENGTH - 9)
        sub(/"id":"[^"]*"/, "\"id\":\"tick-" t "-p0\"")
     } { print }' "$T/events.jsonl" > "$T/ref.jsonl"
note "$nlines lines, $nticks ticks, $gen_dups re-sends: $want messages on $PARTS partitions"

"$B/credit-replay" --db "$T/ref" --out "$T/ref.out" "$T/ref.jsonl" 2>"$T/ref.log" &
ref_pid=$!

# ---- broker and topics ----------------------------------------------------------
BS=$("$BROKER" start "$T/kafka") || { bad "broker start"; exit 1; }
note "broker at $BS"
for tp in credit.events:$PARTS:retention.ms=-1 credit.overage:3: credit.ledger:3:retention.ms=-1 \
          credit.rejected:1:; do
    IFS=: read -r name np cfg <<<"$tp"
    "$BROKER" create-topic "$T/kafka" "$name" "$np" ${cfg:+"$cfg"} >/dev/null \
        || { bad "create topic $name"; exit 1; }
done

produce_all() { # segments and ticks in file order; each step waits for its acks
    local i=0 tick
    while :; do
        if [[ -s "$T/seg.$i" ]]; then
            "$B/credit-produce" -b "$BS" -t credit.events "$T/seg.$i" || return 1
        fi
        tick=$(sed -n "$((i + 1))p" "$T/ticks.txt")
        [[ -n "$tick" ]] || return 0
        "$B/credit-tick" -b "$BS" -t credit.events --time "$tick" || return 1
        i=$((i + 1))
    done
}
produce_all > "$T/produce.log" 2>&1 &
prod_pid=$!

# Small batches, a small outbox bound and a small prefetch (librdkafka would
# otherwise fetch most of the topic ahead): at an outage, input is left in
# the broker and outputs in the outbox. (queued.max.messages.kbytes would
# also bound the prefetch, but librdkafka 2.0 then backs off 1 s per fetch.)
"$B/creditd" -X "bootstrap.servers=$BS" --db "$T/store" -X stats.interval_ms=1000 \
    -X batch.max_messages=1000 -X outbox.max_pending=5000 \
    -X queued.min.messages=2000 \
    >/dev/null 2>>"$T/creditd.log" &
pid=$!

prc=0
wait "$prod_pid" || prc=$?
prod_pid=""
check "producer: all $want messages acknowledged" test "$prc" = 0
((prc == 0)) || { cat "$T/produce.log" >&2; exit 1; }
read_stats "$T/store"
note "produced; creditd seen $SEEN of $want, outbox $OUTBOX"

# ---- outage 1: broker stopped cleanly ---------------------------------------------
check "before outage 1: creditd makes progress" wait_progress "$SEEN" "$OUTBOX" 120 \
    || { tail -n 20 "$T/creditd.log" >&2; exit 1; }
"$BROKER" stop "$T/kafka" || bad "broker stop"
outage 1 "broker.sh stop"
s1=$SEEN o1=$OUTBOX
"$BROKER" start "$T/kafka" >/dev/null || { bad "broker start after outage 1"; exit 1; }
back=$(now_ms)
check "after outage 1: creditd resumes by itself" wait_resumed "$s1" "$o1" 120
note "resumed $(( $(now_ms) - back )) ms after the broker was back: seen $SEEN, outbox $OUTBOX"

# ---- outage 2: broker crashed (SIGKILL) -------------------------------------------
"$BROKER" kill "$T/kafka" || bad "broker kill"
outage 2 "broker.sh kill"
s2=$SEEN o2=$OUTBOX
"$BROKER" start "$T/kafka" >/dev/null || { bad "broker start after outage 2"; exit 1; }
back=$(now_ms)
check "after outage 2: creditd resumes by itself" wait_resumed "$s2" "$o2" 120
note "resumed $(( $(now_ms) - back )) ms after the broker was back: seen $SEEN, outbox $OUTBOX"

# ---- the same creditd finishes ------------------------------------------------------
check "every message applied, outbox delivered (same creditd process)" wait_done "$want" 240
note "done applying"
rc=0
kill -TERM "$pid"; wait "$pid" || rc=$?
pid=""
check "SIGTERM: exit 0" test "$rc" = 0
read_stats "$T/store"
check "applied+duplicates+rejected == messages ($APPLIED+$DUPS+$REJECTED == $want)" test "$SEEN" = "$want"
check "duplicates == the generator's re-sends ($DUPS == $gen_dups), no rejects ($REJECTED)" \
    test "$DUPS" = "$gen_dups" -a "$REJECTED" = 0
grep -v -e "creditd: stats" -e "^%[0-9]|" "$T/creditd.log" | sed -E 's/[0-9]+/N/g' | sort | uniq -c | sort -rn | head -n 15 \
    | sed "s/^/$NAME: log: /" >&2

# ---- compare with credit-replay ---------------------------------------------------------
rrc=0
wait "$ref_pid" || rrc=$?
ref_pid=""
check "credit-replay of the same events" test "$rrc" = 0
"$B/creditctl" --db "$T/ref" balances --json > "$T/ref.balances"
"$B/creditctl" --db "$T/store" balances --json > "$T/balances"
check "balances byte-identical to credit-replay's ($(wc -l < "$T/balances") lines)" \
    cmp -s "$T/ref.balances" "$T/balances"
grep -F '"type":"credit.overage"' "$T/ref.out" > "$T/ref.overage.raw"
grep -F '"type":"credit.ledger"' "$T/ref.out" > "$T/ref.ledger.raw"
check "credit-replay printed only overage and ledger events" \
    test "$(wc -l < "$T/ref.out")" = "$(( $(wc -l < "$T/ref.overage.raw") + $(wc -l < "$T/ref.ledger.raw") ))"
for kind in overage ledger; do
    topic_dump "credit.$kind" "$T/$kind.raw" || bad "reading credit.$kind"
    norm "$T/ref.$kind.raw" > "$T/ref.$kind"
    norm "$T/$kind.raw" > "$T/$kind"
    check "credit.$kind == credit-replay's ($(wc -l < "$T/$kind") vs $(wc -l < "$T/ref.$kind") messages)" \
        cmp -s "$T/ref.$kind" "$T/$kind"
    dup_ids "$T/$kind.raw" > "$T/$kind.dups"
    check "credit.$kind: no output id twice $(head -n 3 "$T/$kind.dups" | tr '\n' ' ')" test ! -s "$T/$kind.dups"
done
topic_dump credit.rejected "$T/rejected.raw" || bad "reading credit.rejected"
check "credit.rejected is empty" test ! -s "$T/rejected.raw"
check "group offsets of creditd (lag tools) at the end of every input partition" \
    group_at_end credit.events "$PARTS" creditd
note "done"
