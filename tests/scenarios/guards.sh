#!/bin/sh
# Scenarios of the guards (semantics v1.3 §11) through credit-replay --config
# on a real LMDB store: example F with exact balances, source lists from the
# daemon's configuration file, command-line overrides, max_future pinned.
# Run from the repository root; prints "guards: N passed, N failed".
set -u
B=build
S=tests/scenarios
PY=/usr/bin/python3
tmp=$(mktemp -d /tmp/creditd-guards.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok()  { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL: $*" >&2; }
replay() { "$B/credit-replay" "$@" 2>>"$tmp/replay.log"; }

# The daemon's file: kafka keys are ignored without --from-kafka, store.path
# is never used (the replay writes only to --db).
cat > "$tmp/creditd.conf" <<'EOF'
kafka.bootstrap.servers = broker-that-does-not-exist:9092
kafka.client.id = audit
store.path = /nonexistent/creditd-data
credit.close_after = 0
credit.max_future = 2678400
sources.grant = staff/*
sources.allocate = ""
sources.usage = marketplace/usage
sources.clock = clock
EOF

# 1. Example F (§15): V 990; u-bad twice and u-gap once time_in_future; the
#    January and February closes draw 70 and 100.
replay --db "$tmp/f" --config "$tmp/creditd.conf" --out "$tmp/f.out" "$S/ex_F.jsonl" \
    && ok || bad "replay ex_F with --config"
"$B/creditctl" --db "$tmp/f" balances --json | grep -q '"org":"o6","value":"990.000000"' \
    && ok || bad "ex_F: V should be 990"
if $PY - "$tmp/f.out" <<'PYEOF'
import json, sys
outs = [json.loads(l) for l in open(sys.argv[1])]
rej = [(o["data"]["offset"], o["data"]["reason"], o["data"]["event_id"]) for o in outs
       if o["type"] == "credit.rejected"]
led = [(o["data"]["entry"], o["data"]["delta"], o["data"]["balance"], o["data"]["month"]) for o in outs
       if o["type"] == "credit.ledger"]
want_rej = [(4, "time_in_future", "u-bad"), (5, "time_in_future", "u-bad"), (6, "time_in_future", "u-gap")]
want_led = [("staff_grant", "1200.000000", "1200.000000", "2026-01"),
            ("terms", "0.000000", "1200.000000", "2026-01"),
            ("compensation", "-30.000000", "1170.000000", "2026-01"),
            ("minimal_draw", "-70.000000", "1100.000000", "2026-01"),
            ("month_closed", "0.000000", "1100.000000", "2026-01"),
            ("minimal_draw", "-100.000000", "1000.000000", "2026-02"),
            ("month_closed", "0.000000", "1000.000000", "2026-02"),
            ("compensation", "-10.000000", "990.000000", "2026-03")]
errs = []
if rej != want_rej: errs.append(f"rejects {rej}")
if led != want_led: errs.append(f"ledger {led}")
if any(o["type"] == "credit.overage" for o in outs): errs.append("overage")
print("\n".join(errs))
sys.exit(1 if errs else 0)
PYEOF
then ok; else bad "ex_F outputs"; fi
"$B/creditctl" --db "$tmp/f" stats | grep -q '^max_future *2678400$' && ok || bad "stats prints max_future"

# 2. Source lists from the file: usage from another source and an
#    allocation (empty list) are source_not_allowed, and not remembered.
cat > "$tmp/src.jsonl" <<'EOF'
{"specversion":"1.0","id":"s1","source":"staff/eu","type":"org_credit.set","time":"2026-01-05T10:00:00Z","data":{"org":"o","value":"100"}}
{"specversion":"1.0","id":"a1","source":"staff/eu","type":"project_credit.set","time":"2026-01-05T11:00:00Z","data":{"org":"o","project":"p","value":"10"}}
{"specversion":"1.0","id":"u1","source":"rogue","type":"usage","time":"2026-01-06T10:00:00Z","data":{"org":"o","project":"p","resource":"r","offering":"f","component":"c","amount":"40"}}
{"specversion":"1.0","id":"u2","source":"marketplace/usage","type":"usage","time":"2026-01-06T10:00:00Z","data":{"org":"o","project":"p","resource":"r","offering":"f","component":"c","amount":"5"}}
{"specversion":"1.0","id":"k1","source":"cron","type":"clock.tick","time":"2026-01-07T00:00:00Z"}
{"specversion":"1.0","id":"u1","source":"rogue","type":"usage","time":"2026-01-06T10:00:00Z","data":{"org":"o","project":"p","resource":"r","offering":"f","component":"c","amount":"40"}}
EOF
replay --db "$tmp/src" --config "$tmp/creditd.conf" --out "$tmp/src.out" "$tmp/src.jsonl" \
    && ok || bad "replay source lists"
got=$($PY - "$tmp/src.out" <<'PYEOF'
import json, sys
outs = [json.loads(l) for l in open(sys.argv[1])]
print(" ".join("%d:%s" % (o["data"]["offset"], o["data"]["reason"]) for o in outs
               if o["type"] == "credit.rejected"))
PYEOF
)
[ "$got" = "2:source_not_allowed 3:source_not_allowed 5:source_not_allowed 6:source_not_allowed" ] \
    && ok || bad "source rejects: $got"
grep -q 'source: \\"rogue\\" is not allowed for type usage' "$tmp/src.out" && ok || bad "source message"
"$B/creditctl" --db "$tmp/src" balances --json | grep -q '"org":"o","value":"95.000000"' \
    && ok || bad "source lists: V should be 95"

# 3. Command-line options override the file: --max-future 0 turns the guard
#    off, so u-bad closes every month up to 2099 (what the guard prevents).
replay --db "$tmp/off" --config "$tmp/creditd.conf" --max-future 0 --out "$tmp/off.out" "$S/ex_F.jsonl" \
    && ok || bad "replay --max-future 0"
grep -q time_in_future "$tmp/off.out" && bad "--max-future 0 still rejects" || ok
"$B/creditctl" --db "$tmp/off" stats | grep -q '^max_future *0$' && ok || bad "stats max_future 0"

# 4. max_future is pinned: the store of 1 refuses another value.
if replay --db "$tmp/f" --max-future 86400 --out /dev/null "$S/ex_A.jsonl"; then
    bad "store opened with another max_future"
else
    grep -q "created with max_future=2678400, config says 86400" "$tmp/replay.log" \
        && ok || bad "mismatch message names max_future"
fi

# 5. A bad config file: file, line and key in the message, exit 1.
printf 'credit.currency = EUR\nsources.usage = a,,b\n' > "$tmp/bad.conf"
"$B/credit-replay" --db "$tmp/bad" --config "$tmp/bad.conf" "$S/ex_F.jsonl" 2>"$tmp/err" >/dev/null
[ $? -eq 1 ] && grep -q "bad.conf:2: sources.usage: empty entry" "$tmp/err" && ok \
    || bad "bad config: $(cat "$tmp/err")"

echo "guards: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
