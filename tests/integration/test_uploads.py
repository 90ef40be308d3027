"""Deploy uploads share the coordinator's byte budget: one that does not fit beside an upload in
progress is refused with the numbers, and a cancelled upload gives its share back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import onnx
import pytest

from edgeswarm._proto.edgeswarm.v1 import control_pb2, control_pb2_grpc
from edgeswarm.client import AsyncClient, InvalidRequest, ResourceExhausted
from edgeswarm.dev import zoo
from edgeswarm.errors import from_rpc_error

pytestmark = pytest.mark.integration

BUDGET = 1_000_000


async def test_uploads_share_a_budget_and_a_cancelled_one_gives_it_back(
    make_fleet: object, tmp_path: Path
) -> None:
    fleet = make_fleet(workers=1, env={"EDGESWARM_COORDINATOR_MAX_UPLOAD_BYTES": str(BUDGET)})  # type: ignore[operator]
    path = tmp_path / "mlp.onnx"
    onnx.save(zoo.mlp(layers=2, width=32, in_features=8, out_features=2), str(path))
    stalled = asyncio.Event()

    async def slow_upload() -> AsyncIterator[control_pb2.DeployRequest]:
        header = control_pb2.DeployHeader(name="slow", mode="replicas", size=BUDGET - 1000)
        yield control_pb2.DeployRequest(header=header, data=b"\0" * 1000)
        stalled.set()
        await asyncio.Event().wait()  # never sends the rest

    async with (
        grpc.aio.insecure_channel(fleet.coordinator_address) as channel,
        AsyncClient(fleet.coordinator_address) as client,
    ):
        upload = asyncio.ensure_future(
            control_pb2_grpc.ControlStub(channel).Deploy(slow_upload(), timeout=60)
        )
        await asyncio.wait_for(stalled.wait(), 10)

        async def refused() -> bool:
            try:
                await client.deploy(path, "mlp", mode="replicas", replicas=1, timeout=30)
            except ResourceExhausted as exc:
                assert (
                    f"uploads in progress hold {BUDGET - 1000} of the coordinator's {BUDGET} bytes"
                    in exc.message
                )
                return True
            return False

        # The slow upload's header may still be on its way: the refusal comes once it holds its share.
        for _ in range(50):
            if await refused():
                break
            await client.undeploy("mlp")
            await asyncio.sleep(0.1)
        else:
            pytest.fail("the second upload was never refused")
        incoming = fleet.workdir / "coordinator-state" / "store" / "incoming"
        assert any(incoming.iterdir())  # the stalled upload's file, being written
        upload.cancel()
        with pytest.raises(asyncio.CancelledError):
            await upload
        for _ in range(50):  # the coordinator sees the cancellation and gives the bytes back
            try:
                info = await client.deploy(path, "mlp", mode="replicas", replicas=1, timeout=30)
                break
            except ResourceExhausted:
                await asyncio.sleep(0.1)
        else:
            pytest.fail("the budget was not given back after the cancellation")
        assert info.name == "mlp" and await client.is_ready("mlp")
        assert not any(incoming.iterdir())  # nothing of the cancelled upload is left on disk

        async def liar() -> AsyncIterator[control_pb2.DeployRequest]:
            header = control_pb2.DeployHeader(name="liar", size=10)
            yield control_pb2.DeployRequest(header=header, data=b"\0" * 20)

        with pytest.raises(grpc.RpcError) as refused_liar:
            await control_pb2_grpc.ControlStub(channel).Deploy(liar(), timeout=10)
        error = from_rpc_error(refused_liar.value)
        assert isinstance(error, InvalidRequest) and "more than the announced 10 bytes" in error.message
