#!/usr/bin/env bash
# creditd on a secured Kafka 4 broker (tests/kafka/broker.sh start-secure):
# a SASL_SSL listener (SCRAM-SHA-512 for creditd and the tools, built with
# librdkafka 2.12.1; PLAIN for the test's kcat and python peers, whose
# Debian librdkafka 2.0.2 cannot do SCRAM with Kafka 4, see broker.sh), certificates made now with openssl, the
# StandardAuthorizer denying what no ACL allows, and exactly the ACLs
# tools/kafka-acls.sh applies for each principal.
#
#   tests/kafka/it_secure.sh
#
# Environment (all optional): IT_SECURE_SEED (kill schedule and gen-events),
# IT_SECURE_EVENTS (default 30000), IT_SECURE_ORGS (300), IT_SECURE_KILLS (3).
#
# Principals: creditd, pipeline (credit-produce), clock (credit-tick), staff
# (creditctl), auditor (credit-replay --from-kafka); admin is the super user
# that creates topics and ACLs (Kafka's own kafka-acls, over SCRAM-SHA-512).
# 1. The ACLs: tools/kafka-acls.sh --add for every role (credit.* topics, and
#    crash.* for creditd, pipeline and clock); the broker then lists exactly
#    the ACLs of tools/kafka-acls.sh --print, nothing more.
# 2. Crash: a generated stream on crash.* (credit-produce as pipeline,
#    credit-tick as clock) while creditd (as creditd) is SIGKILLed KILLS
#    times mid-stream (each with work left: messages or outbox entries),
#    restarting with a read-back of its outputs; a last run finishes: every message applied once,
#    balances byte-identical to credit-replay, the output topics hold exactly
#    credit-replay's outputs with no id twice, group offsets at the end.
# 3. The examples (examples/timeline.jsonl) on credit.*, plus a creditctl
#    adjust --wait as staff: balances and outputs equal credit-replay's;
#    credit-replay --from-kafka as auditor equals the live store.
# 4. The usage pipeline's principal cannot read any output topic (Kafka's
#    console consumer: TopicAuthorizationException, 0 messages) nor commit
#    the creditd group (kafka-consumer-groups --reset-offsets:
#    GroupAuthorizationException), and the group's offsets stay as they were.
# 5. Failures (three new events wait on credit.events): a wrong password, an
#    unknown user, a CA that did not sign the broker's certificate, the
#    creditd principal's Read on credit.events removed, its Read on group
#    creditd removed, all its ACLs on credit.alerts removed: each time creditd
#    exits 2 within 60 s with one fatal line naming the cause, and the store
#    is untouched (stats, balances, outbox).  With a librdkafka before 2.6.1,
#    SCRAM-SHA-512 with the right password too, naming librdkafka#4895.  Then its Write on credit.ledger
#    removed: the new events are applied, the ledger entry fails delivery,
#    creditd exits 2 naming topic, principal and Write; the outbox keeps the
#    entry.  Every ACL restored, a restart delivers every output exactly once
#    (the topics equal credit-replay of all the events, no id twice).
# Needs make all build/gen-events; java, openssl, kcat, jq, python3-confluent-kafka.
# Closing line: "it_secure: N passed, N failed".
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
B=build
BROKER=tests/kafka/broker.sh
NAME=it_secure
T=$(mktemp -d "${TMPDIR:-/tmp}/$NAME.XXXXXX")
PARTS=4
EVENTS=${IT_SECURE_EVENTS:-30000}
ORGS=${IT_SECURE_ORGS:-300}
KILLS=${IT_SECURE_KILLS:-3}
SEED=${IT_SECURE_SEED:-$(( ${SRANDOM:-$$} % 1000000 + 1 ))}
RANDOM=$SEED
pass=0 fail=0 pid="" prod_pid="" ref_pid="" t0=$SECONDS
trap finish EXIT

now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

# ---- broker, users, topics -------------------------------------------------------
declare -A PW
uargs=()
for u in creditd pipeline clock staff auditor; do
    PW[$u]=$(/usr/bin/python3 -c 'import secrets; print(secrets.token_urlsafe(12))')
    uargs+=(--user "$u:${PW[$u]}")
