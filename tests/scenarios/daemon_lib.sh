# daemon_lib.sh -- sourced by the scenarios that run creditd on its embedded
# broker (daemon_logs.sh, secrets.sh).  Expects B (build directory), tmp (a
# scratch directory) and pids (PIDs to kill on exit, appended to here).

now() { date +%s; }

# start NAME ARGS...: build/creditd (or $CREDITD) on a fresh store; sets PID, ADDR.
start() {
    name=$1; shift
    "${CREDITD:-$B/creditd}" --db "$tmp/$name.store" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
    PID=$!
    pids="$pids $PID"
    ADDR=""
    deadline=$(( $(now) + 30 ))
    while [ "$(now)" -le "$deadline" ] && kill -0 "$PID" 2>/dev/null; do
        ADDR=$(sed -n 's/^creditd: embedded broker at //p' "$tmp/$name.out" 2>/dev/null)
        [ -n "$ADDR" ] && return 0
        sleep 0.1
    done
    return 1
}

# seen STORE: applied + duplicates + rejected of the store (creditctl, no lock).
seen() {
    "$B/creditctl" --db "$1" stats 2>/dev/null |
        awk '$1 == "applied" || $1 == "duplicates" || $1 == "rejected" {n += $2} END {print n + 0}'
}

wait_seen() { # STORE N: within 60 s
    deadline=$(( $(now) + 60 ))
    while [ "$(seen "$1")" -lt "$2" ]; do
        [ "$(now)" -le "$deadline" ] || return 1
        sleep 0.2
    done
}

wait_grep() { # FILE PATTERN: within 30 s
    deadline=$(( $(now) + 30 ))
    until grep -q "$2" "$1"; do
        [ "$(now)" -le "$deadline" ] || return 1
        sleep 0.1
    done
}
