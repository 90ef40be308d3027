# Sourced by the other scripts: makes .venv, installing Debian's venv module first where it is missing.
if ! python3 -m venv .venv 2>/dev/null; then
    if command -v apt-get >/dev/null; then
        apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    fi
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
