# Sourced by the other scripts: finds this machine's Python 3.10+ and a pinned uv, bootstrapped
# once from the package index into .tools/ when it is missing. uv never downloads an interpreter.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
UV_VERSION="0.13.10"
PYTHON_BIN="${PYTHON:-python3}"
export UV_PYTHON_DOWNLOADS=never UV_PROJECT_ENVIRONMENT="$ROOT/.venv"

if ! "$PYTHON_BIN" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "error: prefactor-integrations needs Python 3.10 or newer; '$PYTHON_BIN' is" \
       "$("$PYTHON_BIN" --version 2>&1 || echo 'not installed'). Set PYTHON=/path/to/python3.x." >&2
  exit 1
fi

UV="$ROOT/.tools/uv-$UV_VERSION/bin/uv"
if [ ! -x "$UV" ]; then
  echo "==> bootstrapping uv $UV_VERSION into .tools/ (once)"
  if ! "$PYTHON_BIN" -m pip --version >/dev/null 2>&1; then
    echo "error: '$PYTHON_BIN -m pip' is missing, so uv cannot be bootstrapped." \
         "Install pip (Debian/Ubuntu: apt-get install python3-pip)." >&2
    exit 1
  fi
  # pip's own notices (running as root, unused local indexes) are noise here.
  "$PYTHON_BIN" -m pip install -qq --disable-pip-version-check \
    --target "$ROOT/.tools/uv-$UV_VERSION" "uv==$UV_VERSION" 2>&1 | grep -v '^WARNING' || true
  [ -x "$UV" ] || { echo "error: installing uv $UV_VERSION with pip failed" >&2; exit 1; }
fi
