"""A plan and what it served, as Triton's extensions of the inference service describe them: its
model configuration and its statistics. Pure: proto messages from plans and counters."""

from __future__ import annotations

import math

from edgeswarm import codec
from edgeswarm._proto.edgeswarm.v1 import tensor_pb2
from edgeswarm._proto.inference import grpc_predict_v2_pb2 as pb
from edgeswarm._proto.inference import model_config_pb2 as config_pb
from edgeswarm.coordinator.serving.statistics import Duration, ModelStats
from edgeswarm.plans import Plan, Signature, TensorSpec

PLATFORM = "onnxruntime_onnx"
BACKEND = "onnxruntime"
# The largest max_batch_size reported when nothing smaller bounds a request's batch.
MAX_BATCH = 1024


def batched(signature: Signature) -> bool:
    """Whether the model has a batch dimension: every input and output's first dimension is free."""
    tensors = (*signature.inputs, *signature.outputs)
    return bool(tensors) and all(t.shape and t.shape[0] == -1 for t in tensors)


def max_batch_size(plan: Plan, max_message_bytes: int) -> int:
    """0 for a model without a batch dimension; else dynamic batching's limit when it is on, or the
    most items whose inputs fit one message (at most MAX_BATCH)."""
    if not batched(plan.signature):
        return 0
    if plan.batch_max > 1:
        return plan.batch_max
    item = 0
    for spec in plan.signature.inputs:
        if any(d < 0 for d in spec.shape[1:]):
            return MAX_BATCH  # its size per item is not fixed
        item += math.prod(spec.shape[1:]) * codec.dtype_of(spec.datatype).itemsize
    return max(1, min(MAX_BATCH, max_message_bytes // max(item, 1)))


def batch_of(signature: Signature, tensors: list[tensor_pb2.Tensor]) -> int:
    """Inferences in one request: its batch size for a batched model, else 1."""
    if not batched(signature) or not tensors or not tensors[0].shape:
        return 1
    return int(tensors[0].shape[0])


def _data_type(spec: TensorSpec) -> str:
    return f"TYPE_{spec.datatype}"  # a name of the DataType enum


def model_config(plan: Plan, max_message_bytes: int) -> config_pb.ModelConfig:
    """The model's configuration: with a batch dimension, dims leave it out (Triton's convention)."""
    limit = max_batch_size(plan, max_message_bytes)
    skip = 1 if limit else 0
    config = config_pb.ModelConfig(
        name=plan.model,
        platform=PLATFORM,
        backend=BACKEND,
        max_batch_size=limit,
        input=[
            config_pb.ModelInput(name=t.name, data_type=_data_type(t), dims=t.shape[skip:])
            for t in plan.signature.inputs
        ],
        output=[
            config_pb.ModelOutput(name=t.name, data_type=_data_type(t), dims=t.shape[skip:])
            for t in plan.signature.outputs
        ],
    )
    if plan.batch_max > 1:
        delay_us = round(1e6 * plan.batch_delay_s)
        config.dynamic_batching.CopyFrom(
            config_pb.ModelDynamicBatching(max_queue_delay_microseconds=delay_us)
        )
    return config


def _duration(value: Duration) -> pb.StatisticDuration:
    return pb.StatisticDuration(count=value.count, ns=value.ns)


def model_statistics(model: str, version: str, stats: ModelStats) -> pb.ModelStatistics:
    return pb.ModelStatistics(
        name=model,
        version=version,
        last_inference=stats.last_inference_ms,
        inference_count=stats.inference_count,
        execution_count=stats.execution_count,
        inference_stats=pb.InferStatistics(
            success=_duration(stats.success),
            fail=_duration(stats.fail),
            queue=_duration(stats.queue),
            compute_input=_duration(stats.compute_input),
            compute_infer=_duration(stats.compute_infer),
            compute_output=_duration(stats.compute_output),
        ),
    )
