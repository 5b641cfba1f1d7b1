#!/usr/bin/env bash
# Integration test on a real Kafka 4 broker: creditd's GET /metrics and GET
# /readyz (issue 8).  Closing line: "it_metrics: N passed, N failed".
#
# 1. The worked examples and the bad input (tools/run-demo.sh feed, 4
#    partitions) are applied; the scrape is parsed with the Prometheus
#    client's parser (tests/scenarios/prom_check.py) and its counters equal
#    credit-replay --from-kafka's summary of the same log: events by outcome,
#    outputs by kind; rejects by reason and alerts by kind equal the
#    dead-letter and alerts topics; delivered == committed outputs; the
#    store's persistent counters and remembered keys equal creditctl stats;
#    lag 0 on every partition, ready.
# 2. After a restart the process counters start again from 0 while the
#    store's persistent counters keep their values.
# 3. 20,000 events produced while creditd is stopped, then creditd started
#    with http.ready_max_lag=100: /readyz is 503 naming the lag, then 200
#    once caught up, with every partition's lag back to 0.
#
# How it scrapes: IT_METRICS_VIA=http (default) starts build/creditd with
# -X http.listen=127.0.0.1:PORT -X http.ready_max_lag=N and uses curl;
# IT_METRICS_VIA=file starts build/creditd-test, whose test hook writes the
# same rendering (and the readiness verdict) to CREDITD_TEST_METRICS_FILE
# after every commit (consumer/pipeline.c), for checking the metrics without
# the HTTP server.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
. "$ROOT/tests/kafka/lib.sh"
cd "$ROOT"
NAME=it_metrics
B=build
BROKER=tests/kafka/broker.sh
PY=/usr/bin/python3
VIA=${IT_METRICS_VIA:-http}
T=$(mktemp -d "${TMPDIR:-/tmp}/it_metrics.XXXXXX")
SEED=none
PARTS=4
pass=0 fail=0 t0=$SECONDS pid="" prod_pid="" ref_pid=""
trap finish EXIT   # lib.sh: stops what runs, prints the closing line, exits 1 on any failure
case "$VIA" in http|file) ;; *) echo "IT_METRICS_VIA: http or file" >&2; exit 2 ;; esac

# ---- creditd and its endpoints ---------------------------------------------------------
free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_creditd() { # MAX_LAG LOG [creditd args...]: sets pid (and LISTEN or MF)
    local max_lag=$1 log=$2
    shift 2
    local args=(-X "bootstrap.servers=$BS" --db "$T/store" -X credit.retention_days=0 "$@")
    if [[ $VIA == http ]]; then
        LISTEN=127.0.0.1:$(free_port)
        "$B/creditd" "${args[@]}" -X "http.listen=$LISTEN" -X "http.ready_max_lag=$max_lag" \
            >/dev/null 2>"$log" &
    else
        MF=$T/metrics.$SECONDS.$RANDOM
        CREDITD_TEST_METRICS_FILE=$MF CREDITD_TEST_READY_MAX_LAG=$max_lag \
            "$B/creditd-test" "${args[@]}" >/dev/null 2>"$log" &
    fi
    pid=$!
}

scrape() { # the metrics text on stdout; non-zero when there is none (yet)
    if [[ $VIA == http ]]; then curl -sf --max-time 5 "http://$LISTEN/metrics"
    else cat "$MF" 2>/dev/null; fi
}

readyz() { # "CODE BODY" on one line (CODE 000: no answer)
    if [[ $VIA == http ]]; then
        local out
        out=$(curl -s --max-time 5 -o "$T/readyz.body" -w '%{http_code}' "http://$LISTEN/readyz") || out=000
        echo "$out $(tr '\n' ' ' < "$T/readyz.body" 2>/dev/null)"
    else
        cat "$MF.ready" 2>/dev/null || echo "000 no file yet"
    fi
}

summary() { # FILE: prom_check's JSON summary of a scrape saved in FILE (exit 1 if it fails)
    "$PY" tests/scenarios/prom_check.py "$1"
}

jget() { # JSON EXPR: a value of prom_check's summary (python expression on s)
    "$PY" -c 'import json, sys; s = json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2"
}

# Polls until the scrape's summary satisfies EXPR (python on s), within SECONDS;
# the last summary is left in $T/last.json.
wait_metrics() { # EXPR SECONDS
    local deadline=$((SECONDS + $2))
    while ((SECONDS < deadline)); do
        alive "$pid" || { note "creditd exited"; return 1; }
        if scrape > "$T/scrape.txt" 2>/dev/null && summary "$T/scrape.txt" > "$T/last.json" 2>/dev/null &&
            [[ "$(jget "$(cat "$T/last.json")" "$1")" == True ]]; then
            return 0
        fi
        sleep 0.2
    done
    return 1
}

