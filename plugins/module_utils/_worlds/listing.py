# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Worlds with their row counts, as phoenix_world_info returns them."""

from __future__ import annotations

from typing import Any

from ansible_collections.phoenix.platform.plugins.module_utils._core.world_meta import load_registry, public_meta
from ansible_collections.phoenix.platform.plugins.module_utils._pg import catalog as catalog_mod
from ansible_collections.phoenix.platform.plugins.module_utils._pg import keymap
from ansible_collections.phoenix.platform.plugins.module_utils._pg.catalog import WORLD_COLUMN, Catalog, Table
from ansible_collections.phoenix.platform.plugins.module_utils._worlds import rows as world_rows
from ansible_collections.phoenix.platform.plugins.module_utils._worlds.query import WorldFilter, find_worlds


def list_worlds(conn, world_filter: WorldFilter, where: str) -> list[dict[str, Any]]:
    found = find_worlds(conn, load_registry(conn, where), world_filter)
    counts = world_rows.count_rows(conn, catalog_mod.load(conn), [w["id"] for w in found])
    return [dict(public_meta(w), rows=counts[w["id"]]) for w in found]


def describe_tables(conn) -> dict[str, Any]:
    """How worlds are found in this database and how a copy under another world id treats each member table:
    what a user checks on a new schema before the first copy."""
    catalog = catalog_mod.load(conn)
    return {"world_meta": catalog.registry.label if catalog.registry else None,
            "tables": [_describe(catalog, table) for table in catalog.members]}


def _describe(catalog: Catalog, table: Table) -> dict[str, Any]:
    mapped = keymap.mapped_columns(catalog, table)
    uuid_keys = catalog.uuid_key_columns(table)
    copies = {}
    for column in table.columns:
        if column == WORLD_COLUMN:
            copies[column] = "the target world id"
        elif column in uuid_keys:
            copies[column] = "uuid re-keyed per world: md5(world || ':' || key)::uuid"
        elif column == table.sequence_key:
            copies[column] = "a new value from %s, recorded in phoenix.key_map" % table.sequences[column]
        elif column in mapped:
            copies[column] = "the new key of the %s row it references (phoenix.key_map)" % mapped[column].label
    return {
        "table": table.label,
        "member_by": WORLD_COLUMN if table.has_world_id else "foreign key %s to %s" % (
            table.owner.name, catalog.parent(table).label),
        "primary_key": list(table.primary_key) or None,
        "identified_by": "primary key" if table.primary_key else "whole row (no primary key)",
        "partitioned": table.partitioned,
        "identity_always": sorted(table.identity_always),
        "deferrable_foreign_keys": sorted(fk.name for fk in table.foreign_keys if fk.deferrable),
        "copies": copies,
        "copy_problem": keymap.rekeyable_problem(catalog, table, {}),
    }
