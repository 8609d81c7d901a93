"""OpenVINO's ``target_device`` grammar, parsed into a value and printed back unchanged.

Forms accepted (the ones OpenVINO's plugins accept, without spaces)::

    CPU | GPU.1 | MYRIAD.1.2-ma2480              a physical device, optionally an instance
    AUTO | AUTO:GPU,CPU | AUTO:-CPU              candidates in priority order, or exclusions
    MULTI:MYRIAD,CPU | MULTI:CPU(2),GPU(2)       devices with optional infer-request counts
    HETERO:GPU,CPU                               devices in fallback order
    BATCH:GPU | BATCH:GPU(4)                     one device with an optional batch size

Virtual devices do not nest, and NVIDIA is never a candidate of a virtual device (the NVIDIA
plugin does not work under AUTO, MULTI, HETERO or BATCH).

The same language is also written as two regular expressions (``SYNTAX_PATTERN`` and
``MISUSE_PATTERN``) so that the API server can reject bad targets with CEL at admission time; a
property-based test keeps the parser and the expressions in agreement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

VirtualName = Literal["AUTO", "MULTI", "HETERO", "BATCH"]
VIRTUAL_DEVICES: tuple[VirtualName, ...] = ("AUTO", "MULTI", "HETERO", "BATCH")
# Families that may not appear inside a virtual device's list.
NOT_A_CANDIDATE: frozenset[str] = frozenset({*VIRTUAL_DEVICES, "NVIDIA"})

_FAMILY = r"[A-Z][A-Z0-9_]*"
_INSTANCE = r"[A-Za-z0-9]+([._-][A-Za-z0-9]+)*"
_COUNT = r"[1-9][0-9]{0,3}"
_PHYSICAL = rf"{_FAMILY}([.]{_INSTANCE})?"
_AUTO_ITEM = rf"-?{_PHYSICAL}"
_MULTI_ITEM = rf"{_PHYSICAL}([(]{_COUNT}[)])?"


def _listed(item: str) -> str:
    return rf"{item}(,{item})*"


SYNTAX_PATTERN = (
    "^("
    + "|".join(
        [
            _PHYSICAL,
            rf"AUTO(:{_listed(_AUTO_ITEM)})?",
            rf"MULTI:{_listed(_MULTI_ITEM)}",
            rf"HETERO:{_listed(_PHYSICAL)}",
            rf"BATCH:{_MULTI_ITEM}",
        ]
    )
    + ")$"
)
"""A target that matches it is well formed (virtual-name misuse aside).

