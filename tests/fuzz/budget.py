"""How many cases the fuzz tier runs.

Each property test states its share of a CI-sized run; ``KUBEVINO_FUZZ_EXAMPLES`` scales every
share so the whole tier runs about that many cases (``KUBEVINO_FUZZ_EXAMPLES=50000`` for a
long run). The tensor protocols' shares sum to 1; the OpenAI routes' (generative/) add 0.125.
``KUBEVINO_FUZZ_SEED`` replays the same tests from another seed; without it every run draws the
same cases (the project's derandomized hypothesis profile).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import HealthCheck, seed, settings

CI_EXAMPLES = 6000
_cases_run = 0

Test = TypeVar("Test", bound=Callable[..., Any])


def total_examples() -> int:
    text = os.environ.get("KUBEVINO_FUZZ_EXAMPLES", "")
    if not text:
        return CI_EXAMPLES
    try:
        total = int(text)
    except ValueError:
        raise ValueError(f"KUBEVINO_FUZZ_EXAMPLES must be an integer, got {text!r}") from None
    if total < 1:
        raise ValueError(f"KUBEVINO_FUZZ_EXAMPLES must be 1 or more, got {total}")
    return total


def fuzz(share: float) -> Callable[[Test], Test]:
    """Run the decorated ``@given`` test for ``share`` of the tier's cases."""
    examples = max(1, round(total_examples() * share))
    configured = settings(
        max_examples=examples,
        # Hostile requests are large and slow on purpose; the cases are the point.
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
            HealthCheck.filter_too_much,
        ],
    )
    chosen_seed = os.environ.get("KUBEVINO_FUZZ_SEED")

    def decorate(test: Test) -> Test:
        decorated: Test = configured(test)
        if chosen_seed:
            decorated = seed(int(chosen_seed))(decorated)
        return decorated

    return decorate


def count_case() -> None:
    global _cases_run
    _cases_run += 1


def cases_run() -> int:
    return _cases_run
