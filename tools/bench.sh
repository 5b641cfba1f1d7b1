#!/bin/sh
# tools/bench.sh -- `make bench`: replay throughput against the parse-only floor.
#
# 1. Generates the synthetic stream once into $BENCH_DIR (default build/bench/)
#    with build/gen-events and reuses it on later runs (regenerated only when
#    gen-events is newer than the file or the parameters change: the file name
#    carries orgs, events and seed).
# 2. build/bench-parse: jansson json_loadb + json_decref over every line, the
#    floor any consumer of this stream pays.
# 3. build/credit-replay --db FRESH_DIR --batch 10000 --out /dev/null FILE,
#    into an empty store (durable commits, one per batch), timed.
# 4. One report block: events, replay events/s, parse-only events/s, their
#    ratio, peak RSS, store size, machine, and the targets with PASS/MISS;
#    then `creditctl --db DIR stats` when creditctl is built.
#
# A missed target is reported, not fatal: the exit status is non-zero only
# when a tool fails (generation, parse, replay).
#
# Timing and memory: with /usr/bin/time (GNU time, present on the reference
# machine) wall seconds and peak RSS come from `/usr/bin/time -f '%e %M'`
# (max RSS from the kernel's rusage: exact).  Without it the script falls back
# to `date +%s.%N` around the run and samples VmHWM (the kernel's own peak
# RSS) from /proc/PID/status every 0.2 s, which can miss growth in the last
# 0.2 s of the run.  BENCH_NO_GNU_TIME=1 forces the fallback.
#
# Without BENCH_ORGS the script runs itself twice, with 10,000 and with 100,000
# organisations (two streams, two report blocks, then one line of both ratios).
#
# Knobs (environment): BENCH_DIR, BENCH_ORGS (both), BENCH_EVENTS (1000000),
# BENCH_SEED (1), BENCH_BATCH (10000), BENCH_REPLAY / BENCH_CREDITCTL (the
# binaries, default build/credit-replay and build/creditctl).
set -u
cd "$(dirname "$0")/.." || exit 1

if [ -z "${BENCH_ORGS:-}" ]; then
    both=${BENCH_DIR:-build/bench}/ratios.txt
    mkdir -p "$(dirname "$both")" && : > "$both" || exit 1
    for n in 10000 100000; do
        BENCH_ORGS=$n BENCH_RATIOS=$both sh "$0" || exit 1
    done
    echo "bench: ratio replay / parse-only: $(tr '\n' ' ' < "$both")(target >= 0.6 at both sizes)"
    exit 0
fi

B=build
DIR=${BENCH_DIR:-$B/bench}
ORGS=${BENCH_ORGS:-10000}
EVENTS=${BENCH_EVENTS:-1000000}
SEED=${BENCH_SEED:-1}
BATCH=${BENCH_BATCH:-10000}
REPLAY=${BENCH_REPLAY:-$B/credit-replay}
CTL=${BENCH_CREDITCTL:-$B/creditctl}
FILE=$DIR/events-o$ORGS-e$EVENTS-s$SEED.jsonl
STORE=$DIR/store
TARGET_RATE=100000
TARGET_RATIO=0.6

mkdir -p "$DIR" || exit 1
load_start=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo '?')

# ---- 1. the stream -----------------------------------------------------------
if [ ! -s "$FILE" ] || [ "$B/gen-events" -nt "$FILE" ]; then
    echo "bench: generating $FILE ($ORGS organisations, $EVENTS events, seed $SEED)" >&2
    if ! "$B/gen-events" --orgs "$ORGS" --events "$EVENTS" --seed "$SEED" \
            --out "$FILE.tmp" 2> "$FILE.summary"; then
        cat "$FILE.summary" >&2
        rm -f "$FILE.tmp"
        echo "bench: gen-events failed" >&2
        exit 1
    fi
    mv "$FILE.tmp" "$FILE" || exit 1
else
    echo "bench: reusing $FILE" >&2
fi
[ -f "$FILE.summary" ] && cat "$FILE.summary" >&2
events=$(wc -l < "$FILE" | tr -d ' ')

# ---- 2. parse-only floor -----------------------------------------------------
echo "bench: parse-only (jansson) ..." >&2
if ! parse_out=$("$B/bench-parse" "$FILE"); then
    echo "$parse_out" >&2
    echo "bench: bench-parse failed" >&2
    exit 1
fi
echo "$parse_out" >&2
parse_rate=$(echo "$parse_out" | awk '/^parse:/ { print $(NF-1) }')

# ---- 3. replay into a fresh store --------------------------------------------
if [ ! -x "$REPLAY" ]; then
    echo "bench: $REPLAY is not built" >&2
    exit 1
