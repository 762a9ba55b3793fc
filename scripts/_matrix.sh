# Run by `./scripts/test --matrix [pytest args]`: the same pytest suite against three dependency
# sets, each in its own environment under .matrix/:
#   locked  exactly uv.lock (what CI runs)
#   lowest  the oldest releases pyproject.toml allows for our direct dependencies
#   latest  the newest releases, ignoring the lock (mypy runs here too: type drift breaks first)
# The test tools themselves stay at their locked versions in every session. Packages that our
# own dependencies need as well (packaging, typing-extensions, pyyaml, ...) are left out of those
# pins and resolved with the session: a locked packaging 26 would otherwise hold langchain-core
# (<26 up to 1.2.x) above its lowest release, and keep the newest release out of `latest`.
# MATRIX_SESSIONS="lowest latest" picks sessions.
source "$(dirname "${BASH_SOURCE[0]}")/_uv.sh"
source "$(dirname "${BASH_SOURCE[0]}")/_browser.sh"
cd "$ROOT"

dev_pins="$ROOT/.matrix/dev-tools.txt"
mkdir -p "$ROOT/.matrix"
runtime_names=$("$UV" export --frozen --quiet --no-dev --extra all --no-emit-project --no-hashes \
  --no-annotate --no-header | sed 's/[=; ].*//')
"$UV" export --frozen --quiet --only-group dev --no-emit-project --no-hashes --no-annotate \
  --no-header | awk -v names="$runtime_names" '
    BEGIN { n = split(names, list, "\n"); for (i = 1; i <= n; i++) shared[list[i]] = 1 }
    { name = $0; sub(/[=; ].*/, "", name); if (!(name in shared)) print }' > "$dev_pins"

summary=()
status=0
for session in ${MATRIX_SESSIONS:-locked lowest latest}; do
  env="$ROOT/.matrix/$session"
  echo "==> [$session] installing"
  case "$session" in
    locked)
      UV_PROJECT_ENVIRONMENT="$env" "$UV" sync --locked --quiet --python "$PYTHON_BIN" --extra all ;;
    lowest|latest)
      rm -rf "$env"
      "$UV" venv --quiet --python "$PYTHON_BIN" "$env"
      resolution=highest
      [ "$session" = lowest ] && resolution=lowest-direct
      "$UV" pip install --quiet --python "$env/bin/python" --resolution "$resolution" \
        -e ".[all]" -r "$dev_pins" ;;
    *) echo "error: unknown matrix session '$session' (locked, lowest, latest)" >&2; exit 2 ;;
  esac
  versions=$("$env/bin/python" - <<'PY'
from importlib.metadata import version
names = ["langchain-core", "langchain", "langgraph", "llama-index-core", "llama-index-workflows",
         "llama-index-instrumentation", "httpx", "pydantic"]
print(" ".join(f"{n}={version(n)}" for n in names))
PY
)
  echo "==> [$session] $versions"
  result=passed
  if [ "$session" = latest ]; then
    echo "==> [$session] mypy"
    PATH="$env/bin:$PATH" VIRTUAL_ENV="$env" mypy || result="failed (mypy)"
  fi
  echo "==> [$session] pytest"
  PATH="$env/bin:$PATH" VIRTUAL_ENV="$env" "$env/bin/python" -m pytest -q "$@" || result="failed"
  [ "$result" = passed ] || status=1
  summary+=("$session: $result  ($versions)")
done

echo
echo "==> matrix on $("$PYTHON_BIN" --version)"
printf '  %s\n' "${summary[@]}"
exit "$status"
