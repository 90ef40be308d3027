"""What the SDK returns about the fleet, as frozen values with Python types: the one place the
control protos become them (`from_proto`).

Field names are the proto field names (protos/edgeswarm/v1/control.proto), so `dataclasses.asdict`
of a `StatusReport` has the keys of the Status response, as `edgeswarm status --json` prints it.
`mode`, `objective` and `state` are the strings the coordinator sent ("auto", "throughput", "up"...):
a newer coordinator's value reads as itself rather than failing here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from edgeswarm._proto.edgeswarm.v1 import control_pb2


@dataclass(frozen=True)
class WorkerStatus:
    id: str
    name: str
    address: str
    # "up", "down" or "banned" (up, but left out of routes for a while after a failure).
    state: str
    cores: int
    memory_available: int
    # Stages it holds, as "model/stage".
    loaded_stages: tuple[str, ...]
    in_flight: int
    calibration_gflops: float
    # The coordinator's link to it (bandwidth in MB/s); 0 while not yet timed.
    rtt_ms: float
    bandwidth_mbps: float
    # Bytes of stages it may hold (its limit, or its memory); 0 while not yet known.
    memory_limit: int
    # Resident bytes its loaded stages took as they loaded (measured there).
    memory_used: int = 0
    # Bytes of generation state the worker keeps for sessions at most, and held when last described.
    session_memory: int = 0
    session_bytes: int = 0

    @classmethod
    def from_proto(cls, message: control_pb2.WorkerStatus) -> WorkerStatus:
        return cls(
            id=message.id,
            name=message.name,
            address=message.address,
            state=message.state,
            cores=message.cores,
            memory_available=message.memory_available,
            loaded_stages=tuple(message.loaded_stages),
            in_flight=message.in_flight,
            calibration_gflops=message.calibration_gflops,
            rtt_ms=message.rtt_ms,
            bandwidth_mbps=message.bandwidth_mbps,
            memory_limit=message.memory_limit,
            memory_used=message.memory_used,
            session_memory=message.session_memory,
            session_bytes=message.session_bytes,
        )


@dataclass(frozen=True)
class StageInfo:
    """One stage of a model: a layer range, held by `workers` (ids), in route `group`."""

    index: int
    sha256: str
    size: int
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    workers: tuple[str, ...]
    group: int
    # Per worker (same order): what a request has lately taken through it, in ms; 0 when unknown.
    recent_ms: tuple[float, ...]

    @classmethod
    def from_proto(cls, message: control_pb2.StageStatus) -> StageInfo:
        return cls(
            index=message.index,
            sha256=message.sha256,
            size=message.size,
            inputs=tuple(message.inputs),
            outputs=tuple(message.outputs),
            workers=tuple(message.workers),
            group=message.group,
            recent_ms=tuple(message.recent_ms),
        )


@dataclass(frozen=True)
class ModelStatus:
    name: str
    version: str
    mode: str
    ready: bool
    stages: tuple[StageInfo, ...]
    # For planned deploys: the objective ("" otherwise) and the planner's predicted figures.
    objective: str
    predicted_rps: float
    predicted_latency_ms: float
    # "int8" or "int4" when the deploy quantized the model; "" otherwise.
    quantization: str = ""

    @classmethod
    def from_proto(cls, message: control_pb2.ModelStatus) -> ModelStatus:
        return cls(
            name=message.name,
            version=message.version,
            mode=message.mode,
            ready=message.ready,
            stages=tuple(StageInfo.from_proto(s) for s in message.stages),
            objective=message.objective,
            predicted_rps=message.predicted_rps,
            predicted_latency_ms=message.predicted_latency_ms,
            quantization=message.quantization,
        )


@dataclass(frozen=True)
class LinkStatus:
    """A link between two workers as last timed for planning: `from_id` pinged `to_id`."""

    from_id: str
    to_id: str
    rtt_ms: float
    # MB/s.
    bandwidth_mbps: float
    # False when `from_id` could not reach `to_id` (then the figures are 0).
    reachable: bool

    @classmethod
    def from_proto(cls, message: control_pb2.LinkStatus) -> LinkStatus:
        return cls(
            from_id=message.from_id,
            to_id=message.to_id,
            rtt_ms=message.rtt_ms,
            bandwidth_mbps=message.bandwidth_mbps,
            reachable=message.reachable,
        )


@dataclass(frozen=True)
class StoredModel:
    """A model in the coordinator's store: its files as sent (`size` bytes), its quantized variants
    (method -> bytes) and the stages cut from it that are kept to reload workers."""

    name: str
    sha256: str
    size: int
    variants: dict[str, int]
    deployed: bool
    last_used: float
    stage_bytes: int

    @classmethod
    def from_proto(cls, message: control_pb2.StoredModel) -> StoredModel:
        return cls(
            name=message.name,
            sha256=message.sha256,
            size=message.size,
            variants=dict(message.variants),
            deployed=message.deployed,
            last_used=message.last_used,
            stage_bytes=message.stage_bytes,
        )


@dataclass(frozen=True)
class StoreStatus:
    """The coordinator's model store: where, its quota (0: none), bytes used, and what it holds."""

    path: str = ""
    quota: int = 0
    used: int = 0
    models: tuple[StoredModel, ...] = ()

    @classmethod
    def from_proto(cls, message: control_pb2.StoreStatus) -> StoreStatus:
        return cls(
            path=message.path,
            quota=message.quota,
            used=message.used,
            models=tuple(StoredModel.from_proto(m) for m in message.models),
        )


