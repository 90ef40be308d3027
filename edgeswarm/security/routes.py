"""Routes and plans bound to the coordinator that issued them.

The coordinator keeps a secret key (DIR/pki/route.key, made once) and gives it to each worker in its
Describe call, which only the coordinator's certificate may make. With it:

- every RunStage request carries one MAC per hop, `route_macs[i]` over the request id, the model and
  the hops from i on, so a worker runs and forwards a route only as the coordinator issued it (a
  fleet worker cannot make one up, or change where a route goes);
- every plan the coordinator loads on a worker carries a MAC, so a restarted coordinator adopts a
  plan a worker reports only when it issued it.

A process that was given no key (--insecure) signs and checks nothing. Pure but for that key.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from edgeswarm._proto.edgeswarm.v1 import worker_pb2
from edgeswarm.errors import PermissionDenied

_key = b""


def use_key(key: bytes) -> None:
    global _key
    _key = key


def key() -> bytes:
    return _key


def _mac(*parts: bytes) -> bytes:
    digest = hmac.new(_key, digestmod=hashlib.sha256)
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.digest()


def route_macs(
    request_id: str, model: str, hops: Sequence[worker_pb2.Hop], session: bytes = b""
) -> list[bytes]:
    """One MAC per hop, each over the route from that hop on (and a generation's step); none
    without a key."""
    if not _key:
        return []
    encoded = [hop.SerializeToString(deterministic=True) for hop in hops]
    return [_mac(request_id.encode(), model.encode(), session, *encoded[i:]) for i in range(len(hops))]


def _session(request: worker_pb2.StageRequest) -> bytes:
    return request.session.SerializeToString(deterministic=True) if request.HasField("session") else b""


def sign_route(request: worker_pb2.StageRequest) -> worker_pb2.StageRequest:
    del request.route_macs[:]
    request.route_macs.extend(route_macs(request.request_id, request.model, request.route, _session(request)))
    return request


def check_route(request: worker_pb2.StageRequest) -> None:
    """PermissionDenied unless the route from this hop on is as the coordinator issued it."""
    if not _key:
        raise PermissionDenied("this worker has no route key yet: the coordinator has not described it")
    if not request.route_macs:
        raise PermissionDenied("the route carries no MAC: routes come from the coordinator only")
    hops = [hop.SerializeToString(deterministic=True) for hop in request.route]
    want = _mac(request.request_id.encode(), request.model.encode(), _session(request), *hops)
    if not hmac.compare_digest(want, request.route_macs[0]):
        raise PermissionDenied("the route is not one the coordinator issued (its MAC does not match)")


def onward_macs(request: worker_pb2.StageRequest) -> list[bytes]:
    return list(request.route_macs[1:])


def sign_plan(manifest: worker_pb2.PlanManifest) -> worker_pb2.PlanManifest:
    manifest.signature = b""
    if _key:
        manifest.signature = _mac(manifest.SerializeToString(deterministic=True))
    return manifest


def plan_is_signed(manifest: worker_pb2.PlanManifest) -> bool:
    """Whether the coordinator issued this plan (always, without a key: nothing is signed then)."""
    if not _key:
        return True
    unsigned = worker_pb2.PlanManifest()
    unsigned.CopyFrom(manifest)
    unsigned.signature = b""
    return hmac.compare_digest(_mac(unsigned.SerializeToString(deterministic=True)), manifest.signature)
