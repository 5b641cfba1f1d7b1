#!/bin/sh
# Scenario tests of credit-replay and creditctl on a real LMDB store.
# Run from the repository root through `make scenarios` (it builds what they run).
# Prints a closing "scenarios: N passed, N failed" line.
set -u
B=build
S=tests/scenarios
PY=/usr/bin/python3
tmp=$(mktemp -d /tmp/creditd-scen.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok()   { pass=$((pass+1)); }
bad()  { fail=$((fail+1)); echo "FAIL: $*" >&2; }
replay() { "$B/credit-replay" "$@" 2>>"$tmp/replay.log"; }

# 1. Worked examples A-E: exact numbers of the semantics.
for x in A B C D E; do
    replay --db "$tmp/ex_$x" --out "$tmp/ex_$x.out" "$S/ex_$x.jsonl" || bad "replay ex_$x"
    "$B/creditctl" --db "$tmp/ex_$x" balances --json > "$tmp/ex_$x.balances" || bad "balances ex_$x"
done
if $PY "$S/check_examples.py" "$tmp"; then ok; else bad "worked examples"; fi

# 2. Bad input: one reject per line with the expected reason; the rest applies.
replay --db "$tmp/bad" --out "$tmp/bad.out" "$S/bad_input.jsonl" || bad "replay bad input exit code"
if $PY - "$tmp/bad.out" "$S/bad_input.expected" "$S/bad_input.jsonl" <<'PYEOF'
import json, sys
outs = [json.loads(l) for l in open(sys.argv[1])]
exp = open(sys.argv[2]).read().split()
rej = {o["data"]["offset"]: o["data"] for o in outs if o["type"] == "credit.rejected"}
errors = []
for line, want in enumerate(exp, 1):
    got = rej.get(line, {}).get("reason", "applied")
    if got != want:
        errors.append(f"line {line}: want {want}, got {got}")
    if line in rej:
        r = rej[line]
        if r["topic"] is not None or r["partition"] != 0 or not r["message"]:
            errors.append(f"line {line}: bad rejected envelope {r}")
nonutf8 = [r for r in rej.values() if r["raw_encoding"] == "base64"]
if len(nonutf8) != 1:
    errors.append(f"expected one base64 raw, got {len(nonutf8)}")
ids = [o["id"] for o in outs if o["type"] == "credit.rejected"]
if ids[0] != "rejected/file/2":
    errors.append(f"first reject id {ids[0]}")
print("\n".join(errors))
sys.exit(1 if errors else 0)
PYEOF
then ok; else bad "bad input reasons"; fi
"$B/creditctl" --db "$tmp/bad" balances --json | grep -q '"org":"ob","value":"50.000000"' && ok || bad "bad input: balance of ob should be 50"

# 3. Determinism: same log into fresh stores -> byte-identical outputs and balances;
#    batch 1 vs 1000 identical too.
cat "$S"/ex_*.jsonl "$S/bad_input.jsonl" > "$tmp/all.jsonl"
replay --db "$tmp/d1" --out "$tmp/d1.out" "$tmp/all.jsonl"
replay --db "$tmp/d2" --out "$tmp/d2.out" "$tmp/all.jsonl"
replay --db "$tmp/d3" --out "$tmp/d3.out" --batch 1 "$tmp/all.jsonl"
for d in d1 d2 d3; do "$B/creditctl" --db "$tmp/$d" balances --json > "$tmp/$d.bal"; done
[ -s "$tmp/d1.out" ] && cmp -s "$tmp/d1.out" "$tmp/d2.out" && cmp -s "$tmp/d1.bal" "$tmp/d2.bal" \
    && ok || bad "determinism: two replays differ"
cmp -s "$tmp/d1.out" "$tmp/d3.out" && cmp -s "$tmp/d1.bal" "$tmp/d3.bal" \
    && ok || bad "determinism: batch 1 vs 1000 differ"
grep -q '"type":"credit.alert"' "$tmp/d1.out" && ok || bad "determinism: the log should raise alerts"

# 3b. The same on a generated stream of many batches (the reader thread hands
#     batches over while the main thread applies): batch 7 vs 5000, twice.
"$B/gen-events" --orgs 200 --events 20000 --seed 7 --out "$tmp/gen.jsonl" 2>/dev/null
replay --db "$tmp/g1" --out "$tmp/g1.out" --batch 7 "$tmp/gen.jsonl"
replay --db "$tmp/g2" --out "$tmp/g2.out" --batch 5000 "$tmp/gen.jsonl"
for d in g1 g2; do "$B/creditctl" --db "$tmp/$d" balances --json > "$tmp/$d.bal"; done
[ "$(wc -l < "$tmp/g1.out")" -gt 20000 ] && cmp -s "$tmp/g1.out" "$tmp/g2.out" \
    && cmp -s "$tmp/g1.bal" "$tmp/g2.bal" && ok || bad "generated stream: batch 7 vs 5000 differ"
grep -q '"type":"credit.alert"' "$tmp/g1.out" && ok || bad "generated stream: no alerts"

# 3c. A store that starts tiny: the map fills again and again; every batch is
#     grown and redone, nothing lost or applied twice.
replay --db "$tmp/g3" --out "$tmp/g3.out" --batch 5000 --map-size 65536 "$tmp/gen.jsonl"
"$B/creditctl" --db "$tmp/g3" balances --json > "$tmp/g3.bal"
cmp -s "$tmp/g1.out" "$tmp/g3.out" && cmp -s "$tmp/g1.bal" "$tmp/g3.bal" \
    && ok || bad "map-full growth changed the outcome"

# 4. Replaying the same file into the same store applies nothing new: only the
#    lines without a readable key, and the guards' rejects (§11: not
#    remembered, judged again), are rejected again.  With retention_days 0
#    (every key remembered), so that the duplicates are duplicates: 4b checks
#    the default retention.
replay --db "$tmp/d0" --retention-days 0 --out /dev/null "$tmp/all.jsonl"
"$B/creditctl" --db "$tmp/d0" balances --json > "$tmp/d0.bal"
replay --db "$tmp/d0" --retention-days 0 --out "$tmp/again.out" "$tmp/all.jsonl"
"$B/creditctl" --db "$tmp/d0" balances --json > "$tmp/again.bal"
cmp -s "$tmp/d0.bal" "$tmp/again.bal" && ok || bad "second replay changed balances"
if $PY - "$tmp/again.out" <<'PYEOF'
import json, sys
outs = [json.loads(l) for l in open(sys.argv[1])]
kinds = {o["type"] for o in outs}
reasons = sorted({o["data"]["reason"] for o in outs})
ok = kinds == {"credit.rejected"} and set(reasons) <= {"invalid_json", "invalid_event", "unknown_type", "id_conflict", "time_in_future"}
# keyed lines are duplicates: their rejects are not repeated
ok = ok and not any(o["data"]["event_id"] in ("b-2", "b-4", "b-5", "b-11") for o in outs)
print("" if ok else f"unexpected outputs on second replay: {kinds} {reasons}")
sys.exit(0 if ok else 1)
PYEOF
then ok; else bad "second replay outputs"; fi

# 4b. The same with the default retention_days (35): the lines older than
#     their organisation's watermark (the clock, for ticks) minus 35 days are
#     too_late (§14: judged before the idempotency step, so not applied
#     twice); balances do not change either.
replay --db "$tmp/d1" --out "$tmp/again35.out" "$tmp/all.jsonl"
"$B/creditctl" --db "$tmp/d1" balances --json > "$tmp/again35.bal"
cmp -s "$tmp/d1.bal" "$tmp/again35.bal" && ok || bad "second replay (retention 35) changed balances"
if $PY - "$tmp/again35.out" <<'PYEOF'
import json, sys
outs = [json.loads(l) for l in open(sys.argv[1])]
kinds = {o["type"] for o in outs}
reasons = [o["data"]["reason"] for o in outs]
ok = kinds == {"credit.rejected"} and reasons.count("too_late") >= 20 and set(reasons) <= {
    "invalid_json", "invalid_event", "unknown_type", "id_conflict", "time_in_future", "too_late"}
print("" if ok else f"unexpected outputs on second replay (35 days): {kinds} {sorted(set(reasons))}")
sys.exit(0 if ok else 1)
PYEOF
then ok; else bad "second replay (retention 35) outputs"; fi

# 5. --until: the balance at a point in time (example B on 2026-02-15: 500).
replay --db "$tmp/until" --out /dev/null --until 2026-02-15T00:00:00Z "$S/ex_B.jsonl"
"$B/creditctl" --db "$tmp/until" balances --json | grep -q '"org":"o2","value":"500.000000"' \
    && ok || bad "--until balance"

# 6. Result-changing config is pinned: another close_after is refused.
if replay --db "$tmp/d1" --close-after 86400 --out /dev/null "$S/ex_A.jsonl"; then
    bad "store opened with another close_after"
else
    grep -q "close_after" "$tmp/replay.log" && ok || bad "mismatch message names close_after"
fi

# 7. stdin input and an unreadable file.
"$B/credit-replay" --db "$tmp/stdin" --out "$tmp/stdin.out" - < "$S/ex_A.jsonl" 2>/dev/null \
    && cmp -s "$tmp/stdin.out" "$tmp/ex_A.out" && ok || bad "stdin replay differs from file replay"
if "$B/credit-replay" --db "$tmp/nofile" --out /dev/null "$tmp/missing.jsonl" 2>"$tmp/err"; then
    bad "missing input file exits 0"
else
    grep -q "missing.jsonl" "$tmp/err" && ok || bad "missing file message"
fi

# 8. Outputs are never lost, memory does not grow with them.
if sh "$S/replay_output.sh"; then ok; else bad "replay output scenarios"; fi

# 9. creditctl's own scenarios.
if [ -f "$S/creditctl.sh" ]; then
    if sh "$S/creditctl.sh"; then ok; else bad "creditctl scenarios"; fi
fi

# 10. The guards (v1.3 §11) through credit-replay --config.
if sh "$S/guards.sh"; then ok; else bad "guard scenarios"; fi

# 11. Alerts for cost policies (v1.3 §12): example G, order, state read back.
if sh "$S/alerts.sh"; then ok; else bad "alert scenarios"; fi

# 12. Bounded idempotency memory (v1.3 §14): a two-year stream, the store
#     stops growing.
if sh "$S/retention.sh"; then ok; else bad "retention scenarios"; fi

# 13. Usage corrections (v1.3 §13): example H, void state read back.
if sh "$S/voids.sh"; then ok; else bad "void scenarios"; fi

# 13. The `time` of rejects, and RFC 3339 fractions of any length.
if sh "$S/reject_time.sh"; then ok; else bad "reject time scenarios"; fi

# 14. creditctl's staff and owner commands (issue 8): --dry-run events, flags,
#     if_value from --db, balances after credit-replay.
if sh "$S/ctl_cmds.sh"; then ok; else bad "creditctl command scenarios"; fi

# 15. creditd's metrics text through the Prometheus client's parser (issue 8).
if sh "$S/metrics_parse.sh"; then ok; else bad "metrics parser scenarios"; fi

# 16. creditd's logs on its embedded broker: JSON lines (librdkafka's too),
#     the text lines unchanged, the crash-loop guard's exit 3 (issue 8).
if sh "$S/daemon_logs.sh"; then ok; else bad "daemon log scenarios"; fi

# 17. make install and the systemd units: files, modes, systemd-analyze
#     verify (and a broken unit caught), the sandbox, the stop and restart policy.
if sh "$S/packaging.sh"; then ok; else bad "packaging scenarios"; fi

# 18. credit-replay's progress line: on a terminal only (issue 8 point 5).
if sh "$S/replay_progress.sh"; then ok; else bad "replay progress scenarios"; fi

# 19. Every creditctl command end to end with --wait on creditd's embedded
#     broker: outcomes, ledger entries, balances, SIGTERM exit 0.
if bash "$S/ctl_embedded.sh"; then ok; else bad "creditctl commands on the embedded broker"; fi

# 20. Secrets (issue 9): file: values, masked in --dump-config and in every
#     log of creditd and the tools (text and JSON, librdkafka's debug too),
#     a secret librdkafka quotes masked, the refusal of a secret in clear in
#     a file others may read, by every program.
if sh "$S/secrets.sh"; then ok; else bad "secret scenarios"; fi

echo "scenarios: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
