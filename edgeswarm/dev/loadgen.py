"""Steady request load for tests and the chaos run: lanes of back-to-back requests, each result kept."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeswarm.client import Client


@dataclass(frozen=True)
class Result:
    start: float  # time.monotonic() when sent
    seconds: float
    error: str = ""  # empty: the outputs equal the expected ones


@dataclass
class Load:
    """`lanes` threads each sending `model` requests back to back until `stop()`; outputs are compared."""

    address: str
    model: str
    inputs: Mapping[str, np.ndarray]
    want: Mapping[str, np.ndarray]
    lanes: int = 2
    timeout: float = 10.0
    # A secure fleet's credentials file.
    credentials: Path | None = None
    results: list[Result] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._lane, daemon=True) for _ in range(self.lanes)]
        self._lock = threading.Lock()

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.timeout + 5)

    def _lane(self) -> None:
        with Client(self.address, credentials=self.credentials) as client:
            while not self._stop.is_set():
                start = time.monotonic()
                try:
                    got = client.infer(self.model, dict(self.inputs), timeout=self.timeout)
                    error = "" if _equal(got, self.want) else "outputs differ from the reference"
                except Exception as exc:  # every failure is a result to count
                    error = f"{type(exc).__name__}: {exc}"
                with self._lock:
                    self.results.append(Result(start, time.monotonic() - start, error))

    def snapshot(self) -> list[Result]:
        with self._lock:
            return list(self.results)

    def succeeded(self, since: float = 0.0) -> int:
        return sum(1 for r in self.snapshot() if not r.error and r.start >= since)

    def failures(self) -> list[Result]:
        return [r for r in self.snapshot() if r.error]


def _equal(got: Mapping[str, np.ndarray], want: Mapping[str, np.ndarray]) -> bool:
    return got.keys() == want.keys() and all(np.array_equal(got[k], want[k]) for k in want)
