"""The coordinator's model store: content addresses, what room is made from, and what is kept."""

from __future__ import annotations

import os
from pathlib import Path

import onnx
import pytest

from edgeswarm.coordinator.modelstore import ModelStore
from edgeswarm.dev import zoo
from edgeswarm.errors import NotFound, ResourceExhausted


def model_bytes(seed: int, width: int = 64) -> bytes:
    return zoo.mlp(layers=2, width=width, in_features=16, out_features=4, seed=seed).SerializeToString()


def aged(store: ModelStore, sha: str, seconds_ago: float) -> None:
    path = store.models_dir / sha / "model.json"
    when = path.stat().st_mtime - seconds_ago
    os.utime(path, (when, when))


def test_the_same_files_have_one_address_whatever_the_name(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    first = store.put("a", model_bytes(0))
    again = store.put("b", model_bytes(0))
    other = store.put("c", model_bytes(1))
    assert first.sha256 == again.sha256 != other.sha256
    assert store.model(first.sha256).name == "b"  # as last deployed
    assert len(store.models()) == 2
    assert onnx.load_from_string(first.path.read_bytes()).graph.node


def test_room_comes_from_unused_stages_then_the_least_recently_used_undeployed_model(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    old, recent, deployed = (
        store.put(n, model_bytes(i)) for i, n in enumerate(("old", "recent", "deployed"))
    )
    aged(store, old.sha256, 100)
    aged(store, recent.sha256, 10)
    used_stage = store.put_stage(model_bytes(7, width=16))
    spare_stage = store.put_stage(model_bytes(8, width=16))  # too small alone to make the room
    store.quota = store.used() + old.size // 2  # room for half a model more
    store.make_room(old.size, keep_models={deployed.sha256}, keep_stages={used_stage})
    assert not store.has_stage(spare_stage) and store.has_stage(used_stage)
    assert {m.name for m in store.models()} == {"recent", "deployed"}
    assert store.used() + old.size <= store.quota


def test_what_cannot_fit_is_refused_with_the_numbers_and_nothing_is_deleted(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    kept = store.put("kept", model_bytes(0))
    store.quota = store.used() + 10
    with pytest.raises(ResourceExhausted, match=rf"its quota is {store.quota} bytes and \d+ of them hold"):
        store.make_room(kept.size, keep_models={kept.sha256}, keep_stages=set())
    assert [m.name for m in store.models()] == ["kept"]


def test_a_stage_names_its_data_file_and_a_missing_one_is_named(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    with pytest.raises(NotFound, match="is not in the coordinator's store"):
        store.stage_files("0" * 64)
    sha = store.put_stage(model_bytes(0))
    assert store.stage_files(sha) == [(sha, store.stage_path(sha), False)]


def test_partial_uploads_are_swept_at_start(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    with store.incoming() as directory:
        (directory / "model.onnx").write_bytes(b"half")
        partial = directory
        reopened = ModelStore(tmp_path)  # a coordinator that started while this upload was cut off
        assert not partial.exists() and not list(reopened.incoming_dir.iterdir())
    assert not list(store.incoming_dir.iterdir())
