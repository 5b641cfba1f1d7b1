#!/usr/bin/env bash
# Every creditctl staff and owner command end to end on creditd's embedded
# broker (librdkafka's mock cluster, started when kafka.bootstrap.servers is
# not configured), no JVM:
#
# 1. build/creditd starts with a fresh store and a config file that sets the
#    sources allow-lists and creditctl.source_*; it prints "creditd: embedded
#    broker at HOST:PORT" (waited for, bounded).
# 2. creditctl, with --config (that file plus kafka.bootstrap.servers = the
#    printed address) and --db, runs tests/kafka/ctl_seq.sh's sequence: every
#    command with --wait, its outcome, ledger entries and the balances read
#    back (see there); the staff and owner sources are the config's.
# 3. creditd stops on SIGTERM with exit 0.
# Run from the repository root after `make all`.  Needs jq and kcat.
# Prints "ctl_embedded: N passed, N failed" and exits non-zero on any failure.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
B=${B:-build}
NAME=ctl_embedded
T=$(mktemp -d "${TMPDIR:-/tmp}/ctl-embedded.XXXXXX")
STORE=$T/store
pass=0 fail=0 pid="" t0=$SECONDS
# shellcheck source=../kafka/lib.sh
. tests/kafka/lib.sh        # ok, bad, check, stop_creditd
# shellcheck source=../kafka/ctl_seq.sh
. tests/kafka/ctl_seq.sh

done_() {
    if [[ -n "$pid" ]] && running "$pid"; then kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; fi
    if ((fail)); then echo "$NAME: kept $T for inspection" >&2; else rm -rf "$T"; fi
    echo "$NAME: $pass passed, $fail failed"
    ((fail == 0))
}
trap 'done_; exit $?' EXIT

for tool in creditd creditctl credit-produce; do
    [[ -x "$B/$tool" ]] || { bad "$B/$tool missing (make all)"; exit 1; }
done
for tool in jq kcat; do
    command -v "$tool" >/dev/null || { bad "$tool missing"; exit 1; }
done

cat >"$T/creditd.conf" <<EOF
store.path = $STORE
stats.interval_ms = 0
sources.grant = staff/embedded
sources.allocate = owners/embedded
sources.usage = mk/usage, staff/embedded
creditctl.source_staff = staff/embedded
creditctl.source_owner = owners/embedded
EOF
"$B/creditd" --config "$T/creditd.conf" >"$T/creditd.out" 2>"$T/creditd.log" &
pid=$!
embedded_at() { sed -n 's/^creditd: embedded broker at //p' "$T/creditd.out"; }
has_broker() { [[ -n "$(embedded_at)" ]] || ! running "$pid"; }
cs_wait_for 60 has_broker
BS=$(embedded_at)
check "creditd prints its embedded broker ($BS)" test -n "$BS" || exit 1
{ cat "$T/creditd.conf"; printf 'kafka.bootstrap.servers = %s\n' "$BS"; } >"$T/ctl.conf"

CS_ARGS=(--config "$T/ctl.conf" --db "$STORE")
CS_STAFF=staff/embedded CS_OWNER=owners/embedded
ctl_sequence o1 o2
check "nothing rejected source_not_allowed" test -z "$(cs_topic credit.rejected '.data.reason == "source_not_allowed"')"

rc=0
stop_creditd "$pid" 60 || rc=$?
pid=""
check "creditd exits 0 on SIGTERM (got $rc)" test "$rc" = 0
note "done"
