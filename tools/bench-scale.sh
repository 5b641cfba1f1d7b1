#!/usr/bin/env bash
# tools/bench-scale.sh -- `make bench-scale`: creditd in group mode (issue 10)
# on one machine and a real Apache Kafka broker: throughput with 1, 2 and 3
# instances, the restore rate from the changelog, and fail-over time with and
# without a standby replica.
#
# 1. The stream: build/gen-events (BENCH_SCALE_ORGS organisations, seed
#    BENCH_SCALE_SEED, 4 months) of BENCH_SCALE_EVENTS + BENCH_SCALE_FEED
#    lines: the first BENCH_SCALE_EVENTS lines are the base stream (lines with
#    credit-produce, each tick with credit-tick: one copy per partition), the
#    rest without its ticks is the feed of the fail-over runs.  The state size
#    is that of tests/kafka/it_group.sh (300,000 events, 2,000 organisations).
# 2. A single-node Kafka 4 broker on loopback (tests/kafka/broker.sh,
#    transaction.abort.timed.out.transaction.cleanup.interval.ms=1000);
#    per run its own 8-partition input topic (credit.events.rN, retention
#    -1), its own compacted changelog (credit.changelog.X) and group
#    (bench-X); the output topics are shared.  Every instance: its own
#    --db, -X session.timeout.ms=6000 heartbeat.interval.ms=1000
#    transaction.timeout.ms=5000 (knobs below) http.listen=127.0.0.1:0
#    log.format=json.
# 3. Throughput, N = 1, 2, 3: the base stream is produced to the run's input
#    topic, then N instances start together; events/s = (messages -
#    committed at the first commit) / (time of the last commit - time of the
#    first), from the group's committed offsets (tests/kafka/group_probe.py
#    watch, every 0.1 s): a catch-up rate, like make bench-kafka's, which
#    includes forming the group (reported: when all N owned partitions,
#    from GET /metrics' creditd_consumer_lag lines).
# 4. Restore: the N=1 instance stopped (SIGTERM), its store deleted,
#    restarted: its log's "assigned partitions L: restored N changelog
#    records in S s" lines, rate = sum N / sum S (or, for lines "restored
#    partition P: N records", the time from the assignment to the last).
# 5. Fail-over, without a standby: a second instance b joins the restored
#    one (a) and restores its share (the "restore on join" figure); the feed
#    is produced at BENCH_SCALE_RATE events/s (group_probe.py rate); once
#    every partition's committed offset moved since the feed started, a is
#    SIGKILLed.  Reported: the time until b owns every partition (its
#    metrics, polled every 0.1 s: a partition's lag line appears once it is
#    restored) and until every one of a's partitions has a commit beyond its
#    offset 1 s after the kill (events applied again elsewhere), and what b
#    restored then.  With a standby: the same on a new group and changelog
#    with state.standby_replicas=1 on both, b joining after a applied
#    everything, the feed and the kill only once b's copy of a's partitions
#    equals a's (creditctl balances of both stores, filtered by partition:
#    the standby is warm).
# 6. One report block: machine, load, figures, the issue's targets
#    (restore >= 100k records/s, fail-over with a standby <= 10 s) PASS/MISS.
#
# A missed target is reported, not fatal; the exit status is non-zero only
# when something fails (broker, produce, an instance, a bounded wait).
# Knobs: BENCH_SCALE_EVENTS (300000), BENCH_SCALE_ORGS (2000),
# BENCH_SCALE_FEED (60000), BENCH_SCALE_RATE (1000), BENCH_SCALE_SEED (1),
# BENCH_SCALE_TIMEOUT (seconds per wait for a whole stream, 900),
# BENCH_SCALE_SESSION_MS (session.timeout.ms, 6000), BENCH_SCALE_TXN_MS
# (transaction.timeout.ms, 5000: a SIGKILLed owner's open transaction
# holds its partitions until the broker aborts it, so fail-over is at
# least about the larger of the two),
# BENCH_SCALE_KEEP=1 keeps the temporary directory.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$ROOT/tests/kafka/lib.sh"   # split_stream, produce_all, stop_creditd, alive
cd "$ROOT" || exit 1

