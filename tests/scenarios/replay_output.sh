#!/bin/sh
# credit-replay never loses an output (issue 6, points 2 and 10):
#  - a batch whose outputs cannot be written is not committed, and a re-run
#    writes them; a regular --out holds exactly the committed batches' outputs;
#  - peak memory does not grow with the outputs of one event or one batch.
# Run from the repository root after the tools are built.  Prints
# "replay-output: N passed, N failed".
set -u
B=build
S=tests/scenarios
PY=/usr/bin/python3
tmp=$(mktemp -d /tmp/creditd-rout.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok()  { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL: $*" >&2; }
bal() { "$B/creditctl" --db "$1" balances --json; }

cat "$S"/ex_*.jsonl > "$tmp/all.jsonl"
"$B/credit-replay" --db "$tmp/ref" --out "$tmp/ref.out" --batch 3 "$tmp/all.jsonl" 2>/dev/null
bal "$tmp/ref" > "$tmp/ref.bal"

# 1. --out /dev/full: exit 2 naming the cause, nothing committed; a re-run
#    into the same store writes every output.
if "$B/credit-replay" --db "$tmp/full" --out /dev/full --batch 3 "$tmp/all.jsonl" 2>"$tmp/full.err"; then
    bad "/dev/full: exit 0"
else
    [ $? -eq 2 ] && grep -q "writing output: No space left on device" "$tmp/full.err" \
        && ok || bad "/dev/full: exit code or message: $(cat "$tmp/full.err")"
fi
[ -z "$(bal "$tmp/full")" ] && ok || bad "/dev/full: a batch was committed without its outputs"
"$B/credit-replay" --db "$tmp/full" --out "$tmp/full.out" --batch 3 "$tmp/all.jsonl" 2>/dev/null
cmp -s "$tmp/ref.out" "$tmp/full.out" && ok || bad "/dev/full: the re-run did not write every output"

# 2. A write that fails mid-run (a 20 MiB file size limit; the output is
#    ~27 MiB; the store's file is its 16 MiB map, since writers map it
#    writable): the file holds exactly the committed batches' outputs, and a
#    re-run writes the rest: together they are the outputs of one
#    uninterrupted run, no line twice or missing.
#    retention_days 0: a file re-run re-reads every line, and with a retention
#    the lines already committed that are older than the horizon would be
#    rejected too_late on the re-run (§14; README "Bounded memory").
"$B/gen-events" --orgs 200 --events 60000 --seed 7 --out "$tmp/gen.jsonl" 2>/dev/null
"$B/credit-replay" --db "$tmp/gref" --retention-days 0 --out "$tmp/gref.out" "$tmp/gen.jsonl" 2>/dev/null
bal "$tmp/gref" > "$tmp/gref.bal"
$PY - "$B/credit-replay" "$tmp" <<'PYEOF' 2>"$tmp/cut.err"
import resource, signal, subprocess, sys
def limit():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (20 << 20, 20 << 20))
exe, tmp = sys.argv[1], sys.argv[2]
rc = subprocess.run([exe, "--db", f"{tmp}/cut", "--retention-days", "0", "--map-size", str(16 << 20), "--out",
                     f"{tmp}/cut1.out", f"{tmp}/gen.jsonl"],
                    preexec_fn=limit).returncode
sys.exit(rc)
PYEOF
rc=$?
[ "$rc" -eq 2 ] && grep -q "writing output: File too large" "$tmp/cut.err" && ok \
    || bad "size limit: exit $rc: $(cat "$tmp/cut.err")"
[ -s "$tmp/cut1.out" ] && [ "$(wc -c < "$tmp/cut1.out")" -lt "$(wc -c < "$tmp/gref.out")" ] \
    && ok || bad "size limit: the first run should have written part of the outputs"
"$B/credit-replay" --db "$tmp/cut" --retention-days 0 --map-size $((16 << 20)) --out "$tmp/cut2.out" "$tmp/gen.jsonl" 2>/dev/null
cat "$tmp/cut1.out" "$tmp/cut2.out" | cmp -s - "$tmp/gref.out" && ok \
    || bad "size limit: the two runs' outputs are not exactly one run's"
bal "$tmp/cut" | cmp -s - "$tmp/gref.bal" && ok || bad "size limit: balances differ after the re-run"

# 3. One clock.tick at the latest time accepted closes ~2,800 months of every
#    organisation: ~14k outputs per organisation from one event.  Peak RSS of
#    a run with 24 organisations (~340k outputs) stays within 16 MiB of a run
#    with 1 (the outputs spill to a file past --spool-mem).
$PY - "$tmp" <<'PYEOF'
import json, sys
def ev(i, typ, t, data=None):
    e = {"specversion": "1.0", "id": i, "source": "s", "type": typ, "time": t}
    if data is not None: e["data"] = data
    return json.dumps(e)
for n in (1, 24):
    with open(f"{sys.argv[1]}/tick{n}.jsonl", "w") as f:
        for o in range(n):
            org = f"org-{o}"
            print(ev(f"set-{o}", "org_credit.set", "2026-01-05T00:00:00Z",
                     {"org": org, "value": "1000000", "expected_consumption": "1"}), file=f)
            for p in range(3):
                print(ev(f"p-{o}-{p}", "project_credit.set", "2026-01-05T00:00:00Z",
                         {"org": org, "project": f"p{p}", "value": "1000",
                          "expected_consumption": "1"}), file=f)
        print(ev("tick-far", "clock.tick", "2261-12-31T23:59:59Z"), file=f)
PYEOF
$PY - "$B/credit-replay" "$tmp" <<'PYEOF' && ok || bad "peak memory grows with the outputs of one event"
import resource, subprocess, sys
exe, tmp = sys.argv[1], sys.argv[2]
def peak_kib(n):
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    with open(f"{tmp}/tick{n}.out", "w") as out:
        subprocess.run([exe, "--db", f"{tmp}/tick{n}", "--spool-mem", "1048576",
                        f"{tmp}/tick{n}.jsonl"], stdout=out, stderr=subprocess.DEVNULL, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    lines = sum(1 for _ in open(f"{tmp}/tick{n}.out"))
    return max(after, before), lines
# RUSAGE_CHILDREN's maxrss is the largest child so far: run the small one first.
small, ls = peak_kib(1)
big, lb = peak_kib(24)
print(f"replay-output: peak RSS {small} KiB for {ls} outputs, {big} KiB for {lb} outputs")
if lb < 20 * ls or big - small > 16 * 1024:
    sys.exit(1)
PYEOF

echo "replay-output: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
