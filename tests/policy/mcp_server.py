"""Installing the reference PostgreSQL MCP server (``@modelcontextprotocol/server-postgres``,
pinned in ``mcp/package-lock.json``) into a cache directory, as ``tests/idp/server.py`` does
for the test OpenID provider."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import uuid
from pathlib import Path

HERE = Path(__file__).parent / "mcp"
INSTALL_TIMEOUT = 300.0


class McpUnavailable(Exception):
    """Node or npm is missing: the tests that need the server are skipped."""


def install() -> Path:
    """``npm ci`` the pinned packages into a cache directory keyed by the lock file; the path of
    the server's entry point."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise McpUnavailable("the reference MCP server needs node and npm on PATH")
    lock = (HERE / "package-lock.json").read_bytes()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    target = Path(base) / "wardgate-test-mcp" / hashlib.sha256(lock).hexdigest()[:16]
    entry = target / "node_modules/@modelcontextprotocol/server-postgres/dist/index.js"
    if (target / ".installed").exists():
        return entry
    staging = target.with_name(f"{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    staging.mkdir(parents=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copy2(HERE / name, staging / name)
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
    return entry
