#!/usr/bin/env bash
# Installs schemathesis (pinned) into the project's ignored tool cache, .tools/, in a venv of
# its own. Prints the path of the executable. Idempotent.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
version="4.32.5"
venv="$root/.tools/schemathesis"
exe="$venv/bin/schemathesis"
if [ ! -x "$exe" ] || ! "$venv/bin/pip" show schemathesis 2>/dev/null | grep -q "^Version: $version$"; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version" >&2
fi
echo "$exe"
