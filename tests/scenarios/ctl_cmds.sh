#!/bin/sh
# Scenario tests of creditctl's staff and owner commands (issue 8 point 2),
# without Kafka: each command's --dry-run event checked field by field (jq),
# bad flags rejected naming the flag, if_value read from --db, and the events
# applied by credit-replay give the expected balances.
# Run from the repository root after `make build/credit-replay build/creditctl`.
# Prints "ctl_cmds: N passed, N failed" and exits non-zero on any failure.
set -u
B=${B:-build}
CTL="$B/creditctl"
tmp=$(mktemp -d /tmp/ctl-cmds.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok()  { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL: $*" >&2; }
check() { n=$1; shift; if "$@"; then ok; else bad "$n"; fi; }
ctl() { timeout 20 "$CTL" "$@"; }
# jqt NAME FILE FILTER: the jq filter is true on the event in FILE.
jqt() { check "$1" test "$(jq -e "$3" "$2" 2>/dev/null)" = true; }
# rejects NAME FLAGTEXT ARGS...: exit 1, stderr names FLAGTEXT, nothing on stdout.
rejects() {
    n=$1; want=$2; shift 2
    ctl "$@" >"$tmp/r.out" 2>"$tmp/r.err"; rc=$?
    if [ $rc -eq 1 ] && grep -q -- "$want" "$tmp/r.err" && [ ! -s "$tmp/r.out" ]; then ok
    else bad "$n: rc=$rc, stderr: $(cat "$tmp/r.err")"; fi
}
# apply DB FILE: credit-replay the events into DB, outputs appended to DB.out.
apply() { "$B/credit-replay" --db "$1" --out "$1.new" "$2" 2>>"$tmp/replay.log" && cat "$1.new" >>"$1.out"; }
# bal DB JQ: a value of `balances --json`.
bal() { ctl --db "$1" balances --json | jq -rs "$2"; }
jq --version >/dev/null 2>&1 || { echo "ctl_cmds.sh: jq missing" >&2; exit 2; }
for f in "$CTL" "$B/credit-replay"; do
    [ -x "$f" ] || { echo "ctl_cmds.sh: $f missing" >&2; exit 2; }
done
UUID='^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$'
NOW='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$'
NEXT=$(date -u -d "$(date -u +%Y-%m-01) +1 month" +%Y-%m-01)
# env NAME FILE TYPE SOURCE: the envelope of every event.
env_ok() {
    jqt "$1 envelope" "$2" ".specversion == \"1.0\" and (.id | test(\"$UUID\"))
        and .type == \"$3\" and .source == \"$4\" and (.time | test(\"$NOW\"))
        and .subject == \"o1\" and .data.org == \"o1\""
}

# ---- 1. every command's event, field by field ------------------------------
ctl grant o1 --force --dry-run --value 100 >"$tmp/g.json"; check "grant exits 0" [ $? -eq 0 ]
env_ok grant "$tmp/g.json" org_credit.set staff/creditctl
jqt "grant minimal data" "$tmp/g.json" '.data == {"org":"o1","value":"100.000000"}'
ctl grant o1 --force --dry-run --value 10.5 --if-value 7 --offerings hpc,gpu \
    --consumption-logic linear --expected-consumption 1.25 --grace-coefficient 10 \
    --apply-as-minimal-consumption false --reserve-allocations false --end-date "$NEXT" \
    --alert-thresholds 50,20 >"$tmp/g2.json"
env_ok "grant all" "$tmp/g2.json" org_credit.set staff/creditctl
jqt "grant every field" "$tmp/g2.json" ".data == {\"org\":\"o1\",\"value\":\"10.500000\",
    \"if_value\":\"7.000000\",\"offerings\":[\"hpc\",\"gpu\"],\"consumption_logic\":\"linear\",
    \"expected_consumption\":\"1.250000\",\"grace_coefficient\":10,
    \"apply_as_minimal_consumption\":false,\"reserve_allocations\":false,
    \"end_date\":\"$NEXT\",\"alert_thresholds\":[50,20]}"
ctl grant o1 --force --dry-run --value 1 --offerings "" --alert-thresholds "" >"$tmp/g3.json"
jqt "grant empty lists" "$tmp/g3.json" '.data.offerings == [] and .data.alert_thresholds == []'
ctl adjust o1 --delta -3.5 --dry-run >"$tmp/a.json"
env_ok adjust "$tmp/a.json" org_credit.adjust staff/creditctl
jqt "adjust data" "$tmp/a.json" '.data == {"org":"o1","delta":"-3.500000"}'
ctl revoke o1 --dry-run >"$tmp/rv.json"
env_ok revoke "$tmp/rv.json" org_credit.delete staff/creditctl
jqt "revoke data" "$tmp/rv.json" '.data == {"org":"o1"}'
ctl allocate o1 p1 --dry-run --value 40 --use-org-credit true \
    --mark-unused-as-spent-on-termination true --end-date "$NEXT" --consumption-logic fixed \
    --expected-consumption 2 --grace-coefficient 0 --apply-as-minimal-consumption true \
    --alert-thresholds 10 >"$tmp/al.json"
env_ok allocate "$tmp/al.json" project_credit.set owners/creditctl
jqt "allocate every field" "$tmp/al.json" ".data == {\"org\":\"o1\",\"project\":\"p1\",
    \"value\":\"40.000000\",\"consumption_logic\":\"fixed\",\"expected_consumption\":\"2.000000\",
    \"grace_coefficient\":0,\"apply_as_minimal_consumption\":true,\"use_org_credit\":true,
    \"mark_unused_as_spent_on_termination\":true,\"end_date\":\"$NEXT\",\"alert_thresholds\":[10]}"
ctl deallocate o1 p1 --dry-run >"$tmp/da.json"
env_ok deallocate "$tmp/da.json" project_credit.delete owners/creditctl
jqt "deallocate data" "$tmp/da.json" '.data == {"org":"o1","project":"p1"}'
ctl terminate o1 p1 --dry-run >"$tmp/t.json"
env_ok terminate "$tmp/t.json" project.terminate owners/creditctl
jqt "terminate data" "$tmp/t.json" '.data == {"org":"o1","project":"p1"}'
ctl void o1 --dry-run --usage-source mk/usage --usage-id u-1 \
    --usage-time 2026-01-20T10:00:00Z --reason "wrong meter" >"$tmp/v.json"
env_ok void "$tmp/v.json" usage.void staff/creditctl
jqt "void data" "$tmp/v.json" '.data == {"org":"o1","usage_source":"mk/usage","usage_id":"u-1",
    "usage_time":"2026-01-20T10:00:00Z","reason":"wrong meter"}'
# Two events never share an id; --id and --source override; --config names the sources.
a=$(ctl revoke o1 --dry-run | jq -r .id); b=$(ctl revoke o1 --dry-run | jq -r .id)
check "ids differ" [ -n "$a" ] && check "ids differ" [ "$a" != "$b" ]
ctl revoke o1 --dry-run --id my-1 --source ops/alice >"$tmp/o.json"
jqt "--id --source" "$tmp/o.json" '.id == "my-1" and .source == "ops/alice"'
# --time: the event's time as given, so a retry (same --id, --time, flags) is the same event.
ctl revoke o1 --dry-run --id r-1 --time 2026-01-05T10:00:00.5+01:00 >"$tmp/t1.json"
jqt "--time as given" "$tmp/t1.json" '.id == "r-1" and .time == "2026-01-05T10:00:00.5+01:00"'
ctl revoke o1 --dry-run --id r-1 --time 2026-01-05T10:00:00.5+01:00 >"$tmp/t2.json"
check "--id and --time: the same event, byte for byte" cmp -s "$tmp/t1.json" "$tmp/t2.json"
printf 'creditctl.source_staff = staff/portal\ncreditctl.source_owner = owners/portal\n' >"$tmp/c.conf"
ctl --config "$tmp/c.conf" revoke o1 --dry-run >"$tmp/cs.json"
ctl --config "$tmp/c.conf" terminate o1 p1 --dry-run >"$tmp/co.json"
jqt "config staff source" "$tmp/cs.json" '.source == "staff/portal"'
jqt "config owner source" "$tmp/co.json" '.source == "owners/portal"'

# ---- 2. bad flags: exit 1 naming the flag, nothing printed -----------------
rejects "value syntax" --value grant o1 --force --dry-run --value 1e3
rejects "value digits" --value grant o1 --force --dry-run --value 1.1234567
rejects "value negative" --value grant o1 --force --dry-run --value -1
rejects "value range" --value grant o1 --force --dry-run --value 99999999999999999999
rejects "value missing" --value grant o1 --force --dry-run
rejects "delta zero" --delta adjust o1 --dry-run --delta 0.000
rejects "delta missing" --delta adjust o1 --dry-run
rejects "bool" --use-org-credit allocate o1 p1 --dry-run --value 1 --use-org-credit yes
rejects "logic" --consumption-logic grant o1 --force --dry-run --value 1 --consumption-logic flat
rejects "linear needs end" --end-date grant o1 --force --dry-run --value 1 --consumption-logic linear
rejects "grace" --grace-coefficient grant o1 --force --dry-run --value 1 --grace-coefficient 101
rejects "end day" --end-date grant o1 --force --dry-run --value 1 --end-date 2030-01-02
rejects "end past" --end-date grant o1 --force --dry-run --value 1 --end-date 2020-01-01
rejects "thresholds range" --alert-thresholds grant o1 --force --dry-run --value 1 --alert-thresholds 50,100
rejects "thresholds dup" --alert-thresholds grant o1 --force --dry-run --value 1 --alert-thresholds 5,5
rejects "expected > value" --expected-consumption grant o1 --force --dry-run --value 1 --expected-consumption 2
rejects "offerings empty item" --offerings grant o1 --force --dry-run --value 1 --offerings a,,b
rejects "usage time" --usage-time void o1 --dry-run --usage-source s --usage-id i --usage-time 2026-01-20
rejects "usage id missing" --usage-id void o1 --dry-run --usage-source s --usage-time 2026-01-20T00:00:00Z
rejects "flag of another command" --reserve-allocations allocate o1 p1 --dry-run --value 1 --reserve-allocations true
rejects "project missing" "ORG PROJECT" allocate o1 --dry-run --value 1
rejects "grant needs db" --force grant o1 --dry-run --value 1
rejects "no bootstrap" bootstrap revoke o1
rejects "duplicate flag" "--value given twice" grant o1 --force --dry-run --value 1 --value 2
rejects "wait with dry-run" --wait revoke o1 --dry-run --wait 5
rejects "wait zero" --wait revoke o1 --wait 0 -b 127.0.0.1:1
rejects "time syntax" --time revoke o1 --dry-run --time 2026-01-05
# The read-only views are unchanged.
rejects "view usage" "unknown command" --db "$tmp" nosuch

# ---- 3. applied by credit-replay: balances, if_value from --db -------------
db="$tmp/db"
ctl grant o1 --force --dry-run --value 100 >"$tmp/e1"
check "grant applied" apply "$db" "$tmp/e1"
check "grant balance 100" [ "$(bal "$db" '.[0].value')" = 100.000000 ]
ctl --db "$db" grant o1 --dry-run --value 150 >"$tmp/e2"
jqt "if_value from --db" "$tmp/e2" '.data.if_value == "100.000000"'
ctl --db "$db" grant o1 --dry-run --value 150 --force >"$tmp/e2f"
jqt "--force sends no if_value" "$tmp/e2f" '.data | has("if_value") | not'
ctl --db "$db" grant o2 --dry-run --value 5 >"$tmp/e2n"
jqt "no credit yet: no if_value" "$tmp/e2n" '.data | has("if_value") | not'
check "grant 150 applied" apply "$db" "$tmp/e2"
check "grant balance 150" [ "$(bal "$db" '.[0].value')" = 150.000000 ]
# A lost update: an if_value read before another grant is rejected value_changed.
ctl --db "$db" grant o1 --dry-run --value 999 >"$tmp/stale"
ctl --db "$db" grant o1 --dry-run --value 120 >"$tmp/e3"
apply "$db" "$tmp/e3"; apply "$db" "$tmp/stale"
check "stale grant rejected value_changed" [ "$(jq -r 'select(.type=="credit.rejected") | .data.reason' "$db.new")" = value_changed ]
check "balance kept 120" [ "$(bal "$db" '.[0].value')" = 120.000000 ]
ctl adjust o1 --delta -20 --dry-run >"$tmp/e4"; apply "$db" "$tmp/e4"
check "adjust balance 100" [ "$(bal "$db" '.[0].value')" = 100.000000 ]
ctl allocate o1 p1 --value 40 --use-org-credit true --dry-run >"$tmp/e5"; apply "$db" "$tmp/e5"
check "allocate project 40" [ "$(bal "$db" '.[1].project + " " + .[1].value')" = "p1 40.000000" ]
check "allocate free 60" [ "$(bal "$db" '.[0].free')" = 60.000000 ]
ctl deallocate o1 p1 --dry-run >"$tmp/e6"; apply "$db" "$tmp/e6"
check "deallocate: no project credit" [ "$(bal "$db" 'length')" = 1 ]
check "deallocate: free 100" [ "$(bal "$db" '.[0].free')" = 100.000000 ]
ctl allocate o1 p2 --value 30 --mark-unused-as-spent-on-termination true --dry-run >"$tmp/e7"
ctl terminate o1 p2 --dry-run >>"$tmp/e7"; apply "$db" "$tmp/e7"
check "terminate: spent 30" [ "$(bal "$db" '.[0].value + " " + (length|tostring)')" = "70.000000 1" ]
ut=$(date -u +%Y-%m-%dT%H:%M:%SZ)
printf '{"specversion":"1.0","id":"u-1","source":"mk/usage","type":"usage","time":"%s","data":{"org":"o1","project":"px","resource":"r","offering":"f","component":"c","amount":"7"}}\n' "$ut" >"$tmp/u1"
apply "$db" "$tmp/u1"
check "usage drew 7" [ "$(bal "$db" '.[0].value')" = 63.000000 ]
ctl void o1 --usage-source mk/usage --usage-id u-1 --usage-time "$ut" --reason test --dry-run >"$tmp/e8"
apply "$db" "$tmp/e8"
check "void refunded 7" [ "$(bal "$db" '.[0].value')" = 70.000000 ]
check "void: refund entry" [ "$(jq -r 'select(.type=="credit.ledger") | .data.entry' "$db.new")" = refund ]
ctl revoke o1 --dry-run >"$tmp/e9"; apply "$db" "$tmp/e9"
check "revoke: no credit" [ "$(bal "$db" 'length')" = 0 ]
check "no event was invalid" [ "$(jq -s '[.[] | select(.type=="credit.rejected") | .data.reason] | sort' "$db.out" | jq -c .)" = '["value_changed"]' ]

# ---- 4. a retry: same --id and --time is a duplicate; a new time is not ---
db2="$tmp/db2"
now=$(date -u +%s)
t1=$(date -u -d "@$now" +%Y-%m-%dT%H:%M:%SZ); t2=$(date -u -d "@$((now + 1))" +%Y-%m-%dT%H:%M:%SZ)
ctl grant o1 --force --dry-run --value 100 --time "$t1" >"$tmp/r0"; apply "$db2" "$tmp/r0"
ctl adjust o1 --delta 5 --dry-run --id retry-1 --time "$t1" >"$tmp/r1"
ctl adjust o1 --delta 5 --dry-run --id retry-1 --time "$t1" >"$tmp/r2"
apply "$db2" "$tmp/r1"; apply "$db2" "$tmp/r2"
check "retry with --id and --time: applied once" [ "$(bal "$db2" '.[0].value')" = 105.000000 ]
check "retry with --id and --time: a duplicate" \
    [ "$(ctl --db "$db2" stats | awk '$1 == "duplicates" {print $2}')" = 1 ]
check "retry with --id and --time: no output" [ ! -s "$db2.new" ]
ctl adjust o1 --delta 5 --dry-run --id retry-1 --time "$t2" >"$tmp/r3"; apply "$db2" "$tmp/r3"
check "same --id, another time: id_conflict, not applied" \
    [ "$(jq -r .data.reason "$db2.new") $(bal "$db2" '.[0].value')" = "id_conflict 105.000000" ]

echo "ctl_cmds: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
