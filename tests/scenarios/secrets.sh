#!/bin/sh
# Secrets (README "Secrets"), on creditd's embedded broker (no JVM):
#   1. --dump-config: a secret read from a file (file:PATH, also through -X
#      and ${CREDENTIALS_DIRECTORY}) is shown as file:PATH, one written in
#      clear as ********: no secret value in the dump;
#   2. creditd (text, then JSON; log.level=debug, kafka.debug=all, the stats
#      line every 200 ms) with those secrets, and every tool with the same
#      configuration file (credit-produce, credit-tick, creditctl grant
#      --wait, credit-replay --from-kafka) working against it: no secret
#      value in any log, librdkafka's configuration dump among the lines;
#   3. a secret librdkafka itself quotes (a bad sasl.oauthbearer.config, read
#      from a file): creditd and each tool fail naming the cause, the value
#      masked;
#   4. a file holding a secret in clear that group or others may read (0644,
#      0640): every program refuses it, exit 1, with the fix in the message;
#      the same at 0600, or with every secret as file:, is accepted;
#   5. file: errors name the key and the path.
# Run from the repository root after make all (tests/scenarios/run.sh).
set -u
B=${B:-build}
PY=/usr/bin/python3
tmp=$(mktemp -d /tmp/creditd-secrets.XXXXXX)
pids=""
trap 'for p in $pids; do kill -KILL "$p" 2>/dev/null; done; [ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT
pass=0; fail=0
ok()  { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL: secrets: $*" >&2; }
check() { # WHAT CMD...
    what=$1; shift
    if "$@"; then ok; else bad "$what"; fi
}
. "$(dirname "$0")/daemon_lib.sh"  # now, start, seen, wait_seen, wait_grep
rand() { od -An -N8 -tx1 /dev/urandom | tr -d ' \n'; }

# The secrets: three in files, one in clear in a private (0600) file.
PW=pw-$(rand); KEYPW=keypw-$(rand); OAUTH=oauth-$(rand); CLEAR=clear-$(rand)
umask 077
printf '%s\n' "$PW" > "$tmp/kafka-password"
printf '%s\n' "$KEYPW" > "$tmp/key-password"
printf 'principal=admin bogus=%s\n' "$OAUTH" > "$tmp/oauth-config"

# no_secret FILE...: none of the four values in any of the files.
no_secret() {
    for s in "$PW" "$KEYPW" "$OAUTH" "$CLEAR"; do
        if grep -F -q -e "$s" "$@"; then echo "secret $s in: $(grep -F -l -e "$s" "$@")" >&2; return 1; fi
    done
}

cat > "$tmp/creditd.conf" <<EOF
kafka.sasl.password = file:$tmp/kafka-password
kafka.ssl.key.password = file:$tmp/key-password
kafka.ssl.keystore.password = $CLEAR
kafka.sasl.username = creditd
log.level = debug
kafka.debug = all
stats.interval_ms = 200
EOF

# ---- 1. --dump-config --------------------------------------------------------------
RC=0; "$B/creditd" --config "$tmp/creditd.conf" -X "sasl.oauthbearer.config=file:$tmp/oauth-config" \
    --dump-config > "$tmp/dump" 2>"$tmp/dump.err" || RC=$?
check "--dump-config: exit 0 (got $RC: $(cat "$tmp/dump.err"))" test "$RC" = 0
check "--dump-config: no secret value" no_secret "$tmp/dump"
check "--dump-config: a file secret shows its path" grep -qxF "kafka.sasl.password = file:$tmp/kafka-password" "$tmp/dump"
check "--dump-config: -X file: shows its path" grep -qxF "kafka.sasl.oauthbearer.config = file:$tmp/oauth-config" "$tmp/dump"
check "--dump-config: a clear secret is ********" grep -qxF "kafka.ssl.keystore.password = ********" "$tmp/dump"
check "--dump-config: not a secret: shown" grep -qxF "kafka.sasl.username = creditd" "$tmp/dump"
printf 'kafka.sasl.password = file:${CREDENTIALS_DIRECTORY}/kafka-password\n' > "$tmp/cred.conf"
RC=0; CREDENTIALS_DIRECTORY=$tmp "$B/creditd" --config "$tmp/cred.conf" --dump-config > "$tmp/dump2" 2>&1 || RC=$?
check "\${CREDENTIALS_DIRECTORY}: exit 0, the path as written (got $RC)" \
    sh -c 'test "$1" = 0 && grep -qxF "kafka.sasl.password = file:\${CREDENTIALS_DIRECTORY}/kafka-password" "$2"' - "$RC" "$tmp/dump2"
check "\${CREDENTIALS_DIRECTORY}: no secret value" no_secret "$tmp/dump2"

# ---- 2. creditd and every tool, text then JSON --------------------------------------

stop() { # PID: SIGTERM, exit status in RC (255: it did not exit within 30 s)
    kill -TERM "$1"
    deadline=$(( $(now) + 30 ))
    while kill -0 "$1" 2>/dev/null; do
        if [ "$(now)" -gt "$deadline" ]; then kill -KILL "$1"; wait "$1"; RC=255; return; fi
        sleep 0.1
    done
    RC=0; wait "$1" || RC=$?
}
json_lines() { # FILE: every line a JSON object with a message
    $PY - "$1" <<'PYEOF'
import json, sys
n = 0
for i, raw in enumerate(open(sys.argv[1], "rb"), 1):
    o = json.loads(raw.decode("utf-8", "strict"))
    if not isinstance(o, dict) or not isinstance(o.get("message"), str):
        sys.exit(f"{sys.argv[1]}:{i}: not a log object")
    n += 1
sys.exit(0 if n else f"{sys.argv[1]}: no lines")
PYEOF
}

n=$(grep -c . examples/timeline.jsonl)
for fmt in text json; do
    if ! start "$fmt" --config "$tmp/creditd.conf" -X "log.format=$fmt"; then
        bad "$fmt: creditd did not report its embedded broker: $(head -c 300 "$tmp/$fmt.err")"
        continue
    fi
    ok
    # The tools' configuration: creditd's file and the broker, private.
    { cat "$tmp/creditd.conf"; printf 'kafka.bootstrap.servers = %s\nlog.format = %s\n' "$ADDR" "$fmt"; } > "$tmp/tools.conf"
    T="$tmp/$fmt"
    RC=0; "$B/credit-produce" --config "$tmp/tools.conf" examples/timeline.jsonl 2>"$T.produce.err" || RC=$?
    check "$fmt: credit-produce --config (no -b): exit 0 (got $RC)" test "$RC" = 0
    # Ticks at the current hour: the clock creditctl's grant (now) is judged by.
    RC=0; "$B/credit-tick" --config "$tmp/tools.conf" --time "$(date -u +%Y-%m-%dT%H:00:00Z)" 2>"$T.tick.err" || RC=$?
    check "$fmt: credit-tick --config: exit 0 (got $RC)" test "$RC" = 0
    RC=0; "$B/creditctl" --config "$tmp/tools.conf" grant o-secret --value 10 --force --wait 60 \
        >"$T.ctl.out" 2>"$T.ctl.err" || RC=$?
    check "$fmt: creditctl grant --config --wait: applied (exit $RC)" \
        sh -c 'test "$1" = 0 && sed -n 2p "$2" | grep -qx applied' - "$RC" "$T.ctl.out"
    check "$fmt: all $n events, 4 ticks and the grant applied" wait_seen "$tmp/$fmt.store" $((n + 5))
    RC=0; "$B/credit-replay" --db "$T.replay" --from-kafka "$ADDR" --config "$tmp/tools.conf" \
        --out "$T.replay.out" 2>"$T.replay.err" || RC=$?
    check "$fmt: credit-replay --from-kafka --config: exit 0 (got $RC)" test "$RC" = 0
    check "$fmt: credit-replay read every message" grep -q "^credit-replay: $((n + 5)) lines" "$T.replay.err"
    check "$fmt: a stats line" wait_grep "$tmp/$fmt.err" 'stats events/s='
    stop "$PID"
    check "$fmt: creditd SIGTERM: exit 0 (got $RC)" test "$RC" = 0
    check "$fmt: librdkafka's configuration dump is in creditd's log" grep -q "sasl.password = " "$tmp/$fmt.err"
    check "$fmt: librdkafka's debug lines in the tools' logs" grep -q "sasl.password = " "$T.produce.err" "$T.tick.err" "$T.ctl.err" "$T.replay.err"
    check "$fmt: no secret in creditd's or the tools' output" \
        no_secret "$tmp/$fmt.err" "$tmp/$fmt.out" "$T.produce.err" "$T.tick.err" "$T.ctl.err" "$T.ctl.out" "$T.replay.err"
    if [ "$fmt" = json ]; then
        check "json: creditd's log is JSON lines" json_lines "$tmp/json.err"
        check "json: credit-tick's log is JSON lines" json_lines "$T.tick.err"
    fi
done

# ---- 3. a secret librdkafka quotes: masked ---------------------------------------------
OAUTHX="-X security.protocol=SASL_PLAINTEXT -X sasl.mechanisms=OAUTHBEARER -X enable.sasl.oauthbearer.unsecure.jwt=true"
OAUTHX="$OAUTHX -X sasl.oauthbearer.config=file:$tmp/oauth-config"
QUOTE='Unrecognized sasl.oauthbearer.config beginning at: \*\*\*\*\*\*\*\*'
masked() { # WHAT WANT-RC FILE RC
    check "$1: exit $2 (got $4)" test "$4" = "$2"
    check "$1: the cause, the secret masked" grep -q "$QUOTE" "$3"
    check "$1: no secret" no_secret "$3"
}
RC=0; timeout 60 "$B/creditd" --db "$tmp/oauth.store" $OAUTHX -X stats.interval_ms=0 >/dev/null 2>"$tmp/o.creditd" || RC=$?
masked "creditd, bad oauthbearer config" 2 "$tmp/o.creditd" "$RC"
if start oauth-broker -X stats.interval_ms=0 -X log.level=warn; then
    RC=0; echo '{}' | timeout 60 "$B/credit-produce" -b "$ADDR" $OAUTHX - 2>"$tmp/o.produce" || RC=$?
    masked "credit-produce, bad oauthbearer config" 2 "$tmp/o.produce" "$RC"
    RC=0; timeout 60 "$B/credit-tick" -b "$ADDR" $OAUTHX --time 2026-01-01T00:00:00Z 2>"$tmp/o.tick" || RC=$?
    masked "credit-tick, bad oauthbearer config" 2 "$tmp/o.tick" "$RC"
    # The same written in clear on the command line: masked as well.
    RC=0; timeout 60 "$B/credit-tick" -b "$ADDR" -X security.protocol=SASL_PLAINTEXT -X sasl.mechanisms=OAUTHBEARER \
        -X enable.sasl.oauthbearer.unsecure.jwt=true -X "sasl.oauthbearer.config=principal=admin bogus=$CLEAR" \
        --time 2026-01-01T00:00:00Z 2>"$tmp/o.tick2" || RC=$?
    masked "credit-tick, bad oauthbearer config in clear (-X)" 2 "$tmp/o.tick2" "$RC"
    RC=0; timeout 60 "$B/creditctl" -b "$ADDR" $OAUTHX revoke o1 >/dev/null 2>"$tmp/o.ctl" || RC=$?
    masked "creditctl, bad oauthbearer config" 2 "$tmp/o.ctl" "$RC"
    RC=0; timeout 60 "$B/credit-replay" --db "$tmp/o.replay.store" --from-kafka "$ADDR" $OAUTHX --out /dev/null 2>"$tmp/o.replay" || RC=$?
    masked "credit-replay --from-kafka, bad oauthbearer config" 2 "$tmp/o.replay" "$RC"
    stop "$PID"
else
    bad "creditd (oauth-broker) did not report its embedded broker"
fi

# ---- 4. a secret in clear in a file others may read: refused ----------------------------
printf 'kafka.bootstrap.servers = 127.0.0.1:1\nkafka.sasl.password = %s\n' "$CLEAR" > "$tmp/open.conf"
printf '{"specversion":"1.0"}\n' > "$tmp/one.jsonl"
# refused PROG WANT-RC ARGS...: exit 1 and exactly the message, no secret.
refused() {
    prog=$1; shift
    RC=0; timeout 60 "$@" >/dev/null 2>"$tmp/refused.err" || RC=$?
    want="$prog: $tmp/open.conf: holds kafka.sasl.password in clear and is readable by group or others (mode $MODE): chmod 600 $tmp/open.conf, or use kafka.sasl.password = file:/path (see README)"
    check "$prog, mode $MODE: exit 1 (got $RC)" test "$RC" = 1
    check "$prog, mode $MODE: the message says how to fix it ($(head -c 300 "$tmp/refused.err"))" grep -qxF "$want" "$tmp/refused.err"
    check "$prog, mode $MODE: no secret" no_secret "$tmp/refused.err"
}
for MODE in 0644 0640; do
    chmod "$MODE" "$tmp/open.conf"
    refused creditd "$B/creditd" --config "$tmp/open.conf" --db "$tmp/r.store"
    refused creditd "$B/creditd" --config "$tmp/open.conf" --dump-config
    refused credit-produce "$B/credit-produce" --config "$tmp/open.conf" "$tmp/one.jsonl"
    refused credit-tick "$B/credit-tick" --config "$tmp/open.conf" --time 2026-01-01T00:00:00Z
    refused credit-replay "$B/credit-replay" --db "$tmp/r.replay" --config "$tmp/open.conf" "$tmp/one.jsonl"
    refused credit-replay "$B/credit-replay" --db "$tmp/r.replay2" --from-kafka 127.0.0.1:1 --config "$tmp/open.conf"
    refused creditctl "$B/creditctl" --config "$tmp/open.conf" adjust o1 --delta 1 --wait 5
done
check "refused: nothing was created" test ! -e "$tmp/r.store" -a ! -e "$tmp/r.replay" -a ! -e "$tmp/r.replay2"
chmod 600 "$tmp/open.conf"
RC=0; "$B/creditd" --config "$tmp/open.conf" --dump-config >"$tmp/ok.dump" 2>&1 || RC=$?
check "mode 0600: accepted (exit $RC), the secret masked" sh -c 'test "$1" = 0' - "$RC"
check "mode 0600: no secret in the dump" no_secret "$tmp/ok.dump"
printf 'kafka.sasl.password = file:%s\nkafka.ssl.key.password = ""\nkafka.ssl.key.location = /k.pem\n' \
    "$tmp/kafka-password" > "$tmp/files.conf"
chmod 644 "$tmp/files.conf"
RC=0; "$B/creditd" --config "$tmp/files.conf" --dump-config >/dev/null 2>&1 || RC=$?
check "mode 0644 with the secret as file:: creditd accepts it (exit $RC)" test "$RC" = 0
RC=0; "$B/credit-replay" --db "$tmp/files.replay" --config "$tmp/files.conf" --out /dev/null "$tmp/one.jsonl" 2>/dev/null || RC=$?
check "mode 0644 with the secret as file:: credit-replay accepts it (exit $RC)" test "$RC" = 0

# ---- 5. file: errors ------------------------------------------------------------------
printf 'kafka.sasl.password = file:%s/missing\n' "$tmp" > "$tmp/missing.conf"
RC=0; "$B/creditd" --config "$tmp/missing.conf" --dump-config >/dev/null 2>"$tmp/missing.err" || RC=$?
check "file: missing: exit 1 naming key and path (got $RC: $(cat "$tmp/missing.err"))" \
    sh -c 'test "$1" = 1 && grep -qxF "creditd: $2/missing.conf:1: kafka.sasl.password: file:$2/missing: cannot open: No such file or directory" "$3"' \
    - "$RC" "$tmp" "$tmp/missing.err"
head -c 70000 /dev/zero | tr '\0' k > "$tmp/big"
RC=0; "$B/credit-tick" -X "sasl.password=file:$tmp/big" --time 2026-01-01T00:00:00Z 2>"$tmp/big.err" || RC=$?
check "file: too big: credit-tick exit 1 naming key and path (got $RC: $(cat "$tmp/big.err"))" \
    sh -c 'test "$1" = 1 && grep -qxF "credit-tick: -X: kafka.sasl.password: file:$2/big: larger than 65536 bytes" "$3"' \
    - "$RC" "$tmp" "$tmp/big.err"

echo "secrets: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
