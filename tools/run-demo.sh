#!/usr/bin/env bash
# creditd demo on the embedded broker (make run), and the event feeder the
# Kafka tests share.
#
#   tools/run-demo.sh [FILE...]
#       Start build/creditd with a fresh store in build/run-store on its
#       embedded broker, with its HTTP API on a free loopback port (prints
#       the URLs), feed FILE... (default examples/timeline.jsonl), wait
#       until every message is applied, show the balances, one organisation
#       through GET /v1/orgs/ORG and the overage events, then stop creditd
#       with SIGTERM. Exit 0 when all went well.
#       $CREDITD_ARGS: extra creditd options (e.g. "-X outbox.max_pending=2").
#       $HTTP_LISTEN: http.listen (default 127.0.0.1:0, a port the kernel picks).
#   tools/run-demo.sh feed BOOTSTRAP TOPIC FILE...
#       Produce JSON Lines events with kcat the way a real producer must:
#       keyed by data.org with the murmur2 partitioner; a clock.tick is sent
#       to every partition, each copy with its own id (ID/pPARTITION).
#       Prints the number of messages produced.
#   tools/run-demo.sh count TOPIC_PARTITIONS FILE...
#       The number of messages `feed` produces for FILE... on a topic with
#       TOPIC_PARTITIONS partitions.
set -euo pipefail

B=${B:-build}
START_TIMEOUT=${START_TIMEOUT:-30}   # seconds for creditd to print its broker
APPLY_TIMEOUT=${APPLY_TIMEOUT:-60}   # seconds for the events to be applied
TAB=$(printf '\t')

die() { echo "run-demo: $*" >&2; exit 1; }

kcat_p() { # BOOTSTRAP TOPIC [kcat args...]: produce stdin, reliably and in order
    local bs=$1 topic=$2
    shift 2
    timeout 60 kcat -P -b "$bs" -t "$topic" -X partitioner=murmur2_random -X acks=all \
        -X enable.idempotence=true -X compression.type=none "$@"
}

partitions_of() { # BOOTSTRAP TOPIC
    timeout 30 kcat -L -b "$1" -t "$2" | sed -n 's/.* with \([0-9]*\) partitions.*/\1/p' | head -n1
}

count_msgs() { # PARTITIONS FILE...
    local np=$1
    shift
    cat "$@" | jq -c -s --argjson np "$np" \
        '[.[] | if .type == "clock.tick" then $np else 1 end] | add // 0'
}

feed() { # BOOTSTRAP TOPIC FILE...
    local bs=$1 topic=$2 np seg n=0 line type org
    shift 2
    np=$(partitions_of "$bs" "$topic")
    [[ -n "$np" && "$np" -gt 0 ]] || die "topic $topic: no partitions at $bs"
    seg=$(mktemp)
    flush() {
        if [[ -s "$seg" ]]; then kcat_p "$bs" "$topic" -K "$TAB" < "$seg"; fi
        : > "$seg"
    }
    while IFS= read -r line || [[ -n "$line" ]]; do
        [[ -z "$line" ]] && continue
        type=$(jq -r '.type? // empty' <<<"$line" 2>/dev/null || true)
        if [[ "$type" == clock.tick ]]; then
            flush
            for ((p = 0; p < np; p++)); do
                jq -c --arg s "/p$p" '.id += $s' <<<"$line" | kcat_p "$bs" "$topic" -p "$p"
                n=$((n + 1))
            done
        else
            org=$(jq -r '.data.org? // empty' <<<"$line" 2>/dev/null || true)
            printf '%s%s%s\n' "$org" "$TAB" "$line" >> "$seg"
            n=$((n + 1))
        fi
    done < <(cat "$@")
    flush
    rm -f "$seg"
    echo "$n"
}

http_get() { # URL: the body (exit 1 unless 200)
    python3 - "$1" <<'PY'
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=10) as r:
    sys.stdout.write(r.read().decode())
PY
}

counter() { # STORE NAME: a counter from creditctl stats
    "$B/creditctl" --db "$1" stats 2>/dev/null | awk -v k="$2" '$1 == k {print $2}'
}

