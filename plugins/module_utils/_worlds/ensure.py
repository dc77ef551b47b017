# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One world: its "WorldMeta" row and its rows in every member table."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ansible_collections.phoenix.platform.plugins.module_utils._core.audit import record
from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._core.locks import acquire_transaction_lock
from ansible_collections.phoenix.platform.plugins.module_utils._core.stage import require_prod_allowed
from ansible_collections.phoenix.platform.plugins.module_utils._core.world_meta import (
    DEFAULT_TTL_HOURS,
    ISOLATION_LEVELS,
    META_COLUMNS,
    jsonable,
    public_meta,
    read_meta,
    Registry,
    load_registry,
    require_registry_identified,
    validate_world_id,
    write_meta,
)
from ansible_collections.phoenix.platform.plugins.module_utils._pg import catalog as catalog_mod
from ansible_collections.phoenix.platform.plugins.module_utils._pg.publications import UPDATES
from ansible_collections.phoenix.platform.plugins.module_utils._pg.sql import insert_missing
from ansible_collections.phoenix.platform.plugins.module_utils._worlds import generate
from ansible_collections.phoenix.platform.plugins.module_utils._worlds import rows as world_rows

try:
    from psycopg import sql
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass

SEED_DEFAULTS = {"users": 5, "artifacts": 12, "chats": 3, "messages_per_chat": 4}
SEED_MAX = 100_000  # generated rows per kind: more is a typo, not a test world


@dataclass
class WorldRequest:
    world_id: str
    state: str
    stage: str
    actor: str
    meta: dict[str, Any]  # option -> value, only the options given
    from_template: str | None = None
    seed: dict[str, int] | None = None
    allow_prod: bool = False
    force: bool = False
    max_worlds: int = 50
    lock_timeout: int = 60
    where: str = ""
    default_ttl_hours: int | None = None  # PHOENIX_WORLD_DEFAULT_TTL, for new worlds only
    column_transforms: dict[str, str] | None = None  # table.column -> per-world value of a copied row
    warnings: list[str] = field(default_factory=list)


def seed_spec(seed: dict[str, Any] | None) -> dict[str, int]:
    """The generated-data counts, each a whole number from 0 to SEED_MAX."""
    spec = dict(SEED_DEFAULTS, **{k: v for k, v in (seed or {}).items() if v is not None})
    unknown = sorted(set(spec) - set(SEED_DEFAULTS))
    if unknown:
        raise PhoenixError("seed has unknown keys %s; use %s" % (", ".join(unknown), ", ".join(SEED_DEFAULTS)))
    for name, value in spec.items():
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= SEED_MAX:
            raise PhoenixError("seed.%s must be a whole number from 0 to %d, got %r" % (name, SEED_MAX, value))
    return spec


def ensure_world(conn, request: WorldRequest, check_mode: bool) -> dict[str, Any]:
    validate_world_id(request.world_id)
    if request.seed is not None:
        request.seed = seed_spec(request.seed)  # checked and completed before any query
    with conn.transaction():
        acquire_transaction_lock(conn, "world:" + request.world_id, request.lock_timeout)
        registry = load_registry(conn, request.where)
        catalog = catalog_mod.load(conn)
        current = read_meta(conn, request.world_id, lock=True)
        if request.state == "absent":
            return _absent(conn, registry, catalog, request, current, check_mode)
        return _present(conn, registry, catalog, request, current, check_mode)


def _present(conn, registry: Registry, catalog, request: WorldRequest, current, check_mode: bool) -> dict[str, Any]:
    wanted = {META_COLUMNS[k]: v for k, v in request.meta.items() if v is not None}
    if current is None:
        wanted.setdefault("name", request.world_id)
        if request.default_ttl_hours:
            wanted.setdefault("cleanupAfterHours", request.default_ttl_hours)
        meta_changes = wanted
    else:
        meta_changes = {col: v for col, v in wanted.items() if _differs(current[col], v)}
    writes = current is None or bool(meta_changes) or request.from_template or request.seed is not None
    if writes:
        require_prod_allowed(request.stage, request.allow_prod, "changing world %s" % request.world_id)
    if current is None:
        total = conn.execute(sql.SQL('SELECT count(*) FROM "WorldMeta"')).fetchone()[0]
        if total >= request.max_worlds:
            raise PhoenixError("%s already has %d worlds, the limit (max_worlds / PHOENIX_WORLD_MAX_PER_ENV) is %d; "
                               "remove worlds or raise the limit" % (request.stage, total, request.max_worlds))
    _check_dependencies(conn, request)
    template = _template(conn, request)

    before_rows = world_rows.count_rows(conn, catalog, [request.world_id])[request.world_id]
    if current is not None and meta_changes:
        require_registry_identified(conn, catalog, "changing world %s" % request.world_id, UPDATES)
    if not check_mode and meta_changes:
        write_meta(conn, registry, request.world_id, request.stage, request.actor, current, meta_changes)
    added: dict[str, int] = {}
    if template:
        added = world_rows.copy_rows(conn, catalog, template["id"], request.world_id, check_mode,
                                     catalog.column_transforms(request.column_transforms))
        if added:  # the template counts its uses
            require_registry_identified(conn, catalog, "copying template %s" % template["id"], UPDATES)
        if added and not check_mode:
            conn.execute(sql.SQL('UPDATE "WorldMeta" SET "usageCount" = coalesce("usageCount", 0) + 1, "lastUsedAt" = now() '
                                 "WHERE id = %s"), [template["id"]])
    if request.seed is not None:
        for table, n in _seed(conn, catalog, request, check_mode).items():
            added[table] = added.get(table, 0) + n
    after_rows = {t: before_rows.get(t, 0) + added.get(t, 0) for t in set(before_rows) | set(added)}
    changed = bool(meta_changes) or bool(added)
    if changed and not check_mode:
        record(conn, "world.present", request.stage, request.actor,
               {"world": request.world_id, "meta": sorted(meta_changes), "rows_added": added,
                "from_template": request.from_template})
    after_meta = _preview(registry, current, meta_changes, request) if check_mode else read_meta(conn, request.world_id)
    return {
        "changed": changed,
        "world": public_meta(after_meta),
        "rows": after_rows,
        "rows_added": added,
        "rows_removed": {},
        "diff": {"before": {"world": _diffable(current), "rows": before_rows},
                 "after": {"world": _diffable(after_meta), "rows": after_rows}},
    }


