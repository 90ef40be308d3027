"""Receiving a model sent for deploy: its .onnx and external data files written into the model store as
they arrive, hashed on the way, within a byte budget that every upload in progress shares.

A rejected or cancelled upload leaves nothing behind: its files are written under the store's
incoming/ directory, removed on the way out, and its share of the budget is given back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path, PurePosixPath

import onnx
from google.protobuf.message import DecodeError

from edgeswarm._proto.edgeswarm.v1 import control_pb2
from edgeswarm.coordinator.modelstore import ModelStore, StoredFile, StoredModel
from edgeswarm.errors import InvalidRequest, ResourceExhausted
from edgeswarm.graph.externaldata import (
    ExternalDataError,
    check_ranges,
    data_files,
    local_sizes,
    relative_inside,
)
from edgeswarm.graph.stagefiles import HashingWriter

# The file name a stream with no DeployFile message gives its one .onnx file.
SINGLE_FILE = "model.onnx"


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
    messages: AsyncIterator[control_pb2.DeployRequest],
    budget: UploadBudget,
    max_graph_bytes: int,
    store: ModelStore,
    keep: Callable[[], tuple[set[str], set[str]]],
) -> tuple[control_pb2.DeployHeader, StoredModel]:
    """The header of one Deploy stream and the model it carried, now in the store. The header must
    announce the bytes of all files; the .onnx file, parsed in memory, may hold `max_graph_bytes`.
    `keep()` names the models and stages in use, which room in the store is not made from."""
    first = await anext(aiter(messages), None)
    if first is None:
        raise InvalidRequest("Deploy received no message")
    if not first.HasField("header"):
        raise InvalidRequest("the first Deploy message must carry the header")
    header = first.header
    name, size = header.name, header.size
    if size <= 0:
        raise InvalidRequest(f"model {name!r}: the header must announce the model's size in bytes")
    store.make_room(size, *keep())
    with budget.hold(size), store.incoming() as directory:
        files = await _write_files(name, size, max_graph_bytes, directory, _with_first(first, messages))
        await asyncio.to_thread(_check_model, name, directory, files)
        return header, store.commit(directory, name, files)


async def _write_files(
    name: str,
    size: int,
    max_graph_bytes: int,
    directory: Path,
    messages: AsyncIterator[control_pb2.DeployRequest],
) -> list[StoredFile]:
    files: list[StoredFile] = []
    writer: HashingWriter | None = None
    announced = 0
    received = 0

    def finish() -> None:
        assert writer is not None
        sha = writer.close()
        file_name = str(writer.path.relative_to(directory))
        if writer.size != announced:
            raise InvalidRequest(
                f"model {name!r}: file {file_name!r} announced {announced} bytes, received {writer.size}"
            )
        files.append(StoredFile(file_name, writer.size, sha))

    try:
        async for message in messages:
            if message.HasField("file") or (writer is None and message.data):
                if writer is not None:
                    finish()
                file = message.file
                if not message.HasField("file"):  # the one file of a stream that names none
                    file = control_pb2.DeployFile(name=SINGLE_FILE, size=size)
                path = _file_path(name, directory, file.name, first=not files)
                if path.exists():
                    raise InvalidRequest(f"model {name!r}: file {file.name!r} was sent twice")
                if not files and file.size > max_graph_bytes:
                    raise ResourceExhausted(
                        f"model {name!r}: its .onnx file of {file.size} bytes is over the coordinator's "
                        f"limit of {max_graph_bytes} bytes; keep its weights in external data files"
                    )
                writer, announced = HashingWriter(path), file.size
            if writer is None:
                continue
            received += len(message.data)
            if received > size:
                raise InvalidRequest(f"model {name!r}: more than the announced {size} bytes")
            if writer.size + len(message.data) > announced:
                raise InvalidRequest(f"model {name!r}: file {file.name!r}: more than its {announced} bytes")
            writer.write(message.data)
        if writer is not None:
            finish()
    finally:
        if writer is not None:
            writer.close()
    if received != size:
        raise InvalidRequest(f"model {name!r}: announced {size} bytes, received {received}")
    return files


def _file_path(name: str, directory: Path, file_name: str, first: bool) -> Path:
    path = None if "\\" in file_name else relative_inside(file_name)
    if path is None:
        raise InvalidRequest(
            f"model {name!r}: file name {file_name!r} must be a relative path inside the model's directory"
        )
    if first and path.suffix != ".onnx":
        raise InvalidRequest(f"model {name!r}: the first file must be the .onnx, not {file_name!r}")
    target = directory.joinpath(*path.parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def _check_model(name: str, directory: Path, files: list[StoredFile]) -> None:
    """That the .onnx parses and names exactly the data files sent, each long enough for its weights."""
    graph = directory / files[0].name
    try:
        model = onnx.load(str(graph), load_external_data=False)
    except (DecodeError, ValueError, OSError) as exc:
        raise InvalidRequest(f"model {name!r} is not an ONNX file: {exc}") from exc
    base = graph.parent
    try:
        named = data_files(model)
        sent = {str(PurePosixPath((directory / f.name).relative_to(base))) for f in files[1:]}
        missing = [f for f in named if f not in sent]
        if missing:
            raise ExternalDataError(
                f"its weights name external data file(s) {', '.join(map(repr, missing))}, which were not "
                "sent (they must lie beside the .onnx)"
            )
        extra = sorted(sent - set(named))
        if extra:
            raise ExternalDataError(
                f"file(s) {', '.join(map(repr, extra))} were sent, but no weight names them"
            )
        check_ranges(model, local_sizes(base))
    except ExternalDataError as exc:
        raise InvalidRequest(f"model {name!r}: {exc}") from exc


async def _with_first(
    first: control_pb2.DeployRequest, rest: AsyncIterator[control_pb2.DeployRequest]
) -> AsyncIterator[control_pb2.DeployRequest]:
    yield first
    async for message in rest:
        yield message