# ---- broker and input ---------------------------------------------------------------------
broker_start   # lib.sh: credit.events with $PARTS partitions and the output topics
N=$(tools/run-demo.sh feed "$BS" credit.events tests/scenarios/ex_[A-FH].jsonl \
        tests/scenarios/bad_input.jsonl) || { bad "feeding the examples"; exit 1; }
ok "produced $N messages (examples A-F, H and the bad input)"

# ---- 1. the counters against credit-replay -------------------------------------------------
start_creditd 100 "$T/creditd.1.log" -X stats.interval_ms=500
wait_metrics "sum(s['events'].values()) == $N and s['gauges']['creditd_outbox_entries'] == 0 \
and s['delivered'] == s['outputs'] and s['gauges']['creditd_ready'] == 1" 120
check "creditd applied all $N messages, delivered its outbox and is ready" test $? = 0
scrape > "$T/scrape.1.txt"
check "the scrape parses with the Prometheus parser (prom_check)" summary "$T/scrape.1.txt" > "$T/m1.json"
M1=$(cat "$T/m1.json")

"$B/credit-replay" --db "$T/audit" --from-kafka "$BS" --retention-days 0 --out "$T/audit.out" \
    2>"$T/audit.log"
check "credit-replay --from-kafka of the same log exits 0" test $? = 0
read -r RA RD RR RO RL RX RAL < <(sed -n \
    's/.*: \([0-9]*\) applied, \([0-9]*\) duplicates, \([0-9]*\) rejected; outputs: \([0-9]*\) overage, \([0-9]*\) ledger, \([0-9]*\) rejected, \([0-9]*\) alert;.*/\1 \2 \3 \4 \5 \6 \7/p' \
    "$T/audit.log")
check "credit-replay printed its summary" test -n "${RAL:-}"
check "events_total by outcome == credit-replay's ($RA applied, $RD duplicates, $RR rejected)" \
    test "$(jget "$M1" "[s['events'][k] for k in ('applied', 'duplicate', 'rejected')]")" = "[$RA, $RD, $RR]"
check "outputs_total by kind == credit-replay's ($RO overage, $RL ledger, $RX rejected, $RAL alert)" \
    test "$(jget "$M1" "[s['outputs'][k] for k in ('overage', 'ledger', 'rejected', 'alert')]")" = "[$RO, $RL, $RX, $RAL]"
check "outputs by topic name (credit.overage, credit.ledger, credit.rejected, credit.alerts)" \
    test "$(jget "$M1" "[s['outputs_by_topic'].get(t) for t in ('credit.overage', 'credit.ledger', 'credit.rejected', 'credit.alerts')]")" = "[$RO, $RL, $RX, $RAL]"
check "delivered_total == outputs_total" test "$(jget "$M1" "s['delivered'] == s['outputs']")" = True
check "the examples exercise rejects, overage and alerts" test "$RR" -gt 0 -a "$RO" -gt 0 -a "$RAL" -gt 0

# Rejects by reason == the dead-letter topic; alerts by kind == the alerts topic.
timeout 60 kcat -C -b "$BS" -t credit.rejected -e -q -f '%s\n' > "$T/rejected.jsonl"
timeout 60 kcat -C -b "$BS" -t credit.alerts -e -q -f '%s\n' > "$T/alerts.jsonl"
check "rejects by reason and alerts by kind == the dead-letter and alerts topics" \
    "$PY" - "$T/m1.json" "$T/rejected.jsonl" "$T/alerts.jsonl" <<'PYEOF'
import json, sys
s = json.load(open(sys.argv[1]))
dead, alerts = {}, {}
for l in open(sys.argv[2], "rb").read().splitlines():
    r = json.loads(l)["data"]["reason"]; dead[r] = dead.get(r, 0) + 1
for l in open(sys.argv[3], "rb").read().splitlines():
    a = json.loads(l)["data"]["alert"]; alerts[a] = alerts.get(a, 0) + 1
got = {}
for key, n in s["events_by"].items():
    typ, outcome, reason = key.split("/")
    if outcome == "rejected": got[reason] = got.get(reason, 0) + n
errs = []
if got != dead: errs.append(f"events_total rejected by reason {got} != dead letters {dead}")
nz = {k: v for k, v in s["alerts"].items() if v}
if nz != alerts: errs.append(f"alerts_total {nz} != alerts topic {alerts}")
if not any(k.startswith("unknown/rejected/invalid_json") for k in s["events_by"]):
    errs.append("no invalid_json under type unknown")
