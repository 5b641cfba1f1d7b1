#!/usr/bin/env bash
# creditd's HTTP API (README "HTTP API") on a real Kafka 4 broker
# (tests/kafka/broker.sh).
#
# 1. creditd with http.listen = 127.0.0.1:0 prints the URL it listens on;
#    /healthz answers 200 at once; /metrics is text/plain version 0.0.4;
#    /readyz is 200 or 503 with a JSON status.
# 2. The examples (tools/run-demo.sh feed) and a generated stream (300
#    organisations) are applied; then, with nothing else arriving,
#    GET /v1/orgs/{org} equals `creditctl show ORG --json` byte for byte for
#    every organisation of the input (404 with a JSON error for ids the store
#    does not know), and GET /v1/orgs, page by page (limit 1, 7, default,
#    1000, and from an `after`), gives exactly `creditctl balances --json`
#    (tests/kafka/http_probe.py compare).
# 3. Abuse while a further stream is being applied (http_probe.py abuse):
#    1,000 concurrent connections, a 1 MB header, a 100 kB target, malformed
#    and percent-encoded paths (%00, %2e%2e, .., bad escapes, over-long ids),
#    bad query parameters, POST/PUT/DELETE/...: each gets its 4xx (or is
#    refused), never a 5xx nor a hang; then every message of that stream is
#    applied, a further event (a creditctl grant) shows up in
#    GET /v1/orgs/{org}, and /healthz answers 200.
# 4. creditctl --http: grant's if_value read from GET /v1/orgs/{org} is
#    applied; a stale grant (an older if_value) is rejected value_changed,
#    and --wait prints the current balance read over HTTP.
# 5. A second creditd on the same http.listen fails at start-up naming
#    http.listen; SIGTERM stops the first (HTTP included) with exit 0.
# 6. A corrupt record (store-poke: o1's credit record of another format
#    version): GET /v1/orgs/o1 and a page holding o1 are 500 with a JSON
#    error naming the database, the key and the org; the rest still reads;
#    creditd stays up.
# Needs make all build/gen-events build/store-poke; kcat, jq, python3.
# Closing line: "it_http: N passed, N failed".
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
B=build
BROKER=tests/kafka/broker.sh
NAME=it_http
T=$(mktemp -d "${TMPDIR:-/tmp}/$NAME.XXXXXX")
PARTS=4
SEED=${IT_HTTP_SEED:-$(( ${SRANDOM:-$$} % 1000000 + 1 ))}
PROBE=tests/kafka/http_probe.py
pass=0 fail=0 pid="" prod_pid="" ref_pid="" t0=$SECONDS

trap finish EXIT

# wait_for SECONDS CMD...: CMD every 0.2 s until it succeeds, at most SECONDS.
wait_for() {
    local deadline=$((SECONDS + $1)); shift
    until "$@"; do ((SECONDS < deadline)) || return 1; sleep 0.2; done
}
seen_at_least() { read_stats "$T/store"; ((SEEN >= $1 && OUTBOX == 0)); }
http() { python3 "$PROBE" get "$ADDR" "$1"; }   # TARGET: status line, then the body
status_of() { http "$1" 2>/dev/null | head -n1; }
body_of() { http "$1" 2>/dev/null | tail -n +2; }
status_is() { [[ "$(status_of "$1")" == "$2" ]]; }          # TARGET STATUS
value_of() { body_of "/v1/orgs/$1" | jq -r '.credit.value // empty' 2>/dev/null; }
value_is() { [[ "$(value_of "$1")" == "$2" ]]; }            # ORG VALUE
ctl() { timeout 60 "$B/creditctl" "$@"; }

for tool in creditd creditctl credit-produce credit-tick gen-events store-poke; do
    [[ -x "$B/$tool" ]] || { bad "$B/$tool missing (make all $B/gen-events $B/store-poke)"; exit 1; }
done
broker_start

# ---- 1. start-up ---------------------------------------------------------------
# Guards off: the streams come in any order after the examples (which tick
# every partition to 2026-07), and creditctl's grants carry the wall clock.
"$B/creditd" -X "bootstrap.servers=$BS" --db "$T/store" -X http.listen=127.0.0.1:0 \
    -X stats.interval_ms=1000 -X credit.retention_days=0 -X credit.max_future=0 \
    > "$T/creditd.out" 2>> "$T/creditd.log" &
