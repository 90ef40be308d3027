"""A thin blocking wrapper over AsyncClient: the same methods with the same parameters (a unit test
compares their signatures), forwarded by keyword and run on a private event loop.

The loop runs in its own thread for the client's life: grpc.aio completes calls through the
running loop, and a loop kept running answers about a millisecond sooner per call than one
started and stopped around each call.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

from edgeswarm.channels import DEFAULT_MAX_MESSAGE_BYTES
from edgeswarm.client._async import DEFAULT_BATCH_DELAY_MS, AsyncClient
from edgeswarm.client.credentials import Credentials
from edgeswarm.client.results import GeneratedToken, GenerationResult, ModelInfo, StatusReport, TokenInfo

T = TypeVar("T")


class Client:
    def __init__(
        self,
        address: str | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        credentials: str | os.PathLike[str] | Credentials | None = None,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="edgeswarm-client", daemon=True)
        self._thread.start()
        self._client: AsyncClient = self._run(_open(address, max_message_bytes, credentials))
        self.address = self._client.address
        self.credentials = self._client.credentials

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._run(self._client.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def infer(
        self,
        model: str,
        inputs: Mapping[str, np.ndarray],
        timeout: float | None = None,
        outputs: tuple[str, ...] = (),
    ) -> dict[str, np.ndarray]:
        return self._run(self._client.infer(model=model, inputs=inputs, timeout=timeout, outputs=outputs))

    def is_ready(self, model: str, timeout: float | None = None) -> bool:
        return self._run(self._client.is_ready(model=model, timeout=timeout))

    def metadata(self, model: str, timeout: float | None = None) -> dict[str, Any]:
        return self._run(self._client.metadata(model=model, timeout=timeout))

    def deploy(
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
        return self._run(
            self._client.deploy(
                path=path,
                name=name,
                mode=mode,
                replicas=replicas,
                stages=stages,
                timeout=timeout,
                objective=objective,
                batch_max=batch_max,
                batch_delay_ms=batch_delay_ms,
                quantize=quantize,
                states=states,
                tokenizer=tokenizer,
            )
        )

    def generate(
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
        return self._run(
            self._client.generate(
                model=model, prompt=prompt, token_ids=token_ids, max_tokens=max_tokens,
                temperature=temperature, top_p=top_p, top_k=top_k, seed=seed, stop=stop,
                stop_token_ids=stop_token_ids, timeout=timeout,
            )
        )  # fmt: skip

    def generate_stream(
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
    ) -> Iterator[GeneratedToken]:
        """Each token as the fleet makes it; leaving the loop early ends the generation."""
        stream = self._client.generate_stream(
            model=model, prompt=prompt, token_ids=token_ids, max_tokens=max_tokens,
            temperature=temperature, top_p=top_p, top_k=top_k, seed=seed, stop=stop,
            stop_token_ids=stop_token_ids, timeout=timeout,
        )  # fmt: skip
        try:
            while True:
                try:
                    yield self._run(_next(stream))
                except StopAsyncIteration:
                    return
        finally:
            self._run(stream.aclose())

    def plan(
        self,
        path: str | os.PathLike[str],
        objective: str = "throughput",
        timeout: float | None = None,
        name: str = "",
        quantize: str = "",
    ) -> dict[str, Any]:
        return self._run(
            self._client.plan(path=path, objective=objective, timeout=timeout, name=name, quantize=quantize)
        )

    def undeploy(self, name: str, timeout: float | None = None) -> None:
        self._run(self._client.undeploy(name=name, timeout=timeout))

    def drain(self, worker: str, timeout: float | None = None) -> tuple[str, str]:
        return self._run(self._client.drain(worker=worker, timeout=timeout))

    def create_token(
        self, role: str, ttl_seconds: float = 0.0, description: str = "", timeout: float | None = None
    ) -> tuple[str, TokenInfo]:
        return self._run(
            self._client.create_token(
                role=role, ttl_seconds=ttl_seconds, description=description, timeout=timeout
            )
        )

    def list_tokens(self, timeout: float | None = None) -> list[TokenInfo]:
        return self._run(self._client.list_tokens(timeout=timeout))

    def revoke_token(self, token_id: str, timeout: float | None = None) -> TokenInfo:
        return self._run(self._client.revoke_token(token_id=token_id, timeout=timeout))

    def status(self, timeout: float | None = None) -> StatusReport:
        return self._run(self._client.status(timeout=timeout))


async def _open(
    address: str | None, max_message_bytes: int, credentials: str | os.PathLike[str] | Credentials | None
) -> AsyncClient:
    # The channel must be made inside the loop that will use it.
    return AsyncClient(address, max_message_bytes, credentials)


async def _next(stream: AsyncIterator[T]) -> T:
    return await anext(stream)
