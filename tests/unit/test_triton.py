"""Triton's view of a plan and of what it served: model configuration, statistics, and the metrics
exposed under Triton's names. Pure."""

from __future__ import annotations

from dataclasses import replace

from prometheus_client import CollectorRegistry, generate_latest

from edgeswarm._proto.edgeswarm.v1 import tensor_pb2
from edgeswarm.coordinator.serving.statistics import Phases, Statistics, TritonMetrics
from edgeswarm.coordinator.serving.triton import (
    MAX_BATCH,
    batch_of,
    max_batch_size,
    model_config,
    model_statistics,
)
from edgeswarm.plans import Mode, Plan, Signature, TensorSpec

IMAGE = Signature(
    (TensorSpec("image", "FP32", (-1, 3, 8, 8)), TensorSpec("flag", "BOOL", (-1, 1))),
    (TensorSpec("logits", "FP16", (-1, 10)),),
)


def plan(signature: Signature, batch_max: int = 0) -> Plan:
    return Plan("cnn", 2, Mode.REPLICAS, signature, (), batch_max=batch_max, batch_delay_s=0.002)


def test_a_batched_model_reports_dims_without_the_batch_dimension() -> None:
    config = model_config(plan(IMAGE), max_message_bytes=64 * 1024)
    item = 3 * 8 * 8 * 4 + 1  # bytes of one item's inputs
    assert config.max_batch_size == 64 * 1024 // item
    assert [(i.name, i.data_type, list(i.dims)) for i in config.input] == [
        ("image", 11, [3, 8, 8]),  # TYPE_FP32
        ("flag", 1, [1]),  # TYPE_BOOL
    ]
    assert [(o.name, o.data_type, list(o.dims)) for o in config.output] == [("logits", 10, [10])]  # TYPE_FP16
    assert config.platform == "onnxruntime_onnx" and not config.HasField("dynamic_batching")


def test_dynamic_batching_sets_the_limit_and_the_queue_delay() -> None:
    config = model_config(plan(IMAGE, batch_max=8), max_message_bytes=1 << 30)
    assert config.max_batch_size == 8
    assert config.dynamic_batching.max_queue_delay_microseconds == 2000


def test_a_model_without_a_batch_dimension_reports_0_and_every_dim() -> None:
    fixed = Signature((TensorSpec("x", "INT64", (4, 16)),), (TensorSpec("y", "FP32", (-1, 16)),))
    config = model_config(plan(fixed), 1 << 20)
    assert config.max_batch_size == 0 and list(config.input[0].dims) == [4, 16]
    assert max_batch_size(plan(fixed, batch_max=8), 1 << 20) == 0  # batching needs a batch dimension


def test_a_free_dimension_beyond_the_batch_leaves_the_limit_at_its_most() -> None:
    text = Signature((TensorSpec("ids", "INT64", (-1, -1)),), (TensorSpec("h", "FP32", (-1, -1, 8)),))
    assert max_batch_size(plan(text), 1 << 20) == MAX_BATCH


def test_inferences_per_request_are_its_batch_size() -> None:
    tensor = tensor_pb2.Tensor(name="image", datatype="FP32", shape=[5, 3, 8, 8])
    assert batch_of(IMAGE, [tensor]) == 5
    fixed = replace(IMAGE, inputs=(TensorSpec("image", "FP32", (5, 3, 8, 8)),))
    assert batch_of(fixed, [tensor]) == 1


def test_statistics_add_up_phases_and_the_metrics_carry_the_same_numbers() -> None:
    stats = Statistics(now_ms=lambda: 1234)
    stats.succeeded("cnn", "2", 4, Phases(0.001, 0.002, 0.010, 0.003))
    stats.succeeded("cnn", "2", 4, Phases(0.001, 0.002, 0.020, 0.003))
    stats.failed("cnn", "2", 0.5)
    [(model, version, cnn)] = stats.of("cnn")
    message = model_statistics(model, version, cnn)
    assert (message.inference_count, message.execution_count, message.last_inference) == (8, 2, 1234)
    phases = message.inference_stats
    assert (phases.success.count, phases.success.ns) == (2, 16_000_000 + 26_000_000)
    assert (phases.compute_infer.count, phases.compute_infer.ns) == (2, 30_000_000)
    assert (phases.fail.count, phases.fail.ns) == (1, 500_000_000)
    assert stats.of("other") == [] and stats.of("cnn", "1") == []

    registry = CollectorRegistry()
    registry.register(TritonMetrics(stats))
    text = generate_latest(registry).decode()
    labels = '{model="cnn",version="2"}'
    assert f"nv_inference_request_success{labels} 2.0" in text
    assert f"nv_inference_request_failure{labels} 1.0" in text
    assert f"nv_inference_count{labels} 8.0" in text
    assert f"nv_inference_exec_count{labels} 2.0" in text
    assert f"nv_inference_compute_infer_duration_us{labels} 30000.0" in text
    assert f"nv_inference_request_duration_us{labels} 542000.0" in text
    assert "_total" not in text  # Triton's names exactly
