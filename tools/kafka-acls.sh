#!/usr/bin/env bash
# The least-privilege Kafka ACLs of creditd and the programs around it,
# applied (or removed, or printed) with Kafka's own kafka-acls tool.
#
#   tools/kafka-acls.sh --add|--remove --bootstrap-server HOST:PORT [--command-config FILE]
#                       [--config creditd.conf] [-X key=value]... ROLE=PRINCIPAL...
#   tools/kafka-acls.sh --print [--config creditd.conf] [-X key=value]... ROLE=PRINCIPAL...
#
# ROLE is one of (a role may be given more than once, e.g. staff and owners):
#   creditd   the daemon: reads the input topic, writes and reads back its
#             output topics, publishes its offsets to its group
#   pipeline  a usage pipeline (credit-produce): writes the input topic
#   clock     the clock (credit-tick): writes the input topic
#   ctl       staff and organisation owners (creditctl): write the input topic,
#             read the ledger, overage and dead-letter topics (--wait)
#   auditor   credit-replay --from-kafka: reads the input topic, nothing else
# PRINCIPAL is Kafka's principal, e.g. User:creditd (a bare NAME means User:NAME).
#
# Topic and group names are creditd's defaults, or those of --config (a
# creditd.conf: topic.input, topic.overage, topic.ledger, topic.rejected,
# output.alerts, group.id) and -X key=value (same keys; later wins).  Every
# ACL is ALLOW, host *, pattern LITERAL (the exact name, no prefixes).
#
# --print writes the ACLs as a table ("principal operation type name
# pattern", one per line) and runs nothing.  --add / --remove run
# $KAFKA_ACLS (default: kafka-acls.sh on PATH, else
# $KAFKA_HOME/bin/kafka-acls.sh) once per group of ACLs with the same
# operation and resources, adding --bootstrap-server and --command-config
# (the admin's client properties: security.protocol, sasl.*, ssl.*).
# Exit 0, 1 on a failed kafka-acls run, 2 on bad usage.
set -euo pipefail

