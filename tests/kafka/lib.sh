# Shared by the broker integration tests: reporting and the EXIT trap (all
# it_* scripts that source it), and for it_crash.sh and it_broker_restart.sh
# the helpers that check creditd against credit-replay of a generated stream.
# Sourced, never run (and not named it_* so that run.sh does not run it):
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Variables the caller sets (before using the functions):
#   NAME    test name, prefix of every line written to stderr
#   B       build directory (creditd, creditctl, credit-produce, ...)
#   BROKER  tests/kafka/broker.sh
#   T       the test's temporary directory (store, broker, files)
#   PARTS   partitions of the input topic credit.events
#   SEED    seed (printed by finish when something failed)
#   pass fail t0             counters and start time (SECONDS)
#   pid prod_pid ref_pid     creditd, producer and credit-replay ("" if none)
# Set here: BS (broker_start), prod_pid (start_producer), ref_pid
# (start_replay), nlines nticks want gen_dups (prepare_stream),
# APPLIED DUPS REJECTED OUTBOX SEEN (read_stats).

# ---- reporting ---------------------------------------------------------------
ok() { pass=$((pass + 1)); echo "$NAME: ok: $*" >&2; }
bad() { fail=$((fail + 1)); echo "$NAME: FAIL: $*" >&2; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; return 1; fi; }
note() { echo "$NAME: [$((SECONDS - t0))s] $*" >&2; }

# The EXIT trap: kills what is still running, stops the broker, keeps $T if
# something failed, prints the closing line "NAME: N passed, N failed".
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

