"""A worker's side of joining the fleet: once, with a join token; then from its state directory.

    edgeswarm worker --join TOKEN --state-dir DIR

1. The token names the coordinator and pins the fleet CA by hash. The worker opens a TLS connection
   to the coordinator trusting nothing, reads the CA its certificate carries, and goes on only if
   the CA's hash is the pinned one and the CA signed that certificate.
2. It makes an ECDSA P-256 key (kept in DIR, mode 0600) and sends Control.Join its token and a
   certificate request for `worker:<id>`, over TLS that now verifies the coordinator.
3. The certificate comes back; DIR keeps key, certificate and CA, so no token is needed again. A
   certificate is renewed (Join with the current one, no token) once a third of its life is left.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

from cryptography import x509

from edgeswarm._proto.edgeswarm.v1 import control_pb2, control_pb2_grpc
from edgeswarm.channels import open_channel, split_address
from edgeswarm.errors import EdgeswarmError, InvalidRequest, from_rpc_error
from edgeswarm.security import pki
from edgeswarm.security.tokens import BadToken, parse

log = logging.getLogger(__name__)

KEY, CERTIFICATE, CA, COORDINATOR_FILE = "worker.key", "worker.pem", "ca.pem", "coordinator"
# Renew once this share of a certificate's life is left.
RENEW_LEFT = 1 / 3


def fetch_ca(address: str, pinned_hash: str, timeout: float = 10.0) -> bytes:
    """The fleet CA (PEM) as the coordinator at `address` presents it, checked against the pin."""
    host, port = split_address(address)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # nothing is trusted yet: the pinned hash decides below
    context.set_alpn_protocols(["h2"])
    with socket.create_connection((host, port), timeout=timeout) as raw, context.wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True)
    if der is None:
        raise InvalidRequest(f"the coordinator at {address} presented no certificate")
    try:
        return pki.pem(pki.embedded_ca(der, pinned_hash))
    except ValueError as exc:
        raise InvalidRequest(f"refusing to join the coordinator at {address}: {exc}") from exc


def _save(directory: Path, key: bytes, certificate: bytes, ca: bytes, coordinator: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    files = ((KEY, key), (CERTIFICATE, certificate), (CA, ca), (COORDINATOR_FILE, coordinator.encode()))
    for name, data in files:
        partial = directory / f"{name}.partial"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        partial.replace(directory / name)


def load(directory: Path) -> tuple[pki.Identity, str, str] | None:
    """The identity kept in `directory`, the worker id its certificate names and the coordinator it
    joined; None if it has none."""
    paths = [directory / n for n in (KEY, CERTIFICATE, CA, COORDINATOR_FILE)]
    if not all(p.is_file() for p in paths):
        return None
    key, certificate, ca, coordinator = (p.read_bytes() for p in paths)
    name = pki.common_name(x509.load_pem_x509_certificate(certificate))
    return pki.Identity(ca, certificate, key), name.removeprefix(pki.WORKER_PREFIX), coordinator.decode()


async def join(
    token: str, directory: Path, worker_id: str, timeout: float = 30.0
) -> tuple[pki.Identity, str, str]:
    """Enrolls this worker with its join token; keeps its identity and returns it as `load` does:
    with the worker id and the coordinator it joined."""
    try:
        parsed = parse(token)
    except BadToken as exc:
        raise InvalidRequest(f"--join: {exc}") from exc
    ca = await asyncio.to_thread(fetch_ca, parsed.coordinator, parsed.ca_hash)
    key = pki.new_key()
    request = control_pb2.JoinRequest(
        token=token, certificate_request=pki.csr(key, f"{pki.WORKER_PREFIX}{worker_id}")
    )
    response = await _call_join(parsed.coordinator, pki.Identity(ca), request, timeout)
    identity = pki.Identity(response.ca, response.certificate, pki.key_pem(key))
    _save(directory, identity.key, identity.certificate, identity.ca, parsed.coordinator)
    log.info("worker_joined_fleet id=%s coordinator=%s", worker_id[:8], parsed.coordinator)
    return identity, worker_id, parsed.coordinator


async def renew(
    identity: pki.Identity, coordinator: str, directory: Path, timeout: float = 30.0
) -> pki.Identity:
    """A fresh certificate for the same key, kept in `directory`."""
    key = pki.load_key(identity.key)
    name = pki.common_name(x509.load_pem_x509_certificate(identity.certificate))
    request = control_pb2.JoinRequest(
        current_certificate=identity.certificate, certificate_request=pki.csr(key, name)
    )
    response = await _call_join(coordinator, pki.Identity(identity.ca), request, timeout)
    renewed = pki.Identity(response.ca, response.certificate, identity.key)
    _save(directory, renewed.key, renewed.certificate, renewed.ca, coordinator)
    log.info("worker_certificate_renewed name=%s", name)
    return renewed


def needs_renewal(identity: pki.Identity) -> bool:
    cert = x509.load_pem_x509_certificate(identity.certificate)
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    return pki.expires_in(cert) < life * RENEW_LEFT


async def _call_join(
    coordinator: str, identity: pki.Identity, request: control_pb2.JoinRequest, timeout: float
) -> control_pb2.JoinResponse:
    import grpc

    async with open_channel(coordinator, server_name=pki.COORDINATOR_DNS, identity=identity) as channel:
        try:
            response: control_pb2.JoinResponse = await control_pb2_grpc.ControlStub(channel).Join(
                request, timeout=timeout
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc
    return response


async def keep_renewed(
    identity: pki.Identity,
    coordinator: str,
    directory: Path,
    on_renewed: Callable[[pki.Identity], None],
    interval: float = 3600.0,
) -> None:
    """Renews the certificate whenever a third of its life is left; `on_renewed(identity)` is called
    with each new one. A failure is logged and tried again at the next interval."""
    while True:
        if needs_renewal(identity):
            try:
                identity = await renew(identity, coordinator, directory)
            except EdgeswarmError as exc:
                log.warning("certificate_renewal_failed coordinator=%s error=%r", coordinator, exc.message)
            else:
                on_renewed(identity)
        await asyncio.sleep(interval)
