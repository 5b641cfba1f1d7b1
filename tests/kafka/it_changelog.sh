#!/usr/bin/env bash
# Integration test of the state changelog reader (consumer/changelog.c) and
# `creditctl --from-kafka` on a real Kafka 4 broker:
#
# 1. Reference stores made by credit-replay (the worked examples ex_A..ex_H;
#    a generated stream with more state records than one restore txn takes)
#    are turned into changelog records by build/clog-feed
#    (tests/kafka/clog_feed.c) and produced transactionally, as group mode
#    writes them: committed transactions, one ABORTED transaction of bogus
#    records (a tombstone of every key, an organisation "zz-aborted") in the
#    middle, and one transaction of bogus records ("zz-open") left OPEN at
#    the end, so that every partition's last stable offset is below its high
#    watermark (checked: read_uncommitted sees more than read_committed).
# 2. `creditctl --from-kafka B balances --json`, `balances`, `show ORG
#    --json` and `show ORG` equal `creditctl --db REF ...` byte for byte
#    (the aborted and the open transaction ignored), and creditctl ends
#    within its bound although the open transaction never ends.
# 3. A changelog written with another pinned configuration (credit.currency
#    USD): exit 2, one error naming topic, partition, offset and both
#    fingerprints; read with -X credit.currency=USD it gives the reference
#    views.  Records without the header: exit 2, "no header".  A missing
#    topic: exit 2, "does not exist".
# 4. Usage errors exit 1 (--from-kafka with stats, with --db, -X without it).
# 5. The scratch store: no creditctl-from-kafka.* directory is left in
#    TMPDIR, after successes and failures alike.
# Needs make all build/gen-events; kcat.  Closing line: "it_changelog: N passed, N failed".
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
. "$ROOT/tests/kafka/lib.sh"
cd "$ROOT"
NAME=it_changelog
B=build
BROKER=tests/kafka/broker.sh
T=$(mktemp -d "${TMPDIR:-/tmp}/it_changelog.XXXXXX")
SEED=${IT_CHANGELOG_SEED:-11}
pass=0 fail=0 t0=$SECONDS pid="" prod_pid="" ref_pid=""
trap finish EXIT   # lib.sh: stops the broker, prints the closing line, exits 1 on any failure
BOUND=180          # seconds any creditctl run may take (the open transaction must not hold it)

for tool in creditctl credit-replay clog-feed gen-events; do
    [[ -x "$B/$tool" ]] || { bad "$B/$tool missing (make all $B/gen-events)"; exit 1; }
done
mkdir -p "$T/tmp"
# creditctl --from-kafka B [ARGS...]: its scratch store under $T/tmp; stdout
# to $OUT, stderr to $ERR, exit status in $RC.
ctl() {
    RC=0
    TMPDIR="$T/tmp" timeout "$BOUND" "$B/creditctl" --from-kafka "$BS" "$@" > "$OUT" 2> "$ERR" || RC=$?
}
no_scratch_left() { [[ -z "$(ls -A "$T/tmp")" ]]; }

# ---- reference stores ------------------------------------------------------------
# The worked examples as one timeline, each file's organisations renamed
# (o1 of ex_C is C-o1): nine organisations, projects, months.
for x in A B C D E F G H; do
    sed -E "s/\"(o[0-9]+)\"/\"$x-\1\"/g" "tests/scenarios/ex_$x.jsonl"
done | jq -c -s 'sort_by(.time)[]' > "$T/ex.jsonl" || { bad "merging the worked examples"; exit 1; }
"$B/credit-replay" --db "$T/ref_ex" --out "$T/ref_ex.out" "$T/ex.jsonl" 2>"$T/ref_ex.log" \
    || { bad "credit-replay of the worked examples"; exit 1; }
# Two months of 4000 organisations: about 28000 state records.
"$B/gen-events" --orgs 4000 --events 25000 --months 2 --seed "$SEED" --out "$T/gen.jsonl" 2>/dev/null \
    || { bad "gen-events"; exit 1; }
