"""The Generation servicer (`edgeswarm.v1.Generation`): a request's checks, then its tokens as made."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import grpc

from edgeswarm._proto.edgeswarm.v1 import generation_pb2 as pb
from edgeswarm._proto.edgeswarm.v1 import generation_pb2_grpc as pb_grpc
from edgeswarm.coordinator.deploying.registry import Registry
from edgeswarm.coordinator.serving.generation import GenerateParams, Generator
from edgeswarm.errors import InvalidRequest
from edgeswarm.sampling import Sampling

log = logging.getLogger(__name__)

# Most tokens one generation may ask for.
MAX_TOKENS = 8192


def params_of(request: pb.GenerateRequest) -> GenerateParams:
    if request.prompt and not request.token_ids:
        raise InvalidRequest(
            f"model {request.model!r} has no tokenizer: send the prompt as token ids (token_ids)"
        )
    if request.stop:
        raise InvalidRequest(
            f"model {request.model!r} has no tokenizer: stop strings need one (stop_token_ids)"
        )
    if request.prompt and request.token_ids:
        raise InvalidRequest("send the prompt as text or as token ids, not both")
    if any(t < 0 for t in request.token_ids):
        raise InvalidRequest("token ids must be >= 0")
    if not 1 <= request.max_tokens <= MAX_TOKENS:
        raise InvalidRequest(f"max_tokens must be 1..{MAX_TOKENS}, not {request.max_tokens}")
    sampling = Sampling(
        temperature=request.temperature,
        top_k=request.top_k,
        top_p=request.top_p or 1.0,
        seed=request.seed if request.seeded else None,
    )
    return GenerateParams(
        tuple(request.token_ids), request.max_tokens, sampling, frozenset(request.stop_token_ids)
    )


class GenerationService(pb_grpc.GenerationServicer):
    def __init__(self, registry: Registry, generator: Generator, default_timeout: float) -> None:
        self.registry = registry
        self.generator = generator
        self.default_timeout = default_timeout

    async def Generate(
        self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.GenerateResponse]:
        params = params_of(request)
        remaining = context.time_remaining()
        timeout = self.default_timeout if remaining is None else remaining
        count = 0
        async with self.registry.serving(request.model) as plan:
            tokens = self.generator.generate(plan, params, timeout)
            try:
                async for token in tokens:
                    count += 1
                    last = bool(token.finish_reason)
                    yield pb.GenerateResponse(
                        token_id=token.token_id,
                        finish_reason=token.finish_reason,
                        prompt_tokens=len(params.prompt) if last else 0,
                        completion_tokens=count if last else 0,
                    )
            finally:
                await tokens.aclose()  # the client went away, or it finished: the workers drop its state
        log.info("generated model=%s prompt_tokens=%d tokens=%d", request.model, len(params.prompt), count)
