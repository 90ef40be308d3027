"""The worker daemon: shard cache, ONNX Runtime stages, mDNS advertisement, the Worker gRPC service."""
