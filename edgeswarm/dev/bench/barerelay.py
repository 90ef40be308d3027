"""A grpc.aio server with no logic of its own: the floor under what a Python gRPC hop can cost.

    python -m edgeswarm.dev.bench.barerelay --listen HOST:PORT [--next HOST:PORT]

Answers each call of /bench.Bare/Call with its own bytes, or, given --next, with what the server
there answered: a relay, shaped as the coordinator and a pipeline hop are (a grpc.aio server that
awaits a grpc.aio call), with the swarm's channel and server options and nothing else. `edgeswarm
bench` measures the coordinator and a hop between workers against chains of these.
"""

from __future__ import annotations

import argparse
import asyncio

import grpc

from edgeswarm.channels import open_channel, server_options

SERVICE = "bench.Bare"
METHOD = f"/{SERVICE}/Call"


async def serve(listen: str, onward: str) -> None:
    server = grpc.aio.server(options=server_options())
    channel = open_channel(onward) if onward else None
    call = channel.unary_unary(METHOD) if channel is not None else None

    async def handle(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        if call is None:
            return request
        # Waits for a next server still starting, so a chain is ready once its first one answers.
        answer: bytes = await call(request, timeout=context.time_remaining(), wait_for_ready=True)
        return answer

    handler = grpc.method_handlers_generic_handler(
        SERVICE, {"Call": grpc.unary_unary_rpc_method_handler(handle)}
    )
    server.add_generic_rpc_handlers((handler,))
    if server.add_insecure_port(listen) == 0:
        raise OSError(f"cannot listen on {listen}")
    await server.start()
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--listen", required=True)
    parser.add_argument("--next", default="", help="relay each call to the server here")
    args = parser.parse_args()
    asyncio.run(serve(args.listen, args.next))


if __name__ == "__main__":
    main()
