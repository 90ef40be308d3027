"""A secure fleet on 127.0.0.1: mutual TLS from the fleet CA, workers joined with tokens, callers
checked by role. Each probe an attacker on the same machine would try is refused, and the service
keeps serving.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import onnx
import pytest

from edgeswarm._proto.edgeswarm.v1 import control_pb2, worker_pb2, worker_pb2_grpc
from edgeswarm.channels import open_channel
from edgeswarm.client import Client, PermissionDenied, Unauthenticated, load_credentials
from edgeswarm.dev import zoo
from edgeswarm.dev.localfleet import LOOPBACK, LocalFleet, free_port, wait_until
from edgeswarm.dev.reference import reference
from edgeswarm.errors import from_rpc_error
from edgeswarm.graph.samples import sample_inputs
from edgeswarm.security import enrollment, pki
from edgeswarm.security.tokens import parse
from tests.helpers import runaway_loop

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFleet]:
    with LocalFleet(tmp_path_factory.mktemp("secure"), workers=2, secure=True) as fleet:
        fleet.wait_ready(timeout=60)
        yield fleet


@pytest.fixture(scope="module")
def model(fleet: LocalFleet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "mlp.onnx"
    onnx.save(zoo.mlp(layers=4, width=32, in_features=8, out_features=2), str(path))
    with fleet.client() as admin:
        admin.deploy(path, "mlp", mode="pipeline", stages=2, timeout=60)
    return path


def still_serves(fleet: LocalFleet, model: Path) -> None:
    inputs = sample_inputs(onnx.load(str(model)), batch=2)
    with fleet.client() as client:
        got = client.infer("mlp", inputs, timeout=30)
    want = reference(model, inputs)
    assert all(np.array_equal(got[k], want[k]) for k in want)


def credentials_for(fleet: LocalFleet, role: str, directory: Path) -> Path:
    path = directory / f"{role}.credentials"
    run = subprocess.run(
        [sys.executable, "-m", "edgeswarm", "token", "create", "--role", role, "--output", str(path),
         "--credentials", str(fleet.credentials)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1].startswith("esw1.")  # the token, as the last line
    return path


def test_the_coordinator_checks_every_callers_role(fleet: LocalFleet, model: Path, tmp_path: Path) -> None:
    client_file = credentials_for(fleet, "client", tmp_path)
    inputs = sample_inputs(onnx.load(str(model)), batch=2)
    with Client(fleet.coordinator_address, credentials=client_file) as client:
        want = reference(model, inputs)
        got = client.infer("mlp", inputs, timeout=30)
        assert all(np.array_equal(got[k], want[k]) for k in want)
        assert client.status().models  # Status: client or admin
        for call in (
            lambda: client.deploy(model, "mine", mode="replicas", timeout=30),
            lambda: client.undeploy("mlp"),
            lambda: client.drain("worker1"),
            lambda: client.create_token("admin"),
        ):
            with pytest.raises(PermissionDenied, match=r"needs role admin; token \w+ has role client"):
                call()
    # TLS to the fleet CA, but no token: refused before any handler runs.
    ca = load_credentials(fleet.credentials).ca
    bare = tmp_path / "no-token.credentials"
    bare.write_text(json.dumps({"coordinator": fleet.coordinator_address, "ca": ca.decode(), "token": ""}))
    with Client(fleet.coordinator_address, credentials=bare) as nobody:
        with pytest.raises(Unauthenticated, match="needs credentials"):
            nobody.infer("mlp", inputs, timeout=10)
        with pytest.raises(Unauthenticated):
            nobody.status()
        with pytest.raises(Unauthenticated):
            nobody.generate("mlp", token_ids=[1, 2])
    # A worker's token is for joining: it may not generate (nor infer).
    worker_file = credentials_for(fleet, "worker", tmp_path)
    with (
        Client(fleet.coordinator_address, credentials=worker_file) as joiner,
        pytest.raises(PermissionDenied, match="needs role admin or client"),
    ):
        joiner.generate("mlp", token_ids=[1, 2])
    # A made-up token of the right shape: unknown.
    forged = json.loads(client_file.read_text())
    parsed = parse(forged["token"])
    forged["token"] = forged["token"].replace(parsed.secret, "a" * 16)
    bad = tmp_path / "forged.credentials"
    bad.write_text(json.dumps(forged))
    with (
        Client(fleet.coordinator_address, credentials=bad) as liar,
        pytest.raises(Unauthenticated, match="unknown"),
    ):
        liar.status()
    # Plaintext to a TLS port gets nowhere.
    with (
        Client(fleet.coordinator_address) as plain,
        pytest.raises(Exception, match=r"(?i)unavailable|connect"),
    ):
        plain.status(timeout=5)
    still_serves(fleet, model)


async def _worker_call(address: str, identity: pki.Identity | None, server_name: str) -> Exception | None:
    async with open_channel(address, server_name=server_name, identity=identity) as channel:
        stub = worker_pb2_grpc.WorkerStub(channel)
        try:
            await stub.Drain(worker_pb2.DrainRequest(reason="attack"), timeout=5)
        except grpc.RpcError as exc:
            return from_rpc_error(exc)
    return None


async def test_workers_obey_only_the_coordinator(fleet: LocalFleet, model: Path, tmp_path: Path) -> None:
    status = fleet.status()
    target = next(w for w in status.workers if w.name == "worker1")
    ca = load_credentials(fleet.credentials).ca
    name = pki.worker_dns(target.id)
    # No certificate at all: the worker's TLS asks for one.
    refused = await _worker_call(target.address, pki.Identity(ca), name)
    assert refused is not None and refused.code in (
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.UNAUTHENTICATED,
    )
    # A fleet worker's certificate (a worker token joined for a new id): a peer, not the coordinator.
    with fleet.client() as admin:
        token, _ = admin.create_token("worker")
    peer, _, _ = await enrollment.join(token, tmp_path / "peer", "ab" * 16)
    refused = await _worker_call(target.address, peer, name)
    assert isinstance(refused, PermissionDenied) and "the coordinator's to call" in refused.message
    # RunStage is a peer's to call, but only with a route the coordinator issued.
    async with open_channel(target.address, server_name=name, identity=peer) as channel:
        forged = worker_pb2.StageRequest(
            request_id="x", model="mlp", route=[worker_pb2.Hop(stage="0" * 64, addresses=["10.9.9.9:1"])]
        )
        with pytest.raises(grpc.RpcError) as refused_route:
            await worker_pb2_grpc.WorkerStub(channel).RunStage(forged, timeout=5)
    error = from_rpc_error(refused_route.value)
    assert isinstance(error, PermissionDenied) and "routes come from the coordinator only" in error.message
    # The same token again, for another id: refused.
    key = pki.new_key()
    request = control_pb2.JoinRequest(token=token, certificate_request=pki.csr(key, f"worker:{'cd' * 16}"))
    with pytest.raises(PermissionDenied, match="already enrolled worker abababab"):
        await enrollment._call_join(fleet.coordinator_address, pki.Identity(ca), request, 10)
    still_serves(fleet, model)


def test_expired_and_revoked_tokens_cannot_join_and_a_revoked_worker_is_dropped(
    fleet: LocalFleet, model: Path, tmp_path: Path
) -> None:
    with fleet.client() as admin:
        short, _ = admin.create_token("worker", ttl_seconds=1)
        revoked, info = admin.create_token("worker")
        admin.revoke_token(info.id)
    time.sleep(1.5)  # the token's TTL is the condition under test
    for token, why in ((short, "expired"), (revoked, "revoked")):
        run = subprocess.run(
            [sys.executable, "-m", "edgeswarm", "worker", "--listen", f"{LOOPBACK}:{free_port()}",
             "--interface", LOOPBACK, "--fleet", fleet.fleet, "--cache-dir", str(tmp_path / why),
             "--state-dir", str(tmp_path / f"{why}-state"), "--join", token],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert run.returncode == 1 and why in run.stderr, run.stderr[-2000:]
        assert not (tmp_path / f"{why}-state" / "worker.pem").exists()
    # Revoking the token that enrolled worker2 drops worker2 at once.
    with fleet.client() as admin:
        worker2 = next(w for w in admin.status().workers if w.name == "worker2")
        enrolled = next(t for t in admin.list_tokens() if t.worker_id == worker2.id)
        admin.revoke_token(enrolled.id)
        wait_until(
            lambda: next(w for w in admin.status().workers if w.name == "worker2").state == "down",
            10, "the revoked worker dropped",
        )  # fmt: skip
        admin.deploy(model, "mlp", mode="replicas", timeout=60)  # placed on worker1 alone
    still_serves(fleet, model)


def test_a_rogue_worker_and_an_impostor_get_no_shard_and_no_request(
    fleet: LocalFleet, model: Path, tmp_path: Path
) -> None:
    with fleet.client() as admin:
        real = next(w for w in admin.status().workers if w.name == "worker1")
    # An impostor claiming worker1's id, with a certificate from a CA of its own.
    fake_key, fake_ca = pki.new_ca("fake")
    key = pki.new_key()
    cert = pki.issue(fake_key, fake_ca, key.public_key(), f"worker:{real.id}", [pki.worker_dns(real.id)])
    state = tmp_path / "impostor-state"
    state.mkdir()
    files = {
        "worker.key": pki.key_pem(key),
        "worker.pem": pki.pem(cert),
        "ca.pem": pki.pem(fake_ca),
        "coordinator": fleet.coordinator_address.encode(),
    }
    for name, data in files.items():
        (state / name).write_bytes(data)
    common = ["--interface", LOOPBACK, "--fleet", fleet.fleet, "--threads", "1"]
    rogue_cache, impostor_cache = tmp_path / "rogue", tmp_path / "impostor"
    impostor_cache.mkdir()
    (impostor_cache / "worker-id").write_text(real.id)
    processes = []
    for name, cache, extra in (
        ("rogue", rogue_cache, ["--insecure"]),
        ("impostor", impostor_cache, ["--state-dir", str(state)]),
    ):
        argv = [sys.executable, "-m", "edgeswarm", "worker", "--listen", f"{LOOPBACK}:{free_port()}", *common,
                "--name", name, "--cache-dir", str(cache), *extra]  # fmt: skip
        with (tmp_path / f"{name}.log").open("wb") as log:
            processes.append(
                subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
            )
    try:
        wait_until(
            lambda: "worker_advertised" in (tmp_path / "rogue.log").read_text(), 60, "the rogue advertised"
        )
        wait_until(
            lambda: "worker_advertised" in (tmp_path / "impostor.log").read_text(), 60, "the impostor up"
        )
        with fleet.client() as admin:
            admin.deploy(model, "mlp", mode="replicas", timeout=60)
            time.sleep(1.0)  # discovery has seen both adverts by now; what matters is what they got
            workers = {w.name: w for w in admin.status().workers}
        assert "rogue" not in workers or workers["rogue"].state != "up"
        assert workers["worker1"].state == "up" and workers["worker1"].address == real.address
        assert "worker_record_ignored id=" + real.id[:8] in fleet.log("coordinator")
        for cache in (rogue_cache, impostor_cache):
            shards = cache / "shards"
            assert not shards.exists() or not any(shards.iterdir()), f"{cache.name} got a shard"
        still_serves(fleet, model)
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=20)


TRITON = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tritonclient.grpc as grpcclient

    url, ca, token, model, given, out = sys.argv[1:7]
    client = grpcclient.InferenceServerClient(url=url, ssl=True, root_certificates=ca)
    headers = {"authorization": f"Bearer {token}"}
    assert client.is_model_ready(model, headers=headers)
    meta = client.get_model_metadata(model, as_json=True, headers=headers)
    inputs = []
    with np.load(given) as arrays:
        for spec in meta["inputs"]:
            array = arrays[spec["name"]]
            tensor = grpcclient.InferInput(spec["name"], list(array.shape), spec["datatype"])
            tensor.set_data_from_numpy(array)
            inputs.append(tensor)
    result = client.infer(model, inputs, headers=headers)
    np.savez(out, **{o["name"]: result.as_numpy(o["name"]) for o in meta["outputs"]})
    try:
        client.infer(model, inputs)
    except Exception as exc:
        print("without token:", exc)
    """
)


