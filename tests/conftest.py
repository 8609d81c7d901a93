"""Shared test configuration."""

from hypothesis import settings

# CI must be reliable: the same examples on every run (new ones come from changing the seed).
settings.register_profile("kubevino", derandomize=True, deadline=None)
settings.load_profile("kubevino")
