"""kubevino runtime: an OpenVINO model server that Model Server's clients talk to unchanged."""

from kubevino_common import __version__

__all__ = ["__version__"]
