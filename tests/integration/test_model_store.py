"""Models kept in external data, deployed from disk through the coordinator's model store: bit-exact
pipelines, a store that survives a coordinator restart, and bad uploads refused with nothing left."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import numpy as np
import onnx
import pytest

from edgeswarm._proto.edgeswarm.v1 import control_pb2, control_pb2_grpc
from edgeswarm.client import AsyncClient, Client, InvalidRequest, ResourceExhausted
from edgeswarm.dev import zoo
from edgeswarm.dev.localfleet import LocalFleet, wait_until
from edgeswarm.dev.reference import reference
from edgeswarm.errors import from_rpc_error
from edgeswarm.graph.samples import sample_inputs

pytestmark = pytest.mark.integration


def save_external(model: onnx.ModelProto, path: Path, location: str | None = None) -> Path:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    onnx.save_model(
        copy,
        str(path),
        save_as_external_data=True,
        location=location or f"{path.stem}.data",
        size_threshold=1024,
    )
    return path


def store_dir(fleet: LocalFleet) -> Path:
    return fleet.workdir / "coordinator-state" / "store"


def incoming(fleet: LocalFleet) -> list[Path]:
    return list((store_dir(fleet) / "incoming").iterdir())


def cli(fleet: LocalFleet, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "edgeswarm", *args, "--coordinator", fleet.coordinator_address]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFleet]:
    with LocalFleet(tmp_path_factory.mktemp("store-fleet"), workers=3) as fleet:
        fleet.wait_ready(timeout=60)
        yield fleet


def test_an_external_data_model_deploys_as_a_pipeline_and_as_replicas_bit_exact(
    fleet: LocalFleet, tmp_path: Path
) -> None:
    model = zoo.transformer_encoder(layers=3, d_model=64, heads=4, d_ff=128, seq=8)
    path = save_external(model, tmp_path / "encoder.onnx")
    inputs = sample_inputs(model, batch=2)
    want = reference(path, inputs)
    with Client(fleet.coordinator_address) as client:
        for name, mode, stages in (("ext-pipe", "pipeline", 3), ("ext-rep", "replicas", 0)):
            info = client.deploy(path, name, mode=mode, stages=stages, timeout=120)
            assert len(info.stages) == max(stages, 1)
            got = client.infer(name, inputs, timeout=30)
            for key in want:
                np.testing.assert_array_equal(got[key], want[key], err_msg=f"{name} {key}")
        store = client.status().store
    # One content address for the same files, whatever the deploy's name: one entry, both names.
    (sent,) = [m for m in store.models if "ext-rep" in m.name]
    assert sent.name == "ext-pipe, ext-rep"
    assert sent.size == path.stat().st_size + (tmp_path / "encoder.data").stat().st_size
    assert sent.deployed and sent.stage_bytes > 0
    shown = cli(fleet, "models", "--json")
    assert shown.returncode == 0, shown.stderr
    assert any("ext-rep" in m["name"] for m in json.loads(shown.stdout)["models"])
    assert not incoming(fleet)


def test_the_cli_refuses_external_data_it_cannot_send(fleet: LocalFleet, tmp_path: Path) -> None:
    model = zoo.mlp(layers=2, width=64, in_features=16, out_features=4)
    for folder in ("missing", "short", "absolute", "parent"):
        (tmp_path / folder).mkdir()
    missing = save_external(model, tmp_path / "missing" / "m.onnx")
    (missing.parent / "m.data").unlink()
    short = save_external(model, tmp_path / "short" / "m.onnx")
    data = short.parent / "m.data"
    data.write_bytes(data.read_bytes()[:-100])
    cases = {
        missing: r"its external data file 'm\.data' is missing",
        short: r"of 'm\.data', which has \d+ \(truncated\?\)",
    }
    for folder, location in (("absolute", "/etc/passwd"), ("parent", "../outside.data")):
        path = tmp_path / folder / "m.onnx"
        save_external(model, path, location="inside.data")
        proto = onnx.load(str(path), load_external_data=False)
        for tensor in proto.graph.initializer:
            for entry in tensor.external_data:
                if entry.key == "location":
                    entry.value = location
        onnx.save(proto, str(path))
        cases[path] = rf"names external data '{location}': a location must be a relative path"
    for path, message in cases.items():
        run = cli(fleet, "deploy", str(path), "--name", "bad")
        assert run.returncode == 1
        assert "INVALID_ARGUMENT" in run.stderr and re.search(message, run.stderr), run.stderr
    with Client(fleet.coordinator_address) as client:
        assert not client.is_ready("bad")
    assert not incoming(fleet)


async def _raw_deploy(fleet: LocalFleet, messages: list[control_pb2.DeployRequest]) -> Exception:
    async def stream() -> AsyncIterator[control_pb2.DeployRequest]:
        for message in messages:
            yield message

    async with grpc.aio.insecure_channel(fleet.coordinator_address) as channel:
        with pytest.raises(grpc.RpcError) as refused:
            await control_pb2_grpc.ControlStub(channel).Deploy(stream(), timeout=30)
    return from_rpc_error(refused.value)


def _file(name: str, data: bytes) -> list[control_pb2.DeployRequest]:
    return [
        control_pb2.DeployRequest(file=control_pb2.DeployFile(name=name, size=len(data))),
        control_pb2.DeployRequest(data=data),
    ]


async def test_the_coordinator_refuses_uploads_that_do_not_hold_together(
    fleet: LocalFleet, tmp_path: Path
) -> None:
    model = zoo.mlp(layers=2, width=64, in_features=16, out_features=4)
    path = save_external(model, tmp_path / "m.onnx")
    graph, data = path.read_bytes(), (tmp_path / "m.data").read_bytes()

    def header(size: int) -> control_pb2.DeployRequest:
        return control_pb2.DeployRequest(
            header=control_pb2.DeployHeader(name="raw", mode="replicas", size=size)
        )

    cases = [
        (
            [header(len(graph)), *_file("m.onnx", graph)],
            r"name external data file\(s\) 'm\.data', which were not sent",
        ),
        (
            [header(len(graph) + len(data) - 8), *_file("m.onnx", graph), *_file("m.data", data[:-8])],
            r"which has \d+ \(truncated\?\)",
        ),
        (
            [header(len(graph) + 3), *_file("m.onnx", graph), *_file("../evil.data", b"abc")],
            r"file name '\.\./evil\.data' must be a relative path inside the model's directory",
        ),
        (
            [
                header(len(graph) + len(data) + 3),
                *_file("m.onnx", graph),
                *_file("m.data", data),
                *_file("x.bin", b"abc"),
            ],
            r"file\(s\) 'x\.bin' were sent, but no weight names them",
        ),
        ([header(len(data)), *_file("m.data", data)], r"the first file must be the \.onnx"),
    ]
    for messages, pattern in cases:
        error = await _raw_deploy(fleet, messages)
        assert isinstance(error, InvalidRequest), error
        assert re.search(pattern, error.message), error.message
    assert not incoming(fleet)
    with Client(fleet.coordinator_address) as client:
        assert not client.is_ready("raw")


def test_a_deploy_over_the_store_quota_is_refused_up_front(make_fleet: object, tmp_path: Path) -> None:
    quota = 200_000
    fleet = make_fleet(workers=1, env={"EDGESWARM_COORDINATOR_STORE_MAX_BYTES": str(quota)})  # type: ignore[operator]
    small = tmp_path / "small.onnx"
    onnx.save(zoo.mlp(layers=2, width=16, in_features=8, out_features=2), str(small))
    big = save_external(zoo.mlp(layers=2, width=256, in_features=64, out_features=4), tmp_path / "big.onnx")
    with Client(fleet.coordinator_address) as client:
        client.deploy(small, "small", mode="replicas", timeout=60)
        with pytest.raises(
            ResourceExhausted, match=rf"do not fit the coordinator's model store: its quota is {quota}"
        ):
            client.deploy(big, "big", mode="replicas", timeout=60)
        assert client.is_ready("small") and not client.is_ready("big")
        store = client.status().store
    assert [m.name for m in store.models] == ["small"] and store.used <= quota
    assert not incoming(fleet)


async def test_two_deploys_racing_for_the_last_bytes_of_the_budget(
    make_fleet: object, tmp_path: Path
) -> None:
    paths = [tmp_path / f"m{i}.onnx" for i in range(2)]
    for i, path in enumerate(paths):
        onnx.save(zoo.mlp(layers=2, width=128, in_features=32, out_features=4, seed=i), str(path))
    size = paths[0].stat().st_size
    fleet = make_fleet(workers=1, env={"EDGESWARM_COORDINATOR_MAX_UPLOAD_BYTES": str(size + size // 2)})  # type: ignore[operator]
    stalled = asyncio.Event()

    first_model = paths[0].read_bytes()

    async def slow(path: Path, data: bytes) -> AsyncIterator[control_pb2.DeployRequest]:
        yield control_pb2.DeployRequest(
            header=control_pb2.DeployHeader(name=path.stem, mode="replicas", size=len(data))
        )
        yield control_pb2.DeployRequest(data=data[:100])
        stalled.set()
        await asyncio.sleep(1.0)  # holds its share while the other one asks
        yield control_pb2.DeployRequest(data=data[100:])

    async with (
        grpc.aio.insecure_channel(fleet.coordinator_address) as channel,
        AsyncClient(fleet.coordinator_address) as client,
    ):
        first = asyncio.ensure_future(
            control_pb2_grpc.ControlStub(channel).Deploy(slow(paths[0], first_model), timeout=60)
        )
        await asyncio.wait_for(stalled.wait(), 10)
        # The second asks while the first holds its share of the budget: refused with the numbers.
        with pytest.raises(ResourceExhausted, match=rf"uploads in progress hold {size} of the coordinator's"):
            await client.deploy(paths[1], "m1", mode="replicas", timeout=60)
        await first
        assert await client.is_ready("m0") and not await client.is_ready("m1")
        await client.deploy(paths[1], "m1", mode="replicas", timeout=60)  # the budget is free again
    assert not incoming(fleet)


def test_a_restarted_coordinator_reloads_a_wiped_worker_from_its_store(
    make_fleet: object, tmp_path: Path
) -> None:
    model = zoo.transformer_encoder(layers=2, d_model=64, heads=4, d_ff=128, seq=8)
    path = save_external(model, tmp_path / "enc.onnx")
    inputs = sample_inputs(model, batch=1)
    want = reference(path, inputs)
    fleet = make_fleet(workers=2, env={"EDGESWARM_COORDINATOR_RECOVERY_WINDOW": "10"})  # type: ignore[operator]
    with Client(fleet.coordinator_address) as client:
        client.deploy(path, "enc", mode="pipeline", stages=2, timeout=120)
    fleet.kill_coordinator()
    # worker2 loses its cache and restarts: only the store of the restarted coordinator has its stage.
    # It joins first, holding nothing; the plan comes back with worker1, frozen until worker2 is up.
    fleet.signal_worker("worker1", signal.SIGSTOP)
    fleet.kill_worker("worker2")
    loaded = fleet.log("worker2").count("stage_loaded")
    shards = fleet.workdir / "worker2" / "shards"
    assert any(shards.iterdir())
    shutil.rmtree(shards)  # its identity (worker-id) stays
    fleet.start_coordinator()
    fleet.start_worker("worker2")
    fleet.wait_ready(workers=1, timeout=60)
    fleet.signal_worker("worker1", signal.SIGCONT)
    fleet.wait_ready(timeout=60)
    # Taking the plan over from worker1, the coordinator gives worker2 its stage from the store.
    wait_until(lambda: fleet.log("worker2").count("stage_loaded") > loaded, 30, "worker2's stage reloaded")
    assert "model_recovered model=enc" in fleet.log("coordinator")
    with Client(fleet.coordinator_address) as client:
        for _ in range(3):
            got = client.infer("enc", inputs, timeout=60)
            for key in want:
                np.testing.assert_array_equal(got[key], want[key])
        assert client.status().models[0].version == "1"  # no redeploy
    log = (fleet.workdir / "worker2.log").read_text()
    assert "shard_stored" in log
