#!/bin/sh
# Scenario tests of creditctl, the read-only views of a creditd store.
# Run from the repository root after `make build/credit-replay build/creditctl
# build/store-poke`
# (builds nothing itself).  Prints a closing "creditctl: N passed, N failed"
# line and exits non-zero on any failure.
set -u
B=${B:-build}
S=tests/scenarios
PY=/usr/bin/python3
CTL="$B/creditctl"
tmp=$(mktemp -d /tmp/creditctl-scen.XXXXXX)
writer_pid=""
feeder_pid=""
cleanup() {
    exec 3>&- 2>/dev/null
    [ -n "$feeder_pid" ] && kill "$feeder_pid" 2>/dev/null
    [ -n "$writer_pid" ] && kill "$writer_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 2' INT TERM
pass=0; fail=0
ok()  { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL: $*" >&2; }
# check NAME COMMAND...: one assertion.
check() { n=$1; shift; if "$@"; then ok; else bad "$n"; fi; }
replay() { "$B/credit-replay" "$@" 2>>"$tmp/replay.log"; }
# ctl ARGS...: creditctl bounded in time (a reader must never block).
ctl() { timeout 20 "$CTL" "$@"; }
# stat_of DB NAME: one value of `creditctl stats`.
stat_of() { ctl --db "$1" stats 2>/dev/null | awk -v k="$2" '$1 == k { print $2 }'; }
# wait_for SECONDS COMMAND...: poll a condition every 0.05 s, at most SECONDS.
wait_for() {
    w_tries=$(($1 * 20)); shift
    while ! "$@"; do
        w_tries=$((w_tries - 1))
        [ "$w_tries" -le 0 ] && return 1
        sleep 0.05
    done
}
alive() { kill -0 "$1" 2>/dev/null; }
dead()  { ! kill -0 "$1" 2>/dev/null; }
# rc_is WANT COMMAND...: the command's exit status is WANT (output discarded).
rc_is() { want=$1; shift; "$@" >/dev/null 2>&1; [ $? -eq "$want" ]; }

for f in "$CTL" "$B/credit-replay" "$B/store-poke"; do
    [ -x "$f" ] || { echo "creditctl.sh: $f missing: run make build/credit-replay build/creditctl build/store-poke" >&2; exit 2; }
done

# ---- 1. Example C (semantics §9): exact balances --json ---------------------
db="$tmp/c"
check "replay ex_C" replay --db "$db" --out "$tmp/c.out" "$S/ex_C.jsonl"
cat > "$tmp/c.want" <<'EOF'
{"org":"o3","value":"0.000000","free":"0.000000","open_month":"2026-03","consumed":"500.000000","minimum":"0.000000","expected":"0.000000","end_date":null,"consumption_logic":"fixed","grace_coefficient":0,"apply_as_minimal_consumption":true,"reserve_allocations":true,"offerings":["hpc"]}
{"org":"o3","project":"pA","value":"0.000000","consumed":"200.000000","minimum":"0.000000","expected":"0.000000","end_date":null,"consumption_logic":"fixed","grace_coefficient":0,"apply_as_minimal_consumption":true,"use_org_credit":false,"mark_unused_as_spent_on_termination":false}
{"org":"o3","project":"pB","value":"0.000000","consumed":"100.000000","minimum":"0.000000","expected":"0.000000","end_date":null,"consumption_logic":"fixed","grace_coefficient":0,"apply_as_minimal_consumption":true,"use_org_credit":true,"mark_unused_as_spent_on_termination":false}
EOF
ctl --db "$db" balances --json > "$tmp/c.bal"; rc=$?
check "balances --json exits 0" [ "$rc" -eq 0 ]
if cmp -s "$tmp/c.want" "$tmp/c.bal"; then ok; else
    bad "balances --json of example C differs:"; diff "$tmp/c.want" "$tmp/c.bal" >&2
fi
ctl --db "$db" balances --json > "$tmp/c.bal2"
check "balances --json is deterministic (same store)" cmp -s "$tmp/c.bal" "$tmp/c.bal2"
replay --db "$tmp/c2" --out /dev/null "$S/ex_C.jsonl"
ctl --db "$tmp/c2" balances --json > "$tmp/c2.bal"
check "balances --json is deterministic (identical store)" cmp -s "$tmp/c.bal" "$tmp/c2.bal"

# The readable table: header, the org and its two project credits.
ctl --db "$db" balances > "$tmp/c.tab"; rc=$?
check "balances exits 0" [ "$rc" -eq 0 ]
check "balances table has header + 3 rows" [ "$(wc -l < "$tmp/c.tab")" -eq 4 ]
check "balances table header" grep -q '^ORG  *PROJECT  *VALUE  *FREE  *OPEN  *CONSUMED  *MINIMUM  *END  *LOGIC$' "$tmp/c.tab"
check "balances table o3 row" grep -q '^o3  *-  *0\.000000  *0\.000000  *2026-03  *500\.000000  *0\.000000  *-  *fixed$' "$tmp/c.tab"
check "balances table pB row" grep -q '^o3  *pB  *0\.000000  .*100\.000000' "$tmp/c.tab"

# ---- 2. show ----------------------------------------------------------------
ctl --db "$db" show o3 > "$tmp/show.txt"; rc=$?
check "show o3 exits 0" [ "$rc" -eq 0 ]
check "show o3 names the watermark" grep -q '^watermark  *2026-03-05T10:00:00Z$' "$tmp/show.txt"
check "show o3 lists projects pA and pB" [ "$(grep -c '^project p[AB]$' "$tmp/show.txt")" -eq 2 ]
check "show o3 prints the org's alert state" grep -qx '  alerts       thresholds none; reference 500.000000; armed none; exhausted yes' "$tmp/show.txt"
check "show o3 marks pC's overage_started month" grep -qx '  consumption  2026-03 0.000000 (overage started)' "$tmp/show.txt"
ctl --db "$db" show o3 --json > "$tmp/show.json"; rc=$?
check "show o3 --json exits 0" [ "$rc" -eq 0 ]
check "show o3 --json content" $PY - "$tmp/show.json" <<'EOF'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
o = json.loads(lines[0])
ok = (len(lines) == 1 and o["org"] == "o3" and o["partition"] == 0
      and o["watermark"] == "2026-03-05T10:00:00Z" and o["open_month"] == "2026-03"
      and o["sequences"] == {"overage": 3, "ledger": 10, "alert": 5}
      and o["credit"]["value"] == "0.000000" and o["credit"]["offerings"] == ["hpc"]
      and o["consumption"] == [{"month": "2026-03", "consumed": "500.000000"}]
      and o["credit"]["alerts"] == {"thresholds": [], "reference": "500.000000", "armed": [],
                                    "exhausted": True}
      # pC has no credit: it is held for its overage_started flag of 2026-03 (section 12)
      and [p["project"] for p in o["projects"]] == ["pA", "pB", "pC"]
      and [p["credit"] and p["credit"]["value"] for p in o["projects"]] == ["0.000000", "0.000000", None]
      and [p["credit"] and p["credit"]["alerts"]["exhausted"] for p in o["projects"]] == [True, True, None]
      and [p["consumption"][0]["consumed"] for p in o["projects"]] == ["200.000000", "100.000000", "0.000000"]
      and [p["consumption"][0]["overage_started"] for p in o["projects"]] == [True, False, True])
if not ok:
    print(o)
sys.exit(0 if ok else 1)
EOF
ctl --db "$db" show nosuch > /dev/null 2> "$tmp/err"; rc=$?
check "show nosuch exits 1" [ "$rc" -eq 1 ]
check "show nosuch message" grep -qx "creditctl: no organisation nosuch in $db" "$tmp/err"

# ---- 3. stats and the dedupe count ------------------------------------------
check "stats exits 0" rc_is 0 ctl --db "$db" stats
check "stats: dedupe holds the 7 keys" [ "$(stat_of "$db" dedupe)" = 7 ]
check "stats: 7 applied" [ "$(stat_of "$db" applied)" = 7 ]
check "stats: currency" [ "$(stat_of "$db" currency)" = EUR ]
# Replaying the same log again: 7 duplicates, no new keys, same balances.
replay --db "$db" --out "$tmp/again.out" "$S/ex_C.jsonl"
check "stats: 7 duplicates after a re-replay" [ "$(stat_of "$db" duplicates)" = 7 ]
check "stats: dedupe still 7 after a re-replay" [ "$(stat_of "$db" dedupe)" = 7 ]
ctl --db "$db" balances --json > "$tmp/c.bal3"
check "re-replay leaves balances unchanged" cmp -s "$tmp/c.want" "$tmp/c.bal3"
ctl --db "$db" outbox > "$tmp/outbox.txt"; rc=$?
check "outbox of a drained store is empty" eval '[ "$rc" -eq 0 ] && [ ! -s "$tmp/outbox.txt" ]'

# ---- 4. ids that need escaping (quote, backslash, control, UTF-8) -----------
$PY - > "$tmp/odd.jsonl" <<'EOF'
import json
org, proj = 'q"\\\x01\t\u00e9\u20ac', 'p\n1'
def ev(i, t, data):
    return json.dumps({"specversion": "1.0", "id": i, "source": "s", "type": t,
                       "time": "2026-03-01T10:00:00Z", "data": dict(org=org, **data)},
                      ensure_ascii=False)
print(ev("w1", "org_credit.set", {"value": "12.5", "offerings": ['h"pc'], "end_date": "2026-06-01",
                                  "consumption_logic": "linear", "grace_coefficient": 20}))
print(ev("w2", "project_credit.set", {"project": proj, "value": "2"}))
print(ev("w3", "usage", {"project": proj, "resource": "r", "offering": 'h"pc',
                         "component": "c", "amount": "1"}))
EOF
replay --db "$tmp/odd" --out /dev/null "$tmp/odd.jsonl"
ctl --db "$tmp/odd" balances --json > "$tmp/odd.bal"
check "odd ids: valid JSON, ids round-trip, linear minimum" $PY - "$tmp/odd.bal" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
org = 'q"\\\x01\t\u00e9\u20ac'
want = [(org, None, "11.500000"), (org, "p\n1", "1.000000")]
got = [(r["org"], r.get("project"), r["value"]) for r in rows]
# linear: expected = 12.5 / 3 months = 4.166667; minimum = 80 % = 3.333334 (half-even)
ok = got == want and rows[0]["expected"] == "4.166667" and rows[0]["minimum"] == "3.333334" \
    and rows[0]["free"] == "10.500000" and rows[0]["offerings"] == ['h"pc']
if not ok:
    print(got, rows[0])
sys.exit(0 if ok else 1)
EOF
check "odd ids: table stays one line per row" [ "$(ctl --db "$tmp/odd" balances | wc -l)" -eq 3 ]

# ---- 5. usage and store errors ----------------------------------------------
check "--help exits 0" rc_is 0 "$CTL" --help
check "--help prints usage" sh -c "'$CTL' --help | grep -q '^usage: creditctl --db DIR COMMAND'"
check "missing --db exits 1" rc_is 1 "$CTL" balances
check "missing command exits 1" rc_is 1 "$CTL" --db "$db"
"$CTL" --db "$db" frobnicate 2> "$tmp/err"; rc=$?
check "unknown command exits 1 and says so" eval '[ "$rc" -eq 1 ] && grep -q "unknown command: frobnicate" "$tmp/err"'
check "show without ORG exits 1" rc_is 1 "$CTL" --db "$db" show
check "stats --json exits 1" rc_is 1 "$CTL" --db "$db" stats --json
check "bad --limit exits 1" rc_is 1 "$CTL" --db "$db" outbox --limit -3
"$CTL" --db "$tmp/none" balances 2> "$tmp/err"; rc=$?
check "missing store exits 2" [ "$rc" -eq 2 ]
check "missing store message" grep -q "^creditctl: $tmp/none: no creditd store (" "$tmp/err"
check "a missing store is not created" [ ! -e "$tmp/none" ]

# ---- 5b. --from-kafka without a broker (tests/kafka/it_changelog.sh has one) ----
check "--from-kafka with stats exits 1" rc_is 1 "$CTL" --from-kafka 127.0.0.1:1 stats
check "--from-kafka with outbox exits 1" rc_is 1 "$CTL" --from-kafka 127.0.0.1:1 outbox
check "--from-kafka and --db exit 1" rc_is 1 "$CTL" --from-kafka 127.0.0.1:1 --db "$db" balances
check "--from-kafka '' exits 1" rc_is 1 "$CTL" --from-kafka "" balances
check "--from-kafka without a value exits 1" rc_is 1 "$CTL" balances --from-kafka
check "-X without --from-kafka exits 1" rc_is 1 "$CTL" --db "$db" -X a.b=c balances
check "--config without --from-kafka exits 1" rc_is 1 "$CTL" --db "$db" --config /dev/null balances
mkdir "$tmp/kt"
TMPDIR="$tmp/kt" "$CTL" --from-kafka 127.0.0.1:1 -X credit.currency=no/such balances 2> "$tmp/err"; rc=$?
check "--from-kafka with a bad -X exits 1 naming the key" eval \
    '[ "$rc" -eq 1 ] && grep -q "credit.currency" "$tmp/err"'
# No broker at all: the client gives up after its grace (KCLIENT_DOWN_GRACE_MS).
TMPDIR="$tmp/kt" timeout 60 "$CTL" --from-kafka 127.0.0.1:1 balances > "$tmp/out" 2> "$tmp/err"; rc=$?
check "--from-kafka without a broker exits 2" [ "$rc" -eq 2 ]
check "... with one line saying so" grep -q "^creditctl: --from-kafka: .*no Kafka broker reachable" "$tmp/err"
check "... and prints nothing" [ ! -s "$tmp/out" ]
check "... and leaves no scratch store in TMPDIR" [ -z "$(ls -A "$tmp/kt")" ]

# ---- 6. reading while another process writes --------------------------------
# credit-replay reads stdin from a fifo and commits every line (--batch 1);
# creditctl reads while it runs.  Chunk 0 is example C; chunk k (1..5) gives
# org gk a credit of 1000 and draws 1 on it 199 times.
w="$tmp/w"
for k in 1 2 3 4 5; do
    awk -v k="$k" 'BEGIN {
        h = "{\"specversion\":\"1.0\",\"source\":\"gen\",\"time\":\"2026-03-02T00:00:00Z\",";
        printf "%s\"id\":\"g%d-set\",\"type\":\"org_credit.set\",\"data\":{\"org\":\"g%d\",\"value\":\"1000\"}}\n", h, k, k;
        for (i = 1; i < 200; i++)
            printf "%s\"id\":\"g%d-%d\",\"type\":\"usage\",\"data\":{\"org\":\"g%d\",\"project\":\"p\",\"resource\":\"r\",\"offering\":\"o\",\"component\":\"c\",\"amount\":\"1\"}}\n", h, k, i, k;
    }' > "$tmp/chunk$k"
done
mkfifo "$tmp/fifo"
"$B/credit-replay" --db "$w" --batch 1 --out "$tmp/w.out" - < "$tmp/fifo" 2> "$tmp/w.log" &
writer_pid=$!
exec 3<>"$tmp/fifo"   # read-write: never blocks, even if the writer failed to start
applied_at_least() { a=$(stat_of "$w" applied); [ -n "$a" ] && [ "$a" -ge "$1" ]; }
cat "$S/ex_C.jsonl" >&3
check "writer applied example C" wait_for 30 applied_at_least 7
check "writer still running" alive "$writer_pid"
# One writer per store: a second credit-replay on it is refused (exit 2),
# naming the store and the holder; it changes nothing and readers go on.
w_out_before=$(wc -c < "$tmp/w.out")
"$B/credit-replay" --db "$w" --out "$tmp/w.out" "$S/ex_C.jsonl" > /dev/null 2> "$tmp/w.second.err"; rc=$?
check "a second writer is refused with exit 2" [ "$rc" -eq 2 ]
check "the refusal names the store and the holder's pid" grep -qF \
    "credit-replay: store $w is already open for writing (pid $writer_pid holds $w/writer.lock)" "$tmp/w.second.err"
check "the refused writer applied nothing" [ "$(stat_of "$w" applied)" = 7 ]
check "the refused writer left the first one's --out alone" eval \
    '[ "$w_out_before" -gt 0 ] && [ "$(wc -c < "$tmp/w.out")" -ge "$w_out_before" ]'
ctl --db "$w" balances --json > "$tmp/w.bal"; rc=$?
check "balances while a writer holds the store" eval '[ "$rc" -eq 0 ] && cmp -s "$tmp/c.want" "$tmp/w.bal"'
ctl --db "$w" outbox > "$tmp/w.outbox"; rc=$?
# credit-replay delivers outputs to its --out file, not through the outbox:
# the outbox view works and is empty.
check "outbox while a writer holds the store" eval '[ "$rc" -eq 0 ] && [ ! -s "$tmp/w.outbox" ]'
check "outbox --limit 0 prints nothing" [ -z "$(ctl --db "$w" outbox --limit 0)" ]
# Now read continuously while the writer commits 1000 more lines (the gk
# orgs sort before o3, whose three lines stay the last ones).
(cat "$tmp/chunk1" "$tmp/chunk2" "$tmp/chunk3" "$tmp/chunk4" "$tmp/chunk5" >&3) &
feeder_pid=$!
reads=0; read_fail=0; prev=7; went_back=0
while ! applied_at_least 1007 && alive "$writer_pid" && [ "$reads" -lt 2000 ]; do
    ctl --db "$w" balances --json > "$tmp/w.mid" 2>>"$tmp/w.readerr" || { read_fail=$((read_fail + 1)); echo "read rc=$?" >> "$tmp/w.readerr"; }
    tail -n 3 "$tmp/w.mid" | cmp -s - "$tmp/c.want" || { read_fail=$((read_fail + 1)); cat "$tmp/w.mid" >> "$tmp/w.readerr"; }
    a=$(stat_of "$w" applied); [ -n "$a" ] && [ "$a" -lt "$prev" ] && went_back=1
    [ -n "$a" ] && prev=$a
    reads=$((reads + 1))
done
check "1000 more lines applied while reading" wait_for 60 applied_at_least 1007
check "every concurrent read succeeded ($reads reads)" eval '[ "$read_fail" -eq 0 ] && [ "$reads" -gt 0 ]'
[ "$read_fail" -eq 0 ] || head -n 20 "$tmp/w.readerr" >&2
check "counters never went backwards" [ "$went_back" -eq 0 ]
check "balances --json of a live store is valid JSON" $PY -c '
import json, sys
for l in open(sys.argv[1]): json.loads(l)' "$tmp/w.mid"
check "writer still running before EOF" alive "$writer_pid"
check "feeder done" wait_for 30 dead "$feeder_pid"
feeder_pid=""
exec 3>&-             # EOF: the writer finishes and exits
check "writer exits after EOF" wait_for 30 dead "$writer_pid"
wait "$writer_pid"; rc=$?
writer_pid=""
check "writer exit status 0" [ "$rc" -eq 0 ]
check "once the writer is gone another can open the store" \
    replay --db "$w" --out /dev/null "$S/ex_C.jsonl"
ctl --db "$w" balances --json > "$tmp/w.final"
check "final balances: o3 and g1..g5 at 801" $PY - "$tmp/w.final" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
got = [(r["org"], r.get("project"), r["value"]) for r in rows]
want = [("g%d" % k, None, "801.000000") for k in range(1, 6)] + \
       [("o3", None, "0.000000"), ("o3", "pA", "0.000000"), ("o3", "pB", "0.000000")]
if got != want:
    print(got)
sys.exit(0 if got == want else 1)
EOF
# Same log from a file, in one batch: byte-identical view.
cat "$S/ex_C.jsonl" "$tmp/chunk1" "$tmp/chunk2" "$tmp/chunk3" "$tmp/chunk4" "$tmp/chunk5" > "$tmp/all.jsonl"
replay --db "$tmp/w2" --out /dev/null "$tmp/all.jsonl"
ctl --db "$tmp/w2" balances --json > "$tmp/w2.final"
check "fifo replay and file replay give identical balances" cmp -s "$tmp/w.final" "$tmp/w2.final"
check "outbox empty after the writer finished" [ -z "$(ctl --db "$w" outbox)" ]

# ---- 7. corrupt records: reported, skipped, the rest shown, exit 2 ---------
# store-poke writes raw bytes past the store's checks (what a disk fault or a
# bug could leave): a record of an unknown format version, an outbox entry
# of an unknown kind, corrupt counters.
POKE="$B/store-poke"
hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
x="$tmp/x"
{ cat "$S/ex_C.jsonl"
  for g in g1 g2; do
      printf '{"specversion":"1.0","source":"gen","time":"2026-03-02T00:00:00Z","id":"%s-set","type":"org_credit.set","data":{"org":"%s","value":"10"}}\n' "$g" "$g"
  done; } > "$tmp/x.jsonl"
check "replay the store to corrupt" replay --db "$x" --out /dev/null "$tmp/x.jsonl"
v=$("$POKE" "$x" get orgs "$(hex g1)")
check "orgs g1 is there" [ -n "$v" ]
"$POKE" "$x" put orgs "$(hex g1)" "07${v#??}"
ctl --db "$x" balances --json > "$tmp/x.bal" 2> "$tmp/x.err"; rc=$?
check "balances with a corrupt org exits 2" [ "$rc" -eq 2 ]
check "balances names the corrupt record (db, key, version)" grep -qxF \
    "creditctl: balances: corrupt store $x: db orgs key \"g1\": record format version 7, this build reads version 6 (skipped)" "$tmp/x.err"
check "balances counts what it skipped" grep -qxF \
    "creditctl: balances: 1 corrupt record skipped: the output is incomplete" "$tmp/x.err"
check "balances shows the others: g2 and o3 (3 rows), not g1" eval \
    '[ "$(cut -d, -f1-2 "$tmp/x.bal" | tr "\n" " ")" = "{\"org\":\"g2\",\"value\":\"10.000000\" {\"org\":\"o3\",\"value\":\"0.000000\" {\"org\":\"o3\",\"project\":\"pA\" {\"org\":\"o3\",\"project\":\"pB\" " ]'
ctl --db "$x" balances > "$tmp/x.tab" 2>/dev/null; rc=$?
check "balances table: exit 2, header + g2 + 3 o3 rows" eval '[ "$rc" -eq 2 ] && [ "$(wc -l < "$tmp/x.tab")" -eq 5 ] && ! grep -q "^g1 " "$tmp/x.tab"'
ctl --db "$x" show g1 > /dev/null 2> "$tmp/x.err"; rc=$?
check "show of the corrupt org exits 2 naming db and key" eval \
    '[ "$rc" -eq 2 ] && grep -q "db orgs key \"g1\": record format version 7" "$tmp/x.err"'
check "show of another org still works" rc_is 0 ctl --db "$x" show o3
# outbox: seq 1 a valid ledger entry (key "k", json "{}"), seq 2 of kind 9.
"$POKE" "$x" put outbox 0000000000000001 060101006b00020000007b7d00
"$POKE" "$x" put outbox 0000000000000002 060901006b00020000007b7d00
ctl --db "$x" outbox > "$tmp/x.out" 2> "$tmp/x.err"; rc=$?
check "outbox with a corrupt entry exits 2" [ "$rc" -eq 2 ]
check "outbox shows the good entry" eval '[ "$(cat "$tmp/x.out")" = "$(printf "1\tledger\tk\t{}")" ]'
check "outbox names the corrupt entry" grep -qF \
    "db outbox key seq 2: output kind 9 (0..3) (skipped)" "$tmp/x.err"
v=$("$POKE" "$x" get meta "$(hex counters)")
"$POKE" "$x" put meta "$(hex counters)" "${v%??}"
ctl --db "$x" stats > "$tmp/x.stats" 2> "$tmp/x.err"; rc=$?
check "stats with corrupt counters exits 2, shows the rest" eval \
    '[ "$rc" -eq 2 ] && grep -q "^orgs  *3$" "$tmp/x.stats" && grep -q "^currency  *EUR$" "$tmp/x.stats"'
check "stats names the corrupt counters" grep -q 'db meta key "counters": truncated' "$tmp/x.err"
# A writer meeting a corrupt record fails cleanly (exit 2, no abort), naming it.
"$POKE" "$x" del outbox 0000000000000002
"$B/credit-replay" --db "$x" --out /dev/null "$tmp/x.jsonl" > /dev/null 2> "$tmp/x.err"; rc=$?
check "credit-replay on a corrupt outbox entry exits 2" [ "$rc" -eq 2 ]
"$POKE" "$x" del outbox 0000000000000001
printf '{"specversion":"1.0","source":"gen","time":"2026-03-03T00:00:00Z","id":"g1-use","type":"usage","data":{"org":"g1","project":"p","resource":"r","offering":"o","component":"c","amount":"1"}}\n' > "$tmp/x2.jsonl"
"$B/credit-replay" --db "$x" --out /dev/null "$tmp/x2.jsonl" > /dev/null 2> "$tmp/x.err"; rc=$?
check "credit-replay on a corrupt org exits 2 naming db and key" eval \
    '[ "$rc" -eq 2 ] && grep -q "corrupt store $x: db orgs key \"g1\"" "$tmp/x.err"'

# A record that decodes but breaks the rules' invariants together with the
# others (o3's stored sum of P no longer the sum of its projects' P): the
# views report the org as corrupt and go on; a writer stops on it.
y="$tmp/y"
check "replay the store to make inconsistent" replay --db "$y" --out /dev/null "$S/ex_C.jsonl"
v=$("$POKE" "$y" get orgs "$(hex o3)")
# bytes (format 6): version, partition, watermark, open month, 4 sequences,
# credit flag (50 bytes: 100 hex digits), V (8, LE), sum of P (8, LE), ...:
# make the sum 1 micro-unit
head=$(printf '%s' "$v" | cut -c1-116)
tail=$(printf '%s' "$v" | cut -c133-)
"$POKE" "$y" put orgs "$(hex o3)" "${head}0100000000000000${tail}"
ctl --db "$y" balances --json > "$tmp/y.bal" 2> "$tmp/y.err"; rc=$?
check "balances with an inconsistent org exits 2 naming it" eval \
    '[ "$rc" -eq 2 ] && grep -q "creditctl: balances: corrupt store $y: org o3: .*sum.*(skipped)" "$tmp/y.err"'
check "balances leaves the inconsistent org out" eval '! grep -q "\"o3\"" "$tmp/y.bal"'
ctl --db "$y" show o3 > /dev/null 2> "$tmp/y.err"; rc=$?
check "show of the inconsistent org exits 2 naming it" eval \
    '[ "$rc" -eq 2 ] && grep -q "org o3" "$tmp/y.err"'
# a tick that closes March visits every project of o3, and checks their sum
printf '{"specversion":"1.0","source":"clock","time":"2026-04-01T00:00:00Z","id":"t-04","type":"clock.tick"}\n' > "$tmp/y2.jsonl"
"$B/credit-replay" --db "$y" --out /dev/null "$tmp/y2.jsonl" > /dev/null 2> "$tmp/y.err"; rc=$?
check "credit-replay on the inconsistent org exits 2 naming it" eval \
    '[ "$rc" -eq 2 ] && grep -q "corrupt store: org o3" "$tmp/y.err"'

echo "creditctl: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
