#!/usr/bin/env bash
# The main job: installs edgeswarm into .venv, then runs `edgeswarm demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
.venv/bin/python -m pip install --quiet .
exec .venv/bin/edgeswarm demo "$@"
