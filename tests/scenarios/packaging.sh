#!/bin/sh
# make install and the systemd units (README "Installing as a service"):
#   1. make install DESTDIR=... PREFIX=/usr: exactly the expected files, with
#      their modes; the units name the installed binaries (no /usr/local left);
#      the installed creditd reads the installed example; make uninstall
#      removes everything; the default PREFIX puts the units, unchanged, in
#      /usr/local/lib/systemd/system;
#   2. systemd-analyze verify on the installed units, ExecStart pointed at
#      the DESTDIR copies: no error and no warning -- and the same check fails
#      on deliberately broken copies (a misspelt key, a bad value, a missing
#      binary, a bad calendar);
#   3. the sandbox: systemd-analyze security --offline exposure at most 2.5
#      for both services (and above it once the hardening is removed);
#   4. the policy: TimeoutStopSec above shutdown.flush_timeout_ms, no restart
#      on exit 1 (configuration) and 3 (the crash-loop guard), hourly timer.
# Run from the repository root after make all.
set -u
B=${B:-build}
tmp=$(mktemp -d /tmp/creditd-pkg.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok()  { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL: packaging: $*" >&2; }
check() { # WHAT CMD...
    what=$1; shift
    if "$@"; then ok; else bad "$what"; fi
}
R=$tmp/root
U=$R/lib/systemd/system

# ---- 1. make install ------------------------------------------------------------
if make -s install DESTDIR="$R" PREFIX=/usr >"$tmp/install.log" 2>&1; then ok; else
    bad "make install: $(tail -n 5 "$tmp/install.log")"
fi
(cd "$R" && find . -type f -printf '%m %p\n' | LC_ALL=C sort) > "$tmp/files"
LC_ALL=C sort > "$tmp/want" <<'LIST'
644 ./etc/creditd/creditd.conf.example
644 ./lib/systemd/system/credit-tick.service
644 ./lib/systemd/system/credit-tick.timer
644 ./lib/systemd/system/creditd.service
644 ./usr/share/doc/creditd/README.md
755 ./usr/bin/credit-produce
755 ./usr/bin/credit-replay
755 ./usr/bin/credit-tick
755 ./usr/bin/creditctl
755 ./usr/bin/creditd
LIST
if cmp -s "$tmp/want" "$tmp/files"; then ok; else
    bad "installed files and modes differ: $(diff "$tmp/want" "$tmp/files" | tr '\n' ' ')"
fi
check "the example is config/creditd.conf.example" cmp -s config/creditd.conf.example "$R/etc/creditd/creditd.conf.example"
check "no /usr/local left in the installed units" sh -c '! grep -q /usr/local "$@"' - "$U"/*
check "creditd.service runs /usr/bin/creditd with /etc/creditd/creditd.conf and /var/lib/creditd" \
    grep -qx 'ExecStart=/usr/bin/creditd --config /etc/creditd/creditd.conf --db /var/lib/creditd' "$U/creditd.service"
check "credit-tick.service runs /usr/bin/credit-tick with the config" \
    grep -q '^ExecStart=/bin/sh -c .exec /usr/bin/credit-tick --config /etc/creditd/creditd.conf --time ' "$U/credit-tick.service"
for f in "$U"/*.service; do   # every absolute path an ExecStart names exists in the DESTDIR
    for p in $(sed -n 's/^ExecStart=//p' "$f" | grep -o '/usr/bin/[A-Za-z_-]*'); do
        check "$(basename "$f"): $p installed" test -x "$R$p"
    done
done
check "the installed creditd reads the installed example (--dump-config)" \
    sh -c '"$1/usr/bin/creditd" --config "$1/etc/creditd/creditd.conf.example" --dump-config > "$2/dump"' - "$R" "$tmp"
make -s uninstall DESTDIR="$R" PREFIX=/usr >/dev/null 2>&1
check "make uninstall removes every file" test -z "$(find "$R" -type f)"
make -s install DESTDIR="$tmp/local" >/dev/null 2>&1
check "default PREFIX: binaries in /usr/local/bin" test -x "$tmp/local/usr/local/bin/creditd"
for u in creditd.service credit-tick.service credit-tick.timer; do
    check "default PREFIX: $u as in packaging/" cmp -s "packaging/$u" "$tmp/local/usr/local/lib/systemd/system/$u"
done
make -s install DESTDIR="$R" PREFIX=/usr >/dev/null 2>&1

# ---- 2. systemd-analyze verify ----------------------------------------------------
# verify_units DIR: every unit in DIR passes systemd-analyze verify without a
# word (verify exits 0 on keys it ignores; a warning is a broken unit here).
verify_units() {
    out=$(systemd-analyze verify --man=no "$1"/* 2>&1)
    rc=$?
    [ "$rc" -eq 0 ] && [ -z "$out" ] && return 0
    echo "$out" | head -n 5 > "$tmp/verify.why"
    return 1
}
# copy_units DIR: the installed units into DIR, ExecStart's /usr/bin pointed
# at the DESTDIR (verify needs the binaries; they are not on this system).
copy_units() {
    rm -rf "$1"; mkdir -p "$1"
    for f in "$U"/*; do sed "s|/usr/bin/|$R/usr/bin/|g" "$f" > "$1/$(basename "$f")"; done
}
if command -v systemd-analyze >/dev/null 2>&1; then
    copy_units "$tmp/v"
    if verify_units "$tmp/v"; then ok; else bad "systemd-analyze verify: $(cat "$tmp/verify.why")"; fi
    # broken copies: SED-EXPRESSION UNIT WHAT
    while IFS='|' read -r expr unit what; do
        copy_units "$tmp/b"
        sed -i "$expr" "$tmp/b/$unit"
        if cmp -s "$tmp/b/$unit" "$tmp/v/$unit"; then bad "broken copy ($what): the edit changed nothing"; continue; fi
        if verify_units "$tmp/b"; then bad "verify passes a broken $unit ($what)"; else ok; fi
    done <<'BROKEN'
s/^RestartSec=/RestartSecs=/|creditd.service|a misspelt key
s/^Type=exec/Type=execute/|creditd.service|a bad Type
s#/usr/bin/creditd #/usr/bin/creditd-missing #|creditd.service|a missing binary
s/^ProtectSystem=strict/ProtectSystem=very/|creditd.service|a bad ProtectSystem
s/^Type=oneshot/Type=once/|credit-tick.service|a bad Type
s/^OnCalendar=hourly/OnCalendar=every hour/|credit-tick.timer|a bad calendar
BROKEN

    # ---- 3. the sandbox ---------------------------------------------------------
    for u in creditd.service credit-tick.service; do
        check "$u: exposure at most 2.5 (systemd-analyze security)" \
            systemd-analyze security --offline=true --threshold=25 --no-pager "$tmp/v/$u" >/dev/null 2>&1
        copy_units "$tmp/b"; sed -i '/^ProtectSystem=/,$d' "$tmp/b/$u"
        if systemd-analyze security --offline=true --threshold=25 --no-pager "$tmp/b/$u" >/dev/null 2>&1; then
            bad "$u without its sandbox still passes the exposure check"
        else ok; fi
    done
else
    echo "SKIP: packaging: systemd-analyze not installed (systemd): units not verified" >&2
fi

# ---- 4. the policy ------------------------------------------------------------------
stop_s=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s$/\1/p' "$U/creditd.service")
flush_ms=$(awk '$1 == "shutdown.flush_timeout_ms" {print $3}' "$tmp/dump")
check "TimeoutStopSec ($stop_s s) > shutdown.flush_timeout_ms ($flush_ms ms) + 5 s" \
    test "${stop_s:-0}" -gt 0 -a $((${stop_s:-0} * 1000)) -gt $((${flush_ms:-999999999} + 5000))
check "no restart on exit 1 and 3" grep -qx 'RestartPreventExitStatus=1 3' "$U/creditd.service"
check "restart on failure, with a start limit" \
    sh -c 'grep -qx Restart=on-failure "$1" && grep -q "^RestartSec=" "$1" && grep -q "^StartLimitBurst=" "$1"' - "$U/creditd.service"
check "SIGTERM stops creditd" grep -qx 'KillSignal=SIGTERM' "$U/creditd.service"
check "the store in StateDirectory=creditd" grep -qx 'StateDirectory=creditd' "$U/creditd.service"
check "the timer: hourly, persistent" \
    sh -c 'grep -qx OnCalendar=hourly "$1" && grep -qx Persistent=true "$1"' - "$U/credit-tick.timer"

echo "packaging: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
