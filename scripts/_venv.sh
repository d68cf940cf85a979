# Shared set-up for ./scripts/test and ./scripts/demo: create or reuse .venv and keep it in step
# with pyproject.toml. Sourced, not run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${TWIN_VENV:-$ROOT/.venv}"

find_python() {
    for candidate in python3.11 python3 python; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    echo "error: Python 3.11 is required (python3.11 not found on PATH)" >&2
    return 1
}

ensure_venv() {
    local extras="${1:-}"
    if [ ! -x "$VENV/bin/python" ]; then
        local py
        py="$(find_python)"
        echo "==> creating $VENV with $py"
        "$py" -m venv "$VENV"
        "$VENV/bin/python" -m pip install --quiet --upgrade pip
    fi
    # Reinstall only when the dependency list changed since the last install.
    local stamp_file="$VENV/.twin-installed"
    local want
    want="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)-${extras}"
    local have=""
    [ -f "$stamp_file" ] && have="$(cat "$stamp_file")"
    # An install with the dev extras also serves the plain install.
    if [ "$have" != "$want" ] && [ "$have" != "${want}dev" ]; then
        echo "==> installing twin-service${extras:+[$extras]} into $VENV (first run takes a few minutes)"
        # torch is pinned to the CPU build that pip finds locally; see README.
        "$VENV/bin/python" -m pip install --quiet -e "$ROOT${extras:+[$extras]}"
        echo "$want" >"$stamp_file"
    fi
}
