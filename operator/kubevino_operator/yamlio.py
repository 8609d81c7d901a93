"""YAML output that people read in diffs: multi-line strings as blocks, key order as built."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml


class _ManifestDumper(yaml.SafeDumper):
    pass


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_ManifestDumper.add_representer(str, _represent_str)


def dump_document(obj: Any) -> str:
    return yaml.dump(obj, Dumper=_ManifestDumper, sort_keys=False, width=100, allow_unicode=True)


def dump_documents(objects: Sequence[Any]) -> str:
    return "".join("---\n" + dump_document(obj) for obj in objects)
