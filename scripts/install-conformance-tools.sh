#!/usr/bin/env bash
# Installs the pinned third-party tools that `cargo xtask conformance` runs, into the ignored
# tool cache .tools/:
#   .tools/node            npm tools, exactly as scripts/conformance/package-lock.json pins them
#                          (Redocly CLI, Spectral, Prism, openapi-typescript, TypeScript)
#   .tools/node-clients    what the generated TypeScript client runs with (openapi-fetch), exactly
#                          as scripts/conformance/clients/package-lock.json pins it
#   .tools/python          openapi-spec-validator, openapi-generator-cli (it bundles the jar),
#                          openapi-python-client and ruff (scripts/conformance/requirements-tools.txt)
#   .tools/python-clients  what the generated Python clients need to install and import
#                          (scripts/conformance/requirements-clients.txt), so the run is offline
# and, through apt (root, or sudo), Debian's Go toolchain and the one Go module the generated Go
# client imports (gopkg.in/validator.v2), plus Java and Node.js if they are missing.
#
# Idempotent: each part is skipped when what it would install is already there.
# npm install scripts are not run (the only one is @scarf/scarf's download analytics).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
pins="$root/scripts/conformance"
tools="$root/.tools"
mkdir -p "$tools"

log() { echo "install-conformance-tools: $*" >&2; }

# ---- Debian packages ------------------------------------------------------------------------
apt_packages=()
command -v go >/dev/null 2>&1 || apt_packages+=(golang-go)
[ -d /usr/share/gocode/src/gopkg.in/validator.v2 ] || apt_packages+=(golang-gopkg-validator.v2-dev)
command -v java >/dev/null 2>&1 || apt_packages+=(default-jre-headless)
command -v node >/dev/null 2>&1 || apt_packages+=(nodejs)
command -v npm >/dev/null 2>&1 || apt_packages+=(npm)
python3 -c 'import venv, ensurepip' 2>/dev/null || apt_packages+=(python3-venv)
if [ "${#apt_packages[@]}" -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        SUDO=""
    elif command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        log "missing ${apt_packages[*]}; installing them needs root (or sudo)."
        exit 1
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        log "missing ${apt_packages[*]} and apt-get is not available; install them by hand."
        exit 1
    fi
    log "apt-get install ${apt_packages[*]}"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${apt_packages[@]}" >&2
fi

# ---- npm tools ------------------------------------------------------------------------------
# install_npm DIR PINS: DIR holding exactly what PINS/package-lock.json pins (re-made when the
# pins change).
install_npm() {
    local node_dir="$1" from="$2"
    if ! cmp -s "$from/package-lock.json" "$node_dir/package-lock.json" \
        || ! cmp -s "$from/package.json" "$node_dir/package.json" \
        || [ ! -f "$node_dir/node_modules/.package-lock.json" ]; then
        log "npm ci into ${node_dir#"$root"/}"
        rm -rf "$node_dir"
        mkdir -p "$node_dir"
        cp "$from/package.json" "$from/package-lock.json" "$node_dir/"
        (cd "$node_dir" && SCARF_ANALYTICS=false npm ci --ignore-scripts --no-audit --no-fund \
            --loglevel=error >&2)
    fi
}
install_npm "$tools/node" "$pins"
install_npm "$tools/node-clients" "$pins/clients"

# ---- Python venvs ---------------------------------------------------------------------------
# install_venv DIR REQUIREMENTS: a venv holding exactly the pinned packages (re-made when the
# pins change).
install_venv() {
    local venv="$1" requirements="$2"
    local stamp="$venv/.requirements.txt"
    if [ -x "$venv/bin/python" ] && cmp -s "$requirements" "$stamp"; then
        return
    fi
    log "pip install -r ${requirements#"$root"/} into ${venv#"$root"/}"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" >&2
    cp "$requirements" "$stamp"
}
install_venv "$tools/python" "$pins/requirements-tools.txt"
install_venv "$tools/python-clients" "$pins/requirements-clients.txt"

log "ready"
