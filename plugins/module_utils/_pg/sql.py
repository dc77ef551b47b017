# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Insert rows given as dicts, skipping rows whose primary key already exists."""

from __future__ import annotations

from typing import Any, Iterable

from ansible_collections.phoenix.platform.plugins.module_utils._pg.catalog import Table

BATCH_ROWS = 500


def _batches(rows: list[dict[str, Any]], size: int) -> Iterable[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def _values(table: Table, columns: list[str], batch: list[dict[str, Any]]):
    """``(%s::type, ...), (...)`` for the batch, with the parameters in order."""
    from psycopg import sql
    from psycopg.types.json import Jsonb

    # Type names come from format_type() in pg_catalog, already quoted where needed.
    row_sql = sql.SQL("({})").format(sql.SQL(", ").join(
        sql.SQL("{}::{}").format(sql.Placeholder(), sql.SQL(table.types[c])) for c in columns))
    params: list[Any] = []
    for row in batch:
        params.extend(Jsonb(row[c]) if table.types[c] in ("json", "jsonb") and row[c] is not None else row[c]
                      for c in columns)
    return sql.SQL(", ").join([row_sql] * len(batch)), params


def insert_missing(conn, table: Table, rows: list[dict[str, Any]], dry_run: bool) -> int:
    """Insert ``rows`` (dicts of column → value) unless their primary key exists; returns how many."""
    from psycopg import sql

    if not rows:
        return 0
    columns = [c for c in table.columns if c in rows[0]]
    total = 0
    for batch in _batches(rows, BATCH_ROWS):
        if dry_run:
            key = list(table.primary_key)
            values, params = _values(table, key, batch)
            query = sql.SQL("SELECT count(*) FROM (VALUES {values}) AS v({cols}) WHERE NOT EXISTS "
                            "(SELECT 1 FROM {table} x WHERE ({xk}) = ({vk}))").format(
                values=values, cols=sql.SQL(", ").join(sql.Identifier(c) for c in key), table=table.identifier(),
                xk=sql.SQL(", ").join(sql.SQL("x.{}").format(sql.Identifier(c)) for c in key),
                vk=sql.SQL(", ").join(sql.SQL("v.{}").format(sql.Identifier(c)) for c in key))
            total += conn.execute(query, params).fetchone()[0]
        else:
            values, params = _values(table, columns, batch)
            query = sql.SQL("INSERT INTO {table} ({cols}) VALUES {values} ON CONFLICT DO NOTHING").format(
                table=table.identifier(), cols=sql.SQL(", ").join(sql.Identifier(c) for c in columns), values=values)
            total += conn.execute(query, params).rowcount
    return total


def glob_to_like(pattern: str) -> str:
    """``UC_*`` → ``UC\\_%``: shell-style wildcards as a LIKE pattern."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")
