# Sourced by scripts/test: makes headless Chromium available for the trace-picture test.
# It comes from the system's packages (no Python package ships it), so it is installed with
# apt-get where the script may do so; elsewhere that one test is skipped with the reason.
if [ -z "${PREFACTOR_SKIP_BROWSER_TESTS:-}" ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing Chromium for the trace-picture test (apt-get, once)"
    apt-get update -qq >/dev/null && \
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
  if ! command -v chromium >/dev/null 2>&1; then
    echo "==> Chromium is not installed (install it with: sudo apt-get install chromium);" \
         "the trace-picture browser test will be skipped"
    export PREFACTOR_SKIP_BROWSER_TESTS=1
  fi
fi
