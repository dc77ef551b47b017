# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bring a database to the wanted schema version and register its stage fence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ansible_collections.phoenix.platform.plugins.module_utils._core.audit import record
from ansible_collections.phoenix.platform.plugins.module_utils._core.bookkeeping import (
    applied_versions,
    migration_name,
    registered_app_schema,
)
from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._core.locks import acquire_transaction_lock
from ansible_collections.phoenix.platform.plugins.module_utils._core.world_meta import registry_columns, registry_problems
from ansible_collections.phoenix.platform.plugins.module_utils._core.stage import (
    check_stage_fence,
    check_writable,
    registered_stage,
)
from ansible_collections.phoenix.platform.plugins.module_utils._schema import migrations

try:
    import psycopg
    from psycopg import sql
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass


@dataclass
class SchemaRequest:
    stage: str
    app_schema: str
    target_version: int | None
    actor: str
    lock_timeout: int
    where: str  # user@host:port/db, for messages


def _state(applied: set[int], stage: str | None, app_schema: str | None, world_meta: str | None) -> dict[str, Any]:
    return {
        "version": max(applied) if applied else 0,
        "applied_versions": sorted(applied),
        "stage": stage,
        "app_schema": app_schema,
        "world_meta": world_meta,
    }


def _world_meta_owner(migration: str | None) -> str | None:
    """Who owns "WorldMeta", from the name its migration was recorded under."""
    if migration is None:
        return None
    return "application" if migration == migrations.ADOPTED_WORLD_META.name else "phoenix"


def _adopt_world_meta(conn, todo: list[migrations.Migration], request: SchemaRequest) -> list[migrations.Migration]:
    """When the application already has a "WorldMeta", adopt it instead of creating one (after checking it can
    hold worlds); nothing of the application's is altered."""
    if not any(m.version == migrations.WORLD_META_VERSION for m in todo):
        return todo
    columns = registry_columns(conn)
    if not columns:
        return todo
    if request.app_schema == migrations.REFERENCE:
        raise PhoenixError('%s already has a "WorldMeta" table of its own (the application\'s); the reference '
                           "application schema cannot be installed next to it. Use app_schema=none to adopt it"
                           % request.where)
    problems = registry_problems(columns)
    if problems:
        raise PhoenixError('the application\'s "WorldMeta" on %s cannot be adopted: %s; nothing was changed'
                           % (request.where, "; ".join(problems)))
    return [migrations.ADOPTED_WORLD_META if m.version == migrations.WORLD_META_VERSION else m for m in todo]


def ensure_schema(conn, request: SchemaRequest, check_mode: bool) -> dict[str, Any]:
    """Apply pending migrations in one transaction; in check mode only report them."""
    if request.target_version is not None and request.target_version < 1:
        raise PhoenixError("target_version must be 1 or higher (latest is %d)" % migrations.LATEST_VERSION)
    if request.target_version is not None and request.target_version > migrations.LATEST_VERSION:
        raise PhoenixError(
            "target_version %d does not exist: this collection ships migrations up to %d"
            % (request.target_version, migrations.LATEST_VERSION)
        )
    with conn.transaction():
        acquire_transaction_lock(conn, "schema", request.lock_timeout)
        stage = registered_stage(conn)
        check_stage_fence(request.stage, stage, request.where)
        check_writable(conn, request.where)
        applied = applied_versions(conn)
        app_schema = registered_app_schema(conn)
        if app_schema == "reference" and request.app_schema == "none":
            raise PhoenixError(
                "%s already carries the reference application schema; app_schema=none cannot "
                "remove it. Use app_schema=reference for this database" % request.where
            )
        if request.target_version is not None and applied and max(applied) > request.target_version:
            raise PhoenixError(
                "%s is at schema version %d, above target_version %d; downgrades are not supported"
                % (request.where, max(applied), request.target_version)
            )
        todo = _adopt_world_meta(conn, migrations.pending(applied, request.app_schema, request.target_version),
                                 request)
        fence_changes = stage is None or app_schema != request.app_schema
        world_meta = _world_meta_owner(migration_name(conn, migrations.WORLD_META_VERSION))
        before = _state(applied, stage, app_schema, world_meta)
        after_applied = applied | {m.version for m in todo}
        world_meta = world_meta or _world_meta_owner(next(
            (m.name for m in todo if m.version == migrations.WORLD_META_VERSION), None))
        after = _state(after_applied, request.stage, request.app_schema, world_meta)
        result: dict[str, Any] = {
            "changed": bool(todo) or fence_changes,
            "version": after["version"] if not check_mode else before["version"],
            "applied": [m.as_dict() for m in todo] if not check_mode else [],
            # Still unapplied afterwards (in check mode: everything not applied yet).
            "pending": [m.as_dict() for m in migrations.pending(
                applied if check_mode else after_applied, request.app_schema)],
            "stage": request.stage,
            "world_meta": (before if check_mode else after)["world_meta"],
            "diff": {"before": before, "after": after},
        }
        if check_mode or not result["changed"]:
            return result
        for migration in todo:
            _apply(conn, migration, request)
        _register_environment(conn, request, stage is None)
        record(conn, "schema.migrate", request.stage, request.actor, {
            "applied": [m.version for m in todo],
            "version": after["version"],
            "app_schema": request.app_schema,
        })
    return result


def _apply(conn, migration: migrations.Migration, request: SchemaRequest) -> None:
    try:
        migrations.apply(conn, migration, request.actor)
    except (psycopg.errors.DuplicateTable, psycopg.errors.DuplicateObject) as exc:
        raise PhoenixError(
            "migration %d (%s) failed on %s: %s; nothing was applied. If the application owns "
            "these tables, use app_schema=none" % (
                migration.version, migration.name, request.where, str(exc).strip().splitlines()[0])
        ) from None


def _register_environment(conn, request: SchemaRequest, first_time: bool) -> None:
    if first_time:
        conn.execute(
            sql.SQL(
                "INSERT INTO phoenix.environment (stage, app_schema, registered_by) VALUES (%s, %s, %s)"
            ),
            [request.stage, request.app_schema, request.actor],
        )
    else:
        conn.execute(sql.SQL("UPDATE phoenix.environment SET app_schema = %s"), [request.app_schema])
