#!/usr/bin/env bash
# Benchmark 1 (BENCHMARKS.md): lead-intake's per-request overhead against a hand-written
# reqwest + serde call and against openapi-generator 7.26.0's `-g rust` client, in one run.
#
#   scripts/bench-overhead.sh [criterion arguments...]
#   scripts/bench-overhead.sh --generate-only   # only make the peer client (bench-build-programs.py)
#
# Makes the peer client from openapi/export/kommo.json into the ignored .tools/bench-peer/ with
# the pinned openapi-generator-cli (installed by scripts/install-conformance-tools.sh when
# missing), runs benches/peer (a cargo project of its own), and prints each client's mean time
# and its ratio to the hand-written call.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
generator="$root/.tools/python/bin/openapi-generator-cli"
if [ ! -x "$generator" ]; then
    scripts/install-conformance-tools.sh
fi
peer="$root/.tools/bench-peer/kommo-openapi"
stamp="$root/.tools/bench-peer/source.sha256"
want="$(sha256sum openapi/export/kommo.json | cut -d' ' -f1) $("$generator" version 2>/dev/null | tail -1)"
if [ ! -f "$peer/Cargo.toml" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "bench-overhead: generating the openapi-generator Rust client" >&2
    rm -rf "$peer"
    "$generator" generate -i openapi/export/kommo.json -g rust -o "$peer" \
        --additional-properties=packageName=kommo-openapi,library=reqwest >/dev/null
    # openapi-generator 7.26.0 names the array variant of a oneOf whose items are free-form
    # `ArrayVecserde_json::Value`, which does not compile (WidgetSettings, ContinueBotData: an
    # object or PHP's empty `[]`). What a user of the generator would do: rename the variant.
    grep -l 'ArrayVecserde_json::Value(' "$peer"/src/models/*.rs |
        xargs -r sed -i 's/ArrayVecserde_json::Value(/ArrayVecValue(/'
    if grep -q 'ArrayVecserde_json::Value' "$peer"/src/models/*.rs; then
        echo "bench-overhead: a variant named ArrayVecserde_json::Value is left" >&2
        exit 1
    fi
    echo "$want" >"$stamp"
fi
if [ "${1:-}" = "--generate-only" ]; then
    exit 0
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}/bench-peer"
cargo bench --manifest-path benches/peer/Cargo.toml --bench overhead -- "$@"

python3 - "$CARGO_TARGET_DIR/criterion/overhead_250_leads" <<'PY'
import json, pathlib, sys
group = pathlib.Path(sys.argv[1])
mean = {}
for name in ("hand_written", "lead_intake", "openapi_generator"):
    est = json.loads((group / name / "new" / "estimates.json").read_text())
    mean[name] = (est["mean"]["point_estimate"], est["mean"]["confidence_interval"])
base = mean["hand_written"][0]
print("\nper request (mean, 95% CI), ratio to hand_written:")
for name, (m, ci) in mean.items():
    print(f"  {name:<18} {m/1000:8.1f} us  [{ci['lower_bound']/1000:.1f}, {ci['upper_bound']/1000:.1f}]  x{m/base:.3f}")
PY
