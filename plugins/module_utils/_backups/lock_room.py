# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Room in the server's lock table for an in-place restore, which runs in one transaction.

A transaction keeps a lock on every table, index, sequence, type and constraint it drops or creates until it ends.
The server's lock table is shared by all sessions and holds about max_locks_per_transaction × (max_connections +
max_prepared_transactions + its own background processes) locks, and somewhat more from spare shared memory (1.65×
with the default settings of PostgreSQL 15). An in-place restore drops the database's objects and creates
the dump's in one transaction, about 14 locks for a table with a key: on a database of thousands of tables (a schema
per tenant, say) it ran out after its safety backup, with the server's ``out of shared memory``. pg_restore
--single-transaction fails the same way; a swap restores each table in a transaction of its own.

Before anything is written, the locks the restore takes at least (the database's tables that the dump holds, which it
drops, with their indexes, TOAST tables, row types, constraints and defaults; and the relations the dump creates)
are set against more room than the server has: a restore that cannot fit is refused. Tables the dump does not hold
(made since the backup) are left as they are, and take none. Between that and what does fit, the failure names both ways out.

A backup's pg_dump holds a lock on every table it dumps (and a parallel one a second, in the job that dumps it)
until it ends: where that does not fit, its failure names the ways out too. A backup left to choose its jobs takes
one where the database has more tables than the server's lock table is sized for (``jobs_that_fit``): one job is
slower, but it holds half the locks.
"""

from __future__ import annotations

import re
from typing import Iterable

from ansible_collections.phoenix.platform.plugins.module_utils._backups.privileges import DUMPED_RELATIONS
from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError

try:
    from psycopg import sql
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass

# the room counted on: more than spare shared memory gave (1.65× the nominal room of 7808 locks, 2.2× of 320)
SPARE_TIMES, SPARE_LOCKS = 2, 1000
# a table of the dump, which --clean drops by name when the database has it (names with spaces are left out: the
# list does not quote them, so they cannot be told apart)
TABLE_ENTRY = re.compile(r"^\d+; \d+ \d+ TABLE (\S+) (\S+) \S+$")
# pg_restore --list entries that create a relation (a CONSTRAINT entry is a key or unique constraint: an index)
CREATES_RELATION = re.compile(r"^\d+; \d+ \d+ (?:TABLE (?!DATA )|INDEX (?!ATTACH )|SEQUENCE (?!SET |OWNED BY )"
                              r"|VIEW |MATERIALIZED VIEW (?!DATA )|CONSTRAINT )")
WAYS_OUT = ("use mode=swap, which restores each table in a transaction of its own, or raise max_locks_per_transaction "
            "(a server restart)")
# what the server says when its lock table is full
LOCK_TABLE_FULL = "increase max_locks_per_transaction"
# what a parallel pg_dump's job says when it cannot lock a table, whatever the server's reason (it leaves that out)
JOB_LOCK_REFUSED = "could not obtain lock on relation"


def require_lock_room(conn, toc: Iterable[str], purpose: str) -> None:
    """Refuse an in-place restore (``purpose``) of the dump whose restored entries are ``toc`` when it takes more
    locks at least than the server's lock table holds (see above)."""
    toc = list(toc)
    named = [entry.groups() for entry in map(TABLE_ENTRY.match, toc) if entry]
    dropped = conn.execute(sql.SQL(
        "WITH r AS (SELECT c.oid, c.reltype, c.reltoastrelid FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace JOIN unnest(%s::text[], %s::text[]) "
        "d(nspname, relname) ON d.nspname = n.nspname AND d.relname = c.relname WHERE c.relkind IN ('r', 'p')) "
        "SELECT (SELECT count(*) + count(*) FILTER (WHERE reltype <> 0) + 2 * count(*) FILTER (WHERE reltoastrelid <> 0) "
        "FROM r) + (SELECT count(*) FROM pg_catalog.pg_index WHERE indrelid IN (SELECT oid FROM r)) "
        "+ (SELECT count(*) FROM pg_catalog.pg_constraint WHERE conrelid IN (SELECT oid FROM r)) "
        "+ (SELECT count(*) FROM pg_catalog.pg_attrdef WHERE adrelid IN (SELECT oid FROM r))"),
        [[schema for schema, _name in named], [name for _schema, name in named]]).fetchone()[0]
    per_session, sessions = lock_table_room(conn)
    created = sum(1 for line in toc if CREATES_RELATION.match(line))
    if dropped + created > SPARE_TIMES * per_session * sessions + SPARE_LOCKS:
        raise PhoenixError(
            "%s drops the database's objects and creates the dump's in one transaction, which holds a lock on each "
            "until it ends: %d locks at least (%d for the database's objects it drops, %d for the dump's tables, "
            "indexes, sequences and views), and the server's lock table holds about %d (max_locks_per_transaction %d × %d connections "
            "and processes); %s; nothing was written"
            % (purpose, dropped + created, dropped, created, per_session * sessions, per_session, sessions, WAYS_OUT))


