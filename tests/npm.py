"""Installing pinned npm packages for tests (the OpenID provider, the reference MCP server) into
a cache directory keyed by the lock file, once per machine."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import uuid
from pathlib import Path

INSTALL_TIMEOUT = 300.0


class NodeUnavailable(Exception):
    """Node or npm is missing: the tests that need the package are skipped."""


def cache_root(name: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / name


def npm_install(source: Path, cache: str) -> Path:
    """``npm ci`` of ``source``'s package.json and package-lock.json; the installed folder."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise NodeUnavailable("these tests need node and npm on PATH")
    lock = (source / "package-lock.json").read_bytes()
    target = cache_root(cache) / hashlib.sha256(lock).hexdigest()[:16]
    if (target / ".installed").exists():
        return target
    staging = target.with_name(f"{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    staging.mkdir(parents=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copy2(source / name, staging / name)
    command = [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"]
    try:
        done = subprocess.run(
            command, cwd=staging, capture_output=True, text=True, timeout=INSTALL_TIMEOUT
        )
        if done.returncode != 0:
            raise RuntimeError(f"npm ci failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        (staging / ".installed").touch()
        try:
            staging.rename(target)
        except OSError:  # another test run installed it first
            shutil.rmtree(staging, ignore_errors=True)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target
