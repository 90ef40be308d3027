from pathlib import Path

import pytest

from edgeswarm.config import CoordinatorSettings, WorkerSettings, load


def test_file_then_environment_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "worker.toml"
    config.write_text('fleet = "from-file"\nname = "from-file"\nthreads = 3\nlisten = "0.0.0.0:7000"\n')
    monkeypatch.setenv("EDGESWARM_WORKER_NAME", "from-env")
    monkeypatch.setenv("EDGESWARM_WORKER_THREADS", "5")
    settings = load(WorkerSettings, config, {"threads": 7, "listen": None})
    assert settings.fleet == "from-file"  # only the file says it
    assert settings.name == "from-env"  # the environment beats the file
    assert settings.threads == 7  # a flag beats both
    assert settings.listen == "0.0.0.0:7000"  # a flag not given changes nothing


def test_without_a_file_defaults_and_environment_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGESWARM_COORDINATOR_FLEET", "lab")
    settings = load(CoordinatorSettings, None, {})
    assert settings.fleet == "lab"
    assert settings.listen == "0.0.0.0:50051"


def test_unknown_keys_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("flet = 'typo'\n")
    with pytest.raises(ValueError, match="flet"):
        load(CoordinatorSettings, config, {})
