"""Every gRPC channel and server of the swarm is made here, with one set of options and one
transport security. Coordinator <-> worker, worker <-> worker and client <-> coordinator all come
through `open_channel`, `new_server` and `bind`.

A coordinator or worker process calls `secure_with(identity)` once at start: from then on its
channels are mutual TLS with its fleet certificate, checking the peer's certificate against the fleet
CA and, where a worker is dialled, against the worker id it was told (`server_name`). A process that
never calls it (`--insecure`, loopback only) speaks plaintext. Servers check every call's caller with
the `authorize` they are made with, before the handler runs.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import grpc

from edgeswarm.errors import ERROR_KEY, FAILED_WORKERS_KEY, EdgeswarmError, InvalidRequest, StageUnavailable
from edgeswarm.metrics import RPC_SECONDS, RPCS, serve_metrics
from edgeswarm.security.pki import Identity

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


_process_identity: Identity | None = None


def secure_with(identity: Identity | None) -> None:
    """Makes every channel this process opens, and every server it binds, mutual TLS with `identity`."""
    global _process_identity
    _process_identity = identity


def process_identity() -> Identity | None:
    return _process_identity


def open_channel(
    address: str,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    server_name: str = "",
    identity: Identity | None = None,
    token: str = "",
) -> grpc.aio.Channel:
    """A channel to `address`: plaintext, or TLS with `identity` (default: the process's), checking
    that the server's certificate names `server_name` when given (else the address), and sending
    `token` as a bearer token with every call."""
    options = channel_options(max_message_bytes)
    identity = identity or _process_identity
    if identity is None:
        return grpc.aio.insecure_channel(address, options=options)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=identity.ca,
        private_key=identity.key or None,
        certificate_chain=identity.certificate or None,
    )
    if token:
        credentials = grpc.composite_channel_credentials(
            credentials, grpc.access_token_call_credentials(token)
        )
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    return grpc.aio.secure_channel(address, credentials, options=options)


# Checks a call's caller before its handler runs; raises an EdgeswarmError (Unauthenticated,
# PermissionDenied) to refuse it.
Authorize = Callable[[str, grpc.aio.ServicerContext], None]


def new_server(
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, authorize: Authorize | None = None
) -> grpc.aio.Server:
    return GuardedServer(grpc.aio.server(options=server_options(max_message_bytes)), authorize)


def peer_common_name(context: grpc.aio.ServicerContext) -> str:
    """The common name of the caller's verified certificate; empty without one."""
    values = context.auth_context().get("x509_common_name") or [b""]
    return bytes(values[0]).decode(errors="replace")


def bearer_token(context: grpc.aio.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            text = value if isinstance(value, str) else value.decode()
            scheme, _, token = text.partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return ""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_insecure(listen: str) -> None:
    """Plaintext serves only loopback: InvalidRequest naming the address otherwise."""
    host = split_address(listen)[0]
    if not is_loopback(host):
        raise InvalidRequest(
            f"--insecure serves plaintext, which is allowed on a loopback address only, not {listen!r}: "
            "listen on 127.0.0.1, or join the fleet (edgeswarm token create --role worker)"
        )


def serve_metrics_on(listen: str) -> None:
    """Serves Prometheus /metrics on `listen` (HOST:PORT); an empty `listen` serves nothing."""
    if listen:
        serve_metrics(*split_address(listen))


def bind(server: grpc.aio.Server, listen: str, require_client_certificate: bool = True) -> int:
    """Bind `listen` (HOST:PORT, port 0 for any free one) and return the port bound: with TLS when
    the process has an identity (asking callers for a fleet certificate, or requiring one), else
    plaintext."""
    if _process_identity is None:
        port: int = server.add_insecure_port(listen)
    else:
        port = server.add_secure_port(listen, _server_credentials(require_client_certificate))
    if port == 0:
        raise OSError(f"cannot listen on {listen}")
    return port


def _server_credentials(require_client_certificate: bool) -> grpc.ServerCredentials:
    """TLS with the process's identity as it is at each handshake: a renewed certificate is served
    from the next connection on, without a restart."""

    def configuration(identity: Identity) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration(
            [(identity.key, identity.certificate)], root_certificates=identity.ca
        )

    assert _process_identity is not None
    served = [_process_identity]

    def fetch() -> grpc.ServerCertificateConfiguration | None:
        current = _process_identity
        if current is None or current is served[0]:
            return None
        served[0] = current
        return configuration(current)

    return grpc.dynamic_ssl_server_credentials(
        configuration(_process_identity), fetch, require_client_authentication=require_client_certificate
    )


Behavior = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


class GuardedServer(grpc.aio.Server):  # type: ignore[misc]
    """A grpc.aio server whose every unary method runs inside `_guarded`: EdgeswarmError becomes its
    gRPC status, any other exception INTERNAL, with a log line. Handlers are wrapped once, as they
    are registered, instead of by an interceptor on every call."""

    def __init__(self, server: grpc.aio.Server, authorize: Authorize | None = None) -> None:
        self._server = server
        self._authorize = authorize

    def add_generic_rpc_handlers(self, generic_rpc_handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers(
            tuple(_GuardedHandler(h, self._authorize) for h in generic_rpc_handlers)
        )

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: dict[str, grpc.RpcMethodHandler]
    ) -> None:
        guarded = {
            name: _guard(f"/{service_name}/{name}", h, self._authorize) for name, h in method_handlers.items()
        }
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

    def __init__(self, inner: grpc.GenericRpcHandler, authorize: Authorize | None) -> None:
        self._inner = inner
        self._authorize = authorize
        self._known: dict[str, grpc.RpcMethodHandler] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        handler = self._known.get(method)
        if handler is None:
            found = self._inner.service(handler_call_details)
            if found is None:
                return None  # not kept: callers choose the method names, so a cache of misses could grow
            handler = self._known[method] = _guard(method, found, self._authorize)
        return handler


def _guard(method: str, handler: grpc.RpcMethodHandler, authorize: Authorize | None) -> grpc.RpcMethodHandler:
    serializers = {
        "request_deserializer": _tolerant(handler.request_deserializer),
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            _guarded(method, handler.unary_unary, authorize), **serializers
        )
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            _guarded(method, _decoded_stream(method, handler.stream_unary), authorize), **serializers
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            _authorized_stream(method, handler.unary_stream, authorize), **serializers
        )
    return grpc.stream_stream_rpc_method_handler(
        _authorized_stream(method, handler.stream_stream, authorize), **serializers
    )


class _Undecodable:
    """What a request's bytes that do not parse deserialize to: the handler is not run on it."""

    def __init__(self, error: Exception) -> None:
        self.error = error


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:  # protobuf's DecodeError, or a custom deserializer's own
            return _Undecodable(exc)

    return deserialize


def _refuse_undecodable(method: str, request: Any) -> None:
    if isinstance(request, _Undecodable):
        raise InvalidRequest(f"{method}: the request is not a valid message ({request.error})")


def _decoded_stream(method: str, behavior: Behavior) -> Behavior:
    """A stream-request handler whose request iterator refuses an undecodable message."""

    async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await behavior(_decoded_stream_iterator(method, request), context)

    return handler


def _authorized_stream(method: str, behavior: Any, authorize: Authorize | None) -> Any:
    """A response-streaming handler that first checks its caller and its request (the error guard
    covers unary ones)."""

    async def authorized(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            if authorize is not None:
                authorize(method, context)
            if hasattr(request, "__aiter__"):
                request = _decoded_stream_iterator(method, request)
            else:
                _refuse_undecodable(method, request)
        except EdgeswarmError as exc:
            log.info("rpc_refused method=%s code=%s message=%r", method, exc.code.name, exc.message)
            await context.abort(exc.code, exc.message)
        result = behavior(request, context)
        try:
            if hasattr(result, "__aiter__"):
                async for item in result:
                    yield item
            else:  # a handler that writes with context.write and returns nothing
                await result
        except EdgeswarmError as exc:  # an undecodable message on the way in, say
            log.info("rpc_error method=%s code=%s message=%r", method, exc.code.name, exc.message)
            context.set_trailing_metadata(_trailers(exc))
            await context.abort(exc.code, exc.message)

    return authorized


async def _decoded_stream_iterator(method: str, messages: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for message in messages:
        _refuse_undecodable(method, message)
        yield message


def _guarded(method: str, behavior: Behavior, authorize: Authorize | None = None) -> Behavior:
    async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
        code = "OK"
        start = time.perf_counter()
        try:
            if authorize is not None:
                authorize(method, context)
            _refuse_undecodable(method, request)
            return await behavior(request, context)
        except grpc.aio.AbortError:
            code = "ABORTED_BY_HANDLER"
            raise
        except EdgeswarmError as exc:
            code = exc.code.name
            log.info("rpc_error method=%s code=%s message=%r", method, exc.code.name, exc.message)
            context.set_trailing_metadata(_trailers(exc))
            await context.abort(exc.code, exc.message)
        except Exception as exc:
            code = grpc.StatusCode.INTERNAL.name
            log.exception("rpc_internal_error method=%s", method)
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error in {method}: {exc}")
        finally:
            RPCS.labels(method, code).inc()
            RPC_SECONDS.labels(method).observe(time.perf_counter() - start)

    return guarded


def _trailers(exc: EdgeswarmError) -> tuple[tuple[str, str], ...]:
    """The error's class and, for StageUnavailable, the workers at fault: from_rpc_error reads them."""
    trailers = [(ERROR_KEY, type(exc).__name__)]
    if isinstance(exc, StageUnavailable) and exc.failed:
        trailers.append((FAILED_WORKERS_KEY, ",".join(exc.failed)))
    return tuple(trailers)


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {address!r}")
    return host.strip("[]"), int(port)
