"""The edgeswarm SDK: numpy in, numpy out, typed errors.

    from edgeswarm.client import Client
    outputs = Client("127.0.0.1:50051").infer("encoder", {"x": array}, timeout=5.0)

Importing this package pulls in neither onnxruntime, onnx nor zeroconf.
"""

from edgeswarm.client._async import AsyncClient, ModelInfo, StatusReport
from edgeswarm.client._sync import Client
from edgeswarm.errors import (
    DeadlineExceeded,
    EdgeswarmError,
    InternalError,
    InvalidRequest,
    NotFound,
    PlacementError,
    ResourceExhausted,
    StageUnavailable,
)

__all__ = [
    "AsyncClient",
    "Client",
    "DeadlineExceeded",
    "EdgeswarmError",
    "InternalError",
    "InvalidRequest",
    "ModelInfo",
    "NotFound",
    "PlacementError",
    "ResourceExhausted",
    "StageUnavailable",
    "StatusReport",
]
