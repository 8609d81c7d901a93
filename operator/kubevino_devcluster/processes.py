"""Stopping what a test started: by its own process handle, politely first."""

from __future__ import annotations

import signal
import subprocess
from typing import Any


def stop_process(process: subprocess.Popen[Any] | None, timeout: float = 20) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds; reaped either way."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
