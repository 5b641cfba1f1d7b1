#!/bin/sh
# Line coverage of engine/ and store/ by the fuzzer's corpus (make fuzz-cov).
# Builds the harness once more without sanitizers, with clang's source-based
# coverage, replays build/fuzz/corpus (the corpus `make fuzz` grew; the seed
# corpus if there is none) with the known-open bugs tolerated, and prints
# llvm-cov's per-file report.  Run from the repository root.
set -eu
d=build/fuzz/cov
corpus=build/fuzz/corpus
[ -d "$corpus" ] || corpus=tests/fuzz/corpus
mkdir -p "$d/obj"
flags="-std=c11 -D_GNU_SOURCE -O1 -g -fsanitize=fuzzer-no-link -fprofile-instr-generate -fcoverage-mapping -I."
for f in engine/*.c store/*.c config/*.c tests/unit/memstore.c tests/fuzz/*.c; do
    clang $flags -c "$f" -o "$d/obj/$(echo "$f" | tr / _).o"
done
clang -fsanitize=fuzzer -fprofile-instr-generate -o "$d/fuzz_engine" "$d"/obj/*.o -ljansson -llmdb
rm -f "$d/fuzz.profraw"
FUZZ_KNOWN_OPEN=$(sed 's/#.*//' tests/fuzz/known-open | tr -s ' \t\n' ' ') \
    LLVM_PROFILE_FILE="$d/fuzz.profraw" "$d/fuzz_engine" -runs=0 "$corpus" >"$d/run.log" 2>&1
llvm-profdata-14 merge -o "$d/fuzz.profdata" "$d/fuzz.profraw"
echo "fuzz-cov: corpus $corpus ($(ls "$corpus" | wc -l) inputs)"
report() {     # report DIR...: file, lines, missed lines, line and branch coverage
    llvm-cov-14 report "$d/fuzz_engine" -instr-profile="$d/fuzz.profdata" "$@" |
        awk -v t="$*" '$1 ~ /\.c$/ || $1 == "TOTAL" { if ($1 == "TOTAL") $1 = t " total";
            printf "%-22s lines %5s missed %4s  line %7s  branch %7s\n", $1, $8, $9, $10, $13 }'
}
report engine/ | grep -v 'engine/ total'
report engine/ | grep 'engine/ total'
report store/ | grep -v 'store/ total'