def jobs_that_fit(conn, jobs: int) -> tuple[int, str | None]:
    """The jobs of a backup's pg_dump left to choose them, ``jobs`` by default: 1, and why, where the database has
    more tables than the server's lock table is sized for. The lock table is sized for two holders of each lock, so
    below that a parallel pg_dump's two locks on a table fit as one job's one does; above it, only spare shared
    memory holds them, and one job needs half as much of it (with the default settings of PostgreSQL 15, 9000
    tables dumped with one job and failed with two)."""
    if jobs == 1:
        return 1, None
    tables = conn.execute(sql.SQL("SELECT count(*) " + DUMPED_RELATIONS + "AND c.relkind IN ('r', 'p')")).fetchone()[0]
    per_session, sessions = lock_table_room(conn)
    if tables <= per_session * sessions:
        return jobs, None
    return 1, (
        "the backup's pg_dump takes 1 job, not %d: pg_dump locks each of the database's %d tables until it ends, "
        "more than the server's lock table is sized for (about %d: max_locks_per_transaction %d × %d connections "
        "and processes), and a parallel one locks each a second time, in the job that dumps its rows, which the "
        "room above that is less likely to hold; give jobs to choose, or raise max_locks_per_transaction (a server "
        "restart) for parallel backups" % (jobs, tables, per_session * sessions, per_session, sessions))


def lock_table_room(conn) -> tuple[int, int]:
    """The server's nominal lock table: max_locks_per_transaction, and the sessions and processes it is sized for."""
    return conn.execute(sql.SQL(
        "SELECT current_setting('max_locks_per_transaction')::int, current_setting('max_connections')::int "
        "+ current_setting('max_prepared_transactions')::int + current_setting('autovacuum_max_workers')::int + 1 "
        "+ current_setting('max_worker_processes')::int + current_setting('max_wal_senders')::int")).fetchone()


def explained(message: str) -> str:
    """A failed in-place restore's ``message``, with the ways out when the server's lock table was full."""
    return _when_full(message, "the restore's one transaction locks every object it drops or creates", WAYS_OUT)


def dump_explained(message: str, jobs: int) -> str:
    """A failed backup's ``message``, with the ways out when the server's lock table was full: a parallel pg_dump
    locks each table twice, in its leader and in the job that dumps it, and each holds its locks until it ends."""
    if jobs > 1 and JOB_LOCK_REFUSED in message:
        return ("%s (a job of a parallel pg_dump says so too when the server's lock table was full, as it locks each "
                "table a second time: back up with jobs=1, or raise max_locks_per_transaction (a server restart); or, "
                "if someone asked for an ACCESS EXCLUSIVE lock on that table, such as a migration, run it again once "
                "they are done)" % message)
    if jobs > 1:
        return _when_full(message, "pg_dump holds a lock on every table until it ends, and its %d jobs another on "
                          "each table they dump" % jobs, "back up with jobs=1, or raise max_locks_per_transaction "
                          "(a server restart)")
    return _when_full(message, "pg_dump holds a lock on every table until it ends",
                      "raise max_locks_per_transaction (a server restart)")


def _when_full(message: str, holder: str, ways_out: str) -> str:
    if LOCK_TABLE_FULL not in message:
        return message
    return "%s (%s, and the server's lock table was full: %s)" % (message, holder, ways_out)
