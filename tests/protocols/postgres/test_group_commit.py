"""``GroupCommit`` with a commit that blocks: bytes wait for a commit that started after them."""

from __future__ import annotations

import asyncio
import functools
import threading

from wardgate.core.pipeline import Addon, Pipeline
from wardgate.protocols.release import GroupCommit


class SlowCommit(Addon):
    """Counts what was recorded; each commit takes the count, then waits until let go."""

    name = "slow"
    commit_blocks = True

    def __init__(self) -> None:
        self.recorded = 0
        self.durable = 0
        self.fail = False
        self.gate = threading.Semaphore(0)
        self.started = threading.Event()

    def commit(self) -> None:
        taken = self.recorded
        self.started.set()
        self.gate.acquire()
        if self.fail:
            raise OSError("disk full")
        self.durable = taken


class Client:
    def __init__(self, addon: SlowCommit) -> None:
        self.addon = addon
        self.seen: list[tuple[bytes, int]] = []
        self.ended: list[str] = []

    def write_client(self, data: bytes) -> None:
        self.seen.append((data, self.addon.durable))

    def terminate(self, sqlstate: str, message: str, reason: str = "") -> None:
        self.ended.append(sqlstate)


async def _until(condition: threading.Event | None = None, check: object = None) -> None:
    for _ in range(500):
        if (condition is not None and condition.is_set()) or (callable(check) and check()):
            return
        await asyncio.sleep(0.005)
    raise AssertionError("timed out")


def test_bytes_sent_during_a_commit_wait_for_the_next() -> None:
    async def scenario() -> None:
        addon = SlowCommit()
        release = GroupCommit(Pipeline([addon]))
        a, b = Client(addon), Client(addon)
        addon.recorded = 1
        release.send(a, b"first")
        await _until(addon.started)  # commit 1 took event 1 and is in flight
        addon.started.clear()
        addon.recorded = 2
        release.send(b, b"second")  # its event is not in commit 1
        addon.gate.release()
        await _until(check=lambda: a.seen)
        assert a.seen == [(b"first", 1)] and not b.seen
        await _until(addon.started)  # commit 2 started at once, without the loop
        addon.gate.release()
        await _until(check=lambda: b.seen)
        assert b.seen == [(b"second", 2)]
        release.close()

    asyncio.run(scenario())


def test_a_failed_commit_ends_the_sessions_it_covered() -> None:
    async def scenario() -> None:
        addon = SlowCommit()
        release = GroupCommit(Pipeline([addon]))
        a = Client(addon)
        addon.recorded, addon.fail = 1, True
        release.send(a, b"first")
        release.send(a, b"more")
        addon.gate.release()
        await _until(check=lambda: a.ended)
        assert a.ended == ["58030"] and not a.seen
        addon.fail = False
        addon.gate.release()  # a commit may be asked for again; let it through
        release.close()

    asyncio.run(scenario())


def test_a_marked_session_waits_for_its_mark_only_and_the_commit_starts_at_the_mark() -> None:
    async def scenario() -> None:
        addon = SlowCommit()
        release = GroupCommit(Pipeline([addon]))
        a = Client(addon)
        records = release.records(a)
        assert records is not None
        addon.recorded = 1  # the statement's record
        records.mark()
        await _until(addon.started)  # the commit started at the mark, before any byte came
        addon.started.clear()
        addon.recorded = 2  # the summary, recorded while the commit runs: nothing waits for it
        release.send(a, b"result")
        assert not a.seen
        addon.gate.release()
        await _until(check=lambda: a.seen)
        assert a.seen == [(b"result", 1)]
        release.send(a, b"more")  # its mark is durable: written at once, no commit asked for
        assert a.seen[-1] == (b"more", 1) and not addon.started.is_set()
        records.forget()
        release.close()

    asyncio.run(scenario())


def test_an_action_runs_once_its_mark_is_durable_and_never_if_the_commit_fails() -> None:
    async def scenario() -> None:
        addon = SlowCommit()
        release = GroupCommit(Pipeline([addon]))
        a, b = Client(addon), Client(addon)
        ran: list[tuple[str, int]] = []
        for client, name in ((a, "a"), (b, "b")):
            records = release.records(client)
            assert records is not None
            addon.recorded += 1
            records.mark()
            records.then(functools.partial(lambda n: ran.append((n, addon.durable)), name))
        await _until(addon.started)
        addon.gate.release()  # the commit of both marks
        await _until(check=lambda: len(ran) == 2)
        assert ran == [("a", 2), ("b", 2)]

        addon.started.clear()
        records = release.records(a)
        assert records is not None
        addon.recorded, addon.fail = 3, True
        records.mark()
        records.then(lambda: ran.append(("late", addon.durable)))
        await _until(addon.started)
        addon.gate.release()
        await _until(check=lambda: a.ended)
        assert a.ended == ["58030"] and len(ran) == 2
        addon.fail = False
        addon.gate.release()
        release.close()

    asyncio.run(scenario())
