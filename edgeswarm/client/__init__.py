"""The edgeswarm SDK: numpy in, numpy out, typed errors.

    from edgeswarm.client import Client
    outputs = Client("127.0.0.1:50051").infer("encoder", {"x": array}, timeout=5.0)

Importing this package pulls in neither onnxruntime, onnx nor zeroconf.
"""

from edgeswarm.client._async import DEFAULT_BATCH_DELAY_MS, AsyncClient
from edgeswarm.client._sync import Client
from edgeswarm.client.credentials import Credentials, load_credentials
from edgeswarm.client.results import (
    GeneratedToken,
    GenerationResult,
    LinkStatus,
    ModelInfo,
    ModelStatus,
    StageInfo,
    StatusReport,
    StoredModel,
    StoreStatus,
    TokenInfo,
    WorkerStatus,
)
from edgeswarm.errors import (
    DeadlineExceeded,
    EdgeswarmError,
    InternalError,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    PlacementError,
    ResourceExhausted,
    StageUnavailable,
    Unauthenticated,
)

__all__ = [
    "DEFAULT_BATCH_DELAY_MS",
    "AsyncClient",
    "Client",
    "Credentials",
    "DeadlineExceeded",
    "EdgeswarmError",
    "GeneratedToken",
    "GenerationResult",
    "InternalError",
    "InvalidRequest",
    "LinkStatus",
    "ModelInfo",
    "ModelStatus",
    "NotFound",
    "PermissionDenied",
    "PlacementError",
    "ResourceExhausted",
    "StageInfo",
    "StageUnavailable",
    "StatusReport",
    "StoreStatus",
    "StoredModel",
    "TokenInfo",
    "Unauthenticated",
    "WorkerStatus",
    "load_credentials",
]
