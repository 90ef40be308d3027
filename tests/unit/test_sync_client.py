"""The blocking Client mirrors AsyncClient: every public coroutine has a sync twin with the same
signature, and the twin hands each argument on by keyword."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import pytest

from edgeswarm.client import AsyncClient, Client

ASYNC_METHODS = sorted(
    name
    for name, fn in vars(AsyncClient).items()
    if (inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)) and not name.startswith("_")
)
# Async generators: their twins are plain generators, so the results differ as written.
STREAMS = {name for name in ASYNC_METHODS if inspect.isasyncgenfunction(getattr(AsyncClient, name))}


def test_every_async_method_has_a_sync_twin_and_no_more() -> None:
    sync = sorted(name for name, fn in vars(Client).items() if callable(fn) and not name.startswith("_"))
    assert sync == ASYNC_METHODS


@pytest.mark.parametrize("name", ["__init__", *ASYNC_METHODS])
def test_the_twins_have_the_same_parameters_defaults_and_result(name: str) -> None:
    # Annotations are compared as written (both modules postpone them): the same text, the same type.
    sync, async_ = inspect.signature(getattr(Client, name)), inspect.signature(getattr(AsyncClient, name))
    if name in STREAMS:
        assert sync.parameters == async_.parameters
        assert sync.return_annotation == async_.return_annotation.replace(
            "AsyncGenerator", "Iterator"
        ).replace(", None]", "]")
    else:
        assert sync == async_


class Recorder:
    """Stands in for the AsyncClient inside a Client: records each call, returns nothing."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        async def method(*args: Any, **kwargs: Any) -> None:
            self.calls.append((name, args, kwargs))

        async def stream(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args, kwargs))
            for _ in ():
                yield

        return stream if name in STREAMS else method


@pytest.fixture
def recorded() -> Iterator[tuple[Client, Recorder]]:
    client = Client("127.0.0.1:1")  # the channel connects lazily: nothing is dialled
    real, recorder = client._client, Recorder()
    client._client = recorder  # type: ignore[assignment]
    try:
        yield client, recorder
    finally:
        client._client = real
        client.close()


@pytest.mark.parametrize("name", [n for n in ASYNC_METHODS if n != "close"])
def test_each_argument_is_handed_on_by_keyword(recorded: tuple[Client, Recorder], name: str) -> None:
    client, recorder = recorded
    parameters = list(inspect.signature(getattr(AsyncClient, name)).parameters)[1:]  # less self
    arguments = {p: object() for p in parameters}
    result = getattr(client, name)(**arguments)
    if name in STREAMS:
        assert list(result) == []
    assert recorder.calls == [(name, (), arguments)]