done
BS=$("$BROKER" start-secure "$T/kafka" "${uargs[@]}") || { bad "secure broker start"; exit 1; }
K=$T/kafka
CA=$K/tls/ca.pem
# creditd and our tools: SCRAM-SHA-512 with the librdkafka they are built with
# (tools/librdkafka.sh: 2.12.1) once it has the fix of librdkafka#4895 (2.6.1),
# else PLAIN.  The test's own peers (kcat, python3-confluent-kafka: Debian's
# librdkafka) log in as admin with what theirs can do ($K/mechanism, PLAIN on
# Debian 12), through $K/admin.librdkafka.
RDK_VER=$("$B/creditd" --version | sed -n 's/.*(librdkafka \([0-9.]*\)).*/\1/p')
[[ -n "$RDK_VER" ]] || { bad "creditd --version names no librdkafka"; exit 1; }
if [[ "$(printf '%s\n2.6.1\n' "$RDK_VER" | sort -V | head -1)" == 2.6.1 ]]; then MECH=SCRAM-SHA-512; else MECH=PLAIN; fi
KCAT_CONF=$K/admin.librdkafka   # lib.sh: the test's own reads, as admin
note "secured broker at $BS (SASL_SSL; creditd and the tools (librdkafka $RDK_VER) use $MECH," \
     "kcat and python (librdkafka $(/usr/bin/python3 -c 'import confluent_kafka as c; print(c.libversion()[0])')) $(cat "$K/mechanism")"
for tp in credit.events:4:retention.ms=-1 credit.overage:3: credit.ledger:3:retention.ms=-1 \
          credit.rejected:1: credit.alerts:3:retention.ms=-1 crash.events:4:retention.ms=-1 \
          crash.overage:3: crash.ledger:3:retention.ms=-1 crash.rejected:1: crash.alerts:3:retention.ms=-1; do
    IFS=: read -r name np cfg <<<"$tp"
    "$BROKER" create-topic "$K" "$name" "$np" ${cfg:+"$cfg"} >/dev/null || { bad "create topic $name"; exit 1; }
done

# X: the -X arguments of a librdkafka client logging in as USER
# (PASSWORD and CA default to the right ones).
creds() { # USER [PASSWORD [CA]]
    X=(-X security.protocol=SASL_SSL -X "sasl.mechanisms=$MECH" -X "ssl.ca.location=${3:-$CA}"
       -X "sasl.username=$1" -X "sasl.password=${2:-${PW[$1]:-none}}")
}
# A Java client's properties file for USER (Kafka's own tools), over SCRAM.
java_props() { # USER FILE
    (umask 077; cat > "$2" <<EOF
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$1" password="${PW[$1]}";
ssl.truststore.type=PEM
ssl.truststore.location=$CA
EOF
)
}
acl_tool() { "$BROKER" kafka-acls --bootstrap-server "$BS" --command-config "$K/admin.properties" "$@"; }

# ---- 1. the documented ACLs, exactly ------------------------------------------------
ROLES=(creditd=creditd pipeline=pipeline clock=clock ctl=staff auditor=auditor)
CRASH_X=(-X topic.input=crash.events -X topic.overage=crash.overage -X topic.ledger=crash.ledger
         -X topic.rejected=crash.rejected -X output.alerts=crash.alerts)
CRASH_ROLES=(creditd=creditd pipeline=pipeline clock=clock)
export KAFKA_ACLS="$ROOT/$BROKER kafka-acls"
check "tools/kafka-acls.sh --add: every role on credit.*" tools/kafka-acls.sh --add --bootstrap-server "$BS" \
    --command-config "$K/admin.properties" "${ROLES[@]}" 2>"$T/acls.log"
check "tools/kafka-acls.sh --add: creditd, pipeline, clock on crash.*" tools/kafka-acls.sh --add \
    --bootstrap-server "$BS" --command-config "$K/admin.properties" "${CRASH_X[@]}" "${CRASH_ROLES[@]}" 2>>"$T/acls.log"
{ tools/kafka-acls.sh --print "${ROLES[@]}"; tools/kafka-acls.sh --print "${CRASH_X[@]}" "${CRASH_ROLES[@]}"; } \
    | LC_ALL=C sort -u > "$T/acls.want"
