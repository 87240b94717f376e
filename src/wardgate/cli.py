"""The ``wardgate`` command line. Thin: it parses arguments and calls the core."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import sys
import time
from collections.abc import Sequence

from wardgate import __version__
from wardgate.audit.store import AuditUnavailable
from wardgate.config import ConfigError, config_path, load
from wardgate.private import make_private

log = logging.getLogger("wardgate")


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c", "--config", help="configuration file (default: $WARDGATE_CONFIG)", default=None
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wardgate", description="A gateway that makes access to PHI provable."
    )
    parser.add_argument("--version", action="version", version=f"wardgate {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the gateway")
    _add_config(serve)

    check = sub.add_parser("check", help="validate a configuration file and exit")
    _add_config(check)

    health = sub.add_parser("health", help="the running gateway's health (exit 1 if unhealthy)")
    _add_config(health)
    health.add_argument("--max-age", type=float, default=5.0, help="seconds before stale")

    passwd = sub.add_parser("passwd", help="print a SCRAM-SHA-256 verifier for a user's password")
    passwd.add_argument("--stdin", action="store_true", help="read the password from stdin")

    demo = sub.add_parser("demo", help="run the self-contained demonstration")
    demo.add_argument("--data-dir", default=None, help="where the demo keeps its state")
    demo.add_argument("--port", type=int, default=15432, help="gateway port (default 15432)")
    demo.add_argument("--patients", type=int, default=10_000, help="synthetic patients to seed")
    demo.add_argument(
        "--story",
        action="store_true",
        help="tell the offboarded-contractor story (agent credential, revocation) and exit",
    )

    from wardgate.audit import cli as audit_cli

    audit_cli.add_parser(sub)
    from wardgate.identity import cli as identity_cli

    identity_cli.add_parsers(sub)
    from wardgate.masking import cli as masking_cli

    masking_cli.add_parser(sub)
    from wardgate.recording import cli as recording_cli

    recording_cli.add_parsers(sub)
    from wardgate.approvals import cli as approvals_cli

    approvals_cli.add_parsers(sub)
    from wardgate.mcp import cli as mcp_cli

    mcp_cli.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    make_private()  # state, keys and exports this process writes are its account's alone
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:  # one line per HTTP request (re-validation, JWKS) is noise
        logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        if args.command == "serve":
            return _serve(args.config)
        if args.command == "check":
            return _check(args.config)
        if args.command == "health":
            return _health(args.config, args.max_age)
        if args.command == "passwd":
            return _passwd(args.stdin)
        if args.command == "demo":
            from wardgate.demo.run import run_demo

            return run_demo(
                data_dir=args.data_dir, port=args.port, patients=args.patients, story=args.story
            )
        if args.command == "audit":
            from wardgate.audit import cli as audit_cli

            return audit_cli.run(args)
        if args.command == "approvals":
            from wardgate.approvals import cli as approvals_cli

            return approvals_cli.run(args)
        if args.command == "classify":
            from wardgate.masking import cli as masking_cli

            return masking_cli.run(args)
        if args.command == "mcp":
            from wardgate.mcp import cli as mcp_cli

            return mcp_cli.run(args)
        if args.command in ("sessions", "replay"):
            from wardgate.recording import cli as recording_cli

            return recording_cli.run(args)
        from wardgate.identity import cli as identity_cli

        if args.command in identity_cli.COMMANDS:
            return identity_cli.run(args)
    except (ConfigError, AuditUnavailable) as exc:
        print(f"wardgate: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 2  # pragma: no cover - argparse requires a command


def _serve(explicit: str | None) -> int:
    from wardgate.app import Gateway, run, serve
    from wardgate.audit.location import redacted

    cfg = load(config_path(explicit))

    def ready(gateway: Gateway) -> None:
        for name, (host, port) in gateway.addresses.items():
            log.info("%s listener on %s:%d", name, host, port)
        audit = gateway.config.audit
        for what, where in (("audit events", audit.path), ("audit store", audit.store)):
            if where is not None:
                log.info("%s to %s", what, redacted(where))

    try:
        run(lambda: serve(cfg, ready))
    except KeyboardInterrupt:
        log.info("stopped")
    return 0


def _check(explicit: str | None) -> int:
    """The file parses and validates; each PostgreSQL target's login is least-privileged
    (policy/upstream.py); the existing state files are private (private.py)."""
    from wardgate.policy.upstream import check_targets
    from wardgate.private import loose

    cfg = load(config_path(explicit))
    refused, unchecked = check_targets(cfg.targets)
    problems = [*refused, *loose(cfg)]
    for line in unchecked:
        print(f"wardgate: warning: {line}", file=sys.stderr)
    for line in problems:
        print(f"wardgate: {line}", file=sys.stderr)
    if problems:
        return 1
    print(f"configuration OK: {len(cfg.targets)} target(s), {len(cfg.users)} user(s)")
    return 0


def _health(explicit: str | None, max_age: float) -> int:
    cfg = load(config_path(explicit))
    path = cfg.health_path()
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError):
        print(f"wardgate: no health report at {path}: is the gateway running?", file=sys.stderr)
        return 1
    age = time.time() - float(report.get("time", 0))
    print(json.dumps(report, indent=2))
    if age > max_age:
        print(
            f"wardgate: the report is {age:.0f} s old: the gateway is stuck or stopped",
            file=sys.stderr,
        )
        return 1
    if report.get("degraded"):
        print(f"wardgate: degraded: {report['degraded']}", file=sys.stderr)
        return 1
    return 0 if report.get("healthy") else 1


def _passwd(from_stdin: bool) -> int:
    from wardgate.identity.scram import Verifier

    if from_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("wardgate: the passwords differ", file=sys.stderr)
            return 1
    if not password:
        print("wardgate: empty password", file=sys.stderr)
        return 1
    print(Verifier.from_password(password))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
