# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Advisory locks so overlapping scheduled runs wait or fail clearly, never interleave; and a bound on every other
lock a run's transaction waits for (a row an application session or a prepared transaction holds), so a run fails
clearly instead of waiting without end, holding its advisory lock against the next scheduled run."""

from __future__ import annotations

import contextlib
import hashlib
import re
from typing import Iterator

from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import LockBusyError

try:
    import psycopg
    from psycopg import sql
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass


def lock_key(scope: str) -> int:
    """A stable signed 64-bit key for a scope such as ``schema`` or ``world:UC_TESTING``."""
    digest = hashlib.sha256(("phoenix:" + scope).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def acquire_transaction_lock(conn, scope: str, timeout_seconds: int, function: str = "pg_advisory_xact_lock") -> None:
    """Take the scope's lock for the current transaction, waiting up to ``timeout_seconds``; every later lock wait of
    the transaction waits as long at most (psycopg.errors.LockNotAvailable, which ``lock_wait_message`` words)."""
    bound_lock_waits(conn, timeout_seconds)
    try:
        conn.execute(sql.SQL("SELECT {}(%s)").format(sql.Identifier(function)), [lock_key(scope)])
    except psycopg.errors.LockNotAvailable:
        raise LockBusyError(
            "another Phoenix run holds the '%s' lock and did not finish within %ss; "
            "wait for it or raise lock_timeout" % (scope, timeout_seconds)
        ) from None


def bound_lock_waits(conn, timeout_seconds: int) -> None:
    """Every lock wait of the current transaction ends after ``timeout_seconds`` (0: no end) with
    psycopg.errors.LockNotAvailable. (A session's own bound is set as it opens: ``connection.open_session``.)"""
    conn.execute(sql.SQL("SELECT set_config('lock_timeout', %s, true)"), [f"{int(timeout_seconds)}s"])


@contextlib.contextmanager
def session_lock(conn, scope: str, timeout_seconds: int) -> Iterator[None]:
    """The scope's lock for a run that spans several transactions (released at the end, or when the
    connection goes)."""
    with conn.transaction():
        acquire_transaction_lock(conn, scope, timeout_seconds, function="pg_advisory_lock")
    try:
        yield
    finally:
        try:
            conn.rollback()
            conn.execute(sql.SQL("SELECT pg_advisory_unlock(%s)"), [lock_key(scope)])
            conn.commit()
        except psycopg.OperationalError:
            if not conn.closed:
                raise
            # the connection went, and its lock with it: the error that ended the run, if any, is the one to give


# The context of an error raised while waiting for a row: "while deleting tuple (0,1) in relation "Chat"" (the
# table's name, without its schema or quoting)
ROW_WAIT = re.compile(r'tuple \(\d+,\d+\) in relation "(.*)"')


def waited_relation(exc) -> str | None:
    """The name of the table whose row the statement of ``exc`` (a lock timeout) waited for; None for a wait on a
    whole table, whose error names none."""
    match = ROW_WAIT.search(exc.diag.context or "")
    return match.group(1) if match else None


def lock_wait_message(where: str, timeout_seconds: int | None, relation: str | None, holders: str) -> str:
    """A lock timeout in words: what the run waited for, on whose account, and what to do."""
    waited = "lock_timeout=%d s" % timeout_seconds if timeout_seconds is not None else "the lock_timeout it runs with"
    what = 'a row of table "%s"' % relation if relation else "a table"
    return ("the run waited %s for a lock on %s in %s and gave up; its transaction was rolled back, so nothing was "
            "written. %s. Run it again once that transaction ends, or raise lock_timeout" % (
                waited, what, where, "Held now by: " + holders if holders else "No one holds it any more"))