# kafka-acls --list, one "principal operation type name pattern" line per ACL.
acl_tool --list 2>/dev/null | awk '
    /Current ACLs for resource/ {
        match($0, /resourceType=[A-Z_]+/); type = tolower(substr($0, RSTART + 13, RLENGTH - 13))
        match($0, /name=[^,]+/); name = substr($0, RSTART + 5, RLENGTH - 5)
        match($0, /patternType=[A-Z]+/); pat = substr($0, RSTART + 12, RLENGTH - 12) }
    /principal=/ {
        match($0, /principal=[^,]+/); p = substr($0, RSTART + 10, RLENGTH - 10)
        match($0, /operation=[A-Z_]+/); op = substr($0, RSTART + 10, RLENGTH - 10)
        match($0, /permissionType=[A-Z]+/); perm = substr($0, RSTART + 15, RLENGTH - 15)
        print p, substr(op, 1, 1) tolower(substr(op, 2)), type, name, pat, perm }' \
    | LC_ALL=C sort > "$T/acls.have"
sed 's/$/ ALLOW/' "$T/acls.want" > "$T/acls.want.allow"
check "the broker holds exactly the documented ACLs ($(wc -l < "$T/acls.have") of them)" \
    cmp -s "$T/acls.want.allow" "$T/acls.have"

# ---- 2. crash test over SASL_SSL ---------------------------------------------------------
creds creditd; CREDITD_X=("${X[@]}")
start_creditd() { # STORE LOG [creditd args...]
    local store=$1 log=$2
    shift 2
    "$B/creditd" -X "bootstrap.servers=$BS" "${CREDITD_X[@]}" --db "$store" -X stats.interval_ms=1000 \
        "$@" >/dev/null 2>>"$log" &
    pid=$!
}
# STORE has seen WANT messages (and, with drain, an empty outbox), creditd alive.
wait_store() { # STORE WANT SECONDS [drain]
    local deadline=$((SECONDS + $3))
    while :; do
        read_stats "$1"
        ((SEEN >= $2)) && { [[ "${4:-}" != drain ]] || ((OUTBOX == 0)); } && return 0
        alive "$pid" || { echo "$NAME: creditd exited by itself (seen $SEEN of $2)" >&2; return 1; }
        ((SECONDS < deadline)) || { echo "$NAME: timeout: seen $SEEN of $2, outbox $OUTBOX" >&2; return 1; }
        sleep 0.05
    done
}

note "seed $SEED: $EVENTS events, $ORGS organisations, $KILLS kills"
prepare_stream "$EVENTS" "$ORGS"
start_replay
creds pipeline; PRODUCE_X=("${X[@]}")
creds clock; TICK_X=("${X[@]}")
produce_all "$T" crash.events > "$T/produce.log" 2>&1 &
prod_pid=$!
kills=0 mid=0
for ((k = 1; k <= KILLS; k++)); do
    read_stats "$T/crash"
    s0=$SEEN
    # The k-th kill lands past k/(KILLS+1) of the stream (plus up to a
    # quarter of a share), 0-29 ms after the store got there: small batches
    # keep creditd from finishing the stream in between.
    target=$(( want * k / (KILLS + 1) + (RANDOM * 32768 + RANDOM) % (want / (4 * (KILLS + 1)) + 1) ))
    ((target > s0)) || target=$((s0 + 1))
    start_creditd "$T/crash" "$T/crash.log" "${CRASH_X[@]}" -X batch.max_messages=$((RANDOM % 2 ? 200 : 1000))
    wait_store "$T/crash" "$target" 120 || { bad "kill $k: no progress"; tail -n 20 "$T/crash.log" >&2; break; }
    sleep "0.$(printf '%03d' $((RANDOM % 30)))"
    alive "$pid" || { bad "kill $k: creditd exited by itself"; tail -n 20 "$T/crash.log" >&2; break; }
    kill -KILL "$pid"; wait "$pid" 2>/dev/null; pid=""
    kills=$((kills + 1))
    read_stats "$T/crash"
    ((SEEN < want || OUTBOX > 0)) && mid=$((mid + 1))
    note "kill $k: seen $s0 -> $SEEN of $want, outbox $OUTBOX"
