from edgeswarm._proto.edgeswarm.v1 import tensor_pb2 as _tensor_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DescribeRequest(_message.Message):
    __slots__ = ("coordinator", "route_key")
    COORDINATOR_FIELD_NUMBER: _ClassVar[int]
    ROUTE_KEY_FIELD_NUMBER: _ClassVar[int]
    coordinator: str
    route_key: bytes
    def __init__(self, coordinator: _Optional[str] = ..., route_key: _Optional[bytes] = ...) -> None: ...

class WorkerDescription(_message.Message):
    __slots__ = ("id", "name", "fleet", "version", "cores", "memory_available", "cached_shards", "loaded_stages", "onnxruntime_version", "plans", "calibration_gflops", "memory_limit", "stage_memory", "session_memory", "session_bytes")
    class StageMemoryEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    FLEET_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CORES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    CACHED_SHARDS_FIELD_NUMBER: _ClassVar[int]
    LOADED_STAGES_FIELD_NUMBER: _ClassVar[int]
    ONNXRUNTIME_VERSION_FIELD_NUMBER: _ClassVar[int]
    PLANS_FIELD_NUMBER: _ClassVar[int]
    CALIBRATION_GFLOPS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    STAGE_MEMORY_FIELD_NUMBER: _ClassVar[int]
    SESSION_MEMORY_FIELD_NUMBER: _ClassVar[int]
    SESSION_BYTES_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    fleet: str
    version: str
    cores: int
    memory_available: int
    cached_shards: _containers.RepeatedScalarFieldContainer[str]
    loaded_stages: _containers.RepeatedScalarFieldContainer[str]
    onnxruntime_version: str
    plans: _containers.RepeatedCompositeFieldContainer[PlanManifest]
    calibration_gflops: float
    memory_limit: int
    stage_memory: _containers.ScalarMap[str, int]
    session_memory: int
    session_bytes: int
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., fleet: _Optional[str] = ..., version: _Optional[str] = ..., cores: _Optional[int] = ..., memory_available: _Optional[int] = ..., cached_shards: _Optional[_Iterable[str]] = ..., loaded_stages: _Optional[_Iterable[str]] = ..., onnxruntime_version: _Optional[str] = ..., plans: _Optional[_Iterable[_Union[PlanManifest, _Mapping]]] = ..., calibration_gflops: _Optional[float] = ..., memory_limit: _Optional[int] = ..., stage_memory: _Optional[_Mapping[str, int]] = ..., session_memory: _Optional[int] = ..., session_bytes: _Optional[int] = ...) -> None: ...

class TensorSpec(_message.Message):
    __slots__ = ("name", "datatype", "shape")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATATYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    datatype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, name: _Optional[str] = ..., datatype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ...) -> None: ...

class StageManifest(_message.Message):
    __slots__ = ("index", "sha256", "size", "inputs", "outputs", "carry", "workers", "group")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    CARRY_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    index: int
    sha256: str
    size: int
    inputs: _containers.RepeatedScalarFieldContainer[str]
    outputs: _containers.RepeatedScalarFieldContainer[str]
    carry: _containers.RepeatedScalarFieldContainer[str]
    workers: _containers.RepeatedScalarFieldContainer[str]
    group: int
    def __init__(self, index: _Optional[int] = ..., sha256: _Optional[str] = ..., size: _Optional[int] = ..., inputs: _Optional[_Iterable[str]] = ..., outputs: _Optional[_Iterable[str]] = ..., carry: _Optional[_Iterable[str]] = ..., workers: _Optional[_Iterable[str]] = ..., group: _Optional[int] = ...) -> None: ...

class PlanManifest(_message.Message):
    __slots__ = ("model", "version", "mode", "inputs", "outputs", "stages", "batch_max", "batch_delay_ms", "signature", "states", "tokenizer")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    BATCH_MAX_FIELD_NUMBER: _ClassVar[int]
    BATCH_DELAY_MS_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    TOKENIZER_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    mode: str
    inputs: _containers.RepeatedCompositeFieldContainer[TensorSpec]
    outputs: _containers.RepeatedCompositeFieldContainer[TensorSpec]
    stages: _containers.RepeatedCompositeFieldContainer[StageManifest]
    batch_max: int
    batch_delay_ms: float
    signature: bytes
    states: _containers.RepeatedCompositeFieldContainer[StatePair]
    tokenizer: str
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., mode: _Optional[str] = ..., inputs: _Optional[_Iterable[_Union[TensorSpec, _Mapping]]] = ..., outputs: _Optional[_Iterable[_Union[TensorSpec, _Mapping]]] = ..., stages: _Optional[_Iterable[_Union[StageManifest, _Mapping]]] = ..., batch_max: _Optional[int] = ..., batch_delay_ms: _Optional[float] = ..., signature: _Optional[bytes] = ..., states: _Optional[_Iterable[_Union[StatePair, _Mapping]]] = ..., tokenizer: _Optional[str] = ...) -> None: ...

