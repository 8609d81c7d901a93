"""``kubevino`` command line: render manifests offline, print the CRD, run the operator or the
node agent, start a local dev cluster."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

import yaml
from pydantic import ValidationError

from kubevino_operator import __version__
from kubevino_operator.api import InferenceModel
from kubevino_operator.crd import crd_yaml
from kubevino_operator.inferrequests import plan_infer_requests
from kubevino_operator.render import Rendered, render
from kubevino_operator.resolve import Refusal
from kubevino_operator.settings import SETTINGS_FILE_ENV, SettingsError, load_settings
from kubevino_operator.yamlio import dump_documents

EXIT_INVALID = 2
EXIT_REFUSED = 3


class InputError(ValueError):
    """A manifest kubevino cannot read; the message names the file and the field."""


def _error_location(location: Sequence[int | str]) -> str:
    return ".".join(str(part) for part in location if not str(part).startswith("function-"))


def describe_validation_error(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"{_error_location(item['loc'])}: {message}")
    return "; ".join(lines)


def read_models(source: str) -> Iterator[InferenceModel]:
    text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as error:
        raise InputError(f"{source}: not valid YAML: {error}") from error
    for index, document in enumerate(documents):
        where = f"{source} (document {index + 1})" if len(documents) > 1 else source
        if not isinstance(document, dict) or document.get("kind") != "InferenceModel":
            kind = document.get("kind") if isinstance(document, dict) else type(document).__name__
            raise InputError(f"{where}: expected kind InferenceModel, found {kind}")
        try:
            yield InferenceModel.model_validate(document)
        except ValidationError as error:
            raise InputError(f"{where}: {describe_validation_error(error)}") from error


def _summary(rendered: Rendered) -> str:
    resolution = rendered.resolution
    return (
        f"# kubevino {__version__}: target {resolution.target}, "
        f"accelerators {', '.join(resolution.accelerators)}, access {resolution.access_mode}, "
        f"runtime {resolution.runtime}, pod security {rendered.pod_security_level}, "
        f"{_serving_summary(rendered)}\n"
    )


def _serving_summary(rendered: Rendered) -> str:
    task = rendered.model.spec.model.task
    if task == "Tensor":
        return plan_infer_requests(rendered.model).summary()
    return f"task {task} (OpenAI API at {rendered.endpoints['openai']})"


def _render_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        settings = load_settings(args.settings)
        models = [model for source in args.filename for model in read_models(source)]
    except (InputError, SettingsError, OSError) as error:
        print(f"error: {error}", file=err)
        return EXIT_INVALID
    status = 0
    for model in models:
        result = render(model, settings)
        if isinstance(result, Refusal):
            name = f"{model.metadata.namespace}/{model.metadata.name}"
            print(f"refused: InferenceModel {name}: {result.reason}: {result.message}", file=err)
            status = EXIT_REFUSED
            continue
        out.write(_summary(result))
        out.write(dump_documents(result.objects))
    return status


def _crd_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    out.write(crd_yaml())
    return 0


def _operator_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    import kopf

    if args.settings:
        os.environ[SETTINGS_FILE_ENV] = args.settings
    settings = load_settings()  # fail now, with the file and field named, not in a handler
    import kubevino_operator.handlers  # noqa: F401 - registers the handlers

    kopf.configure(verbose=args.verbose)

    namespaces = args.namespace or settings.watch_namespaces
    kopf.run(
        clusterwide=not namespaces,
        namespaces=namespaces,
        standalone=True,
        liveness_endpoint=f"http://0.0.0.0:{args.health_port}/healthz"
        if args.health_port
        else None,
    )
    return 0


def _node_agent_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    import asyncio
    import logging

    from kubevino_operator.nodeagent import run_agent

    if not args.node_name:
        err.write("kubevino node-agent: give --node-name or set NODE_NAME\n")
        return 2
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(
        run_agent(
            args.node_name, Path(args.device_root), Path(args.sys_root), args.interval, args.once
        )
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubevino", description="Serve OpenVINO models on Kubernetes."
    )
    parser.add_argument("--version", action="version", version=f"kubevino {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    render_parser = commands.add_parser(
        "render",
        help="print the manifests for InferenceModels without a cluster",
        description="Print the Kubernetes objects the operator would create, like `helm "
        "template`. Exit 2 on an invalid manifest, 3 when the settings refuse a model.",
    )
    render_parser.add_argument(
        "-f", "--filename", action="append", required=True, help="InferenceModel YAML ('-': stdin)"
    )
    render_parser.add_argument(
        "--settings", help="operator settings YAML (default: $KUBEVINO_SETTINGS, else defaults)"
    )
    render_parser.set_defaults(handler=_render_command)
    crd_parser = commands.add_parser("crd", help="print the InferenceModel CRD")
    crd_parser.set_defaults(handler=_crd_command)
    operator_parser = commands.add_parser(
        "operator",
        help="run the operator (KUBECONFIG, else in-cluster)",
        description="Reconcile InferenceModels into Deployments, Services and config. Watches "
        "every namespace unless --namespace is given.",
    )
    operator_parser.add_argument(
        "-n", "--namespace", action="append", help="watch only this namespace (repeatable)"
    )
    operator_parser.add_argument("--settings", help="operator settings YAML")
    operator_parser.add_argument(
        "--health-port", type=int, default=8080, help="port of /healthz (0: off)"
    )
    operator_parser.add_argument("-v", "--verbose", action="store_true", help="debug logs")
    operator_parser.set_defaults(handler=_operator_command)
    agent_parser = commands.add_parser(
        "node-agent",
        help="report this node's accelerators on its Node (kubevino.io/ labels, annotations)",
        description="Stat the node's device nodes and read its sysfs (never open a device); "
        "label the Node kubevino.io/accelerator-<profile>=true and annotate the render GIDs.",
    )
    agent_parser.add_argument(
        "--node-name", default=os.environ.get("NODE_NAME"), help="default: $NODE_NAME"
    )
    agent_parser.add_argument("--device-root", default="/dev", help="the node's /dev")
    agent_parser.add_argument("--sys-root", default="/sys", help="the node's /sys")
    agent_parser.add_argument("--interval", type=float, default=60.0, help="seconds between scans")
    agent_parser.add_argument("--once", action="store_true", help="report once and exit")
    agent_parser.set_defaults(handler=_node_agent_command)
    # Listed here; parsed and run by kubevino_devcluster (a checkout's tool, not in the images).
    dev_cluster_parser = commands.add_parser(
        "dev-cluster",
        help="a throwaway local cluster on this machine (root, from a checkout): up|status|down",
        add_help=False,
    )
    dev_cluster_parser.add_argument("arguments", nargs=argparse.REMAINDER)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["dev-cluster"]:
        try:
            from kubevino_devcluster.command import main as dev_cluster
        except ImportError:
            print(
                "error: kubevino dev-cluster runs from a kubevino checkout "
                "(pip install -e . there); this installation has no kubevino_devcluster",
                file=sys.stderr,
            )
            return 2
        return dev_cluster(arguments[1:], sys.stdout, sys.stderr)
    args = build_parser().parse_args(arguments)
    code: int = args.handler(args, sys.stdout, sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