@dataclass(frozen=True)
class StatusReport:
    fleet: str
    version: str
    workers: tuple[WorkerStatus, ...]
    models: tuple[ModelStatus, ...]
    links: tuple[LinkStatus, ...] = ()
    store: StoreStatus = StoreStatus()

    @classmethod
    def from_proto(cls, message: control_pb2.StatusResponse) -> StatusReport:
        return cls(
            fleet=message.fleet,
            version=message.version,
            workers=tuple(WorkerStatus.from_proto(w) for w in message.workers),
            models=tuple(ModelStatus.from_proto(m) for m in message.models),
            links=tuple(LinkStatus.from_proto(link) for link in message.links),
            store=StoreStatus.from_proto(message.store),
        )


@dataclass(frozen=True)
class ModelInfo:
    """A deployed model, as the deploy placed it."""

    name: str
    version: str
    mode: str
    stages: tuple[StageInfo, ...]
    # For mode "auto": the planner's JSON document (keys in docs/placement.md).
    plan: dict[str, Any] | None = None
    # "int8" or "int4" when the deploy quantized the model; "" otherwise.
    quantization: str = ""

    @classmethod
    def from_proto(cls, response: control_pb2.DeployResponse) -> ModelInfo:
        model = response.model
        return cls(
            name=model.name,
            version=model.version,
            mode=model.mode,
            stages=tuple(StageInfo.from_proto(s) for s in model.stages),
            plan=json.loads(response.plan_json) if response.plan_json else None,
            quantization=model.quantization,
        )


@dataclass(frozen=True)
class TokenInfo:
    """A token as the coordinator keeps it (never its secret): `expires` 0 means never; `worker_id` is
    the worker a worker token enrolled."""

    id: str
    role: str
    created: float
    expires: float
    revoked: bool
    worker_id: str
    description: str

    @classmethod
    def from_proto(cls, message: control_pb2.TokenInfo) -> TokenInfo:
        return cls(
            id=message.id,
            role=message.role,
            created=message.created,
            expires=message.expires,
            revoked=message.revoked,
            worker_id=message.worker_id,
            description=message.description,
        )


@dataclass(frozen=True)
class GeneratedToken:
    """One token as a generation streams it; `finish_reason` is set on the last ("stop", "length")."""

    token_id: int
    text: str = ""
    finish_reason: str = ""


@dataclass(frozen=True)
class GenerationResult:
    """A whole generation: the generated tokens only (not the prompt), their text where the model
    has a tokenizer, and why it ended."""

    token_ids: tuple[int, ...]
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
