#!/bin/sh
# Scenarios of usage corrections (semantics v1.3 §13) through credit-replay
# on a real LMDB store: example H with exact outputs and alerts, batch 1 vs
# 1000, and the void records read back from the store by a second run
# (a usage voided in an earlier run is already_voided; its re-send is a
# duplicate).  Run from the repository root; prints "voids: N passed, N failed".
set -u
B=build
S=tests/scenarios
PY=/usr/bin/python3
tmp=$(mktemp -d /tmp/creditd-voids.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok()  { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL: $*" >&2; }
replay() { "$B/credit-replay" "$@" 2>>"$tmp/replay.log"; }

# 1. Example H (§15), batch 1000 and batch 1: byte-identical outputs.
replay --db "$tmp/h" --out "$tmp/h.out" "$S/ex_H.jsonl" && ok || bad "replay ex_H"
replay --db "$tmp/h1" --out "$tmp/h1.out" --batch 1 "$S/ex_H.jsonl" && ok || bad "replay ex_H --batch 1"
cmp -s "$tmp/h.out" "$tmp/h1.out" && ok || bad "ex_H: batch 1 vs 1000 differ"
grep -q '9 lines: 6 applied, 1 duplicates, 2 rejected; outputs: 2 overage, 10 ledger, 2 rejected, 5 alert;' \
    "$tmp/replay.log" && ok || bad "ex_H: replay summary"
if $PY - "$tmp/h.out" <<'PYEOF'
import json, sys
outs = [json.loads(l) for l in open(sys.argv[1])]
errors = []
def want(cond, what):
    if not cond: errors.append(what)
got = []
for o in outs:
    d = o["data"]
    if o["type"] == "credit.ledger":
        got.append((o["id"], d["entry"], d["project"], d["account"], d["delta"], d["balance"],
                    d["org_balance"], d["month"], d["late"], d["event_id"]))
    elif o["type"] == "credit.alert":
        got.append((o["id"], d["alert"], d["project"], d["balance"], d["event_id"]))
    elif o["type"] == "credit.rejected":
        got.append((o["id"], d["reason"], d["event_id"]))
    else:
        got.append((o["id"], o["type"], d["amount"]))
exp = [
    ("ledger/o9/1", "staff_grant", None, "org", "500.000000", "500.000000", "500.000000", "2026-01", False, "h-1"),
    ("ledger/o9/2", "terms", None, "org", "0.000000", "500.000000", "500.000000", "2026-01", False, "h-1"),
    ("ledger/o9/3", "allocation", "pA", "project", "100.000000", "100.000000", "500.000000", "2026-01", False, "h-2"),
    ("ledger/o9/4", "terms", "pA", "project", "0.000000", "100.000000", "500.000000", "2026-01", False, "h-2"),
    ("ledger/o9/5", "compensation", "pA", "project", "-100.000000", "0.000000", "400.000000", "2026-01", False, "u-h1"),
    ("ledger/o9/6", "compensation", "pA", "org", "-50.000000", "350.000000", "350.000000", "2026-01", False, "u-h1"),
    ("alert/o9/1", "exhausted", "pA", "0.000000", "u-h1"),
    ("ledger/o9/7", "compensation", "pB", "org", "-350.000000", "0.000000", "0.000000", "2026-01", False, "u-h2"),
    ("overage/o9/1", "credit.overage", "50.000000"),
    ("alert/o9/2", "exhausted", None, "0.000000", "u-h2"),
    ("alert/o9/3", "overage_started", "pB", "0.000000", "u-h2"),
    ("ledger/o9/8", "refund", "pA", "project", "100.000000", "100.000000", "100.000000", "2026-01", False, "v-1"),
    ("ledger/o9/9", "refund", "pA", "org", "50.000000", "150.000000", "150.000000", "2026-01", False, "v-1"),
    ("alert/o9/4", "recovered", "pA", "100.000000", "v-1"),
    ("alert/o9/5", "recovered", None, "100.000000", "v-1"),
    ("ledger/o9/10", "refund", "pB", "org", "350.000000", "500.000000", "500.000000", "2026-01", False, "v-2"),
    ("overage/o9/2", "credit.overage.void", "50.000000"),
    ("rejected/file/7", "already_voided", "v-3"),
    ("rejected/file/8", "unknown_usage", "v-4"),
]
want(got == exp, "outputs:\n  " + "\n  ".join(map(str, got)))
v = [o for o in outs if o["type"] == "credit.overage.void"]
want(len(v) == 1 and v[0]["data"] == {
    "voids": "overage/o9/1", "amount": "50.000000", "org": "o9", "project": "pB",
    "resource": "r-b", "offering": "hpc", "component": "cpu", "currency": "EUR",
    "period": "2026-01", "billing_month": "2026-01", "usage_source": "marketplace/usage",
    "usage_id": "u-h2", "reason": None, "seq": 2, "event_source": "marketplace/usage",
    "event_id": "v-2"} and v[0]["time"] == "2026-01-13T10:00:00Z" and v[0]["subject"] == "o9",
    f"overage void {v}")
print("\n".join(errors))
sys.exit(1 if errors else 0)
PYEOF
then ok; else bad "ex_H outputs"; fi
"$B/creditctl" --db "$tmp/h" balances --json > "$tmp/h.bal" && ok || bad "balances ex_H"
grep -q '"org":"o9","value":"500.000000"' "$tmp/h.bal" && grep -q '"project":"pA","value":"100.000000"' "$tmp/h.bal" \
    && ok || bad "ex_H: final V 500, pA 100: $(cat "$tmp/h.bal")"

# 2. A second run on the same store: the void state is read back from LMDB.
cat > "$tmp/more.jsonl" <<'EOF'
{"specversion":"1.0","id":"v-5","source":"marketplace/usage","type":"usage.void","time":"2026-01-15T10:00:00Z","data":{"org":"o9","usage_source":"marketplace/usage","usage_id":"u-h1","usage_time":"2026-01-10T10:00:00Z"}}
{"specversion":"1.0","id":"u-h2","source":"marketplace/usage","type":"usage","time":"2026-01-11T10:00:00Z","data":{"org":"o9","project":"pB","resource":"r-b","offering":"hpc","component":"cpu","amount":"400"}}
{"specversion":"1.0","id":"u-h3","source":"marketplace/usage","type":"usage","time":"2026-01-15T11:00:00Z","data":{"org":"o9","project":"pA","resource":"r-a","offering":"hpc","component":"cpu","amount":"120"}}
{"specversion":"1.0","id":"t-1","source":"clock","type":"clock.tick","time":"2026-02-01T00:00:00Z"}
{"specversion":"1.0","id":"v-6","source":"marketplace/usage","type":"usage.void","time":"2026-02-02T10:00:00Z","data":{"org":"o9","usage_source":"marketplace/usage","usage_id":"u-h3","usage_time":"2026-01-15T11:00:00Z","reason":"test"}}
EOF
replay --db "$tmp/h" --out "$tmp/more.out" "$tmp/more.jsonl" && ok || bad "replay more"
if $PY - "$tmp/more.out" <<'PYEOF'
import json, sys
outs = [json.loads(l) for l in open(sys.argv[1])]
got = [(o["type"], o["data"].get("reason") if o["type"] == "credit.rejected" else o["data"].get("entry"),
        o["data"].get("delta"), o["data"].get("month"), o["data"].get("late"), o["data"].get("event_id"))
       for o in outs if o["type"] != "credit.alert"]
exp = [("credit.rejected", "already_voided", None, None, None, "v-5"),
       ("credit.ledger", "compensation", "-100.000000", "2026-01", False, "u-h3"),
       ("credit.ledger", "compensation", "-20.000000", "2026-01", False, "u-h3"),
       ("credit.ledger", "month_closed", "0.000000", "2026-01", False, "t-1"),
       ("credit.ledger", "month_closed", "0.000000", "2026-01", False, "t-1"),
       ("credit.ledger", "refund", "100.000000", "2026-02", True, "v-6"),
       ("credit.ledger", "refund", "20.000000", "2026-02", True, "v-6")]
if got != exp: print("\n".join(map(str, got)))
sys.exit(0 if got == exp else 1)
PYEOF
then ok; else bad "voids after reopening the store (late refunds after a close)"; fi

echo "voids: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
