# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Set-based row operations on worlds: count, delete, and deterministic copy.

Every statement handles all the worlds it is given at once (``world_id = ANY(...)``),
one statement per member table.
"""

from __future__ import annotations

from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._pg import keymap
from ansible_collections.phoenix.platform.plugins.module_utils._pg.catalog import WORLD_COLUMN, Catalog, Table, relation_exists
from ansible_collections.phoenix.platform.plugins.module_utils._pg.publications import require_identified
from ansible_collections.phoenix.platform.plugins.module_utils._pg.sql import (
    bulk_memory,
    count_or_execute,
    defer_constraints,
    identifiers,
    rekeyed,
    same_row,
)

try:
    from psycopg import sql
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass


def count_rows(conn, catalog: Catalog, worlds: list[str]) -> dict[str, dict[str, int]]:
    """``{world: {table: rows}}`` for every member table (zero counts left out)."""
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
    """Delete the worlds' rows, children first; returns rows per table deleted. A dry run deletes them too, and
    rolls the deletes back: only the server tells what a trigger that keeps a row (a soft delete) does, and a
    foreign key that rows outside the worlds break, so the dry run fails where the run would."""
    require_identified(conn, catalog.with_registry(catalog.members), "removing worlds")
    deleted: dict[str, int] = {}
    defer_constraints(conn)
    with conn.transaction(force_rollback=dry_run):
        for table in reversed(catalog.members):
            predicate = catalog.world_predicate(table, "t", sql.Placeholder("worlds"))
            n = conn.execute(sql.SQL("DELETE FROM {} t WHERE {}").format(table.identifier(), predicate),
                             {"worlds": worlds}).rowcount
            if n:
                deleted[table.label] = n
        if dry_run:
            conn.execute(sql.SQL("SET CONSTRAINTS ALL IMMEDIATE"))  # the deferred foreign keys, checked now
    if not dry_run and relation_exists(conn, "phoenix.key_map"):
        keymap.forget_worlds(conn, worlds)
    return deleted


def _copy_select(catalog: Catalog, table: Table, transforms: dict[str, str], maps: keymap.KeyMaps):
    """SELECT list that turns a source row into its copy under %(target)s, and the key map joins it reads."""
    keys = catalog.uuid_key_columns(table)
    references = catalog.uuid_references(table)
    mapped = keymap.mapped_columns(catalog, table)
    lookups = maps.lookups(sql.Placeholder("target"))
    items = []
    for column in table.columns:
        ident = sql.SQL("t.{}").format(sql.Identifier(column))
        if column in transforms:
            items.append(keymap.transformed(transforms[column], ident, sql.Placeholder("target"), table.types[column]))
        elif column == WORLD_COLUMN:
            items.append(sql.Placeholder("target"))
        elif column in references:  # a reference to a row outside the world (production data) keeps its value
            parent, ref = references[column]
            # An uncorrelated IN: the world's keys are hashed once, not looked up per row.
            items.append(sql.SQL("CASE WHEN {value} IN (SELECT p.{ref} FROM {parent} p WHERE {inside}) "
                                 "THEN {rekeyed} ELSE {value} END").format(
                parent=parent.identifier(), ref=sql.Identifier(ref), value=ident,
                inside=catalog.world_predicate(parent, "p", sql.Placeholder("source")),
                rekeyed=rekeyed(sql.Placeholder("target"), ident)))
        elif column in keys:
            items.append(rekeyed(sql.Placeholder("target"), ident))
        elif column in mapped:
            items.append(lookups.value(ident, mapped[column], table.types[column],
                                       keep_unmapped=column != table.sequence_key))
        else:
            items.append(ident)
    return sql.SQL(", ").join(items), lookups.sql()


def copy_rows(conn, catalog: Catalog, source: str, target: str, dry_run: bool,
              transforms: dict[str, dict[str, str]] | None = None) -> dict[str, int]:
    """Copy a world's rows under another world id, parents first, server-side.

    UUID keys are re-keyed deterministically, integer keys through the key map, so a repeated copy finds its
    rows already there (NOT EXISTS on the primary key) and inserts nothing. New integer keys come from the
    tables' sequences: a dry run of such a copy runs it and rolls it back (the sequences keep their advance,
    as with any rolled-back insert).
    """
    if dry_run and any(keymap.mapped_columns(catalog, t) for t in catalog.members):
        with conn.transaction(force_rollback=True):
            return _copy_rows(conn, catalog, source, target, False, transforms or {})
    return _copy_rows(conn, catalog, source, target, dry_run, transforms or {})


def _copy_rows(conn, catalog: Catalog, source: str, target: str, dry_run: bool,
               transforms: dict[str, dict[str, str]]) -> dict[str, int]:
    copied: dict[str, int] = {}
    params = {"source": [source], "target": target}
    for table in catalog.members:
        problem = keymap.rekeyable_problem(catalog, table, transforms.get(table.label, {}))
        if problem:
            raise PhoenixError(problem)
    bulk_memory(conn)
    defer_constraints(conn)
    for table in catalog.members:  # every new key first: in a foreign-key cycle a parent can come later
        if table.sequence_key and not dry_run:
            keymap.assign_keys(conn, table, sql.SQL("{} s").format(table.identifier()), "s", sql.Placeholder("target"),
                               catalog.world_predicate(table, "s", sql.Placeholder("source")), params)
    maps = keymap.KeyMaps(conn, [target])
    copies = []  # (table, its rows as copied)
    for table in catalog.members:
        select, joins = _copy_select(catalog, table, transforms.get(table.label, {}), maps)
        copies.append((table, sql.SQL("SELECT {select} FROM {table} t {joins} WHERE {pred}").format(
            select=select, table=table.identifier(), joins=joins,
            pred=catalog.world_predicate(table, "t", sql.Placeholder("source")))))
    for table, rows in copies:
        keymap.refuse_unique_clashes(conn, table, rows, table.columns, params)
    for table, rows in copies:
        # The copies are computed first: the planner cannot tell how many new keys the table already holds, and
        # a guess of "all of them" would otherwise turn the key map joins into a scan per row.
        computed = sql.SQL("WITH c ({cols}) AS MATERIALIZED ({rows}) ").format(rows=rows, cols=identifiers(table.columns))
        new = sql.SQL("SELECT * FROM c WHERE NOT EXISTS (SELECT 1 FROM {table} x WHERE {match})").format(
            table=table.identifier(), match=same_row(table, "x", "c"))
        insert = computed + sql.SQL("INSERT INTO {table} ({cols}){overriding} ").format(
            table=table.identifier(), cols=identifiers(table.columns),
            overriding=keymap.overriding(table, table.columns)) + new
        n = count_or_execute(conn, dry_run, computed + new, insert, params)
        if n:
            copied[table.label] = n
    return copied
