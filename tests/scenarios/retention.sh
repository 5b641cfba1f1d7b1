#!/bin/sh
# Bounded idempotency memory (semantics v1.3 §14) on a real LMDB store
# through credit-replay and creditctl: a generated two-year stream of steady
# load (gen-events --months 24, monthly ticks) replayed with
# retention_days 90, cut after month 12 (the tick of 2027-01-01) and after
# month 24 (the tick of 2028-01-01).  The remembered keys and the data
# file's used size after month 24 are within 10% of their size after month
# 12: the store stops growing with history.  Removal changes no outcome
# (another batch size, outputs byte-identical).  Also: too_late for a re-sent
# old line, retention_days pinned, and the stats lines.
# Run from the repository root; prints "retention: N passed, N failed".
set -u
B=build
PY=/usr/bin/python3
tmp=$(mktemp -d /tmp/creditd-ret.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok()  { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL: $*" >&2; }
replay() { "$B/credit-replay" "$@" 2>>"$tmp/replay.log"; }
stat_of() { "$B/creditctl" --db "$1" stats 2>/dev/null | awk -v k="$2" '$1 == k { print $2 }'; }

"$B/gen-events" --orgs 200 --events 240000 --months 24 --seed 11 --out "$tmp/gen.jsonl" 2>/dev/null
# Two files: up to the month-13 tick (2027-01-01T00:00:00Z) included, and the rest.
$PY - "$tmp/gen.jsonl" "$tmp/y1.jsonl" "$tmp/y2.jsonl" <<'PYEOF'
import re, sys
lines = open(sys.argv[1]).read().splitlines(True)
pat = re.compile(r'"time":"([^"]+)"')
cut = next(i for i, l in enumerate(lines) if pat.search(l).group(1) > "2027-01-01T00:00:00Z")
open(sys.argv[2], "w").writelines(lines[:cut])
open(sys.argv[3], "w").writelines(lines[cut:])
PYEOF
db="$tmp/db"
replay --db "$db" --retention-days 90 --out "$tmp/y1.out" "$tmp/y1.jsonl" || bad "replay year 1"
k12=$(stat_of "$db" remembered_keys); u12=$(stat_of "$db" used_bytes); a12=$(stat_of "$db" applied)
replay --db "$db" --retention-days 90 --out "$tmp/y2.out" "$tmp/y2.jsonl" || bad "replay year 2"
k24=$(stat_of "$db" remembered_keys); u24=$(stat_of "$db" used_bytes); a24=$(stat_of "$db" applied)
echo "retention: month 12: $k12 keys, $u12 bytes used ($a12 applied); month 24: $k24 keys, $u24 bytes used ($a24 applied)" >&2
within10() { $PY -c "import sys; a, b = int(sys.argv[1]), int(sys.argv[2]); sys.exit(0 if abs(b - a) * 10 <= a else 1)" "$1" "$2"; }
[ -n "$k12" ] && [ "$k12" -gt 0 ] && within10 "$k12" "$k24" && ok \
    || bad "remembered keys: $k12 after month 12, $k24 after month 24 (more than 10% apart)"
[ -n "$u12" ] && within10 "$u12" "$u24" && ok \
    || bad "used bytes: $u12 after month 12, $u24 after month 24 (more than 10% apart)"
# The history doubled while the keys did not: about 90 + up to 31 days of
# the 730 are remembered.
[ "$a24" -gt $((a12 * 19 / 10)) ] && [ "$k24" -lt $((a24 / 4)) ] && ok \
    || bad "expected ~2x applied and keys of ~4 months: applied $a12 -> $a24, keys $k24"
# Removal changes no outcome: batches of 251 remove keys at other moments
# than batches of 1000, in one run instead of two; the outputs are the same.
replay --db "$tmp/db251" --retention-days 90 --batch 251 --out "$tmp/all251.out" "$tmp/gen.jsonl"
cat "$tmp/y1.out" "$tmp/y2.out" | cmp -s - "$tmp/all251.out" && [ -s "$tmp/all251.out" ] && ok \
    || bad "outputs differ between batch 1000 (two runs) and batch 251"
k251=$(stat_of "$tmp/db251" remembered_keys)
within10 "$k24" "$k251" && ok || bad "batch 251: $k251 keys vs $k24"

oldest=$(stat_of "$db" oldest_key_time)
[ "$(stat_of "$db" retention_days)" = 90 ] && [ "$(stat_of "$db" max_future)" = 2678400 ] \
    && [ "$oldest" \> "2027-09-01T00:00:00Z" ] && ok \
    || bad "stats: retention_days, max_future, oldest_key_time $oldest"

# A line of month 1 sent again is too_late, not applied twice; nothing
# changes (the first line is the first organisation's set).
head -n 1 "$tmp/y1.jsonl" > "$tmp/old.jsonl"
"$B/creditctl" --db "$db" balances --json > "$tmp/before.bal"
replay --db "$db" --retention-days 90 --out "$tmp/old.out" "$tmp/old.jsonl"
"$B/creditctl" --db "$db" balances --json > "$tmp/after.bal"
grep -q '"reason":"too_late"' "$tmp/old.out" && cmp -s "$tmp/before.bal" "$tmp/after.bal" && ok \
    || bad "an old line re-sent: $(cat "$tmp/old.out")"

# retention_days is pinned: another value is refused naming the key.
if replay --db "$db" --retention-days 35 --out /dev/null "$tmp/old.jsonl"; then
    bad "retention_days 35 on a 90 store: accepted"
else
    grep -q "was created with retention_days=90, config says 35" "$tmp/replay.log" && ok \
        || bad "retention mismatch message: $(tail -n 1 "$tmp/replay.log")"
fi

echo "retention: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
