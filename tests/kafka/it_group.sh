#!/usr/bin/env bash
# Group mode (issue 10) on a real Kafka 4 broker (tests/kafka/broker.sh):
# instances a, b, c of creditd with input.assignment=group and one group.id
# share an 8-partition input while it is produced, killed, stopped, scaled,
# one loses its store, one is a zombie; at the end their stores, the
# changelog view and the output topics equal credit-replay of the same log.
#
#   tests/kafka/it_group.sh
#
# Environment (all optional):
#   IT_GROUP_SEED    seed of gen-events, the injected bad lines and the kill
#                    schedule (default: random, printed)
#   IT_GROUP_EVENTS  events generated (default 300000)
#   IT_GROUP_ORGS    organisations (default 2000)
#   IT_GROUP_STANDBY instances run with state.standby_replicas=1 (default
#                    "b c": a mixed group; b's final store is then partly
#                    built by its standby; "" for none)
#   IT_GROUP_VIA     how ownership and lag are read: http (default:
#                    build/creditd, GET /metrics on http.listen=127.0.0.1:0)
#                    or file (build/creditd-test, CREDITD_TEST_METRICS_FILE;
#                    in group mode only once consumer/group.c writes that
#                    file, which it does not yet: static modes only)
#   IT_GROUP_MODE    group (default), or a self-test of this harness on the
#                    static pipeline with the same final checks but the
#                    changelog view: static (one instance, a few kills) or
#                    static3 (three instances on fixed thirds of the
#                    partitions, input.partitions)
#
# 1. Broker (transaction.abort.timed.out.transaction.cleanup.interval.ms=1 s,
#    so a zombie's open transaction is aborted soon after its timeout) and
#    topics: credit.events (8 partitions, retention.ms=-1), credit.changelog
#    (8, cleanup.policy=compact, small segments: compacted during the test),
#    credit.overage, credit.ledger, credit.rejected, credit.alerts.
# 2. The stream: gen-events (EVENTS lines, ORGS organisations, 4 months:
#    3 ticks), plus 30 bad lines injected at seeded places (an unknown type
#    keyed by the organisation of the line before, every 5th invalid JSON)
#    so that credit.rejected is checked too.  Cut into 6 chunks of equal
#    lines, each in pieces of at most 2,500 lines; a background producer
#    (credit-produce for the pieces, credit-tick for each tick: one copy per
#    partition) produces chunk N only once the scenario released it, at
#    IT_GROUP_RATE lines/s (default 2500: a chunk lasts about 20 s), so the
#    stream flows while instances come and go.  Each phase below releases
#    its chunk(s); a kill finding nothing flowing releases the next chunk
#    only within its phase's budget.
# 3. Every instance: its own --db (b and c with a standby replica, a
#    without, by default), group mode's defaults
#    (session.timeout.ms 6000, heartbeat.interval.ms 1000,
#    transaction.timeout.ms 10000).  Ownership and lag come from its
#    metrics (a creditd_consumer_lag{partition="N"} line once a partition
#    is owned and its lag known; creditd_partitions_assigned from the
#    assignment on); progress from the group's committed offsets
#    (tests/kafka/group_probe.py watch, every 0.25 s).  Every wait is a
#    condition with a bound.  The scenario:
#    - a alone owns all 8 partitions; 2 SIGKILLs (each once the victim owns
#      partitions and the group's committed offsets advanced by a seeded
#      1-3000 messages, then 0-299 ms), each followed by a restart;
#    - scale 1 -> 3: b and c join, each ends up owning partitions; 4 SIGKILLs
#      of seeded victims, restarted;
#    - b stopped with SIGTERM (exit 0), its store directory deleted while it
#      is down (a and c take its partitions over), 1 SIGKILL of a or c, b
#      restarted: killed while it restores (it owns partitions, no restore
#      line yet), restarted: it restores from the changelog (its log:
#      "assigned partitions L: restored N changelog records", N > 0 in all);
#    - zombie: a SIGSTOPped 0-99 ms after one of its commits was seen
#      (likely inside its next transaction), the stream flowing; b and c own
#      every partition within the session timeout plus a bound, then apply
#      messages of a's former partitions (their committed offsets move on,
#      more than 0 messages); SIGCONT: a must not crash (killed by a
#      signal); it rejoins or exits (then restarted);
#    - 2 SIGKILLs; scale 3 -> 2: c stopped with SIGTERM (exit 0); 2 more
#      SIGKILLs of a or b, restarted.  12 SIGKILLs in all, at least 10 with
#      work left (the stream flowing when it lands: its chunk still being
#      produced, or committed < produced).
# 4. At the end (bounded): every message produced (input topic == the
#    stream), the group's committed offsets at the end of every partition,
#    a and b own every partition between them with lag 0.  Reference:
#    credit-replay --from-kafka of the input topic.  Checks:
#    - the union over a and b of their own partitions' balances
#      (creditctl --db balances --json, each line kept when its org's
#      partition -- from the keys of the input topic -- is one the instance
#      owns) == credit-replay's balances (sorted lines);
#    - creditctl --from-kafka balances --json == credit-replay's;
#    - credit.overage, credit.ledger, credit.alerts and credit.rejected read
#      read_committed hold exactly credit-replay's outputs (multisets of
#      whole messages), no id twice; as many dead letters as bad lines;
#    - negative controls on the same data (an altered balance, a missing
#      output, a duplicated output id, a partition missing from the union
#      are each detected), so that none of these checks is vacuous;
#    - a and b stop with SIGTERM, exit 0.
# Needs make all build/gen-events; kcat, jq, curl, python3-confluent-kafka.
# Closing line: "it_group: N passed, N failed".
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
B=build
BROKER=tests/kafka/broker.sh
PROBE=tests/kafka/group_probe.py
PY=/usr/bin/python3
NAME=it_group
T=$(mktemp -d "${TMPDIR:-/tmp}/$NAME.XXXXXX")
PARTS=8
EVENTS=${IT_GROUP_EVENTS:-300000}
ORGS=${IT_GROUP_ORGS:-2000}
VIA=${IT_GROUP_VIA:-http}
STANDBY=${IT_GROUP_STANDBY-b c}
MODE=${IT_GROUP_MODE:-group}
SEED=${IT_GROUP_SEED:-$(( ${SRANDOM:-$$} % 1000000 + 1 ))}
RANDOM=$SEED
CHUNKS=6
PIECE=2500
RATE=${IT_GROUP_RATE:-2500}
PHASE_MAX=1        # chunks the current phase may release (kill_cycle's top-ups)
NBAD=30
GROUP=it-group
SESSION_MS=6000    # group mode's defaults (consumer/README.md "Group mode"): session.timeout.ms,
TXN_MS=10000       # transaction.timeout.ms; the bounds below are derived from them
INSTS=(a b c)
pass=0 fail=0 pid="" prod_pid="" ref_pid="" watch_pid="" t0=$SECONDS
declare -A IPID=() NSTART=() IOUT=() IEXTRA=()
kills=0 mid=0 released=0

