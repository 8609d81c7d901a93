#!/bin/sh
# Shrinks a finished virtual environment for a final image: no installer, no test suites
# of dependencies, no C headers; bytecode compiled once so a read-only root filesystem
# starts as fast as a writable one.
set -eu
venv=$1
site=$(echo "$venv"/lib/python3*/site-packages)
"$venv/bin/python" -m pip uninstall --yes --quiet pip setuptools wheel 2>/dev/null || true
rm -f "$venv"/bin/pip* "$venv"/bin/activate*
# An image built from one side's sources still gets every console script of the distribution:
# drop those whose package is not installed (the runtime image has no `kubevino` operator CLI).
"$venv/bin/python" - "$venv" <<'PY'
import importlib.util
import sys
from importlib.metadata import distribution
from pathlib import Path

for script in distribution("kubevino").entry_points.select(group="console_scripts"):
    if importlib.util.find_spec(script.module.split(".")[0]) is None:
        (Path(sys.argv[1]) / "bin" / script.name).unlink(missing_ok=True)
PY
# No strip(1): wheels repaired by auditwheel carry patchelf-edited libraries that strip turns
# into unloadable files ("ELF load command address/offset not page-aligned").
# Test suites shipped inside wheels; none of them is imported at run time.
rm -rf "$site"/numpy/*/tests "$site"/numpy/tests "$site"/grpc/_cython/_cygrpc/tests \
       "$site"/google/protobuf/internal/*_test.py \
       "$site"/openvino/include
find "$site" -name '__pycache__' -type d -prune -exec rm -rf {} +
"$venv/bin/python" -m compileall -q -j 0 "$site" >/dev/null
