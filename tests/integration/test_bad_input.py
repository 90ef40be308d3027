"""Bad requests get a precise status and message, and the coordinator keeps serving."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest

from edgeswarm.client import Client, InvalidRequest, NotFound, ResourceExhausted
from edgeswarm.dev.localfleet import LocalFleet
from tests.helpers import inputs_for, reference

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(shared_fleet: LocalFleet, model_files: dict[str, Path]) -> Iterator[Client]:
    with Client(shared_fleet.coordinator_address, max_message_bytes=64 * 1024 * 1024) as client:
        client.deploy(model_files["transformer"], "enc", mode="pipeline", stages=2, timeout=60)
        yield client


def still_serves(client: Client, model_files: dict[str, Path]) -> None:
    inputs = inputs_for(model_files["transformer"], batch=1, seed=7)
    got = client.infer("enc", inputs, timeout=30)
    np.testing.assert_array_equal(got["hidden"], reference(model_files["transformer"], inputs)["hidden"])


def test_unknown_model(client: Client, model_files: dict[str, Path]) -> None:
    with pytest.raises(NotFound, match="model 'nope' is not deployed"):
        client.infer("nope", {"x": np.zeros(1, np.float32)})
    still_serves(client, model_files)


def test_missing_input(client: Client, model_files: dict[str, Path]) -> None:
    inputs = inputs_for(model_files["transformer"])
    del inputs["attention_mask"]
    with pytest.raises(InvalidRequest, match="missing input 'attention_mask' \\(INT64 \\[-1, 16\\]\\)"):
        client.infer("enc", inputs)
    still_serves(client, model_files)


def test_unknown_input(client: Client, model_files: dict[str, Path]) -> None:
    inputs = {**inputs_for(model_files["transformer"]), "extra": np.zeros(2, np.float32)}
    with pytest.raises(
        InvalidRequest, match="has no input 'extra'; its inputs are embeddings, attention_mask"
    ):
        client.infer("enc", inputs)


def test_wrong_dtype(client: Client, model_files: dict[str, Path]) -> None:
    inputs = inputs_for(model_files["transformer"])
    inputs["embeddings"] = inputs["embeddings"].astype(np.float64)
    with pytest.raises(InvalidRequest, match="input 'embeddings' must be FP32, got FP64"):
        client.infer("enc", inputs)
    still_serves(client, model_files)


def test_wrong_shape(client: Client, model_files: dict[str, Path]) -> None:
    inputs = inputs_for(model_files["transformer"])
    inputs["embeddings"] = inputs["embeddings"][:, :5]
    with pytest.raises(
        InvalidRequest, match=r"input 'embeddings' must have shape \[-1, 16, 32\].*got \[2, 5, 32\]"
    ):
        client.infer("enc", inputs)
    still_serves(client, model_files)


def test_unknown_output(client: Client, model_files: dict[str, Path]) -> None:
    with pytest.raises(InvalidRequest, match="has no output 'logits'; its outputs are hidden"):
        client.infer("enc", inputs_for(model_files["transformer"]), outputs=("logits",))


def test_message_over_the_size_limit(client: Client, model_files: dict[str, Path]) -> None:
    inputs = inputs_for(model_files["transformer"], batch=4096)  # 8 MiB of embeddings, limit is 4 MiB
    with pytest.raises(ResourceExhausted, match=r"(?i)message larger than max|received message larger"):
        client.infer("enc", inputs, timeout=30)
    still_serves(client, model_files)


def test_corrupt_onnx_at_deploy(client: Client, model_files: dict[str, Path], tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07this is not a protobuf" * 50)
    with pytest.raises(InvalidRequest, match="model 'broken' is not an ONNX file"):
        client.deploy(corrupt, "broken", timeout=30)
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(model_files["mlp"].read_bytes()[:-200])
    with pytest.raises(InvalidRequest, match=r"model 'cut' (is not an ONNX file|fails the ONNX checker)"):
        client.deploy(truncated, "cut", timeout=30)
    assert not client.is_ready("broken")
    still_serves(client, model_files)


def test_impossible_placement(client: Client, model_files: dict[str, Path]) -> None:
    from edgeswarm.client import PlacementError

    with pytest.raises(PlacementError, match="need 8 live workers; 3 live"):
        client.deploy(model_files["mlp"], "too-big", mode="pipeline", stages=4, replicas=2, timeout=30)
    still_serves(client, model_files)


def test_a_model_onnx_runtime_cannot_load_is_refused_and_leaves_nothing_behind(
    client: Client, shared_fleet: LocalFleet, tmp_path: Path
) -> None:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["a"]),
            helper.make_node("Frobnicate", ["a"], ["y"], domain="com.example"),
        ],
        "unloadable",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)]
    )
    model.ir_version = 9
    path = tmp_path / "unloadable.onnx"
    onnx.save(model, str(path))
    with pytest.raises(InvalidRequest, match=r"ONNX Runtime cannot load shard .*Frobnicate"):
        client.deploy(path, "unloadable", mode="replicas", replicas=2, timeout=30)
    assert not client.is_ready("unloadable")
    assert all(not any(s.startswith("unloadable") for s in w.loaded_stages) for w in client.status().workers)


def test_a_record_that_lies_about_who_answers_is_never_used(shared_fleet: LocalFleet) -> None:
    from zeroconf import IPVersion, Zeroconf

    from edgeswarm.dev.localfleet import wait_until
    from edgeswarm.worker.advertise import service_info

    # An mDNS record of this fleet whose address belongs to worker1, which has another id.
    host, port = shared_fleet.worker_addresses["worker1"].split(":")
    zc = Zeroconf(interfaces=[host], ip_version=IPVersion.V4Only)  # answers from its own thread
    try:
        zc.register_service(service_info("f" * 32, "impostor", shared_fleet.fleet, host, int(port)))
        wait_until(lambda: "impostor" in {w.name for w in shared_fleet.status().workers}, 15, "record seen")
        wait_until(lambda: "worker_refused" in shared_fleet.log("coordinator"), 10, "refusal logged")
        states = {w.name: w.state for w in shared_fleet.status().workers}
        assert states["impostor"] == "down"
        assert states["worker1"] == "up"
        assert "answers as worker" in shared_fleet.log("coordinator")
    finally:
        zc.close()


def test_a_worker_times_its_link_to_another_and_refuses_bad_link_requests(shared_fleet: LocalFleet) -> None:
    import grpc

    from edgeswarm._proto.edgeswarm.v1 import worker_pb2, worker_pb2_grpc
    from edgeswarm.dev.localfleet import free_port

    first, second = (shared_fleet.worker_addresses[n] for n in ("worker1", "worker2"))
    with grpc.insecure_channel(first) as channel:
        stub = worker_pb2_grpc.WorkerStub(channel)
        figures = stub.MeasureLink(worker_pb2.MeasureLinkRequest(address=second), timeout=30)
        assert 0 < figures.rtt_seconds < 1 and figures.bandwidth > 0
        for request, code, text in [
            (worker_pb2.MeasureLinkRequest(address="nowhere"), grpc.StatusCode.INVALID_ARGUMENT, "HOST:PORT"),
            (
                worker_pb2.MeasureLinkRequest(address=second, payload_bytes=1 << 30),
                grpc.StatusCode.INVALID_ARGUMENT,
                "payload_bytes",
            ),
            (
                worker_pb2.MeasureLinkRequest(address=f"127.0.0.1:{free_port()}"),
                grpc.StatusCode.UNAVAILABLE,
                "cannot reach",
            ),
        ]:
            with pytest.raises(grpc.RpcError) as caught:
                stub.MeasureLink(request, timeout=10)
            assert caught.value.code() == code and text in (caught.value.details() or "")
    assert "link_measured to=" in shared_fleet.log("worker1")


def test_a_declared_input_too_big_to_sample_is_refused_at_once(
    client: Client, model_files: dict[str, Path], tmp_path: Path
) -> None:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "huge",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2**27])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2**27])],
    )
    path = tmp_path / "huge.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(
        InvalidRequest, match=r"cannot be planned by measurement: sample inputs would take over"
    ):
        client.deploy(path, "huge", timeout=30)
    still_serves(client, model_files)
