"""The OpenAI-compatible HTTP API (`edgeswarm coordinator --http HOST:PORT`): /v1/models,
/v1/completions and /v1/chat/completions over the deployed decoders, answered whole or streamed as
server-sent events in OpenAI's shapes, so that its unmodified clients work.

A request runs as the gRPC Generate does (`params_of`, then `pieces`); only the shapes differ. With a
fleet CA it is HTTPS with the coordinator's certificate, and every route needs a client or admin
token as `Authorization: Bearer TOKEN` (roles.http_roles); with --insecure it is plain HTTP, on a
loopback address only. Every error is an OpenAI error object with the status its clients map to
their exceptions; one after a stream began is sent as a last event.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from tokenizers import Tokenizer

from edgeswarm.channels import check_insecure, split_address
from edgeswarm.config import CoordinatorSettings
from edgeswarm.coordinator.deploying.registry import Registry
from edgeswarm.coordinator.serving.generate_rpc import Piece, params_of, pieces
from edgeswarm.coordinator.serving.generation import Generator
from edgeswarm.coordinator.serving.openai_shapes import Answer, Asked, asked_of, error_object, swarm_error
from edgeswarm.coordinator.serving.tokenizing import ChatTemplate, chat_prompt
from edgeswarm.errors import EdgeswarmError, InvalidRequest, Unauthenticated
from edgeswarm.plans import Plan
from edgeswarm.security.authority import FleetAuthority
from edgeswarm.security.pki import Identity
from edgeswarm.security.roles import check_http_call
from edgeswarm.security.tokens import TokenRecord

log = logging.getLogger(__name__)

# Largest request body; a larger one is answered 413.
MAX_BODY_BYTES = 4 * 1024 * 1024
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}


def error_answer(exc: Exception) -> tuple[int, dict[str, Any]]:
    """The HTTP status and error object for `exc` (called where it is caught); an error that is not
    the swarm's is logged with its traceback."""
    if isinstance(exc, web.HTTPException):  # no such route, a body over MAX_BODY_BYTES
        kind = "invalid_request_error" if exc.status < 500 else "server_error"
        return exc.status, error_object(exc.text or exc.reason, kind)
    if isinstance(exc, EdgeswarmError):
        status, error = swarm_error(exc)
        log.log(logging.WARNING if status >= 500 else logging.INFO, "http_error status=%d kind=%s "
                "message=%r", status, type(exc).__name__, exc.message)  # fmt: skip
        return status, error
    log.exception("http_internal_error")
    return 500, error_object(f"internal error: {exc}", "server_error")


