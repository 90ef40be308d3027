"""An unmodified tritonclient talks to the coordinator and gets the same arrays as our SDK.

tritonclient registers its own copy of the `inference` proto package, which cannot share a
process with ours, so it runs in a subprocess.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from edgeswarm.client import Client
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
