#!/bin/sh
# tools/bench-large.sh -- `make bench-large`: does replay keep its speed on a
# large store?  (issue 11, README "Large store (`make bench-large`)")
#
# 1. Generates one stream of BENCH_LARGE_EVENTS events (default 10,000,000)
#    over BENCH_LARGE_ORGS organisations (default 100,000) with gen-events,
#    once (reused while gen-events is older than the file), and cuts it into
#    chunks of BENCH_LARGE_CHUNK lines (default 1,000,000).
# 2. Replays the chunks in order into ONE fresh store, one credit-replay run
#    per chunk (durable commits, batch 10000), so the store grows from empty
#    to the whole stream; each run is timed, and its private memory
#    (RssAnon of /proc/PID/status: LMDB's mapped file pages are the kernel's
#    to drop and are not counted) is sampled every 0.2 s.
# 3. Reports every chunk (events/s, peak RssAnon, store used bytes) and the
#    two figures of the issue, both measured in this one run:
#      rate ratio   last chunk / first chunk   (target >= 0.8)
#      (and the same ratio in CPU time per event, which the machine's other
#      load does not change)
#      memory ratio peak RssAnon of any chunk / of the first  (target <= 1.5)
#
# A missed target is reported, not fatal.  Knobs: BENCH_LARGE_DIR
# (build/bench-large), BENCH_LARGE_EVENTS, BENCH_LARGE_ORGS, BENCH_LARGE_CHUNK,
# BENCH_LARGE_SEED (1), BENCH_LARGE_BATCH (10000), BENCH_REPLAY.
set -u
cd "$(dirname "$0")/.." || exit 1

B=build
DIR=${BENCH_LARGE_DIR:-$B/bench-large}
EVENTS=${BENCH_LARGE_EVENTS:-10000000}
ORGS=${BENCH_LARGE_ORGS:-100000}
CHUNK=${BENCH_LARGE_CHUNK:-1000000}
SEED=${BENCH_LARGE_SEED:-1}
BATCH=${BENCH_LARGE_BATCH:-10000}
REPLAY=${BENCH_REPLAY:-$B/credit-replay}
FILE=$DIR/events-o$ORGS-e$EVENTS-s$SEED.jsonl
PARTS=$DIR/parts-o$ORGS-e$EVENTS-s$SEED-c$CHUNK
STORE=$DIR/store

mkdir -p "$DIR" || exit 1
load_start=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo '?')

if [ ! -s "$FILE" ] || [ "$B/gen-events" -nt "$FILE" ]; then
    echo "bench-large: generating $FILE ($ORGS organisations, $EVENTS events)" >&2
    rm -rf "$PARTS"
    "$B/gen-events" --orgs "$ORGS" --events "$EVENTS" --seed "$SEED" --out "$FILE.tmp" \
        2> "$FILE.summary" && mv "$FILE.tmp" "$FILE" || { cat "$FILE.summary" >&2; exit 1; }
fi
if [ ! -d "$PARTS" ] || [ "$FILE" -nt "$PARTS" ]; then
    rm -rf "$PARTS" && mkdir -p "$PARTS.tmp" || exit 1
    split -l "$CHUNK" -d -a 3 "$FILE" "$PARTS.tmp/part-" || exit 1
    mv "$PARTS.tmp" "$PARTS" || exit 1
fi

# One chunk: wall seconds, peak RssAnon (kB), CPU seconds (user + system, both
# threads) on stdout.  The CPU time does not depend on what else the machine
# runs, the wall time does: on a shared machine compare both.
run_chunk() {
    /usr/bin/time -f '%e %U %S' -o "$DIR/chunk.time" \
        "$REPLAY" --db "$STORE" --batch "$BATCH" --out /dev/null "$1" 2>> "$DIR/replay.log" &
    tpid=$!
    peak=0
    pid=
    while :; do
        [ -n "$pid" ] || pid=$(pgrep -P "$tpid" | head -n 1)
        a=
        [ -n "$pid" ] && a=$(awk '/^RssAnon:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
        if [ -z "$a" ]; then
            kill -0 "$tpid" 2>/dev/null || break
        elif [ "$a" -gt "$peak" ]; then
            peak=$a
        fi
        sleep 0.2
    done
    wait "$tpid"
    rc=$?
    [ "$rc" -eq 0 ] || { echo "bench-large: credit-replay failed on $1 (exit $rc)" >&2; return 1; }
    set -- $(tail -n 1 "$DIR/chunk.time")
    echo "$1 $peak $(awk -v u="$2" -v s="$3" 'BEGIN { printf "%.2f", u + s }')"
}

rm -rf "$STORE" && mkdir -p "$STORE" || exit 1
: > "$DIR/replay.log"
echo "bench-large: replaying $FILE in chunks of $CHUNK into $STORE" >&2
RES=$DIR/chunks.txt
: > "$RES"
i=0
for f in "$PARTS"/part-*; do
    i=$((i + 1))
    n=$(wc -l < "$f" | tr -d ' ')
    r=$(run_chunk "$f") || exit 1
    set -- $r
    used=$(du -k "$STORE/data.mdb" | cut -f1)
    load=$(cut -d' ' -f1 /proc/loadavg)
    echo "$i $n $1 $2 $used $load $3" >> "$RES"
    awk -v i="$i" -v n="$n" -v w="$1" -v p="$2" -v u="$used" -v l="$load" -v c="$3" 'BEGIN {
        printf "bench-large: chunk %2d: %8d events %7.0f events/s (%6.1f us CPU/event)  peak RssAnon %6.1f MiB  store %7.1f MiB  load %s\n",
               i, n, n / w, c * 1e6 / n, p / 1024, u / 1024, l }' >&2
done

ncpu=$(nproc 2>/dev/null || echo '?')
model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)
awk -v ncpu="$ncpu" -v model="$model" -v load="$load_start" -v file="$FILE" '
    { n[NR] = $2; w[NR] = $3; p[NR] = $4; u[NR] = $5; l[NR] = $6; c[NR] = $7; if ($4 > pk) pk = $4 }
    END {
        r1 = n[1] / w[1]; rl = n[NR] / w[NR]; c1 = c[1] / n[1]; cl = c[NR] / n[NR]
        print  "==================== creditd bench-large ===================="
        printf "stream           %s, %d chunks\n", file, NR
        printf "first chunk      %.0f events/s, peak RssAnon %.1f MiB\n", r1, p[1] / 1024
        printf "last chunk       %.0f events/s, store %.1f MiB on disk\n", rl, u[NR] / 1024
        printf "rate ratio       %.2f  (last / first; target >= 0.8: %s)\n", rl / r1, (rl / r1 >= 0.8 ? "PASS" : "MISS")
        printf "CPU ratio        %.2f  (CPU per event, first / last: the rate ratio without the load)\n", c1 / cl
        printf "memory ratio     %.2f  (peak RssAnon, all / first; target <= 1.5: %s)\n", pk / p[1], (pk / p[1] <= 1.5 ? "PASS" : "MISS")
        printf "machine          %s CPUs, %s, load %s at start, %s at the end\n", ncpu, model, load, l[NR]
        print  "============================================================="
    }' "$RES"