RE2-compatible and free of backslashes, so it sits in a CEL string literal unchanged.
"""

_NOT_A_CANDIDATE_ALT = "|".join(sorted(NOT_A_CANDIDATE))
MISUSE_PATTERN = (
    rf"^([A-Z]+:(.*,)?-?({_NOT_A_CANDIDATE_ALT})([.(,]|$)"  # nested, or NVIDIA in a list
    r"|(MULTI|HETERO|BATCH)([.].*)?$"  # a list-taking virtual device written without its list
    r"|AUTO[.].*$)"  # an instance id on AUTO
)
"""A target that matches it misuses a virtual device name or NVIDIA (same constraints)."""

MAX_COUNT = 9999


class TargetDeviceError(ValueError):
    """A target string that OpenVINO would not accept; says which token and where."""

    def __init__(self, target: str, position: int, problem: str) -> None:
        self.target = target
        self.position = position
        self.problem = problem
        pointer = f"{target!r} at position {position}"
        super().__init__(f"invalid targetDevice {pointer}: {problem}")


@dataclass(frozen=True)
class Device:
    """One physical device as written in a target.

    ``count`` is the infer-request count inside MULTI (``CPU(2)``) or the batch size inside
    BATCH (``GPU(4)``); ``excluded`` marks an AUTO exclusion (``-CPU``).
    """

    family: str
    instance: str | None = None
    count: int | None = None
    excluded: bool = False

    @property
    def name(self) -> str:
        return self.family if self.instance is None else f"{self.family}.{self.instance}"

    def __str__(self) -> str:
        text = ("-" if self.excluded else "") + self.name
        return text if self.count is None else f"{text}({self.count})"


@dataclass(frozen=True)
class Target:
    """A parsed target: a single device (``virtual is None``) or a virtual device's list."""

    virtual: VirtualName | None
    devices: tuple[Device, ...]

    def __str__(self) -> str:
        listed = ",".join(str(device) for device in self.devices)
        if self.virtual is None:
            return listed
        return self.virtual if not listed else f"{self.virtual}:{listed}"

    @property
    def candidates(self) -> tuple[Device, ...]:
        """Devices the target may run on, in the order written (exclusions left out)."""
        return tuple(device for device in self.devices if not device.excluded)

    @property
    def exclusions(self) -> frozenset[str]:
        """Families an AUTO target excludes (``AUTO:-CPU`` → ``{"CPU"}``)."""
        return frozenset(device.family for device in self.devices if device.excluded)

    @property
    def is_open_auto(self) -> bool:
        """AUTO that names no candidate: it picks from whatever the pod can reach."""
        return self.virtual == "AUTO" and not self.candidates

    @property
    def batch_size(self) -> int | None:
        return self.devices[0].count if self.virtual == "BATCH" else None

    def families(self) -> tuple[str, ...]:
        """Distinct device families the target names as candidates, in order."""
        seen: dict[str, None] = {}
        for device in self.candidates:
            seen.setdefault(device.family, None)
        return tuple(seen)

    def instances(self, family: str) -> frozenset[str]:
        return frozenset(
            device.instance
            for device in self.candidates
            if device.family == family and device.instance is not None
        )


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, problem: str, position: int | None = None) -> TargetDeviceError:
        return TargetDeviceError(self.text, self.pos if position is None else position, problem)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def take(self, char: str) -> bool:
        if self.peek() == char:
            self.pos += 1
            return True
        return False

    def word(self, allowed: str) -> str:
        start = self.pos
        while not self.at_end() and self.text[self.pos] in allowed:
            self.pos += 1
        return self.text[start : self.pos]

    def describe_next(self) -> str:
        char = self.peek()
        if not char:
            return "the end of the string"
        if char.isspace():
            return "a space (device lists have no spaces)"
        return repr(char)


_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_FAMILY_CHARS = _UPPER + "0123456789_"
_ALNUM = _UPPER + _UPPER.lower() + "0123456789"


def _family(scanner: _Scanner, context: str) -> tuple[str, int]:
    start = scanner.pos
    first = scanner.peek()
    if first and first.isalpha() and first.islower():
        lowered = scanner.word(_ALNUM)
        raise scanner.fail(
            f"device names are upper case: write {lowered.upper()!r} instead of {lowered!r}",
            start,
        )
    if first not in _UPPER or not first:
        raise scanner.fail(f"expected a device name {context}, found {scanner.describe_next()}")
    family = scanner.word(_FAMILY_CHARS)
    if scanner.peek().islower():
        mixed = family + scanner.word(_ALNUM)
        raise scanner.fail(
            f"device names are upper case: write {mixed.upper()!r} instead of {mixed!r}", start
        )
    return family, start


def _instance(scanner: _Scanner, family: str) -> str:
    start = scanner.pos
    parts = [scanner.word(_ALNUM)]
    if not parts[0]:
        raise scanner.fail(
            f"expected an instance id after {family + '.'!r} (e.g. {family}.1), "
            f"found {scanner.describe_next()}"
        )
    while scanner.peek() in (".", "_", "-") and scanner.peek():
        separator_at = scanner.pos
        separator = scanner.text[separator_at]
        scanner.pos += 1
        part = scanner.word(_ALNUM)
        if not part:
            raise scanner.fail(
                f"instance id of {family} cannot end with {separator!r}", separator_at
            )
        parts.append(separator + part)
    return scanner.text[start : scanner.pos]


