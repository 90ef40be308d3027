"""Tokens, as kubeadm's bootstrap tokens: an id anyone may see and a secret only the holder knows.

    esw1.<id>.<secret>.<ca sha256>.<coordinator address, base64url>

The CA's hash lets a joining worker pin the fleet CA before it trusts anything; the address tells it
where to join. As a bearer token (clients, admins) the whole string is sent; only id and secret
count. The coordinator keeps each token's role, expiry and state, and the secret only as its sha256.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import string
import time
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from pathlib import Path

from edgeswarm.errors import InvalidRequest, NotFound

PREFIX = "esw1"
_ALPHABET = string.ascii_lowercase + string.digits
_ID = re.compile(r"^[a-z0-9]{6}$")
_SECRET = re.compile(r"^[a-z0-9]{16}$")
_DURATION = re.compile(r"^(\d+)([smhd])$")


class Role(StrEnum):
    WORKER = "worker"
    CLIENT = "client"
    ADMIN = "admin"


class BadToken(Exception):
    """A token that is malformed, unknown, wrong, expired or revoked; the message says which."""


@dataclass(frozen=True)
class Parsed:
    id: str
    secret: str
    ca_hash: str
    coordinator: str


def parse(token: str) -> Parsed:
    parts = token.strip().split(".")
    if len(parts) != 5 or parts[0] != PREFIX:
        raise BadToken("not an edgeswarm token (esw1.<id>.<secret>.<ca hash>.<address>)")
    _, token_id, secret, ca_hash, address = parts
    if not _ID.match(token_id) or not _SECRET.match(secret) or not re.fullmatch(r"[0-9a-f]{64}", ca_hash):
        raise BadToken("a malformed edgeswarm token")
    try:
        coordinator = base64.urlsafe_b64decode(address + "=" * (-len(address) % 4)).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadToken("a malformed edgeswarm token (its address)") from exc
    return Parsed(token_id, secret, ca_hash, coordinator)


def format_token(token_id: str, secret: str, ca_hash: str, coordinator: str) -> str:
    address = base64.urlsafe_b64encode(coordinator.encode()).decode().rstrip("=")
    return ".".join((PREFIX, token_id, secret, ca_hash, address))


def parse_duration(text: str) -> float:
    """Seconds in `30s`, `15m`, `24h`, `7d`; 0 or empty: no expiry."""
    if text in ("", "0"):
        return 0.0
    match = _DURATION.match(text)
    if not match:
        raise InvalidRequest(f"a duration is a number and s, m, h or d (24h, 7d), not {text!r}")
    return int(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


@dataclass(frozen=True)
class TokenRecord:
    id: str
    role: Role
    secret_sha256: str
    created: float
    expires: float = 0.0  # unix time; 0: never
    revoked: bool = False
    # A worker token enrolls one worker: the id of the first that used it.
    worker_id: str = ""
    description: str = ""


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenStore:
    """The coordinator's tokens, in one JSON file (mode 0600) under its state directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._records: dict[str, TokenRecord] = {}
        if path.is_file():
            for item in json.loads(path.read_text()):
                record = TokenRecord(**{**item, "role": Role(item["role"])})
                self._records[record.id] = record

    def _save(self) -> None:
        partial = self.path.with_suffix(".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump([asdict(r) for r in self._records.values()], f, indent=1)
        partial.replace(self.path)

    def create(self, role: Role, ttl: float = 0.0, description: str = "") -> tuple[TokenRecord, str]:
        """A new token of `role`; returns its record and its secret (shown once, kept hashed)."""
        while True:
            token_id = "".join(secrets.choice(_ALPHABET) for _ in range(6))
            if token_id not in self._records:
                break
        secret = "".join(secrets.choice(_ALPHABET) for _ in range(16))
        now = time.time()
        record = TokenRecord(
            token_id, role, _digest(secret), now, now + ttl if ttl else 0.0, description=description
        )
        self._records[token_id] = record
        self._save()
        return record, secret

    def check(self, token: str, now: float | None = None) -> TokenRecord:
        """The record of a valid token, or BadToken saying why it is not."""
        parsed = parse(token)
        record = self._records.get(parsed.id)
        if record is None or not hmac.compare_digest(record.secret_sha256, _digest(parsed.secret)):
            raise BadToken(f"token {parsed.id} is unknown or its secret is wrong")
        if record.revoked:
            raise BadToken(f"token {parsed.id} was revoked")
        if record.expires and (now if now is not None else time.time()) > record.expires:
            raise BadToken(f"token {parsed.id} expired")
        return record

    def bind_worker(self, record: TokenRecord, worker_id: str) -> TokenRecord:
        """Binds a worker token to the worker it enrolled; BadToken if it enrolled another."""
        if record.worker_id and record.worker_id != worker_id:
            raise BadToken(f"token {record.id} already enrolled worker {record.worker_id[:8]}")
        if not record.worker_id:
            record = replace(record, worker_id=worker_id)
            self._records[record.id] = record
            self._save()
        return record

    def revoke(self, token_id: str) -> TokenRecord:
        record = self._records.get(token_id)
        if record is None:
            raise NotFound(f"no token {token_id!r}")
        record = replace(record, revoked=True)
        self._records[token_id] = record
        self._save()
        return record

    def records(self) -> list[TokenRecord]:
        return sorted(self._records.values(), key=lambda r: r.created)

    def revoked_workers(self) -> set[str]:
        return {r.worker_id for r in self._records.values() if r.revoked and r.worker_id}
