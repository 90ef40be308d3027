"""`edgeswarm generate NAME`: tokens from a deployed decoder, printed as they arrive."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def add_generate_parser(sub: Any, coordinator_help: str, credentials_help: str) -> None:
    generate = sub.add_parser("generate", help="generate tokens with a deployed decoder, as they come")
    generate.add_argument("name")
    prompt = generate.add_mutually_exclusive_group(required=True)
    prompt.add_argument("--prompt", help="the prompt as text (for a model deployed with a tokenizer)")
    prompt.add_argument("--token-ids", type=_token_ids, help="the prompt as token ids: 1,2,3")
    generate.add_argument("--max-tokens", type=int, default=16)
    generate.add_argument("--temperature", type=float, default=0.0, help="0: greedy (default)")
    generate.add_argument("--top-k", type=int, default=0)
    generate.add_argument("--top-p", type=float, default=1.0)
    generate.add_argument("--seed", type=int, help="makes sampling reproducible")
    generate.add_argument("--stop-token-ids", type=_token_ids, default=(), help="stop after any of these")
    generate.add_argument("--json", action="store_true", help="one JSON object per token, then a summary")
    generate.add_argument("--coordinator", help=coordinator_help)
    generate.add_argument("--credentials", type=Path, help=credentials_help)
    generate.add_argument("--timeout", type=float, default=120.0)


def _token_ids(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"token ids are integers separated by commas, not {text!r}"
        ) from None


def generate_command(client: Any, args: argparse.Namespace) -> int:
    tokens = []
    finish = ""
    for token in client.generate_stream(
        args.name, prompt=args.prompt, token_ids=args.token_ids, max_tokens=args.max_tokens,
        temperature=args.temperature, top_p=args.top_p, top_k=args.top_k, seed=args.seed,
        stop_token_ids=args.stop_token_ids, timeout=args.timeout,
    ):  # fmt: skip
        tokens.append(token.token_id)
        finish = token.finish_reason or finish
        if args.json:
            print(json.dumps({"token_id": token.token_id, "text": token.text}), flush=True)
        else:
            sys.stdout.write(token.text if token.text else f"{token.token_id} ")
            sys.stdout.flush()
    if args.json:
        print(json.dumps({"token_ids": tokens, "finish_reason": finish, "completion_tokens": len(tokens)}))
    else:
        print(f"\n[{len(tokens)} tokens, finish: {finish}]")
    return 0
