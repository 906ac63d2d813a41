#!/usr/bin/env bash
# native/memcheck/run.sh - valgrind memcheck over the vector suite: builds driver.c (the fuzz
# harnesses' entry points and invariants, without libFuzzer) with -g -O1 and runs it under
#   valgrind --error-exitcode=1 --leak-check=full
# over the seed corpus native/fuzz/make_seeds.py derives from tests/vectors (every RLP
# fixture, block and proof). Exits non-zero on any memcheck error or leak, a violated
# invariant, or an empty corpus.
#
# Environment: CC (default gcc, else cc), PYTHON (default .venv/bin/python), VECTORS (default
# tests/vectors), VALGRIND (default valgrind). Writes only under build/memcheck/.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
OUT=$ROOT/build/memcheck
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
VECTORS=${VECTORS:-$ROOT/tests/vectors}
VALGRIND=${VALGRIND:-valgrind}
CC=${CC:-$(command -v gcc || command -v cc)}

if ! command -v "$VALGRIND" >/dev/null; then
    echo "memcheck: valgrind not found (Debian: apt-get install valgrind)" >&2
    exit 3
fi
mkdir -p "$OUT"
"$PYTHON" native/fuzz/make_seeds.py --vectors "$VECTORS" --out "$OUT/seeds"
"$CC" -std=c11 -g -O1 -Wall -Wextra -Werror -Inative/include \
    native/memcheck/driver.c native/src/*.c -o "$OUT/driver"
start=$(date +%s.%N)
"$VALGRIND" --error-exitcode=1 --leak-check=full --show-leak-kinds=all \
    --errors-for-leak-kinds=definite,indirect,possible --track-origins=yes -q \
    "$OUT/driver" "$OUT/seeds"
end=$(date +%s.%N)
awk -v a="$start" -v b="$end" 'BEGIN { printf "memcheck: clean (%.1fs under valgrind)\n", b - a }'