"$B/credit-replay" --db "$T/ref_gen" --out "$T/ref_gen.out" "$T/gen.jsonl" 2>"$T/ref_gen.log" \
    || { bad "credit-replay of the generated stream"; exit 1; }

# ---- broker, topics, changelogs ----------------------------------------------------
BS=$("$BROKER" start "$T/kafka") || { bad "broker start"; exit 1; }
note "broker at $BS"
for tp in credit.changelog:3 ex.changelog:2 usd.changelog:2 nohdr.changelog:1; do
    "$BROKER" create-topic "$T/kafka" "${tp%%:*}" "${tp##*:}" cleanup.policy=compact >/dev/null \
        || { bad "create topic $tp"; exit 1; }
done
feed() { # TOPIC STORE ARGS...: clog-feed; sets FED (its records)
    local out
    out=$("$B/clog-feed" -b "$BS" -t "$1" --db "$2" "${@:3}" 2>"$T/feed.$1.log") \
        || { bad "clog-feed $1: $(tail -n 2 "$T/feed.$1.log")"; exit 1; }
    FED=${out%% records*}
    note "clog-feed $1: $out"
}
feed credit.changelog "$T/ref_gen" --abort --leave-open --txn-records 3000
FED_GEN=$FED
check "the generated store gives more records ($FED) than one restore txn takes (20000)" test "$FED" -gt 20000
feed ex.changelog "$T/ref_ex" --abort --leave-open --txn-records 7
FED_EX=$FED
feed usd.changelog "$T/ref_ex" -X credit.currency=USD
feed nohdr.changelog "$T/ref_ex" --no-header
count() { # TOPIC ISOLATION: data messages kcat reads
    timeout 120 kcat -C -b "$BS" -t "$1" -e -q -f '.\n' -X isolation.level="$2" | wc -l
}
# Every partition's last stable offset is below its high watermark (the
# ListOffsets of a read_committed client answers the LSO): a transaction is open.
open_txn() { # TOPIC PARTITIONS
    timeout 60 /usr/bin/python3 - "$BS" "$1" "$2" <<'PY'
import sys
from confluent_kafka import Consumer, TopicPartition
bs, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
ends = {}
for iso in ("read_committed", "read_uncommitted"):
    c = Consumer({"bootstrap.servers": bs, "group.id": "it-changelog", "isolation.level": iso})
    ends[iso] = [c.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in range(n)]
    c.close()
bad = [p for p in range(n) if not ends["read_committed"][p] < ends["read_uncommitted"][p]]
if bad:
    print(f"{topic}: LSO {ends['read_committed']}, high watermark {ends['read_uncommitted']}", file=sys.stderr)
sys.exit(1 if bad else 0)
PY
}
for t in credit.changelog:$FED_GEN:3 ex.changelog:$FED_EX:2; do
    IFS=: read -r name n np <<<"$t"
    c=$(count "$name" read_committed) u=$(count "$name" read_uncommitted)
    check "$name: read_committed sees the $n committed records ($c)" test "$c" -eq "$n"
    check "$name: read_uncommitted also the aborted and the open transaction's ($u > $c + 2 x $n)" \
        test "$u" -gt $((c + 2 * n))
    check "$name: a transaction is open on every partition (LSO < high watermark)" open_txn "$name" "$np"
done

# ---- the views -----------------------------------------------------------------------
OUT=$T/out ERR=$T/err
XTRA=()             # more -X of the --from-kafka run of same_view
same_view() { # WHAT STORE TOPIC VIEW-ARGS...: --from-kafka output == --db output
    local what=$1 store=$2 topic=$3 start=$SECONDS
    shift 3
    "$B/creditctl" --db "$store" "$@" > "$T/want" 2>/dev/null
    ctl -X state.changelog.topic="$topic" ${XTRA[@]+"${XTRA[@]}"} "$@"
    if [[ $RC == 0 ]] && cmp -s "$T/want" "$OUT"; then
        ok "$what ($(wc -l < "$OUT") lines, $((SECONDS - start)) s)"
    else
        bad "$what: exit $RC, $(head -c 300 "$ERR"); diff: $(diff "$T/want" "$OUT" | head -n 5)"
    fi
}
same_view "gen: balances --json" "$T/ref_gen" credit.changelog balances --json
check "gen: the restore's summary line names the records read" \
    grep -q "restored 3 partitions: $FED_GEN records" "$ERR"
