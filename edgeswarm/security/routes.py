"""Routes and plans bound to the coordinator that issued them, by its signature.

The coordinator keeps a signing key (Ed25519, DIR/pki/route.key, made once) and gives its public
half to each worker in its Describe call, which only the coordinator's certificate may make. With it:

- every RunStage request carries one signature per hop, `route_macs[i]` over the request id, the
  model, a generation's session (its id and sampling; not its position, which the ring's last stage
  advances) and the hops from i on. A worker runs and forwards a route only as the coordinator
  issued it: a fleet worker can verify routes but cannot make one up, nor change where one goes;
- every plan the coordinator loads on a worker carries its signature, so a restarted coordinator
  adopts a plan a worker reports only when it issued it.

A process that was given no key (--insecure) signs and checks nothing. Pure but for that key and
the signatures it has checked: a generation's every step carries its first step's signatures over
the same bytes, so each is checked once (RECENT of them are kept).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edgeswarm._proto.edgeswarm.v1 import worker_pb2
from edgeswarm.errors import PermissionDenied

_signing: Ed25519PrivateKey | None = None  # the coordinator's
_verifying: Ed25519PublicKey | None = None  # every process that checks: the coordinator's public key
RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw
RECENT = 4096
_checked: OrderedDict[bytes, bytes] = OrderedDict()  # signature -> the message it was checked on


def use_key(secret: bytes) -> None:
    """The coordinator's signing key (32 bytes); empty: none (signs and checks nothing)."""
    global _signing, _verifying
    _checked.clear()
    _signing = Ed25519PrivateKey.from_private_bytes(secret) if secret else None
    _verifying = _signing.public_key() if _signing is not None else None


def use_public_key(public: bytes) -> None:
    """A worker's: the coordinator's public key, as its Describe call gave it."""
    global _signing, _verifying
    _checked.clear()
    _signing, _verifying = None, Ed25519PublicKey.from_public_bytes(public) if public else None


def public_key() -> bytes:
    return _verifying.public_bytes(*RAW) if _verifying is not None else b""


def _message(*parts: bytes) -> bytes:
    return b"".join(len(part).to_bytes(8, "big") + part for part in parts)


def _session(request: worker_pb2.StageRequest) -> bytes:
    """What of a generation's step the signature covers: the session and its sampling."""
    if not request.HasField("session"):
        return b""
    step = request.session
    covered = worker_pb2.SessionStep(id=step.id, sampling=step.sampling, ring=step.ring)
    return covered.SerializeToString(deterministic=True)


def route_macs(
    request_id: str, model: str, hops: Sequence[worker_pb2.Hop], session: bytes = b""
) -> list[bytes]:
    """One signature per hop, each over the route from that hop on; none without a signing key."""
    if _signing is None:
        return []
    encoded = [hop.SerializeToString(deterministic=True) for hop in hops]
    return [
        _signing.sign(_message(request_id.encode(), model.encode(), session, *encoded[i:]))
        for i in range(len(hops))
    ]


def sign_route(request: worker_pb2.StageRequest) -> worker_pb2.StageRequest:
    del request.route_macs[:]
    request.route_macs.extend(route_macs(request.request_id, request.model, request.route, _session(request)))
    return request


def check_route(request: worker_pb2.StageRequest) -> None:
    """PermissionDenied unless the route from this hop on is as the coordinator issued it."""
    if _verifying is None:
        raise PermissionDenied("this worker has no route key yet: the coordinator has not described it")
    if not request.route_macs:
        raise PermissionDenied("the route carries no MAC: routes come from the coordinator only")
    hops = [hop.SerializeToString(deterministic=True) for hop in request.route]
    message = _message(request.request_id.encode(), request.model.encode(), _session(request), *hops)
    signature = request.route_macs[0]
    if _checked.get(signature) == message:
        _checked.move_to_end(signature)
        return
    try:
        _verifying.verify(signature, message)
    except InvalidSignature:
        raise PermissionDenied(
            "the route is not one the coordinator issued (its MAC does not match)"
        ) from None
    _checked[signature] = message
    if len(_checked) > RECENT:
        _checked.popitem(last=False)


def onward_macs(request: worker_pb2.StageRequest) -> list[bytes]:
    return list(request.route_macs[1:])


def sign_plan(manifest: worker_pb2.PlanManifest) -> worker_pb2.PlanManifest:
    manifest.signature = b""
    if _signing is not None:
        manifest.signature = _signing.sign(manifest.SerializeToString(deterministic=True))
    return manifest


def plan_is_signed(manifest: worker_pb2.PlanManifest) -> bool:
    """Whether the coordinator issued this plan (always, without a key: nothing is signed then)."""
    if _verifying is None:
        return True
    unsigned = worker_pb2.PlanManifest()
    unsigned.CopyFrom(manifest)
    unsigned.signature = b""
    try:
        _verifying.verify(manifest.signature, unsigned.SerializeToString(deterministic=True))
    except InvalidSignature:
        return False
    return True
