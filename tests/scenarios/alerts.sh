#!/bin/sh
# Scenarios of the alerts for cost policies (semantics v1.3 §12) through
# credit-replay on a real LMDB store: example G with exact numbers and the
# exact alert sequence, batch 1 vs 1000, the alerts' place among the other
# outputs, and the alert state that creditctl show reads back.
# Run from the repository root; prints "alerts: N passed, N failed".
set -u
B=build
S=tests/scenarios
PY=/usr/bin/python3
tmp=$(mktemp -d /tmp/creditd-alerts.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok()  { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL: $*" >&2; }
replay() { "$B/credit-replay" "$@" 2>>"$tmp/replay.log"; }

# 1. Example G (§15), batch 1000 and batch 1: byte-identical outputs.
replay --db "$tmp/g" --out "$tmp/g.out" "$S/ex_G.jsonl" && ok || bad "replay ex_G"
replay --db "$tmp/g1" --out "$tmp/g1.out" --batch 1 "$S/ex_G.jsonl" && ok || bad "replay ex_G --batch 1"
cmp -s "$tmp/g.out" "$tmp/g1.out" && ok || bad "ex_G: batch 1 vs 1000 differ"
grep -q 'outputs: 1 overage, 16 ledger, 0 rejected, 9 alert;' "$tmp/replay.log" \
    && ok || bad "ex_G: the replay summary counts 9 alerts"
if $PY - "$tmp/g.out" <<'PYEOF'
import json, sys
outs = [json.loads(l) for l in open(sys.argv[1])]
errors = []
def want(cond, what):
    if not cond: errors.append(what)
alerts = [o for o in outs if o["type"] == "credit.alert"]
got = [(a["data"]["org"], a["data"]["project"], a["data"]["account"], a["data"]["alert"],
        a["data"]["balance"], a["data"]["reference"], a["data"]["threshold"], a["data"]["month"],
        a["data"]["projected_month"], a["data"]["event_id"]) for a in alerts]
exp = [
    ("o7", "pA", "project", "low_balance", "50.000000", "400.000000", 25, "2026-01", None, "g-4"),
    ("o7", "pA", "project", "exhausted", "0.000000", None, None, "2026-01", None, "g-5"),
    ("o7", None, "org", "low_balance", "150.000000", "1000.000000", 50, "2026-01", None, "g-6"),
    ("o7", None, "org", "low_balance", "150.000000", "1000.000000", 20, "2026-01", None, "g-6"),
    ("o7", None, "org", "low_balance", "0.000000", "1000.000000", 50, "2026-01", None, "g-8"),
    ("o7", None, "org", "low_balance", "0.000000", "1000.000000", 20, "2026-01", None, "g-8"),
    ("o7", None, "org", "exhausted", "0.000000", None, None, "2026-01", None, "g-8"),
    ("o7", "pB", "project", "overage_started", "0.000000", None, None, "2026-01", None, "g-8"),
    ("o8", None, "org", "projected_exhaustion", "150.000000", None, None, "2026-01", "2026-02",
     "tick-2026-02-01-p0"),
]
want(got == exp, "alert sequence:\n  " + "\n  ".join(map(str, got)))
# ids, sequences, envelope, time and key of the causing event
seq = {}
for a in alerts:
    d = a["data"]
    seq[d["org"]] = seq.get(d["org"], 0) + 1
    want(d["seq"] == seq[d["org"]] and a["id"] == f"alert/{d['org']}/{d['seq']}", f"id/seq {a['id']}")
    want(a["source"] == "creditd" and a["subject"] == d["org"], f"envelope {a['id']}")
    cause = [o for o in outs if o["type"] == "credit.ledger" and o["data"]["event_id"] == d["event_id"]]
    want(not cause or cause[0]["time"] == a["time"], f"time of {a['id']}")
    want(list(d) == ["org", "project", "account", "alert", "balance", "reference", "threshold",
                     "month", "projected_month", "seq", "event_source", "event_id"],
         f"data keys of {a['id']}")
# balances of the example
led = [o["data"] for o in outs if o["type"] == "credit.ledger"]
last = {}
for l in led:
    last[l["org"]] = l["org_balance"]
want(last == {"o7": "0.000000", "o8": "150.000000"}, f"final balances {last}")
ov = [o["data"] for o in outs if o["type"] == "credit.overage"]
want([(o["project"], o["amount"]) for o in ov] == [("pB", "200.000000")], f"overage {ov}")
# order: an event's alerts come after all its ledger and overage outputs
pos = {}
for i, o in enumerate(outs):
    pos.setdefault(o["data"].get("event_id"), []).append((i, o["type"]))
for ev, items in pos.items():
    types = [t for _, t in items]
    if "credit.alert" in types:
        first = types.index("credit.alert")
        want(all(t == "credit.alert" for t in types[first:]), f"{ev}: alerts not last: {types}")
print("\n".join(errors))
sys.exit(1 if errors else 0)
PYEOF
then ok; else bad "ex_G alerts"; fi

# 2. The alert state survives the store: creditctl show reads it back.
"$B/creditctl" --db "$tmp/g" show o7 --json > "$tmp/o7.json" && ok || bad "show o7"
if $PY - "$tmp/o7.json" <<'PYEOF'
import json, sys
o = json.loads(open(sys.argv[1]).read())
pa = [p for p in o["projects"] if p["project"] == "pA"][0]
ok = (o["sequences"]["alert"] == 8
      and o["credit"]["alerts"] == {"thresholds": [50, 20], "reference": "1000.000000",
                                    "armed": [], "exhausted": True}
      and pa["credit"]["alerts"] == {"thresholds": [25], "reference": "400.000000",
                                     "armed": [], "exhausted": True})
if not ok: print(o)
sys.exit(0 if ok else 1)
PYEOF
then ok; else bad "show o7: alert state"; fi

# 3. Continued in a second run on the same store: the state is read back from
#    LMDB, not kept in memory.  An adjust re-arms and recovers o7; a draw below
#    50% fires low_balance 50 again, with the new reference and alert seq 10.
cat > "$tmp/more.jsonl" <<'EOF'
{"specversion":"1.0","id":"m-1","source":"staff/credits","type":"org_credit.adjust","time":"2026-02-02T10:00:00Z","data":{"org":"o7","delta":"400"}}
{"specversion":"1.0","id":"m-2","source":"marketplace/usage","type":"usage","time":"2026-02-03T10:00:00Z","data":{"org":"o7","project":"pB","resource":"r-b","offering":"hpc","component":"cpu","amount":"250"}}
EOF
replay --db "$tmp/g" --out "$tmp/more.out" "$tmp/more.jsonl" && ok || bad "replay more"
if $PY - "$tmp/more.out" <<'PYEOF'
import json, sys
outs = [json.loads(l) for l in open(sys.argv[1])]
got = [(o["id"], o["data"]["alert"], o["data"]["balance"], o["data"]["reference"], o["data"]["threshold"])
       for o in outs if o["type"] == "credit.alert"]
exp = [("alert/o7/9", "recovered", "400.000000", None, None),
       ("alert/o7/10", "low_balance", "150.000000", "400.000000", 50)]
if got != exp: print(got)
sys.exit(0 if got == exp else 1)
PYEOF
then ok; else bad "alerts after reopening the store"; fi

echo "alerts: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