def _count(scanner: _Scanner, what: str) -> int:
    open_at = scanner.pos - 1
    digits_at = scanner.pos
    digits = scanner.word("0123456789")
    if not digits:
        raise scanner.fail(f"expected {what} after '(', found {scanner.describe_next()}")
    if digits.startswith("0") or int(digits) > MAX_COUNT:
        raise scanner.fail(f"{what} must be between 1 and {MAX_COUNT}, got {digits}", digits_at)
    if not scanner.take(")"):
        raise scanner.fail(
            f"expected ')' to close the '(' at position {open_at}, found {scanner.describe_next()}"
        )
    return int(digits)


def _device(scanner: _Scanner, virtual: VirtualName | None) -> Device:
    excluded_at = scanner.pos
    excluded = scanner.take("-")
    if excluded and virtual != "AUTO":
        where = f"inside {virtual}" if virtual else "outside AUTO"
        raise scanner.fail(
            f"'-' excludes a device and is only allowed inside AUTO (e.g. AUTO:-CPU), not {where}",
            excluded_at,
        )
    context = f"in the {virtual} list" if virtual else ""
    family, family_at = _family(scanner, context.strip() or "at the start")
    if virtual is not None and family in NOT_A_CANDIDATE:
        problem = (
            "the NVIDIA plugin cannot run under AUTO, MULTI, HETERO or BATCH; use NVIDIA alone"
            if family == "NVIDIA"
            else f"virtual device {family} cannot be nested inside {virtual}"
        )
        raise scanner.fail(problem, family_at)
    instance = _instance(scanner, family) if scanner.take(".") else None
    count: int | None = None
    paren_at = scanner.pos
    if scanner.take("("):
        if virtual == "MULTI":
            count = _count(scanner, "a request count")
        elif virtual == "BATCH":
            count = _count(scanner, "a batch size")
        else:
            raise scanner.fail(
                "a count in parentheses is only allowed inside MULTI (requests, e.g. "
                "MULTI:CPU(2),GPU(2)) or BATCH (batch size, e.g. BATCH:GPU(4))",
                paren_at,
            )
    return Device(family=family, instance=instance, count=count, excluded=excluded)


def _device_list(
    scanner: _Scanner, virtual: VirtualName, reject_duplicates: bool
) -> tuple[Device, ...]:
    devices: list[Device] = []
    seen: set[str] = set()
    while True:
        item_at = scanner.pos
        if scanner.at_end():
            raise scanner.fail(f"expected a device after {virtual}'s ':' or ',', found nothing")
        device = _device(scanner, virtual)
        if reject_duplicates and device.name in seen:
            raise scanner.fail(f"device {device.name} is listed twice", item_at)
        seen.add(device.name)
        devices.append(device)
        if virtual == "BATCH" and not scanner.at_end():
            raise scanner.fail(f"BATCH takes exactly one device, found {scanner.describe_next()}")
        if not scanner.take(","):
            return tuple(devices)


def parse_target(text: str, *, reject_duplicates: bool = True) -> Target:
    """Parse a ``target_device`` string; raise :class:`TargetDeviceError` naming the problem.

    ``reject_duplicates=False`` accepts a device listed twice, as the admission patterns do.
    """
    scanner = _Scanner(text)
    if not text:
        raise scanner.fail("the target is empty; use e.g. CPU, GPU or AUTO")
    if scanner.peek() == "-":
        _device(scanner, None)  # raises: an exclusion outside AUTO
    family, _ = _family(scanner, "at the start")
    target: Target
    if family in VIRTUAL_DEVICES:
        virtual = family
        if scanner.take(":"):
            target = Target(virtual, _device_list(scanner, virtual, reject_duplicates))
        elif virtual == "AUTO" and scanner.at_end():
            target = Target("AUTO", ())
        elif scanner.at_end():
            example = {
                "MULTI": "MULTI:GPU,CPU",
                "HETERO": "HETERO:GPU,CPU",
                "BATCH": "BATCH:GPU(4)",
            }
            raise scanner.fail(f"{virtual} needs a device list, e.g. {example[virtual]}")
        else:
            raise scanner.fail(f"expected ':' after {virtual}, found {scanner.describe_next()}")
    else:
        scanner.pos = 0
        target = Target(None, (_device(scanner, None),))
    if not scanner.at_end():
        raise scanner.fail(f"unexpected {scanner.describe_next()} after a complete target")
    return target
