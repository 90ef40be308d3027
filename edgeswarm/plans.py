"""Frozen value types shared by the coordinator, the workers and the client: a model's plan, what it
is made of, and the choices a deploy names (mode, objective) and a worker's state, as enums checked
once where they enter (`parse`)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Self

from edgeswarm.errors import InvalidRequest


class _Choice(StrEnum):
    @classmethod
    def parse(cls, value: str, what: str) -> Self:
        """`value` as a member; InvalidRequest naming `what` and the choices otherwise."""
        try:
            return cls(value)
        except ValueError:
            choices = ", ".join(cls)
            raise InvalidRequest(f"{what} must be one of {choices}, not {value!r}") from None


class Mode(_Choice):
    """How a deploy places a model: by the planner, or as a fixed shape."""

    AUTO = "auto"
    REPLICAS = "replicas"
    PIPELINE = "pipeline"


class Objective(_Choice):
    """What the planner optimizes for an auto deploy."""

    THROUGHPUT = "throughput"  # requests/s of all routes together
    LATENCY = "latency"  # the slowest route's time for one request
    FIT = "fit"  # fewest workers in a route that holds the model


class Quantization(_Choice):
    """How a deploy may quantize a model before cutting it (graph/quantize.py)."""

    INT8 = "int8"  # ONNX Runtime dynamic quantization of MatMul/Gemm weights
    INT4 = "int4"  # weight-only MatMulNBits, block size 32


class WorkerState(_Choice):
    UP = "up"
    DOWN = "down"
    # Shown in status only: up, but left out of routes for a while after a failure.
    BANNED = "banned"


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output: KServe datatype and shape, -1 for a dimension of any size."""

    name: str
    datatype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Signature:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def input(self, name: str) -> TensorSpec | None:
        return next((t for t in self.inputs if t.name == name), None)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.outputs)


@dataclass(frozen=True)
class StateSpec:
    """A decoder's state pair: `output` feeds `input` at the next step; it grows along `axis`."""

    output: str
    input: str
    axis: int


@dataclass(frozen=True)
class StageSpec:
    """One layer range of a model and the workers that hold a replica of it."""

    index: int
    sha256: str
    size: int
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    # Tensors handed on after this stage: everything a later stage reads, or the final outputs.
    carry: tuple[str, ...]
    workers: tuple[str, ...]
    # Stages of one group form a route; groups (pipelines, or sets of replicas) stand side by side.
    group: int = 0


@dataclass(frozen=True)
class Plan:
    """How one model is placed. Immutable; a re-deploy swaps in a new plan with a higher version."""

    model: str
    version: int
    mode: Mode
    signature: Signature
    stages: tuple[StageSpec, ...]

    # For a planned deploy: the objective and the planner's predicted requests/s and latency.
    objective: Objective | None = None
    predicted_rps: float = 0.0
    predicted_latency_s: float = 0.0
    # Dynamic batching at the entry stage: most requests per call and the longest wait; off below 2.
    batch_max: int = 0
    batch_delay_s: float = 0.0
    # The quantization the deploy applied before cutting the model; None: as sent.
    quantization: Quantization | None = None
    # A decoder's state pairs, each inside one stage; empty for a model that is not one.
    states: tuple[StateSpec, ...] = ()
    # The sha256 of the tokenizer deployed with the model, in the coordinator's store; "": none.
    tokenizer: str = ""

    def states_of(self, stage: StageSpec) -> tuple[StateSpec, ...]:
        """The state pairs `stage` reads and writes."""
        return tuple(s for s in self.states if s.input in stage.inputs)

    @property
    def workers(self) -> frozenset[str]:
        return frozenset(w for stage in self.stages for w in stage.workers)

    def groups(self) -> list[tuple[StageSpec, ...]]:
        """The plan's routes: the stages of each group, in order."""
        ids = sorted({s.group for s in self.stages})
        return [tuple(s for s in self.stages if s.group == g) for g in ids]
