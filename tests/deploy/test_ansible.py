"""The Ansible roles: lint, syntax, a converge on this machine (twice: the second changes nothing),
the rendered units verified and scored by systemd-analyze, and the installed coordinator and worker,
started with the units' command lines and settings, serving a request across network namespaces."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import pytest

from edgeswarm.client import Client
from edgeswarm.dev import zoo
from edgeswarm.dev.localfleet import up_workers_of, wait_until
from edgeswarm.dev.netns.network import Network
from edgeswarm.graph.samples import sample_inputs
from tests.helpers import reference, require_netns, skip_or_fail

REPO = Path(__file__).resolve().parents[2]
ANSIBLE = REPO / "ansible"
BIN = Path(sys.executable).parent
UNITS = ("edgeswarm-coordinator", "edgeswarm-worker")


def tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        skip_or_fail(f"{name} is not installed (pip install -e .[dev])")
    return str(path)


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_NOCOLOR": "1",
        # Facts gathered once per run, not once per play; modules fed over a pipe, not copied as files.
        "ANSIBLE_GATHERING": "smart",
        "ANSIBLE_CACHE_PLUGIN": "memory",
        "ANSIBLE_PIPELINING": "1",
    }
    return subprocess.run(argv, capture_output=True, text=True, cwd=ANSIBLE, env=env, timeout=900, **kwargs)  # type: ignore[call-overload, no-any-return]


def test_ansible_lint_production_profile_passes() -> None:
    done = run([tool("ansible-lint"), "--profile", "production", "--offline", "--nocolor"])
    assert done.returncode == 0, done.stdout + done.stderr


def test_playbook_syntax_check_passes() -> None:
    done = run([tool("ansible-playbook"), "--syntax-check", "site.yml"])
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def converged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[str]]]:
    """Converges this machine, as every group, into a temporary root: returns the root and the
    PLAY RECAP lines of each run (first converge, second converge, check mode with diff)."""
    if os.geteuid() != 0:
        skip_or_fail("the converge writes as root")
    root = tmp_path_factory.mktemp("converge")
    inventory = root / "inventory.yml"
    paths = {
        "edgeswarm_common_prefix": root / "opt",
        "edgeswarm_common_build_dir": root / "dist",
        "edgeswarm_common_source_dir": REPO,
        "edgeswarm_worker_config_dir": root / "etc",
        "edgeswarm_worker_unit_dir": root / "systemd",
        "edgeswarm_worker_cache_dir": root / "cache",
        "edgeswarm_coordinator_config_dir": root / "etc",
        "edgeswarm_coordinator_unit_dir": root / "systemd",
        "edgeswarm_coordinator_state_dir": root / "coordinator-state",
        "mosquitto_conf_dir": root / "mosquitto",
        "edgeswarm_grafana_provisioning_dir": root / "grafana",
        "edgeswarm_grafana_dashboard_dir": root / "grafana-dashboards",
    }
    settings = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "ansible_become": False,
        "edgeswarm_fleet": f"converge-{uuid.uuid4().hex[:6]}",
        "edgeswarm_worker_fleet": "{{ edgeswarm_fleet }}",
        "edgeswarm_coordinator_fleet": "{{ edgeswarm_fleet }}",
        "edgeswarm_common_system_packages": [],
        "edgeswarm_worker_threads": 1,
        "edgeswarm_worker_manage_service": False,
        "edgeswarm_coordinator_manage_service": False,
        "mosquitto_manage_service": False,
        "edgeswarm_grafana_manage_service": False,
        "edgeswarm_grafana_prometheus_url": "http://127.0.0.1:9090",
        **{k: str(v) for k, v in paths.items()},
    }
    _seed_dependencies(root / "opt" / "venv")
    groups = {g: {"hosts": {"localhost": None}} for g in ("coordinators", "workers", "mosquitto", "grafana")}
    inventory.write_text(json.dumps({"all": {"vars": settings, "children": {"fleet": {"children": groups}}}}))
    playbook = [tool("ansible-playbook"), "-i", str(inventory), "site.yml"]
    first = run(playbook)
    assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-3000:]
    # The second converge and the check run change nothing (if the roles are idempotent), so they
    # run at once: each is mostly Ansible's own overhead per task, on a core of its own.
    with ThreadPoolExecutor(2) as pool:
        again = list(pool.map(run, [playbook, [*playbook, "--check", "--diff"]]))
    recaps = []
    for done in (first, *again):
        assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
        recaps.append(next(line for line in done.stdout.splitlines() if line.startswith("localhost")))
    yield root, recaps


def _seed_dependencies(venv: Path) -> None:
    """A virtualenv whose site-packages already holds edgeswarm's dependencies (links to this test
    run's), as on a host with them installed: the converge then installs only edgeswarm's wheel,
    instead of spending minutes unpacking the same packages again. edgeswarm itself is not linked,
    so the role's install of its wheel is what puts it there."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    ours = Path(next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()))
    (theirs,) = venv.glob("lib/python*/site-packages")
    for entry in ours.iterdir():
        name = entry.name.lower()
        if (
            name.startswith(("edgeswarm", "__editable__", "_edgeswarm", "pip", "setuptools"))
            or (theirs / entry.name).exists()
        ):
            continue
        (theirs / entry.name).symlink_to(entry)