done
check "$KILLS SIGKILLs over SASL_SSL, $mid of them with work left" test "$kills" = "$KILLS" -a "$mid" = "$KILLS"
start_creditd "$T/crash" "$T/crash.log" "${CRASH_X[@]}"
prc=0; wait "$prod_pid" || prc=$?; prod_pid=""
check "producer (pipeline) and clock: all $want messages acknowledged" test "$prc" = 0
((prc == 0)) || tail -n 5 "$T/produce.log" >&2
check "last run: every message applied, outbox delivered" wait_store "$T/crash" "$want" 240 drain
rc=0; stop_creditd "$pid" || rc=$?; pid=""
check "last run: SIGTERM exit 0" test "$rc" = 0
# lib.sh's checks read $T/store: the crash store under that name.
mv "$T/crash" "$T/store"
check_store_counts
wait_replay
OUT_PREFIX=crash compare_with_replay
check "group offsets of creditd at the end of every crash.events partition" group_at_end crash.events "$PARTS" creditd

# ---- 3. the examples, creditctl as staff, credit-replay --from-kafka as auditor ----------
mkdir -p "$T/ex"
split_stream examples/timeline.jsonl "$T/ex"
ex_want=$want
produce_all "$T/ex" credit.events \
    > "$T/ex/produce.log" 2>&1 || { bad "producing the examples"; cat "$T/ex/produce.log" >&2; }
EX=$T/ex/store
start_creditd "$EX" "$T/ex/creditd.log"
check "examples: all $ex_want messages applied, outbox delivered" wait_store "$EX" "$ex_want" 120 drain
creds staff
ctl=(adjust o5 --delta 5 --id it-secure-ctl-1 --time 2026-07-10T10:00:00Z)
"$B/creditctl" -b "$BS" "${X[@]}" "${ctl[@]}" --dry-run > "$T/ex/ctl.json" 2>"$T/ex/ctl.log"
rc=0; timeout 120 "$B/creditctl" -b "$BS" "${X[@]}" "${ctl[@]}" --wait 60 > "$T/ex/ctl.out" 2>>"$T/ex/ctl.log" || rc=$?
check "creditctl adjust --wait as staff: applied (exit $rc)" eval 'test "$rc" = 0 && grep -qx applied "$T/ex/ctl.out"'
ex_want=$((ex_want + 1))
check "examples + creditctl: $ex_want messages applied, outbox delivered" wait_store "$EX" "$ex_want" 60 drain
rc=0; stop_creditd "$pid" || rc=$?; pid=""
check "examples: SIGTERM exit 0" test "$rc" = 0
cat "$T/ex/ref.jsonl" "$T/ex/ctl.json" > "$T/ex/all.jsonl"

# The credit.* topics and the store EX against credit-replay of FILE: balances,
# the overage, ledger and alerts topics (whole messages), as many dead letters,
# no output id twice.
compare_ex() { # FILE WHAT
    local kind n m
    rm -rf "$T/ex/ref" "$T/ex/ref.out"
    "$B/credit-replay" --db "$T/ex/ref" --out "$T/ex/ref.out" "$1" 2>/dev/null || bad "$2: credit-replay"
    "$B/creditctl" --db "$T/ex/ref" balances --json > "$T/ex/ref.balances"
    "$B/creditctl" --db "$EX" balances --json > "$T/ex/balances"
    check "$2: balances equal credit-replay's" cmp -s "$T/ex/ref.balances" "$T/ex/balances"
    for kind in overage:credit.overage ledger:credit.ledger alerts:credit.alert; do
        grep -F "\"type\":\"${kind#*:}\"" "$T/ex/ref.out" | norm /dev/stdin > "$T/ex/ref.${kind%%:*}"
        topic_dump "credit.${kind%%:*}" "$T/ex/${kind%%:*}.raw" || bad "reading credit.${kind%%:*}"
        norm "$T/ex/${kind%%:*}.raw" > "$T/ex/${kind%%:*}"
        check "$2: credit.${kind%%:*} == credit-replay's ($(wc -l < "$T/ex/${kind%%:*}") messages)" \
            eval 'test -s "$T/ex/${kind%%:*}" && cmp -s "$T/ex/ref.${kind%%:*}" "$T/ex/${kind%%:*}"'
        check "$2: credit.${kind%%:*}: no id twice" test -z "$(dup_ids "$T/ex/${kind%%:*}.raw")"
    done
    topic_dump credit.rejected "$T/ex/rejected.raw" || bad "reading credit.rejected"
    n=$(wc -l < "$T/ex/rejected.raw"); m=$(grep -c '"type":"credit.rejected"' "$T/ex/ref.out")
    check "$2: credit.rejected: as many dead letters as credit-replay ($n vs $m)" test "$n" = "$m"
}
compare_ex "$T/ex/all.jsonl" "examples"

