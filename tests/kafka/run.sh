#!/bin/sh
# Runs the Kafka integration tests (tests/kafka/smoke.sh and it_*.sh), each
# of which starts and stops its own broker.  Prints "kafka: N passed, N failed".
set -u
pass=0; fail=0
for t in tests/kafka/smoke.sh tests/kafka/it_*.sh; do
    [ -f "$t" ] || continue
    echo "== $t"
    if bash "$t"; then pass=$((pass+1)); else fail=$((fail+1)); echo "FAILED: $t" >&2; fi
done
echo "kafka: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