def test_a_second_converge_and_a_check_change_nothing(converged: tuple[Path, list[str]]) -> None:
    root, recaps = converged
    print("\n".join(recaps))
    assert "changed=0" not in recaps[0]
    assert " changed=0 " in recaps[1] and " failed=0 " in recaps[1], recaps[1]
    assert " changed=0 " in recaps[2] and " failed=0 " in recaps[2], recaps[2]
    assert (root / "opt" / "venv" / "bin" / "edgeswarm").exists()
    dashboard = json.loads((root / "grafana-dashboards" / "edgeswarm-dashboard.json").read_text())
    assert dashboard["uid"] == "edgeswarm-fleet"
    provider = (root / "grafana" / "dashboards" / "edgeswarm.yml").read_text()
    assert f"path: {root / 'grafana-dashboards'}" in provider


def test_units_pass_systemd_analyze_and_score_ok(converged: tuple[Path, list[str]]) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        skip_or_fail("systemd-analyze is not installed")
    root, _ = converged
    for unit in UNITS:
        path = root / "systemd" / f"{unit}.service"
        verify = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True)
        assert verify.returncode == 0, verify.stderr
        security = subprocess.run(
            [analyze, "security", "--offline=true", "--no-pager", str(path)], capture_output=True, text=True
        )
        overall = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\w+)", security.stdout)
        assert overall is not None, security.stdout + security.stderr
        print(f"{unit}: exposure {overall[1]} {overall[2]}")
        assert float(overall[1]) < 3.0, security.stdout


def unit_command(unit: Path) -> tuple[list[str], dict[str, str]]:
    """ExecStart and Environment of a unit file, as a process would get them."""
    argv: list[str] = []
    env: dict[str, str] = {}
    for line in unit.read_text().splitlines():
        if line.startswith("ExecStart="):
            argv = shlex.split(line.removeprefix("ExecStart="))
        elif line.startswith("Environment="):
            key, _, value = line.removeprefix("Environment=").partition("=")
            env[key] = value
    return argv, env


def test_installed_daemons_find_each_other_and_serve(
    converged: tuple[Path, list[str]], tmp_path: Path
) -> None:
    require_netns()
    root, _ = converged
    model_path = tmp_path / "mlp.onnx"
    onnx.save(zoo.mlp(layers=4, width=32, in_features=16, out_features=4), str(model_path))
    credentials = root / "coordinator-state" / "admin.credentials"
    with Network() as network:
        hosts = {unit: network.add_host(unit.removeprefix("edgeswarm-")) for unit in UNITS}
        argv, env = unit_command(root / "systemd" / "edgeswarm-coordinator.service")
        hosts["edgeswarm-coordinator"].popen(argv, tmp_path / "edgeswarm-coordinator.log", env=env)
        coordinator = f"{hosts['edgeswarm-coordinator'].ip}:50051"
        # Secure by default: the worker joins with a token the admin makes, as the role's
        # edgeswarm_worker_join_token would hand it (the unit's EnvironmentFile).
        wait_until(credentials.is_file, 60, "the coordinator's admin credentials")
        with Client(coordinator, credentials=credentials) as admin:
            token, _ = admin.create_token("worker", description="converge test")
        argv, env = unit_command(root / "systemd" / "edgeswarm-worker.service")
        hosts["edgeswarm-worker"].popen(
            argv, tmp_path / "edgeswarm-worker.log", env={**env, "EDGESWARM_WORKER_JOIN": token}
        )
        wait_until(
            lambda: up_workers_of(coordinator, credentials) == {"localhost"},
            60,
            "the installed worker to join",
        )
        with Client(coordinator, credentials=credentials) as client:
            client.deploy(model_path, "mlp", mode="replicas", replicas=1, timeout=60)
            inputs = sample_inputs(onnx.load(str(model_path)), batch=2)
            got = client.infer("mlp", inputs, timeout=10)
        want = reference(model_path, inputs)
        assert all(np.array_equal(got[k], want[k]) for k in want)
