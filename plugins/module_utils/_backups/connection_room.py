# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Room under the connection limits for the jobs of a parallel pg_dump or pg_restore.

Each job is a connection, and the server refuses a session beyond the ``CONNECTION LIMIT`` of the role it logs in
as (its sessions in every database count) or of the database it connects to. A run left to choose its jobs takes as
many as the limits leave room for, beside the sessions already open, with a warning saying which limit; given jobs
are used as they are (and fail with the server's ``too many connections`` when they do not fit).

A parallel pg_dump keeps the connection of the process that leads its jobs. A parallel pg_restore gives its own up
as the jobs connect, but the server counts it until its process has exited, and on a busy server the jobs came
first (``too many connections`` in one test run of three): it is counted too. A restore's jobs connect to a database
of their own (the swap's new database, the drill's scratch one), which has no limit while they run: only the role's
counts. Under a limit, each program of a restore starts once the sessions of the one before have exited far enough
to leave it room (``room_awaited``).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._pg.sessions import connections_left, room_awaited


class FittedJobs(NamedTuple):
    jobs: int
    fewer: str | None  # why fewer than the default, for a warning
    room: int | None  # connections the limits leave beside the sessions open; None where no limit is set
    limit: str | None  # the limit that leaves that room (``role shop_owner's CONNECTION LIMIT 3, with 1 session open``)


def opened_by(jobs: int) -> int:
    """The connections ``jobs`` jobs of pg_dump or pg_restore open at once: one per job, and the leader's (one job
    runs without a leader)."""
    return jobs + 1 if jobs > 1 else jobs


def fit_jobs(conn, jobs: int, program: str, what: str, this_database: bool, given: bool = False) -> FittedJobs:
    """At most ``jobs`` jobs of ``program`` (``the backup's pg_dump``) for the sessions of the role of ``conn`` (and
    of its database, with ``this_database``); all of them when ``given``. ``what`` names the runs that need the limit
    raised (``backups``)."""
    left = connections_left(conn, this_database)
    if left is None:
        return FittedJobs(jobs, None, None, None)
    room, limit = left
    if opened_by(jobs) <= room or given:
        return FittedJobs(jobs, None, room, limit)
    fitting = max([n for n in range(1, jobs) if opened_by(n) <= room] or [1])
    return FittedJobs(fitting, "%s takes %d job%s, not %d: %d jobs open %d connections, and %s, leaves room for %d "
                      "more; give jobs to choose, or raise the limit for parallel %s"
                      % (program, fitting, "" if fitting == 1 else "s", jobs, jobs, opened_by(jobs), limit,
                         max(room, 0), what), room, limit)


def sessions_settled(admin, fitted: FittedJobs, at_least: int = 0) -> Callable[[], None]:
    """What a restore on ``admin`` waits for before each of its programs connects: under the role's limit, room for
    the connections its jobs open at once, or ``at_least`` (but no more than it left before the restore:
    ``fitted.room``; given jobs may need more), as the sessions of the one before exit (``room_awaited``); nothing
    where no limit is set."""
    if fitted.room is None:
        return lambda: None
    return room_awaited(admin, min(max(opened_by(fitted.jobs), at_least), fitted.room), this_database=False)


def in_place_settled(conn, watched: bool, purpose: str) -> Callable[[], None]:
    """An in-place restore (``purpose``) on ``conn`` runs its program on a session of its own, beside the run's,
    and with ``watched`` one more session watches its lock waits: refused where the role's or the database's limit
    leaves no room for them. Returns what it waits for before the program connects, as ``sessions_settled``, which
    leaves no transaction of ``conn`` open."""
    left = connections_left(conn)
    if left is None:
        return lambda: None
    room, limit = left
    needed = 2 if watched else 1
    if room < needed:
        raise PhoenixError("%s runs its program (pg_restore or psql) on a session of its own%s, beside the run's, and %s, "
                           "leaves room for %d more; raise the limit%s; nothing was written"
                           % (purpose, ", and watches its lock waits on one more" if watched else "", limit, max(room, 0),
                              ", or set lock_timeout=0 (the restore then waits for a lock without end, unwatched)"
                              if watched else ""))
    awaited = room_awaited(conn, needed, this_database=True)

    def settled() -> None:
        awaited()
        conn.rollback()
    return settled
