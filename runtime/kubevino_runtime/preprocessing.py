"""Model Server's layout, mean, scale and precision settings, parsed and applied with OpenVINO's
PrePostProcessor before the model is reshaped and compiled.

A layout ``NHWC:NCHW`` says clients send (and, for an output, receive) NHWC while the model is
NCHW: the PrePostProcessor adds the transposition, so the compiled model's ports, and with them
the metadata clients read, have the client's shape. A layout without a colon (``N...``, ``CN``)
transposes nothing; it names the dimensions, which tells batch_size which dimension to change.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import openvino as ov

DIMENSION_LETTERS: Final = "NCHWD"
# Letters once each, ``?`` for an unnamed dimension, at most one ``...`` for any others.
_LAYOUT_PATTERN: Final = re.compile(r"^[NCHWD?]*(\.\.\.)?[NCHWD?]*$")

# Model Server's precision names and the names of the element types (``openvino.Type``) they
# stand for. Names, not types: parsing settings must not load OpenVINO (a front-end process
# reads the flags but never runs a model).
PRECISIONS: Final[dict[str, str]] = {
    "BF16": "bf16",
    "FP64": "f64",
    "FP32": "f32",
    "FP16": "f16",
    "INT64": "i64",
    "INT32": "i32",
    "INT16": "i16",
    "INT8": "i8",
    "INT4": "i4",
    "UINT64": "u64",
    "UINT32": "u32",
    "UINT16": "u16",
    "UINT8": "u8",
    "UINT4": "u4",
    "UINT1": "u1",
}


class PreprocessingError(ValueError):
    """A layout, mean, scale or precision setting that is malformed."""


@dataclass(frozen=True)
class LayoutChange:
    """What clients see (``client``) and what the model is (``model``); equal: no transposition."""

    client: str
    model: str

    @property
    def text(self) -> str:
        return self.model if self.client == self.model else f"{self.client}:{self.model}"


@dataclass(frozen=True)
class PrecisionChange:
    client: str  # Model Server's name, e.g. UINT8
    model: str


MeanOrScale = float | tuple[float, ...]


@dataclass(frozen=True)
class Preprocessing:
    """``layout`` is the only input's (a plain string setting); ``layouts`` name inputs and
    outputs (a JSON object setting). Mean, scale and precision apply to the only input."""

    layout: LayoutChange | None = None
    layouts: tuple[tuple[str, LayoutChange], ...] = ()
    mean: MeanOrScale | None = None
    scale: MeanOrScale | None = None
    precision: PrecisionChange | None = None

    @property
    def is_empty(self) -> bool:
        return self == Preprocessing()


def parse_layout_change(text: str) -> LayoutChange:
    """``NHWC:NCHW``, ``NCHW`` or ``N...``: case and spaces do not matter."""
    compact = "".join(text.split()).upper()
    sides = compact.split(":")
    if len(sides) > 2:
        raise PreprocessingError(f"layout {text!r} has more than one ':'")
    # Like Model Server, a missing side (``NHWC:``) reads as the other one.
    present = [side for side in sides if side]
    if not present:
        raise PreprocessingError(f"layout {text!r} names no dimension")
    for side in present:
        _check_layout(side, text)
    client, model = (present * 2)[:2]
    return LayoutChange(client, model)


def _check_layout(side: str, text: str) -> None:
    if not _LAYOUT_PATTERN.match(side):
        raise PreprocessingError(
            f"layout {text!r}: use the letters {DIMENSION_LETTERS}, '?' for another dimension "
            "and at most one '...' for any number of them"
        )
    repeated = sorted({letter for letter in DIMENSION_LETTERS if side.count(letter) > 1})
    if repeated:
        raise PreprocessingError(f"layout {text!r} names {', '.join(repeated)} twice")


def parse_layout_setting(value: Any) -> Preprocessing:
    """A layout setting: a string for the only input, or a JSON object (or its text) naming
    inputs and outputs."""
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            value = json.loads(value)
        except ValueError as error:
            raise PreprocessingError(f"layout is not JSON: {error}") from None
    if isinstance(value, str):
        return Preprocessing(layout=parse_layout_change(value))
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        named = tuple(sorted((str(k), parse_layout_change(v)) for k, v in value.items()))
        return Preprocessing(layouts=named)
    raise PreprocessingError(
        "layout must be a string or an object of input/output names to strings"
    )


def parse_mean_or_scale(text: str, what: str) -> MeanOrScale:
    """``0.5`` for every channel, or ``[0.5,0.4,0.3]`` / ``(0.5,0.4,0.3)`` per channel."""
    compact = "".join(text.split())
    try:
        if compact[:1] in "[(" and compact[-1:] in "])":
            return tuple(float(part) for part in compact[1:-1].split(","))
        return float(compact)
    except ValueError:
        raise PreprocessingError(
            f"{what} {text!r} is not a number or a [..] list of numbers"
        ) from None


def parse_precision(text: str) -> PrecisionChange:
    """``<client>:<model>`` in Model Server's names, e.g. ``uint8:fp32``."""
    sides = text.strip().upper().split(":")
    unknown = [side for side in sides if side not in PRECISIONS]
    if len(sides) != 2 or unknown:
        raise PreprocessingError(
            f"precision {text!r} must be <client precision>:<model precision>, each one of "
            + ", ".join(name.lower() for name in PRECISIONS)
        )
    return PrecisionChange(sides[0], sides[1])