fi
rm -rf "$STORE" && mkdir -p "$STORE" || exit 1
echo "bench: $REPLAY --db $STORE --batch $BATCH --out /dev/null $FILE ..." >&2
LOG=$DIR/replay.log
if [ -x /usr/bin/time ] && [ -z "${BENCH_NO_GNU_TIME:-}" ]; then
    timer="/usr/bin/time -f '%e %M'"
    /usr/bin/time -f '%e %M' -o "$DIR/replay.time" \
        "$REPLAY" --db "$STORE" --batch "$BATCH" --out /dev/null "$FILE" 2> "$LOG"
    rc=$?
    # GNU time prepends "Command exited with non-zero status N" on failure.
    set -- $(tail -n 1 "$DIR/replay.time")
    wall=${1:-0}
    rss_kb=${2:-0}
else
    timer="date +%s.%N + VmHWM sampled every 0.2 s"
    t0=$(date +%s.%N)
    "$REPLAY" --db "$STORE" --batch "$BATCH" --out /dev/null "$FILE" 2> "$LOG" &
    pid=$!
    rss_kb=0
    while :; do
        st=$(awk '/^State:/ { s = $2 } /^VmHWM:/ { h = $2 } END { print s, h }' \
             "/proc/$pid/status" 2>/dev/null)
        set -- $st
        [ -n "${1:-}" ] && [ "$1" != Z ] || break
        [ -n "${2:-}" ] && rss_kb=$2
        sleep 0.2
    done
    wait "$pid"
    rc=$?
    t1=$(date +%s.%N)
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
fi
echo "bench: credit-replay summary (stderr, last lines):" >&2
tail -n 20 "$LOG" >&2

# ---- 4. report -----------------------------------------------------------------
ncpu=$(nproc 2>/dev/null || echo '?')
model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)
mem=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo 2>/dev/null)
fstype=$(df -PT "$STORE" 2>/dev/null | awk 'NR == 2 { print $2 }')
if [ -f "$STORE/data.mdb" ]; then
    store_kb=$(du -k "$STORE/data.mdb" | cut -f1)
    store_app=$(du -k --apparent-size "$STORE/data.mdb" 2>/dev/null | cut -f1)
else
    store_kb=$(du -sk "$STORE" | cut -f1)
    store_app=
fi

awk -v events="$events" -v wall="$wall" -v rss="$rss_kb" -v parse="$parse_rate" \
    -v rc="$rc" -v store="$store_kb" -v store_app="$store_app" -v batch="$BATCH" \
    -v trate="$TARGET_RATE" -v tratio="$TARGET_RATIO" -v ncpu="$ncpu" -v model="$model" \
    -v mem="$mem" -v fstype="$fstype" -v load="$load_start" -v timer="$timer" \
    -v file="$FILE" 'BEGIN {
    ok = (rc == 0 && wall > 0)
    rate = ok ? events / wall : 0
    ratio = (ok && parse > 0) ? rate / parse : 0
    print  "==================== creditd bench ===================="
    printf "events           %d  (%s)\n", events, file
    if (ok)
        printf "replay           %.0f events/s  (%.2f s wall, durable commits, batch %d)\n", rate, wall, batch
    else
        printf "replay           FAILED (exit %d after %.2f s) -- see the log above\n", rc, wall
    printf "parse-only       %.0f events/s  (jansson json_loadb + json_decref)\n", parse
    printf "ratio            %.2f  (replay / parse-only)\n", ratio
    printf "peak RSS         %.1f MiB  (%s)\n", rss / 1024, timer
    printf "store            %.1f MiB data.mdb on disk", store / 1024
    if (store_app != "") printf " (apparent %.1f MiB)", store_app / 1024
    printf ", fs %s\n", fstype
    printf "machine          %s CPUs, %s, %s RAM, load %s at start\n", ncpu, model, mem, load
    printf "target replay    >= %d events/s: %s\n", trate, (ok && rate >= trate) ? "PASS" : "MISS"
    printf "target ratio     >= %.2f: %s\n", tratio, (ok && ratio >= tratio) ? "PASS" : "MISS"
    print  "======================================================="
}'

if [ "$rc" -ne 0 ]; then
    exit 1
fi
if [ -n "${BENCH_RATIOS:-}" ]; then
    awk -v o="$ORGS" -v e="$events" -v w="$wall" -v p="$parse_rate" \
        'BEGIN { printf "%d orgs %.2f,\n", o, (w > 0 && p > 0) ? e / w / p : 0 }' >> "$BENCH_RATIOS"
fi
if [ -x "$CTL" ]; then
    echo "bench: $CTL --db $STORE stats"
    "$CTL" --db "$STORE" stats || echo "bench: creditctl stats failed (exit $?)" >&2
fi
exit 0
