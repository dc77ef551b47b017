# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The other sessions in some databases, and which of them this role may end (a restore renames or drops databases;
maintenance ends idle sessions).

pg_terminate_backend (and ``DROP DATABASE ... WITH (FORCE)``, which uses it) refuses a role that is not a superuser
a superuser's session, a session of a role whose privileges it has not (unless it has those of
pg_signal_backend), and a process that runs as no role, autovacuum included. ``ALTER DATABASE ... RENAME`` and
a plain ``DROP DATABASE`` end autovacuum workers themselves: so sessions of a role are ended here, and the rest is
left to the server.
"""

from __future__ import annotations

import time
from typing import Callable

try:
    from psycopg import sql
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass

# Parallel workers end with their leader. Where this role may not see a session's details (pg_read_all_stats),
# its backend_type is null.
OTHER_SESSIONS = (
    "FROM pg_stat_activity a LEFT JOIN pg_roles r ON r.oid = a.usesysid WHERE a.datname = ANY(%s) "
    "AND a.pid <> pg_backend_pid() AND a.backend_type IS DISTINCT FROM 'parallel worker'")
SUPERUSER = "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user)"
TO_END = OTHER_SESSIONS + (" AND a.backend_type IS DISTINCT FROM 'autovacuum worker' AND (r.oid IS NOT NULL OR %s)"
                           % SUPERUSER)


def acting_role(conn) -> tuple[str, bool]:
    """The role ``conn`` acts as, and whether it is a superuser."""
    return conn.execute(sql.SQL("SELECT current_user, " + SUPERUSER)).fetchone()


# Whether this role may end session ``a`` (of role ``r``) with pg_terminate_backend
MAY_END = ("(%s OR (NOT r.rolsuper AND (pg_has_role(r.oid, 'USAGE') OR pg_has_role('pg_signal_backend', 'USAGE'))))"
           % SUPERUSER)
WHO = "SELECT coalesce(r.rolname, a.backend_type, 'a process of no role'), a.application_name "


# A role that logs in as one role and acts as another (``ALTER ROLE alice SET role = shop_owner``) may not end the
# sessions of the role it logged in as: the server asks the acting role's privileges. Such sessions are the run's own
# programs' (pg_restore, psql), which may still be exiting as it drops or renames their database, and the server's
# DROP and RENAME wait for them (up to 5 s each).
NOT_ITS_LOGIN = "r.rolname IS DISTINCT FROM session_user"


def end_sessions(admin, databases: list[str]) -> None:
    """End the sessions of a role in ``databases``; psycopg.errors.InsufficientPrivilege when one may not be (unless
    it is a session of the role this one logged in as, left to the server's wait)."""
    admin.execute(sql.SQL("SELECT pg_terminate_backend(a.pid) " + TO_END + " AND (%s OR %s)" % (MAY_END, NOT_ITS_LOGIN)),
                  [databases])


def sessions_it_may_not_end(admin, databases: list[str]) -> str:
    """The sessions in ``databases`` this role may not end, described (``1 session of postgres (metrics agent)``),
    or the empty string."""
    return described(admin.execute(sql.SQL(WHO + TO_END + " AND NOT " + MAY_END), [databases]).fetchall())


def other_sessions(admin, databases: list[str]) -> str:
    """Every other session in ``databases``, described, or the empty string."""
    return described(admin.execute(sql.SQL(WHO + OTHER_SESSIONS), [databases]).fetchall())


def described(sessions: list[tuple[str, str]]) -> str:
    """``(role, application)`` of some sessions, as words: ``2 sessions of postgres (metrics agent), shop_web``."""
    if not sessions:
        return ""
    named = sorted({"%s%s" % (who, " (%s)" % application if application else "") for who, application in sessions})
    return "%d session%s of %s" % (len(sessions), "" if len(sessions) == 1 else "s", ", ".join(named))


def prepared_transactions(admin, databases: list[str]) -> str:
    """The prepared transactions in ``databases``, described (``1 prepared transaction ('xa:17' of shop_web, since
    2026-12-05 10:00 UTC)``), or the empty string. No session holds one and no termination ends it: it holds its
    locks, and its database against renaming and dropping, until someone commits or rolls it back."""
    found = admin.execute(sql.SQL(
        "SELECT gid, owner, to_char(prepared AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') FROM pg_prepared_xacts "
        "WHERE database = ANY(%s) ORDER BY prepared, gid"), [databases]).fetchall()
    if not found:
        return ""
    return "%d prepared transaction%s (%s)" % (len(found), "" if len(found) == 1 else "s", ", ".join(
        "'%s' of %s, since %s UTC" % (gid.replace("'", "''"), owner, since) for gid, owner, since in found))


# What ends a prepared transaction: a session in its database, as its role or a superuser
END_PREPARED = "end each with COMMIT PREPARED or ROLLBACK PREPARED '<id>' in that database (as its role or a superuser)"


# Who holds a lock on a table of the current database: a session, or a prepared transaction (whose locks have no
# process: it is told by the lock on its own transaction id, in the same virtual transaction). {which} narrows it.
# The table a lock ``l`` of pg_locks is on, as format('%I.%I') names it
LOCKED_TABLE = ("(SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE c.oid = l.relation)")
# A session ``a`` of pg_stat_activity in words: session 4242 of shop (shop_web)
SESSION_IN_WORDS = ("format('session %s of %s', a.pid, a.usename) || coalesce(format(' (%s)', "
                    "nullif(a.application_name, '')), '')")
# Those that hold a table so that no one may even read it come first: the likeliest cause of a wait (a migration's
# lock, before an autovacuum worker's or a reader's on another table).
HOLDERS = (
    "SELECT held, holder FROM (SELECT " + LOCKED_TABLE + " AS held, coalesce("
    "(SELECT " + SESSION_IN_WORDS + " FROM pg_stat_activity a WHERE a.pid = l.pid), "
    "(SELECT format('prepared transaction %L', p.gid) FROM pg_prepared_xacts p JOIN pg_locks x "
    "ON x.locktype = 'transactionid' AND x.transactionid = p.transaction "
    "WHERE x.virtualtransaction = l.virtualtransaction), 'another process') AS holder, "
    "l.mode = 'AccessExclusiveLock' AS excludes_readers "
    "FROM pg_locks l WHERE l.locktype = 'relation' AND l.granted AND {which} "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND l.pid IS DISTINCT FROM pg_backend_pid()) found "
    "GROUP BY held, holder ORDER BY bool_or(excludes_readers) DESC, held, holder")
