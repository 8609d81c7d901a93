"""What the operator and the runtime both need and neither owns: the release version and
OpenVINO's target-device grammar. It imports neither side, so each image carries only its own
package plus this one."""

__version__ = "0.1.0"

__all__ = ["__version__"]
