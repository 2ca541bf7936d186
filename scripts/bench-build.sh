#!/usr/bin/env bash
# Benchmark 5 (BENCHMARKS.md): build cost.
#
#   scripts/bench-build.sh [extra cargo build arguments, e.g. --release]
#
# 1. a clean `cargo build` of the crate (default features; dependencies already downloaded by
#    `cargo fetch`, so the network is not timed), in a target directory of its own;
# 2. `cargo build` after a spec edit (one description in openapi/kommo.yaml changed, so
#    build.rs regenerates the client and the crate recompiles), three times;
# 3. a `cargo build` with nothing changed, for reference.
# The spec is restored on exit, even on failure or Ctrl-C.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}/bench-build"
spec=openapi/kommo.yaml
original="$(mktemp)"
cp "$spec" "$original"
restore() { cp "$original" "$spec"; rm -f "$original"; }
trap restore EXIT

seconds() {
    local start end
    start=$(date +%s.%N)
    cargo build -q "$@" >&2
    end=$(date +%s.%N)
    python3 -c "print(f'{$end - $start:.1f}')"
}

cargo fetch -q
rm -rf "$CARGO_TARGET_DIR"
echo "clean build:                 $(seconds "$@") s"
for i in 1 2 3; do
    sed -i "s/^    description: A Kommo account\..*/    description: A Kommo account. (edit $i)/" "$spec"
    grep -q "(edit $i)" "$spec" || { echo "the spec edit did not apply" >&2; exit 1; }
    echo "rebuild after a spec edit $i: $(seconds "$@") s"
done
echo "rebuild, nothing changed:    $(seconds "$@") s"