def test_tritonclient_over_tls_with_a_bearer_token_gets_what_the_sdk_gets(
    fleet: LocalFleet, model: Path, tmp_path: Path
) -> None:
    credentials = load_credentials(credentials_for(fleet, "client", tmp_path))
    ca = tmp_path / "ca.pem"
    ca.write_bytes(credentials.ca)
    inputs = sample_inputs(onnx.load(str(model)), batch=2)
    np.savez(tmp_path / "in.npz", **inputs)
    run = subprocess.run(
        [sys.executable, "-c", TRITON, fleet.coordinator_address, str(ca), credentials.token, "mlp",
         str(tmp_path / "in.npz"), str(tmp_path / "out.npz")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert "without token:" in run.stdout and "UNAUTHENTICATED" in run.stdout
    with np.load(tmp_path / "out.npz") as got, fleet.client() as client:
        want = client.infer("mlp", inputs, timeout=30)
        for key in want:
            np.testing.assert_array_equal(got[key], want[key])


def test_plaintext_is_refused_off_loopback(tmp_path: Path) -> None:
    for role in ("coordinator", "worker"):
        run = subprocess.run(
            [sys.executable, "-m", "edgeswarm", role, "--insecure", "--listen", "0.0.0.0:0",
             "--interface", LOOPBACK],
            capture_output=True, text=True, timeout=60, cwd=tmp_path,
        )  # fmt: skip
        assert run.returncode == 1
        assert "allowed on a loopback address only, not '0.0.0.0:0'" in run.stderr


def test_a_runaway_graph_is_stopped_at_the_deadline_and_the_worker_keeps_serving(
    fleet: LocalFleet, model: Path, tmp_path: Path
) -> None:
    from edgeswarm.client import DeadlineExceeded

    path = tmp_path / "runaway.onnx"
    onnx.save(runaway_loop(), str(path))
    with fleet.client() as admin:
        admin.deploy(path, "runaway", mode="replicas", timeout=60)
        start = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            admin.infer("runaway", {"x": np.zeros(1, np.float32)}, timeout=2.0)
        assert time.monotonic() - start < 10
        wait_until(
            lambda: any("terminate flag" in fleet.log(w) for w in fleet.workers), 10,
            "the worker to stop the run",
        )  # fmt: skip
        admin.undeploy("runaway")
    still_serves(fleet, model)


def test_a_restarted_secure_coordinator_takes_over_the_plans_it_signed(
    fleet: LocalFleet, model: Path
) -> None:
    """Its route key and CA persist in its state directory: the workers' plans verify, and the
    routes it issues after the restart are accepted, with no redeploy."""
    with fleet.client() as admin:
        version = next(m.version for m in admin.status().models if m.name == "mlp")
    fleet.kill_coordinator()
    fleet.start_coordinator()
    assert fleet.credentials is not None
    wait_until(fleet.credentials.is_file, 30, "the restarted coordinator's credentials")
    wait_until(lambda: "worker1" in fleet.up_workers(), 60, "worker1 back under the new coordinator")
    still_serves(fleet, model)
    with fleet.client() as admin:
        assert next(m.version for m in admin.status().models if m.name == "mlp") == version
    assert "reported_plan_ignored" not in fleet.log("coordinator")
