#!/usr/bin/env bash
# The crates as users would download them: `cargo package` makes both (a local registry stands in
# for crates.io between them, so the fake's dependency on the library resolves to the packaged
# library) and builds each from its package. Then each package is unpacked outside the workspace
# and its doctests run there, with the fake's dependency on the library patched to the unpacked
# library. Nothing from the working tree reaches these builds but what the packages hold.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$PWD/target}"
mkdir -p "$target"
target="$(cd "$target" && pwd)"

# `cargo package` verifies the fake against the packaged library through a local registry, and
# reuses an earlier run's unpacked copy of that library (same name and version) instead of this
# run's: remove those copies first. Local registries' folders are the ones whose names start
# with `-` (crates.io's do not).
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
rm -rf "$cargo_home"/registry/src/-*/lead-intake-0.1.0 "$cargo_home"/registry/src/-*/lead-intake-fake-0.1.0 \
    "$cargo_home"/registry/cache/-*/lead-intake-0.1.0.crate "$cargo_home"/registry/cache/-*/lead-intake-fake-0.1.0.crate

cargo package --locked -p lead-intake -p lead-intake-fake

unpacked="$(mktemp -d)"
trap 'rm -rf "$unpacked"' EXIT
for crate in lead-intake lead-intake-fake; do
    tar -xzf "$target/package/$crate-0.1.0.crate" -C "$unpacked"
done

echo "== the packaged lead-intake: what it holds"
(cd "$unpacked/lead-intake-0.1.0" && find . -type f | sort | sed 's/^/  /' | sed -n '1,80p')

# Doctests, in the unpacked folders (outside this workspace; each package's own Cargo.lock).
patch="patch.crates-io.lead-intake.path=\"$unpacked/lead-intake-0.1.0\""
echo "== doctests of the packaged lead-intake"
cargo test --locked --doc --manifest-path "$unpacked/lead-intake-0.1.0/Cargo.toml" --target-dir "$target/package-doctests"
echo "== doctests of the packaged lead-intake-fake"
cargo test --doc --manifest-path "$unpacked/lead-intake-fake-0.1.0/Cargo.toml" --target-dir "$target/package-doctests" --config "$patch"
