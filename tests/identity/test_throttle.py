"""Failed sign-ins back off per user and per source address (issue 14, item 8).

Real clients (psycopg, and hand-built SCRAM exchanges from other loopback source addresses)
against the real PostgreSQL listener of the gateway, with a fast backoff: free failures 2 per
user and 6 per address, then 0.1 s doubling up to 0.5 s.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest

from tests.gateway_harness import RunningGateway, build_config, running
from tests.protocols.postgres.conftest import target_entry
from tests.protocols.postgres.raw import Raw, scram_login, wait_for_event
from wardgate.demo.postgres import LocalPostgres
from wardgate.identity.throttle import LoginThrottle, ThrottleRules

CAP = 0.5


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, pg_server: LocalPostgres
) -> Iterator[RunningGateway]:
    throttle = {
        "user": {"free": 2, "base": 0.1, "cap": CAP},
        "address": {"free": 6, "base": 0.1, "cap": CAP},
        "hold": 2,
    }
    pki = tmp_path_factory.mktemp("pki")
    target = target_entry(pg_server, "postgres")
    config = build_config(tmp_path_factory.mktemp("gw"), pki, target, throttle=throttle)
    yield from running(config, pki / "ca.pem")


def attempt(gw: RunningGateway, user: str, password: str, source: str) -> tuple[bool, float, str]:
    """A SCRAM sign-in from ``source`` (a loopback address): (signed in, seconds, error text)."""
    started = time.monotonic()
    sock = socket.create_connection(("127.0.0.1", gw.port), timeout=10, source_address=(source, 0))
    with Raw(sock) as conn:
        conn.tls(gw)
        seen = scram_login(conn, user, password)
    elapsed = time.monotonic() - started
    errors = [body.decode(errors="replace") for kind, body in seen if kind == "E"]
    return bool(seen) and seen[-1][0] == "Z", elapsed, " ".join(errors)


def psycopg_attempt(gw: RunningGateway, user: str, password: str) -> float:
    started = time.monotonic()
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(gw.dsn(user, password=password, application_name=f"guess-{user}"))
    return time.monotonic() - started


def test_twenty_bad_passwords_in_a_row_wait_longer_and_longer(gateway: RunningGateway) -> None:
    took = [psycopg_attempt(gateway, "alice", f"guess-{n}") for n in range(20)]
    print("seconds per attempt:", [round(t, 2) for t in took])
    assert max(took[:2]) < 0.3  # the free failures cost nothing (a typo)
    assert took[2] >= 0.1 and took[3] >= 0.2 and took[4] >= 0.4  # then the backoff doubles
    assert min(took[5:]) >= CAP - 0.02  # up to the cap
    assert max(took[5:]) < CAP + 1.0
    # every failure is audited, with the backoff it started
    refused = [
        e for e in gateway.events()
        if e["type"] == "session.refused" and e["who"]["claimed_user"] == "alice"
    ]  # fmt: skip
    assert len(refused) == 20
    assert all("password authentication failed" in e["reason"] for e in refused)
    assert sum("throttled: " in e["reason"] and "backoff" in e["reason"] for e in refused) >= 18

    # another user from another address is not slowed down
    signed_in, seconds, _ = attempt(gateway, "bob", "bob-secret", "127.0.0.2")
    assert signed_in and seconds < 0.5


def test_a_correct_password_within_the_backoff_is_refused_unchecked(
    gateway: RunningGateway,
) -> None:
    source = "127.0.0.3"
    for n in range(3):  # bob: two free failures, then a backoff of 0.1 s
        assert not attempt(gateway, "bob", f"wrong-{n}", source)[0]
    results: list[tuple[bool, float, str]] = []
    guess = threading.Thread(
        target=lambda: results.append(attempt(gateway, "bob", "wrong-again", source))
    )
    guess.start()  # its failure starts a 0.2 s backoff; the answer is held that long
    time.sleep(0.1)
    signed_in, _, error = attempt(gateway, "bob", "bob-secret", source)
    guess.join()
    assert not signed_in and "too many failed sign-ins" in error
    unchecked = [
        e for e in gateway.events()
        if e["type"] == "session.refused" and "refused without checking" in e.get("reason", "")
    ]  # fmt: skip
    assert unchecked and unchecked[-1]["who"]["claimed_user"] == "bob"
    time.sleep(CAP + 0.1)  # the backoff over, the right password works, and clears bob's count
    assert attempt(gateway, "bob", "bob-secret", source)[0]
    assert attempt(gateway, "bob", "wrong-after", source)[1] < 0.3


def test_unknown_names_are_throttled_like_known_ones(gateway: RunningGateway) -> None:
    assert attempt(gateway, "bob", "bob-secret", "127.0.0.4")[0]  # clears bob's count
    known = [attempt(gateway, "bob", f"w{n}", "127.0.0.4") for n in range(5)]
    unknown = [attempt(gateway, "nobody-here", f"w{n}", "127.0.0.5") for n in range(5)]
    for (_, k, _), (_, u, _) in zip(known[2:], unknown[2:], strict=True):
        assert abs(k - u) < 0.15, (known, unknown)
    assert unknown[4][1] >= 0.4
    ghost = wait_for_event(gateway, type="session.refused", who__claimed_user="nobody-here")
    assert "unknown user" in ghost["reason"]


def test_one_address_guessing_many_names_is_throttled_by_address(
    gateway: RunningGateway,
) -> None:
    source = "127.0.0.6"
    took = [attempt(gateway, f"spray-{n}", "Winter2026!", source)[1] for n in range(9)]
    assert max(took[:6]) < 0.3  # one failure per name: only the address counts
    assert took[6] >= 0.1 and took[8] >= 0.4


def test_backoff_is_exponential_capped_and_forgotten() -> None:
    now = [0.0]
    throttle = LoginThrottle(
        ThrottleRules(free=1, base=1.0, cap=8.0, forget=60.0),
        ThrottleRules(free=100, base=1.0, cap=8.0, forget=60.0),
        clock=lambda: now[0],
    )
    waits = []
    for _ in range(7):
        waits.append(throttle.failed("u", "a").wait)
    assert waits == [0.0, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert throttle.check("u", "other").wait == 8.0
    assert throttle.check("v", "a").wait == 0.0
    now[0] += 8.0
    assert throttle.check("u", "a").wait == 0.0
    now[0] += 60.0  # forgotten: the next failure is free again
    assert throttle.failed("u", "a").wait == 0.0
