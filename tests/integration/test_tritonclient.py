"""An unmodified tritonclient talks to the coordinator and gets the same arrays as our SDK.

tritonclient registers its own copy of the `inference` proto package, which cannot share a
process with ours, so it runs in a subprocess.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import grpc
import numpy as np
import pytest

from edgeswarm._proto.inference import grpc_predict_v2_pb2_grpc as pb_grpc
from edgeswarm.client import Client
from edgeswarm.client._async import decode_response, encode_request
from edgeswarm.dev.localfleet import LocalFleet
from tests.helpers import inputs_for

pytestmark = pytest.mark.integration

SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tritonclient.grpc as grpcclient

    url, model, given, out = sys.argv[1:5]
    client = grpcclient.InferenceServerClient(url=url)
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready(model)
    meta = client.get_model_metadata(model, as_json=True)
    inputs = []
    with np.load(given) as arrays:
        for spec in meta["inputs"]:
            array = arrays[spec["name"]]
            tensor = grpcclient.InferInput(spec["name"], list(array.shape), spec["datatype"])
            tensor.set_data_from_numpy(array)
            inputs.append(tensor)
    result = client.infer(model, inputs)
    np.savez(out, **{o["name"]: result.as_numpy(o["name"]) for o in meta["outputs"]})
    print(meta["platform"], [i["name"] for i in meta["inputs"]], [o["datatype"] for o in meta["outputs"]])
    """
)


def test_tritonclient_gets_what_the_sdk_gets(
    shared_fleet: LocalFleet, model_files: dict[str, Path], tmp_path: Path
) -> None:
    path = model_files["transformer"]
    inputs = inputs_for(path, batch=2, seed=3)
    np.savez(tmp_path / "in.npz", **inputs)
    with Client(shared_fleet.coordinator_address) as client:
        client.deploy(path, "triton-enc", mode="pipeline", stages=3, timeout=60)
        ours = client.infer("triton-enc", inputs)
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            SCRIPT,
            shared_fleet.coordinator_address,
            "triton-enc",
            str(tmp_path / "in.npz"),
            str(tmp_path / "out.npz"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "onnxruntime_onnx ['embeddings', 'attention_mask'] ['FP32']" in run.stdout
    with np.load(tmp_path / "out.npz") as theirs:
        np.testing.assert_array_equal(theirs["hidden"], ours["hidden"])


EXTENSIONS = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    url, model, given, requests = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    client = grpcclient.InferenceServerClient(url=url)
    config = client.get_model_config(model, as_json=True)["config"]
    with np.load(given) as arrays:
        array = arrays["image"]
    tensor = grpcclient.InferInput("image", list(array.shape), "FP32")
    tensor.set_data_from_numpy(array)
    for _ in range(requests):
        client.infer(model, [tensor])
    wrong = grpcclient.InferInput("image", list(array.shape), "FP64")
    wrong.set_data_from_numpy(array.astype(np.float64))
    try:
        client.infer(model, [wrong])
    except InferenceServerException as exc:
        failed = exc.status()
    stats = client.get_inference_statistics(model, as_json=True)["model_stats"]
    index = client.get_model_repository_index(as_json=True)["models"]
    client.unload_model(model)
    unloaded = client.get_model_repository_index(as_json=True)["models"]
    client.load_model(model)
    ready = client.is_model_ready(model)
    try:
        client.get_system_shared_memory_status()
    except InferenceServerException as exc:
        shm = exc.status()
    print(json.dumps({"config": config, "stats": stats, "index": index, "unloaded": unloaded,
                      "ready": ready, "shm": shm, "failed": failed}))
    """
)


def test_tritonclient_reads_config_statistics_and_repository(
    shared_fleet: LocalFleet, model_files: dict[str, Path], tmp_path: Path
) -> None:
    path = model_files["cnn"]
    inputs = inputs_for(path, batch=2, seed=1)
    np.savez(tmp_path / "in.npz", **inputs)
    requests = 7
    with Client(shared_fleet.coordinator_address) as client:
        client.deploy(path, "triton-cnn", mode="replicas", replicas=2, timeout=60)
    run = subprocess.run(
        [sys.executable, "-c", EXTENSIONS, shared_fleet.coordinator_address, "triton-cnn",
         str(tmp_path / "in.npz"), str(requests)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout.strip().splitlines()[-1])

    config = seen["config"]
    assert config["name"] == "triton-cnn" and config["platform"] == "onnxruntime_onnx"
    assert int(config["max_batch_size"]) > 0  # a batch dimension: dims leave it out
    assert config["input"] == [{"name": "image", "data_type": "TYPE_FP32", "dims": ["3", "16", "16"]}]
    assert config["output"] == [{"name": "logits", "data_type": "TYPE_FP32", "dims": ["10"]}]

    [stats] = seen["stats"]
    assert stats["name"] == "triton-cnn" and stats["version"] == "1"
    assert int(stats["inference_count"]) == 2 * requests  # batch 2: each request is 2 inferences
    assert int(stats["execution_count"]) == requests
    phases = stats["inference_stats"]
    assert int(phases["success"]["count"]) == requests and int(phases["success"]["ns"]) > 0
    assert all(int(phases[p]["count"]) == requests for p in ("queue", "compute_input", "compute_infer"))
    assert int(phases["compute_infer"]["ns"]) <= int(phases["success"]["ns"])
    assert int(phases["fail"]["count"]) == 1  # the FP64 request

    assert {"name": "triton-cnn", "version": "1", "state": "READY"} in seen["index"]
    assert {"name": "triton-cnn", "state": "UNAVAILABLE", "reason": "unloaded"} in seen["unloaded"]
    assert seen["ready"] is True  # loaded again from what its deploy asked
    assert "UNIMPLEMENTED" in seen["shm"] and "INVALID_ARGUMENT" in seen["failed"]


async def test_a_stream_answers_each_request_and_goes_on_past_a_bad_one(
    shared_fleet: LocalFleet, model_files: dict[str, Path]
) -> None:
    path = model_files["mlp"]
    inputs = inputs_for(path, batch=2)
    with Client(shared_fleet.coordinator_address) as client:
        client.deploy(path, "stream-mlp", mode="pipeline", stages=2, timeout=60)
        want = client.infer("stream-mlp", inputs)["y"]
    good = encode_request("stream-mlp", inputs, ())
    bad = encode_request("stream-mlp", {"x": inputs["x"].astype(np.float64)}, ())
    async with grpc.aio.insecure_channel(shared_fleet.coordinator_address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        answers = [a async for a in stub.ModelStreamInfer(iter([good, bad, good]), timeout=30)]
    assert [bool(a.error_message) for a in answers] == [False, True, False]
    assert "INVALID_ARGUMENT" in answers[1].error_message and "must be FP32" in answers[1].error_message
    for answer in (answers[0], answers[2]):
        np.testing.assert_array_equal(decode_response(answer.infer_response)["y"], want)