creds auditor
rc=0; timeout 120 "$B/credit-replay" --db "$T/ex/audit" --from-kafka "$BS" "${X[@]}" --out "$T/ex/audit.out" \
    2>"$T/ex/audit.log" || rc=$?
check "credit-replay --from-kafka as auditor: exit 0 (exit $rc)" test "$rc" = 0
"$B/creditctl" --db "$T/ex/audit" balances --json > "$T/ex/audit.balances"
check "... its balances equal the live store's" cmp -s "$T/ex/balances" "$T/ex/audit.balances"

# ---- 4. what the pipeline's principal cannot do ---------------------------------------------
java_props pipeline "$T/pipeline.properties"
for t in credit.overage credit.ledger credit.rejected credit.alerts; do
    "$BROKER" kafka-console-consumer --bootstrap-server "$BS" --consumer.config "$T/pipeline.properties" \
        --topic "$t" --partition 0 --offset earliest --max-messages 1 --timeout-ms 20000 \
        >"$T/read.$t.out" 2>&1
    check "pipeline cannot read $t (TopicAuthorizationException, 0 messages)" \
        eval 'grep -q "TopicAuthorizationException" "$T/read.$t.out" && grep -q "Processed a total of 0 messages" "$T/read.$t.out"'
done
group_offsets() { # the creditd group's offsets, as admin
    "$BROKER" kafka-consumer-groups --bootstrap-server "$BS" --command-config "$K/admin.properties" \
        --describe --group creditd 2>/dev/null | awk '$2 ~ /^(credit|crash)\.events$/ {print $2, $3, $4}' | LC_ALL=C sort
}
group_offsets > "$T/group.before"
"$BROKER" kafka-consumer-groups --bootstrap-server "$BS" --command-config "$T/pipeline.properties" \
    --group creditd --reset-offsets --to-earliest --topic credit.events --execute >"$T/commit.out" 2>&1
check "pipeline cannot commit the creditd group (GroupAuthorizationException)" \
    grep -q GroupAuthorizationException "$T/commit.out"
group_offsets > "$T/group.after"
check "... the group's offsets are as they were ($(wc -l < "$T/group.after") partitions)" \
    eval 'test -s "$T/group.before" && cmp -s "$T/group.before" "$T/group.after"'

# ---- 5. failures: named, bounded, the store untouched; after the fix exactly once ---------
for i in 1 2 3; do
    printf '{"specversion":"1.0","id":"it-secure-late-%d","source":"staff/credits","type":"org_credit.adjust","time":"2026-07-2%dT10:00:00Z","data":{"org":"o5","delta":"%d"}}\n' \
        "$i" "$i" "$i"
done > "$T/ex/late.jsonl"
creds pipeline
"$B/credit-produce" -b "$BS" "${X[@]}" "$T/ex/late.jsonl" 2>"$T/ex/late.log" || bad "producing the late events"
snapshot() { # the store EX as creditctl shows it
    "$B/creditctl" --db "$EX" stats; "$B/creditctl" --db "$EX" balances --json; "$B/creditctl" --db "$EX" outbox
}
snapshot > "$T/ex/snap.0"
read_stats "$EX"; seen0=$SEEN

# creditd with ARGS must exit 2 within 60 s, with one fatal line matching
# PATTERN, and leave the store as it was.
fails() { # WHAT PATTERN CREDITD-ARGS...
    local what=$1 pat=$2 rc=0 t log="$T/ex/fail.$((++nfail)).log"
    shift 2
    t=$(now_ms)
    timeout 120 "$B/creditd" -X "bootstrap.servers=$BS" --db "$EX" "$@" >/dev/null 2>"$log" || rc=$?
    t=$(( $(now_ms) - t ))
    check "$what: exit 2 within 60 s (exit $rc, $t ms)" test "$rc" = 2 -a "$t" -lt 60000
    check "$what: one fatal line naming the cause" \
        eval 'test "$(grep -c "fatal:" "$log")" = 1 && grep "fatal:" "$log" | grep -q -- "$pat"'
    grep "fatal:" "$log" | sed "s/^/$NAME:   /" >&2
    snapshot > "$T/ex/snap.$nfail"
    check "$what: the store is untouched" cmp -s "$T/ex/snap.0" "$T/ex/snap.$nfail"
}
nfail=0
creds creditd wrong-password
fails "wrong password" "Kafka authentication failed (SASL $MECH, user 'creditd'" "${X[@]}"
creds nobody "${PW[creditd]}"
fails "unknown user" "Kafka authentication failed (SASL $MECH, user 'nobody'" "${X[@]}"
if [[ "$MECH" == PLAIN ]]; then  # this librdkafka cannot do SCRAM with Kafka 4 (broker.sh)
    creds creditd
    X=("${X[@]/sasl.mechanisms=PLAIN/sasl.mechanisms=SCRAM-SHA-512}")
    fails "SCRAM-SHA-512 from librdkafka $RDK_VER" \
        "cannot log in with SCRAM to Kafka 4 brokers (librdkafka#4895, fixed in 2.6.1), use sasl.mechanisms=PLAIN" \
        "${X[@]}"