case "$VIA" in http) BIN=$B/creditd ;; file) BIN=$B/creditd-test ;;
    *) echo "IT_GROUP_VIA: http or file" >&2; exit 2 ;; esac
case "$MODE" in group|static|static3) ;; *) echo "IT_GROUP_MODE: group, static or static3" >&2; exit 2 ;; esac

cleanup() {
    local x
    for x in "${INSTS[@]}"; do
        [[ -n "${IPID[$x]:-}" ]] || continue
        kill -CONT "${IPID[$x]}" 2>/dev/null; kill -KILL "${IPID[$x]}" 2>/dev/null
        wait "${IPID[$x]}" 2>/dev/null
    done
    [[ -n "$watch_pid" ]] && kill "$watch_pid" 2>/dev/null && wait "$watch_pid" 2>/dev/null
    finish
}
trap cleanup EXIT

for tool in creditd creditd-test creditctl credit-replay credit-produce credit-tick gen-events; do
    [[ -x "$B/$tool" ]] || { bad "$B/$tool missing (make all $B/gen-events)"; exit 1; }
done
for tool in kcat jq curl; do command -v "$tool" >/dev/null || { bad "$tool missing (make deps)"; exit 1; }; done

# wait_for SECONDS CMD...: CMD every WAIT_STEP (0.2) s until it succeeds, at
# most SECONDS; fails at once when an instance that should run died by
# itself (reap, called next, reports it).
wait_for() {
    local deadline=$((SECONDS + $1)) x; shift
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        for x in "${!IPID[@]}"; do
            [[ -z "${IPID[$x]}" ]] || running "${IPID[$x]}" || { echo "$NAME: $x died" >&2; return 1; }
        done
        sleep "${WAIT_STEP:-0.2}"
    done
}
rand() { echo $(( (RANDOM * 32768 + RANDOM) % $1 )); }   # 0..N-1
msleep() { sleep "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))"; }

