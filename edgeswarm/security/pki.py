"""The fleet's X.509: its CA, the certificates it issues, and how a joining side pins the CA by hash.

Names a certificate carries (its common name says the role, its DNS name is what TLS verifies):

    coordinator             CN "coordinator", DNS "coordinator.edgeswarm", plus the IPs and host
                            names it serves on, so that standard TLS clients verify it by address
    worker <id>             CN "worker:<id>", DNS "<id>.worker.edgeswarm": a channel to a worker
                            checks the id it was told against the certificate (a name override)

The coordinator's certificate also carries the CA certificate itself in a private extension, so that
a joining worker, which has only the CA's hash from its token, can read the CA off the TLS handshake,
check the hash, and only then trust it (kubeadm's discovery-token-ca-cert-hash, without a second
plaintext port).
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

COORDINATOR = "coordinator"
COORDINATOR_DNS = "coordinator.edgeswarm"
WORKER_PREFIX = "worker:"
# Where the coordinator's certificate carries the CA's DER (an unregistered private arc).
CA_EXTENSION = ObjectIdentifier("1.3.6.1.4.1.55555.1.1")
_WORKER_ID = re.compile(r"^[0-9a-f]{32}$")

CA_DAYS = 3650
CERT_DAYS = 90


def worker_dns(worker_id: str) -> str:
    return f"{worker_id}.worker.edgeswarm"


def is_worker_id(value: str) -> bool:
    return bool(_WORKER_ID.match(value))


@dataclass(frozen=True)
class Identity:
    """What a process presents and trusts: the fleet CA, and its own certificate and key (PEM)."""

    ca: bytes
    certificate: bytes = b""
    key: bytes = b""


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("the key is not an ECDSA key")
    return key


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def ca_hash(ca: x509.Certificate) -> str:
    """sha256 of the CA's SubjectPublicKeyInfo, hex: what a token pins."""
    spki = ca.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest()


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


_CA_USAGE = x509.KeyUsage(
    digital_signature=False, content_commitment=False, key_encipherment=False, data_encipherment=False,
    key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
)  # fmt: skip


def new_ca(fleet: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"edgeswarm fleet {fleet} CA")])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_CA_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def issue(
    ca_key: ec.EllipticCurvePrivateKey,
    ca: x509.Certificate,
    public_key: ec.EllipticCurvePublicKey,
    common_name: str,
    dns: list[str],
    ips: list[str] = (),  # type: ignore[assignment]
    days: int = CERT_DAYS,
    embed_ca: bool = False,
) -> x509.Certificate:
    """A certificate for TLS servers and clients alike, signed by the fleet CA."""
    now = _now()
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    for ip in ips:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(ip)))
        except ValueError:
            names.append(x509.DNSName(ip))
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if embed_ca:
        der = ca.public_bytes(serialization.Encoding.DER)
        builder = builder.add_extension(x509.UnrecognizedExtension(CA_EXTENSION, der), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def csr(key: ec.EllipticCurvePrivateKey, common_name: str) -> bytes:
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM)


def common_name(cert: x509.Certificate | x509.CertificateSigningRequest) -> str:
    values = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else ""


def embedded_ca(leaf_der: bytes, pinned_hash: str) -> x509.Certificate:
    """The CA a coordinator's certificate carries, once its hash is `pinned_hash` and it signed the
    certificate; ValueError saying which check failed."""
    leaf = x509.load_der_x509_certificate(leaf_der)
    try:
        extension = leaf.extensions.get_extension_for_oid(CA_EXTENSION)
    except x509.ExtensionNotFound as exc:
        raise ValueError(
            "the server's certificate carries no fleet CA: is it an edgeswarm coordinator?"
        ) from exc
    assert isinstance(extension.value, x509.UnrecognizedExtension)
    ca = x509.load_der_x509_certificate(extension.value.value)
    found = ca_hash(ca)
    if found != pinned_hash:
        raise ValueError(f"the coordinator's CA has hash {found[:16]}…, the token pins {pinned_hash[:16]}…")
    leaf.verify_directly_issued_by(ca)
    return ca


def expires_in(cert: x509.Certificate) -> datetime.timedelta:
    return cert.not_valid_after_utc - _now()
