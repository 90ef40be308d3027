from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JoinRequest(_message.Message):
    __slots__ = ("token", "certificate_request", "current_certificate")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_REQUEST_FIELD_NUMBER: _ClassVar[int]
    CURRENT_CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    token: str
    certificate_request: bytes
    current_certificate: bytes
    def __init__(self, token: _Optional[str] = ..., certificate_request: _Optional[bytes] = ..., current_certificate: _Optional[bytes] = ...) -> None: ...

class JoinResponse(_message.Message):
    __slots__ = ("certificate", "ca")
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    CA_FIELD_NUMBER: _ClassVar[int]
    certificate: bytes
    ca: bytes
    def __init__(self, certificate: _Optional[bytes] = ..., ca: _Optional[bytes] = ...) -> None: ...

class CreateTokenRequest(_message.Message):
    __slots__ = ("role", "ttl_seconds", "description")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    role: str
    ttl_seconds: float
    description: str
    def __init__(self, role: _Optional[str] = ..., ttl_seconds: _Optional[float] = ..., description: _Optional[str] = ...) -> None: ...

class TokenInfo(_message.Message):
    __slots__ = ("id", "role", "created", "expires", "revoked", "worker_id", "description")
    ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_FIELD_NUMBER: _ClassVar[int]
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    id: str
    role: str
    created: float
    expires: float
    revoked: bool
    worker_id: str
    description: str
    def __init__(self, id: _Optional[str] = ..., role: _Optional[str] = ..., created: _Optional[float] = ..., expires: _Optional[float] = ..., revoked: _Optional[bool] = ..., worker_id: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class CreateTokenResponse(_message.Message):
    __slots__ = ("token", "info")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    token: str
    info: TokenInfo
    def __init__(self, token: _Optional[str] = ..., info: _Optional[_Union[TokenInfo, _Mapping]] = ...) -> None: ...

class ListTokensRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListTokensResponse(_message.Message):
    __slots__ = ("tokens",)
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedCompositeFieldContainer[TokenInfo]
    def __init__(self, tokens: _Optional[_Iterable[_Union[TokenInfo, _Mapping]]] = ...) -> None: ...

class RevokeTokenRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class RevokeTokenResponse(_message.Message):
    __slots__ = ("info",)
    INFO_FIELD_NUMBER: _ClassVar[int]
    info: TokenInfo
    def __init__(self, info: _Optional[_Union[TokenInfo, _Mapping]] = ...) -> None: ...

class DeployHeader(_message.Message):
    __slots__ = ("name", "mode", "replicas", "stages", "size", "objective", "dry_run", "batch_max", "batch_delay_ms", "quantize", "states", "tokenizer", "tokenizer_config")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    OBJECTIVE_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    BATCH_MAX_FIELD_NUMBER: _ClassVar[int]
    BATCH_DELAY_MS_FIELD_NUMBER: _ClassVar[int]
    QUANTIZE_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    TOKENIZER_FIELD_NUMBER: _ClassVar[int]
    TOKENIZER_CONFIG_FIELD_NUMBER: _ClassVar[int]
    name: str
    mode: str
    replicas: int
    stages: int
    size: int
    objective: str
    dry_run: bool
    batch_max: int
    batch_delay_ms: float
    quantize: str
    states: _containers.RepeatedScalarFieldContainer[str]
    tokenizer: bytes
    tokenizer_config: bytes
    def __init__(self, name: _Optional[str] = ..., mode: _Optional[str] = ..., replicas: _Optional[int] = ..., stages: _Optional[int] = ..., size: _Optional[int] = ..., objective: _Optional[str] = ..., dry_run: _Optional[bool] = ..., batch_max: _Optional[int] = ..., batch_delay_ms: _Optional[float] = ..., quantize: _Optional[str] = ..., states: _Optional[_Iterable[str]] = ..., tokenizer: _Optional[bytes] = ..., tokenizer_config: _Optional[bytes] = ...) -> None: ...

class DeployFile(_message.Message):
    __slots__ = ("name", "size")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    name: str
    size: int
    def __init__(self, name: _Optional[str] = ..., size: _Optional[int] = ...) -> None: ...

class DeployRequest(_message.Message):
    __slots__ = ("header", "data", "file")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    header: DeployHeader
    data: bytes
    file: DeployFile
    def __init__(self, header: _Optional[_Union[DeployHeader, _Mapping]] = ..., data: _Optional[bytes] = ..., file: _Optional[_Union[DeployFile, _Mapping]] = ...) -> None: ...

class DeployResponse(_message.Message):
    __slots__ = ("model", "plan_json")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PLAN_JSON_FIELD_NUMBER: _ClassVar[int]
    model: ModelStatus
    plan_json: str
    def __init__(self, model: _Optional[_Union[ModelStatus, _Mapping]] = ..., plan_json: _Optional[str] = ...) -> None: ...

class UndeployRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class UndeployResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WorkerStatus(_message.Message):
    __slots__ = ("id", "name", "address", "state", "cores", "memory_available", "loaded_stages", "in_flight", "calibration_gflops", "rtt_ms", "bandwidth_mbps", "memory_limit", "memory_used", "session_memory", "session_bytes")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CORES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    LOADED_STAGES_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    CALIBRATION_GFLOPS_FIELD_NUMBER: _ClassVar[int]
    RTT_MS_FIELD_NUMBER: _ClassVar[int]
    BANDWIDTH_MBPS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_USED_FIELD_NUMBER: _ClassVar[int]
    SESSION_MEMORY_FIELD_NUMBER: _ClassVar[int]
    SESSION_BYTES_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    address: str
    state: str
    cores: int
    memory_available: int
    loaded_stages: _containers.RepeatedScalarFieldContainer[str]
    in_flight: int
    calibration_gflops: float
    rtt_ms: float
    bandwidth_mbps: float
    memory_limit: int
    memory_used: int
    session_memory: int
    session_bytes: int
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., address: _Optional[str] = ..., state: _Optional[str] = ..., cores: _Optional[int] = ..., memory_available: _Optional[int] = ..., loaded_stages: _Optional[_Iterable[str]] = ..., in_flight: _Optional[int] = ..., calibration_gflops: _Optional[float] = ..., rtt_ms: _Optional[float] = ..., bandwidth_mbps: _Optional[float] = ..., memory_limit: _Optional[int] = ..., memory_used: _Optional[int] = ..., session_memory: _Optional[int] = ..., session_bytes: _Optional[int] = ...) -> None: ...

