#!/bin/sh
# Run each unit-test binary; print a closing "N passed, N failed" line.
pass=0; fail=0
for t in "$@"; do
    if "$t"; then pass=$((pass+1)); else echo "FAILED: $t" >&2; fail=$((fail+1)); fi
done
echo "units: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
