#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what it needs into .venv, checks generated code,
# lints, type-checks, then runs the tests: all but the fleet tests in two processes (each test file in
# one, so a file's shared fleet is started once), then the fleet tests (hosts in network namespaces,
# several of which measure speed) alone. Arguments, if any, go to one pytest run instead.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
source scripts/system-deps.sh
.venv/bin/python -m pip install --quiet -e '.[dev]'
.venv/bin/python scripts/gen_protos.py --check
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
if [ "$#" -gt 0 ]; then
    exec .venv/bin/python -m pytest "$@"
fi
.venv/bin/python -m pytest -n 2 --dist loadfile -m "not fleet"
.venv/bin/python -m pytest -m fleet
