# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The exact row counts a manifest records and a restore compares, without a lock kept per table and index.

A count's query locks its table and every index of it (the planner opens them) until its transaction ends. A
backup counts in the snapshot pg_dump dumps, in one transaction held open as long as pg_dump runs: on a database of
thousands of tables (a schema per tenant, say) those locks and pg_dump's own overflowed the server's lock table
(``out of shared memory``: it holds about max_locks_per_transaction × max_connections) where pg_dump alone fits.
So tables are counted in batches, each in a subtransaction that is rolled back, which gives its locks back.

A partitioned table's count locks every partition and each of their indexes in one statement (thousands, for a
table partitioned by day or hour over years): its rows are counted partition by partition, in the same batches.

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


def table_counts(conn, known: dict[str, int] | None = None, keep_locks: Collection[int] = (),
                 tables: list | None = None) -> dict[str, int]:
    """Exact row count of every application and phoenix table; those in ``known`` are taken from there. The locks
    of the tables whose OIDs are in ``keep_locks`` are kept to the end of the transaction, the others given back.
    ``tables``: what ``counted_relations`` found, when the caller has it. Row security is off for a Phoenix session:
    a count a policy would filter fails, instead of coming out short."""
    known = known or {}
    tables = tables if tables is not None else counted_relations(conn)
    counts = {label: 0 for label, _relations in tables}
    counted = [(oid, label, name) for label, relations in tables if label not in known for oid, name in relations]
    try:
        for batch in _batches([relation for relation in counted if relation[0] in keep_locks]):
            _add(counts, _count(conn, batch))
        for batch in _batches([relation for relation in counted if relation[0] not in keep_locks]):
            with conn.transaction(force_rollback=True):  # a savepoint inside a transaction
                _add(counts, _count(conn, batch))
    except psycopg.errors.InsufficientPrivilege as exc:
        row_security.counted_in_full(exc, conn)
        raise
    return {label: known[label] if label in known else counts[label] for label, _relations in tables}


def unlocked_by_dump(conn, application: str, dump: subprocess.Popen, tables: list) -> frozenset[int]:
    """The OIDs of the tables on which the pg_dump ``dump`` (its sessions named ``application``, in the snapshot
    it dumps) holds no lock once it has taken its locks: when it holds one on every table (none), when it starts
    reading rows, or when it has ended (all: it holds none). ``tables``: what ``counted_relations`` found."""
    tables = frozenset(oid for _label, relations in tables for oid, _name in relations)
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


def counted_relations(conn) -> list[tuple[str, list[tuple[int, sql.Identifier]]]]:
    """Each application and phoenix table's label, with the OID and name of each relation counted for it: the
    table itself, or a partitioned table's leaf partitions (the table itself when it has none)."""
    tables = user_tables(conn)
    leaves: dict[int, list[tuple[int, sql.Identifier]]] = {}
    # from the catalog, which locks nothing (pg_partition_tree would lock every partition)
    for parent, leaf, schema, name in conn.execute(sql.SQL(
            "WITH RECURSIVE tree(root, relid) AS (SELECT oid, oid FROM pg_catalog.pg_class "
            "WHERE oid = ANY(%s) AND relkind = 'p' UNION ALL SELECT tree.root, i.inhrelid FROM tree "
            "JOIN pg_catalog.pg_inherits i ON i.inhparent = tree.relid) "
            "SELECT tree.root, tree.relid, n.nspname, c.relname FROM tree JOIN pg_catalog.pg_class c ON c.oid = tree.relid "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind <> 'p' ORDER BY 1, 3, 4"),
            [[oid for oid, *_rest in tables]]):
        leaves.setdefault(parent, []).append((leaf, sql.Identifier(schema, name)))
    return [(table_label(schema, name), leaves.get(oid) or [(oid, sql.Identifier(schema, name))])
            for oid, schema, name, _rows in tables]


def _add(counts: dict[str, int], counted: list[tuple[str, int]]) -> None:
    for label, rows in counted:
        counts[label] += rows


def _batches(tables: list) -> Iterator[list]:
    for start in range(0, len(tables), AT_ONCE):
        yield tables[start:start + AT_ONCE]


def _count(conn, batch: list) -> list[tuple[str, int]]:
    counts = conn.execute(sql.SQL("SELECT {}").format(sql.SQL(", ").join(
        sql.SQL("(SELECT count(*) FROM {})").format(name) for _oid, _label, name in batch))).fetchone()
    return [(label, count) for (_oid, label, _name), count in zip(batch, counts)]
