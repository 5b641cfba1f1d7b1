#!/bin/sh
# Run the engine fuzzer, build/fuzz/fuzz_engine (tests/fuzz/fuzz_engine.c).
#   run.sh long SECONDS   fuzz SECONDS on build/fuzz/corpus (kept and grown
#                         across runs), every check traps   (make fuzz);
#                         with FUZZ_KNOWN=1 the known-open bugs are tolerated
#   run.sh short SECONDS  replay tests/fuzz/regress/, then fuzz SECONDS from a
#                         fresh copy of the seed corpus, fixed seed, with the
#                         bugs in tests/fuzz/known-open tolerated (make fuzz-short)
# Run from the repository root.  Crashing inputs go to build/fuzz/artifacts/;
# the fuzzer's log to build/fuzz/last-run.log.
set -eu
mode=$1
secs=$2
bin=build/fuzz/fuzz_engine
out=build/fuzz
mkdir -p "$out/artifacts" "$out/regress-artifacts"
known=$(sed 's/#.*//' tests/fuzz/known-open | tr -s ' \t\n' ' ')

is_known() {   # is_known FILE: 0 if FILE is the regression input of a known-open bug
    b=$(basename "$1")
    for k in $known; do
        case "$b" in "$k".*|"$k"-*) return 0 ;; esac
    done
    return 1
}

replay() {     # every regression input once, all checks on
    fail=0
    for f in tests/fuzz/regress/*; do
        [ -f "$f" ] || continue
        log="$out/regress-$(basename "$f").log"
        if "$bin" -artifact_prefix="$out/regress-artifacts/" "$f" >"$log" 2>&1; then got=pass; else got=crash; fi
        if is_known "$f"; then
            if [ $got = crash ]; then echo "fuzz: regress $f: still fails (known open)"
            else echo "fuzz: regress $f: PASSES NOW -- delete its line from tests/fuzz/known-open" >&2; fail=1; fi
        elif [ $got = pass ]; then echo "fuzz: regress $f: ok"
        else echo "fuzz: regress $f: FAILS (log: $log)" >&2; grep -aE 'VIOLATION|Assertion|ERROR|SUMMARY' "$log" >&2 || true; fail=1
        fi
    done
    return $fail
}

corpus=$out/corpus
flags="-seed=0"
if [ "$mode" = short ]; then
    replay
    corpus=$out/corpus-short
    rm -rf "$corpus"
    flags="-seed=1"
    export FUZZ_KNOWN_OPEN="$known"
elif [ "${FUZZ_KNOWN:-0}" = 1 ]; then
    export FUZZ_KNOWN_OPEN="$known"
else
    unset FUZZ_KNOWN_OPEN || true
fi
mkdir -p "$corpus"
cp -n tests/fuzz/corpus/* "$corpus"/ 2>/dev/null || true
echo "fuzz: $mode run, $secs s, corpus $corpus${FUZZ_KNOWN_OPEN:+, known open tolerated: $FUZZ_KNOWN_OPEN}"
rc=0
"$bin" $flags -max_total_time="$secs" -timeout=30 -max_len=8192 -dict=tests/fuzz/json.dict \
    -print_final_stats=1 -artifact_prefix="$out/artifacts/" "$corpus" >"$out/last-run.log" 2>&1 || rc=$?
grep -aE '^#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added|stat::peak_rss_mb|known open bug' \
    "$out/last-run.log" | sed 's/^/fuzz: /' || true
if [ $rc -ne 0 ]; then
    echo "fuzz: FAILED (exit $rc); the violation and stack (full log: $out/last-run.log):" >&2
    grep -aE -A40 'VIOLATION|Assertion|ERROR: (libFuzzer|AddressSanitizer|UndefinedBehavior)|runtime error' \
        "$out/last-run.log" | head -60 >&2
    grep -a 'Test unit written to' "$out/last-run.log" >&2 || true
    exit 1
fi
