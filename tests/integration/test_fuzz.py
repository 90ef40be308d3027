"""Every RPC of the coordinator and of a worker, sent malformed and random messages: valid protobuf
with random fields, and raw random bytes. After each batch a good request is still answered
correctly; at the end neither process has grown in memory or open files, and raw bytes that do not
parse were answered INVALID_ARGUMENT, never UNKNOWN.

The fleet runs --insecure on 127.0.0.1, so the messages reach the handlers themselves (a secure
fleet refuses them before, by role). Left out: both Drains, Undeploy and repository unload (they do
what they are told to a caller allowed to), and MeasureLink (it dials the address it is given).
"""

from __future__ import annotations

import collections
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import onnx
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from grpc_health.v1 import health_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeswarm._proto.edgeswarm.v1 import control_pb2, worker_pb2
from edgeswarm._proto.inference import grpc_predict_v2_pb2 as pb
from edgeswarm.client import Client
from edgeswarm.dev import zoo
from edgeswarm.dev.bigmodel import memory_of
from edgeswarm.dev.localfleet import LocalFleet
from edgeswarm.dev.reference import reference
from edgeswarm.graph.samples import sample_inputs

pytestmark = pytest.mark.integration

CASES = 750
CHECK_EVERY = 250
SKIPPED = {
    "/edgeswarm.v1.Control/Drain",
    "/edgeswarm.v1.Worker/Drain",
    "/edgeswarm.v1.Control/Undeploy",
    "/inference.GRPCInferenceService/RepositoryModelUnload",
    "/edgeswarm.v1.Worker/MeasureLink",
}


def methods(*modules: Any) -> list[tuple[str, MethodDescriptor]]:
    found = []
    for module in modules:
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                path = f"/{service.full_name}/{method.name}"
                if path not in SKIPPED:
                    found.append((path, method))
    return found


COORDINATOR_METHODS = methods(pb, control_pb2, health_pb2)
WORKER_METHODS = methods(worker_pb2, health_pb2)

T = FieldDescriptor
_SCALARS = {
    T.TYPE_INT32: st.integers(-(2**31), 2**31 - 1),
    T.TYPE_SINT32: st.integers(-(2**31), 2**31 - 1),
    T.TYPE_SFIXED32: st.integers(-(2**31), 2**31 - 1),
    T.TYPE_INT64: st.integers(-(2**63), 2**63 - 1),
    T.TYPE_SINT64: st.integers(-(2**63), 2**63 - 1),
    T.TYPE_SFIXED64: st.integers(-(2**63), 2**63 - 1),
    T.TYPE_UINT32: st.integers(0, 2**32 - 1),
    T.TYPE_FIXED32: st.integers(0, 2**32 - 1),
    T.TYPE_UINT64: st.integers(0, 2**64 - 1),
    T.TYPE_FIXED64: st.integers(0, 2**64 - 1),
    T.TYPE_DOUBLE: st.floats(allow_nan=True, allow_infinity=True),
    T.TYPE_FLOAT: st.floats(allow_nan=True, allow_infinity=True, width=32),
    T.TYPE_BOOL: st.booleans(),
    T.TYPE_STRING: st.text(max_size=24),
    T.TYPE_BYTES: st.binary(max_size=96),
    T.TYPE_ENUM: st.integers(0, 4),
}


def messages(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Any]:
    """Messages of `descriptor` with a random subset of fields set to random values."""
    cls = message_factory.GetMessageClass(descriptor)
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        if field.type == T.TYPE_MESSAGE:
            if depth >= 2 or field.message_type.GetOptions().map_entry:
                continue
            value: st.SearchStrategy[Any] = messages(field.message_type, depth + 1)
        else:
            value = _SCALARS[field.type]
        fields[field.name] = st.lists(value, max_size=3) if field.is_repeated else value

    def build(values: dict[str, Any]) -> Any:
        message = cls()
        for name, value in values.items():
            field = descriptor.fields_by_name[name]
            if field.is_repeated:
                target = getattr(message, name)
                for item in value:
                    target.add().CopyFrom(item) if field.type == T.TYPE_MESSAGE else target.append(item)
            elif field.type == T.TYPE_MESSAGE:
                getattr(message, name).CopyFrom(value)
            else:
                setattr(message, name, value)
        return message

    return st.fixed_dictionaries({}, optional=fields).map(build)