# ---- the stream ------------------------------------------------------------------
# gen-events, NBAD bad lines injected, cut into steps: $T/steps/NNNN (lines
# for credit-produce) and $T/steps.txt ("file PATH CHUNK" / "tick TIME CHUNK"
# in stream order; chunk = which sixth of the lines; pieces of at most PIECE
# lines).  Sets nlines nticks
# want (messages on the input topic: a tick is one per partition) nbad.
prepare_group_stream() {
    "$B/gen-events" --orgs "$ORGS" --events "$EVENTS" --months 4 --seed "$SEED" \
        --out "$T/gen.jsonl" 2>/dev/null || { bad "gen-events"; exit 1; }
    awk -v seed="$SEED" -v n="$(wc -l < "$T/gen.jsonl")" -v nbad="$NBAD" '
        BEGIN { srand(seed); while (m < nbad) { i = int(rand() * n) + 1; if (!(i in bad)) { bad[i] = 1; m++ } } }
        { print }
        NR in bad {
            k++
            if (k % 5 && match($0, /"org":"[^"]*"/)) {
                org = substr($0, RSTART, RLENGTH)
                match($0, /"time":"[^"]*"/); tm = substr($0, RSTART, RLENGTH)
                printf "{\"specversion\":\"1.0\",\"id\":\"it-group-bad-%d\",\"source\":\"marketplace/usage\",\"type\":\"usage.unknown\",%s,\"data\":{%s}}\n", k, tm, org
            } else
                printf "{\"specversion\":\"1.0\",\"id\":\"it-group-bad-%d\",\"type\":\n", k
        }' "$T/gen.jsonl" > "$T/events.jsonl" || { bad "injecting bad lines"; exit 1; }
    nbad=$(grep -c '"id":"it-group-bad-' "$T/events.jsonl")
    nlines=$(wc -l < "$T/events.jsonl")
    nticks=$(grep -c '"type":"clock\.tick"' "$T/events.jsonl")
    want=$((nlines - nticks + nticks * PARTS))
    mkdir -p "$T/steps"
    awk -v dir="$T/steps" -v steps="$T/steps.txt" -v n="$nlines" -v k="$CHUNKS" -v piece="$PIECE" '
        BEGIN { printf "" > steps }
        { ch = int((NR - 1) * k / n) }
        /"type":"clock\.tick"/ {
            if (!match($0, /"time":"[^"]*"/)) { print "tick without time" > "/dev/stderr"; exit 1 }
            if (f != "") { close(f); f = "" }
            print "tick", substr($0, RSTART + 8, RLENGTH - 9), ch > steps
            next
        }
        f == "" || ch != fch || nf >= piece {
            if (f != "") close(f)
            f = sprintf("%s/%04d", dir, ++np); fch = ch; nf = 0
            print "file", f, ch > steps
        }
        { print > f; nf++ }' "$T/events.jsonl" || { bad "cutting the stream into steps"; exit 1; }
}

# The background producer: chunk N waits for $T/go.N (release), and is
# produced at RATE lines/s from then on (a piece is produced once the lines
# before it in the chunk are due: pacing the load, not a synchronisation),
# $T/done.N once all of it is acknowledged.
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
produce_steps() {
    local kind arg ch cur=-1 deadline start lines=0 due wait
    while read -r kind arg ch; do
        if ((ch != cur)); then
            ((cur < 0)) || touch "$T/done.$cur"
            deadline=$((SECONDS + 1200))
            until [[ -e "$T/go.$ch" ]]; do
                kill -0 $$ 2>/dev/null || return 1
                ((SECONDS < deadline)) || { echo "chunk $ch never released" >&2; return 1; }
                sleep 0.1
            done
            cur=$ch start=$(now_ms) lines=0
        fi
        due=$((start + lines * 1000 / RATE)) wait=$((due - $(now_ms)))
        ((wait <= 0)) || sleep "$(printf '%d.%03d' $((wait / 1000)) $((wait % 1000)))"
        case $kind in
            file) "$B/credit-produce" -b "$BS" -t credit.events "$arg" </dev/null || return 1
                  lines=$((lines + $(wc -l < "$arg"))) ;;
            tick) "$B/credit-tick" -b "$BS" -t credit.events --time "$arg" </dev/null || return 1 ;;
        esac
    done < "$T/steps.txt"
    touch "$T/done.$cur"
}
release() { # the next chunk (no-op after the last)
    ((released < CHUNKS)) || return 0
    ((released < PHASE_MAX)) || PHASE_MAX=$((released + 1))
    touch "$T/go.$released"
    note "chunk $released released"
    released=$((released + 1))
}

