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
# Functions shared with the other stream tests (sourced before the cd: the
# path may be relative).
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
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

trap finish EXIT

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

# ---- the stream --------------------------------------------------------------
note "seed $SEED: $EVENTS events, $ORGS organisations, outages observed ${OUTAGE}s"
prepare_stream "$EVENTS" "$ORGS"
note "$nlines lines, $nticks ticks, $gen_dups re-sends: $want messages on $PARTS partitions"

start_replay

# ---- broker and topics ----------------------------------------------------------
broker_start
start_producer

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
stop_creditd "$pid" || rc=$?
pid=""
check "SIGTERM: exit 0" test "$rc" = 0
check_store_counts
grep -v -e "creditd: stats" -e "^%[0-9]|" "$T/creditd.log" | sed -E 's/[0-9]+/N/g' | sort | uniq -c | sort -rn | head -n 15 \
    | sed "s/^/$NAME: log: /" >&2

# ---- compare with credit-replay ---------------------------------------------------------
wait_replay
compare_with_replay
check "group offsets of creditd (lag tools) at the end of every input partition" \
    group_at_end credit.events "$PARTS" creditd
note "done"