def _absent(conn, registry: Registry, catalog, request: WorldRequest, current, check_mode: bool) -> dict[str, Any]:
    before_rows = world_rows.count_rows(conn, catalog, [request.world_id])[request.world_id]
    if current is None and not before_rows:
        return {"changed": False, "world": None, "rows": {}, "rows_added": {}, "rows_removed": {},
                "diff": {"before": {"world": None, "rows": {}}, "after": {"world": None, "rows": {}}}}
    require_prod_allowed(request.stage, request.allow_prod, "deleting world %s" % request.world_id)
    dependants = [row[0] for row in conn.execute(
        sql.SQL('SELECT id FROM "WorldMeta" WHERE %s = ANY({}) AND id <> %s ORDER BY id').format(
            registry.text_list("dependencies")),
        [request.world_id, request.world_id])]
    if dependants and not request.force:
        raise PhoenixError("world %s is listed in the dependencies of %s; remove those first or set force=true"
                           % (request.world_id, ", ".join(dependants)), dependants=dependants)
    removed = world_rows.delete_rows(conn, catalog, [request.world_id], check_mode)
    if not check_mode:
        conn.execute(sql.SQL('DELETE FROM "WorldMeta" WHERE id = %s'), [request.world_id])
        record(conn, "world.absent", request.stage, request.actor,
               {"world": request.world_id, "rows_removed": removed, "forced": bool(dependants)})
    return {"changed": True, "world": None, "rows": {}, "rows_added": {}, "rows_removed": removed,
            "diff": {"before": {"world": _diffable(current), "rows": before_rows},
                     "after": {"world": None, "rows": {}}}}


def _differs(current: Any, wanted: Any) -> bool:
    if isinstance(wanted, list) and isinstance(current, list):
        return list(current) != list(wanted)
    return current != wanted


def _check_dependencies(conn, request: WorldRequest) -> None:
    wanted = request.meta.get("dependencies") or []
    for dependency in wanted:
        validate_world_id(dependency, "dependencies entry")
    if request.world_id in wanted:
        raise PhoenixError("world %s cannot depend on itself: remove it from dependencies" % request.world_id)
    known = {row[0] for row in conn.execute(sql.SQL('SELECT id FROM "WorldMeta" WHERE id = ANY(%s)'), [wanted])}
    unknown = sorted(set(wanted) - known)
    if unknown:
        raise PhoenixError("world %s depends on worlds that do not exist: %s" % (request.world_id, ", ".join(unknown)))


def _template(conn, request: WorldRequest) -> dict[str, Any] | None:
    if not request.from_template:
        return None
    validate_world_id(request.from_template, "from_template")
    if request.from_template == request.world_id:
        raise PhoenixError("world %s cannot be cloned from itself" % request.world_id)
    template = read_meta(conn, request.from_template)
    if template is None:
        raise PhoenixError("template world %s does not exist" % request.from_template)
    if not template["isTemplate"]:
        request.warnings.append("world %s is not marked as a template (is_template)" % request.from_template)
    return template


def _seed(conn, catalog, request: WorldRequest, check_mode: bool) -> dict[str, int]:
    spec = request.seed
    missing = [t for t in generate.REFERENCE_TABLES if t not in catalog.by_label]
    if missing:
        raise PhoenixError("seed generates data for the reference application schema, and this database lacks "
                           "%s; use phoenix_schema with app_schema=reference, or import a seed directory"
                           % ", ".join(missing))
    try:
        rows = generate.generate(request.world_id, **spec)
    except ValueError as exc:
        raise PhoenixError("seed: %s" % exc) from None
    added = {}
    for table in catalog.members:
        n = insert_missing(conn, table, rows.get(table.label, []), check_mode)
        if n:
            added[table.label] = n
    return added


def _preview(registry: Registry, current, changes: dict[str, Any], request: WorldRequest) -> dict[str, Any] | None:
    """The metadata a check-mode run would write."""
    from datetime import timezone

    if current is None and not changes:
        return None
    base = dict(current) if current else {
        "id": request.world_id, "environment": request.stage, "description": None, "category": None,
        "isActive": True, "isTemplate": False, "autoCleanup": True, "cleanupAfterHours": DEFAULT_TTL_HOURS,
        "isolationLevel": ISOLATION_LEVELS[0], "tags": [], "dependencies": [], "settings": {}, "version": "1.0.0",
        "usageCount": 0, "lastUsedAt": None, "createdBy": registry.value("createdBy", request.actor, request.actor),
        "createdAt": datetime.now(timezone.utc), "updatedAt": datetime.now(timezone.utc),
    }
    base.update(changes)
    return base


def _diffable(meta: dict[str, Any] | None) -> dict[str, Any] | None:
    """Metadata without the timestamps that change on every write."""
    if meta is None:
        return None
    return {k: jsonable(v) for k, v in meta.items() if k not in ("updatedAt", "lastUsedAt", "usageCount")}