def apply(model: ov.Model, settings: Preprocessing) -> ov.Model:
    """The model with the settings built in (raises PreprocessingError when they do not fit
    this model: unknown names, a setting for the only input of a model with several)."""
    if settings.is_empty:
        return model
    inputs = {port.get_any_name() for port in model.inputs}
    outputs = {port.get_any_name() for port in model.outputs}
    needs_one_input = [
        what
        for what, value in (
            ("a layout string", settings.layout),
            ("mean", settings.mean),
            ("scale", settings.scale),
            ("precision", settings.precision),
        )
        if value is not None
    ]
    if needs_one_input and len(model.inputs) != 1:
        raise PreprocessingError(
            f"{', '.join(needs_one_input)} applies to a model's only input, but this model has "
            f"{len(model.inputs)} ({', '.join(sorted(inputs))}); name them in a JSON layout"
        )
    import openvino as ov
    from openvino.preprocess import PrePostProcessor

    ppp = PrePostProcessor(model)
    if settings.layout is not None:
        _set_layouts(ppp.input(), settings.layout)
    for name, change in settings.layouts:
        if name in inputs:
            _set_layouts(ppp.input(name), change)
        elif name in outputs:
            _set_layouts(ppp.output(name), change)
        else:
            raise PreprocessingError(
                f"layout names {name!r}, which is no input ({', '.join(sorted(inputs))}) or "
                f"output ({', '.join(sorted(outputs))}) of the model"
            )
    if settings.precision is not None:
        client, model_type = (
            PRECISIONS[settings.precision.client],
            PRECISIONS[settings.precision.model],
        )
        ppp.input().tensor().set_element_type(getattr(ov.Type, client))
        ppp.input().preprocess().convert_element_type(getattr(ov.Type, model_type))
    if settings.mean is not None:
        ppp.input().preprocess().mean(_values(settings.mean))
    if settings.scale is not None:
        ppp.input().preprocess().scale(_values(settings.scale))
    try:
        built: ov.Model = ppp.build()
    except RuntimeError as error:
        raise PreprocessingError(
            f"OpenVINO cannot apply {settings_text(settings)}: {error}"
        ) from None
    return built


def describe(error: BaseException) -> str:
    """OpenVINO's message without its source-location lines, on one line."""
    lines = [
        line.strip()
        for line in str(error).splitlines()
        if line.strip() and not line.startswith("Exception from src/")
    ]
    return " ".join(lines) or repr(error)


def _set_layouts(port: Any, change: LayoutChange) -> None:
    import openvino as ov

    port.tensor().set_layout(ov.Layout(change.client))
    port.model().set_layout(ov.Layout(change.model))


def _values(value: MeanOrScale) -> float | list[float]:
    return list(value) if isinstance(value, tuple) else value


def settings_text(settings: Preprocessing) -> str:
    parts = []
    if settings.layout is not None:
        parts.append(f"layout {settings.layout.text}")
    parts += [f"layout {name}={change.text}" for name, change in settings.layouts]
    for what, value in (("mean", settings.mean), ("scale", settings.scale)):
        if value is not None:
            parts.append(f"{what} {value}")
    if settings.precision is not None:
        parts.append(f"precision {settings.precision.client}:{settings.precision.model}")
    return ", ".join(parts)
