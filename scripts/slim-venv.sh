#!/bin/sh
# Shrinks a finished virtual environment for a final image: no installer, no test suites
# of dependencies, no C headers; bytecode compiled once so a read-only root filesystem
# starts as fast as a writable one.
set -eu
venv=$1
site=$(echo "$venv"/lib/python3*/site-packages)
"$venv/bin/python" -m pip uninstall --yes --quiet pip setuptools wheel 2>/dev/null || true
rm -f "$venv"/bin/pip* "$venv"/bin/activate*
# No strip(1): wheels repaired by auditwheel carry patchelf-edited libraries that strip turns
# into unloadable files ("ELF load command address/offset not page-aligned").
# Test suites shipped inside wheels; none of them is imported at run time.
rm -rf "$site"/numpy/*/tests "$site"/numpy/tests "$site"/grpc/_cython/_cygrpc/tests \
       "$site"/google/protobuf/internal/*_test.py \
       "$site"/openvino/include
find "$site" -name '__pycache__' -type d -prune -exec rm -rf {} +
"$venv/bin/python" -m compileall -q -j 0 "$site" >/dev/null
