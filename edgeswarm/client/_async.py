"""The asynchronous client, on grpc.aio."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import grpc
import numpy as np
from google.protobuf.json_format import MessageToDict

from edgeswarm import codec
from edgeswarm._proto.edgeswarm.v1 import control_pb2, control_pb2_grpc, generation_pb2, generation_pb2_grpc
from edgeswarm._proto.inference import grpc_predict_v2_pb2 as pb
from edgeswarm._proto.inference import grpc_predict_v2_pb2_grpc as pb_grpc
from edgeswarm.channels import DEFAULT_MAX_MESSAGE_BYTES, open_channel
from edgeswarm.client.credentials import Credentials, resolve
from edgeswarm.client.results import GeneratedToken, GenerationResult, ModelInfo, StatusReport, TokenInfo
from edgeswarm.errors import InvalidRequest, answered, from_rpc_error
from edgeswarm.security.pki import Identity

T = TypeVar("T")
DEPLOY_CHUNK_BYTES = 1024 * 1024
# Encoding and decoding above this size moves off the event loop.
OFF_LOOP_BYTES = 1024 * 1024
# Pause before retrying a request whose coordinator could not be reached.
RETRY_PAUSE_S = 0.05
# Dynamic batching's longest wait for more requests after the first; batching is on only for
# batch_max > 1.
DEFAULT_BATCH_DELAY_MS = 2.0


def _as_dict(message: Any) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def encode_request(
    model: str, inputs: Mapping[str, np.ndarray], outputs: tuple[str, ...]
) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=model)
    for name, value in inputs.items():
        array = np.asarray(value)
        request.inputs.add(name=name, datatype=codec.datatype_of(array), shape=list(array.shape))
        request.raw_input_contents.append(codec.to_bytes(array))
    for name in outputs:
        request.outputs.add(name=name)
    return request


def decode_response(response: pb.ModelInferResponse) -> dict[str, np.ndarray]:
    return {
        out.name: codec.from_bytes(out.name, out.datatype, list(out.shape), data)
        for out, data in zip(response.outputs, response.raw_output_contents, strict=True)
    }


def _tokenizer_files(path: str | os.PathLike[str]) -> tuple[bytes, bytes]:
    """A tokenizer.json, or a folder holding one and, optionally, its tokenizer_config.json (whose
    chat template chat requests are then rendered with)."""
    where = Path(path)
    if not where.is_dir():
        return where.read_bytes(), b""
    config = where / "tokenizer_config.json"
    return (where / "tokenizer.json").read_bytes(), config.read_bytes() if config.is_file() else b""


def generate_request(
    model: str,
    prompt: str | None,
    token_ids: Sequence[int] | None,
    max_tokens: int,
    temperature: float,
    top_p: float,
    top_k: int,
    seed: int | None,
    stop: str | Sequence[str] | None,
    stop_token_ids: Sequence[int],
) -> generation_pb2.GenerateRequest:
    return generation_pb2.GenerateRequest(
        model=model, prompt=prompt or "", token_ids=list(token_ids or ()), max_tokens=max_tokens,
        temperature=temperature, top_p=top_p, top_k=top_k, seeded=seed is not None, seed=seed or 0,
        stop=[stop] if isinstance(stop, str) else list(stop or ()), stop_token_ids=list(stop_token_ids),
    )  # fmt: skip


class AsyncClient:
    """`credentials`: a credentials file (or EDGESWARM_CREDENTIALS) for a secure fleet: TLS verified
    against its CA, and its bearer token on every call. `address` defaults to the file's."""

    def __init__(
        self,
        address: str | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        credentials: str | os.PathLike[str] | Credentials | None = None,
    ) -> None:
        self.address, self.credentials = resolve(address, credentials)
        if self.credentials is None:
            self._channel = open_channel(self.address, max_message_bytes)
        else:
            identity = Identity(self.credentials.ca)
            self._channel = open_channel(
                self.address, max_message_bytes, identity=identity, token=self.credentials.token
            )
        self._inference = pb_grpc.GRPCInferenceServiceStub(self._channel)
        self._control = control_pb2_grpc.ControlStub(self._channel)
        self._generation = generation_pb2_grpc.GenerationStub(self._channel)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def infer(
        self,
        model: str,
        inputs: Mapping[str, np.ndarray],
        timeout: float | None = None,
        outputs: tuple[str, ...] = (),
    ) -> dict[str, np.ndarray]:
        """Runs `model` on `inputs`; returns its outputs by name (all of them unless `outputs` names some)."""
        size = sum(np.asarray(v).nbytes for v in inputs.values())
        request = await _maybe_off_loop(size, encode_request, model, inputs, outputs)
        response = await self._infer_within(request, timeout)
        return await _maybe_off_loop(response.ByteSize(), decode_response, response)

    async def _infer_within(
        self, request: pb.ModelInferRequest, timeout: float | None
    ) -> pb.ModelInferResponse:
        """Sends `request`; with a timeout, waits out and retries a coordinator that cannot be reached
        (restarting, say) until the deadline. Inference is idempotent, so a retry is safe."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            remaining = None if deadline is None else max(deadline - loop.time(), 0.0)
            try:
                call = self._inference.ModelInfer(
                    request, timeout=remaining, wait_for_ready=deadline is not None
                )
                response: pb.ModelInferResponse = await call
                return response
            except grpc.RpcError as exc:
                unreached = exc.code() == grpc.StatusCode.UNAVAILABLE and not answered(exc)
                if not unreached or deadline is None or loop.time() + RETRY_PAUSE_S >= deadline:
                    raise from_rpc_error(exc) from exc
            await asyncio.sleep(RETRY_PAUSE_S)

    async def generate_stream(
        self,
        model: str,
        prompt: str | None = None,
        token_ids: Sequence[int] | None = None,
        max_tokens: int = 16,
        temperature: float = 0.0,
        top_p: float = 1.0,
        top_k: int = 0,
        seed: int | None = None,
        stop: str | Sequence[str] | None = None,
        stop_token_ids: Sequence[int] = (),
        timeout: float | None = None,
    ) -> AsyncGenerator[GeneratedToken, None]:
        """Generates from `model` (a deployed decoder), yielding each token as the fleet makes it.
        The prompt is text (for a model with a tokenizer) or `token_ids`; temperature 0 is greedy."""
        request = generate_request(
            model, prompt, token_ids, max_tokens, temperature, top_p, top_k, seed, stop, stop_token_ids
        )
        async for message in self._generated(request, timeout):
            yield GeneratedToken(message.token_id, message.text, message.finish_reason)

    async def _generated(
        self, request: generation_pb2.GenerateRequest, timeout: float | None
    ) -> AsyncIterator[generation_pb2.GenerateResponse]:
        call = self._generation.Generate(request, timeout=timeout)
        try:
            async for message in call:
                yield message
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc
        finally:
            call.cancel()

    async def generate(
        self,
        model: str,
        prompt: str | None = None,
        token_ids: Sequence[int] | None = None,
        max_tokens: int = 16,
        temperature: float = 0.0,
        top_p: float = 1.0,
        top_k: int = 0,
        seed: int | None = None,
        stop: str | Sequence[str] | None = None,
        stop_token_ids: Sequence[int] = (),
        timeout: float | None = None,
    ) -> GenerationResult:
        """The whole generation of generate_stream, once it has finished."""
        request = generate_request(
            model, prompt, token_ids, max_tokens, temperature, top_p, top_k, seed, stop, stop_token_ids
        )
        messages = [m async for m in self._generated(request, timeout)]
        last = messages[-1] if messages else generation_pb2.GenerateResponse()
        return GenerationResult(
            token_ids=tuple(m.token_id for m in messages),
            text="".join(m.text for m in messages),
            finish_reason=last.finish_reason,
            prompt_tokens=last.prompt_tokens,
            completion_tokens=len(messages),
        )

    async def is_ready(self, model: str, timeout: float | None = None) -> bool:
        response = await _call(self._inference.ModelReady(pb.ModelReadyRequest(name=model), timeout=timeout))
        return bool(response.ready)

    async def metadata(self, model: str, timeout: float | None = None) -> dict[str, Any]:
        response = await _call(
            self._inference.ModelMetadata(pb.ModelMetadataRequest(name=model), timeout=timeout)
        )
        return _as_dict(response)

    async def deploy(
        self,
        path: str | os.PathLike[str],
        name: str,
        mode: str = "auto",
        replicas: int = 0,
        stages: int = 0,
        timeout: float | None = None,
        objective: str = "throughput",
        batch_max: int = 0,
        batch_delay_ms: float = DEFAULT_BATCH_DELAY_MS,
        quantize: str = "",
        states: Mapping[str, str] | None = None,
        tokenizer: str | os.PathLike[str] | None = None,
    ) -> ModelInfo:
        """Sends the ONNX file at `path` and returns once the model is ready to serve. Mode "auto" lets
        the planner choose replicas, a pipeline or both from measured figures, for `objective`.
        `batch_max` > 1 turns on dynamic batching: requests arriving within `batch_delay_ms` of each
        other run as one ONNX Runtime call at the entry stage (for models with a batch dimension).
        `quantize` "int8" or "int4" has the coordinator quantize the model first, exactly as
        `edgeswarm quantize` writes it. `states` declares a decoder's state pairs (output -> the input
        it feeds at the next step) beyond those its names tell (present.N.key -> past_key_values.N.key).
        `tokenizer`: a Hugging Face tokenizer.json for the model, for text prompts and streamed text,
        or a folder with it and its tokenizer_config.json (whose chat template chats then use)."""
        files = await asyncio.to_thread(_tokenizer_files, tokenizer) if tokenizer is not None else (b"", b"")
        header = control_pb2.DeployHeader(
            name=name, mode=mode, replicas=replicas, stages=stages, objective=objective,
            batch_max=batch_max, batch_delay_ms=batch_delay_ms, quantize=quantize,
            states=[f"{o}={i}" for o, i in (states or {}).items()],
            tokenizer=files[0], tokenizer_config=files[1],
        )  # fmt: skip
        response = await self._send_model(path, header, timeout)
        return ModelInfo.from_proto(response)

    async def plan(
        self,
        path: str | os.PathLike[str],
        objective: str = "throughput",
        timeout: float | None = None,
        name: str = "",
        quantize: str = "",
    ) -> dict[str, Any]:
        """What an "auto" deploy would place on the live fleet, with predicted figures; places nothing."""
        header = control_pb2.DeployHeader(
            name=name or Path(path).stem, objective=objective, dry_run=True, quantize=quantize
        )
        response = await self._send_model(path, header, timeout)
        return dict(json.loads(response.plan_json))

    async def _send_model(
        self, path: str | os.PathLike[str], header: control_pb2.DeployHeader, timeout: float | None
    ) -> control_pb2.DeployResponse:
        from edgeswarm.graph.externaldata import ExternalDataError, model_files

        try:
            files = await asyncio.to_thread(model_files, Path(path))
        except ExternalDataError as exc:
            raise InvalidRequest(f"{path}: {exc}") from exc
        header.size = sum(size for _, _, size in files)

        async def messages() -> AsyncIterator[control_pb2.DeployRequest]:
            # Each file is read a chunk at a time as the stream takes it: nothing is held whole.
            yield control_pb2.DeployRequest(header=header)
            for name, file_path, size in files:
                yield control_pb2.DeployRequest(file=control_pb2.DeployFile(name=name, size=size))
                with file_path.open("rb") as f:
                    while chunk := await asyncio.to_thread(f.read, DEPLOY_CHUNK_BYTES):
                        yield control_pb2.DeployRequest(data=chunk)

        response: control_pb2.DeployResponse = await _call(self._control.Deploy(messages(), timeout=timeout))
        return response

    async def undeploy(self, name: str, timeout: float | None = None) -> None:
        await _call(self._control.Undeploy(control_pb2.UndeployRequest(name=name), timeout=timeout))

    async def drain(self, worker: str, timeout: float | None = None) -> tuple[str, str]:
        """Drains a worker (name, id or id prefix); returns its id and name. It exits once idle."""
        request = control_pb2.DrainWorkerRequest(worker=worker)
        response = await _call(self._control.Drain(request, timeout=timeout))
        return response.id, response.name

    async def create_token(
        self, role: str, ttl_seconds: float = 0.0, description: str = "", timeout: float | None = None
    ) -> tuple[str, TokenInfo]:
        """A new token of `role` (worker, client, admin) and its record; the token is shown once."""
        request = control_pb2.CreateTokenRequest(role=role, ttl_seconds=ttl_seconds, description=description)
        response = await _call(self._control.CreateToken(request, timeout=timeout))
        return response.token, TokenInfo.from_proto(response.info)

    async def list_tokens(self, timeout: float | None = None) -> list[TokenInfo]:
        response = await _call(self._control.ListTokens(control_pb2.ListTokensRequest(), timeout=timeout))
        return [TokenInfo.from_proto(t) for t in response.tokens]

    async def revoke_token(self, token_id: str, timeout: float | None = None) -> TokenInfo:
        request = control_pb2.RevokeTokenRequest(id=token_id)
        response = await _call(self._control.RevokeToken(request, timeout=timeout))
        return TokenInfo.from_proto(response.info)

    async def status(self, timeout: float | None = None) -> StatusReport:
        response = await _call(self._control.Status(control_pb2.StatusRequest(), timeout=timeout))
        return StatusReport.from_proto(response)


async def _call(call: Awaitable[T]) -> T:
    try:
        return await call
    except grpc.RpcError as exc:
        raise from_rpc_error(exc) from exc


async def _maybe_off_loop(size: int, fn: Callable[..., T], *args: Any) -> T:
    if size >= OFF_LOOP_BYTES:
        return await asyncio.to_thread(fn, *args)
    return fn(*args)
