"""Faults injected one at a time into a fleet under steady load, with what each did to the requests.

Used by the fleet tests (which require no failed request) and by `bench/chaos.py` (which prints the
table). Every scenario measures: requests sent, succeeded and failed; p50/p99 latency before, during
and after the fault; the time until the coordinator marked the worker down; and the time from the
fault until a one-second window carried at least 80% of the throughput before it.
"""

from __future__ import annotations

import signal
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from edgeswarm.dev.loadgen import Load, Result
from edgeswarm.dev.localfleet import wait_until
from edgeswarm.dev.netns.swarm import NetFleet

Action = Callable[[NetFleet, str], None]


@dataclass(frozen=True)
class Scenario:
    name: str
    inject: Action
    recover: Action
    # Whether the coordinator is expected to mark the worker down (a slow link is only slow).
    detectable: bool = True


def _restart(fleet: NetFleet, name: str) -> None:
    fleet.start_worker(name)


def _drain(fleet: NetFleet, name: str) -> None:
    fleet.workers[name].send_signal(signal.SIGTERM)


def _kill_coordinator(fleet: NetFleet, name: str) -> None:
    fleet.coordinator_host.kill()


def _start_coordinator(fleet: NetFleet, name: str) -> None:
    fleet.start_coordinator()


def _host(action: str, *args: int) -> Action:
    return lambda fleet, name: getattr(fleet.worker_hosts[name], action)(*args)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("kill -9", _host("kill"), _restart),
    Scenario("SIGSTOP", _host("freeze"), _host("thaw")),
    Scenario("link down", _host("link_down"), _host("link_up")),
    Scenario("slow link 1 Mbit/s +50 ms", _host("slow", 1000, 50), _host("unslow"), detectable=False),
    Scenario("SIGTERM drain", _drain, _restart),
    Scenario("coordinator kill -9, restart", _kill_coordinator, _start_coordinator, detectable=False),
)


@dataclass(frozen=True)
class Outcome:
    scenario: str
    sent: int
    succeeded: int
    failed: int
    p50_ms: tuple[float, float, float]  # before, during, after
    p99_ms: tuple[float, float, float]
    max_ms: float  # the slowest request that succeeded, in any window
    detect_s: float | None
    back_s: float | None
    errors: tuple[str, ...]


def _percentile(results: Sequence[Result], q: float) -> float:
    latencies = sorted(r.seconds * 1000 for r in results if not r.error)
    if not latencies:
        return float("nan")
    if len(latencies) == 1:
        return latencies[0]
    return statistics.quantiles(latencies, n=100, method="inclusive")[int(q) - 1]


def _rate(results: Sequence[Result], start: float, end: float) -> float:
    return sum(1 for r in results if not r.error and start <= r.start + r.seconds < end) / (end - start)


def run(
    fleet: NetFleet,
    load: Load,
    scenario: Scenario,
    victim: str,
    hold: float = 3.0,
    before: float = 2.0,
    after: float = 3.0,
) -> Outcome:
    """Injects `scenario` on `victim` for `hold` seconds under `load`, recovers, and measures: the
    windows before the fault and after the recovery last at least `before` and `after` seconds."""
    begin = time.monotonic()
    wait_until(
        lambda: time.monotonic() - begin >= before and load.succeeded(begin) >= 10, 30, "a steady load"
    )
    injected = time.monotonic()
    before_rate = _rate(load.snapshot(), begin, injected)
    scenario.inject(fleet, victim)
    detect_s = None
    if scenario.detectable:
        wait_until(lambda: victim not in fleet.up_workers(), 15, f"{victim} marked down")
        detect_s = time.monotonic() - injected
    wait_until(lambda: time.monotonic() - injected >= hold, hold + 1, "the fault to last")
    recovered = time.monotonic()
    scenario.recover(fleet, victim)
    fleet.wait_ready(timeout=60)
    wait_until(lambda: load.succeeded(recovered) >= 10, 30, "requests after recovery")
    wait_until(lambda: time.monotonic() - recovered >= after, after + 1, "an after window")
    end = time.monotonic()
    results = [r for r in load.snapshot() if begin <= r.start < end]
    windows = (
        [r for r in results if r.start < injected],
        [r for r in results if injected <= r.start < recovered],
        [r for r in results if r.start >= recovered],
    )
    back_s = _back_after(results, injected, end, 0.8 * before_rate)
    failed = [r for r in results if r.error]
    return Outcome(
        scenario=scenario.name,
        sent=len(results),
        succeeded=len(results) - len(failed),
        failed=len(failed),
        p50_ms=tuple(_percentile(w, 50) for w in windows),  # type: ignore[arg-type]
        p99_ms=tuple(_percentile(w, 99) for w in windows),  # type: ignore[arg-type]
        max_ms=max((r.seconds * 1000 for r in results if not r.error), default=float("nan")),
        detect_s=detect_s,
        back_s=back_s,
        errors=tuple(sorted({r.error for r in failed})),
    )


def _back_after(results: Sequence[Result], injected: float, end: float, target: float) -> float | None:
    """Seconds from the fault until the first one-second window (stepped by 0.1 s) reaching `target`."""
    start = injected
    while start + 1.0 <= end:
        if _rate(results, start, start + 1.0) >= target:
            return start - injected
        start += 0.1
    return None


def deploy_replicas(fleet: NetFleet, model_path: str, name: str, replicas: int = 2) -> None:
    with fleet.client() as client:
        client.deploy(model_path, name, mode="replicas", replicas=replicas, timeout=60)


def table(outcomes: Sequence[Outcome]) -> str:
    def ms(values: tuple[float, float, float]) -> str:
        return " / ".join(f"{v:.1f}" for v in values)

    def secs(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    lines = [
        "| scenario | sent | ok | failed | p50 ms before / during / after | p99 ms before / during / after "
        "| max ms | detected s | throughput back s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for o in outcomes:
        lines.append(
            f"| {o.scenario} | {o.sent} | {o.succeeded} | {o.failed} | {ms(o.p50_ms)} | {ms(o.p99_ms)} "
            f"| {o.max_ms:.0f} | {secs(o.detect_s)} | {secs(o.back_s)} |"
        )
    return "\n".join(lines)
