# Sourced by the other scripts: creates .venv and installs the project into it when
# pyproject.toml changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PYTHON_BIN="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "==> creating virtual environment in .venv"
  "$PYTHON_BIN" -m venv "$VENV"
fi

stamp="$VENV/.installed-$( (cat "$ROOT/pyproject.toml"; echo "$EXTRAS") | cksum | cut -d' ' -f1)"
if [ ! -f "$stamp" ]; then
  echo "==> installing prefactor-integrations[$EXTRAS] (first run takes about a minute)"
  "$VENV/bin/python" -m pip install -qq --upgrade pip
  "$VENV/bin/python" -m pip install -qq --progress-bar off -e "$ROOT[$EXTRAS]"
  touch "$stamp"
fi
export PATH="$VENV/bin:$PATH"
cd "$ROOT"
