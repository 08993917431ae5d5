#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what is missing, lints, then runs pytest.
# pytest starts and stops its own Azurite (devhost/azurite.py); extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --with-iac --with-browser
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
