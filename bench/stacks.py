"""py-spy profiles of a running process, and where their samples fall.

``record(pid, path)`` samples the process while the ``with`` block runs (``py-spy record
--function --format raw``: one line per distinct stack, its frames joined by ``;`` and its
sample count last; idle samples, a thread waiting in ``epoll``, are left out by py-spy).
``summary(path)`` reads such a file back: per function, the share of the samples it was on the
stack for (inclusive) and at the top of it (self).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness import BenchError, log


def py_spy() -> str | None:
    return shutil.which("py-spy")


@contextlib.contextmanager
def record(pid: int, path: Path, rate: int = 200) -> Iterator[None]:
    """Sample ``pid`` into ``path`` for as long as the block runs."""
    binary = py_spy()
    if binary is None:
        raise BenchError("py-spy is not installed (pip install py-spy)")
    argv = [binary, "record", "--pid", str(pid), "--rate", str(rate), "--function"]
    argv += ["--format", "raw", "--output", str(path)]
    with path.with_suffix(".log").open("wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    try:
        time.sleep(0.5)  # attached before the work starts
        yield
    finally:
        proc.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            log(f"py-spy on pid {pid} did not stop; killed")


@dataclass
class Summary:
    samples: int
    inclusive: Counter[str]
    own: Counter[str]

    def lines(self, top: int = 25) -> list[str]:
        if not self.samples:
            return ["no samples"]
        out = [f"{self.samples} samples (not idle); inclusive %, self %, function"]
        for name, n in self.inclusive.most_common(top):
            incl, own = 100 * n / self.samples, 100 * self.own[name] / self.samples
            out.append(f"  {incl:5.1f} {own:5.1f}  {name}")
        out.append("self time, most first:")
        for name, n in self.own.most_common(top):
            out.append(f"  {100 * n / self.samples:5.1f}  {name}")
        return out


def summary(path: Path) -> Summary:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_short(f) for f in stack.split(";")]
        if frames[-1].startswith("_worker (") and len(frames) <= 4:
            continue  # an idle thread-pool worker, waiting for work (py-spy counts it busy)
        samples += n
        for name in set(frames[1:]):  # the first frame names the process or thread
            inclusive[name] += n
        own[frames[-1]] += n
    return Summary(samples, inclusive, own)


def _short(frame: str) -> str:
    """``fold (wardgate/core/pipeline.py)`` from py-spy's ``_fold (/long/path/pipeline.py)``."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    if "/wardgate/" in where:
        where = "wardgate/" + where.rsplit("/wardgate/", 1)[1]
    elif "/" in where:
        where = where.rsplit("/", 1)[1]
    return f"{name} ({where})" if where else name
