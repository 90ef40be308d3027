"""The fleet's security, its pure parts: tokens, who may call what, and the CA a joining worker pins."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography import x509

from edgeswarm._proto.edgeswarm.v1 import worker_pb2
from edgeswarm.coordinator.deploying.installer import Installer
from edgeswarm.coordinator.deploying.manifests import manifest_of
from edgeswarm.coordinator.deploying.recovery import Recovery
from edgeswarm.coordinator.deploying.registry import Registry
from edgeswarm.coordinator.modelstore import ModelStore
from edgeswarm.dev import zoo
from edgeswarm.errors import InvalidRequest, PermissionDenied, Unauthenticated
from edgeswarm.plans import Plan
from edgeswarm.security import pki, routes
from edgeswarm.security.authority import FleetAuthority
from edgeswarm.security.roles import check_coordinator_call, check_worker_call
from edgeswarm.security.tokens import (
    BadToken,
    Role,
    TokenRecord,
    TokenStore,
    format_token,
    parse,
    parse_duration,
)
from tests.helpers import plan_of

WORKER_ID = "0123456789abcdef0123456789abcdef"


def test_a_token_carries_the_ca_hash_and_the_coordinator_and_round_trips() -> None:
    token = format_token("abc123", "0123456789abcdef", "f" * 64, "10.0.0.5:50051")
    parsed = parse(token)
    assert (parsed.id, parsed.secret, parsed.ca_hash, parsed.coordinator) == (
        "abc123", "0123456789abcdef", "f" * 64, "10.0.0.5:50051",
    )  # fmt: skip
    for bad in ("", "esw1.x", token.replace("esw1", "esw2"), token.replace("abc123", "ABC123")):
        with pytest.raises(BadToken):
            parse(bad)


def test_tokens_expire_are_revoked_and_a_worker_token_enrolls_one_worker(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    record, secret = store.create(Role.WORKER, ttl=60)
    token = format_token(record.id, secret, "0" * 64, "127.0.0.1:1")
    assert store.check(token).role is Role.WORKER
    with pytest.raises(BadToken, match="expired"):
        store.check(token, now=time.time() + 61)
    with pytest.raises(BadToken, match="unknown or its secret is wrong"):
        store.check(format_token(record.id, "x" * 16, "0" * 64, "127.0.0.1:1"))
    store.bind_worker(record, WORKER_ID)
    store.bind_worker(store.check(token), WORKER_ID)  # the same worker again: fine
    with pytest.raises(BadToken, match="already enrolled worker 01234567"):
        store.bind_worker(store.check(token), "f" * 32)
    store.revoke(record.id)
    with pytest.raises(BadToken, match="revoked"):
        store.check(token)
    again = TokenStore(tmp_path / "tokens.json")  # kept on disk, secrets only as hashes
    assert again.revoked_workers() == {WORKER_ID}
    assert secret not in (tmp_path / "tokens.json").read_text()
    assert (tmp_path / "tokens.json").stat().st_mode & 0o077 == 0


def test_durations() -> None:
    assert [parse_duration(d) for d in ("", "0", "30s", "15m", "24h", "7d")] == [0, 0, 30, 900, 86400, 604800]
    with pytest.raises(InvalidRequest):
        parse_duration("1 week")


def record(role: Role) -> TokenRecord:
    return TokenRecord("abc123", role, "", 0.0)


@pytest.mark.parametrize(
    ("method", "role", "allowed"),
    [
        ("/inference.GRPCInferenceService/ModelInfer", Role.CLIENT, True),
        ("/inference.GRPCInferenceService/ModelInfer", Role.WORKER, False),
        ("/edgeswarm.v1.Control/Status", Role.CLIENT, True),
        ("/edgeswarm.v1.Control/Deploy", Role.CLIENT, False),
        ("/edgeswarm.v1.Control/Deploy", Role.ADMIN, True),
        ("/edgeswarm.v1.Control/Drain", Role.CLIENT, False),
        ("/edgeswarm.v1.Control/CreateToken", Role.CLIENT, False),
        ("/edgeswarm.v1.Control/CreateToken", Role.ADMIN, True),
        ("/edgeswarm.v1.Worker/LoadStage", Role.ADMIN, False),  # not a coordinator method at all
        ("/inference.GRPCInferenceService/RepositoryModelUnload", Role.CLIENT, False),
        ("/inference.GRPCInferenceService/RepositoryModelLoad", Role.ADMIN, True),
    ],
)
def test_who_may_call_the_coordinator(method: str, role: Role, allowed: bool) -> None:
    if allowed:
        check_coordinator_call(method, lambda: record(role))
    else:
        with pytest.raises(PermissionDenied):
            check_coordinator_call(method, lambda: record(role))


def test_open_coordinator_methods_need_no_token() -> None:
    def no_token() -> TokenRecord:
        raise Unauthenticated("no token")

    for method in ("/edgeswarm.v1.Control/Join", "/grpc.health.v1.Health/Check"):
        check_coordinator_call(method, no_token)
    with pytest.raises(Unauthenticated):
        check_coordinator_call("/edgeswarm.v1.Control/Status", no_token)


def test_who_may_call_a_worker() -> None:
    peer = f"{pki.WORKER_PREFIX}{WORKER_ID}"
    check_worker_call("/edgeswarm.v1.Worker/LoadStage", pki.COORDINATOR)
    check_worker_call("/edgeswarm.v1.Worker/RunStage", peer)
    check_worker_call("/edgeswarm.v1.Worker/Ping", peer)
    for method in (
        "/edgeswarm.v1.Worker/PutShard",
        "/edgeswarm.v1.Worker/Drain",
        "/edgeswarm.v1.Worker/Profile",
    ):
        with pytest.raises(PermissionDenied, match="the coordinator's to call"):
            check_worker_call(method, peer)
    with pytest.raises(Unauthenticated):
        check_worker_call("/edgeswarm.v1.Worker/RunStage", "")


def test_a_joining_worker_reads_the_ca_off_the_coordinator_certificate_only_if_the_pin_matches(
    tmp_path: Path,
) -> None:
    authority = FleetAuthority(tmp_path, "unit", ["10.0.0.5"])
    leaf = x509.load_pem_x509_certificate(authority.identity.certificate)
    der = leaf.public_bytes(pki.serialization.Encoding.DER)
    assert pki.pem(pki.embedded_ca(der, authority.ca_hash)) == authority.ca_pem
    with pytest.raises(ValueError, match="the token pins"):
        pki.embedded_ca(der, "0" * 64)
    # The coordinator's certificate names the addresses it serves on, for standard TLS clients.
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "10.0.0.5" in {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
    assert (tmp_path / "pki" / "ca.key").stat().st_mode & 0o077 == 0


def test_enrolment_and_renewal_check_token_role_name_and_key(tmp_path: Path) -> None:
    authority = FleetAuthority(tmp_path, "unit", [])
    authority.serve_on("127.0.0.1:1")
    worker, _ = authority.tokens.create(Role.WORKER)
    client, client_secret = authority.tokens.create(Role.CLIENT)
    key = pki.new_key()
    request = pki.csr(key, f"{pki.WORKER_PREFIX}{WORKER_ID}")
    with pytest.raises(PermissionDenied, match="joining needs a worker token"):
        authority.enroll(authority.token(client, client_secret), request)
    worker, secret = authority.tokens.create(Role.WORKER)
    with pytest.raises(InvalidRequest, match="worker:<32 hex>"):
        authority.enroll(authority.token(worker, secret), pki.csr(key, "coordinator"))
    certificate = authority.enroll(authority.token(worker, secret), request)
    cert = x509.load_pem_x509_certificate(certificate)
    assert pki.common_name(cert) == f"worker:{WORKER_ID}"
    renewed = authority.renew(certificate, pki.csr(key, f"worker:{WORKER_ID}"))
    assert x509.load_pem_x509_certificate(renewed).serial_number != cert.serial_number
    with pytest.raises(Unauthenticated, match="not signed with the certificate's key"):
        authority.renew(certificate, pki.csr(pki.new_key(), f"worker:{WORKER_ID}"))
    other = FleetAuthority(tmp_path / "other", "unit", [])
    with pytest.raises(Unauthenticated, match="not issued by this fleet's CA"):
        other.renew(certificate, pki.csr(key, f"worker:{WORKER_ID}"))
    authority.tokens.revoke(worker.id)
    with pytest.raises(PermissionDenied, match="revoked"):
        authority.renew(certificate, pki.csr(key, f"worker:{WORKER_ID}"))


@pytest.fixture
def route_key() -> Iterator[bytes]:
    routes.use_key(b"k" * 32)
    yield routes.public_key()
    routes.use_key(b"")


def hop(stage: str, *addresses: str) -> worker_pb2.Hop:
    return worker_pb2.Hop(stage=stage, addresses=addresses, worker_ids=[f"id-{a}" for a in addresses])


def test_a_route_runs_only_as_the_coordinator_issued_it(route_key: bytes) -> None:
    request = routes.sign_route(
        worker_pb2.StageRequest(
            request_id="r1", model="m", route=[hop("a", "w1:1"), hop("b", "w2:1", "w3:1")]
        )
    )
    routes.check_route(request)
    # The next worker checks the rest of the route with the next MAC.
    onward = worker_pb2.StageRequest(
        request_id="r1", model="m", route=request.route[1:], route_macs=routes.onward_macs(request)
    )
    routes.check_route(onward)
    for change in (
        lambda r: r.route[1].addresses.append("evil:1"),  # forward somewhere else
        lambda r: setattr(r, "model", "other"),
        lambda r: setattr(r, "request_id", "r2"),
    ):
        tampered = worker_pb2.StageRequest()
        tampered.CopyFrom(request)
        change(tampered)
        with pytest.raises(PermissionDenied, match="not one the coordinator issued"):
            routes.check_route(tampered)  # its signature was checked before, on other bytes
    routes.check_route(request)  # checked once, remembered
    with pytest.raises(PermissionDenied, match="carries no MAC"):
        routes.check_route(worker_pb2.StageRequest(request_id="r1", model="m", route=[hop("a", "w1:1")]))


def test_a_restarted_coordinator_adopts_only_plans_it_signed_for_stages_it_holds(
    route_key: bytes, tmp_path: Path
) -> None:
    store = ModelStore(tmp_path / "store")
    registry = Registry(frozenset, lambda: 0.0, 0.0)
    recovery = Recovery(registry, Installer(registry, store))
    stage = store.put_stage(zoo.mlp(layers=1, width=4, in_features=2, out_features=2).SerializeToString())
    plan = plan_of(("w1",))
    plan = Plan(plan.model, 3, plan.mode, plan.signature, (replace(plan.stages[0], sha256=stage),))
    genuine = manifest_of(plan)
    forged = manifest_of(replace(plan, version=999))
    forged.signature = b"\0" * 32
    unknown = manifest_of(
        Plan("other", 1, plan.mode, plan.signature, (replace(plan.stages[0], sha256="f" * 64),))
    )
    assert not recovery._not_ours(genuine)
    assert "signature is not this coordinator's" in recovery._not_ours(forged)
    assert "this coordinator never cut" in recovery._not_ours(unknown)


def test_a_worker_holding_the_routes_public_key_can_check_routes_but_not_make_them(route_key: bytes) -> None:
    issued = routes.sign_route(worker_pb2.StageRequest(request_id="r1", model="m", route=[hop("a", "w1:1")]))
    routes.use_public_key(route_key)  # as a worker holds it, from Describe
    routes.check_route(issued)
    assert routes.route_macs("r2", "m", [hop("a", "evil:1")]) == []  # nothing to sign with
    routes.use_key(b"x" * 32)  # another key altogether: what it signs does not verify for this fleet
    forged = routes.sign_route(
        worker_pb2.StageRequest(request_id="r2", model="m", route=[hop("a", "evil:1")])
    )
    routes.use_public_key(route_key)
    with pytest.raises(PermissionDenied, match="not one the coordinator issued"):
        routes.check_route(forged)
    # A generation's route is signed for its session, whatever step of it runs.
    routes.use_key(b"k" * 32)
    step = worker_pb2.StageRequest(
        request_id="s:0",
        model="m",
        route=[hop("a", "w1:1")],
        session=worker_pb2.SessionStep(id="s", position=0),
    )
    routes.sign_route(step)
    step.session.position, step.session.step = 17, 9
    routes.check_route(step)
    step.session.id = "another"
    with pytest.raises(PermissionDenied):
        routes.check_route(step)
