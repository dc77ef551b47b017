# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The exact row counts a manifest records and a restore compares, without a lock kept per table and index.

A count's query locks its table and every index of it (the planner opens them) until its transaction ends. A
backup counts in the snapshot pg_dump dumps, in one transaction held open as long as pg_dump runs: on a database of
thousands of tables (a schema per tenant, say) those locks and pg_dump's own overflowed the server's lock table
(``out of shared memory``: it holds about max_locks_per_transaction × max_connections) where pg_dump alone fits.
So tables are counted in batches, each in a subtransaction that is rolled back, which gives its locks back.

A backup counts a table only once pg_dump holds that table's lock, so that nothing may truncate or rewrite it
between the rows pg_dump reads and the count (neither would wait for a lock given back). A table pg_dump does not
lock is counted as before, keeping the count's lock.
"""

from __future__ import annotations

import subprocess
import time
from typing import Collection, Iterator

from ansible_collections.phoenix.platform.plugins.module_utils._backups import row_security
from ansible_collections.phoenix.platform.plugins.module_utils._pg.catalog import table_label, user_tables

try:
    import psycopg
    from psycopg import sql
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass

AT_ONCE = 20  # tables counted by one statement, whose locks (and their indexes') are given back together
POLL_SECONDS = 0.02


def table_counts(conn, known: dict[str, int] | None = None, keep_locks: Collection[int] = ()) -> dict[str, int]:
    """Exact row count of every application and phoenix table; those in ``known`` are taken from there. The locks
    of the tables whose OIDs are in ``keep_locks`` are kept to the end of the transaction, the others given back.
    Row security is off for the session: a count a policy would filter fails, instead of coming out short."""
    known = known or {}
    conn.execute(sql.SQL("SELECT set_config('row_security', 'off', false)"))
    tables = [(oid, table_label(schema, name), sql.Identifier(schema, name))
              for oid, schema, name, _rows in user_tables(conn)]
    counts = {label: known[label] for _oid, label, _name in tables if label in known}
    counted = [table for table in tables if table[1] not in known]
    try:
        for batch in _batches([table for table in counted if table[0] in keep_locks]):
            counts.update(_count(conn, batch))
        for batch in _batches([table for table in counted if table[0] not in keep_locks]):
            with conn.transaction(force_rollback=True):  # a savepoint inside a transaction
                counts.update(_count(conn, batch))
    except psycopg.errors.InsufficientPrivilege as exc:
        row_security.counted_in_full(exc, conn.info.user)
        raise
    return {label: counts[label] for _oid, label, _name in tables}


def unlocked_by_dump(conn, application: str, dump: subprocess.Popen) -> frozenset[int]:
    """The OIDs of the tables on which the pg_dump ``dump`` (its sessions named ``application``, in the snapshot
    it dumps) holds no lock once it has taken its locks: when it holds one on every table (none), when it starts
    reading rows, or when it has ended (all: it holds none)."""
    tables = frozenset(oid for oid, _schema, _name, _rows in user_tables(conn))
    while True:
        conn.execute(sql.SQL("SELECT pg_stat_clear_snapshot()"))  # else the sessions are those of the first look
        held, copying = conn.execute(sql.SQL(
            "SELECT coalesce(array_agg(l.relation) FILTER (WHERE l.relation IS NOT NULL), '{}'), "
            "coalesce(bool_or(a.query LIKE 'COPY %%'), false) FROM pg_stat_activity a "
            "LEFT JOIN pg_locks l ON l.pid = a.pid AND l.locktype = 'relation' AND l.granted "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "WHERE a.application_name = %s"), [application]).fetchone()
        unlocked = tables.difference(held)
        if not unlocked or copying or dump.poll() is not None:
            return unlocked
        time.sleep(POLL_SECONDS)


def _batches(tables: list) -> Iterator[list]:
    for start in range(0, len(tables), AT_ONCE):
        yield tables[start:start + AT_ONCE]


def _count(conn, batch: list) -> dict[str, int]:
    counts = conn.execute(sql.SQL("SELECT {}").format(sql.SQL(", ").join(
        sql.SQL("(SELECT count(*) FROM {})").format(name) for _oid, _label, name in batch))).fetchone()
    return {label: count for (_oid, label, _name), count in zip(batch, counts)}