def payloads(method: MethodDescriptor) -> st.SearchStrategy[tuple[str, bytes]]:
    structured = messages(method.input_type).map(lambda m: ("message", m.SerializeToString()))
    raw = st.binary(min_size=1, max_size=512).map(lambda b: ("raw", b))
    return st.one_of(structured, raw)


def cases(
    table: list[tuple[str, MethodDescriptor]],
) -> st.SearchStrategy[tuple[str, MethodDescriptor, str, bytes]]:
    return st.sampled_from(table).flatmap(
        lambda entry: payloads(entry[1]).map(lambda p: (entry[0], entry[1], p[0], p[1]))
    )


def send(channel: grpc.Channel, path: str, method: MethodDescriptor, data: bytes) -> grpc.StatusCode:
    try:
        if method.client_streaming and method.server_streaming:
            for _ in channel.stream_stream(path)(iter([data]), timeout=0.1):
                pass
        elif method.client_streaming:
            channel.stream_unary(path)(iter([data]), timeout=2)
        elif method.server_streaming:
            for _ in channel.unary_stream(path)(data, timeout=0.1):
                pass
        else:
            channel.unary_unary(path)(data, timeout=2)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def footprint(pid: int) -> tuple[int, int]:
    """(resident bytes, open files) of a process."""
    return memory_of(pid)["VmRSS"], len(os.listdir(f"/proc/{pid}/fd"))


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalFleet, Path]]:
    workdir = tmp_path_factory.mktemp("fuzz")
    path = workdir / "mlp.onnx"
    onnx.save(zoo.mlp(layers=2, width=16, in_features=8, out_features=2), str(path))
    with LocalFleet(workdir / "fleet", workers=1) as fleet:
        fleet.wait_ready(timeout=60)
        with fleet.client() as client:
            client.deploy(path, "mlp", mode="replicas", timeout=60)
        yield fleet, path


def good_request_answered(fleet: LocalFleet, path: Path) -> None:
    inputs = sample_inputs(onnx.load(str(path)), batch=2)
    with fleet.client() as client:
        got = client.infer("mlp", inputs, timeout=10)
    want = reference(path, inputs)
    assert all(np.array_equal(got[k], want[k]) for k in want)


@pytest.mark.parametrize("target", ["coordinator", "worker"])
def test_malformed_and_random_messages_hurt_nothing(fleet: tuple[LocalFleet, Path], target: str) -> None:
    local, model = fleet
    if target == "coordinator":
        assert local.coordinator is not None
        address, pid, table = local.coordinator_address, local.coordinator.pid, COORDINATOR_METHODS
    else:
        address, pid, table = local.worker_addresses["worker1"], local.workers["worker1"].pid, WORKER_METHODS
    codes: collections.Counter[tuple[str, str]] = collections.Counter()
    channel = grpc.insecure_channel(address)
    seen = [0]
    odd: collections.Counter[tuple[str, str]] = collections.Counter()
    before = footprint(pid)

    @settings(max_examples=CASES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(cases(table))
    def fuzz(case: tuple[str, MethodDescriptor, str, bytes]) -> None:
        path, method, kind, data = case
        code = send(channel, path, method, data)
        codes[(kind, code.name)] += 1
        if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.DEADLINE_EXCEEDED):
            odd[(path, code.name)] += 1
        if kind == "raw" and code is grpc.StatusCode.UNKNOWN:
            pytest.fail(f"{path}: raw bytes {data[:32]!r} answered UNKNOWN")
        seen[0] += 1
        if seen[0] % CHECK_EVERY == 0:
            good_request_answered(local, model)

    try:
        fuzz()
    finally:
        channel.close()
    good_request_answered(local, model)
    after = footprint(pid)
    print(f"\n{target}: {seen[0]} cases over {len(table)} RPCs; statuses {dict(sorted(codes.items()))}; "
          f"INTERNAL or past the deadline: {dict(odd)}")  # fmt: skip
    print(f"RSS {before[0] >> 20} -> {after[0] >> 20} MiB, open files {before[1]} -> {after[1]}")
    assert seen[0] >= CASES
    assert after[0] - before[0] < 200 * 1024 * 1024
    assert after[1] - before[1] <= 16
    with Client(local.coordinator_address) as client:
        assert client.is_ready("mlp")