applied_total() { # STORE
    local a d r
    a=$(counter "$1" applied); d=$(counter "$1" duplicates); r=$(counter "$1" rejected)
    echo $(( ${a:-0} + ${d:-0} + ${r:-0} ))
}

demo() {
    local store=$B/run-store fifo pid addr="" url="" line want got rc org
    local files=("$@")
    ((${#files[@]})) || files=(examples/timeline.jsonl)
    rm -rf "$store"
    fifo=$(mktemp -u "${TMPDIR:-/tmp}/creditd-demo.XXXXXX")
    mkfifo "$fifo"
    # shellcheck disable=SC2086 # CREDITD_ARGS: extra options, word-split on purpose
    "$B/creditd" --db "$store" -X stats.interval_ms=2000 -X "http.listen=${HTTP_LISTEN:-127.0.0.1:0}" \
        ${CREDITD_ARGS:-} > "$fifo" &
    pid=$!
    trap 'kill -TERM $pid 2>/dev/null || true; rm -f "$fifo"' EXIT
    exec 3< "$fifo"
    local deadline=$((SECONDS + START_TIMEOUT))
    while ((SECONDS < deadline)) && read -r -t $((deadline - SECONDS + 1)) line <&3; do
        [[ "$line" == "creditd: embedded broker at "* ]] && addr=${line#creditd: embedded broker at }
        [[ "$line" == "creditd: http listening on "* ]] && url=${line#creditd: http listening on }
        [[ -n "$addr" && -n "$url" ]] && break
    done
    [[ -n "$addr" ]] || die "creditd did not report its embedded broker within ${START_TIMEOUT}s"
    [[ -n "$url" ]] || die "creditd did not report its HTTP address within ${START_TIMEOUT}s"
    echo "run-demo: creditd (pid $pid) on embedded broker $addr"
    echo "run-demo: HTTP API at $url: metrics $url/metrics, health $url/healthz, readiness $url/readyz"
    want=$(feed "$addr" credit.events "${files[@]}")
    echo "run-demo: produced $want messages from ${files[*]}"
    deadline=$((SECONDS + APPLY_TIMEOUT))
    while got=$(applied_total "$store"); ((got < want)); do
        ((SECONDS < deadline)) || die "only $got of $want messages applied after ${APPLY_TIMEOUT}s"
        kill -0 "$pid" 2>/dev/null || die "creditd exited"
        sleep 0.2
    done
    while [[ "$(counter "$store" outbox)" != 0 ]]; do
        ((SECONDS < deadline)) || die "outbox not delivered after ${APPLY_TIMEOUT}s"
        sleep 0.2
    done
    echo "run-demo: $got messages applied (applied + duplicates + rejected); balances:"
    "$B/creditctl" --db "$store" balances
    org=$("$B/creditctl" --db "$store" balances --json | head -n1 | jq -r .org)
    if [[ -n "$org" ]]; then
        echo "run-demo: GET $url/v1/orgs/$org (the same bytes as creditctl show $org --json):"
        http_get "$url/v1/orgs/$org" > "$store.org.json" || die "GET $url/v1/orgs/$org failed"
        cat "$store.org.json"
        "$B/creditctl" --db "$store" show "$org" --json | cmp -s - "$store.org.json" \
            || die "GET /v1/orgs/$org differs from creditctl show $org --json"
        rm -f "$store.org.json"
    fi
    echo "run-demo: overage events (credit.overage):"
    timeout 30 kcat -C -b "$addr" -t credit.overage -e -q -f '%k [%p] %s\n'
    kill -TERM "$pid"
    rc=0
    wait "$pid" || rc=$?
    trap - EXIT
    exec 3<&-
    rm -f "$fifo"
    [[ $rc == 0 ]] || die "creditd exited with $rc after SIGTERM"
    echo "run-demo: creditd stopped cleanly (exit 0)"
}

case "${1:-}" in
    feed) shift; (($# >= 3)) || die "usage: run-demo.sh feed BOOTSTRAP TOPIC FILE..."; feed "$@" ;;
    count) shift; (($# >= 2)) || die "usage: run-demo.sh count PARTITIONS FILE..."; count_msgs "$@" ;;
    -h|--help) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
    *) demo "$@" ;;
esac
