"""Who may call what. Pure: each check takes the method, the caller's certificate name and its
bearer token's role.

Coordinator (TLS; callers show a bearer token, workers their certificate):

    grpc.health.v1.Health/*                  anyone (it tells only serving or not)
    edgeswarm.v1.Control/Join                anyone: the join token is in the request, or the
                                             caller's worker certificate (renewal)
    edgeswarm.v1.Control/Status              client or admin
    edgeswarm.v1.Control/*                   admin (Deploy, Undeploy, Drain, tokens)
    edgeswarm.v1.Generation/Generate         client or admin
    inference.GRPCInferenceService/          admin for RepositoryModelLoad and -Unload,
                                             client or admin for the rest
    HTTP /v1/* (--http, OpenAI-compatible)   client or admin (the token as Authorization: Bearer)

Worker (mutual TLS; every caller has a fleet certificate):

    Worker/RunStage, Worker/Ping, Health     the coordinator or a fleet worker (an upstream stage,
                                             a link being timed)
    Worker/*                                 the coordinator only
"""

from __future__ import annotations

from collections.abc import Callable

import grpc

from edgeswarm.channels import Authorize, bearer_token, peer_common_name
from edgeswarm.errors import PermissionDenied, Unauthenticated
from edgeswarm.security.pki import COORDINATOR, WORKER_PREFIX
from edgeswarm.security.tokens import Role, TokenRecord

HEALTH = "/grpc.health.v1.Health/"
CONTROL = "/edgeswarm.v1.Control/"
INFERENCE = "/inference.GRPCInferenceService/"
GENERATE = "/edgeswarm.v1.Generation/Generate"
WORKER = "/edgeswarm.v1.Worker/"
OPENAI_HTTP = "/v1/"
ANYONE: frozenset[Role] = frozenset()
WORKER_PEER_METHODS = frozenset({f"{WORKER}RunStage", f"{WORKER}Ping"})
# Triton's repository extension places and removes models: an admin's.
ADMIN_INFERENCE_METHODS = frozenset({f"{INFERENCE}RepositoryModelLoad", f"{INFERENCE}RepositoryModelUnload"})


def coordinator_roles(method: str) -> frozenset[Role] | None:
    """The token roles that may call `method` on the coordinator; ANYONE for open methods, None for
    a method it does not serve (refused)."""
    if method.startswith(HEALTH) or method == f"{CONTROL}Join":
        return ANYONE
    if method in (f"{CONTROL}Status", GENERATE):
        return frozenset({Role.CLIENT, Role.ADMIN})
    if method.startswith(CONTROL):
        return frozenset({Role.ADMIN})
    if method in ADMIN_INFERENCE_METHODS:
        return frozenset({Role.ADMIN})
    if method.startswith(INFERENCE):
        return frozenset({Role.CLIENT, Role.ADMIN})
    return None


def http_roles(path: str) -> frozenset[Role] | None:
    """The token roles that may call the coordinator's HTTP route `path`; None for one it does not serve."""
    return frozenset({Role.CLIENT, Role.ADMIN}) if path.startswith(OPENAI_HTTP) else None


def check_coordinator_call(method: str, token_role: Callable[[], TokenRecord]) -> None:
    """Refuses the call unless the bearer token's role (read by `token_role`, which raises
    Unauthenticated for a missing or bad token) may call `method`."""
    _check_roles(method, coordinator_roles(method), token_role)


def check_http_call(path: str, token_role: Callable[[], TokenRecord]) -> None:
    """As `check_coordinator_call`, for the HTTP route `path`."""
    _check_roles(path, http_roles(path), token_role)


def _check_roles(what: str, roles: frozenset[Role] | None, token_role: Callable[[], TokenRecord]) -> None:
    if roles is ANYONE:
        return
    if roles is None:
        raise PermissionDenied(f"{what} is not served here")
    record = token_role()
    if record.role not in roles:
        wanted = " or ".join(sorted(roles))
        raise PermissionDenied(f"{what} needs role {wanted}; token {record.id} has role {record.role}")


def check_worker_call(method: str, caller: str) -> None:
    """Refuses the call unless the caller's certificate (its common name) may call `method`."""
    if not caller:
        raise Unauthenticated(f"{method} needs a fleet certificate")
    if caller == COORDINATOR:
        return
    if caller.startswith(WORKER_PREFIX) and (method in WORKER_PEER_METHODS or method.startswith(HEALTH)):
        return
    raise PermissionDenied(f"{method} is the coordinator's to call, not {caller}'s")


def coordinator_authorizer(authenticate: Callable[[str], TokenRecord]) -> Authorize:
    def authorize(method: str, context: grpc.aio.ServicerContext) -> None:
        def token_role() -> TokenRecord:
            token = bearer_token(context)
            if not token:
                raise Unauthenticated(
                    f"{method} needs credentials: a bearer token (edgeswarm --credentials FILE, or "
                    "Client(address, credentials=FILE))"
                )
            return authenticate(token)

        check_coordinator_call(method, token_role)

    return authorize


def worker_authorizer() -> Authorize:
    def authorize(method: str, context: grpc.aio.ServicerContext) -> None:
        check_worker_call(method, peer_common_name(context))

    return authorize
