"""What the assistant's ``mcp.json`` passes: flags, ``WARDGATE_CREDENTIAL``, a targets file."""

from __future__ import annotations

import argparse
import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CREDENTIAL_ENV = "WARDGATE_CREDENTIAL"


class SettingsError(Exception):
    pass


@dataclass(frozen=True)
class Settings:
    credential: str = field(repr=False)  # never printed
    user: str
    gateway_host: str
    pg_port: int
    http_url: str | None
    ca: Path | None
    databases: tuple[str, ...]
    apis: tuple[str, ...]
    gateway_config: Path | None = None
    max_rows: int = 500
    hold_after: float = 3.0
    # The gateway's own endpoint (mcp/http.py) reaches its listeners in the same process: it sets
    # the PostgreSQL sslmode and the HTTP client's TLS context itself.
    sslmode: str = "verify-full"
    http_tls: ssl.SSLContext | None = field(default=None, repr=False)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gateway-host", default="127.0.0.1", help="the gateway's host name")
    parser.add_argument("--pg-port", type=int, default=15432, help="its PostgreSQL listener")
    parser.add_argument("--http-url", default=None, help="its HTTP listener, https://host:port")
    parser.add_argument("--ca", default=None, help="the gateway's CA file (else the system's)")
    parser.add_argument("--user", default="cursor", help="the agent's name (default cursor)")
    parser.add_argument(
        "--database", action="append", default=[], help="a database target (repeatable)"
    )
    parser.add_argument("--api", action="append", default=[], help="an API name (repeatable)")
    parser.add_argument(
        "--targets", default=None, help='a JSON/YAML file: {"databases": [...], "apis": [...]}'
    )
    parser.add_argument(
        "--gateway-config",
        default=None,
        help="the gateway's configuration, read only for the PHI labels that describe shows",
    )
    parser.add_argument("--max-rows", type=int, default=500, help="rows returned per query")
    parser.add_argument(
        "--hold-after",
        type=float,
        default=3.0,
        help="seconds an HTTP call may take before it is reported as waiting",
    )


def from_args(args: argparse.Namespace, env: Mapping[str, str]) -> Settings:
    credential = env.get(CREDENTIAL_ENV, "").strip()
    if not credential:
        raise SettingsError(
            f"set {CREDENTIAL_ENV} to the agent's credential "
            "(make one with `wardgate agent create --name cursor`)"
        )
    databases = list(args.database)
    apis = list(args.api)
    if args.targets:
        listed = _targets_file(Path(args.targets))
        databases += listed.get("databases", [])
        apis += listed.get("apis", [])
    if not databases and not apis:
        raise SettingsError("name at least one --database or --api (or a --targets file)")
    if apis and not args.http_url:
        raise SettingsError("--api needs --http-url, the gateway's HTTP listener")
    if args.max_rows < 1:
        raise SettingsError("--max-rows must be at least 1")
    ca = Path(args.ca) if args.ca else None
    if ca is not None and not ca.is_file():
        raise SettingsError(f"--ca {ca}: no such file")
    return Settings(
        credential=credential,
        user=args.user,
        gateway_host=args.gateway_host,
        pg_port=args.pg_port,
        http_url=args.http_url.rstrip("/") if args.http_url else None,
        ca=ca,
        databases=tuple(dict.fromkeys(databases)),
        apis=tuple(dict.fromkeys(apis)),
        gateway_config=Path(args.gateway_config) if args.gateway_config else None,
        max_rows=args.max_rows,
        hold_after=args.hold_after,
    )


def _targets_file(path: Path) -> dict[str, list[str]]:
    try:
        text = path.read_text()
        raw: Any = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise SettingsError(f"--targets {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise SettingsError(f"--targets {path}: expected a mapping with databases and apis")
    out: dict[str, list[str]] = {}
    for key in ("databases", "apis"):
        names = raw.get(key, [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise SettingsError(f"--targets {path}: {key} must be a list of names")
        out[key] = names
    return out
