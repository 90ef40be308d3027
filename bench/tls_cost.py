"""What mutual TLS costs: the same requests through a plaintext fleet and a secure one, in one run.

    python bench/tls_cost.py [--requests 200]

Two local fleets of 2 workers (one ORT thread each), one started `--insecure`, one secure (fleet
CA, workers joined with tokens, a bearer token on every client call), both up at once and measured
one after the other. On each, an identity chain (stages that cost nothing but their calls) is
deployed as one replica and as a 2-stage pipeline, and requests of 8 KiB, 400 KiB and 4 MiB are
sent one at a time. Per request: p50 and p90 latency through the coordinator; per hop: the
pipeline's p50 minus the replica's (one more worker-to-worker hop). Every output is checked against
its input. The measuring is edgeswarm/dev/bench/tls.py's, as in `edgeswarm bench` and
`bench/chaos.py`.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from edgeswarm.dev.bench.tls import table, tls_cost


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgeswarm-tls-bench-") as tmp:
        rows = tls_cost(Path(tmp), args.requests)
    print(table(rows))


if __name__ == "__main__":
    main()
