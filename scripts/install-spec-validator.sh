#!/usr/bin/env bash
# Installs openapi-spec-validator (pinned) into the project's ignored tool cache, .tools/.
# Prints the path of the executable. Idempotent.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
version="0.9.0"
venv="$root/.tools/python"
exe="$venv/bin/openapi-spec-validator"
if [ ! -x "$exe" ] || ! "$venv/bin/pip" show openapi-spec-validator 2>/dev/null | grep -q "^Version: $version$"; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check "openapi-spec-validator==$version" >&2
fi
echo "$exe"
