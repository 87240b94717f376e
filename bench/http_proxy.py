"""The FHIR API through wardgate, beside the same API called directly, in one run.

A development FHIR server (Synthea patients) on 127.0.0.1, and a `wardgate serve` in front of
it with TLS. Three ways to ask for the same page of patients (`GET /Patient?_count=N`), one
keep-alive client each, interleaved in rounds:

- direct: the FHIR server itself (plain HTTP, its API key);
- wardgate, raw: through the gateway as a caller whose role sees every entity raw (the answer
  is parsed, its links rebased, nothing masked);
- wardgate, masked: as a caller with no role (everything masked: names, identifiers, telecom,
  addresses, birth dates; patient ids pseudonymised).

Prints requests/s and the latency the gateway adds (p50, p99) for each, and the masked rate
over the direct one (issue 8's target: at least 0.5).

    python bench/http_proxy.py [--requests 300] [--rounds 3] [--count 20] [--compare TREE]

``--compare TREE`` runs a second gateway from another source tree (its ``src`` first on
PYTHONPATH) with the same configuration on another port, measured in the same rounds: before and
after a change, side by side.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from wardgate.demo.fhir import FhirServer
from wardgate.masking.entities import Entity
from wardgate.pki import ensure_dev_pki

TARGET = 0.5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wardgate(config: Path, *args: str) -> str:
    env = {**os.environ, "WARDGATE_CONFIG": str(config)}
    done = subprocess.run(
        [sys.executable, "-m", "wardgate", *args], capture_output=True, text=True, env=env,
        timeout=60, check=True,
    )  # fmt: skip
    return done.stdout.strip()


def timed(client: httpx.Client, path: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        response = client.get(path)
        response.raise_for_status()
        response.read()
        out.append(time.perf_counter() - started)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=300, help="per path and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--count", type=int, default=20, help="patients per page")
    parser.add_argument("--compare", metavar="TREE", help="also a gateway from TREE/src")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="wardgate-bench-http-") as work,
        FhirServer("bench-upstream-key-0123456789") as fhir,
    ):
        home = Path(work)
        pki = ensure_dev_pki(home / "pki")
        port = free_port()
        ports = {"": port}
        if args.compare:
            ports[" (compare)"] = free_port()
        raw_role = {"raw": [e.value for e in Entity] + ["TEXT"]}
        config: dict[str, Any] = {
            "listeners": {"http": {"host": "127.0.0.1", "port": port, "tls": {
                "cert": str(pki.server_cert), "key": str(pki.server_key)}}},
            "apis": [{"name": "ehr", "kind": "fhir", "url": fhir.base_url,
                      "auth": {"api_key": {"header": "X-API-Key", "value": fhir.api_key}}}],
            "identity": {"state": str(home / "state.db")},
            "masking": {"roles": {"raw": raw_role}},
            "audit": {"path": str(home / "audit.jsonl")},
        }  # fmt: skip
        path = home / "wardgate.yaml"
        path.write_text(yaml.safe_dump(config))
        wardgate(path, "users", "add", "masked")
        wardgate(path, "users", "add", "raw", "--roles", "raw")
        tokens = {
            name: wardgate(path, "credential", "--user", name, "--ttl", "1h")
            for name in ("masked", "raw")
        }
        log = (home / "wardgate.log").open("w")
        procs = []
        for label, listen in ports.items():
            env = dict(os.environ)
            if label:
                env["PYTHONPATH"] = str(Path(args.compare) / "src")
                config["listeners"]["http"]["port"] = listen
                config["audit"]["path"] = str(home / "audit-compare.jsonl")
                path = home / "wardgate-compare.yaml"
                path.write_text(yaml.safe_dump(config))
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "wardgate", "serve", "-c", str(path)],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env,
            ))  # fmt: skip
        try:
            tls = ssl.create_default_context(cafile=str(pki.ca_cert))
            clients = {"direct": httpx.Client(base_url=fhir.base_url, headers=fhir.auth_headers)}
            for label, listen in ports.items():
                gateway = f"https://127.0.0.1:{listen}/ehr"
                for who in ("raw", "masked"):
                    clients[f"wardgate, {who}{label}"] = httpx.Client(
                        base_url=gateway, verify=tls,
                        headers={"Authorization": f"Bearer {tokens[who]}"},
                    )  # fmt: skip
            page = f"/Patient?_count={args.count}"
            deadline = time.monotonic() + 30
            for label in ports:
                while True:
                    try:
                        clients[f"wardgate, raw{label}"].get(page).raise_for_status()
                        break
                    except httpx.HTTPError:
                        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                            raise
                        time.sleep(0.2)
            size = len(clients["direct"].get(page).content)
            times: dict[str, list[float]] = {name: [] for name in clients}
            for round_no in range(args.rounds):
                for name, client in clients.items():
                    times[name] += timed(client, page, args.requests)
                print(f"round {round_no + 1}/{args.rounds} done", file=sys.stderr)
            report(times, size, args)
            for client in clients.values():
                client.close()
        finally:
            for proc in procs:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGINT)
            for proc in procs:
                proc.wait(30)
            log.close()
    return 0


def report(times: dict[str, list[float]], size: int, args: argparse.Namespace) -> None:
    def pct(values: list[float], p: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))]

    direct = times["direct"]
    rate = {name: len(v) / sum(v) for name, v in times.items()}
    print(
        f"\nGET /Patient?_count={args.count} ({size:,} bytes of FHIR JSON), {args.rounds} x "
        f"{args.requests} requests per path, one keep-alive client each\n"
    )
    head = ("path", "req/s", "p50 ms", "p99 ms", "added p50", "added p99")
    print(f"{head[0]:<28}{head[1]:>9}{head[2]:>9}{head[3]:>9}{head[4]:>11}{head[5]:>11}")
    for name, values in times.items():
        added50 = (pct(values, 0.5) - pct(direct, 0.5)) * 1000
        added99 = (pct(values, 0.99) - pct(direct, 0.99)) * 1000
        print(f"{name:<28}{rate[name]:>9,.0f}{pct(values, 0.5) * 1000:>9.2f}"
              f"{pct(values, 0.99) * 1000:>9.2f}{added50:>11.2f}{added99:>11.2f}")  # fmt: skip
    ratio = rate["wardgate, masked"] / rate["direct"]
    verdict = "ok" if ratio >= TARGET else "MISSED"
    print(f"\nmasked / direct: {ratio:.2f}x (target >= {TARGET}) {verdict}")
    if "wardgate, masked (compare)" in rate:
        print(f"--compare tree: masked / direct "
              f"{rate['wardgate, masked (compare)'] / rate['direct']:.2f}x, raw / direct "
              f"{rate['wardgate, raw (compare)'] / rate['direct']:.2f}x")  # fmt: skip
    print(f"raw / direct: {rate['wardgate, raw'] / rate['direct']:.2f}x; "
          f"mean p50 {statistics.median(direct) * 1000:.2f} ms direct")  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
