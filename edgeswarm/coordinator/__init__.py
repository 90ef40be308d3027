"""The coordinator: discovery, fleet view, partitioning, placement, routing, and its gRPC APIs."""
