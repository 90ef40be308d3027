"""The Generation servicer (`edgeswarm.v1.Generation`): a request's checks, then its tokens as made,
with their text where the model was deployed with a tokenizer."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import grpc
from tokenizers import Tokenizer

from edgeswarm._proto.edgeswarm.v1 import generation_pb2 as pb
from edgeswarm._proto.edgeswarm.v1 import generation_pb2_grpc as pb_grpc
from edgeswarm.coordinator.deploying.registry import Registry
from edgeswarm.coordinator.serving.generation import GenerateParams, Generator
from edgeswarm.coordinator.serving.tokenizing import TextStream, encode
from edgeswarm.errors import InvalidRequest
from edgeswarm.plans import Plan
from edgeswarm.sampling import Sampling

log = logging.getLogger(__name__)

# Most tokens one generation may ask for, and most its context (prompt and generated) may hold.
MAX_TOKENS = 8192
MAX_CONTEXT = 32768


@dataclass(frozen=True)
class Piece:
    """One generated token as both APIs send it: its id, the text it releases, and (on the last)
    why the generation ended."""

    token_id: int
    text: str
    finish_reason: str


def params_of(
    model: str,
    tokenizer: Tokenizer | None,
    prompt: str,
    token_ids: Sequence[int],
    max_tokens: int,
    sampling: Sampling,
    stop_ids: Sequence[int],
    stops: Sequence[str],
) -> GenerateParams:
    if prompt and token_ids:
        raise InvalidRequest("send the prompt as text or as token ids, not both")
    if (prompt or stops) and tokenizer is None:
        raise InvalidRequest(
            f"model {model!r} has no tokenizer (deploy it with --tokenizer): send the prompt as token "
            "ids, and stop tokens instead of stop strings"
        )
    ids = encode(tokenizer, prompt) if prompt and tokenizer is not None else list(token_ids)
    if any(t < 0 for t in ids):
        raise InvalidRequest("token ids must be >= 0")
    if not 1 <= max_tokens <= MAX_TOKENS:
        raise InvalidRequest(f"max_tokens must be 1..{MAX_TOKENS}, not {max_tokens}")
    if len(ids) + max_tokens > MAX_CONTEXT:
        raise InvalidRequest(
            f"a prompt of {len(ids)} tokens and max_tokens {max_tokens} exceed the context of "
            f"{MAX_CONTEXT} tokens a generation may hold"
        )
    return GenerateParams(tuple(ids), max_tokens, sampling, frozenset(stop_ids))


async def pieces(
    generator: Generator,
    plan: Plan,
    params: GenerateParams,
    tokenizer: Tokenizer | None,
    stops: Sequence[str],
    timeout: float,
) -> AsyncGenerator[Piece, None]:
    """The generation's tokens with their text; ended early at a stop string."""
    text = TextStream(tokenizer, stops) if tokenizer is not None else None
    tokens = generator.generate(plan, params, timeout)
    try:
        async for token in tokens:
            released = text.push(token.token_id) if text is not None else ""
            reason = "stop" if text is not None and text.stopped else token.finish_reason
            if reason and text is not None:
                released += text.finish()
            yield Piece(token.token_id, released, reason)
            if reason:
                return
    finally:
        await tokens.aclose()  # finished, stopped, or the client went away: the workers drop its state


class GenerationService(pb_grpc.GenerationServicer):
    def __init__(
        self,
        registry: Registry,
        generator: Generator,
        tokenizer_of: Callable[[Plan], Tokenizer | None],
        default_timeout: float,
    ) -> None:
        self.registry = registry
        self.generator = generator
        self.tokenizer_of = tokenizer_of
        self.default_timeout = default_timeout

    async def Generate(
        self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.GenerateResponse]:
        remaining = context.time_remaining()
        timeout = self.default_timeout if remaining is None else remaining
        count = 0
        async with self.registry.serving(request.model) as plan:
            tokenizer = self.tokenizer_of(plan)
            sampling = Sampling(
                temperature=request.temperature,
                top_k=request.top_k,
                top_p=request.top_p or 1.0,
                seed=request.seed if request.seeded else None,
            )
            params = params_of(
                request.model, tokenizer, request.prompt, request.token_ids, request.max_tokens, sampling,
                request.stop_token_ids, request.stop,
            )  # fmt: skip
            async for piece in pieces(self.generator, plan, params, tokenizer, request.stop, timeout):
                count += 1
                last = bool(piece.finish_reason)
                yield pb.GenerateResponse(
                    token_id=piece.token_id,
                    text=piece.text,
                    finish_reason=piece.finish_reason,
                    prompt_tokens=len(params.prompt) if last else 0,
                    completion_tokens=count if last else 0,
                )
        log.info("generated model=%s prompt_tokens=%d tokens=%d", request.model, len(params.prompt), count)