# ---- stopping creditd ----------------------------------------------------------
# A SIGTERM sent right after `creditd ... &` can reach the forked shell before
# it execs creditd and be lost there (creditd then runs on and `wait` hangs).
# So wait until the process is creditd and catches SIGTERM (bit 14 of SigCgt:
# its handler is installed), then send it; bound the whole stop.
running() { local st; st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null); [[ -n "$st" && "$st" != Z ]]; }
term_ready() {
    local m
    [[ "$(cat "/proc/$1/comm" 2>/dev/null)" == creditd?(-test) ]] || return 1  # test build too
    m=$(awk '/^SigCgt:/ {print $2}' "/proc/$1/status" 2>/dev/null)
    [[ -n "$m" ]] && (( (16#$m >> 14) & 1 ))
}
stop_creditd() { # PID [SECONDS]: SIGTERM, returns creditd's exit status (killed: non-zero)
    local p=$1 deadline=$((SECONDS + ${2:-60})) rc=0
    while running "$p" && ! term_ready "$p" && ((SECONDS < deadline)); do sleep 0.05; done
    kill -TERM "$p" 2>/dev/null
    while running "$p" && ((SECONDS < deadline)); do sleep 0.05; done
    if running "$p"; then
        echo "$NAME: creditd $p did not stop within the bound: killed" >&2
        kill -KILL "$p" 2>/dev/null
    fi
    wait "$p" || rc=$?
    return $rc
}

# ---- topics --------------------------------------------------------------------
# KCAT_CONF (optional): a librdkafka properties file for the test's own
# reads (a secured broker's admin.librdkafka); PRODUCE_X, TICK_X (optional
# arrays): -X arguments of credit-produce and credit-tick in produce_all.
topic_dump() { # TOPIC FILE: every message value, one per line
    timeout 120 kcat -C -b "$BS" $(kcat_conf) -t "$1" -e -q -f '%s\n' \
        -X isolation.level=read_committed > "$2"
}
# KCAT_CONF as -X arguments (kcat -F announces the file on stderr).
kcat_conf() {
    [[ -n "${KCAT_CONF:-}" ]] || return 0
    sed -n 's/^\([^#=][^=]*\)=\(.*\)$/-X \1=\2/p' "$KCAT_CONF"
}
# Whole output messages, comparable across partitionings: a tick's copy on
# partition P is tick-TIME-pP in Kafka (tick-TIME-p0 in the reference).
norm() { sed -E 's/("event_id":"tick-[^"]*)-p[0-9]+"/\1"/' "$1" | LC_ALL=C sort; }
dup_ids() { jq -r .id "$1" | LC_ALL=C sort | uniq -d | head -n 5; }

# The offsets creditd published for its group (for lag tools) are the end of
# every input partition.
group_at_end() { # TOPIC PARTITIONS GROUP
    timeout 60 /usr/bin/python3 - "$BS" "${KCAT_CONF:-}" "$@" <<'PY'
import sys
from confluent_kafka import Consumer, TopicPartition
bs, topic, n, group = sys.argv[1], sys.argv[3], int(sys.argv[4]), sys.argv[5]
conf = dict(l.split("=", 1) for l in open(sys.argv[2]).read().splitlines() if "=" in l) \
    if sys.argv[2] else {}
c = Consumer(dict(conf, **{"bootstrap.servers": bs, "group.id": group, "enable.auto.commit": False}))
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
# gen-events writes $T/events.jsonl; it is split at the ticks ($T/seg.N holds
# the lines before tick N, $T/ticks.txt the times) and $T/ref.jsonl is the
# reference input. Sets nlines nticks, want (messages on the PARTS partitions:
# credit-tick writes one copy of a tick per partition) and gen_dups (the
# generator's own re-sends). Exits the test on failure.
prepare_stream() { # EVENTS ORGS
    "$B/gen-events" --orgs "$2" --events "$1" --seed "$SEED" --out "$T/events.jsonl" 2>/dev/null \
        || { bad "gen-events"; exit 1; }
    split_stream "$T/events.jsonl" "$T"
}

# split_stream FILE DIR: DIR/seg.N, DIR/ticks.txt and DIR/ref.jsonl of FILE
# (as prepare_stream), nlines nticks want gen_dups of it.
split_stream() {
    local dir="$2"
    # Split at the ticks: seg.N holds the lines before tick N; ticks.txt the times.
    awk -v dir="$dir" '
        BEGIN { n = 0; f = dir "/seg.0"; printf "" > f }
        /"type":"clock\.tick"/ {
            if (!match($0, /"time":"[^"]*"/)) { print "tick without time" > "/dev/stderr"; exit 1 }
            print substr($0, RSTART + 8, RLENGTH - 9) > (dir "/ticks.txt")
            close(f); n++; f = dir "/seg." n; printf "" > f; next
        }
        { print > f }' "$1" || { bad "splitting the stream"; exit 1; }
    touch "$dir/ticks.txt"
    nticks=$(wc -l < "$dir/ticks.txt")
    nlines=$(wc -l < "$1")
    want=$(( nlines - nticks + nticks * PARTS ))
    gen_dups=$(awk '$0 == prev {n++} {prev = $0} END {print n + 0}' "$1")
    # The reference input: the same file with each tick's id as credit-tick's copy
    # on partition 0 (month_closed entries name it in event_id).
    awk '/"type":"clock\.tick"/ && match($0, /"time":"[^"]*"/) {
            t = substr($0, RSTART + 8, RLENGTH - 9)
            sub(/"id":"[^"]*"/, "\"id\":\"tick-" t "-p0\"")
         } { print }' "$1" > "$dir/ref.jsonl"
}

# The reference replay, in the background (sets ref_pid).
start_replay() {
    "$B/credit-replay" --db "$T/ref" --out "$T/ref.out" "$T/ref.jsonl" 2>"$T/ref.log" &
    ref_pid=$!
}

# ---- broker and topics ----------------------------------------------------------
# Starts the broker in $T/kafka (sets BS) and creates the topics: credit.events
# with PARTS partitions, credit.overage, credit.ledger, credit.rejected, credit.alerts.
# Exits the test on failure.
broker_start() {
    local tp name np cfg
    BS=$("$BROKER" start "$T/kafka") || { bad "broker start"; exit 1; }
    note "broker at $BS"
    for tp in credit.events:$PARTS:retention.ms=-1 credit.overage:3: credit.ledger:3:retention.ms=-1 \
              credit.rejected:1: credit.alerts:3:retention.ms=-1; do
        IFS=: read -r name np cfg <<<"$tp"
        "$BROKER" create-topic "$T/kafka" "$name" "$np" ${cfg:+"$cfg"} >/dev/null \
            || { bad "create topic $name"; exit 1; }
    done
}

produce_all() { # [DIR [TOPIC]]: segments and ticks in file order; each step waits for its acks
    local i=0 tick dir="${1:-$T}" topic="${2:-credit.events}"
    while :; do
        if [[ -s "$dir/seg.$i" ]]; then
            "$B/credit-produce" -b "$BS" -t "$topic" ${PRODUCE_X[@]+"${PRODUCE_X[@]}"} "$dir/seg.$i" || return 1
        fi
        tick=$(sed -n "$((i + 1))p" "$dir/ticks.txt")
        [[ -n "$tick" ]] || return 0
        "$B/credit-tick" -b "$BS" -t "$topic" ${TICK_X[@]+"${TICK_X[@]}"} --time "$tick" || return 1
        i=$((i + 1))
    done
}

# produce_all in the background, output in $T/produce.log (sets prod_pid).
start_producer() {
    produce_all > "$T/produce.log" 2>&1 &
    prod_pid=$!
}

# ---- results ---------------------------------------------------------------------
# The store's counters after the stream: every message seen exactly once.
# Leaves read_stats of $T/store set.
check_store_counts() {
    read_stats "$T/store"
    check "applied+duplicates+rejected == messages ($APPLIED+$DUPS+$REJECTED == $want)" test "$SEEN" = "$want"
    check "duplicates == the generator's re-sends ($DUPS == $gen_dups), no rejects ($REJECTED)" \
        test "$DUPS" = "$gen_dups" -a "$REJECTED" = 0
}

# Waits for credit-replay (started by start_replay) and checks its exit.
wait_replay() {
    local rrc=0
    wait "$ref_pid" || rrc=$?
    ref_pid=""
    check "credit-replay of the same events" test "$rrc" = 0
}

# creditd's outputs against credit-replay's: balances byte-identical; the
# overage, ledger and alerts topics hold exactly credit-replay's outputs (multisets of
# whole messages, a tick's -pP suffix removed from event_id) with no id twice;
# credit.rejected is empty.  Topics OUT_PREFIX.KIND (default credit.KIND).
compare_with_replay() {
    local kind op="${OUT_PREFIX:-credit}"
    "$B/creditctl" --db "$T/ref" balances --json > "$T/ref.balances"
    "$B/creditctl" --db "$T/store" balances --json > "$T/balances"
    check "balances byte-identical to credit-replay's ($(wc -l < "$T/balances") lines)" \
        cmp -s "$T/ref.balances" "$T/balances"
    grep -F '"type":"credit.overage"' "$T/ref.out" > "$T/ref.overage.raw"
    grep -F '"type":"credit.ledger"' "$T/ref.out" > "$T/ref.ledger.raw"
    grep -F '"type":"credit.alert"' "$T/ref.out" > "$T/ref.alerts.raw"
    check "credit-replay printed only overage, ledger and alert events" \
        test "$(wc -l < "$T/ref.out")" = "$(( $(wc -l < "$T/ref.overage.raw") + $(wc -l < "$T/ref.ledger.raw") + $(wc -l < "$T/ref.alerts.raw") ))"
    for kind in overage ledger alerts; do
        topic_dump "$op.$kind" "$T/$kind.raw" || bad "reading $op.$kind"
        norm "$T/ref.$kind.raw" > "$T/ref.$kind"
        norm "$T/$kind.raw" > "$T/$kind"
        check "$op.$kind == credit-replay's ($(wc -l < "$T/$kind") vs $(wc -l < "$T/ref.$kind") messages)" \
            cmp -s "$T/ref.$kind" "$T/$kind"
        dup_ids "$T/$kind.raw" > "$T/$kind.dups"
        check "$op.$kind: no output id twice $(head -n 3 "$T/$kind.dups" | tr '\n' ' ')" test ! -s "$T/$kind.dups"
    done
    topic_dump "$op.rejected" "$T/rejected.raw" || bad "reading $op.rejected"
    check "$op.rejected is empty" test ! -s "$T/rejected.raw"
}
