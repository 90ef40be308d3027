"""Fleet tests: hosts in network namespaces, skipped where that cannot run (failed when CI=true)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import NoReturn

import pytest

from edgeswarm.dev.netns.network import Network, unavailable


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fleet: hosts in network namespaces on one bridge (needs root)")


def skip_or_fail(reason: str) -> NoReturn:
    """Skips the test, or fails it when CI=true, so that a CI machine unable to run it is noticed."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def require_netns() -> None:
    """Skips (or fails on CI) a test this machine cannot run network namespaces for."""
    reason = unavailable()
    if reason is not None:
        skip_or_fail(reason)


@pytest.fixture
def network() -> Iterator[Network]:
    """An empty Network, torn down when the test ends."""
    require_netns()
    with Network() as net:
        yield net