class ShardChunk(_message.Message):
    __slots__ = ("sha256", "size", "data", "external_data")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_DATA_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    size: int
    data: bytes
    external_data: bool
    def __init__(self, sha256: _Optional[str] = ..., size: _Optional[int] = ..., data: _Optional[bytes] = ..., external_data: _Optional[bool] = ...) -> None: ...

class PutShardResponse(_message.Message):
    __slots__ = ("sha256", "already_cached")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    ALREADY_CACHED_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    already_cached: bool
    def __init__(self, sha256: _Optional[str] = ..., already_cached: _Optional[bool] = ...) -> None: ...

class LoadStageRequest(_message.Message):
    __slots__ = ("sha256", "plan")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    plan: PlanManifest
    def __init__(self, sha256: _Optional[str] = ..., plan: _Optional[_Union[PlanManifest, _Mapping]] = ...) -> None: ...

class LoadStageResponse(_message.Message):
    __slots__ = ("inputs", "outputs")
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    inputs: _containers.RepeatedScalarFieldContainer[str]
    outputs: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, inputs: _Optional[_Iterable[str]] = ..., outputs: _Optional[_Iterable[str]] = ...) -> None: ...

class UnloadStageRequest(_message.Message):
    __slots__ = ("sha256",)
    SHA256_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    def __init__(self, sha256: _Optional[str] = ...) -> None: ...

class UnloadStageResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Hop(_message.Message):
    __slots__ = ("stage", "addresses", "worker_ids", "carry", "batch_max", "batch_delay_ms", "states")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    WORKER_IDS_FIELD_NUMBER: _ClassVar[int]
    CARRY_FIELD_NUMBER: _ClassVar[int]
    BATCH_MAX_FIELD_NUMBER: _ClassVar[int]
    BATCH_DELAY_MS_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    stage: str
    addresses: _containers.RepeatedScalarFieldContainer[str]
    worker_ids: _containers.RepeatedScalarFieldContainer[str]
    carry: _containers.RepeatedScalarFieldContainer[str]
    batch_max: int
    batch_delay_ms: float
    states: _containers.RepeatedCompositeFieldContainer[StatePair]
    def __init__(self, stage: _Optional[str] = ..., addresses: _Optional[_Iterable[str]] = ..., worker_ids: _Optional[_Iterable[str]] = ..., carry: _Optional[_Iterable[str]] = ..., batch_max: _Optional[int] = ..., batch_delay_ms: _Optional[float] = ..., states: _Optional[_Iterable[_Union[StatePair, _Mapping]]] = ...) -> None: ...

class StatePair(_message.Message):
    __slots__ = ("output", "input", "axis")
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    AXIS_FIELD_NUMBER: _ClassVar[int]
    output: str
    input: str
    axis: int
    def __init__(self, output: _Optional[str] = ..., input: _Optional[str] = ..., axis: _Optional[int] = ...) -> None: ...

class Sampling(_message.Message):
    __slots__ = ("temperature", "top_k", "top_p", "seeded", "seed")
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    SEEDED_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    temperature: float
    top_k: int
    top_p: float
    seeded: bool
    seed: int
    def __init__(self, temperature: _Optional[float] = ..., top_k: _Optional[int] = ..., top_p: _Optional[float] = ..., seeded: _Optional[bool] = ..., seed: _Optional[int] = ...) -> None: ...

class SessionStep(_message.Message):
    __slots__ = ("id", "position", "length", "step", "sampling", "ring")
    ID_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    RING_FIELD_NUMBER: _ClassVar[int]
    id: str
    position: int
    length: int
    step: int
    sampling: Sampling
    ring: bool
    def __init__(self, id: _Optional[str] = ..., position: _Optional[int] = ..., length: _Optional[int] = ..., step: _Optional[int] = ..., sampling: _Optional[_Union[Sampling, _Mapping]] = ..., ring: _Optional[bool] = ...) -> None: ...

