#!/usr/bin/env bash
# Install what the gateway needs, once: a virtualenv with requirements-dev.txt and Azurite from npm; with
# --with-iac the IaC checkers' virtualenv, with --with-browser Debian's headless Chromium and its ChromeDriver for
# the browser tests (tests/browser/); scripts/test.sh asks for both.
# Re-runs are cheap: each step is skipped while its lock file is unchanged, or its program is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

with_iac=false
with_browser=false
for option in "$@"; do
  case "$option" in
    --with-iac) with_iac=true ;;
    --with-browser) with_browser=true ;;
    *) echo "usage: $0 [--with-iac] [--with-browser]" >&2; exit 2 ;;
  esac
done

PYTHON=${PYTHON:-python3}
"$PYTHON" - <<'PY' || { echo "Python 3.11 or newer is required (set PYTHON=...)" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY
command -v npm >/dev/null || { echo "Node.js 18+ with npm is required for Azurite" >&2; exit 1; }

stamp() { cat "$@" | sha256sum | cut -c1-16; }

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
want=$(stamp requirements.txt requirements-dev.txt)
if [ "$(cat .venv/.installed 2>/dev/null || true)" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -r requirements-dev.txt
  echo "$want" > .venv/.installed
fi

# The IaC checkers (checkov, pycep-parser) pin their own dependencies: they get a virtualenv of their own.
if [ "$with_iac" = true ]; then
  iac=${IAC_VENV:-.venv-iac}
  [ -x "$iac/bin/python" ] || "$PYTHON" -m venv "$iac"
  want=$(stamp requirements-iac.txt)
  if [ "$(cat "$iac/.installed" 2>/dev/null || true)" != "$want" ]; then
    "$iac/bin/python" -m pip install --quiet --upgrade pip
    "$iac/bin/python" -m pip install --quiet -r requirements-iac.txt
    echo "$want" > "$iac/.installed"
  fi
fi

want=$(stamp package-lock.json)
if [ ! -x node_modules/.bin/azurite ] || [ "$(cat node_modules/.installed 2>/dev/null || true)" != "$want" ]; then
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > node_modules/.installed
fi

# The browser tests drive Debian's Chromium through its ChromeDriver. Installed when missing and this user may
# (root, or sudo without a password, with apt-get); otherwise tests/browser/ is skipped with this reason.
has_browser() {
  { command -v chromium >/dev/null || command -v chromium-browser >/dev/null; } && command -v chromedriver >/dev/null
}
if [ "$with_browser" = true ] && ! has_browser; then
  as_root=()
  [ "$(id -u)" -eq 0 ] || as_root=(sudo -n)
  if command -v apt-get >/dev/null && { [ ${#as_root[@]} -eq 0 ] || sudo -n true 2>/dev/null; }; then
    echo "Installing chromium and chromium-driver (Debian packages) for the browser tests"
    export DEBIAN_FRONTEND=noninteractive
    "${as_root[@]}" apt-get update -qq
    "${as_root[@]}" apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
  else
    echo "Chromium or ChromeDriver is missing and cannot be installed here (needs root or sudo, and apt-get):" \
      "the browser tests (tests/browser/) will be skipped" >&2
  fi
fi
