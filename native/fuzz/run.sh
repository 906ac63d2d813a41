#!/usr/bin/env bash
# native/fuzz/run.sh SECONDS - build the libFuzzer harnesses under ASan + UBSan and fuzz each
# of them (fuzz_rlp, fuzz_mpt, fuzz_snapshot, fuzz_merkle, fuzz_verkle) for SECONDS/5 seconds,
# seeded from the vectors (fuzz_merkle from generated trees).
#
# Prints, per harness, the executions, coverage (libFuzzer's final cov: edges and ft:
# features), corpus size and wall time. Exits non-zero on any crash, leak, UB report, timeout or
# out-of-memory; the input that caused it is saved as build/fuzz/crashes/<harness>-<kind>-<sha1>
# (replay: build/fuzz/bin/<harness> FILE; keep it as a regression test by copying it to
# tests/native/regressions/<rlp|mpt|snapshot|merkle|verkle>/).
#
# Environment: CC (default: clang, else clang-14), PYTHON (default .venv/bin/python, for the
# seed builder), VECTORS (default tests/vectors), FUZZ_JOBS_DIR (default build/fuzz).
# Everything it writes is under build/ (gitignored); the growing corpus in build/fuzz/corpus/
# is kept between runs.
set -euo pipefail

HARNESSES=(rlp mpt snapshot merkle verkle)
if [[ $# -ne 1 || ! $1 =~ ^[0-9]+$ || $1 -lt ${#HARNESSES[@]} ]]; then
    echo "usage: $0 SECONDS   (total fuzzing time, >= ${#HARNESSES[@]}, split evenly over the ${#HARNESSES[@]} harnesses)" >&2
    exit 2
fi
TOTAL=$1
PER=$((TOTAL / ${#HARNESSES[@]}))

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
OUT=${FUZZ_JOBS_DIR:-$ROOT/build/fuzz}
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
VECTORS=${VECTORS:-$ROOT/tests/vectors}

if [[ -z ${CC:-} ]]; then
    CC=$(command -v clang || command -v clang-14 || true)
fi
if [[ -z $CC ]] || ! command -v "$CC" >/dev/null; then
    echo "run.sh: clang not found (Debian: apt-get install clang-14 libclang-rt-14-dev)" >&2
    exit 3
fi

mkdir -p "$OUT/bin" "$OUT/crashes" "$OUT/logs"
"$PYTHON" native/fuzz/make_seeds.py --vectors "$VECTORS" --out "$OUT/seeds"

CFLAGS=(-std=c11 -g -O1 -Wall -Wextra -Werror -fno-omit-frame-pointer
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Inative/include)
for h in "${HARNESSES[@]}"; do
    "$CC" "${CFLAGS[@]}" "native/fuzz/fuzz_$h.c" native/src/*.c -o "$OUT/bin/fuzz_$h"
done

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

status=0
summary=()
for h in "${HARNESSES[@]}"; do
    corpus="$OUT/corpus/$h"
    mkdir -p "$corpus"
    log="$OUT/logs/fuzz_$h.log"
    start=$(date +%s.%N)
    rc=0
    # -max_len: the largest vector nodes and blocks fit in 8192 bytes; the largest real Verkle
    # witness (Kaustinen6 block 73: 372 keys, 70 commitments) takes 27,662, so its harness has 32768.
    max_len=8192
    [[ $h == verkle ]] && max_len=32768
    "$OUT/bin/fuzz_$h" "$corpus" "$OUT/seeds/$h" \
        -max_total_time="$PER" -timeout=10 -rss_limit_mb=2048 -max_len="$max_len" \
        -print_final_stats=1 -artifact_prefix="$OUT/crashes/fuzz_$h-" >"$log" 2>&1 || rc=$?
    end=$(date +%s.%N)
    secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    final=$(grep -E '^#[0-9]+.*(DONE|cov:)' "$log" | tail -1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$final")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$final")
    corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9A-Za-z]*\).*/\1/p' <<<"$final")
    rate=$(awk -v e="${execs:-0}" -v s="$secs" 'BEGIN { printf "%d", (s > 0 ? e / s : 0) }')
    line=$(printf '%-14s execs=%-10s exec/s=%-7s cov=%-6s ft=%-6s corpus=%-12s time=%ss' \
        "fuzz_$h" "${execs:-?}" "$rate" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$secs")
    if [[ $rc -ne 0 ]]; then
        status=1
        line="$line  FAILED (exit $rc)"
        echo "---- fuzz_$h failed; log $log ----" >&2
        grep -E 'ERROR|SUMMARY|invariant violated|runtime error|Test unit written|artifact' "$log" >&2 || tail -30 "$log" >&2
    fi
    summary+=("$line")
done

echo "fuzzing summary (${PER}s per harness, ASan+UBSan, corpus in $OUT/corpus):"
printf '  %s\n' "${summary[@]}"
if [[ $status -ne 0 ]]; then
    echo "crashing inputs saved under $OUT/crashes/" >&2
fi
exit $status
