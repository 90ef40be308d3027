"""`edgeswarm token create|list|revoke`: join and bearer tokens, through a coordinator, as an admin."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from edgeswarm.security.authority import credentials_document
from edgeswarm.security.tokens import parse_duration


def add_token_parser(sub: Any, coordinator_help: str, credentials_help: str) -> None:
    token = sub.add_parser("token", help="join and bearer tokens (needs admin credentials)")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create", help="a new token, printed as the last line")
    create.add_argument("--role", choices=["worker", "client", "admin"], required=True)
    create.add_argument(
        "--ttl", default="", help="how long it stays valid: 30m, 24h, 7d (default: no expiry)"
    )
    create.add_argument("--description", default="")
    create.add_argument("--output", type=Path, help="also write a credentials file for it here (mode 0600)")
    listed = token_sub.add_parser("list", help="every token: id, role, expiry, state, worker enrolled")
    revoke = token_sub.add_parser("revoke", help="revoke a token; a worker it enrolled is dropped at once")
    revoke.add_argument("id")
    for each in (create, listed, revoke):
        each.add_argument("--coordinator", help=coordinator_help)
        each.add_argument("--credentials", type=Path, help=credentials_help)


def token_command(client: Any, args: argparse.Namespace) -> int:
    if args.token_command == "create":
        token, info = client.create_token(args.role, parse_duration(args.ttl), args.description)
        if args.output is not None:
            fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(credentials_document(client.address, client.credentials.ca, token))
        expiry = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.expires)) if info.expires else "never"
        print(f"token {info.id}: role {info.role}, expires {expiry}", file=sys.stderr)
        print(token)
    elif args.token_command == "list":
        for t in client.list_tokens():
            expiry = time.strftime("%Y-%m-%d %H:%M", time.localtime(t.expires)) if t.expires else "never"
            state = (
                "revoked" if t.revoked else ("expired" if t.expires and t.expires < time.time() else "valid")
            )
            worker = f" worker {t.worker_id[:8]}" if t.worker_id else ""
            print(f"{t.id}  {t.role:<6}  {state:<7}  expires {expiry}{worker}  {t.description}")
    else:
        info = client.revoke_token(args.id)
        print(
            f"revoked token {info.id} ({info.role})"
            + (f"; worker {info.worker_id[:8]} dropped" if info.worker_id else "")
        )
    return 0
