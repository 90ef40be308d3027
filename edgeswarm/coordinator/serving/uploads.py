"""Receiving a model sent for deploy: spooled to disk as it arrives, so the coordinator holds one
copy of it only once it is whole, and within a byte budget that every upload in progress shares.

A rejected or cancelled upload leaves nothing behind: its spool file is unlinked from the start and
goes with the upload, and its share of the budget is given back.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator, Iterator

from edgeswarm._proto.edgeswarm.v1 import control_pb2
from edgeswarm.errors import InvalidRequest, ResourceExhausted


class UploadBudget:
    """Bytes that uploads in progress may announce in all; an upload over what is left is refused."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    @contextlib.contextmanager
    def hold(self, size: int) -> Iterator[None]:
        if self.held + size > self.limit:
            raise ResourceExhausted(
                f"an upload of {size} bytes does not fit: uploads in progress hold {self.held} of the "
                f"coordinator's {self.limit} bytes; try again when they finish"
            )
        self.held += size
        try:
            yield
        finally:
            self.held -= size


async def receive(
    messages: AsyncIterator[control_pb2.DeployRequest], budget: UploadBudget, max_model_bytes: int
) -> tuple[control_pb2.DeployHeader, bytes]:
    """The header and the whole model of one Deploy stream, which must announce its size first."""
    first = await anext(aiter(messages), None)
    if first is None:
        raise InvalidRequest("Deploy received no message")
    if not first.HasField("header"):
        raise InvalidRequest("the first Deploy message must carry the header")
    header = first.header
    size = header.size
    if size <= 0:
        raise InvalidRequest(f"model {header.name!r}: the header must announce the model's size in bytes")
    if size > max_model_bytes:
        raise ResourceExhausted(
            f"model {header.name!r} of {size} bytes is over the coordinator's limit of "
            f"{max_model_bytes} bytes"
        )
    with budget.hold(size), tempfile.TemporaryFile(prefix="edgeswarm-upload-") as spool:
        received = 0
        async for message in _with_first(first, messages):
            received += len(message.data)
            if received > size:
                raise InvalidRequest(f"model {header.name!r}: more than the announced {size} bytes")
            spool.write(message.data)
        if received != size:
            raise InvalidRequest(f"model {header.name!r}: announced {size} bytes, received {received}")
        spool.seek(0)
        return header, await asyncio.to_thread(spool.read)


async def _with_first(
    first: control_pb2.DeployRequest, rest: AsyncIterator[control_pb2.DeployRequest]
) -> AsyncIterator[control_pb2.DeployRequest]:
    yield first
    async for message in rest:
        yield message