class RingStart(_message.Message):
    __slots__ = ("first", "known", "max_tokens", "stop_ids")
    FIRST_FIELD_NUMBER: _ClassVar[int]
    KNOWN_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    STOP_IDS_FIELD_NUMBER: _ClassVar[int]
    first: StageRequest
    known: _containers.RepeatedScalarFieldContainer[int]
    max_tokens: int
    stop_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, first: _Optional[_Union[StageRequest, _Mapping]] = ..., known: _Optional[_Iterable[int]] = ..., max_tokens: _Optional[int] = ..., stop_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class RingToken(_message.Message):
    __slots__ = ("token", "last")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    token: int
    last: bool
    def __init__(self, token: _Optional[int] = ..., last: _Optional[bool] = ...) -> None: ...

class StageRequest(_message.Message):
    __slots__ = ("request_id", "model", "tensors", "route", "route_macs", "session")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TENSORS_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    ROUTE_MACS_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model: str
    tensors: _containers.RepeatedCompositeFieldContainer[_tensor_pb2.Tensor]
    route: _containers.RepeatedCompositeFieldContainer[Hop]
    route_macs: _containers.RepeatedScalarFieldContainer[bytes]
    session: SessionStep
    def __init__(self, request_id: _Optional[str] = ..., model: _Optional[str] = ..., tensors: _Optional[_Iterable[_Union[_tensor_pb2.Tensor, _Mapping]]] = ..., route: _Optional[_Iterable[_Union[Hop, _Mapping]]] = ..., route_macs: _Optional[_Iterable[bytes]] = ..., session: _Optional[_Union[SessionStep, _Mapping]] = ...) -> None: ...

class StageResponse(_message.Message):
    __slots__ = ("tensors", "token")
    TENSORS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    tensors: _containers.RepeatedCompositeFieldContainer[_tensor_pb2.Tensor]
    token: int
    def __init__(self, tensors: _Optional[_Iterable[_Union[_tensor_pb2.Tensor, _Mapping]]] = ..., token: _Optional[int] = ...) -> None: ...

class EndSessionRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class EndSessionResponse(_message.Message):
    __slots__ = ("held",)
    HELD_FIELD_NUMBER: _ClassVar[int]
    held: bool
    def __init__(self, held: _Optional[bool] = ...) -> None: ...

class DrainRequest(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class DrainResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ProfileRequest(_message.Message):
    __slots__ = ("shards", "inputs", "repeats")
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    REPEATS_FIELD_NUMBER: _ClassVar[int]
    shards: _containers.RepeatedScalarFieldContainer[str]
    inputs: _containers.RepeatedCompositeFieldContainer[_tensor_pb2.Tensor]
    repeats: int
    def __init__(self, shards: _Optional[_Iterable[str]] = ..., inputs: _Optional[_Iterable[_Union[_tensor_pb2.Tensor, _Mapping]]] = ..., repeats: _Optional[int] = ...) -> None: ...

class ProfileResponse(_message.Message):
    __slots__ = ("seconds",)
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    seconds: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, seconds: _Optional[_Iterable[float]] = ...) -> None: ...

class PingRequest(_message.Message):
    __slots__ = ("payload",)
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    def __init__(self, payload: _Optional[bytes] = ...) -> None: ...

class PingResponse(_message.Message):
    __slots__ = ("size",)
    SIZE_FIELD_NUMBER: _ClassVar[int]
    size: int
    def __init__(self, size: _Optional[int] = ...) -> None: ...

class MeasureLinkRequest(_message.Message):
    __slots__ = ("address", "worker_id", "payload_bytes")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_BYTES_FIELD_NUMBER: _ClassVar[int]
    address: str
    worker_id: str
    payload_bytes: int
    def __init__(self, address: _Optional[str] = ..., worker_id: _Optional[str] = ..., payload_bytes: _Optional[int] = ...) -> None: ...

class LinkFigures(_message.Message):
    __slots__ = ("rtt_seconds", "bandwidth")
    RTT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    BANDWIDTH_FIELD_NUMBER: _ClassVar[int]
    rtt_seconds: float
    bandwidth: float
    def __init__(self, rtt_seconds: _Optional[float] = ..., bandwidth: _Optional[float] = ...) -> None: ...