same_view "gen: balances (text)" "$T/ref_gen" credit.changelog balances
for org in $("$B/creditctl" --db "$T/ref_gen" balances --json | jq -r .org | sort -u | head -n 3); do
    same_view "gen: show $org --json" "$T/ref_gen" credit.changelog show "$org" --json
done
same_view "ex: balances --json" "$T/ref_ex" ex.changelog balances --json
same_view "ex: balances (text)" "$T/ref_ex" ex.changelog balances
for org in $("$B/creditctl" --db "$T/ref_ex" balances --json | jq -r .org | sort -u); do
    same_view "ex: show $org --json" "$T/ref_ex" ex.changelog show "$org" --json
    same_view "ex: show $org" "$T/ref_ex" ex.changelog show "$org"
done
for org in zz-aborted zz-open; do
    ctl -X state.changelog.topic=ex.changelog show "$org"
    check "ex: $org (a bogus transaction's) is unknown: exit 1" test "$RC" = 1
    check "ex: ... 'no organisation $org in changelog ex.changelog at ...'" \
        grep -q "no organisation $org in changelog ex.changelog at $BS" "$ERR"
done
check "no scratch store left after the views" no_scratch_left
check "the transactions were still open during the views" \
    eval 'open_txn credit.changelog 3 && open_txn ex.changelog 2'

# ---- refusals ------------------------------------------------------------------------
fp() { printf 'format=%s close_after=0 max_future=2678400 retention_days=35 currency=%s' \
    "$(sed -n 's/^#define STORE_FORMAT_VERSION \([0-9]*\).*/\1/p' store/store.h)" "$1"; }
ctl -X state.changelog.topic=usd.changelog balances --json
check "another fingerprint: exit 2" test "$RC" = 2
check "... one error naming topic, partition and offset" \
    grep -Eq 'usd\.changelog \[[01]\] offset [0-9]+: header creditd-config' "$ERR"
check "... and both fingerprints" grep -qF "is \"$(fp USD)\", this reader's is \"$(fp EUR)\"" "$ERR"
check "... and nothing on stdout" test ! -s "$OUT"
XTRA=(-X credit.currency=USD)
same_view "read with the writer's configuration (-X credit.currency=USD): the reference views" \
    "$T/ref_ex" usd.changelog balances --json
XTRA=()
ctl -X credit.currency=USD balances
check "the good changelog read with another configuration: exit 2" test "$RC" = 2
check "... naming both fingerprints" grep -qF "is \"$(fp EUR)\", this reader's is \"$(fp USD)\"" "$ERR"
ctl -X state.changelog.topic=nohdr.changelog balances
check "records without the header: exit 2, 'no header creditd-config'" \
    eval '[[ $RC == 2 ]] && grep -q "nohdr.changelog \[0\] offset 0: no header creditd-config" "$ERR"'
ctl -X state.changelog.topic=no.such.changelog balances
check "a missing topic: exit 2" test "$RC" = 2
check "... 'topic no.such.changelog does not exist'" grep -q "topic no.such.changelog does not exist" "$ERR"
check "no scratch store left after the failures" no_scratch_left

# ---- usage -----------------------------------------------------------------------------
ctl stats
check "--from-kafka with stats: exit 1" test "$RC" = 1
RC=0; "$B/creditctl" --db "$T/ref_ex" --from-kafka "$BS" balances >/dev/null 2>&1 || RC=$?
check "--db with --from-kafka: exit 1" test "$RC" = 1
RC=0; "$B/creditctl" --db "$T/ref_ex" -X state.changelog.topic=x balances >/dev/null 2>&1 || RC=$?
check "-X without --from-kafka: exit 1" test "$RC" = 1