class StageStatus(_message.Message):
    __slots__ = ("index", "sha256", "size", "inputs", "outputs", "workers", "group", "recent_ms")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    RECENT_MS_FIELD_NUMBER: _ClassVar[int]
    index: int
    sha256: str
    size: int
    inputs: _containers.RepeatedScalarFieldContainer[str]
    outputs: _containers.RepeatedScalarFieldContainer[str]
    workers: _containers.RepeatedScalarFieldContainer[str]
    group: int
    recent_ms: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, index: _Optional[int] = ..., sha256: _Optional[str] = ..., size: _Optional[int] = ..., inputs: _Optional[_Iterable[str]] = ..., outputs: _Optional[_Iterable[str]] = ..., workers: _Optional[_Iterable[str]] = ..., group: _Optional[int] = ..., recent_ms: _Optional[_Iterable[float]] = ...) -> None: ...

class ModelStatus(_message.Message):
    __slots__ = ("name", "version", "mode", "ready", "stages", "objective", "predicted_rps", "predicted_latency_ms", "quantization")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    OBJECTIVE_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_RPS_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    QUANTIZATION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    mode: str
    ready: bool
    stages: _containers.RepeatedCompositeFieldContainer[StageStatus]
    objective: str
    predicted_rps: float
    predicted_latency_ms: float
    quantization: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., mode: _Optional[str] = ..., ready: _Optional[bool] = ..., stages: _Optional[_Iterable[_Union[StageStatus, _Mapping]]] = ..., objective: _Optional[str] = ..., predicted_rps: _Optional[float] = ..., predicted_latency_ms: _Optional[float] = ..., quantization: _Optional[str] = ...) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("fleet", "version", "workers", "models", "links", "store")
    FLEET_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    LINKS_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    fleet: str
    version: str
    workers: _containers.RepeatedCompositeFieldContainer[WorkerStatus]
    models: _containers.RepeatedCompositeFieldContainer[ModelStatus]
    links: _containers.RepeatedCompositeFieldContainer[LinkStatus]
    store: StoreStatus
    def __init__(self, fleet: _Optional[str] = ..., version: _Optional[str] = ..., workers: _Optional[_Iterable[_Union[WorkerStatus, _Mapping]]] = ..., models: _Optional[_Iterable[_Union[ModelStatus, _Mapping]]] = ..., links: _Optional[_Iterable[_Union[LinkStatus, _Mapping]]] = ..., store: _Optional[_Union[StoreStatus, _Mapping]] = ...) -> None: ...

