# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rows that depend on a row through foreign keys, transitively, for counting and deleting.

Predicates are built from the catalog's FK graph, so the same code serves any schema.
"""

from __future__ import annotations

import itertools
from typing import Callable

from ansible_collections.phoenix.platform.plugins.module_utils._pg.catalog import Catalog, Table, join_condition, topological

try:
    from psycopg import sql
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass

Predicate = Callable[[str], object]  # alias -> SQL condition on that alias


def dependants(catalog: Catalog, root: Table, root_predicate: Predicate) -> list[tuple[Table, Predicate]]:
    """Tables holding rows that depend on the root rows, parents first, each with its predicate."""
    reached = {root.key}
    grew = True
    while grew:
        grew = False
        for key, table in sorted(catalog.all_tables.items()):
            if key not in reached and any(fk.target in reached and fk.target != key for fk in table.foreign_keys):
                reached.add(key)
                grew = True
    aliases = ("d%d" % n for n in itertools.count())
    predicates: dict[tuple[str, str], Predicate] = {root.key: root_predicate}
    ordered = topological(catalog.all_tables[key] for key in reached)
    for table in ordered:
        if table.key == root.key:
            continue
        links = [fk for fk in table.foreign_keys if fk.target in predicates and fk.target != table.key]

        def predicate(alias: str, links=links) -> object:
            conditions = []
            for fk in links:
                parent_alias = next(aliases)
                conditions.append(sql.SQL("EXISTS (SELECT 1 FROM {parent} {pa} WHERE {join} AND {pred})").format(
                    parent=catalog.all_tables[fk.target].identifier(), pa=sql.Identifier(parent_alias),
                    join=join_condition(fk, alias, parent_alias), pred=predicates[fk.target](parent_alias)))
            return sql.SQL("({})").format(sql.SQL(" OR ").join(conditions))

        predicates[table.key] = predicate
    return [(t, predicates[t.key]) for t in ordered if t.key != root.key]


def count(conn, table: Table, predicate: Predicate, params: dict) -> int:
    return conn.execute(sql.SQL("SELECT count(*) FROM {} t WHERE {}").format(table.identifier(), predicate("t")),
                        params).fetchone()[0]


def delete(conn, table: Table, predicate: Predicate, params: dict) -> int:
    return conn.execute(sql.SQL("DELETE FROM {} t WHERE {}").format(table.identifier(), predicate("t")),
                        params).rowcount
