"""edgeswarm: a fleet of ordinary PCs served as one ONNX inference service."""

__version__ = "0.1.0"
