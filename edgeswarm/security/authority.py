"""The coordinator's side of the fleet's security, under its state directory:

pki/ca.key, pki/ca.pem         the fleet CA (made on first start; the key never leaves, mode 0600)
pki/coordinator.{key,pem}      the coordinator's certificate, issued again at each start for the
                               addresses it serves on
tokens.json                    every token: role, expiry, state; secrets as sha256 only
admin.credentials              the first admin's credentials (JSON, mode 0600)
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec

from edgeswarm.errors import InvalidRequest, PermissionDenied, Unauthenticated
from edgeswarm.security import pki
from edgeswarm.security.tokens import BadToken, Role, TokenRecord, TokenStore, format_token

log = logging.getLogger(__name__)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def credentials_document(coordinator: str, ca: bytes, token: str) -> str:
    return json.dumps({"coordinator": coordinator, "ca": ca.decode(), "token": token}, indent=1)


class FleetAuthority:
    """`names`: the IPs and host names the coordinator's certificate must carry."""

    def __init__(self, state_dir: Path, fleet: str, names: list[str]) -> None:
        self.state_dir = state_dir
        self.address = ""
        pki_dir = state_dir / "pki"
        pki_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(pki_dir, 0o700)
        ca_key_path, ca_path = pki_dir / "ca.key", pki_dir / "ca.pem"
        if ca_key_path.is_file() and ca_path.is_file():
            self._ca_key = pki.load_key(ca_key_path.read_bytes())
            self.ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
        else:
            self._ca_key, self.ca = pki.new_ca(fleet)
            _write_private(ca_key_path, pki.key_pem(self._ca_key))
            ca_path.write_bytes(pki.pem(self.ca))
            log.info("fleet_ca_created fleet=%s ca_sha256=%s", fleet, pki.ca_hash(self.ca))
        route_key = pki_dir / "route.key"
        if not route_key.is_file():
            _write_private(route_key, secrets.token_bytes(32))
        self.route_key = route_key.read_bytes()
        self.ca_pem = pki.pem(self.ca)
        self.ca_hash = pki.ca_hash(self.ca)
        key = pki.new_key()
        hosts = sorted(
            {*names, "127.0.0.1", "::1", "localhost", socket.gethostname()} - {"0.0.0.0", "::", ""}
        )
        cert = pki.issue(
            self._ca_key,
            self.ca,
            key.public_key(),
            pki.COORDINATOR,
            [pki.COORDINATOR_DNS],
            hosts,
            embed_ca=True,
        )
        _write_private(pki_dir / "coordinator.key", pki.key_pem(key))
        (pki_dir / "coordinator.pem").write_bytes(pki.pem(cert))
        self.identity = pki.Identity(self.ca_pem, pki.pem(cert), pki.key_pem(key))
        self.tokens = TokenStore(state_dir / "tokens.json")

    def serve_on(self, address: str) -> Path:
        """Records the address the fleet reaches the coordinator on, now that it is bound, and writes
        DIR/admin.credentials: the first admin's token on the first start, its address on each."""
        self.address = address
        admin = self.state_dir / "admin.credentials"
        if admin.is_file():
            token = json.loads(admin.read_text())["token"]
        else:
            record, secret = self.tokens.create(Role.ADMIN, description="first admin")
            token = self.token(record, secret)
            log.info("admin_credentials_written path=%s token=%s", admin, record.id)
        _write_private(admin, credentials_document(address, self.ca_pem, token).encode())
        return admin

    def token(self, record: TokenRecord, secret: str) -> str:
        return format_token(record.id, secret, self.ca_hash, self.address)

    def authenticate(self, token: str) -> TokenRecord:
        """The record of a bearer token; Unauthenticated when it is not valid."""
        try:
            return self.tokens.check(token)
        except BadToken as exc:
            raise Unauthenticated(str(exc)) from exc

    def enroll(self, token: str, csr_pem: bytes) -> bytes:
        """A worker's certificate for the CSR it sent with its join token."""
        record = self.authenticate(token)
        if record.role is not Role.WORKER:
            raise PermissionDenied(f"token {record.id} has role {record.role}; joining needs a worker token")
        try:
            request = x509.load_pem_x509_csr(csr_pem)
        except ValueError as exc:
            raise InvalidRequest(f"the certificate request is not a PEM CSR: {exc}") from exc
        if not request.is_signature_valid:
            raise InvalidRequest("the certificate request's signature is not valid")
        name = pki.common_name(request)
        worker_id = name.removeprefix(pki.WORKER_PREFIX)
        if not name.startswith(pki.WORKER_PREFIX) or not pki.is_worker_id(worker_id):
            raise InvalidRequest(f"a worker's request must name it worker:<32 hex>, not {name!r}")
        try:
            self.tokens.bind_worker(record, worker_id)
        except BadToken as exc:
            raise PermissionDenied(str(exc)) from exc
        return self.sign_worker(request, worker_id)

    def renew(self, current_pem: bytes, csr_pem: bytes) -> bytes:
        """A new certificate for an enrolled worker: its current one, issued here and not expired, and a
        request signed with the same key (which proves the caller holds it)."""
        try:
            current = x509.load_pem_x509_certificate(current_pem)
            request = x509.load_pem_x509_csr(csr_pem)
        except ValueError as exc:
            raise Unauthenticated(
                f"renewal needs the current certificate and a request, in PEM: {exc}"
            ) from exc
        try:
            current.verify_directly_issued_by(self.ca)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise Unauthenticated("the certificate to renew was not issued by this fleet's CA") from exc
        if pki.expires_in(current).total_seconds() <= 0:
            raise Unauthenticated("the certificate to renew has expired: join again with a new token")
        if not request.is_signature_valid or request.public_key() != current.public_key():
            raise Unauthenticated("the renewal request is not signed with the certificate's key")
        name = pki.common_name(current)
        worker_id = name.removeprefix(pki.WORKER_PREFIX)
        if not name.startswith(pki.WORKER_PREFIX) or pki.common_name(request) != name:
            raise PermissionDenied(f"only a worker's certificate is renewed here, not {name!r}")
        if worker_id in self.tokens.revoked_workers():
            raise PermissionDenied(f"worker {worker_id[:8]}'s token was revoked")
        return self.sign_worker(request, worker_id)

    def sign_worker(self, request: x509.CertificateSigningRequest, worker_id: str) -> bytes:
        public_key = request.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise InvalidRequest("a worker's key must be ECDSA")
        cert = pki.issue(
            self._ca_key, self.ca, public_key, f"{pki.WORKER_PREFIX}{worker_id}", [pki.worker_dns(worker_id)]
        )
        log.info(
            "worker_certificate_issued id=%s expires=%s", worker_id[:8], cert.not_valid_after_utc.isoformat()
        )
        return pki.pem(cert)
