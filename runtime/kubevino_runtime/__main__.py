"""``python -m kubevino_runtime``: the same as ``kubevino-serve``."""

import sys

from kubevino_runtime.entry import main

sys.exit(main())
