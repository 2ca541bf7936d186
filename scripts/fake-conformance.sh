#!/usr/bin/env bash
# Checks the fake's answers with a tool that is not ours: schemathesis (pinned, in .tools/)
# fuzzes the standalone `lead-intake-fake` through both specs and checks every answer's status,
# media type, headers and body against them, that invalid requests are refused, that requests
# without credentials get 401, and that other methods get 405 with `Allow`.
#
# Business-rule refusals of schema-valid requests (a duplicate external_id, an
# unknown source id) are the fake's purpose, so `positive_data_acceptance` is not run, and neither
# is `use_after_free` (an uninstalled widget is still in the catalogue, by design).
#
# Usage: [SEED=n] scripts/fake-conformance.sh [max-examples per operation, default 25]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
examples="${1:-25}"
st="$(scripts/install-schemathesis.sh)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
cargo build --quiet -p lead-intake-fake --bin lead-intake-fake

log="$(mktemp)"
"$CARGO_TARGET_DIR/debug/lead-intake-fake" --seed 1 --quiet >"$log" 2>&1 &
fake_pid=$!
trap 'kill "$fake_pid" 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 100); do
  grep -q '^base URL:' "$log" && break
  sleep 0.1
done
base="$(sed -n 's/^base URL: *//p' "$log")"
token="$(sed -n 's/^Kommo token: *//p' "$log")"
key="$(sed -n 's/^CloseBot key: *//p' "$log")"
[ -n "$base" ] || { cat "$log"; echo "the fake did not start" >&2; exit 1; }

checks="not_a_server_error,content_type_conformance,response_schema_conformance,response_headers_conformance,negative_data_rejection,ignored_auth,unsupported_method,allow_header_conformance"
common=(--url "$base" --max-examples "$examples" --seed "${SEED:-1}" --generation-database none
  --no-color --warnings off)

cd "$(mktemp -d)" # schemathesis writes nothing we need; keep the tree clean
status=0
echo "== schemathesis: Kommo"
"$st" run "$root/openapi/kommo.yaml" "${common[@]}" -H "Authorization: Bearer $token" \
  --checks "$checks,status_code_conformance" || status=1
echo "== schemathesis: CloseBot"
"$st" run "$root/openapi/closebot.yaml" "${common[@]}" -H "X-CB-KEY: $key" \
  --checks "$checks,status_code_conformance" || status=1
exit "$status"