async def _body(request: web.Request) -> dict[str, Any]:
    data = await request.read()  # 413 (HTTPRequestEntityTooLarge) over MAX_BODY_BYTES
    try:
        body = json.loads(data)
    except ValueError as exc:
        raise InvalidRequest(f"the request body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    return body


async def _send(response: web.StreamResponse, event: Mapping[str, Any]) -> None:
    await response.write(f"data: {json.dumps(event, separators=(',', ':'))}\n\n".encode())


async def _then(first: Piece, rest: AsyncIterator[Piece]) -> AsyncIterator[Piece]:
    yield first
    async for piece in rest:
        yield piece


class OpenAIApi:
    """The routes; `authenticate` (None: no tokens, --insecure) reads a bearer token's record."""

    def __init__(
        self,
        registry: Registry,
        generator: Generator,
        tokenizer_of: Callable[[Plan], Tokenizer | None],
        default_timeout: float,
        authenticate: Callable[[str], TokenRecord] | None,
        template_of: Callable[[Plan], ChatTemplate | None] = lambda plan: None,
    ) -> None:
        self.template_of = template_of
        self.registry = registry
        self.generator = generator
        self.tokenizer_of = tokenizer_of
        self.default_timeout = default_timeout
        self.authenticate = authenticate
        self.started = int(time.time())  # a model's "created": no deploy time is kept

    def app(self) -> web.Application:
        @web.middleware
        async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
            try:
                if request.match_info.http_exception is None:  # an unknown route is a 404 to anyone
                    self._authorize(request)
                return await handler(request)
            except Exception as exc:  # every error leaves as an error object
                status, error = error_answer(exc)
                headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
                return web.json_response(error, status=status, headers=headers)

        app = web.Application(middlewares=[guard], client_max_size=MAX_BODY_BYTES)
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_post("/v1/chat/completions", self.chat)
        return app

    def _authorize(self, request: web.Request) -> None:
        authenticate = self.authenticate
        if authenticate is None:
            return

        def token_role() -> TokenRecord:
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated(
                    f"{request.path} needs an API key: Authorization: Bearer TOKEN, a client token "
                    "(edgeswarm token create --role client)"
                )
            return authenticate(token.strip())

        check_http_call(request.path, token_role)

    async def models(self, request: web.Request) -> web.Response:
        data = [
            {"id": name, "object": "model", "created": self.started, "owned_by": "edgeswarm"}
            for name, plan in sorted(self.registry.plans.items())
            if plan.states
        ]
        return web.json_response({"object": "list", "data": data})

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, asked_of(await _body(request), chat=False), chat=False)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        messages = body.get("messages")
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise InvalidRequest("messages must be a list of {role, content}")
        return await self._generate(request, asked_of(body, chat=True), chat=True, messages=messages)

    async def _generate(
        self, request: web.Request, asked: Asked, chat: bool, messages: list[Any] | None = None
    ) -> web.StreamResponse:
        timeout = asked.timeout or self.default_timeout
        async with self.registry.serving(asked.model) as plan:
            tokenizer = self.tokenizer_of(plan)
            if chat and tokenizer is None:
                raise InvalidRequest(
                    f"model {asked.model!r} has no tokenizer (deploy it with --tokenizer): a chat needs "
                    "one to turn its messages into a prompt"
                )
            if messages is not None:  # its own template where its tokenizer config has one
                asked = replace(asked, prompt=chat_prompt(messages, self.template_of(plan)))
            params = params_of(asked.model, tokenizer, asked.prompt, asked.token_ids, asked.max_tokens,
                               asked.sampling, asked.stop_ids, asked.stops)  # fmt: skip
            answer = Answer(chat, asked.model, len(params.prompt))
            made = pieces(self.generator, plan, params, tokenizer, asked.stops, timeout)
            # Closed however the answer ends (a client gone too): the workers drop the session's state.
            try:
                async with contextlib.aclosing(made) as tokens:
                    # The first token before any byte is sent, so that a refusal (not a decoder, no
                    # prompt) is an HTTP error.
                    first = await anext(tokens)
                    if asked.stream:
                        response = await self._stream(
                            request, answer, asked.include_usage, _then(first, tokens)
                        )
                    else:
                        response = await self._whole(answer, _then(first, tokens))
            finally:
                log.info("http_generated model=%s stream=%s prompt_tokens=%d tokens=%d finish=%s",
                         asked.model, asked.stream, answer.prompt_tokens, answer.completion_tokens,
                         answer.finish_reason or "none")  # fmt: skip
        return response

    async def _whole(self, answer: Answer, tokens: AsyncIterator[Piece]) -> web.Response:
        text = []
        async for piece in tokens:
            answer.add(piece)
            text.append(piece.text)
        return web.json_response(answer.whole("".join(text)))

    async def _stream(
        self, request: web.Request, answer: Answer, include_usage: bool, tokens: AsyncIterator[Piece]
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers=SSE_HEADERS)
        await response.prepare(request)
        try:
            if answer.chat:
                await _send(response, answer.chunk(None, role=True))
            async for piece in tokens:
                answer.add(piece)
                await _send(response, answer.chunk(piece.text))
            await _send(response, answer.chunk(None, answer.finish_reason))
            if include_usage:
                await _send(response, answer.usage_chunk())
            await response.write(b"data: [DONE]\n\n")
        except (ConnectionResetError, asyncio.CancelledError) as exc:  # the client went away
            log.info("http_client_gone model=%s tokens=%d", answer.model, answer.completion_tokens)
            if isinstance(exc, asyncio.CancelledError):
                raise  # its handler cancelled: the generation ends with it
            return response
        except Exception as exc:  # the status is sent: the error goes as the last event
            _, error = error_answer(exc)
            with contextlib.suppress(ConnectionResetError):
                await _send(response, error)
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response


def tls_context(identity: Identity, folder: Path) -> ssl.SSLContext:
    """A TLS server context with `identity`'s certificate and key. ssl reads them only from files:
    they are written into a private temporary folder under `folder`, and deleted once read."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    with tempfile.TemporaryDirectory(dir=folder, prefix="http-tls-") as private:  # mode 0700
        certificate, key = Path(private, "certificate.pem"), Path(private, "key.pem")
        certificate.write_bytes(identity.certificate)
        key.touch(mode=0o600)
        key.write_bytes(identity.key)
        context.load_cert_chain(certificate, key)
    return context


async def serve_http(
    settings: CoordinatorSettings,
    registry: Registry,
    generator: Generator,
    tokenizer_of: Callable[[Plan], Tokenizer | None],
    authority: FleetAuthority | None,
    template_of: Callable[[Plan], ChatTemplate | None] = lambda plan: None,
) -> web.AppRunner:
    """Serves the API on `settings.http`, started: HTTPS with the coordinator's certificate and bearer
    tokens with `authority`, else plain HTTP on a loopback address only. The caller ends it with
    `await runner.cleanup()`."""
    if authority is None:
        check_insecure(settings.http)
    host, port = split_address(settings.http)
    authenticate = authority.authenticate if authority is not None else None
    api = OpenAIApi(registry, generator, tokenizer_of, settings.default_timeout, authenticate, template_of)
    # A client that goes away cancels its handler: a generation it no longer reads ends.
    runner = web.AppRunner(api.app(), handler_cancellation=True, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    try:
        tls = tls_context(authority.identity, settings.state_dir) if authority is not None else None
        await web.TCPSite(runner, host, port, ssl_context=tls).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
