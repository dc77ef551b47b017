# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A bound on the lock waits of a program's session (pg_restore, psql), which sets its own ``lock_timeout = 0``.

A restore over a live database drops each table first, and waits for every session that holds one: a console
left idle in a transaction after a SELECT makes it wait without end, in the middle of its transaction, holding
the tables it already dropped against every reader. The watch looks at the program's session (told by its
application name) from a session of its own, and stops the statement that has waited for one lock for longer than
the timeout, remembering what it waited for and who held it. The program then fails, and its single transaction
is rolled back.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any

from ansible_collections.phoenix.platform.plugins.module_utils._core.connection import open_session
from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._pg.sessions import LOCKED_TABLE, SESSION_IN_WORDS

try:
    import psycopg
    from psycopg import sql
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass

POLL_SECONDS = 0.5
# The locks the watched sessions wait for: which lock (to tell a new wait from a long one), on what, held by whom.
# pg_blocking_pids gives 0 for a prepared transaction.
WAITING = (
    "SELECT l.pid, concat_ws(' ', l.locktype, l.database, l.relation, l.transactionid, l.virtualxid, l.mode), "
    "coalesce('table ' || " + LOCKED_TABLE + ", 'a row'), "
    "(SELECT string_agg(CASE WHEN b = 0 THEN 'a prepared transaction' ELSE coalesce((SELECT " + SESSION_IN_WORDS
    + " FROM pg_stat_activity a WHERE a.pid = b), format('process %s', b)) END, ', ' ORDER BY b) "
    "FROM unnest(pg_blocking_pids(l.pid)) b) "
    "FROM pg_locks l JOIN pg_stat_activity s ON s.pid = l.pid WHERE s.application_name = {application} "
    "AND NOT l.granted")


class LockWatch:
    """Within ``with``: the sessions named ``application`` wait ``timeout_seconds`` (0: no end) at most for a lock.
    Then ``stopped`` says what the stopped one waited for and who held it (``table public.orders, held by session
    42 of shop (psql)``); it is None while none was stopped."""

    def __init__(self, conninfo: str, timeout_seconds: int, purpose: str) -> None:
        self.conninfo, self.timeout_seconds, self.purpose = conninfo, timeout_seconds, purpose
        self.application = "phoenix.platform.%s.%s" % (purpose, secrets.token_hex(4))
        self.stopped: str | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> "LockWatch":
        if self.timeout_seconds:
            # Connected before the program starts, not in the thread: a watch that cannot connect stops the program
            # from starting, rather than letting it run unwatched (the thread's failures are silent, see _watch).
            try:
                self._conn = open_session(self.conninfo, autocommit=True)
            except psycopg.OperationalError as exc:
                raise PhoenixError(
                    "the %s's lock watch, which keeps lock_timeout=%d s, could not connect (%s), so the %s did not "
                    "start and the database is as it was; run it again once a connection is free, or with "
                    "lock_timeout=0 (no watch, one session less)"
                    % (self.purpose, self.timeout_seconds, " ".join(str(exc).split()), self.purpose)) from None
            self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join()

    def _watch(self) -> None:
        conn = self._conn
        while conn is not None:
            try:
                self._watch_until_done(conn)
                return
            except psycopg.Error:
                if not conn.closed:  # a query failed on a live session: a new one would fare no better
                    return
            finally:
                conn.close()
            # Its session ended (an idle-session killer, a DBA's pg_terminate_backend): watch on from a new one. If
            # the server itself is gone, the program's own error tells, and the watch ends with it.
            conn = self._reconnected()

    def _reconnected(self):
        """A new session for the watch, tried every POLL_SECONDS until the program ends (then None)."""
        while not self._done.wait(POLL_SECONDS):
            try:
                return open_session(self.conninfo, autocommit=True)
            except (psycopg.Error, PhoenixError):  # no connection free yet, say: try again
                continue
        return None

    def _watch_until_done(self, conn) -> None:
        waiting_since: dict[tuple[int, str], float] = {}
        # run without parameters: the format() patterns of WAITING hold % signs
        waiting = sql.SQL(WAITING).format(application=sql.Literal(self.application))
        while not self._done.wait(POLL_SECONDS):
            now, seen = time.monotonic(), {}
            for pid, lock, what, holders in conn.execute(waiting).fetchall():
                seen[(pid, lock)] = waiting_since.get((pid, lock), now)
                if now - seen[(pid, lock)] >= self.timeout_seconds:
                    self.stopped = "%s, held by %s" % (what, holders or "a session that has ended since")
                    conn.execute(sql.SQL("SELECT pg_cancel_backend(%s)"), [pid])
                    return
            waiting_since = seen
