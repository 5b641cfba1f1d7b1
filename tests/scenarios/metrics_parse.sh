#!/bin/sh
# creditd's metrics text through the Prometheus client's own parser
# (tests/scenarios/prom_check.py): a rendering of every metric with known
# values (build/test_metrics with METRICS_SAMPLE_OUT) parses, has a TYPE for
# every sample, cumulative histograms, the values published and a topic with
# quote, backslash and newline decoded back to its bytes; the checker fails
# on a sample without TYPE and on broken buckets.
# Run from the repository root; prints "metrics_parse: N passed, N failed".
set -u
B=build
S=tests/scenarios
PY=/usr/bin/python3
tmp=$(mktemp -d /tmp/creditd-metrics.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok()  { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL: $*" >&2; }

METRICS_SAMPLE_OUT="$tmp/sample.txt" "$B/test_metrics" && ok || bad "test_metrics sample"
if $PY "$S/prom_check.py" "$tmp/sample.txt" > "$tmp/sample.json"; then ok; else bad "the sample does not pass prom_check"; fi
if $PY - "$tmp/sample.json" <<'PYEOF'
import json, sys
s = json.load(open(sys.argv[1]))
want = {
    "events": {"applied": 3, "duplicate": 1, "rejected": 3},
    "events_by": {"usage/applied/": 3, "usage/duplicate/": 1, "unknown/rejected/invalid_json": 2,
                  "clock.tick/rejected/too_late": 1},
    "outputs": {"overage": 3, "ledger": 6, "rejected": 3, "alert": 9},
    "alerts": {"low_balance": 0, "exhausted": 6, "recovered": 0, "overage_started": 0,
               "expired": 0, "projected_exhaustion": 3},
    "lag": {"0": 5, "2": 9},
    "store_events": {"applied": 103, "duplicate": 8, "rejected": 6},
    "histograms": {"creditd_batch_commit_seconds": 1.0, "creditd_event_to_delivery_seconds": 3.0},
}
errs = [f"{k}: {s.get(k)} != {v}" for k, v in want.items() if s.get(k) != v]
if s["outputs_by_topic"].get('weird "topic\\\nname') != 3:
    errs.append(f"escaped topic not decoded: {list(s['outputs_by_topic'])}")
if s["gauges"].get("creditd_outbox_entries") != 12 or s["gauges"].get("creditd_store_remembered_keys") != 42:
    errs.append(f"gauges {s['gauges']}")
for e in errs: print(e, file=sys.stderr)
sys.exit(1 if errs else 0)
PYEOF
then ok; else bad "the parsed sample differs from the published values"; fi

# The checker can fail: a sample without TYPE, buckets that are not cumulative.
sed 's/^creditd_outbox_entries 12$/creditd_outbox_entries 12\ncreditd_stray 1/' "$tmp/sample.txt" > "$tmp/stray.txt"
if $PY "$S/prom_check.py" "$tmp/stray.txt" >/dev/null 2>&1; then bad "prom_check accepts a sample without TYPE"; else ok; fi
sed 's/^\(creditd_event_to_delivery_seconds_bucket{le="600"}\) 2$/\1 1/' "$tmp/sample.txt" > "$tmp/cum.txt"
cmp -s "$tmp/sample.txt" "$tmp/cum.txt" && bad "the bucket to break was not found"
if $PY "$S/prom_check.py" "$tmp/cum.txt" >/dev/null 2>&1; then bad "prom_check accepts buckets that decrease"; else ok; fi

echo "metrics_parse: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
