# Sourced by the other scripts: makes .venv match uv.lock (`uv sync --locked`) with the extras
# and groups in UV_SYNC_ARGS, then puts .venv first on PATH.
source "$(dirname "${BASH_SOURCE[0]}")/_uv.sh"

[ -x "$ROOT/.venv/bin/python" ] || echo "==> creating .venv from uv.lock (first run: seconds to a minute, by network)"
# Prints nothing when .venv already matches the lock.
# shellcheck disable=SC2086  # UV_SYNC_ARGS is a list of flags
if ! "$UV" sync --locked --quiet --python "$PYTHON_BIN" ${UV_SYNC_ARGS:-}; then
  if ! "$UV" lock --check --quiet --python "$PYTHON_BIN" 2>/dev/null; then
    echo "error: uv.lock does not match pyproject.toml. Run ./scripts/lock and commit uv.lock." >&2
  fi
  exit 1
fi
export PATH="$ROOT/.venv/bin:$PATH" VIRTUAL_ENV="$ROOT/.venv"
cd "$ROOT"
