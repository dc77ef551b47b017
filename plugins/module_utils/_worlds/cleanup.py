# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Expired worlds: those with autoCleanup are deleted with their rows, the others deactivated.

Set-based: one statement per table for all expired worlds together.
"""

from __future__ import annotations

from typing import Any

from ansible_collections.phoenix.platform.plugins.module_utils._core.audit import record
from ansible_collections.phoenix.platform.plugins.module_utils._core.locks import acquire_transaction_lock
from ansible_collections.phoenix.platform.plugins.module_utils._core.stage import require_prod_allowed
from ansible_collections.phoenix.platform.plugins.module_utils._core.world_meta import Registry, load_registry, require_registry_identified
from ansible_collections.phoenix.platform.plugins.module_utils._pg import catalog as catalog_mod
from ansible_collections.phoenix.platform.plugins.module_utils._pg.publications import UPDATES
from ansible_collections.phoenix.platform.plugins.module_utils._worlds import rows as world_rows
from ansible_collections.phoenix.platform.plugins.module_utils._worlds.query import WorldFilter, find_worlds

try:
    from psycopg import sql
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass


def cleanup(conn, stage: str, actor: str, max_age_hours: int | None, allow_prod: bool, lock_timeout: int,
            check_mode: bool, where: str) -> dict[str, Any]:
    with conn.transaction():
        acquire_transaction_lock(conn, "worlds:cleanup", lock_timeout)
        registry = load_registry(conn, where)
        expired = find_worlds(conn, registry, WorldFilter(expired=True, max_age_hours=max_age_hours), lock=True)
        doomed = [w["id"] for w in expired if w["autoCleanup"]]
        kept_for = _needed_by_live_worlds(conn, registry, doomed)
        removed = [w for w in doomed if w not in kept_for]
        deactivated = [w["id"] for w in expired if (not w["autoCleanup"] or w["id"] in kept_for) and w["isActive"]]
        if removed or deactivated:  # deactivating is a write too
            require_prod_allowed(stage, allow_prod, "cleaning up expired worlds")
        catalog = catalog_mod.load(conn)
        if deactivated:
            require_registry_identified(conn, catalog, "deactivating expired worlds", UPDATES)
        rows_deleted = world_rows.delete_rows(conn, catalog, removed, check_mode) if removed else {}
        if not check_mode and (removed or deactivated):
            if removed:
                conn.execute(sql.SQL('DELETE FROM "WorldMeta" WHERE id = ANY(%s)'), [removed])
            if deactivated:
                conn.execute(sql.SQL('UPDATE "WorldMeta" SET "isActive" = false, "updatedAt" = now() '
                                     'WHERE id = ANY(%s)'), [deactivated])
            record(conn, "world.cleanup", stage, actor, {"removed": removed, "deactivated": deactivated,
                                                         "rows_deleted": rows_deleted})
    warnings = ["world %s expired but is a dependency of %s: deactivated, not deleted" % (w, ", ".join(kept_for[w]))
                for w in sorted(kept_for)]
    return {"changed": bool(removed or deactivated), "removed": removed, "deactivated": deactivated,
            "rows_deleted": rows_deleted, "warnings": warnings, "diff": _worlds_diff(expired, removed, deactivated)}


def _worlds_diff(expired: list[dict[str, Any]], removed: list[str], deactivated: list[str]) -> dict[str, Any]:
    """--diff: the worlds this cleanup touches, as they are and as they will be (a removed world is gone)."""
    touched = set(removed) | set(deactivated)
    state = {True: "active", False: "inactive"}
    return {"before": {"worlds": {w["id"]: state[w["isActive"]] for w in expired if w["id"] in touched}},
            "after": {"worlds": {w: "inactive" for w in deactivated}}}


def _needed_by_live_worlds(conn, registry: Registry, doomed: list[str]) -> dict[str, list[str]]:
    """Expired worlds that worlds staying behind list in their dependencies."""
    rows = conn.execute(sql.SQL(
        'SELECT d, array_agg(id ORDER BY id) FROM "WorldMeta", unnest({dependencies}) AS d '
        "WHERE d = ANY(%(doomed)s) AND NOT id = ANY(%(doomed)s) GROUP BY d").format(
        dependencies=registry.text_list("dependencies")), {"doomed": doomed}).fetchall()
    return dict(rows)
