#!/bin/sh
# credit-replay's progress line (issue 8 point 5): drawn on stderr when it is
# a terminal, never otherwise.  Under a pseudo-terminal (`script` from
# bsdutils): the line shows lines, bytes of the total, events/s and an ETA,
# ends with its last state at 100% and a newline before the summary; from
# stdin through a pipe (no size known) it has no ETA.  With stderr to a file:
# exactly today's one summary line, no "\r", no escape.  --progress and
# --no-progress override.  The --out outputs are byte-identical whichever.
# Run from the repository root after `make build/credit-replay build/gen-events`.
# Prints "replay-progress: N passed, N failed".
set -u
B=${B:-build}
tmp=$(mktemp -d /tmp/creditd-progress.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok()  { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL: $*" >&2; }
check() { n=$1; shift; if "$@"; then ok; else bad "$n"; fi; }
for f in "$B/credit-replay" "$B/gen-events"; do
    [ -x "$f" ] || { echo "replay_progress.sh: $f missing" >&2; exit 2; }
done
command -v script >/dev/null 2>&1 || { echo "replay_progress.sh: script (bsdutils) missing" >&2; exit 2; }

# A pseudo-terminal for stdin, stdout and stderr: the command's terminal
# output (with "\r\n" line ends) lands in FILE.  200 columns, so that the
# line is never cut to the width of the terminal the tests run from.  60 s bound.
on_tty() { # FILE COMMAND
    timeout 60 script -qec "stty cols 200 2>/dev/null; $2" /dev/null </dev/null >"$1" 2>&1
}
# The lines of a terminal capture, split at every "\r" and "\n".
tty_lines() { tr '\r' '\n' <"$1" | grep -v '^$'; }

# ~17 MB, 60,000 lines: long enough for redraws on most machines (not
# relied on: the last line is drawn whatever the timing).
"$B/gen-events" --orgs 100 --events 60000 --seed 5 --out "$tmp/in.jsonl" 2>/dev/null
R="$B/credit-replay"
ESC=$(printf '\033')
CR=$(printf '\r')
# The summary with every number as N: the form of today's stderr.
FORM='credit-replay: N lines: N applied, N duplicates, N rejected; outputs: N overage, N ledger, N rejected, N alert; N s (N events/s)'
form() { sed 's/[0-9][0-9.]*/N/g' "$1"; }

# ---- 1. on a terminal -------------------------------------------------------
on_tty "$tmp/tty.txt" "$R --db $tmp/t --out $tmp/t.out $tmp/in.jsonl"
check "tty: exit 0" [ $? -eq 0 ]
tty_lines "$tmp/tty.txt" >"$tmp/tty.lines"
# Every progress line: N lines, a position of the total, events/s, ETA.
PROG='^[0-9]+ lines, [0-9.]+ (B|KiB|MiB)/[0-9.]+ MiB \([0-9]+%\), ([0-9.]+[kM]?|--) events/s, ETA ([0-9]+:[0-9]{2}|--:--)'
grep -E "$PROG" "$tmp/tty.lines" | sed "s/$ESC\[K\$//" >"$tmp/tty.prog"
check "tty: a progress line with lines, events/s and ETA" [ -s "$tmp/tty.prog" ]
check "tty: every progress line is cleared to its end" \
    [ "$(grep -c "$ESC\[K\$" "$tmp/tty.lines")" -eq "$(wc -l <"$tmp/tty.prog")" ]
check "tty: the last progress line is all of it" \
    grep -Eq '^60000 lines, 16\.9 MiB/16\.9 MiB \(100%\), [0-9.]+[kM]? events/s, ETA 0:00$' "$tmp/tty.prog"
# Its last line, then a newline, then the summary on a line of its own.
check "tty: the summary follows the last progress line after a newline" \
    grep -Eq "\(100%\).*ETA 0:00$ESC\[K$CR?\$" "$tmp/tty.txt"
check "tty: the summary is a line of its own" \
    grep -Eq "^credit-replay: 60000 lines: .* events/s\)$CR?\$" "$tmp/tty.txt"
check "tty: the summary comes last" \
    sh -c "tail -n 1 '$tmp/tty.lines' | grep -q '^credit-replay: 60000 lines: '"

# ---- 2. stderr to a file: today's summary and nothing else ----------------
"$R" --db "$tmp/f" --out "$tmp/f.out" "$tmp/in.jsonl" 2>"$tmp/f.err"
check "file: exit 0" [ $? -eq 0 ]
check "file: stderr is one line" [ "$(wc -l <"$tmp/f.err")" -eq 1 ]
check "file: stderr is the summary's form, byte for byte" [ "$(form "$tmp/f.err")" = "$FORM" ]
check "file: no carriage return or escape" sh -c "! grep -q '[$CR$ESC]' '$tmp/f.err'"
check "outputs identical with and without a terminal" cmp -s "$tmp/t.out" "$tmp/f.out"
check "outputs are not empty" [ "$(wc -l <"$tmp/f.out")" -gt 60000 ]

# ---- 3. overrides -----------------------------------------------------------
on_tty "$tmp/np.txt" "$R --no-progress --db $tmp/np --out $tmp/np.out $tmp/in.jsonl"
tty_lines "$tmp/np.txt" >"$tmp/np.lines"
check "--no-progress on a terminal: only the summary" [ "$(wc -l <"$tmp/np.lines")" -eq 1 ]
check "--no-progress: the summary's form" [ "$(form "$tmp/np.lines")" = "$FORM" ]
"$R" --db "$tmp/p" --progress --out "$tmp/p.out" "$tmp/in.jsonl" 2>"$tmp/p.err"
check "--progress without a terminal: exit 0" [ $? -eq 0 ]
check "--progress without a terminal: the progress line" \
    grep -Eq "^${CR}.*60000 lines, 16\.9 MiB/16\.9 MiB \(100%\).*ETA 0:00$ESC\[K\$" "$tmp/p.err"
check "--progress: then the summary" sh -c "tail -n 1 '$tmp/p.err' | grep -q '^credit-replay: 60000 lines: '"
check "--progress: outputs identical" cmp -s "$tmp/p.out" "$tmp/f.out"
# Options around it still parse (a switch among value options, before --config).
printf 'credit.retention_days = 35\n' >"$tmp/c.conf"
"$R" --no-progress --config "$tmp/c.conf" --db "$tmp/pc" --progress --out /dev/null "$tmp/in.jsonl" 2>"$tmp/pc.err"
check "switches among value options and --config: exit 0" [ $? -eq 0 ]
check "... the later switch wins" grep -q "ETA 0:00" "$tmp/pc.err"
"$R" --db "$tmp/bad" --progress 2>"$tmp/bad.err"
check "--progress without a file: usage, exit 1" [ $? -eq 1 ]

# ---- 4. stdin through a pipe: no size, no ETA --------------------------------
on_tty "$tmp/pipe.txt" "cat $tmp/in.jsonl | $R --db $tmp/s --out $tmp/s.out -"
check "pipe: exit 0" [ $? -eq 0 ]
tty_lines "$tmp/pipe.txt" >"$tmp/pipe.lines"
check "pipe: the last line has lines, bytes read and events/s, no ETA" \
    grep -Eq "^60000 lines, 16\.9 MiB, [0-9.]+[kM]? events/s$ESC\[K\$" "$tmp/pipe.lines"
check "pipe: no ETA anywhere" sh -c "! grep -q ETA '$tmp/pipe.lines'"
check "pipe: outputs identical" cmp -s "$tmp/s.out" "$tmp/f.out"
# A regular file on stdin has a size.
on_tty "$tmp/redir.txt" "$R --db $tmp/rd --out /dev/null - <$tmp/in.jsonl"
check "regular file on stdin: a total and an ETA" \
    sh -c "tr '\r' '\n' <'$tmp/redir.txt' | grep -Eq '^60000 lines, 16\.9 MiB/16\.9 MiB \(100%\).*ETA 0:00'"

echo "replay-progress: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
