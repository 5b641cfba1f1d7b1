#!/usr/bin/env bash
# Crash test of creditd against a real Kafka 4 broker (tests/kafka/broker.sh):
# creditd is SIGKILLed at random moments, again and again, while it applies a
# large stream and relays its outputs; every run after a kill must resume
# exactly where the store's last commit left off.
#
#   tests/kafka/it_crash.sh
#
# Environment (all optional):
#   IT_CRASH_SEED    seed of the kill schedule and of gen-events (default:
#                    random, printed; set it to replay a failing schedule)
#   IT_CRASH_EVENTS  events generated (default 200000)
#   IT_CRASH_ORGS    organisations (default 2000)
#   IT_CRASH_KILLS   SIGKILLs (default 12)
#
# 1. gen-events writes EVENTS lines; they are produced in the background while
#    creditd runs: each stretch between two clock.ticks with credit-produce
#    (murmur2, keyed by data.org) to a 4-partition input topic, each tick with
#    credit-tick (one copy per partition, id tick-TIME-pP), so that on every
#    partition each organisation sees its events and the ticks in file order.
# 2. KILLS times: creditd starts (batch.max_messages and outbox.max_pending
#    drawn from the seeded RNG), the test waits until the store counts a
#    randomly drawn number of new messages (so the kill lands mid-stream),
#    waits a random 0-499 ms more, then SIGKILLs it. After each kill the store
#    must still have work left (messages not applied or an outbox not empty).
#    Before every 4th of them, an extra kill 0-999 ms after a start (while
#    creditd connects and reads its outputs back).
#    Every run starts with store.map_size=1 MiB: the ~50 MiB store grows by
#    "map full, double it, retry the batch" while the kills go on.
# 3. A last run finishes: every message applied exactly once
#    (applied+duplicates+rejected == messages produced, duplicates == the
#    generator's own re-sends, no rejects), outbox empty, SIGTERM exits 0.
# 4. The reference is credit-replay of the same file (ticks renamed to the
#    tick-TIME-p0 of credit-tick; a file is partition 0): balances
#    (creditctl balances --json) byte-identical; the overage and ledger topics
#    hold exactly credit-replay's outputs as multisets of whole messages (ids
#    included: they are per organisation; a tick's -pP suffix removed from
#    event_id on both sides); no output id twice in either topic; the
#    dead-letter topic is empty; creditd's group offsets (for lag
#    tools) end at the end of every input partition.
# Needs make all build/gen-events; kcat, jq, python3-confluent-kafka.
# Closing line: "it_crash: N passed, N failed".
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# Functions shared with the other stream tests (sourced before the cd: the
# path may be relative).
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
B=build
BROKER=tests/kafka/broker.sh
NAME=it_crash
T=$(mktemp -d "${TMPDIR:-/tmp}/$NAME.XXXXXX")
PARTS=4
EVENTS=${IT_CRASH_EVENTS:-200000}
ORGS=${IT_CRASH_ORGS:-2000}
KILLS=${IT_CRASH_KILLS:-12}
SEED=${IT_CRASH_SEED:-$(( ${SRANDOM:-$$} % 1000000 + 1 ))}
RANDOM=$SEED
pass=0 fail=0 pid="" prod_pid="" ref_pid="" t0=$SECONDS

trap finish EXIT

start_creditd() { # LOG [creditd args...]
    local log=$1
    shift
    "$B/creditd" -X "bootstrap.servers=$BS" --db "$T/store" -X stats.interval_ms=1000 \
        -X store.map_size=1048576 "$@" >/dev/null 2>>"$log" &
    pid=$!
}

# Wait until the store has seen at least WANT messages (and, with DRAIN, its
# outbox is empty), creditd staying alive; bounded by SECONDS.
wait_seen() { # WANT SECONDS [drain]
    local deadline=$((SECONDS + $2))
    while :; do
        read_stats "$T/store"
        ((SEEN >= $1)) && { [[ "${3:-}" != drain ]] || ((OUTBOX == 0)); } && return 0
        if ! alive "$pid"; then echo "$NAME: creditd exited by itself (seen $SEEN of $1)" >&2; return 1; fi
        ((SECONDS < deadline)) || { echo "$NAME: timeout: seen $SEEN of $1, outbox $OUTBOX" >&2; return 1; }
        sleep 0.02
    done
}

# Wait until the outbox shrank below N (a run that has nothing left to apply
# still makes progress by delivering).
wait_outbox_below() { # N SECONDS
    local deadline=$((SECONDS + $2))
    while :; do
        read_stats "$T/store"
        ((OUTBOX < $1)) && return 0
        alive "$pid" || { echo "$NAME: creditd exited by itself" >&2; return 1; }
        ((SECONDS < deadline)) || { echo "$NAME: timeout: outbox $OUTBOX" >&2; return 1; }
        sleep 0.02
    done
}

# ---- the stream --------------------------------------------------------------
note "seed $SEED: $EVENTS events, $ORGS organisations, $KILLS kills"
prepare_stream "$EVENTS" "$ORGS"
note "$nlines lines, $nticks ticks ($(tr '\n' ' ' < "$T/ticks.txt")), $gen_dups re-sends: $want messages on $PARTS partitions"

