"""A worker's presence, alone in its own process: `python -m tests.presence_worker BROKER FLEET ID`.

SIGTERM takes it offline with reason "drain" and it exits 0; SIGKILL leaves the broker to send its will.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from edgeswarm.presence.worker import WorkerPresence


async def main(args: argparse.Namespace) -> None:
    samples = 0

    def telemetry() -> dict[str, float]:
        nonlocal samples
        samples += 1
        return {
            "in_flight": 0,
            "requests_per_s": 0.0,
            "stage_ms": 0.0,
            "memory_available": 1 << 30,
            "n": samples,
        }

    presence = WorkerPresence(
        args.broker,
        args.fleet,
        args.id,
        name="presence-worker",
        address="127.0.0.1:0",
        telemetry=telemetry,
        interval=args.interval,
        keepalive=args.keepalive,
    )
    loop = asyncio.get_running_loop()
    draining: set[asyncio.Task[None]] = set()
    loop.add_signal_handler(signal.SIGTERM, lambda: draining.add(loop.create_task(presence.offline("drain"))))
    await presence.run()
    await asyncio.gather(*draining)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("broker")
    parser.add_argument("fleet")
    parser.add_argument("id")
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--keepalive", type=int, default=1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(main(parser.parse_args()))
