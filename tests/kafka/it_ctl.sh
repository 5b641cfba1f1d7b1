#!/usr/bin/env bash
# Integration test of creditctl's staff and owner commands against a real
# Kafka 4 broker (tests/kafka/broker.sh) and creditd:
#
# 1. creditctl grant (--force, -b) and allocate print the event id once
#    delivered; the messages are keyed by org, on one partition; for ten keys
#    creditctl (--topic) picks the partition credit-produce picks (which
#    it_tools.sh checks against Java's murmur2).
# 2. creditd applies them: creditctl balances shows org 100, project 40.
# 3. A grant with if_value read from --db (kafka.bootstrap.servers from
#    --config) applies; a stale one (if_value of an older balance) is
#    rejected value_changed on credit.rejected.
# 4. --wait prints "applied" and the event's ledger entries, or the reject
#    reason; a lost update shows value_changed and the current balance.
# 5. Every command (grant, adjust + and -, grant with if_value, a stale
#    grant, grant --force, allocate, an allocate over the credit, deallocate,
#    terminate, a usage through credit-produce and its void, the void of an
#    overage-only usage, revoke) with --wait: outcome, ledger entries,
#    balances and outputs (tests/kafka/ctl_seq.sh, which
#    tests/scenarios/ctl_embedded.sh runs on the embedded broker).
# Needs make build/creditd build/creditctl build/credit-produce; kcat, jq.
# Closing line: "it_ctl: N passed, N failed".
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
B=build
BROKER=tests/kafka/broker.sh
T=$(mktemp -d "${TMPDIR:-/tmp}/it_ctl.XXXXXX")
pass=0 fail=0 pid=""