class StoreStatus(_message.Message):
    __slots__ = ("path", "quota", "used", "models")
    PATH_FIELD_NUMBER: _ClassVar[int]
    QUOTA_FIELD_NUMBER: _ClassVar[int]
    USED_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    path: str
    quota: int
    used: int
    models: _containers.RepeatedCompositeFieldContainer[StoredModel]
    def __init__(self, path: _Optional[str] = ..., quota: _Optional[int] = ..., used: _Optional[int] = ..., models: _Optional[_Iterable[_Union[StoredModel, _Mapping]]] = ...) -> None: ...

class StoredModel(_message.Message):
    __slots__ = ("name", "sha256", "size", "variants", "deployed", "last_used", "stage_bytes")
    class VariantsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    VARIANTS_FIELD_NUMBER: _ClassVar[int]
    DEPLOYED_FIELD_NUMBER: _ClassVar[int]
    LAST_USED_FIELD_NUMBER: _ClassVar[int]
    STAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    name: str
    sha256: str
    size: int
    variants: _containers.ScalarMap[str, int]
    deployed: bool
    last_used: float
    stage_bytes: int
    def __init__(self, name: _Optional[str] = ..., sha256: _Optional[str] = ..., size: _Optional[int] = ..., variants: _Optional[_Mapping[str, int]] = ..., deployed: _Optional[bool] = ..., last_used: _Optional[float] = ..., stage_bytes: _Optional[int] = ...) -> None: ...

class LinkStatus(_message.Message):
    __slots__ = ("from_id", "to_id", "rtt_ms", "bandwidth_mbps", "reachable")
    FROM_ID_FIELD_NUMBER: _ClassVar[int]
    TO_ID_FIELD_NUMBER: _ClassVar[int]
    RTT_MS_FIELD_NUMBER: _ClassVar[int]
    BANDWIDTH_MBPS_FIELD_NUMBER: _ClassVar[int]
    REACHABLE_FIELD_NUMBER: _ClassVar[int]
    from_id: str
    to_id: str
    rtt_ms: float
    bandwidth_mbps: float
    reachable: bool
    def __init__(self, from_id: _Optional[str] = ..., to_id: _Optional[str] = ..., rtt_ms: _Optional[float] = ..., bandwidth_mbps: _Optional[float] = ..., reachable: _Optional[bool] = ...) -> None: ...

class DrainWorkerRequest(_message.Message):
    __slots__ = ("worker",)
    WORKER_FIELD_NUMBER: _ClassVar[int]
    worker: str
    def __init__(self, worker: _Optional[str] = ...) -> None: ...

class DrainWorkerResponse(_message.Message):
    __slots__ = ("id", "name")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...
