"""SQL through the gateway's PostgreSQL listener, signed in as the agent.

One idle session per database target is reused, so the gateway's session (its recording, its
revocation watch) spans the assistant's calls. A statement the gateway holds for approval keeps
its session: it becomes a job, and the next call opens a new one.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any

import psycopg

from wardgate.mcp.errors import explain_sql
from wardgate.mcp.jobs import Jobs
from wardgate.mcp.settings import Settings

APPROVAL_ID = re.compile(r"\bapr_[0-9A-Za-z]+\b")

Conn = psycopg.AsyncConnection[Any]


@dataclass(frozen=True)
class Rows:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    status: str
    notices: list[str]

    def text(self, max_rows: int) -> str:
        shown = self.rows[:max_rows]
        out: dict[str, Any] = {"columns": self.columns, "rows": [list(r) for r in shown]}
        out["row_count"] = len(self.rows)
        if len(self.rows) > max_rows:
            out["truncated"] = (
                f"only the first {max_rows} of {len(self.rows)} rows are shown; "
                "add a WHERE or LIMIT to see others"
            )
        if self.status:
            out["status"] = self.status
        if self.notices:
            out["notices"] = self.notices
        return json.dumps(out, default=str, ensure_ascii=False)


@dataclass(frozen=True)
class Pending:
    approval_id: str
    notice: str

    def text(self) -> str:
        return (
            f"pending approval: {self.approval_id} — ask an approver to run "
            f"`wardgate approvals approve {self.approval_id} --reason '...'`; call "
            f"approval_status('{self.approval_id}') to get the result. The gateway said: "
            f"{self.notice}"
        )


class SqlClient:
    def __init__(self, settings: Settings, jobs: Jobs) -> None:
        self._settings = settings
        self._jobs = jobs
        self._idle: dict[str, Conn] = {}

    async def run(self, target: str, statement: str) -> Rows | Pending:
        conn = self._idle.pop(target, None)
        if conn is None or conn.closed:
            conn = await self._connect(target)
        notices: list[str] = []
        held = asyncio.Event()

        def on_notice(diag: psycopg.errors.Diagnostic) -> None:
            text = diag.message_primary or ""
            notices.append(text)
            if APPROVAL_ID.search(text):
                held.set()

        conn.add_notice_handler(on_notice)
        task = asyncio.create_task(self._execute(conn, statement, notices))
        waiter = asyncio.create_task(held.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            notice = next(n for n in notices if APPROVAL_ID.search(n))
            match = APPROVAL_ID.search(notice)
            assert match is not None
            self._jobs.add(match.group(0), asyncio.create_task(self._collect(conn, task)))
            return Pending(match.group(0), notice)
        waiter.cancel()
        conn.remove_notice_handler(on_notice)
        try:
            rows = task.result()
        except BaseException:
            await self._release(target, conn)
            raise
        await self._release(target, conn)
        return rows

    async def _collect(self, conn: Conn, task: asyncio.Task[Rows]) -> str:
        try:
            rows = await task
        finally:
            await conn.close()
        return rows.text(self._settings.max_rows)

    async def _execute(self, conn: Conn, statement: str, notices: list[str]) -> Rows:
        try:
            async with conn.cursor() as cur:
                await cur.execute(statement.encode())
                columns = [c.name for c in cur.description or ()]
                rows = await cur.fetchall() if cur.description else []
                return Rows(columns, rows, cur.statusmessage or "", notices)
        except psycopg.Error as exc:
            raise explain_sql(exc, self._settings.user) from None

    async def _connect(self, target: str) -> Conn:
        s = self._settings
        try:
            return await psycopg.AsyncConnection.connect(
                host=s.gateway_host,
                port=s.pg_port,
                user=s.user,
                password=s.credential,
                dbname=target,
                sslmode=s.sslmode,
                sslrootcert=str(s.ca) if s.ca else _system_roots(s.sslmode),
                connect_timeout=10,
                application_name="wardgate-mcp",
                autocommit=True,
            )
        except psycopg.Error as exc:
            raise explain_sql(exc, s.user) from None

    async def _release(self, target: str, conn: Conn) -> None:
        usable = (
            not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        )
        if usable and target not in self._idle:
            self._idle[target] = conn
        else:
            await conn.close()

    async def close(self) -> None:
        for conn in self._idle.values():
            await conn.close()
        self._idle.clear()


def _system_roots(sslmode: str) -> str | None:
    """libpq's own roots where it verifies; none for a weaker mode (it refuses the pair)."""
    return "system" if sslmode.startswith("verify") else None
