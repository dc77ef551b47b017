# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A standby (a server in recovery, a read replica): what it is, and when its replay cancelled a query.

A standby replays its primary's changes and takes no writes. Where a change it replays would remove rows or a table
that a query of its own still reads, it waits ``max_standby_streaming_delay`` at most, then cancels the query (a
"conflict with recovery", counted in ``pg_stat_database_conflicts``).
"""

from __future__ import annotations

try:
    from psycopg import sql
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass


def on_standby(conn) -> bool:
    """Whether the server is a standby: it replays its primary's changes and takes no writes of its own."""
    return conn.execute(sql.SQL("SELECT pg_is_in_recovery()")).fetchone()[0]


CONFLICT_WITH_RECOVERY = "conflict with recovery"  # in the server's message when a standby's replay cancelled a query
# what to do then
REPLAY_CANCELS = ("the server is a standby: its replay cancels a query that holds back its primary's changes for "
                  "longer than max_standby_streaming_delay. Run this again; for long reads, such as a backup, raise "
                  "max_standby_streaming_delay on the standby (-1 waits for them) and set hot_standby_feedback = on, "
                  "or run them on the primary")


def with_standby_advice(message: str) -> str:
    """``message`` (the server's), with what to do when a standby's replay cancelled the query."""
    return message + " (%s)" % REPLAY_CANCELS if CONFLICT_WITH_RECOVERY in message else message


def replay_cancellations(conn) -> int:
    """How many queries of this database a standby's replay has cancelled since the statistics were reset."""
    return conn.execute(sql.SQL(
        "SELECT confl_tablespace + confl_lock + confl_snapshot + confl_bufferpin + confl_deadlock "
        "FROM pg_stat_database_conflicts WHERE datname = current_database()")).fetchone()[0]
