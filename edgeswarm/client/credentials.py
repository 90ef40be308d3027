"""A credentials file: where the coordinator is, the fleet CA to verify it with, and a bearer token.

    {"coordinator": "HOST:PORT", "ca": "<PEM>", "token": "<token>"}

`edgeswarm coordinator` writes the first admin's as DIR/admin.credentials; `edgeswarm token create
--role client --output FILE` writes one for a client. The CLI takes `--credentials FILE` (or the
environment's EDGESWARM_CREDENTIALS), the SDK `Client(address, credentials=FILE)`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from edgeswarm.errors import InvalidRequest

ENVIRONMENT = "EDGESWARM_CREDENTIALS"
DEFAULT_COORDINATOR = "127.0.0.1:50051"


@dataclass(frozen=True)
class Credentials:
    coordinator: str
    ca: bytes
    token: str


def load_credentials(path: str | os.PathLike[str]) -> Credentials:
    try:
        document = json.loads(Path(path).read_text())
        return Credentials(str(document["coordinator"]), str(document["ca"]).encode(), str(document["token"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidRequest(
            f"credentials file {str(path)!r} cannot be read as {{coordinator, ca, token}}: {exc}"
        ) from exc


def resolve(
    address: str | None, credentials: str | os.PathLike[str] | Credentials | None
) -> tuple[str, Credentials | None]:
    """The address to dial and the credentials to use: those given, else EDGESWARM_CREDENTIALS when
    it names this coordinator (or no address was given); the address defaults to theirs."""
    if credentials is None and os.environ.get(ENVIRONMENT):
        found = load_credentials(os.environ[ENVIRONMENT])
        credentials = found if address in (None, found.coordinator) else None
    if credentials is not None and not isinstance(credentials, Credentials):
        credentials = load_credentials(credentials)
    if address is None:
        address = credentials.coordinator if credentials is not None else DEFAULT_COORDINATOR
    return address, credentials
