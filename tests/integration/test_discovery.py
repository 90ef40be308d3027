"""Discovery through real zeroconf on 127.0.0.1: a worker whose first resolve goes unanswered, as when
an mDNS answer is lost, is still found."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import ClassVar

import pytest
from zeroconf import Zeroconf
from zeroconf.asyncio import AsyncServiceInfo

from edgeswarm.coordinator.fleet import discovery
from edgeswarm.coordinator.fleet.discovery import Discovery
from edgeswarm.coordinator.fleet.view import WorkerInfo
from edgeswarm.worker.advertise import Advertiser, service_info

pytestmark = pytest.mark.integration

LOOPBACK = "127.0.0.1"


class FirstAnswerLost(AsyncServiceInfo):  # type: ignore[misc]
    """Real resolution, except that each service's first request goes unanswered."""

    asked: ClassVar[dict[str, int]] = {}

    async def async_request(self, zc: Zeroconf, timeout: float, *args: object, **kwargs: object) -> bool:
        FirstAnswerLost.asked[self.name] = FirstAnswerLost.asked.get(self.name, 0) + 1
        if FirstAnswerLost.asked[self.name] == 1:
            return False
        answered: bool = await super().async_request(zc, timeout, *args, **kwargs)
        return answered


async def found_within(
    tries: int, monkeypatch: pytest.MonkeyPatch, seconds: float
) -> tuple[list[WorkerInfo], int]:
    """The workers found, and how often this test's worker was asked for (the services of other
    fleets on 127.0.0.1, as other tests run theirs, are asked for too)."""
    monkeypatch.setattr(discovery, "AsyncServiceInfo", FirstAnswerLost)
    monkeypatch.setattr(discovery, "RESOLVE_RETRY_S", 0.1)
    monkeypatch.setattr(discovery, "RESOLVE_TRIES", tries)
    FirstAnswerLost.asked.clear()
    fleet, worker_id = f"test-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    found: list[WorkerInfo] = []
    any_found = asyncio.Event()

    async def on_found(worker: WorkerInfo) -> None:
        found.append(worker)
        any_found.set()

    finder = asyncio.create_task(Discovery(LOOPBACK, fleet, on_found).run())
    advertiser = Advertiser(LOOPBACK)
    try:
        await advertiser.register(service_info(worker_id, "w1", fleet, LOOPBACK, 50051))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(any_found.wait(), seconds)
    finally:
        await advertiser.close()
        finder.cancel()
        await asyncio.gather(finder, return_exceptions=True)
    assert all(w.id == worker_id for w in found)
    return found, sum(n for name, n in FirstAnswerLost.asked.items() if worker_id[:8] in name)


async def test_a_worker_whose_first_resolve_is_lost_is_asked_for_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    found, asked = await found_within(tries=5, monkeypatch=monkeypatch, seconds=15)
    assert [w.address for w in found] == [f"{LOOPBACK}:50051"]
    assert asked == 2


async def test_without_asking_again_that_worker_stays_unfound(monkeypatch: pytest.MonkeyPatch) -> None:
    # The same loss with one try in all: what the retry above is for.
    found, asked = await found_within(tries=1, monkeypatch=monkeypatch, seconds=5)
    assert found == [] and asked == 1
