"""One exception tree for the whole swarm, mapped to gRPC status codes in one place.

    EdgeswarmError
    ├── InvalidRequest      INVALID_ARGUMENT   the caller must change the request (fatal)
    ├── NotFound            NOT_FOUND          no model (or stage, or worker) of that name
    ├── ResourceExhausted   RESOURCE_EXHAUSTED a message or model over a limit
    ├── PlacementError      FAILED_PRECONDITION the fleet cannot hold what was asked
    ├── DeadlineExceeded    DEADLINE_EXCEEDED  the request's time ran out
    ├── StageUnavailable    UNAVAILABLE        a worker or stage cannot be reached (retryable)
    ├── Unimplemented       UNIMPLEMENTED      a call the swarm does not offer (Triton's shared memory)
    └── InternalError       INTERNAL           a bug or a worker that broke its contract

Only StageUnavailable triggers failover; everything else travels back to the caller.
"""

from __future__ import annotations

import grpc


class EdgeswarmError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(EdgeswarmError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(EdgeswarmError):
    code = grpc.StatusCode.NOT_FOUND


class ResourceExhausted(EdgeswarmError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class PlacementError(EdgeswarmError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class DeadlineExceeded(EdgeswarmError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class StageUnavailable(EdgeswarmError):
    """A worker or a whole stage could not be reached; `failed` names the workers at fault."""

    code = grpc.StatusCode.UNAVAILABLE

    def __init__(self, message: str, failed: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.failed = failed


class Unimplemented(EdgeswarmError):
    code = grpc.StatusCode.UNIMPLEMENTED


class InternalError(EdgeswarmError):
    code = grpc.StatusCode.INTERNAL


class Unauthenticated(EdgeswarmError):
    """No credentials, or credentials that are not valid (unknown, expired, revoked)."""

    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(EdgeswarmError):
    """Valid credentials whose role does not allow the call."""

    code = grpc.StatusCode.PERMISSION_DENIED


_BY_CODE: dict[grpc.StatusCode, type[EdgeswarmError]] = {
    cls.code: cls
    for cls in (
        InvalidRequest,
        NotFound,
        ResourceExhausted,
        PlacementError,
        DeadlineExceeded,
        StageUnavailable,
        Unimplemented,
        InternalError,
        Unauthenticated,
        PermissionDenied,
    )
}
# Trailing metadata key listing the worker ids that failed along a route.
FAILED_WORKERS_KEY = "edgeswarm-failed-workers"
# Trailing metadata key on every error a swarm server raised itself (its exception class), so a
# client can tell an answer from a connection that failed.
ERROR_KEY = "edgeswarm-error"


def from_rpc_error(error: grpc.RpcError) -> EdgeswarmError:
    """Translate a gRPC error into the exception tree (the caller raises it `from error`)."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = (error.details() if hasattr(error, "details") else None) or str(code)
    if code is grpc.StatusCode.UNAVAILABLE:
        return StageUnavailable(details, failed_workers(error))
    if code is grpc.StatusCode.CANCELLED:
        return StageUnavailable(details)
    cls = _BY_CODE.get(code)
    if cls is None:
        err = EdgeswarmError(details)
        err.code = code
        return err
    return cls(details)


def failed_workers(error: grpc.RpcError) -> tuple[str, ...]:
    trailers = error.trailing_metadata() if hasattr(error, "trailing_metadata") else None
    for key, value in trailers or ():
        if key == FAILED_WORKERS_KEY:
            return tuple(w for w in str(value).split(",") if w)
    return ()


def answered(error: grpc.RpcError) -> bool:
    """Whether a swarm server sent `error`, rather than the connection failing on the way."""
    trailers = error.trailing_metadata() if hasattr(error, "trailing_metadata") else None
    return any(key == ERROR_KEY for key, _ in trailers or ())