# The reference replay runs while the broker starts and creditd works.
start_replay

# ---- broker and topics ----------------------------------------------------------
broker_start
start_producer

# ---- kills ------------------------------------------------------------------------
kills=0 mid=0 early=0
for ((k = 1; k <= KILLS; k++)); do
    read_stats "$T/store"
    # An extra kill during start-up (connecting, reading the outputs back,
    # maybe the first batches): no progress wait, 0-999 ms after the start.
    # Only while much is left: a fast creditd applies ~30k events in a second,
    # and the kills still to come need work to interrupt.
    if ((k % 4 == 0 && want - SEEN > 60000)); then
        delay=$((RANDOM % 1000))
        s0=$SEEN o0=$OUTBOX
        start_creditd "$T/creditd.log"
        sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
        if ! alive "$pid"; then
            bad "early kill before $k: creditd exited by itself"
            tail -n 20 "$T/creditd.log" >&2
            wait "$pid"; pid=""
            break
        fi
        kill -KILL "$pid"; wait "$pid" 2>/dev/null; pid=""
        early=$((early + 1))
        read_stats "$T/store"
        note "early kill (+${delay} ms after the start): seen $s0 -> $SEEN, outbox $o0 -> $OUTBOX"
    fi
    read_stats "$T/store"
    s0=$SEEN o0=$OUTBOX
    case $((RANDOM % 3)) in 0) batch=500 ;; 1) batch=2000 ;; *) batch=10000 ;; esac
    case $((RANDOM % 2)) in 0) pending=$((batch * 2)) ;; *) pending=100000 ;; esac
    left=$((want - s0))
    if ((left > 0)); then
        # Leave a share of what is left for the kills still to come and the last run.
        slice=$((left / (KILLS - k + 2)))
        ((slice > 0)) || slice=1
        target=$((s0 + 1 + (RANDOM * 32768 + RANDOM) % slice))
    else
        target=$want
    fi
    # The kill lands 0-499 ms after the target (0-49 ms near the end, where a
    # fast creditd would otherwise finish the stream before the last kills).
    if ((left > 50000)); then delay=$((RANDOM % 500)); else delay=$((RANDOM % 50)); fi
    start_creditd "$T/creditd.log" -X batch.max_messages=$batch -X outbox.max_pending=$pending
    if ((left > 0)); then
        wait_seen "$target" 120 || { bad "kill $k: no progress (batch $batch)"; tail -n 20 "$T/creditd.log" >&2; break; }
    elif ((o0 > 0)); then
        wait_outbox_below "$o0" 120 || { bad "kill $k: outbox not draining"; tail -n 20 "$T/creditd.log" >&2; break; }
    else
        note "kill $k: nothing left to interrupt"
        stop_creditd "$pid" || bad "kill $k: creditd did not stop cleanly on SIGTERM"; pid=""
        break
    fi
    sleep "$(printf '0.%03d' "$delay")"
    if ! alive "$pid"; then
        bad "kill $k: creditd exited by itself"
        tail -n 20 "$T/creditd.log" >&2
        wait "$pid"; pid=""
        break
    fi
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null
    pid=""
    kills=$((kills + 1))
    read_stats "$T/store"
    ((SEEN < want || OUTBOX > 0)) && mid=$((mid + 1))
    note "kill $k (batch $batch, max_pending $pending, +${delay} ms after $target): seen $s0 -> $SEEN of $want, outbox $o0 -> $OUTBOX"
done
check "$kills SIGKILLs after progress, $mid of them with work left (>= 10); $early more during start-up" \
    test "$kills" = "$KILLS" -a "$mid" -ge 10

# ---- the last run finishes the stream ------------------------------------------------
start_creditd "$T/creditd.log"
prc=0
wait "$prod_pid" || prc=$?
prod_pid=""
check "producer: all $want messages acknowledged" test "$prc" = 0
((prc == 0)) || cat "$T/produce.log" >&2
check "last run: every message applied, outbox delivered" wait_seen "$want" 240 drain
note "last run done"
rc=0
stop_creditd "$pid" || rc=$?
pid=""
check "last run: SIGTERM exit 0" test "$rc" = 0
check_store_counts
check "outbox empty ($OUTBOX)" test "$OUTBOX" = 0
grep -h "read back" "$T/creditd.log" | sed "s/^/$NAME: /" >&2
grep -hi "warning\|fatal\|error" "$T/creditd.log" | sort | uniq -c | head -n 20 | sed "s/^/$NAME: log: /" >&2

# ---- compare with credit-replay ---------------------------------------------------------
wait_replay
read_stats "$T/ref"
check "credit-replay: $DUPS duplicates, as generated" test "$DUPS" = "$gen_dups"
compare_with_replay
# Lag tools read the group offsets: creditd republishes every stored offset
# at start-up, every few seconds and at shutdown, so after the kills they end
# at the end of every input partition.
check "group offsets of creditd at the end of every input partition" \
    group_at_end credit.events "$PARTS" creditd
note "done"
