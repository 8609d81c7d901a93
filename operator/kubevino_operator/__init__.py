"""kubevino: serve OpenVINO models on Kubernetes with the right device access."""

__version__ = "0.1.0"
