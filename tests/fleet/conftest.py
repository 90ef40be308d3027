"""Fleet tests: hosts in network namespaces, skipped where that cannot run (failed when CI=true)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from edgeswarm.dev.netns.network import Network
from tests.helpers import require_netns


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fleet: hosts in network namespaces on one bridge (needs root)")


@pytest.fixture
def network() -> Iterator[Network]:
    """An empty Network, torn down when the test ends."""
    require_netns()
    with Network() as net:
        yield net
