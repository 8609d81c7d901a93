"""The nodes a user asks ``kubevino dev-cluster up`` for: ``--nodes N`` or one ``--node`` each.

--node name=gpu-a,render-gid=110 --node name=gpu-b,render-gid=4747,npu --node name=plain
--node name=edge,label=pool=edge,label=zone=a
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A Node's name becomes its hostname-override and a directory: one DNS-1123 label.
_NODE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
SINGLE_NODE_NAME = "kv-node"
_KEYS = "name=, render-gid=, npu, label=KEY=VALUE"


@dataclass(frozen=True)
class NodeOption:
    """One node as asked for; mirrors ``cluster.NodeSpec`` without importing the cluster."""

    name: str
    render_gid: int | None = None
    npu: bool = False
    labels: tuple[tuple[str, str], ...] = ()

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "render_gid": self.render_gid,
            "npu": self.npu,
            "labels": [list(label) for label in self.labels],
        }


class NodeOptionError(ValueError):
    """A --nodes or --node value that names no valid set of nodes; says which part and why."""


def numbered_nodes(count: int) -> list[NodeOption]:
    if count < 1:
        raise NodeOptionError(f"--nodes {count}: a cluster needs at least one node")
    if count == 1:
        return [NodeOption(SINGLE_NODE_NAME)]
    return [NodeOption(f"{SINGLE_NODE_NAME}-{index}") for index in range(1, count + 1)]


def parse_node(text: str) -> NodeOption:
    name: str | None = None
    render_gid: int | None = None
    npu = False
    labels: list[tuple[str, str]] = []
    for part in (piece.strip() for piece in text.split(",")):
        key, has_value, value = part.partition("=")
        if key == "npu" and not has_value:
            npu = True
        elif key == "name" and has_value:
            if not _NODE_NAME.match(value):
                raise NodeOptionError(
                    f"--node {text}: name {value!r} is not a DNS-1123 label "
                    "(lower-case letters, digits and '-', at most 63)"
                )
            name = value
        elif key == "render-gid" and has_value:
            if not value.isdigit():
                raise NodeOptionError(
                    f"--node {text}: render-gid {value!r} is not a group id (a number >= 0)"
                )
            render_gid = int(value)
        elif key == "label" and has_value:
            label_key, has_label_value, label_value = value.partition("=")
            if not label_key or not has_label_value:
                raise NodeOptionError(f"--node {text}: label {value!r} is not KEY=VALUE")
            labels.append((label_key, label_value))
        else:
            raise NodeOptionError(f"--node {text}: {part!r} is not one of {_KEYS}")
    if name is None:
        raise NodeOptionError(f"--node {text}: name= is required")
    return NodeOption(name, render_gid, npu, tuple(labels))


def requested_nodes(count: int | None, node_texts: list[str] | None) -> list[NodeOption]:
    if count is not None and node_texts:
        raise NodeOptionError("give --nodes N or --node ..., not both")
    if node_texts:
        nodes = [parse_node(text) for text in node_texts]
    else:
        nodes = numbered_nodes(1 if count is None else count)
    names = [node.name for node in nodes]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise NodeOptionError(f"--node: node name {', '.join(repeated)} given more than once")
    return nodes