NAMED_AT_MOST = 5


def exclusive_holders(conn) -> str:
    """The tables of ``conn``'s database that someone holds so that no one may read them, each with who holds it
    (``public.orders by session 4242 of shop_web (nightly migration)``), or the empty string."""
    return _holders(conn, sql.SQL("l.mode = 'AccessExclusiveLock'"))


def lock_holders(conn, relation: str | None) -> str:
    """Who may hold the lock a statement of ``conn``'s database waited for, described as ``exclusive_holders``
    does, or the empty string. With ``relation`` (a table's name, as an error's context gives it, without its
    schema) the lock was on a row of it: held by a transaction that wrote or locked rows there, so one holding more
    than ACCESS SHARE. Without, any lock on any table may be the one."""
    if relation is None:
        return _holders(conn, sql.SQL("true"))
    return _holders(conn, sql.SQL("l.mode <> 'AccessShareLock' AND l.relation IN "
                                  "(SELECT oid FROM pg_class WHERE relname = {})").format(sql.Literal(relation)))


def table_holders(conn, schema: str, table: str) -> str:
    """Who holds any lock on table ``schema.table``, described as ``exclusive_holders`` does, or the empty string."""
    return _holders(conn, sql.SQL("l.relation = (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = "
                                  "c.relnamespace WHERE n.nspname = {} AND c.relname = {})").format(
        sql.Literal(schema), sql.Literal(table)))


def _holders(conn, which: sql.Composable) -> str:
    # HOLDERS is run without parameters: its format() patterns hold % signs
    held = ["%s by %s" % found for found in conn.execute(sql.SQL(HOLDERS).format(which=which)).fetchall()]
    more = len(held) - NAMED_AT_MOST
    return ", ".join(held[:NAMED_AT_MOST]) + (" and %d more" % more if more > 0 else "")


# The connections a role may still open to its database, by the limits the server checks as a session starts
# (CONNECTION LIMIT of the role it logged in as, and of the database; a superuser is held to neither). The server
# counts sessions and autovacuum workers, not parallel workers; a session whose type this role may not see is
# counted too. Each: (limit, what it is, the sessions it counts).
CONNECTION_LIMITS = (
    "SELECT r.rolsuper, r.rolconnlimit, (SELECT count(*) FROM pg_stat_activity a WHERE a.usesysid = r.oid "
    "AND a.backend_type IS DISTINCT FROM 'parallel worker'), d.datconnlimit, (SELECT count(*) FROM pg_stat_activity a "
    "WHERE a.datid = d.oid AND a.backend_type IS DISTINCT FROM 'parallel worker') "
    "FROM pg_roles r, pg_database d WHERE r.rolname = session_user AND d.datname = current_database()")


def connections_left(conn, this_database: bool = True) -> tuple[int, str] | None:
    """How many more connections the role of ``conn`` may open (to its database, with ``this_database``) now, and the
    limit that says so (``role shop_owner's CONNECTION LIMIT 3, with 1 session open``); None where no limit is set
    for them."""
    conn.execute(sql.SQL("SELECT pg_stat_clear_snapshot()"))  # within a transaction too, the sessions as they are now
    superuser, role_limit, role_sessions, database_limit, database_sessions = conn.execute(
        sql.SQL(CONNECTION_LIMITS)).fetchone()
    if superuser:
        return None
    held = [("role %s" % conn.info.user, role_limit, role_sessions)]
    if this_database:
        held.append(("database %s" % conn.info.dbname, database_limit, database_sessions))
    limits = [(limit - sessions, "%s's CONNECTION LIMIT %d, with %d session%s open"
               % (holder, limit, sessions, "" if sessions == 1 else "s"))
              for holder, limit, sessions in held if limit >= 0]
    return min(limits) if limits else None


SESSION_EXIT_WAIT = 5  # seconds


def room_awaited(conn, needed: int, this_database: bool) -> Callable[[], None]:
    """A wait, at most SESSION_EXIT_WAIT seconds, until the limits of the role of ``conn`` (and of its database, with
    ``this_database``) leave room for ``needed`` more connections. The server counts a session against them until
    its process has exited, some time after its client closed it, and a run's next program connects at once: on a
    busy server the sessions of the one before could still be counted, too many for a limit the jobs were fitted
    to."""
    def awaited() -> None:
        deadline = time.monotonic() + SESSION_EXIT_WAIT
        while True:
            left = connections_left(conn, this_database)
            if left is None or left[0] >= needed or time.monotonic() >= deadline:
                return
            time.sleep(0.02)
    return awaited
