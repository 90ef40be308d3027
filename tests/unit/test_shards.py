"""A model stored with external data, split into stage files, chains back to the whole model's outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx.external_data_helper import uses_external_data

from edgeswarm.dev import zoo
from edgeswarm.dev.llm import tiny_llm
from edgeswarm.graph.costs import tensor_nbytes
from edgeswarm.graph.inspection import inspect_model
from edgeswarm.graph.partition import balanced_cuts, natural_cuts
from edgeswarm.graph.samples import sample_inputs
from edgeswarm.graph.stagefiles import INLINE_BYTES, split_to_files
from tests.helpers import OPTIONS, run_whole
from tests.unit.test_recompute import POSITIONS, feeds


def save_external(model: onnx.ModelProto, path: Path) -> None:
    """Saves every weight of `model` into one data file beside `path`; `model` itself is left as it is."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    onnx.save_model(
        copy, str(path), save_as_external_data=True, location=f"{path.stem}.data", size_threshold=0
    )


def run_stage_files(
    model_path: Path,
    cuts: list[int],
    out: Path,
    inputs: dict[str, np.ndarray],
    recompute: tuple[str, ...] = (),
) -> dict:
    env = dict(inputs)
    for stage in split_to_files(model_path, cuts, out, recompute=recompute):
        session = ort.InferenceSession(str(stage.model), OPTIONS)
        outputs = session.run(list(stage.part.outputs), {n: env[n] for n in stage.part.inputs})
        env.update(zip(stage.part.outputs, outputs, strict=True))
        env = {name: env[name] for name in stage.part.carry}
    return env


@pytest.mark.parametrize(
    "build",
    [
        lambda: zoo.mlp(layers=4, width=32, in_features=16, out_features=4),
        lambda: zoo.transformer_encoder(layers=3, d_model=32, heads=4, d_ff=64, seq=8),
        zoo.tied,
    ],
    ids=["mlp", "transformer", "tied"],
)
def test_stage_files_of_an_external_data_model_are_bit_exact(build, tmp_path: Path) -> None:
    model = build()
    source = tmp_path / "model.onnx"
    save_external(model, source)
    inputs = sample_inputs(model, batch=2)
    want = run_whole(model, inputs)
    rng = np.random.default_rng(0)
    n = len(model.graph.node)
    plans = [[c] for c in natural_cuts(model)]
    plans += [sorted(rng.choice(np.arange(1, n), size=k - 1, replace=False).tolist()) for k in range(2, 7)]
    for i, cuts in enumerate(plans):
        got = run_stage_files(source, cuts, tmp_path / f"plan{i}", inputs)
        assert got.keys() == want.keys()
        for key in want:
            np.testing.assert_array_equal(got[key], want[key], err_msg=f"cuts {cuts}")


def test_each_stage_file_holds_only_its_own_weights(tmp_path: Path) -> None:
    model = zoo.tied(width=64)
    source = tmp_path / "model.onnx"
    save_external(model, source)
    cut = len(model.graph.node) // 2
    stages = split_to_files(source, [cut], tmp_path / "out")
    sizes = {i.name: i for i in model.graph.initializer}
    for stage in stages:
        proto = onnx.load(str(stage.model), load_external_data=False)
        names = {i.name for i in proto.graph.initializer}
        external = [i.name for i in proto.graph.initializer if uses_external_data(i)]
        assert external
        assert all(tensor_nbytes(sizes[n]) > INLINE_BYTES for n in external)
        expected = sum(len(onnx.numpy_helper.to_array(sizes[n]).tobytes()) for n in external)
        assert stage.data.stat().st_size == expected
        assert stage.part.parameter_bytes == sum(tensor_nbytes(sizes[n]) for n in names)
    # The tied weight is read on both sides of the cut, so each stage file has its own copy.
    first, second = (
        {i.name for i in onnx.load(str(s.model), load_external_data=False).graph.initializer} for s in stages
    )
    assert first & second


def test_a_missing_data_file_is_named(tmp_path: Path) -> None:
    model = zoo.mlp(layers=2, width=8, in_features=4, out_features=2)
    source = tmp_path / "model.onnx"
    save_external(model, source)
    (tmp_path / "model.data").unlink()
    with pytest.raises(FileNotFoundError, match=r"model\.data"):
        split_to_files(source, [2], tmp_path / "out")


def test_inspect_reads_an_external_data_model_without_its_weights(tmp_path: Path) -> None:
    model = zoo.transformer_encoder(layers=2, d_model=32, heads=4, d_ff=64, seq=8)
    source = tmp_path / "model.onnx"
    save_external(model, source)
    run = subprocess.run(
        [sys.executable, "-m", "edgeswarm", "inspect", "--json", str(source)], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == inspect_model(model)


def test_a_decoder_in_external_data_computes_its_position_tensors_in_each_stage_file(tmp_path: Path) -> None:
    """The mask bias and rotary tables a decoder shares between its layers do not cross a stage file's
    cut (they would grow with the context); the chained stages give the whole model's bits."""
    model = tiny_llm(layers=4, shared_positions=True)
    source = tmp_path / "llm.onnx"
    save_external(model, source)
    cuts = balanced_cuts(model, 3)
    stages = split_to_files(source, cuts, tmp_path / "cut", recompute=POSITIONS)
    for stage in stages[:-1]:
        crossing = [t for t in stage.part.outputs if not t.startswith("present.")]
        assert len(crossing) == 1, crossing  # the hidden state alone
    got = run_stage_files(source, cuts, tmp_path / "again", feeds(), POSITIONS)
    want = run_whole(model, feeds())
    assert got.keys() == want.keys() and all(np.array_equal(got[k], want[k]) for k in want)
