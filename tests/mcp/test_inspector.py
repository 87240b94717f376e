"""The MCP Inspector's command line (npm ``@modelcontextprotocol/inspector``, pinned in
``inspector/package-lock.json`` at 0.15.0, the newest release that runs on Node 20) lists and
calls the tools of ``wardgate mcp`` over stdio. It installs into the npm cache directory the
other Node tools of the tests use, and the test skips where node or npm are missing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.npm import NodeUnavailable, npm_install

HERE = Path(__file__).parent / "inspector"
CREDENTIAL = "wgc_0123456789abcdef_" + "A" * 43  # never used: these calls reach no gateway


def inspector(*args: str) -> Any:
    try:
        installed = npm_install(HERE, "wardgate-test-mcp-inspector")
    except NodeUnavailable as exc:
        pytest.skip(str(exc))
    cli = installed / "node_modules/@modelcontextprotocol/inspector-cli/build/cli.js"
    server = [sys.executable, "-m", "wardgate", "mcp", "--database", "clinic", "--api", "ehr",
              "--http-url", "https://127.0.0.1:15443"]  # fmt: skip
    env = {**os.environ, "WARDGATE_CREDENTIAL": CREDENTIAL}
    node = shutil.which("node") or "node"
    done = subprocess.run(
        [node, str(cli), "--cli", *server, *args],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert CREDENTIAL not in done.stdout + done.stderr
    return json.loads(done.stdout)


def test_inspector_lists_the_tools() -> None:
    names = {tool["name"] for tool in inspector("--method", "tools/list")["tools"]}
    assert {"list_targets", "describe", "query", "fhir_read", "fhir_search",
            "approval_status"} <= names  # fmt: skip


def test_inspector_calls_a_tool() -> None:
    answer = inspector("--method", "tools/call", "--tool-name", "list_targets")
    assert answer["isError"] is False
    assert json.loads(answer["content"][0]["text"]) == {"databases": ["clinic"], "apis": ["ehr"]}