pid=$!
url_line() { grep -m1 '^creditd: http listening on http://127\.0\.0\.1:[0-9]*$' "$T/creditd.out" 2>/dev/null; }
has_url() { url_line > /dev/null; }
check "creditd prints the URL it listens on" wait_for 60 has_url
URL=$(url_line | sed 's/^creditd: http listening on //')
ADDR=${URL#http://}
note "HTTP at $URL"
check "GET /healthz: 200" wait_for 30 status_is /healthz 200
check "GET /healthz: {\"status\":\"alive\"}" test "$(body_of /healthz)" = '{"status":"alive"}'
curl_head() { python3 - "$URL" "$1" <<'PY'
import sys, urllib.request, urllib.error
try:
    r = urllib.request.urlopen(sys.argv[1] + sys.argv[2], timeout=20)
except urllib.error.HTTPError as e:
    r = e
print(r.status, r.headers.get("Content-Type"))
print(r.read().decode())
PY
}
metrics=$(curl_head /metrics)
check "GET /metrics: 200 text/plain; version=0.0.4" \
    test "$(head -n1 <<<"$metrics")" = "200 text/plain; version=0.0.4; charset=utf-8"
ready=$(curl_head /readyz)
check "GET /readyz: 200 ready or 503 not ready with a reason ($(head -n1 <<<"$ready"))" \
    jq -e 'if .status == "ready" then true else (.status == "not ready" and (.reason | type) == "string") end' \
    <<<"$(tail -n +2 <<<"$ready")" > /dev/null

# ---- 2. the same answers as creditctl ---------------------------------------------
want1=$(tools/run-demo.sh feed "$BS" credit.events examples/timeline.jsonl) || bad "feed the examples"
prepare_stream 6000 300
cp "$T/events.jsonl" "$T/stream1.jsonl"
produce_all > "$T/produce1.log" 2>&1 || bad "produce the generated stream"
total=$((want1 + want))
check "all $total messages seen" wait_for 180 seen_at_least "$total"
check "most of them applied, not rejected ($APPLIED applied, $REJECTED rejected)" test "$APPLIED" -gt "$REJECTED"
{ cat examples/timeline.jsonl "$T/stream1.jsonl" | jq -r '.data.org // empty' | sort -u
  printf '%s\n' no-such-org .. "a/b" "é x"; } > "$T/orgs"
python3 "$PROBE" compare "$ADDR" "$B/creditctl" "$T/store" "$T/orgs" > "$T/compare.out" 2>&1
check "GET /v1/orgs/{org} and /v1/orgs == creditctl ($(grep -c '^ok' "$T/compare.out") checks)" \
    test $? -eq 0
grep '^FAIL' "$T/compare.out" | head -n 5 >&2

# ---- 3. abuse while events are applied ---------------------------------------------
SEED=$((SEED + 1))
prepare_stream 60000 300
before=$total
total=$((total + want))
start_producer
applying() { read_stats "$T/store"; ((SEEN > before)); }
check "the stream of $want messages is being applied" wait_for 120 applying
at_start=$SEEN
python3 "$PROBE" abuse "$ADDR" o1 > "$T/abuse.out" 2>&1
rc=$?
read_stats "$T/store"
note "during the abuse creditd went from $at_start to $SEEN of $total messages"
check "the abuse began while messages were still to apply ($at_start < $total)" test "$at_start" -lt "$total"
check "abuse: every case 4xx or refused, never 5xx or a hang ($(grep -c '^ok' "$T/abuse.out") cases)" test $rc -eq 0
grep '^FAIL\|concurrent' "$T/abuse.out" | head -n 5 >&2
check "creditd alive after the abuse" alive "$pid"
wait "$prod_pid" || bad "produce the stream during the abuse"
prod_pid=""
check "all $total messages seen after the abuse" wait_for 240 seen_at_least "$total"
check "most of them applied, not rejected ($APPLIED applied, $REJECTED rejected)" test "$APPLIED" -gt "$REJECTED"
id=$(ctl grant o-after --value 42 --force -b "$BS" 2>>"$T/ctl.err")
check "a further event: grant o-after" test -n "$id"
check "GET /v1/orgs/o-after: the grant applied (42)" wait_for 60 value_is o-after 42.000000
check "GET /healthz: 200 after all that" test "$(status_of /healthz)" = 200

# ---- 4. creditctl --http: if_value ---------------------------------------------------
ctl grant o-after --value 150 --http "$URL" --dry-run > "$T/stale.json" 2>>"$T/ctl.err"
check "grant --http --dry-run: if_value 42 from GET /v1/orgs/o-after" \
    test "$(jq -r .data.if_value "$T/stale.json")" = 42.000000
id=$(ctl grant o-after --value 120 --http "$URL" -b "$BS" 2>>"$T/ctl.err")
check "grant --http: sent" test -n "$id"
check "grant --http with the current if_value: applied (120)" wait_for 60 value_is o-after 120.000000
stale_id=$(jq -r .id "$T/stale.json")
ctl grant o-after --value 150 --if-value 42 --id "$stale_id" --http "$URL" -b "$BS" --wait 60 \
    > "$T/stale.out" 2>>"$T/ctl.err"
rc=$?
check "a stale grant: rejected, exit 3 (got $rc)" test $rc -eq 3
check "a stale grant: value_changed" grep -q '^rejected value_changed: ' "$T/stale.out"
check "a stale grant: --wait prints the balance read over HTTP" grep -qx 'current balance: 120.000000' "$T/stale.out"
check "balance still 120" test "$(value_of o-after)" = 120.000000
ctl grant o-new --value 1 --http "$URL" --dry-run > "$T/new.json" 2>>"$T/ctl.err"
check "grant --http of an unknown org: no if_value" test "$(jq -r '.data | has("if_value")' "$T/new.json")" = false
ctl grant o-after --value 1 --http "http://127.0.0.1:1" --dry-run > /dev/null 2> "$T/noconn.err"
rc=$?
check "grant --http with nothing listening: exit 2 naming the address (got $rc)" \
    test $rc -eq 2 -a -n "$(grep 'connect to 127.0.0.1 port 1' "$T/noconn.err")"

# ---- 5. a bind failure; SIGTERM -----------------------------------------------------
timeout 60 "$B/creditd" -X "bootstrap.servers=$BS" --db "$T/store2" -X "http.listen=$ADDR" \
    > /dev/null 2> "$T/second.err"
rc=$?
check "a second creditd on http.listen $ADDR: exit 2 (got $rc)" test $rc -eq 2
check "... naming http.listen: $(grep -m1 fatal "$T/second.err")" \
    grep -q "fatal: http.listen $ADDR: bind: Address already in use" "$T/second.err"
stop_creditd "$pid"
rc=$?
pid=""
check "SIGTERM: creditd exits 0 (got $rc)" test $rc -eq 0
check "after the stop nothing listens on $ADDR" test "$(status_of /healthz)" != 200

# ---- 6. a corrupt record --------------------------------------------------------------
hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
v=$("$B/store-poke" "$T/store" get orgs "$(hex o1)")
check "o1 has a record" test -n "$v"
"$B/store-poke" "$T/store" put orgs "$(hex o1)" "07${v#??}" || bad "store-poke"
"$B/creditd" -X "bootstrap.servers=$BS" --db "$T/store" -X http.listen=127.0.0.1:0 \
    -X stats.interval_ms=1000 -X credit.retention_days=0 -X credit.max_future=0 \
    > "$T/creditd.out" 2>> "$T/creditd.log" &
pid=$!
check "creditd restarts on the store" wait_for 60 has_url
URL=$(url_line | sed 's/^creditd: http listening on //')
ADDR=${URL#http://}
corrupt_500() { # TARGET: 500, the error names db orgs, key "o1", org o1
    local out
    out=$(http "$1" 2>/dev/null)
    [[ "$(head -n1 <<<"$out")" == 500 ]] &&
        tail -n +2 <<<"$out" | jq -e '(.error | contains("db orgs key \"o1\": record format version 7"))
                                       and .org == "o1"' > /dev/null
}
check "GET /v1/orgs/o1: 500 naming db, key and org" corrupt_500 /v1/orgs/o1
check "GET /v1/orgs (a page holding o1): 500 naming it" corrupt_500 "/v1/orgs?limit=1000"
check "GET /v1/orgs?after=o1: 200 (past it)" status_is "/v1/orgs?after=o1" 200
check "GET /v1/orgs/o2: 200" status_is /v1/orgs/o2 200
check "creditd still up" alive "$pid"
stop_creditd "$pid"
rc=$?
pid=""
check "SIGTERM: exit 0 (got $rc)" test $rc -eq 0
