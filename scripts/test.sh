#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what it needs into .venv, checks generated code,
# lints, type-checks, then runs unit and integration tests (real processes on 127.0.0.1).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
source scripts/system-deps.sh
.venv/bin/python -m pip install --quiet -e '.[dev]'
.venv/bin/python scripts/gen_protos.py --check
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
