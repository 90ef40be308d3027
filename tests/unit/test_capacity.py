"""The worker's own measurements: segment profiling in groups that respect its memory, on real ONNX
Runtime sessions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeswarm.worker.capacity import groups_by_size, profile_chain


def test_groups_are_consecutive_and_within_the_budget() -> None:
    assert groups_by_size([3, 3, 3, 3], 6) == [range(0, 2), range(2, 4)]
    assert groups_by_size([3, 3, 3], 100) == [range(0, 3)]
    # An item over the budget stands alone; nothing is dropped or repeated.
    assert groups_by_size([1, 10, 1, 1], 5) == [range(0, 1), range(1, 2), range(2, 4)]
    assert groups_by_size([], 5) == []


def matmul_segment(path: Path, source: str, target: str, rows: int, columns: int) -> None:
    weight = numpy_helper.from_array(np.full((rows, columns), 0.01, np.float32), f"w_{target}")
    graph = helper.make_graph(
        [helper.make_node("MatMul", [source, weight.name], [target])],
        target,
        [helper.make_tensor_value_info(source, TensorProto.FLOAT, [1, rows])],
        [helper.make_tensor_value_info(target, TensorProto.FLOAT, [1, columns])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def chain(tmp_path: Path) -> list[Path]:
    """Three chained segments; the middle one does 256 times the work of the first."""
    paths = [tmp_path / f"{i}.onnx" for i in range(3)]
    matmul_segment(paths[0], "x", "a", 64, 64)
    matmul_segment(paths[1], "a", "b", 64, 16384)
    matmul_segment(paths[2], "b", "c", 16384, 8)
    return paths


def test_each_segment_is_timed_on_what_the_one_before_produced(tmp_path: Path) -> None:
    paths = chain(tmp_path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    inputs = {"x": np.ones((1, 64), np.float32)}
    together = profile_chain(paths, inputs, options, repeats=5, warm_up=0.01, min_seconds=0.05)
    # A budget of one segment's bytes opens them one at a time; the figures are of the same kind.
    largest = max(p.stat().st_size for p in paths)
    apart = profile_chain(paths, inputs, options, repeats=5, budget=largest, warm_up=0.01, min_seconds=0.05)
    for seconds in (together, apart):
        assert len(seconds) == 3 and all(s > 0 for s in seconds)
        assert seconds[1] > seconds[0]  # 256 times the multiply-adds


def test_a_missing_input_is_an_error_not_a_figure(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="x"):
        profile_chain(chain(tmp_path), {"y": np.ones((1, 64), np.float32)}, ort.SessionOptions(), repeats=1)