ok() { pass=$((pass + 1)); echo "it_ctl: ok: $*" >&2; }
bad() { fail=$((fail + 1)); echo "it_ctl: FAIL: $*" >&2; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

finish() {
    [[ -n "$pid" ]] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    bash "$BROKER" stop "$T/kafka" >/dev/null 2>&1 || true
    if ((fail)); then echo "it_ctl: kept $T for inspection" >&2; else rm -rf "$T"; fi
    echo "it_ctl: $pass passed, $fail failed"
    if ((fail)); then exit 1; fi
    exit 0
}
trap finish EXIT

ctl() { timeout 60 "$B/creditctl" "$@"; }
# wait_for SECONDS CMD...: poll CMD every 0.2 s until it succeeds.
wait_for() {
    local deadline=$((SECONDS + $1)); shift
    until "$@"; do ((SECONDS < deadline)) || return 1; sleep 0.2; done
}
bal_is() { # JQ WANT: a value of creditctl balances --json
    [[ "$(ctl --db "$T/store" balances --json 2>/dev/null | jq -rs "$1")" == "$2" ]]
}
rejected_has() { # EVENT_ID REASON
    timeout 30 kcat -C -q -b "$BS" -t credit.rejected -e -o beginning -f '%s\n' 2>/dev/null |
        jq -e --arg id "$1" --arg r "$2" 'select(.data.event_id == $id and .data.reason == $r)' >/dev/null
}

for tool in creditd creditctl credit-produce; do
    [[ -x "$B/$tool" ]] || { bad "$B/$tool missing (make $B/$tool)"; exit 1; }
done
BS=$(bash "$BROKER" start "$T/kafka") || { bad "broker start"; exit 1; }
for tp in credit.events:4 credit.overage:3 credit.ledger:3 credit.rejected:1 credit.alerts:3; do
    bash "$BROKER" create-topic "$T/kafka" "${tp%%:*}" "${tp##*:}" >/dev/null || bad "create topic $tp"
done
"$B/creditd" -X "bootstrap.servers=$BS" --db "$T/store" -X stats.interval_ms=500 \
    >/dev/null 2>>"$T/creditd.log" &
pid=$!

# ---- 1. grant and allocate through Kafka ----------------------------------
id1=$(ctl grant o1 --value 100 --force -b "$BS" 2>"$T/g.err")
check "grant exits 0 and prints a UUID" grep -Eqx '[0-9a-f-]{36}' <<<"$id1"
id2=$(ctl allocate o1 p1 --value 40 -b "$BS" -X linger.ms=0 2>"$T/a.err")
check "allocate exits 0 and prints a UUID" grep -Eqx '[0-9a-f-]{36}' <<<"$id2"
msgs() { timeout 30 kcat -C -q -b "$BS" -t credit.events -e -o beginning -f '%k %p %s\n' 2>/dev/null; }
wait_for 30 bash -c "[[ \$(timeout 30 kcat -C -q -b '$BS' -t credit.events -e -o beginning -f '%k\n' 2>/dev/null | grep -c .) -ge 2 ]]"
msgs > "$T/msgs"
check "both events keyed o1" test "$(awk '{print $1}' "$T/msgs" | sort -u)" = o1
check "both on one partition" test "$(awk '{print $2}' "$T/msgs" | sort -u | wc -l)" = 1
check "grant event id on the topic" grep -q "\"id\":\"$id1\"" "$T/msgs"
check "allocate event id on the topic" grep -q "\"id\":\"$id2\"" "$T/msgs"

bash "$BROKER" create-topic "$T/kafka" ctl.check 4 >/dev/null || bad "create topic ctl.check"
keys=(o1 o2 o4 org-17 acme a-little-bit-longer-string x yz 12345 zz-top)
for k in "${keys[@]}"; do
    ctl revoke "$k" --topic ctl.check -b "$BS" >/dev/null 2>>"$T/keys.err" || bad "creditctl revoke $k"
    printf '{"data":{"org":"%s"},"via":"produce"}\n' "$k" | "$B/credit-produce" -b "$BS" -t ctl.check - 2>>"$T/keys.err" || bad "credit-produce $k"
done
keys_seen() { timeout 30 kcat -C -q -b "$BS" -t ctl.check -e -o beginning -f '%k %p\n' 2>/dev/null | sort -u; }
wait_for 30 bash -c "[[ \$(timeout 30 kcat -C -q -b '$BS' -t ctl.check -e -o beginning -f '%k\n' 2>/dev/null | grep -c .) -ge 20 ]]"
check "ten keys: creditctl and credit-produce on the same partitions" test "$(keys_seen | wc -l)" -eq 10

# ---- 2. applied by creditd ------------------------------------------------
check "creditd: org value 100, free 60" wait_for 60 bal_is '.[0].value + " " + .[0].free' "100.000000 60.000000"
check "creditd: project p1 40" wait_for 30 bal_is '.[1].project + " " + .[1].value' "p1 40.000000"

# ---- 3. if_value from --db, bootstrap from --config; a stale grant --------
printf 'kafka.bootstrap.servers = %s\n' "$BS" > "$T/c.conf"
ctl --db "$T/store" grant o1 --value 150 --dry-run > "$T/stale.json"
id3=$(ctl --config "$T/c.conf" --db "$T/store" grant o1 --value 120 2>"$T/g3.err")
check "grant with if_value exits 0" test -n "$id3"
check "creditd: org value 120" wait_for 60 bal_is '.[0].value' "120.000000"
stale_id=$(jq -r .id "$T/stale.json")
check "stale event carries if_value 100" test "$(jq -r .data.if_value "$T/stale.json")" = 100.000000
# The stale event, sent as built before the 120 grant (same id, same if_value).
ctl --config "$T/c.conf" --db "$T/store" grant o1 --value 150 --if-value 100 --id "$stale_id" >/dev/null 2>"$T/g4.err"
check "stale grant rejected value_changed" wait_for 60 rejected_has "$stale_id" value_changed
check "balance still 120" bal_is '.[0].value' "120.000000"
# ---- 4. --wait: the outcome read back from the output topics --------------
ctl --config "$T/c.conf" --db "$T/store" adjust o1 --delta 5 --wait 60 >"$T/w1.out" 2>"$T/w1.err"; rc=$?
check "adjust --wait exits 0 (got $rc)" test "$rc" -eq 0
check "adjust --wait: id, then applied" test "$(sed -n 2p "$T/w1.out")" = applied
check "adjust --wait: its staff_grant ledger entry" test "$(sed -n 3p "$T/w1.out" | jq -r --arg id "$(head -1 "$T/w1.out")" \
    'select(.data.event_id == $id) | [.data.entry, .data.delta, .data.balance] | join(" ")')" = "staff_grant 5.000000 125.000000"
ctl --config "$T/c.conf" --db "$T/store" grant o1 --value 1 --if-value 7 --wait 60 >"$T/w2.out" 2>"$T/w2.err"; rc=$?
check "lost update --wait exits 3 (got $rc)" test "$rc" -eq 3
check "lost update --wait: value_changed" grep -q '^rejected value_changed: ' "$T/w2.out"
check "lost update --wait: current balance" grep -qx 'current balance: 125.000000' "$T/w2.out"
check "balance still 125" bal_is '.[0].value' "125.000000"
ctl --config "$T/c.conf" --id "$(head -1 "$T/w1.out")" --db "$T/store" adjust o1 --delta 6 --wait 30 >/dev/null 2>"$T/w3.err"; rc=$?
check "different content under a used id: rejected id_conflict (got $rc)" test "$rc" -eq 3

# A retry as documented: same --id, --time and flags is a duplicate (no new
# outcome: --wait ends with exit 4), applied once.
rt=$(date -u +%Y-%m-%dT%H:%M:%SZ)
ctl --config "$T/c.conf" --id retry-1 --time "$rt" adjust o1 --delta 2 --wait 60 >"$T/r1.out" 2>"$T/r1.err"; rc=$?
check "adjust with --id and --time: applied (got $rc)" test "$rc" -eq 0
check "creditd: org value 127" bal_is '.[0].value' "127.000000"
ctl --config "$T/c.conf" --id retry-1 --time "$rt" adjust o1 --delta 2 --wait 5 >"$T/r2.out" 2>"$T/r2.err"; rc=$?
check "the retry: no outcome, exit 4 (got $rc)" test "$rc" -eq 4
ctl --config "$T/c.conf" --db "$T/store" adjust o1 --delta 1 --wait 60 >/dev/null 2>"$T/r3.err"; rc=$?
check "an adjust after the retry: applied (got $rc)" test "$rc" -eq 0
check "the retry was a duplicate: org value 128" bal_is '.[0].value' "128.000000"

# ---- 5. every command with --wait -----------------------------------------
. tests/kafka/ctl_seq.sh
STORE=$T/store
CS_ARGS=(-b "$BS" --db "$STORE")
CS_STAFF=staff/creditctl
CS_OWNER=owners/creditctl
ctl_sequence s1 s2

timeout 60 "$B/creditctl" revoke o1 -b 127.0.0.1:1 >"$T/nok.out" 2>"$T/nok.err"; rc=$?
check "no broker: exit 2 (got $rc)" test "$rc" -eq 2
check "no broker: no id printed" test ! -s "$T/nok.out"
