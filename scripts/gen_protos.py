"""Regenerate edgeswarm/_proto from protos/; with --check, fail if the committed files differ."""

from __future__ import annotations

import argparse
import filecmp
import re
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
TARGET = ROOT / "edgeswarm" / "_proto"
# Generated modules import each other by proto package ("from edgeswarm.v1 import ...");
# they live under edgeswarm._proto, so those imports are rewritten.
IMPORT = re.compile(r"^from (inference|edgeswarm\.v1)( import )", re.MULTILINE)


def generate(out: Path) -> None:
    sources = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    args = ["protoc", f"-I{PROTOS}", f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}"]
    if protoc.main([*args, *sources]) != 0:
        raise SystemExit("protoc failed")
    for path in out.rglob("*.py*"):
        path.write_text(IMPORT.sub(r"from edgeswarm._proto.\1\2", path.read_text()))
    for folder in [out, *(p for p in out.rglob("*") if p.is_dir())]:
        (folder / "__init__.py").touch()


def differences(a: Path, b: Path) -> list[str]:
    files_a = {p.relative_to(a) for p in a.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    files_b = {p.relative_to(b) for p in b.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    diff = sorted(str(p) for p in files_a ^ files_b)
    diff += sorted(str(p) for p in files_a & files_b if not filecmp.cmp(a / p, b / p, shallow=False))
    return diff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    check = parser.parse_args().check
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        generate(out)
        if check:
            changed = differences(out, TARGET)
            if changed:
                sys.exit(
                    "generated protobuf modules are stale; run scripts/gen_protos.py: " + ", ".join(changed)
                )
            print("generated protobuf modules are up to date")
            return
        shutil.rmtree(TARGET, ignore_errors=True)
        shutil.copytree(out, TARGET)


if __name__ == "__main__":
    main()
