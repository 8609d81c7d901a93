"""`kubevino render` and `kubevino crd` as a user runs them."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kubevino_operator.cli import EXIT_INVALID, EXIT_REFUSED, main
from tests.unit.builders import EXAMPLE_SETTINGS, EXAMPLES

MANIFEST = """\
apiVersion: kubevino.io/v1alpha1
kind: InferenceModel
metadata:
  name: bad
spec:
  model:
    source:
      pvc:
        claimName: models
  device:
    targetDevice: "{target}"
{extra}"""


def _run(args: list[str], monkeypatch: pytest.MonkeyPatch, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    monkeypatch.delenv("KUBEVINO_SETTINGS", raising=False)
    code = main(args)
    return code, out.getvalue(), err.getvalue()


def test_render_prints_the_objects_of_an_example(monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = _run(["render", "-f", str(EXAMPLES / "cpu.yaml")], monkeypatch)
    assert code == 0
    kinds = [doc["kind"] for doc in yaml.safe_load_all(out) if doc]
    assert kinds == ["ConfigMap", "Deployment", "Service"]
    assert out.startswith("# kubevino ")


@pytest.mark.parametrize(
    ("target", "extra", "fragment"),
    [
        ("MULTI:", "", "invalid targetDevice 'MULTI:' at position 6: expected a device"),
        ("GPU(", "", "invalid targetDevice 'GPU(' at position 3"),
        ("AUTO:-", "", "invalid targetDevice 'AUTO:-' at position 6: expected a device name"),
        (
            "AUTO",
            "  performance:\n    hint: THROUGHPUT\n    numStreams: 4\n",
            "spec.performance: a performance hint and NUM_STREAMS must not be used together",
        ),
    ],
)
def test_invalid_specs_exit_non_zero_naming_the_problem(
    monkeypatch: pytest.MonkeyPatch, target: str, extra: str, fragment: str
) -> None:
    code, out, err = _run(
        ["render", "-f", "-"], monkeypatch, stdin=MANIFEST.format(target=target, extra=extra)
    )
    assert code == EXIT_INVALID
    assert out == ""
    assert fragment in err
    assert "-: spec." in err  # names the file and the field


def test_a_refusal_exits_with_its_own_code_and_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = _run(["render", "-f", str(EXAMPLES / "ncs2-host-devices.yaml")], monkeypatch)
    assert code == EXIT_REFUSED
    assert "refused: InferenceModel default/resnet-ncs2-host: PrivilegeNotAllowed" in err


def test_settings_file_turns_a_refusal_into_manifests(monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = _run(
        [
            "render",
            "-f",
            str(EXAMPLES / "ncs2-host-devices.yaml"),
            "--settings",
            str(EXAMPLE_SETTINGS),
        ],
        monkeypatch,
    )
    assert code == 0 and "privileged: true" in out


def test_wrong_kind_and_broken_yaml_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = _run(["render", "-f", "-"], monkeypatch, stdin="kind: Pod\n")
    assert code == EXIT_INVALID and "expected kind InferenceModel, found Pod" in err
    code, _, err = _run(["render", "-f", "-"], monkeypatch, stdin="a: [\n")
    assert code == EXIT_INVALID and "not valid YAML" in err


def test_settings_errors_name_the_file_and_field(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bad = tmp_path / "settings.yaml"
    bad.write_text("renderGroupId: -4\n")
    code, _, err = _run(
        ["render", "-f", str(EXAMPLES / "cpu.yaml"), "--settings", str(bad)], monkeypatch
    )
    assert code == EXIT_INVALID
    assert str(bad) in err and "renderGroupId" in err


def test_the_installed_console_script_prints_the_crd() -> None:
    script = Path(sys.executable).parent / "kubevino"
    done = subprocess.run(
        [str(script), "crd"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "name: inferencemodels.kubevino.io" in done.stdout
