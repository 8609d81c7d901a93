"""How many infer requests (Model Server's ``nireq``) a model's server keeps in flight.

A device is only saturated with several requests in flight at once: the multi-stick guide
measured that an NCS2 needs 4, and that two sticks under ``MULTI`` need 8 — one stick's worth
of requests leaves the second idle. So when the target spreads requests over several devices
and the spec sets no count, the count is the sum of each device's optimum: its own count when
the target writes one (``MULTI:CPU(2),GPU(2)``), else its profile's ``requests_per_device``.
Where a device's optimum is not known ahead of time, the server keeps OpenVINO's own
(``OPTIMAL_NUMBER_OF_INFER_REQUESTS`` of the compiled model).
"""

from __future__ import annotations

from dataclasses import dataclass

from kubevino_common.devices import Device, parse_target
from kubevino_operator.api import InferenceModel
from kubevino_operator.profiles import profiles_for_family


@dataclass(frozen=True)
class InferRequestPlan:
    count: int | None  # None: the compiled model's optimal number, read by the server
    why: str

    def summary(self) -> str:
        """For `kubevino render`'s summary line."""
        return f"nireq {self.count} ({self.why})" if self.count else f"nireq: {self.why}"


def _per_device(device: Device) -> int | None:
    if device.count is not None:
        return device.count
    known = [p.requests_per_device for p in profiles_for_family(device.family)]
    return next((count for count in known if count is not None), None)


def plan_infer_requests(model: InferenceModel) -> InferRequestPlan:
    performance = model.spec.performance
    if performance is not None and performance.num_requests is not None:
        return InferRequestPlan(performance.num_requests, "spec.performance.numRequests")
    target = parse_target(model.spec.device.target_device)
    hint = performance.effective_plugin_config().get("PERFORMANCE_HINT") if performance else None
    # MULTI runs requests on every listed device at once; so does AUTO with
    # CUMULATIVE_THROUGHPUT. HETERO splits one request, BATCH and plain AUTO use one device.
    spreads = target.virtual == "MULTI" or (
        target.virtual == "AUTO" and hint == "CUMULATIVE_THROUGHPUT"
    )
    devices = target.candidates
    optimum = "OpenVINO's optimum for the compiled model"
    if not spreads or len(devices) < 2:
        return InferRequestPlan(None, optimum)
    known: list[tuple[Device, int]] = []
    unknown: list[str] = []
    for device in devices:
        count = _per_device(device)
        if count is None:
            unknown.append(str(device))
        else:
            known.append((device, count))
    if unknown:
        return InferRequestPlan(None, f"{optimum} (no optimum known for {', '.join(unknown)})")
    total = sum(count for _, count in known)
    terms = " + ".join(f"{count} for {device.name}" for device, count in known)
    return InferRequestPlan(total, f"{terms}, each listed device's optimum")
