"""OpenAI's API shapes, pure: a completion request's fields checked into `Asked`, the answer's JSON
(whole, or each streamed chunk) from the tokens made, and each error class's HTTP status and error
object. The HTTP side is openai_http.py.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from edgeswarm.coordinator.serving.generate_rpc import Piece
from edgeswarm.errors import (
    DeadlineExceeded,
    EdgeswarmError,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    StageUnavailable,
    Unauthenticated,
)
from edgeswarm.sampling import Sampling

# max_tokens when a request names none: OpenAI's for completions; for chat (OpenAI's is the model's
# whole context) one reply's worth.
COMPLETION_MAX_TOKENS = 16
CHAT_MAX_TOKENS = 256
# Each error class as (HTTP status, OpenAI error type, code); any other is a 500 server_error.
STATUS: dict[type[EdgeswarmError], tuple[int, str, str | None]] = {
    InvalidRequest: (400, "invalid_request_error", None),
    Unauthenticated: (401, "authentication_error", "invalid_api_key"),
    PermissionDenied: (403, "permission_error", None),
    NotFound: (404, "invalid_request_error", "model_not_found"),
    ResourceExhausted: (429, "rate_limit_error", None),
    StageUnavailable: (503, "server_error", "service_unavailable"),
    DeadlineExceeded: (504, "server_error", "timeout"),
}

T = TypeVar("T")
D = TypeVar("D")


def error_object(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def swarm_error(exc: EdgeswarmError) -> tuple[int, dict[str, Any]]:
    """The HTTP status and error object of one of the swarm's errors."""
    status, kind, code = next(
        (STATUS[c] for c in type(exc).__mro__ if c in STATUS), (500, "server_error", exc.code.name.lower())
    )
    return status, error_object(exc.message, kind, code)


@dataclass(frozen=True)
class Asked:
    """What a completion request asks for, its fields checked."""

    model: str
    prompt: str
    token_ids: tuple[int, ...]
    max_tokens: int
    sampling: Sampling
    stops: tuple[str, ...]
    stop_ids: tuple[int, ...]
    stream: bool
    include_usage: bool
    timeout: float | None


def _field(body: Mapping[str, Any], name: str, kind: type[T], default: D) -> T | D:
    """`body[name]`, of type `kind` (float takes an integer too, int and float no bool); `default`
    when absent or null."""
    value = body.get(name)
    if value is None:
        return default
    fits = isinstance(value, int | float) if kind is float else isinstance(value, kind)
    if not fits or (isinstance(value, bool) and kind is not bool):
        wanted = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
        raise InvalidRequest(f"{name} must be {wanted.get(kind, kind.__name__)}, not {value!r}")
    return cast(T, value)


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _prompt(value: object) -> tuple[str, tuple[int, ...]]:
    """A completion's prompt as (text, token ids): text, token ids, or a list of one of either."""
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str | list):
        value = value[0]
    if isinstance(value, str):
        return value, ()
    if isinstance(value, list) and value and all(_is_id(t) for t in value):
        return "", tuple(value)
    if isinstance(value, list) and len(value) > 1 and all(isinstance(p, str | list) for p in value):
        raise InvalidRequest(f"one prompt per request, not {len(value)}: send each in a request of its own")
    raise InvalidRequest("prompt must be text or a list of token ids")


def _stops(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return tuple(value)
    raise InvalidRequest(f"stop must be a string or a list of strings, not {value!r}")


def asked_of(body: Mapping[str, Any], chat: bool) -> Asked:
    """The request in `body` (OpenAI's fields, and edgeswarm's top_k, stop_token_ids and timeout);
    a chat's prompt is left empty, for its messages to fill."""
    model = _field(body, "model", str, "")
    if not model:
        raise InvalidRequest("model is required: the name of a deployed decoder (GET /v1/models)")
    if _field(body, "n", int, 1) != 1 or _field(body, "best_of", int, 1) != 1:
        raise InvalidRequest("n and best_of must be 1: one choice per request")
    if body.get("echo") or body.get("logprobs") or body.get("top_logprobs"):
        raise InvalidRequest("echo and logprobs are not offered")
    prompt, token_ids = ("", ()) if chat else _prompt(body.get("prompt"))
    size_field = "max_completion_tokens" if chat and body.get("max_completion_tokens") is not None else ""
    max_tokens = _field(
        body, size_field or "max_tokens", int, CHAT_MAX_TOKENS if chat else COMPLETION_MAX_TOKENS
    )
    stop_ids = _field(body, "stop_token_ids", list, [])
    if not all(_is_id(t) for t in stop_ids):
        raise InvalidRequest(f"stop_token_ids must be a list of token ids, not {stop_ids!r}")
    timeout = _field(body, "timeout", float, None)
    if timeout is not None and timeout <= 0:
        raise InvalidRequest(f"timeout must be a number of seconds > 0, not {timeout!r}")
    top_k = _field(body, "top_k", int, 0)
    sampling = Sampling(
        temperature=_field(body, "temperature", float, 1.0),
        top_k=0 if top_k == -1 else top_k,  # -1 as vLLM's: every token
        top_p=_field(body, "top_p", float, 1.0),
        seed=_field(body, "seed", int, None),
    )
    options = _field(body, "stream_options", dict, {})
    return Asked(
        model, prompt, token_ids, max_tokens, sampling, _stops(body.get("stop")), tuple(stop_ids),
        stream=_field(body, "stream", bool, False),
        include_usage=_field(options, "include_usage", bool, False),
        timeout=timeout,
    )  # fmt: skip


class Answer:
    """One response's shapes and counts: a text completion, or a chat one."""

    def __init__(self, chat: bool, model: str, prompt_tokens: int) -> None:
        self.chat = chat
        self.model = model
        self.prompt_tokens = prompt_tokens
        self.id = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.completion_tokens = 0
        self.finish_reason = ""

    def add(self, piece: Piece) -> None:
        self.completion_tokens += 1
        self.finish_reason = piece.finish_reason or self.finish_reason

    def usage(self) -> dict[str, int]:
        total = self.prompt_tokens + self.completion_tokens
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": total}  # fmt: skip

    def _object(self, kind: str, choices: list[dict[str, Any]], usage: bool = False) -> dict[str, Any]:
        body = {
            "id": self.id,
            "object": kind,
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        return {**body, "usage": self.usage()} if usage else body

    def whole(self, text: str) -> dict[str, Any]:
        if self.chat:
            choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text}}
        else:
            choice = {"index": 0, "text": text}
        choice.update(logprobs=None, finish_reason=self.finish_reason)
        return self._object("chat.completion" if self.chat else "text_completion", [choice], usage=True)

    def chunk(self, text: str | None, finish: str | None = None, role: bool = False) -> dict[str, Any]:
        """A streamed chunk: `text` added (None: nothing), the finish reason on the last; for a chat,
        its first (`role`) names the assistant."""
        if not self.chat:
            choice: dict[str, Any] = {"index": 0, "text": text or ""}
        elif role:
            choice = {"index": 0, "delta": {"role": "assistant", "content": ""}}
        else:
            choice = {"index": 0, "delta": {} if text is None else {"content": text}}
        choice.update(logprobs=None, finish_reason=finish)
        return self._object("chat.completion.chunk" if self.chat else "text_completion", [choice])

    def usage_chunk(self) -> dict[str, Any]:
        return self._object("chat.completion.chunk" if self.chat else "text_completion", [], usage=True)
