"""The layout's rules, read from the source with `ast`: production code never imports the dev tooling,
and no module grows past 400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "edgeswarm"
DEV = "edgeswarm.dev"
# The `edgeswarm` command offers the demo and the benchmark: it may reach dev/, but only inside the
# functions that run them, so that no other command loads it.
LAZY_ONLY = ("edgeswarm.cli",)
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.AST, module: str, top_level_only: bool = False) -> list[tuple[int, str]]:
    """(line, module) of each import in `tree`; relative imports resolved against `module`."""
    nodes = getattr(tree, "body", []) if top_level_only else ast.walk(tree)
    found = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")[: -node.level]
                base = ".".join([*package, base] if base else package)
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
            found.append((node.lineno, base))
    return found


def production_modules() -> list[Path]:
    return [
        p for p in sorted(PACKAGE.rglob("*.py")) if not module_name(p).startswith((DEV, "edgeswarm._proto"))
    ]


def is_dev(name: str) -> bool:
    return name == DEV or name.startswith(DEV + ".")


def dev_imports(path: Path) -> list[str]:
    module = module_name(path)
    tree = ast.parse(path.read_text(), str(path))
    lazy = module.startswith(LAZY_ONLY)
    return [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for line, name in imported(tree, module, lazy)
        if is_dev(name)
    ]


def test_production_code_never_imports_the_dev_tooling() -> None:
    assert len(production_modules()) > 40  # the walk found the package
    offenders = [line for path in production_modules() for line in dev_imports(path)]
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize(
    "source",
    [
        "from edgeswarm.dev import zoo\n",
        "import edgeswarm.dev.localfleet\n",
        "from edgeswarm.dev.bench.run import run\n",
        "def f():\n    from ...dev.zoo import mlp\n",
        "from edgeswarm import dev\n",
    ],
)
def test_the_check_catches_every_form_of_import(tmp_path: Path, source: str) -> None:
    """The rule itself: each way of importing dev/ from a production module is reported."""
    fake = PACKAGE / "coordinator" / "deploying" / "_probe_module.py"
    tree = ast.parse(source)
    names = [name for _, name in imported(tree, module_name(fake))]
    assert any(is_dev(name) for name in names), names


def test_the_cli_reaches_dev_only_from_inside_a_command() -> None:
    tree = ast.parse("from edgeswarm.dev.demo import run_demo\n")
    assert any(is_dev(name) for _, name in imported(tree, "edgeswarm.cli", top_level_only=True))
    nested = ast.parse("def demo():\n    from edgeswarm.dev.demo import run_demo\n")
    assert not any(is_dev(name) for _, name in imported(nested, "edgeswarm.cli", top_level_only=True))


def test_no_module_is_over_400_lines() -> None:
    sources = [
        p
        for top in ("edgeswarm", "tests", "bench", "scripts")
        for p in sorted((ROOT / top).rglob("*.py"))
        if "_proto" not in p.parts
    ]
    long = {
        str(p.relative_to(ROOT)): n for p in sources if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, long
