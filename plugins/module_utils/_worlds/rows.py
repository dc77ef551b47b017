# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Set-based row operations on worlds: count, delete, and deterministic copy.

Every statement handles all the worlds it is given at once (``world_id = ANY(...)``),
one statement per member table.
"""

from __future__ import annotations

from ansible_collections.phoenix.platform.plugins.module_utils._pg.catalog import WORLD_COLUMN, Catalog, Table
from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError


def count_rows(conn, catalog: Catalog, worlds: list[str]) -> dict[str, dict[str, int]]:
    """``{world: {table: rows}}`` for every member table (zero counts left out)."""
    from psycopg import sql

    counts: dict[str, dict[str, int]] = {w: {} for w in worlds}
    for table in catalog.members:
        # The subquery is flattened: for a world_id table the filter still uses its index.
        query = sql.SQL("SELECT w, count(*) FROM (SELECT {expr} AS w FROM {table} t) s "
                        "WHERE w = ANY({worlds}) GROUP BY w").format(
            expr=catalog.world_expression(table, "t"), table=table.identifier(), worlds=sql.Placeholder("worlds"))
        for world, n in conn.execute(query, {"worlds": worlds}):
            counts[world][table.label] = n
    return counts


def delete_rows(conn, catalog: Catalog, worlds: list[str], dry_run: bool) -> dict[str, int]:
    """Delete the worlds' rows, children first; returns rows per table (would be) deleted."""
    from psycopg import sql

    deleted: dict[str, int] = {}
    for table in reversed(catalog.members):
        predicate = catalog.world_predicate(table, "t", sql.Placeholder("worlds"))
        if dry_run:
            n = conn.execute(sql.SQL("SELECT count(*) FROM {} t WHERE {}").format(table.identifier(), predicate),
                             {"worlds": worlds}).fetchone()[0]
        else:
            n = conn.execute(sql.SQL("DELETE FROM {} t WHERE {}").format(table.identifier(), predicate),
                             {"worlds": worlds}).rowcount
        if n:
            deleted[table.label] = n
    return deleted


def rekey(target: str, old: str) -> str:
    """The key a copied row gets: md5(target || ':' || old) as a UUID (same as the SQL)."""
    import hashlib
    import uuid

    return str(uuid.UUID(hashlib.md5((target + ":" + old).encode()).hexdigest()))


def _copy_select(catalog: Catalog, table: Table):
    """SELECT list that turns a source row into its copy under %(target)s."""
    from psycopg import sql

    keys = catalog.uuid_key_columns(table)
    items = []
    for column in table.columns:
        ident = sql.SQL("t.{}").format(sql.Identifier(column))
        if column == WORLD_COLUMN:
            items.append(sql.Placeholder("target"))
        elif column in keys:
            items.append(sql.SQL("md5({} || ':' || {}::text)::uuid").format(sql.Placeholder("target"), ident))
        else:
            items.append(ident)
    return sql.SQL(", ").join(items)


def copy_rows(conn, catalog: Catalog, source: str, target: str, dry_run: bool) -> dict[str, int]:
    """Copy a world's rows under another world id, parents first, server-side.

    UUID keys are re-keyed deterministically, so a repeated copy finds its rows already
    there (NOT EXISTS on the primary key) and inserts nothing.
    """
    from psycopg import sql

    copied: dict[str, int] = {}
    for table in catalog.members:
        if not table.primary_key:
            raise PhoenixError("table %s has no primary key, so copies of its rows cannot be recognised; "
                               "add a primary key to copy worlds" % table.label)
        if not set(table.primary_key) & (catalog.uuid_key_columns(table) | {WORLD_COLUMN}):
            raise PhoenixError("table %s: its primary key (%s) has no UUID or world_id column to re-key, so a "
                               "copy would collide with the original; use UUID keys to copy worlds"
                               % (table.label, ", ".join(table.primary_key)))
        select = _copy_select(catalog, table)
        source_rows = sql.SQL("SELECT {select} FROM {table} t WHERE {pred}").format(
            select=select, table=table.identifier(),
            pred=catalog.world_predicate(table, "t", sql.Placeholder("source")))
        new_rows = sql.SQL("SELECT * FROM ({rows}) AS c({cols}) WHERE NOT EXISTS "
                           "(SELECT 1 FROM {table} x WHERE ({xpk}) = ({cpk}))").format(
            rows=source_rows,
            cols=sql.SQL(", ").join(sql.Identifier(c) for c in table.columns),
            table=table.identifier(),
            xpk=sql.SQL(", ").join(sql.SQL("x.{}").format(sql.Identifier(c)) for c in table.primary_key),
            cpk=sql.SQL(", ").join(sql.SQL("c.{}").format(sql.Identifier(c)) for c in table.primary_key),
        )
        params = {"source": [source], "target": target}
        if dry_run:
            n = conn.execute(sql.SQL("SELECT count(*) FROM ({}) n").format(new_rows), params).fetchone()[0]
        else:
            n = conn.execute(sql.SQL("INSERT INTO {table} ({cols}) {rows}").format(
                table=table.identifier(), cols=sql.SQL(", ").join(sql.Identifier(c) for c in table.columns),
                rows=new_rows), params).rowcount
        if n:
            copied[table.label] = n
    return copied