B=build
BROKER=tests/kafka/broker.sh
PROBE=tests/kafka/group_probe.py
PY=/usr/bin/python3
NAME=bench-scale
PARTS=8
EVENTS=${BENCH_SCALE_EVENTS:-300000}
ORGS=${BENCH_SCALE_ORGS:-2000}
FEED=${BENCH_SCALE_FEED:-60000}
RATE=${BENCH_SCALE_RATE:-1000}
SEED=${BENCH_SCALE_SEED:-1}
TIMEOUT=${BENCH_SCALE_TIMEOUT:-900}
SESSION_MS=${BENCH_SCALE_SESSION_MS:-6000}
TXN_MS=${BENCH_SCALE_TXN_MS:-5000}
pass=0 fail=0 t0=$SECONDS pid="" prod_pid="" ref_pid="" watch_pid="" feed_pid=""
declare -A IPID=() IOUT=() ILOG=() NSTART=()

say() { echo "bench-scale: $*" >&2; }
die() { say "FAILED: $*"; exit 1; }
now() { date +%s.%N; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
wait_for() { # SECONDS CMD...: CMD every WAIT_STEP (0.1) s until it succeeds, at most SECONDS
    local deadline=$((SECONDS + $1)); shift
    until "$@"; do ((SECONDS < deadline)) || return 1; sleep "${WAIT_STEP:-0.1}"; done
}

for f in creditd creditctl credit-produce credit-tick gen-events; do
    [[ -x "$B/$f" ]] || die "$B/$f is not built (make bench-scale builds it)"
done
command -v curl >/dev/null || die "curl is missing (make deps)"
"$PY" -c 'import confluent_kafka' 2>/dev/null || die "$PY has no confluent_kafka (make deps)"

load_start=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')
T=$(mktemp -d "${TMPDIR:-/tmp}/bench-scale.XXXXXX") || exit 1
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    local x p
    for x in "${!IPID[@]}"; do
        [[ -n "${IPID[$x]}" ]] && { kill -KILL "${IPID[$x]}" 2>/dev/null; wait "${IPID[$x]}" 2>/dev/null; }
    done
    for p in "$watch_pid" "$feed_pid"; do [[ -n "$p" ]] && kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    bash "$BROKER" stop "$T/kafka" >/dev/null 2>&1 || true
    if [[ -n "${BENCH_SCALE_KEEP:-}" ]]; then say "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- instances (X names a store, a log and a process) -----------------------------
start_inst() { # X GROUP RUN [creditd args...]: RUN names the input and changelog topics
    local x=$1 group=$2 run=$3 n
    shift 3
    n=$(( ${NSTART[$x]:-0} + 1 )); NSTART[$x]=$n
    IOUT[$x]=$T/$x.out.$n ILOG[$x]=$T/$x.log.$n
    "$B/creditd" --db "$T/db.$x" -X "kafka.bootstrap.servers=$BS" -X "group.id=$group" \
        -X input.assignment=group -X "topic.input=credit.events.$run" \
        -X "state.changelog.topic=credit.changelog.$group" -X "session.timeout.ms=$SESSION_MS" \
        -X heartbeat.interval.ms=1000 -X "transaction.timeout.ms=$TXN_MS" \
        -X http.listen=127.0.0.1:0 -X log.format=json -X stats.interval_ms=5000 "$@" \
        > "${IOUT[$x]}" 2> "${ILOG[$x]}" &
    IPID[$x]=$!
}
up() { [[ -n "${IPID[$1]:-}" ]] && alive "${IPID[$1]}"; }
need_up() { # X...: die when one exited (its log's last lines shown)
    local x
    for x; do up "$x" || { tail -n 5 "${ILOG[$x]}" >&2; die "instance $x exited by itself"; }; done
}
term_inst() { local rc=0; stop_creditd "${IPID[$1]}" 60 || rc=$?; IPID[$1]=""; ((rc == 0)) || say "$1 exited $rc after SIGTERM"; }
owned() { # X: OWNED (comma list) and LAG (sum) from GET /metrics
    local url m
    up "$1" || return 1
    url=$(sed -n 's#^creditd: http listening on \(http://[^ ]*\)$#\1#p' "${IOUT[$1]}" 2>/dev/null | head -n1)
    [[ -n "$url" ]] || return 1
    m=$(curl -sf --max-time 3 "$url/metrics") || return 1
    OWNED=$(awk -F'"' '/^creditd_consumer_lag\{partition="[0-9]+"\}/ {print $2}' <<<"$m" | sort -n | paste -sd,)
    LAG=$(awk '/^creditd_consumer_lag\{/ {s += $2} END {print s + 0}' <<<"$m")
}
cover() { # [lag0] X...: every partition owned exactly once, each X some
    local x lag0=0 all=""
    [[ $1 == lag0 ]] && { lag0=1; shift; }
    for x; do
        owned "$x" && [[ -n "$OWNED" ]] || return 1
        ((lag0 == 0 || LAG == 0)) || return 1
        all+=$OWNED,
    done
    [[ "$(tr , '\n' <<<"$all" | grep . | sort -n | paste -sd,)" == "$(seq -s, 0 $((PARTS - 1)))" ]]
}

# ---- the group's committed offsets ------------------------------------------------
watch_start() { # RUN GROUP: history of committed offsets in $T/hist.GROUP
    [[ -n "$watch_pid" ]] && { kill "$watch_pid" 2>/dev/null; wait "$watch_pid" 2>/dev/null; }
    "$PY" "$PROBE" watch "$BS" "credit.events.$1" "$2" "$T/progress.$2" --interval 0.1 \
        --history "$T/hist.$2" 2>> "$T/watch.log" &
    watch_pid=$!
    PROGRESS=$T/progress.$2
}
read_progress() { # sets PT CSUM ESUM COM[] END[]
    local line pc i=0
    line=$(cat "$PROGRESS" 2>/dev/null) || return 1
    [[ -n "$line" ]] || return 1
    read -r PT CSUM ESUM pc <<<"$line"
    COM=() END=()
    for pc in $pc; do COM[i]=${pc%:*}; END[i]=${pc#*:}; i=$((i + 1)); done
}
all_applied() { read_progress && ((ESUM >= $1 && CSUM == ESUM)); }

topic() { # NAME PARTITIONS [config...]
    bash "$BROKER" create-topic "$T/kafka" "$@" >/dev/null || die "create topic $1"
}
run_topics() { # RUN GROUP...
    local run=$1 g
    shift
    topic "credit.events.$run" "$PARTS" retention.ms=-1
    for g; do topic "credit.changelog.$g" "$PARTS" cleanup.policy=compact; done
}

# ---- 1. the stream ----------------------------------------------------------------------
say "generating $((EVENTS + FEED)) events ($ORGS organisations, seed $SEED)"
"$B/gen-events" --orgs "$ORGS" --events $((EVENTS + FEED)) --months 4 --seed "$SEED" \
    --out "$T/all.jsonl" 2>/dev/null || die "gen-events"
head -n "$EVENTS" "$T/all.jsonl" > "$T/base.jsonl"
tail -n +"$((EVENTS + 1))" "$T/all.jsonl" | grep -vF '"type":"clock.tick"' > "$T/feed.jsonl"
mkdir -p "$T/base"
split_stream "$T/base.jsonl" "$T/base"   # sets want (messages on 8 partitions)
NBASE=$want
split -n l/2 -d "$T/feed.jsonl" "$T/feed."   # feed.00 (standby 0), feed.01 (standby 1)
say "base: $NBASE messages on $PARTS partitions; feed: $(wc -l < "$T/feed.jsonl") lines at $RATE/s"

# ---- 2. broker ---------------------------------------------------------------------------
BS=$(bash "$BROKER" start "$T/kafka" transaction.abort.timed.out.transaction.cleanup.interval.ms=1000) \
    || die "broker start (see $T/kafka/broker.log)"
kafka_version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' tests/kafka/pom.xml | head -n1)
say "broker at $BS"
topic credit.overage 3; topic credit.ledger 3 retention.ms=-1; topic credit.rejected 1
topic credit.alerts 3 retention.ms=-1

# ---- 3. throughput with 1, 2, 3 instances --------------------------------------------------
declare -A RATE_N=() APPLY_S=() FORM_S=()
for n in 1 2 3; do
    run=r$n group=bench-r$n
    run_topics "$run" "$group"
    produce_all "$T/base" "credit.events.$run" > "$T/produce.$run.log" 2>&1 || die "producing the base stream"
    watch_start "$run" "$group"
    insts=()
    for ((i = 0; i < n; i++)); do x=$run-$i; insts+=("$x"); start_inst "$x" "$group" "$run"; done
    deadline=$((SECONDS + TIMEOUT)) t_cover=""
    until all_applied "$NBASE"; do
        need_up "${insts[@]}"
        [[ -z "$t_cover" ]] && cover "${insts[@]}" && t_cover=$(date +%s.%N)
        ((SECONDS < deadline)) || die "$n instances: committed ${CSUM:-0} of $NBASE within $TIMEOUT s"
        sleep 0.2
    done
    # First and last commit from the history: (messages - committed at the first) / time.
    read -r RATE_N[$n] APPLY_S[$n] FORM_S[$n] < <(awk -v n="$NBASE" -v tc="${t_cover:-0}" '
        $2 > 0 && !t1 { t1 = $1; c1 = $2 } $2 >= n && !t2 { t2 = $1 }
        END { d = t2 - t1; printf "%.0f %.2f %s\n", (d > 0 ? (n - c1) / d : 0), d, (tc > 0 ? sprintf("%.2f", tc - t1) : "-") }' \
        "$T/hist.$group")
    say "$n instance(s): ${RATE_N[$n]} events/s (${APPLY_S[$n]} s first to last commit; all $n owning partitions ${FORM_S[$n]} s after the first commit)"
    if ((n > 1)); then for x in "${insts[@]}"; do term_inst "$x"; done; fi
done

# ---- 4. restore: r1-0's store deleted, restarted ----------------------------------------------
# Restore lines of a JSON log: "assigned partitions L: restored N changelog
# records in S s" (records and seconds as stated), or "restored partition P:
# N records ..." (seconds from the time of the assignment line before the
# first to that of the last).  Prints "RECORDS SECONDS LINES".
restore_figures() { # LOG
    jq -r 'select(.message != null) | [.time, .message] | @tsv' "$1" 2>/dev/null | awk -F'\t' '
        function ts(s,   t) { split(substr(s, 12, 12), t, ":"); return t[1] * 3600 + t[2] * 60 + t[3] }
        /assigned partitions/ && !first { a = ts($1) }
        match($2, /restored [0-9]+ (changelog )?records in [0-9.]+ s/) {
            m = substr($2, RSTART, RLENGTH); split(m, w, " ")
            rec += w[2]; stated += w[w[3] == "changelog" ? 6 : 5]; lines++; next
        }
        match($2, /restored partition [0-9]+: [0-9]+ records/) {
            m = substr($2, RSTART, RLENGTH); split(m, w, " ")
            if (!first) first = a ? a : ts($1)
            last = ts($1); rec += w[4]; lines++
        }
        END { printf "%d %.2f %d\n", rec, stated + (last - first), lines }'
}
rate_of() { awk -v r="$1" -v s="$2" 'BEGIN { printf "%.0f", (s > 0 ? r / s : 0) }'; }
state_entries() { # STORE: entries of the state databases (what a restore rebuilds)
    "$B/creditctl" --db "$1" stats 2>/dev/null | awk '
        $1 ~ /^(orgs|project_credits|org_partition|partitions|dedupe|dedupe_expiry|offsets)$/ { s += $2 }
        END { print s + 0 }'
}
x=r1-0
term_inst "$x"
rm -rf "$T/db.$x"
changelog_records=$("$PY" tools/latency_probe.py offsets "$BS" credit.changelog.bench-r1 | awk '{print $2}')
start_inst "$x" bench-r1 r1
watch_start r1 bench-r1
restored_all() { need_up "$x"; cover lag0 "$x"; }
wait_for 300 restored_all || die "restore: $x did not own every partition with lag 0 within 300 s"
read -r R_REC R_SEC R_LINES < <(restore_figures "${ILOG[$x]}")
R_RATE=$(rate_of "$R_REC" "$R_SEC")
R_STATE=$(state_entries "$T/db.$x")
say "restore: $R_REC records in $R_SEC s ($R_RATE records/s; $R_LINES lines; the changelog holds $changelog_records records, the restored store $R_STATE state entries)"
jq -r 'select(.message != null and (.message | test("restor"))) | .time + " " + .message' "${ILOG[$x]}" \
    | tail -n 4 | sed 's/^/bench-scale:   /' >&2

# ---- 5. fail-over --------------------------------------------------------------------------
"$PY" "$PROBE" key-partitions "$BS" credit.events.r1 > "$T/org.parts" 2> "$T/org.parts.err" \
    || die "key-partitions of credit.events.r1: $(tail -n 1 "$T/org.parts.err")"
(( $(wc -l < "$T/org.parts") >= ORGS / 2 )) || die "key-partitions: only $(wc -l < "$T/org.parts") organisations"
# The balance lines of STORE whose organisation is on one of PARTS (comma list).
owned_balances() { # STORE PARTS
    "$B/creditctl" --db "$1" balances --json 2>/dev/null | awk -v own=",$2," '
        NR == FNR { part[$1] = $2; next }
        match($0, /^\{"org":"[^"]*"/) { org = substr($0, 9, RLENGTH - 9); if (index(own, "," part[org] ",")) print }' \
        "$T/org.parts" -
}
# failover A B GROUP FEEDFILE: A and B share the partitions with lag 0 (and,
# with "warm", B's copy of A's partitions equals A's); the feed runs; A is
# SIGKILLed.  Sets FO_OWN (B owns every partition) and FO_APPLY (each of A's
# partitions has a commit beyond its offset 1 s after the kill: the dead
# instance's last transaction may still complete right after the kill; no
# other owner is possible before its session times out), seconds after the
# kill; B's log up to the kill is in $T/B.before-kill.
failover() {
    local a=$1 b=$2 group=$3 feedf=$4 warm=${5:-} c0=() tk p own
    shared() { need_up "$a" "$b"; cover lag0 "$a" "$b"; }
    wait_for 300 shared || die "fail-over: $a and $b not sharing the partitions with lag 0"
    owned "$a"; own=$OWNED
    if [[ -n "$warm" ]]; then
        same_copy() {
            need_up "$a" "$b"
            owned_balances "$T/db.$a" "$own" > "$T/copy.$a" && owned_balances "$T/db.$b" "$own" > "$T/copy.$b" \
                && [[ -s "$T/copy.$a" ]] && cmp -s "$T/copy.$a" "$T/copy.$b"
        }
        local tw; tw=$(now)
        WAIT_STEP=1 wait_for 600 same_copy \
            || die "standby: $b's copy of partitions [$own] never equalled $a's ($(wc -l < "$T/copy.$a") vs $(wc -l < "$T/copy.$b") lines)"
        WARM_S=$(sub "$tw" "$(now)")
        say "standby: $b's copy of $a's partitions [$own] equals $a's ($(wc -l < "$T/copy.$b") balance lines) $WARM_S s after both shared the partitions"
    fi
    "$PY" "$PROBE" rate "$BS" credit.events.r1 "$feedf" "$RATE" > "$T/feed.$group.log" 2>&1 &
    feed_pid=$!
    read_progress; for ((p = 0; p < PARTS; p++)); do c0[p]=${COM[p]}; done
    moving() { local p; need_up "$a" "$b"; read_progress || return 1; for ((p = 0; p < PARTS; p++)); do ((COM[p] > c0[p])) || return 1; done; }
    wait_for 120 moving || die "fail-over: the feed is not applied on every partition within 120 s"
    owned "$a"; own=$OWNED
    cp "${ILOG[$b]}" "$T/$b.before-kill"
    tk=$(now)
    kill -KILL "${IPID[$a]}"; wait "${IPID[$a]}" 2>/dev/null; IPID[$a]=""
    b_owns_all() { need_up "$b"; owned "$b" && [[ "$OWNED" == "$(seq -s, 0 $((PARTS - 1)))" ]]; }
    wait_for 300 b_owns_all || die "fail-over: $b does not own every partition within 300 s"
    FO_OWN=$(sub "$tk" "$(now)")
    applied_again() { # each of a's partitions committed beyond its offset at tk + 1 s
        awk -v tk="$tk" -v own="$own" '
            BEGIN { n = split(own, o, ",") }
            $1 >= tk + 1 && !base { for (i = 1; i <= n; i++) { split($(4 + o[i]), pc, ":"); c0[i] = pc[1] }; base = 1; next }
            base && !done {
                ok = 1
                for (i = 1; i <= n; i++) { split($(4 + o[i]), pc, ":"); if (pc[1] <= c0[i]) ok = 0 }
                if (ok) { printf "%.2f\n", $1 - tk; done = 1 }
            }
            END { exit !done }' "$T/hist.$group"
    }
    wait_for 300 applied_again > /dev/null || die "fail-over: $a's partitions [$own] not applied again within 300 s"
    FO_APPLY=$(applied_again)
    kill "$feed_pid" 2>/dev/null; wait "$feed_pid" 2>/dev/null; feed_pid=""
    say "fail-over ($group): $a owned [$own]; $b owned every partition after $FO_OWN s; all of [$own] applied again after $FO_APPLY s"
}

# Without a standby: b joins the restored r1-0 and restores its share from zero.
start_inst r1-b bench-r1 r1
failover r1-0 r1-b bench-r1 "$T/feed.00"
FO0_OWN=$FO_OWN FO0_APPLY=$FO_APPLY
read -r J_REC J_SEC _ < <(restore_figures "$T/r1-b.before-kill")
read -r A_REC A_SEC _ < <(restore_figures "${ILOG[r1-b]}")
FO0_REC=$((A_REC - J_REC)) FO0_RSEC=$(awk -v a="$A_SEC" -v j="$J_SEC" 'BEGIN { printf "%.2f", a - j }')
term_inst r1-b

# With a standby: a new group and changelog on the same input; the kill once
# the standby's copy equals the owner's.
topic credit.changelog.bench-s1 "$PARTS" cleanup.policy=compact
watch_start r1 bench-s1
wait_for 60 read_progress || die "standby run: no progress line"
start_inst s1-a bench-s1 r1 -X state.standby_replicas=1
wait_for "$TIMEOUT" all_applied "$ESUM" || die "standby run: s1-a did not apply the input"
start_inst s1-b bench-s1 r1 -X state.standby_replicas=1
failover s1-a s1-b bench-s1 "$T/feed.01" warm
FO1_OWN=$FO_OWN FO1_APPLY=$FO_APPLY
read -r J1_REC J1_SEC _ < <(restore_figures "$T/s1-b.before-kill")
read -r A1_REC A1_SEC _ < <(restore_figures "${ILOG[s1-b]}")
FO1_REC=$((A1_REC - J1_REC)) FO1_RSEC=$(awk -v a="$A1_SEC" -v j="$J1_SEC" 'BEGIN { printf "%.2f", a - j }')
term_inst s1-b

# ---- 6. report ---------------------------------------------------------------------------------
load_end=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')
ncpu=$(nproc 2>/dev/null || echo '?')
model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)
mem=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo 2>/dev/null)
fstype=$(df -PT "$T" 2>/dev/null | awk 'NR == 2 { print $2 }')
{
echo "================== creditd bench-scale (group mode) =================="
printf "stream           %d messages on %d partitions (%d events, %d organisations, seed %d)\n" \
    "$NBASE" "$PARTS" "$EVENTS" "$ORGS" "$SEED"
for n in 1 2 3; do
    printf "%d instance(s)    %s events/s  (%s s first to last commit on the produced stream; all %d owning partitions %s s after the first commit)\n" \
        "$n" "${RATE_N[$n]}" "${APPLY_S[$n]}" "$n" "${FORM_S[$n]}"
done
printf "restore          %s records/s  (%s changelog records, all %d partitions, in %s s; the changelog held %s records, the store has %s state entries)\n" \
    "$R_RATE" "$R_REC" "$PARTS" "$R_SEC" "$changelog_records" "$R_STATE"
printf "restore on join  %s records/s  (%s records, the joining instance's share, in %s s)\n" "$(rate_of "$J_REC" "$J_SEC")" "$J_REC" "$J_SEC"
printf "fail-over        no standby: partitions owned %s s, applying again %s s after SIGKILL (restored %s records in %s s)\n" \
    "$FO0_OWN" "$FO0_APPLY" "$FO0_REC" "$FO0_RSEC"
printf "                 standby 1:  partitions owned %s s, applying again %s s after SIGKILL (restored %s records in %s s;\n" \
    "$FO1_OWN" "$FO1_APPLY" "$FO1_REC" "$FO1_RSEC"
printf "                             the standby's copy equalled the owner's %s s after the two shared the partitions)\n" "$WARM_S"
printf "                 (session.timeout.ms=%d, transaction.timeout.ms=%d, feed %d events/s)\n" "$SESSION_MS" "$TXN_MS" "$RATE"
printf "broker           Apache Kafka %s, single node on loopback, same machine, fs %s\n" "$kafka_version" "$fstype"
printf "machine          %s CPUs, %s, %s RAM, load %s at start, %s at end\n" "$ncpu" "$model" "$mem" "$load_start" "$load_end"
printf "target restore   >= 100000 records/s: %s\n" "$(awk -v r="$R_RATE" 'BEGIN { print (r >= 100000 ? "PASS" : "MISS") }')"
printf "target fail-over with a standby <= 10 s: %s\n" "$(awk -v r="$FO1_APPLY" 'BEGIN { print ((r != "" && r <= 10) ? "PASS" : "MISS") }')"
echo "====================================================================="
}
exit 0
