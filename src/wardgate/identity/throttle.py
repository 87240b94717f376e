"""Failed sign-ins slow down whoever makes them: per user name and per source address.

Each key (the user name a client claims, the host it connects from) counts its failures. The
first ``free`` failures cost nothing (a typo); each one after that starts a backoff of
``base * 2**k`` seconds, capped at ``cap``. A key with no failure for ``forget`` seconds starts
over, and a successful sign-in clears its user name (not its address: a valid account must not
let its holder reset the address that is guessing other people's passwords).

While either key of an attempt is in backoff the attempt is refused **without looking at the
password**, a correct one included: checking it would turn every parallel connection into one
more guess, and would tell the guesser when it had found the password. The refusal (and the
answer to a failure) is held until the backoff ends, up to ``hold`` seconds, so that a client
retrying in a loop is paced by the gateway instead of spinning. Unknown user names are throttled
exactly as known ones (they go through the same decoy exchange), so the backoff tells nothing
about which names exist.

Counters live in memory, per listener, bounded to ``max_keys`` (the stalest are dropped first):
a restart forgets them, and replicas count apart. Sans-io: the clock is passed in.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from wardgate.config import LoginThrottleSettings, ThrottleKey

THROTTLED_HINT = "too many failed sign-ins for this user or from this address; wait and retry"


@dataclass(frozen=True)
class ThrottleRules:
    """For one kind of key (user names or addresses)."""

    free: int = 5
    base: float = 1.0
    cap: float = 60.0
    forget: float = 900.0


@dataclass
class _Count:
    failures: int = 0
    last: float = 0.0
    until: float = 0.0


@dataclass(frozen=True)
class Backoff:
    """``wait``: seconds of backoff left (0: go on); ``reason`` for the audit."""

    wait: float = 0.0
    reason: str = ""


class LoginThrottle:
    def __init__(
        self,
        user: ThrottleRules,
        address: ThrottleRules,
        *,
        enabled: bool = True,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rules = {"user": user, "address": address}
        self.enabled = enabled
        self.max_keys = max_keys
        self._clock = clock
        self._counts: OrderedDict[tuple[str, str], _Count] = OrderedDict()

    def _get(self, key: tuple[str, str], now: float) -> _Count | None:
        count = self._counts.get(key)
        if count is not None and now - count.last >= self.rules[key[0]].forget:
            del self._counts[key]
            return None
        return count

    def check(self, user: str, address: str) -> Backoff:
        """Before the password is asked for: may this attempt be checked at all?"""
        if not self.enabled:
            return Backoff()
        now = self._clock()
        worst = Backoff()
        for key in (("user", user), ("address", address)):
            count = self._get(key, now)
            if count is not None and count.until - now > worst.wait:
                worst = Backoff(
                    count.until - now,
                    f"throttled: {count.failures} failed sign-ins for {key[0]} {key[1]!r};"
                    f" refused without checking the password for {count.until - now:.1f} s more",
                )
        return worst

    def failed(self, user: str, address: str) -> Backoff:
        """After a failed sign-in: the backoff it starts (the longer of the two keys')."""
        if not self.enabled:
            return Backoff()
        now = self._clock()
        worst = Backoff()
        for key in (("user", user), ("address", address)):
            rules = self.rules[key[0]]
            count = self._get(key, now) or _Count()
            count.failures += 1
            count.last = now
            excess = count.failures - rules.free
            delay = min(rules.cap, rules.base * 2 ** (excess - 1)) if excess > 0 else 0.0
            count.until = max(count.until, now + delay)
            self._counts[key] = count
            self._counts.move_to_end(key)
            if delay > worst.wait:
                worst = Backoff(
                    delay,
                    f"throttled: {count.failures} failed sign-ins for {key[0]} {key[1]!r};"
                    f" backoff {delay:.1f} s",
                )
        while len(self._counts) > self.max_keys:
            self._counts.popitem(last=False)
        return worst

    def succeeded(self, user: str) -> None:
        self._counts.pop(("user", user), None)


def client_host(client_addr: str) -> str:
    """``127.0.0.1`` from ``127.0.0.1:54321``, ``::1`` from ``::1:54321``."""
    return client_addr.rsplit(":", 1)[0] if ":" in client_addr else client_addr


def login_throttle(settings: LoginThrottleSettings) -> LoginThrottle:
    def rules(key: ThrottleKey) -> ThrottleRules:
        return ThrottleRules(key.free, key.base, key.cap, key.forget)

    return LoginThrottle(rules(settings.user), rules(settings.address), enabled=settings.enabled)
