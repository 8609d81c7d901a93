"""kubevino: serve OpenVINO models on Kubernetes with the right device access."""

from kubevino_common import __version__

__all__ = ["__version__"]
