#!/bin/sh
# The `time` attribute of outputs (semantics §1, §8; README choice 11):
# outputs are CloudEvents, whose `time` is RFC 3339; a rejected message whose
# time is unreadable has no `time`, one whose time is readable carries it; and
# `time` accepts every RFC 3339 date-time (time-secfrac = "." 1*DIGIT).
# (A review found both on main as of 6160bea; fixed since.) Run from the repository root
# after `make build/credit-replay`; prints "reject-time: N passed, N failed".
set -u
B=build
PY=/usr/bin/python3
tmp=$(mktemp -d /tmp/creditd-rtime.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/in.jsonl" <<'JSONL'
{"specversion":"1.0","id":"s1","source":"staff","type":"org_credit.set","time":"2026-01-01T00:00:00Z","data":{"org":"o1","value":"100"}}
{"specversion":"1.0","id":"b1","source":"mk","type":"usage","time":"2026-01-02 00:00:00Z","data":{"org":"o1","project":"p","resource":"r","offering":"f","component":"c","amount":"1"}}
{"specversion":"1.0 ","id":"b2","source":"mk","type":"usage","time":"2026-01-02T00:00:00Z","data":{"org":"o1","project":"p","resource":"r","offering":"f","component":"c","amount":"1"}}
{"specversion":"1.0","id":"b3","source":"mk","type":"usage","time":"2026-01-02T00:00:00.1234567891Z","data":{"org":"o1","project":"p","resource":"r","offering":"f","component":"c","amount":"1"}}
JSONL
"$B/credit-replay" --db "$tmp/db" --out "$tmp/out.jsonl" "$tmp/in.jsonl" 2>"$tmp/log" || {
    echo "reject-time: replay failed" >&2; cat "$tmp/log" >&2; exit 1; }
exec $PY - "$tmp/out.jsonl" <<'PYEOF'
import json, sys
outs = [json.loads(l) for l in open(sys.argv[1])]
rej = {o["data"]["event_id"]: o for o in outs if o["type"] == "credit.rejected"}
led = [o["data"] for o in outs if o["type"] == "credit.ledger" and o["data"]["event_id"] == "b3"]
passed = failed = 0
def check(name, cond, detail=""):
    global passed, failed
    if cond: passed += 1
    else:
        failed += 1
        print(f"FAIL {name} {detail}", file=sys.stderr)
# b1: time not RFC 3339 -> invalid_event, and the reject has no `time`.
check("b1.rejected", "b1" in rej and rej["b1"]["data"]["reason"] == "invalid_event")
check("b1.no_time", "b1" in rej and "time" not in rej["b1"], rej.get("b1", {}).get("time"))
# b2: bad specversion, readable time -> the reject carries that time.
check("b2.time", "b2" in rej and rej["b2"].get("time") == "2026-01-02T00:00:00Z",
      rej.get("b2", {}).get("time"))
# b3: 10 fractional digits are RFC 3339 -> applied (draw of 1).
check("b3.applied", "b3" not in rej and [l["delta"] for l in led] == ["-1.000000"],
      rej.get("b3", {}).get("data", {}).get("message"))
print(f"reject-time: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PYEOF
