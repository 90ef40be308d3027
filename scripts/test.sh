#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what it needs into .venv, checks generated code,
# lints, type-checks, then runs the tests: all but those that compare measured speeds in two
# processes (each test file in one, so a file's shared fleet is started once), then those alone.
# Arguments, if any, go to one pytest run instead.
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
.venv/bin/python -m pytest -n 2 --dist loadfile -m "not measures"
.venv/bin/python -m pytest -m measures