# ---- progress: the group's committed offsets -------------------------------------------
# Sets CSUM ESUM (committed, end sums) and COM[p] END[p]; 1 while no line yet.
read_progress() {
    local line ts pc i=0
    line=$(cat "$T/progress" 2>/dev/null) || return 1
    [[ -n "$line" ]] || return 1
    read -r ts CSUM ESUM pc <<<"$line"
    COM=() END=()
    for pc in $pc; do COM[i]=${pc%:*}; END[i]=${pc#*:}; i=$((i + 1)); done
    ((i == PARTS))
}
committed_at_least() { read_progress && ((CSUM >= $1)); }
group_done() { read_progress && ((CSUM == want && ESUM == want)); }

# ---- instances ----------------------------------------------------------------------
start_inst() { # X [creditd args...]
    local x=$1 n
    shift
    n=$(( ${NSTART[$x]:-0} + 1 )); NSTART[$x]=$n
    IOUT[$x]=$T/$x.out.$n
    local args=(--db "$T/db.$x" -X "kafka.bootstrap.servers=$BS" -X "group.id=$GROUP"
                -X stats.interval_ms=1000)
    [[ $MODE == group ]] && args+=(-X input.assignment=group)
    [[ $MODE == group && " $STANDBY " == *" $x "* ]] && args+=(-X state.standby_replicas=1)
    [[ $VIA == http ]] && args+=(-X http.listen=127.0.0.1:0)
    [[ -n "${IEXTRA[$x]:-}" ]] && args+=(-X "${IEXTRA[$x]}")
    echo "---- it_group: start $n of $x at $(date +%T.%3N): $*" >> "$T/$x.log"
    CREDITD_TEST_METRICS_FILE=$T/$x.metrics.$n "$BIN" "${args[@]}" "$@" > "${IOUT[$x]}" 2>> "$T/$x.log" &
    IPID[$x]=$!
}
up() { [[ -n "${IPID[$1]:-}" ]] && alive "${IPID[$1]}"; }

# An instance that died by itself is a failure (reported once, its log's tail shown).
reap() { # X: 0 when running
    local x=$1 rc=0
    [[ -n "${IPID[$x]:-}" ]] || return 1
    alive "${IPID[$x]}" && return 0
    wait "${IPID[$x]}" || rc=$?
    IPID[$x]=""
    bad "$x exited by itself (exit $rc)"
    tail -n 15 "$T/$x.log" | sed "s/^/$NAME:   $x: /" >&2
    return 1
}
kill_inst() { # X: SIGKILL
    local x=$1
    kill -KILL "${IPID[$x]}" 2>/dev/null
    wait "${IPID[$x]}" 2>/dev/null
    IPID[$x]=""
    echo "---- it_group: SIGKILL at $(date +%T.%3N)" >> "$T/$x.log"
}
term_inst() { # X: SIGTERM, then check the exit status
    local x=$1 rc=0
    echo "---- it_group: SIGTERM at $(date +%T.%3N)" >> "$T/$x.log"
    stop_creditd "${IPID[$x]}" 60 || rc=$?
    IPID[$x]=""
    check "$x stopped with SIGTERM: exit 0 (exit $rc)" test "$rc" = 0
}

scrape() { # X: its metrics on stdout; 1 when there are none (yet)
    local x=$1 url
    if [[ $VIA == http ]]; then
        url=$(sed -n 's#^creditd: http listening on \(http://[^ ]*\)$#\1#p' "${IOUT[$x]}" 2>/dev/null | head -n1)
        [[ -n "$url" ]] || return 1
        curl -sf --max-time 3 "$url/metrics"
    else
        cat "$T/$x.metrics.${NSTART[$x]}" 2>/dev/null
    fi
}
# OWNED (comma list, maybe empty), LAG (sum) and NASSIGNED of X from one
# scrape.  A partition counts as owned once its lag is known (a lag line):
# creditd_partitions_assigned counts it from the assignment on, while its
# state is still being restored.
owned() { # X
    local m
    up "$1" || return 1
    m=$(scrape "$1") || return 1
    [[ -n "$m" ]] || return 1
    OWNED=$(awk -F'"' '/^creditd_consumer_lag\{partition="[0-9]+"\}/ {print $2}' <<<"$m" | sort -n | paste -sd,)
    NASSIGNED=$(awk '$1 == "creditd_partitions_assigned" {print $2 + 0}' <<<"$m")
    LAG=$(awk '/^creditd_consumer_lag\{/ {s += $2} END {print s + 0}' <<<"$m")
}
# The instances own every partition exactly once between them (each at
# least one with "each"); COVER describes it.  Optionally with lag 0.
cover() { # [each] [lag0] X...
    local x each=0 lag0=0 all=""
    [[ $1 == each ]] && { each=1; shift; }
    [[ $1 == lag0 ]] && { lag0=1; shift; }
    COVER=""
    for x; do
        owned "$x" || return 1
        COVER+="$x:[$OWNED] "
        ((each == 0)) || [[ -n "$OWNED" ]] || return 1
        ((lag0 == 0 || LAG == 0)) || return 1
        all+=${OWNED:+$OWNED,}
    done
    [[ "$(tr , '\n' <<<"$all" | grep . | sort -n | paste -sd,)" == "$(seq -s, 0 $((PARTS - 1)))" ]]
}
owns_some() { owned "$1" && [[ -n "$OWNED" ]]; }

# Restores in X's log: "assigned partitions L: restored N changelog records
# in S s" (or "restored partition P: N records ..."); not the lines of an
# empty assignment ("assigned partitions none: ...", the first round of a
# cooperative rebalance).
RESTORED_RE='restored [0-9]+ (changelog )?records|restored partition [0-9]+: [0-9]+ records'
restore_lines() { grep -E "$RESTORED_RE" "$T/$1.log" | grep -v "assigned partitions none"; }
restored_records() { # stdin: restore lines; the sum of their records
    sed -nE 's/.*restored ([0-9]+) (changelog )?records.*/\1/p; s/.*restored partition [0-9]+: ([0-9]+) records.*/\1/p' \
        | awk '{s += $1} END {print s + 0}'
}
restored_since() { # START X: a restore line after X's start number START
    sed -n "/^---- it_group: start $1 of $2 /,\$p" "$T/$2.log" | grep -E "$RESTORED_RE" \
        | grep -vq "assigned partitions none"
}

# The stream is flowing: the last released chunk is still being produced,
# or not all of it is applied yet.
flowing() { [[ ! -e "$T/done.$((released - 1))" ]] || { read_progress && ((CSUM < ESUM)); }; }
# Nothing flows: release the next chunk if the phase's budget (PHASE_MAX) allows.
ensure_flow() { flowing || { ((released < PHASE_MAX)) && release; }; }

# One SIGKILL of X while it owns partitions and the stream flows: once the
# group's committed offsets advanced by a seeded 1-3000 messages (or all
# that was produced is applied), a seeded 0-299 ms later.  "With work left"
# (mid): the stream was flowing when it landed.  Restarts X unless
# "norestart".
kill_cycle() { # X [norestart]
    local x=$1 target
    reap "$x" || start_inst "$x"
    wait_for 120 owns_some "$x" || bad "kill $((kills + 1)): $x owns no partition within 120 s"
    ensure_flow
    read_progress || { bad "no progress line"; return 1; }
    target=$((CSUM + 1 + $(rand 3000)))
    caught_up_or() { committed_at_least "$target" || { [[ -e "$T/done.$((released - 1))" ]] && ((CSUM == ESUM)); }; }
    wait_for 180 caught_up_or || bad "kill $((kills + 1)): committed offsets stuck at $CSUM (target $target, end $ESUM)"
    msleep "$(rand 300)"
    reap "$x" || return 1
    flowing && mid=$((mid + 1))
    kill_inst "$x"
    kills=$((kills + 1))
    note "kill $kills: $x (owned [$OWNED]) at committed $CSUM of $ESUM produced, $want in all"
    [[ "${2:-}" == norestart ]] || start_inst "$x"
}
random_of() { local a=("$@"); echo "${a[$(rand ${#a[@]})]}"; }

# ---- broker, topics, stream, producer, watcher ------------------------------------------
note "seed $SEED: $EVENTS events, $ORGS organisations, mode $MODE, metrics via $VIA, standby: ${STANDBY:-none}"
prepare_group_stream
note "$nlines lines ($nbad bad), $nticks ticks: $want messages on $PARTS partitions, $(wc -l < "$T/steps.txt") steps"
BS=$("$BROKER" start "$T/kafka" transaction.abort.timed.out.transaction.cleanup.interval.ms=1000) \
    || { bad "broker start"; exit 1; }
note "broker at $BS"
for tp in credit.events:$PARTS:retention.ms=-1 \
          "credit.changelog:$PARTS:cleanup.policy=compact:segment.ms=20000:min.cleanable.dirty.ratio=0.05" \
          credit.overage:3: credit.ledger:3:retention.ms=-1 credit.rejected:1: credit.alerts:3:retention.ms=-1; do
    IFS=: read -r name np cfg <<<"$tp"
    IFS=: read -ra cfgs <<<"$cfg"
    "$BROKER" create-topic "$T/kafka" "$name" "$np" ${cfgs[@]+"${cfgs[@]}"} >/dev/null \
        || { bad "create topic $name"; exit 1; }
done
check "credit.changelog is compacted ($($PY "$PROBE" config "$BS" credit.changelog cleanup.policy 2>&1))" \
    test "$($PY "$PROBE" config "$BS" credit.changelog cleanup.policy 2>/dev/null)" = compact
produce_steps > "$T/produce.log" 2>&1 &
prod_pid=$!
$PY "$PROBE" watch "$BS" credit.events "$GROUP" "$T/progress" 2> "$T/watch.log" &
watch_pid=$!
wait_for 60 read_progress || { bad "group_probe.py watch wrote no progress"; cat "$T/watch.log" >&2; exit 1; }

# ---- the scenario ---------------------------------------------------------------------------
scenario_group() {
    local t zparts
    # 1. a alone.
    PHASE_MAX=1; release
    start_inst a
    check "a alone owns all $PARTS partitions" wait_for 120 cover a
    note "a: ${COVER}"
    kill_cycle a; kill_cycle a

    # 2. scale 1 -> 3.
    PHASE_MAX=3; release
    start_inst b; start_inst c
    check "scaled 1 -> 3: a, b and c share the partitions" wait_for 180 cover each a b c
    note "3 instances: $COVER"
    for k in 1 2 3 4; do kill_cycle "$(random_of a b c)"; done

    # 3. b stopped, its store deleted; a or c killed while b is down; b restores.
    PHASE_MAX=4; release
    reap b || start_inst b
    wait_for 120 owns_some b
    term_inst b
    rm -rf "$T/db.b"
    check "b's store deleted while it is down" test ! -e "$T/db.b"
    check "b gone: a and c own every partition" wait_for 120 cover a c
    note "without b: $COVER"
    kill_cycle "$(random_of a c)"
    check "a and c own every partition again" wait_for 120 cover a c
    start_inst b
    local fresh=${NSTART[b]}   # b's first start on the empty store
    # Killed during its restore: partitions assigned to it
    # (creditd_partitions_assigned > 0) and no line about the restore's end
    # yet.  The restore runs in the rebalance callback, so there is a
    # window; if the poll misses it, the kill lands just after the restore
    # (said in the note).
    restore_window() { { owned b && ((NASSIGNED > 0)); } || restored_since "${NSTART[b]}" b; }
    if WAIT_STEP=0.03 wait_for 120 restore_window; then
        local when="during its restore"
        restored_since "${NSTART[b]}" b && when="just after its restore"
        reap b && { flowing && mid=$((mid + 1)); kill_inst b; kills=$((kills + 1)); read_progress
                    note "kill $kills: b $when (committed $CSUM of $ESUM)"; }
    else
        reap b && bad "b (empty store) owned no partition within 120 s"
    fi
    start_inst b
    restored_b() { restored_since "${NSTART[b]}" b; }
    check "b (empty store) restored its partitions from the changelog" wait_for 180 restored_b
    restore_lines b | tail -n 4 | sed "s/^/$NAME:   b: /" >&2
    # With a standby replica the standby reader may have filled the empty
    # store before the assignment (the restore then finds nothing left).
    local nrec nsb since
    since=$(sed -n "/^---- it_group: start $fresh of b /,\$p" "$T/b.log")
    nrec=$(grep -E "$RESTORED_RE" <<<"$since" | grep -v "assigned partitions none" | restored_records)
    nsb=$(sed -n 's/^creditd: group: standby: applied \([0-9]*\) changelog records.*/\1/p' <<<"$since" |
          awk '{n += $1} END {print n + 0}')
    check "b's store was rebuilt from the changelog (restores $nrec, standby $nsb records)" \
        test $((nrec + nsb)) -gt 0
    check "a, b and c share the partitions again" wait_for 180 cover each a b c
    note "3 instances: $COVER"

    # 4. zombie: a stopped past its session timeout.
    PHASE_MAX=5; release
    wait_for 120 owns_some a || bad "a owns no partition before the zombie"
    owned a; zparts=$OWNED
    read_progress
    local zc=() p
    for p in ${zparts//,/ }; do zc[p]=${COM[p]}; done
    moved_on() { # each of a's partitions: committed beyond the offset at the SIGSTOP, or nothing came
        local p
        read_progress || return 1
        for p in ${zparts//,/ }; do ((COM[p] > zc[p] || END[p] == zc[p])) || return 1; done
    }
    started_on_zparts() { # a applied something of the new chunk on its partitions
        local p
        read_progress || return 1
        for p in ${zparts//,/ }; do ((COM[p] > zc[p])) && return 0; done
        return 1
    }
    # Stopped 0-99 ms after a commit of a on its partitions was seen: with
    # the stream flowing it is then likely in its next batch (an open
    # transaction).  If the stream no longer flows, the next chunk comes now:
    # a's partitions must receive messages while it is stopped.
    WAIT_STEP=0.05 wait_for 60 started_on_zparts
    msleep "$(rand 100)"
    read_progress
    for p in ${zparts//,/ }; do zc[p]=${COM[p]}; done
    echo "---- it_group: SIGSTOP at $(date +%T.%3N)" >> "$T/a.log"
    kill -STOP "${IPID[a]}"
    t=$SECONDS
    flowing || release
    note "zombie: a stopped owning [$zparts] (committed $CSUM of $ESUM)"
    check "zombie: b and c own every partition within the session timeout + 60 s" \
        wait_for $((SESSION_MS / 1000 + 60)) cover b c
    note "zombie: $COVER after $((SECONDS - t)) s"
    check "zombie: b and c apply a's former partitions [$zparts]" \
        wait_for $((SESSION_MS / 1000 + TXN_MS / 1000 + 60)) moved_on
    note "zombie: a's partitions moved on after $((SECONDS - t)) s"
    local napplied=0
    for p in ${zparts//,/ }; do napplied=$((napplied + COM[p] - zc[p])); done
    check "zombie: b and c applied $napplied messages of a's former partitions while it was stopped" \
        test "$napplied" -gt 0
    echo "---- it_group: SIGCONT at $(date +%T.%3N)" >> "$T/a.log"
    kill -CONT "${IPID[a]}"
    zombie_settled() { ! up a || cover a b c; }
    check "zombie: after SIGCONT a exits or the three share the partitions again" wait_for 120 zombie_settled
    # What the zombie said once resumed (its view, for the record).
    sed -n '/SIGCONT/,$p' "$T/a.log" | grep -v "creditd: stats" | grep -E "lost|revoked|fenced|abort|fatal|assigned" | head -n 4 \
        | sed "s/^/$NAME:   a after SIGCONT: /" >&2
    if up a; then
        note "zombie: a rejoined: $COVER"
    else
        local zrc=0; wait "${IPID[a]}" || zrc=$?; IPID[a]=""
        check "zombie: a exited by itself without crashing (exit $zrc)" test "$zrc" -lt 128
        grep -E "fatal|fenced|error" "$T/a.log" | tail -n 3 | sed "s/^/$NAME:   a: /" >&2
        start_inst a
    fi
    kill_cycle "$(random_of a b c)"; kill_cycle "$(random_of a b c)"

    # 5. scale 3 -> 2.
    PHASE_MAX=6; release
    reap c || start_inst c
    term_inst c
    check "scaled 3 -> 2: a and b own every partition" wait_for 120 cover a b
    note "2 instances: $COVER"
    kill_cycle "$(random_of a b)"
    kill_cycle "$(random_of a b)"
    LIVE=(a b)
}

# The harness on today's static pipeline: one instance owns everything.
scenario_static() {
    release
    start_inst a
    check "static a owns all $PARTS partitions" wait_for 120 cover a
    kill_cycle a; release; kill_cycle a
    reap a || start_inst a
    term_inst a; start_inst a
    release; kill_cycle a; release; release; release
    LIVE=(a)
}

# The same with three static instances on fixed thirds (input.partitions):
# the union of several stores' own partitions is checked as in group mode.
scenario_static3() {
    IEXTRA=([a]=input.partitions=0,1,2 [b]=input.partitions=3,4,5 [c]=input.partitions=6,7)
    release
    start_inst a; start_inst b; start_inst c
    check "static a, b, c own the partitions in thirds" wait_for 120 cover each a b c
    note "$COVER"
    kill_cycle a; release; kill_cycle b
    reap c || start_inst c
    term_inst c; start_inst c
    release; kill_cycle c; release; release; release
    LIVE=(a b c)
}

scenario_$MODE

# ---- the end: everything applied --------------------------------------------------------------
while ((released < CHUNKS)); do release; done
prc=0
wait_for 600 eval '! alive "$prod_pid"' || bad "producer still running after 600 s"
wait "$prod_pid" || prc=$?
prod_pid=""
check "producer: every chunk produced and acknowledged" test "$prc" = 0
((prc == 0)) || tail -n 5 "$T/produce.log" >&2
for x in "${LIVE[@]}"; do reap "$x" || start_inst "$x"; done
# The reference runs while the instances finish.
"$B/credit-replay" --db "$T/ref" --from-kafka "$BS" --out "$T/ref.out" 2> "$T/ref.log" &
ref_pid=$!
wait_for 60 eval 'read_progress && ((ESUM == want))'
check "the input topic holds the $want messages of the stream ($ESUM)" test "$ESUM" = "$want"
check "every message applied: the group's offsets at the end of every partition" wait_for 300 group_done
note "committed $CSUM of $ESUM"
check "${LIVE[*]} own every partition, lag 0" wait_for 120 cover lag0 "${LIVE[@]}"
note "final: $COVER"
check "the same as group_probe.py at-end" $PY "$PROBE" at-end "$BS" credit.events "$GROUP"
check "$kills SIGKILLs (>= 10), $mid of them with work left (>= 10)" test "$kills" -ge 10 -a "$mid" -ge 10 -o "$MODE" != group
rrc=0; wait "$ref_pid" || rrc=$?; ref_pid=""
check "credit-replay --from-kafka of the input topic (exit $rrc)" test "$rrc" = 0
((rrc == 0)) || tail -n 5 "$T/ref.log" >&2

# ---- the checks ------------------------------------------------------------------------------
same_sorted() { cmp -s <(LC_ALL=C sort "$1") <(LC_ALL=C sort "$2"); }
# The balance lines of STORE whose organisation is on one of PARTS (comma list).
owned_balances() { # STORE PARTS
    "$B/creditctl" --db "$1" balances --json | awk -v own=",$2," '
        NR == FNR { part[$1] = $2; next }
        match($0, /^\{"org":"[^"]*"/) {
            org = substr($0, 9, RLENGTH - 9)
            if (!(org in part)) { print "no partition known for " org > "/dev/stderr"; exit 1 }
            if (index(own, "," part[org] ",")) print
            next
        }
        { print "unexpected line: " $0 > "/dev/stderr"; exit 1 }' "$T/org.parts" -
}

$PY "$PROBE" key-partitions "$BS" credit.events > "$T/org.parts" 2> "$T/org.parts.err"
check "every organisation's events on one partition ($(wc -l < "$T/org.parts") organisations)" \
    test $? = 0 -a -s "$T/org.parts"
"$B/creditctl" --db "$T/ref" balances --json > "$T/ref.balances" || bad "creditctl balances of the reference"
check "the reference has balances ($(wc -l < "$T/ref.balances") lines)" test "$(wc -l < "$T/ref.balances")" -gt $((ORGS / 2))

# Each live instance's own partitions, with ownership unchanged while read.
union_ok=0
for try in 1 2 3; do
    cover lag0 "${LIVE[@]}" || { sleep 1; continue; }
    before=$COVER
    : > "$T/union.balances"
    declare -A OWN=()
    for x in "${LIVE[@]}"; do
        owned "$x"; OWN[$x]=$OWNED
        owned_balances "$T/db.$x" "$OWNED" > "$T/$x.balances" || bad "balances of $x"
        cat "$T/$x.balances" >> "$T/union.balances"
    done
    cover lag0 "${LIVE[@]}" && [[ "$COVER" == "$before" ]] && { union_ok=1; break; }
done
check "ownership stable while the stores were read ($before)" test "$union_ok" = 1
per=""; for x in "${LIVE[@]}"; do per+="$x $(wc -l < "$T/$x.balances"), "; done
check "union of the instances' own partitions == credit-replay's balances (${per}reference $(wc -l < "$T/ref.balances"))" \
    same_sorted "$T/ref.balances" "$T/union.balances"
if [[ $MODE == group ]]; then
    rc=0; timeout 300 "$B/creditctl" --from-kafka "$BS" balances --json > "$T/view.balances" 2> "$T/view.log" || rc=$?
    check "creditctl --from-kafka balances (exit $rc)" test "$rc" = 0
    ((rc == 0)) || tail -n 3 "$T/view.log" >&2
    check "the changelog view == credit-replay's balances ($(wc -l < "$T/view.balances") lines)" \
        same_sorted "$T/ref.balances" "$T/view.balances"
fi

kinds=(overage:credit.overage ledger:credit.ledger alerts:credit.alert rejected:credit.rejected)
n_ref=0
for kt in "${kinds[@]}"; do
    kind=${kt%%:*} type=${kt#*:}
    grep -F "\"type\":\"$type\"" "$T/ref.out" > "$T/ref.$kind.raw"
    n_ref=$((n_ref + $(wc -l < "$T/ref.$kind.raw")))
    norm "$T/ref.$kind.raw" > "$T/ref.$kind"
    topic_dump "credit.$kind" "$T/$kind.raw" || bad "reading credit.$kind"
    norm "$T/$kind.raw" > "$T/$kind"
    check "credit.$kind (read_committed) == credit-replay's ($(wc -l < "$T/$kind") vs $(wc -l < "$T/ref.$kind") messages)" \
        cmp -s "$T/ref.$kind" "$T/$kind"
    dup_ids "$T/$kind.raw" > "$T/$kind.dups"
    check "credit.$kind: no id twice $(head -n 3 "$T/$kind.dups" | tr '\n' ' ')" test ! -s "$T/$kind.dups"
done
check "credit-replay printed only overage, ledger, alert and rejected events" test "$(wc -l < "$T/ref.out")" = "$n_ref"
check "credit-replay: as many dead letters as bad lines ($(wc -l < "$T/ref.rejected") vs $nbad), some alerts ($(wc -l < "$T/ref.alerts"))" \
    test "$(wc -l < "$T/ref.rejected")" = "$nbad" -a -s "$T/ref.alerts" -a -s "$T/ref.overage"

# Negative controls: the same comparisons see a difference.
sed '1s/"value":"\([0-9]*\)/"value":"1\1/' "$T/ref.balances" > "$T/neg.balances"
check "negative control: an altered balance is detected" eval '! same_sorted "$T/ref.balances" "$T/neg.balances"'
sed 1d "$T/ledger" > "$T/neg.ledger"
check "negative control: a missing ledger entry is detected" eval '! cmp -s "$T/ref.ledger" "$T/neg.ledger"'
{ cat "$T/overage.raw"; head -n 1 "$T/overage.raw"; } > "$T/neg.overage.raw"
check "negative control: an overage id twice is detected" test -n "$(dup_ids "$T/neg.overage.raw")"
x=${LIVE[0]}
drop=${OWN[$x]%%,*}
owned_balances "$T/db.$x" "$(tr , '\n' <<<"${OWN[$x]}" | grep -vx "$drop" | paste -sd,)" > "$T/neg.part"
cat "$T/neg.part" > "$T/neg.union"
for y in "${LIVE[@]:1}"; do cat "$T/$y.balances" >> "$T/neg.union"; done
check "negative control: the union without partition $drop of $x is detected" \
    eval '! same_sorted "$T/ref.balances" "$T/neg.union"'

# ---- stop ------------------------------------------------------------------------------
for x in "${LIVE[@]}"; do reap "$x" && term_inst "$x"; done
for x in "${INSTS[@]}"; do
    [[ -f "$T/$x.log" ]] || continue
    grep -hiE "warn|fatal|error" "$T/$x.log" | sed -E 's/[0-9]+/N/g' | sort | uniq -c | sort -rn | head -n 8 \
        | sed "s/^/$NAME: $x log: /" >&2
done
note "done"