if not any(k.startswith("usage/applied/") for k in s["events_by"]):
    errs.append("no applied usage")
for e in errs: print("it_metrics:", e, file=sys.stderr)
sys.exit(1 if errs else 0)
PYEOF

"$B/creditctl" --db "$T/store" stats > "$T/stats.txt"
st() { awk -v k="$1" '$1 == k {print $2}' "$T/stats.txt"; }
check "store_events == the store's counters ($(st applied) applied, $(st duplicates) duplicates, $(st rejected) rejected)" \
    test "$(jget "$M1" "[s['store_events'][k] for k in ('applied', 'duplicate', 'rejected')]")" = "[$(st applied), $(st duplicates), $(st rejected)]"
wait_metrics "s['gauges'].get('creditd_store_remembered_keys') == $(st remembered_keys)" 30
check "store_remembered_keys == creditctl's remembered_keys ($(st remembered_keys)), refreshed within seconds" test $? = 0
check "lag 0 on all $PARTS partitions, $PARTS assigned, store open" \
    test "$(jget "$M1" "(s['lag'], s['gauges']['creditd_partitions_assigned'], s['gauges']['creditd_store_open'])")" = "({'0': 0, '1': 0, '2': 0, '3': 0}, 4.0, 1.0)"
check "histograms observed: batch commits and event-to-delivery, nothing untracked" \
    test "$(jget "$M1" "s['histograms']['creditd_batch_commit_seconds'] > 0 and s['histograms']['creditd_event_to_delivery_seconds'] > 0")" = True \
         -a "$(grep -c '^creditd_event_to_delivery_untracked_total 0$' "$T/scrape.1.txt")" = 1
now=$(date +%s)
check "last commit timestamp within the run" \
    test "$(jget "$M1" "$((now - SECONDS + t0 - 5)) <= s['gauges']['creditd_last_commit_timestamp_seconds'] <= $((now + 1))")" = True
r=$(readyz)
check "readyz 200 when caught up ($r)" test "${r%% *}" = 200

rc=0; stop_creditd "$pid" 60 || rc=$?; pid=""
check "creditd exits 0 on SIGTERM" test "$rc" = 0

# ---- 2. restart: process counters from 0, the store's counters kept ---------------------------
start_creditd 100 "$T/creditd.2.log"
wait_metrics "s['gauges'].get('creditd_ready') == 1" 60
check "restarted creditd is ready" test $? = 0
M2=$(cat "$T/last.json")
check "after a restart events_total starts from 0 and store_events keeps $(jget "$M1" "s['store_events']")" \
    test "$(jget "$M2" "sum(s['events'].values()) == 0 and s['store_events'] == $(jget "$M1" "s['store_events']")")" = True
rc=0; stop_creditd "$pid" 60 || rc=$?; pid=""

# ---- 3. readiness under lag: 503 naming the lag, then 200 --------------------------------------
"$B/gen-events" --orgs 200 --events 20000 --seed 8 --out "$T/burst.jsonl" 2>/dev/null \
    || { bad "gen-events"; exit 1; }
"$B/credit-produce" -b "$BS" -t credit.events "$T/burst.jsonl" 2>"$T/produce.log"
check "20,000 events produced while creditd is stopped" test $? = 0
# Small batches: catching up takes a while, so the lagging state can be seen.
start_creditd 100 "$T/creditd.3.log" -X batch.max_messages=20
saw503="" deadline=$((SECONDS + 120))
while ((SECONDS < deadline)) && alive "$pid"; do
    r=$(readyz)
    if [[ "$r" == 503*"lag"*">="*"100"* && "$r" != *"not known"* ]]; then saw503=$r; break; fi
    [[ "${r%% *}" == 200 ]] && break
    sleep 0.05
done
check "readyz 503 naming the lag while catching up (${saw503:-never seen; last: $r})" test -n "$saw503"
wait_metrics "s['gauges']['creditd_ready'] == 1 and set(s['lag'].values()) == {0} and len(s['lag']) == $PARTS" 300
check "ready again once caught up: every partition's lag 0" test $? = 0
r=$(readyz)
check "readyz 200 again ($r)" test "${r%% *}" = 200
check "events_total counts the burst ($(jget "$(cat "$T/last.json")" "sum(s['events'].values())") >= 20000)" \
    test "$(jget "$(cat "$T/last.json")" "sum(s['events'].values()) >= 20000")" = True
rc=0; stop_creditd "$pid" 60 || rc=$?; pid=""
check "creditd exits 0 on SIGTERM" test "$rc" = 0
