#!/bin/sh
# creditd's logs on its embedded broker (no JVM), README "Logs":
#   1. log.format=json, log.level=debug, kafka.debug=broker: the example
#      timeline and credit-tick --config; every stderr line of creditd and of
#      credit-tick is one JSON object with time (RFC 3339 UTC, ms), level and
#      message, librdkafka's own debug lines among them, the stats line info;
#   2. the default text format: the lines creditd always printed, byte for byte;
#   3. the crash-loop guard (build/creditd-test): exit 3, the fatal line at
#      level error in JSON, and at log.level=warn no info line;
#   4. a configuration error after -X log.format=json: one JSON error line, exit 1.
# Run from the repository root after make build/creditd build/creditd-test.
set -u
B=${B:-build}
PY=/usr/bin/python3
tmp=$(mktemp -d /tmp/creditd-logs.XXXXXX)
pids=""
trap 'for p in $pids; do kill -KILL "$p" 2>/dev/null; done; [ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT
pass=0; fail=0
ok()  { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL: daemon_logs: $*" >&2; }
check() { # WHAT CMD...
    what=$1; shift
    if "$@"; then ok; else bad "$what"; fi
}

. "$(dirname "$0")/daemon_lib.sh"  # now, start, seen, wait_seen, wait_grep

# wait_exit PID SECONDS: its exit status in RC (255 when it did not exit).
wait_exit() {
    deadline=$(( $(now) + $2 ))
    while kill -0 "$1" 2>/dev/null; do
        if [ "$(now)" -gt "$deadline" ]; then kill -KILL "$1"; wait "$1"; RC=255; return 1; fi
        sleep 0.1
    done
    RC=0; wait "$1" || RC=$?
}

stop() { # PID: SIGTERM, exit status in RC
    kill -TERM "$1"
    wait_exit "$1" 30
}

# json_lines FILE LEVELS: every line a JSON object with time/level/message,
# levels among LEVELS (comma-separated); prints a summary, fails otherwise.
json_lines() {
    $PY - "$1" "$2" <<'PYEOF'
import json, re, sys
path, allowed = sys.argv[1], set(sys.argv[2].split(","))
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
n = 0
for i, raw in enumerate(open(path, "rb"), 1):
    try:
        o = json.loads(raw.decode("utf-8", "strict"))
    except Exception as e:
        sys.exit(f"{path}:{i}: not a JSON line ({e}): {raw[:120]!r}")
    if not isinstance(o, dict):
        sys.exit(f"{path}:{i}: not an object")
    if not TIME.match(o.get("time", "")) or o.get("level") not in allowed \
            or not isinstance(o.get("message"), str):
        sys.exit(f"{path}:{i}: time/level/message wrong: {o}")
    n += 1
if n == 0:
    sys.exit(f"{path}: no lines")
PYEOF
}

# has_json FILE PYTHON-EXPR: some line's object o satisfies the expression.
has_json() {
    $PY - "$1" "$2" <<'PYEOF'
import json, sys
objs = [json.loads(l) for l in open(sys.argv[1])]
sys.exit(0 if any(eval(sys.argv[2], {}, {"o": o}) for o in objs) else 1)
PYEOF
}

# ---- 1. JSON, debug, librdkafka's lines -----------------------------------------
if start json -X log.format=json -X log.level=debug -X kafka.debug=broker -X stats.interval_ms=200; then
    ok
    n=$(grep -c . examples/timeline.jsonl)
    "$B/credit-produce" -b "$ADDR" examples/timeline.jsonl 2>"$tmp/produce.err" \
        && ok || bad "credit-produce to the embedded broker"
    printf 'kafka.bootstrap.servers = %s\nlog.format = json\n' "$ADDR" > "$tmp/tick.conf"
    "$B/credit-tick" --config "$tmp/tick.conf" --time 2026-01-01T00:00:00Z 2>"$tmp/tick.err" \
        && ok || bad "credit-tick --config (exit $?)"
    check "credit-tick --config: JSON lines" json_lines "$tmp/tick.err" info,warn,error
    check "credit-tick --config: the ticks reported at info" \
        has_json "$tmp/tick.err" 'o["level"] == "info" and o["message"].startswith("4 ticks (time 2026-01-01T00:00:00Z) produced to credit.events")'
    check "all $n events and 4 ticks applied" wait_seen "$tmp/json.store" $((n + 4))
    check "a stats line" wait_grep "$tmp/json.err" '"message":"stats events/s='
    stop "$PID"
    check "SIGTERM: exit 0 (got $RC)" test "$RC" = 0
    check "every stderr line is a JSON object with time, level, message" \
        json_lines "$tmp/json.err" debug,info,warn,error
    check "librdkafka's debug lines come through the writer" \
        has_json "$tmp/json.err" 'o.get("source") == "librdkafka" and o["level"] == "debug" and o.get("facility") == "BROKER" and o.get("component") in ("consumer", "relay")'
    check "the stats line is info" has_json "$tmp/json.err" 'o["level"] == "info" and o["message"].startswith("stats events/s=")'
    check "stopped with the outbox delivered, at info" \
        has_json "$tmp/json.err" 'o["level"] == "info" and o["message"] == "stopped; outbox 0 entries"'
    check "stdout keeps the broker line only" test "$(wc -l < "$tmp/json.out")" = 1
else
    bad "creditd (json) did not report its embedded broker: $(head -c 300 "$tmp/json.err")"
fi

# ---- 2. text: today's lines, byte for byte ----------------------------------------
if start text -X stats.interval_ms=200; then
    ok
    check "text: a stats line" wait_grep "$tmp/text.err" '^creditd: stats '
    stop "$PID"
    check "text: SIGTERM exit 0 (got $RC)" test "$RC" = 0
    if $PY - "$tmp/text.err" "$tmp/text.store" <<'PYEOF'
import re, sys
store = re.escape(sys.argv[2])
forms = [r"creditd: version \S+, librdkafka \d+\.\d+\.\d+",
         rf"creditd: new store {store} for cluster \S+, topic credit\.events \(4 partitions\)",
         rf"creditd: consuming credit\.events \(4 of 4 partitions\), store {store}, outbox 0",
         r"creditd: stats events/s=\d+ batch=\d+ lag=-?\d+ outbox=\d+ duplicates=\d+ rejects=\d+",
         r"creditd: stopped; outbox 0 entries"]
lines = open(sys.argv[1]).read().split("\n")
if lines[-1] != "":
    sys.exit("no final newline")
for l in lines[:-1]:
    if not any(re.fullmatch(f, l) for f in forms):
        sys.exit(f"unexpected line: {l!r}")
if not (re.fullmatch(forms[0], lines[0]) and re.fullmatch(forms[1], lines[1]) and re.fullmatch(forms[2], lines[2])
        and re.fullmatch(forms[4], lines[-2])):
    sys.exit("order: version, new store, consuming, ..., stopped")
PYEOF
    then ok; else bad "text lines differ from creditd's usual ones"; fi
else
    bad "creditd (text) did not report its embedded broker"
fi

# ---- 3. crash-loop guard: exit 3, JSON, warn and above only -----------------------
printf '%s\n' '{"specversion":"1.0","id":"poison-1","source":"staff/credits","type":"org_credit.set","time":"2026-01-05T10:00:00Z","data":{"org":"o1","value":"10"}}' > "$tmp/poison.jsonl"
if CREDITD_TEST_FAIL_ON='"id":"poison-1"' CREDITD="$B/creditd-test" \
        start guard -X log.format=json -X log.level=warn; then
    ok
    "$B/credit-produce" -b "$ADDR" "$tmp/poison.jsonl" 2>/dev/null || bad "produce the poison event"
    wait_exit "$PID" 60
    check "crash-loop guard: exit 3 (got $RC)" test "$RC" = 3
    check "crash-loop guard: JSON lines at warn and error only" json_lines "$tmp/guard.err" warn,error
    check "crash-loop guard: the fatal line is an error naming the message" \
        has_json "$tmp/guard.err" 'o["level"] == "error" and o["message"].startswith("fatal: input credit.events [") and "the engine failed on this message" in o["message"]'
else
    bad "creditd-test did not report its embedded broker"
fi

# ---- 4. a configuration error, in the format asked for ----------------------------
RC=0; "$B/creditd" -X log.format=json -X batch.max_ms=0 >/dev/null 2>"$tmp/conf.err" || RC=$?
check "bad configuration: exit 1 (got $RC)" test "$RC" = 1
check "bad configuration: one JSON error line naming the key" \
    sh -c 'test "$(wc -l < "$1")" = 1 && grep -q "^{\"time\":\"[^\"]*\",\"level\":\"error\",\"message\":\"-X: batch.max_ms: 0 is outside 1..60000\"}$" "$1"' - "$tmp/conf.err"
RC=0; "$B/creditd" -X log.format=yaml >/dev/null 2>"$tmp/conf2.err" || RC=$?
check "log.format=yaml: exit 1 naming the key" \
    sh -c 'test "$2" = 1 && grep -qx "creditd: -X: log.format: \"yaml\": not text or json" "$1"' - "$tmp/conf2.err" "$RC"

echo "daemon_logs: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
