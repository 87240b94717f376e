"""``wardgate mcp``: parse, refuse to start without a credential, serve on stdio."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from wardgate.mcp.settings import SettingsError, add_arguments, from_args


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "mcp",
        help="a stdio MCP server for AI assistants, a client of the running gateway",
        description="Serves MCP on stdio; the agent's credential comes from WARDGATE_CREDENTIAL.",
    )
    add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    try:
        settings = from_args(args, os.environ)
    except SettingsError as exc:
        print(f"wardgate mcp: {exc}", file=sys.stderr)
        return 2
    from wardgate.mcp.server import build

    build(settings).run()
    return 0