fi
mkdir -p "$T/other-ca"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=another CA" \
    -keyout "$T/other-ca/ca.key" -out "$T/other-ca/ca.pem" 2>/dev/null || bad "openssl: another CA"
creds creditd "" "$T/other-ca/ca.pem"
fails "wrong CA" "Kafka TLS verification failed" "${X[@]}"

deny() { acl_tool --remove --force --allow-principal User:creditd "$@" >/dev/null 2>&1 || bad "removing ACL $*"; }
allow() { acl_tool --add --allow-principal User:creditd "$@" >/dev/null 2>&1 || bad "adding ACL $*"; }
deny --operation Read --topic credit.events
fails "no Read on the input topic" \
    "consumer: topic credit.events: not authorized: the principal 'creditd' needs Read on topic credit.events" \
    "${CREDITD_X[@]}"
allow --operation Read --topic credit.events
deny --operation Read --group creditd
fails "no Read on group creditd" \
    "consumer: group creditd: not authorized: the principal 'creditd' needs Read on group creditd" "${CREDITD_X[@]}"
allow --operation Read --group creditd
deny --operation Read --operation Write --topic credit.alerts
fails "no ACL on the output topic credit.alerts" \
    "relay: topic credit.alerts: not authorized: the principal 'creditd' needs Write" "${CREDITD_X[@]}"
allow --operation Read --operation Write --topic credit.alerts

# Write missing on one output topic only: nothing tells before a delivery.
topic_dump credit.ledger "$T/ex/ledger.before"
deny --operation Write --topic credit.ledger
rc=0; timeout 120 "$B/creditd" -X "bootstrap.servers=$BS" --db "$EX" "${CREDITD_X[@]}" >/dev/null \
    2>"$T/ex/nowrite.log" || rc=$?
check "no Write on credit.ledger: exit 2 (exit $rc)" test "$rc" = 2
check "... one fatal line: the undelivered entry, topic, principal and Write" \
    eval 'test "$(grep -c "fatal:" "$T/ex/nowrite.log")" = 1 && grep -q "fatal: delivering outbox entry [0-9]* (ledger) failed: relay: topic credit.ledger: not authorized: the principal .creditd. needs Write" "$T/ex/nowrite.log"'
grep "fatal:" "$T/ex/nowrite.log" | sed "s/^/$NAME:   /" >&2
read_stats "$EX"
check "... late events applied in whole batches ($seen0 -> $SEEN of $((seen0 + 3))), the outbox keeps the ledger entries ($OUTBOX)" \
    test "$SEEN" -gt "$seen0" -a "$SEEN" -le "$((seen0 + 3))" -a "$OUTBOX" -gt 0
topic_dump credit.ledger "$T/ex/ledger.after"
check "... nothing reached credit.ledger" cmp -s "$T/ex/ledger.before" "$T/ex/ledger.after"
allow --operation Write --topic credit.ledger

start_creditd "$EX" "$T/ex/fixed.log"
check "every ACL back: a restart applies and delivers everything" wait_store "$EX" "$((seen0 + 3))" 60 drain
rc=0; stop_creditd "$pid" || rc=$?; pid=""
check "after the fix: SIGTERM exit 0" test "$rc" = 0
cat "$T/ex/all.jsonl" "$T/ex/late.jsonl" > "$T/ex/final.jsonl"
compare_ex "$T/ex/final.jsonl" "after the fix"
note "done"