usage() {
    sed -n '/^#   tools/,/^# PRINCIPAL/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}
die() { echo "kafka-acls.sh: $*" >&2; exit 2; }

declare -A K=([topic.input]=credit.events [topic.overage]=credit.overage
              [topic.ledger]=credit.ledger [topic.rejected]=credit.rejected
              [output.alerts]=credit.alerts [group.id]=creditd)

set_key() { # KEY VALUE: only the names the ACLs depend on; others are ignored
    [[ -v "K[$1]" ]] || return 0
    [[ -n "$2" ]] || die "$1: empty"
    K[$1]="$2"
}

load_config() { # FILE: key = value lines, '#' comments, optional double quotes
    local line key value
    [[ -r "$1" ]] || die "--config $1: not readable"
    while IFS= read -r line || [[ -n "$line" ]]; do
        line="${line#"${line%%[![:space:]]*}"}"
        [[ -z "$line" || "$line" == \#* || "$line" != *=* ]] && continue
        key="${line%%=*}"; value="${line#*=}"
        key="${key%"${key##*[![:space:]]}"}"
        value="${value#"${value%%[![:space:]]*}"}"
        if [[ "$value" == \"* ]]; then
            value="${value#\"}"; value="${value%%\"*}"
        else
            value="${value%%[[:space:]]#*}"; value="${value%"${value##*[![:space:]]}"}"
        fi
        set_key "$key" "$value"
    done < "$1"
}

mode="" bs="" cc="" roles=()
while (($#)); do
    case "$1" in
        --add|--remove|--print) [[ -z "$mode" ]] || usage; mode="${1#--}"; shift ;;
        --bootstrap-server) (($# >= 2)) || usage; bs="$2"; shift 2 ;;
        --command-config) (($# >= 2)) || usage; cc="$2"; shift 2 ;;
        --config) (($# >= 2)) || usage; load_config "$2"; shift 2 ;;
        -X) (($# >= 2)) && [[ "$2" == *=* ]] || usage; set_key "${2%%=*}" "${2#*=}"; shift 2 ;;
        -h|--help) usage ;;
        *=*) roles+=("$1"); shift ;;
        *) usage ;;
    esac
done
[[ -n "$mode" ]] && ((${#roles[@]})) || usage
[[ "$mode" == print || -n "$bs" ]] || die "--$mode needs --bootstrap-server"

IN="${K[topic.input]}"
OUTS=("${K[topic.overage]}" "${K[topic.ledger]}" "${K[topic.rejected]}" "${K[output.alerts]}")

# One line per ACL: PRINCIPAL OPERATION TYPE NAME.  The operations are the
# least each program needs (Read and Write imply Describe: metadata,
# offsets; Kafka 3.0+ lets an idempotent producer with Write on a topic
# initialise its producer id without IdempotentWrite on the cluster).
# Assign-only consumers with a group.id still look up its coordinator:
# Describe on that group (creditd-outscan, creditctl-wait, credit-replay).
acls_of() { # ROLE PRINCIPAL
    local p="$2" t
    case "$1" in
        creditd)
            echo "$p Read topic $IN"
            for t in "${OUTS[@]}"; do echo "$p Read topic $t"; echo "$p Write topic $t"; done
            echo "$p Read group ${K[group.id]}"
            echo "$p Describe group creditd-outscan" ;;
        pipeline|clock)
            echo "$p Write topic $IN" ;;
        ctl)
            echo "$p Write topic $IN"
            for t in "${K[topic.ledger]}" "${K[topic.overage]}" "${K[topic.rejected]}"; do
                echo "$p Read topic $t"
            done
            echo "$p Describe group creditctl-wait" ;;
        auditor)
            echo "$p Read topic $IN"
            echo "$p Describe group credit-replay" ;;
        *) die "unknown role $1 (creditd, pipeline, clock, ctl, auditor)" ;;
    esac
}

lines=()
for rp in "${roles[@]}"; do
    role="${rp%%=*}" principal="${rp#*=}"
    [[ -n "$principal" ]] || die "$rp: no principal"
    [[ "$principal" == *:* ]] || principal="User:$principal"
    [[ "$principal" =~ ^[A-Za-z]+:[^[:space:]]+$ ]] || die "$rp: not a principal"
    mapfile -t -O "${#lines[@]}" lines < <(acls_of "$role" "$principal")
done
mapfile -t lines < <(printf '%s\n' "${lines[@]}" | LC_ALL=C sort -u)

if [[ "$mode" == print ]]; then
    for l in "${lines[@]}"; do
        read -r p op type name <<<"$l"
        printf '%s %s %s %s LITERAL\n' "$p" "$op" "$type" "$name"
    done
    exit 0
fi

# Group the ACLs into kafka-acls runs: for each principal and operation its
# resources; then principals with the same operation and resources together
# (kafka-acls applies every principal x operation x resource of one run).
declare -A res=()
for l in "${lines[@]}"; do
    read -r p op type name <<<"$l"
    res["$p $op"]+=" --$type $name"
done
declare -A runs=()
for po in "${!res[@]}"; do
    p="${po% *}" op="${po##* }"
    runs["$op${res[$po]}"]+=" $p"
done

if [[ -n "${KAFKA_ACLS:-}" ]]; then
    read -r -a cmd <<<"$KAFKA_ACLS"
elif command -v kafka-acls.sh >/dev/null; then
    cmd=(kafka-acls.sh)
elif [[ -x "${KAFKA_HOME:-/nonexistent}/bin/kafka-acls.sh" ]]; then
    cmd=("$KAFKA_HOME/bin/kafka-acls.sh")
else
    die "no kafka-acls.sh on PATH or in \$KAFKA_HOME/bin: set KAFKA_ACLS"
fi
base=("${cmd[@]}" --bootstrap-server "$bs")
[[ -z "$cc" ]] || base+=(--command-config "$cc")
if [[ "$mode" == add ]]; then base+=(--add); else base+=(--remove --force); fi

rc=0
for key in "${!runs[@]}"; do
    read -r -a spec <<<"$key"          # OPERATION --type NAME ...
    args=(--operation "${spec[0]}" "${spec[@]:1}" --resource-pattern-type literal)
    for p in ${runs[$key]}; do args+=(--allow-principal "$p"); done
    echo "kafka-acls.sh: --$mode ${args[*]}" >&2
    if ! "${base[@]}" "${args[@]}" >/dev/null; then
        echo "kafka-acls.sh: FAILED: --$mode ${args[*]}" >&2
        rc=1
    fi
done
exit $rc
