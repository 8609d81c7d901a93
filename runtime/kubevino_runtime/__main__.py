"""``python -m kubevino_runtime``: the same as ``kubevino-serve``."""

import sys

from kubevino_runtime.server import main

sys.exit(main())
