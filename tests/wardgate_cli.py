"""The ``wardgate`` command as a user runs it: a subprocess of this Python."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

_LISTENING = re.compile(r"postgres listener on 127\.0\.0\.1:(\d+)")


def wardgate(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wardgate", *args], capture_output=True, text=True, timeout=timeout
    )


def start_serve(config_file: Path) -> tuple[subprocess.Popen[str], int]:
    """``wardgate serve`` in the background, and the port its PostgreSQL listener took."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "wardgate", "serve", "-c", str(config_file)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        found = _LISTENING.search(line)
        if found:
            return proc, int(found.group(1))
        if not line and proc.poll() is not None:
            break
    proc.kill()
    proc.wait()
    proc.stderr.close()
    raise AssertionError("wardgate serve did not start")
