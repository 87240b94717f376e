"""``wardgate demo`` end to end, the way a new user runs it: a subprocess, its printed psql line,
Ctrl-C, and nothing left running afterwards."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from wardgate.config import load
from wardgate.demo.postgres import pg_bin
from wardgate.demo.seed import GATEWAY_LOGIN


def _start_demo(data_dir: Path) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "wardgate", "demo", "--data-dir", str(data_dir), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("PG")},
    )
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith("Ctrl-C"):
            return proc, lines
    proc.kill()
    proc.wait()
    proc.stdout.close()
    raise AssertionError("demo did not become ready:\n" + "\n".join(lines))


def _stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGINT)
    try:
        code = proc.wait(30)
        assert proc.stdout is not None
        print(proc.stdout.read())  # shown if the test fails
        return code
    finally:
        if proc.stdout is not None:
            proc.stdout.close()


def _server_state(data_dir: Path) -> str:
    pid_file = data_dir / "postgres" / "pgdata" / "postmaster.pid"
    log = data_dir / "postgres" / "server.log"
    tail = log.read_text()[-3000:] if log.exists() else "(no server.log)"
    return f"postmaster.pid: {pid_file.read_text() if pid_file.exists() else '-'}\n{tail}"


def _postmaster_running(data_dir: Path) -> bool:
    pid_file = data_dir / "postgres" / "pgdata" / "postmaster.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().split()[0])
    try:  # the pid alone could have been reused by an unrelated process
        return b"postgres" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


@pytest.mark.slow
def test_demo_prints_working_psql_line_and_stops_cleanly(
    server_dirs: Callable[[str], Path],
) -> None:
    data_dir = server_dirs("demo") / "demo"
    proc, lines = _start_demo(data_dir)
    try:
        psql_lines = [line for line in lines if line.startswith("psql ")]
        uris = [line for line in lines if line.startswith("postgresql://")]
        assert len(psql_lines) == 3 and len(uris) == 3
        assert all("sslmode=verify-full" in line for line in psql_lines + uris)
        config_line = next(line for line in lines if line.startswith("config: "))
        config_file = Path(config_line.removeprefix("config: "))
        assert config_file.is_file() and (config_file.stat().st_mode & 0o077) == 0

        argv = shlex.split(psql_lines[0])
        argv[0] = pg_bin("psql")
        out = subprocess.run(
            [
                *argv,
                "-X",
                "-At",
                "-c",
                "SELECT count(*) FROM patients",
                "-c",
                "SELECT mrn FROM patients ORDER BY id LIMIT 1",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        count, mrn = out.stdout.split()
        assert int(count) >= 10_000 and mrn.startswith("MRN-")  # alice, engineer: masked

        # The same with an ID token of the development provider as the password.
        token_lines = [line for line in lines if line.startswith("PGPASSWORD=")]
        assert len(token_lines) == 3 and all("sslmode=verify-full" in x for x in token_lines)
        assert any(
            x.startswith("identity provider (DEVELOPMENT ONLY): http://127.0.0.1:") for x in lines
        )
        shell = token_lines[1].replace(" psql ", f" {shlex.quote(pg_bin('psql'))} ", 1)
        out = subprocess.run(
            ["bash", "-c", f"{shell} -X -At -F '|' -c 'SELECT count(*) FROM patients'"
             " -c 'SELECT ssn, first_name FROM patients ORDER BY id LIMIT 1'"],
            capture_output=True,
            text=True,
            timeout=60,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        count, row = out.stdout.split("\n", 1)
        ssn, first_name = row.strip().split("|")
        assert int(count) >= 10_000
        assert ssn == "[SSN]" and first_name and "[" not in first_name  # bob, clinician

        # The patient-record API: the printed curl lines, alice's masked, bob's with names.
        curls = [line for line in lines if line.startswith("curl ")]
        assert len(curls) == 2 and all("/ehr/Patient?_count=2" in c for c in curls)
        bundles = []
        for line in curls:
            answer = subprocess.run(
                ["bash", "-c", line + " -s --fail-with-body"],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert answer.returncode == 0, answer.stdout + answer.stderr
            bundles.append(json.loads(answer.stdout))
        alice_patient, bob_patient = (b["entry"][0]["resource"] for b in bundles)
        assert alice_patient["id"].startswith("pid-")
        assert alice_patient["name"][0]["family"] == "[NAME]"
        assert bob_patient["name"][0]["family"] != "[NAME]"
        check = subprocess.run(
            [sys.executable, "-m", "wardgate", "check"],
            env={**os.environ, "WARDGATE_CONFIG": str(config_file)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert check.returncode == 0, check.stderr  # includes least privilege upstream
        # The demo's target login is its own, not the superuser, and not let off the check.
        (target,) = load(config_file).targets
        assert target.user == GATEWAY_LOGIN and not target.allow_superuser
    finally:
        code = _stop(proc)
    assert code == 0
    assert not _postmaster_running(data_dir), _server_state(data_dir)
    events = [json.loads(x) for x in (data_dir / "audit.jsonl").read_text().splitlines()]
    seen = [e for e in events if e["type"] == "statement" and "patients" in e["statement"]]
    assert [e["who"]["subject"] for e in seen] == ["alice", "alice", "bob", "bob"]
    assert seen[0]["rows"] == 1
    assert seen[2]["who"]["method"] == "oidc" and seen[2]["who"]["roles"] == ["clinician"]
    assert seen[1]["masking"]["masked"] == {"MRN": 1}
    assert seen[3]["masking"]["masked"] == {"SSN": 1}  # the clinician sees the name raw
    env = {**os.environ, "WARDGATE_CONFIG": str(config_file)}
    verified = subprocess.run(
        [sys.executable, "-m", "wardgate", "audit", "verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr

    # A second run reuses the cluster, the data and the passwords, and starts quickly.
    started = time.monotonic()
    proc, lines2 = _start_demo(data_dir)
    assert _stop(proc) == 0
    assert time.monotonic() - started < 20
    assert (
        next(x for x in lines2 if "password=" in x).split("password=")[1].split()[0]
        == (psql_lines[0].split("password=")[1].split()[0])
    )
    assert not _postmaster_running(data_dir)


@pytest.mark.slow
def test_demo_story_ends_the_agents_session_and_exits(server_dirs: Callable[[str], Path]) -> None:
    data_dir = server_dirs("story") / "demo"
    command = [sys.executable, "-m", "wardgate", "demo", "--story", "--data-dir", str(data_dir)]
    done = subprocess.run(
        [*command, "--patients", "200"],
        capture_output=True,
        text=True,
        timeout=240,
        env={k: v for k, v in os.environ.items() if not k.startswith("PG")},
    )
    print(done.stdout, done.stderr)  # shown if the test fails
    assert done.returncode == 0
    assert "[8/8] the audit trail of the story" in done.stdout
    assert "57P01 terminating connection: access of 'alice' was revoked" in done.stdout
    assert "The story went as it should" in done.stdout
    assert not _postmaster_running(data_dir), _server_state(data_dir)

    story = data_dir / "story"
    events = [json.loads(x) for x in (story / "audit.jsonl").read_text().splitlines()]
    kinds = [e["type"] for e in events]
    for kind in ("session.start", "user.revoked", "session.terminated", "session.refused"):
        assert kind in kinds
    agent = [e for e in events if e["type"] == "session.start" and e["who"]["on_behalf_of"]]
    assert agent[0]["who"]["subject"] == "agent:cursor"
    assert agent[0]["who"]["on_behalf_of"] == ["alice"]
    terminated = next(e for e in events if e["type"] == "session.terminated")
    assert terminated["session"]["id"] == agent[0]["session"]["id"]
    verified = subprocess.run(
        [sys.executable, "-m", "wardgate", "audit", "verify"],
        env={**os.environ, "WARDGATE_CONFIG": str(story / "wardgate.yaml")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
