#!/usr/bin/env bash
# Installs what bench/overhead.py needs; idempotent, non-interactive, quick when done.
#
#   nginx, wrk           from apt, if missing
#   bench/.venvs/litellm python3.11 venv with litellm[proxy]==$LITELLM_VERSION
#   bench/portkey        npm ci: @portkey-ai/gateway with @hono/node-server 1.14.1
#
# LITELLM_VERSION defaults to the newest release that installs from the package
# registry reachable here (1.106.2: 1.106.3 ... 1.109.1 need certifi>=2026.10.19, which
# the registry here does not have). LITELLM_VERSION=newest walks down the release list
# and takes the first one that resolves.
set -euo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python3.11}"
LITELLM_VERSION="${LITELLM_VERSION:-1.106.2}"
LITELLM_VENV="$BENCH/.venvs/litellm"
PORTKEY_DIR="$BENCH/portkey"

say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }

# --- nginx and wrk ---------------------------------------------------------------------
missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
if [ "${#missing[@]}" -gt 0 ]; then
    say "apt-get install ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    if ! $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; then
        $SUDO apt-get update -q >/dev/null
        $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    fi
    # The Debian package may start a system nginx on port 80; it is not ours to keep.
    if command -v service >/dev/null 2>&1; then
        $SUDO service nginx stop >/dev/null 2>&1 || true
    fi
fi

# --- LiteLLM proxy ---------------------------------------------------------------------
litellm_installable() {
    "$LITELLM_VENV/bin/pip" install --dry-run --quiet "litellm[proxy]==$1" >/dev/null 2>&1
}

if [ ! -x "$LITELLM_VENV/bin/python" ]; then
    say "creating $LITELLM_VENV"
    mkdir -p "$(dirname "$LITELLM_VENV")"
    "$PYTHON" -m venv "$LITELLM_VENV"
    "$LITELLM_VENV/bin/pip" install --quiet --upgrade pip
fi
if [ "$LITELLM_VERSION" = "newest" ]; then
    say "looking for the newest litellm[proxy] that installs here"
    found=""
    for v in $("$LITELLM_VENV/bin/pip" index versions litellm 2>/dev/null \
        | sed -n 's/^Available versions: //p' | tr ',' '\n' | tr -d ' ' \
        | grep -E '^[0-9]+\.[0-9]+\.[0-9]+$'); do
        if litellm_installable "$v"; then found="$v"; break; fi
        say "  litellm $v does not install here"
    done
    [ -n "$found" ] || { echo "no installable litellm release found" >&2; exit 1; }
    LITELLM_VERSION="$found"
fi
if [ "$(cat "$LITELLM_VENV/VERSION" 2>/dev/null)" != "$LITELLM_VERSION" ] \
    || [ ! -x "$LITELLM_VENV/bin/litellm" ]; then
    say "installing litellm[proxy]==$LITELLM_VERSION (a minute or two)"
    log="$LITELLM_VENV/install.log"
    if ! "$LITELLM_VENV/bin/pip" install --quiet "litellm[proxy]==$LITELLM_VERSION" >"$log" 2>&1; then
        grep -v "^WARNING: Location" "$log" | tail -20 >&2
        echo "installing litellm[proxy]==$LITELLM_VERSION failed (full log: $log);" \
            "LITELLM_VERSION=newest bench/setup.sh picks the newest release that installs" >&2
        exit 1
    fi
    LITELLM_LOCAL_MODEL_COST_MAP=True "$LITELLM_VENV/bin/python" -c "import litellm" >/dev/null
    echo "$LITELLM_VERSION" >"$LITELLM_VENV/VERSION"
fi
say "litellm $(cat "$LITELLM_VENV/VERSION") in bench/.venvs/litellm"

# --- Portkey gateway -------------------------------------------------------------------
command -v npm >/dev/null 2>&1 || { echo "npm is required (Node 18+)" >&2; exit 1; }
npm_version() { node -p "require('$1/package.json').version" 2>/dev/null || true; }
want_gateway="$(node -p "require('$PORTKEY_DIR/package.json').dependencies['@portkey-ai/gateway']")"
want_hono="$(node -p "require('$PORTKEY_DIR/package.json').overrides['@hono/node-server']")"
modules="$PORTKEY_DIR/node_modules"
if [ "$(npm_version "$modules/@portkey-ai/gateway")" != "$want_gateway" ] \
    || [ "$(npm_version "$modules/@hono/node-server")" != "$want_hono" ] \
    || [ -d "$modules/@portkey-ai/gateway/node_modules/@hono/node-server" ]; then
    say "npm ci in bench/portkey (@portkey-ai/gateway $want_gateway, @hono/node-server $want_hono)"
    # --ignore-scripts: the gateway's only install script is patch-package, and the
    # published package ships no patches.
    (cd "$PORTKEY_DIR" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
fi
say "portkey gateway $(npm_version "$modules/@portkey-ai/gateway")," \
    "@hono/node-server $(npm_version "$modules/@hono/node-server")"
