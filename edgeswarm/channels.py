"""Every gRPC channel and server of the swarm is made here, with one set of options.

Coordinator <-> worker, worker <-> worker and client <-> coordinator all come through
`open_channel` and `new_server`, so transport security is a change in this module only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc

from edgeswarm.errors import ERROR_KEY, FAILED_WORKERS_KEY, EdgeswarmError, StageUnavailable
from edgeswarm.metrics import RPC_SECONDS, RPCS, serve_metrics

log = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def _shared_options(max_message_bytes: int) -> list[tuple[str, Any]]:
    """What both ends of every connection agree on: message limits and keepalive."""
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", 10_000),
        ("grpc.keepalive_timeout_ms", 5_000),
        ("grpc.keepalive_permit_without_calls", 1),
    ]


def channel_options(max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> list[tuple[str, Any]]:
    return [
        *_shared_options(max_message_bytes),
        ("grpc.http2.max_pings_without_data", 0),
        # Fail fast towards a dead worker instead of backing off for up to two minutes.
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 2_000),
        ("grpc.enable_retries", 0),
    ]


def server_options(max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> list[tuple[str, Any]]:
    return [
        *_shared_options(max_message_bytes),
        ("grpc.http2.min_ping_interval_without_data_ms", 1_000),
        # A second server on a port in use must fail, not share it.
        ("grpc.so_reuseport", 0),
    ]


def open_channel(address: str, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(address, options=channel_options(max_message_bytes))


def new_server(max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> grpc.aio.Server:
    return GuardedServer(grpc.aio.server(options=server_options(max_message_bytes)))


def serve_metrics_on(listen: str) -> None:
    """Serves Prometheus /metrics on `listen` (HOST:PORT); an empty `listen` serves nothing."""
    if listen:
        serve_metrics(*split_address(listen))


def bind(server: grpc.aio.Server, listen: str) -> int:
    """Bind `listen` (HOST:PORT, port 0 for any free one) and return the port bound."""
    port: int = server.add_insecure_port(listen)
    if port == 0:
        raise OSError(f"cannot listen on {listen}")
    return port


Behavior = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


class GuardedServer(grpc.aio.Server):  # type: ignore[misc]
    """A grpc.aio server whose every unary method runs inside `_guarded`: EdgeswarmError becomes its
    gRPC status, any other exception INTERNAL, with a log line. Handlers are wrapped once, as they
    are registered, instead of by an interceptor on every call."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, generic_rpc_handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers(tuple(_GuardedHandler(h) for h in generic_rpc_handlers))

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: dict[str, grpc.RpcMethodHandler]
    ) -> None:
        guarded = {name: _guard(f"/{service_name}/{name}", h) for name, h in method_handlers.items()}
        self._server.add_registered_method_handlers(service_name, guarded)

    def add_insecure_port(self, address: str) -> int:
        port: int = self._server.add_insecure_port(address)
        return port

    def add_secure_port(self, address: str, server_credentials: grpc.ServerCredentials) -> int:
        port: int = self._server.add_secure_port(address, server_credentials)
        return port

    async def start(self) -> None:
        await self._server.start()

    async def stop(self, grace: float | None) -> None:
        await self._server.stop(grace)

    async def wait_for_termination(self, timeout: float | None = None) -> bool:
        terminated: bool = await self._server.wait_for_termination(timeout)
        return terminated


class _GuardedHandler(grpc.GenericRpcHandler):  # type: ignore[misc]
    """A generic handler whose method handlers are guarded, each wrapped the first time it is asked for."""

    def __init__(self, inner: grpc.GenericRpcHandler) -> None:
        self._inner = inner
        self._known: dict[str, grpc.RpcMethodHandler] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        handler = self._known.get(method)
        if handler is None:
            found = self._inner.service(handler_call_details)
            if found is None:
                return None  # not kept: callers choose the method names, so a cache of misses could grow
            handler = self._known[method] = _guard(method, found)
        return handler


def _guard(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            _guarded(method, handler.unary_unary),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            _guarded(method, handler.stream_unary),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    return handler


def _guarded(method: str, behavior: Behavior) -> Behavior:
    async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
        code = "OK"
        start = time.perf_counter()
        try:
            return await behavior(request, context)
        except grpc.aio.AbortError:
            code = "ABORTED_BY_HANDLER"
            raise
        except EdgeswarmError as exc:
            code = exc.code.name
            log.info("rpc_error method=%s code=%s message=%r", method, exc.code.name, exc.message)
            trailers = [(ERROR_KEY, type(exc).__name__)]
            if isinstance(exc, StageUnavailable) and exc.failed:
                trailers.append((FAILED_WORKERS_KEY, ",".join(exc.failed)))
            context.set_trailing_metadata(tuple(trailers))
            await context.abort(exc.code, exc.message)
        except Exception as exc:
            code = grpc.StatusCode.INTERNAL.name
            log.exception("rpc_internal_error method=%s", method)
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error in {method}: {exc}")
        finally:
            RPCS.labels(method, code).inc()
            RPC_SECONDS.labels(method).observe(time.perf_counter() - start)

    return guarded


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {address!r}")
    return host.strip("[]"), int(port)
