# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Finding worlds: filters for listing, and the expired ones for cleanup."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ansible_collections.phoenix.platform.plugins.module_utils._core.world_meta import Registry, expired_condition
from ansible_collections.phoenix.platform.plugins.module_utils._pg.sql import glob_to_like

try:
    from psycopg import sql
    from psycopg.rows import dict_row
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass


@dataclass
class WorldFilter:
    id: str | None = None
    category: str | None = None
    active: bool | None = None
    template: bool | None = None
    tags: list[str] | None = None
    expired: bool | None = None
    max_age_hours: int | None = None


def find_worlds(conn, registry: Registry, world_filter: WorldFilter, lock: bool = False) -> list[dict[str, Any]]:
    """WorldMeta rows matching every given filter, with an ``expired`` flag, ordered by id."""
    conditions = [sql.SQL("true")]
    params: dict[str, Any] = {"max_age": world_filter.max_age_hours}
    if world_filter.id:
        conditions.append(sql.SQL("id LIKE %(id)s"))
        params["id"] = glob_to_like(world_filter.id)
    for option, column in (("category", "category"), ("active", "isActive"), ("template", "isTemplate")):
        value = getattr(world_filter, option)
        if value is not None:
            conditions.append(sql.SQL("{} = {}").format(sql.Identifier(column), sql.Placeholder(option)))
            params[option] = value
    if world_filter.tags:
        conditions.append(sql.SQL("{} @> %(tags)s::text[]").format(registry.text_list("tags")))
        params["tags"] = world_filter.tags
    expired = expired_condition(sql.SQL("%(max_age)s::integer"))
    if world_filter.expired is not None:
        conditions.append(expired if world_filter.expired else sql.SQL("NOT ({})").format(expired))
    query = sql.SQL('SELECT *, {expired} AS expired FROM "WorldMeta" WHERE {where} ORDER BY id{lock}').format(
        expired=expired, where=sql.SQL(" AND ").join(conditions),
        lock=sql.SQL(" FOR UPDATE") if lock else sql.SQL(""))
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()
