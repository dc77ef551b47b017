# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The world registry every concern shares: world ids, the "WorldMeta" row, expiry, and the stable keys
of generated rows. Worlds, seeds, transfers and users build on it."""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._pg import catalog as catalog_mod
from ansible_collections.phoenix.platform.plugins.module_utils._pg.sql import insert_values, update_values

try:
    from psycopg import sql
    from psycopg.rows import dict_row
    from psycopg.types.json import Jsonb
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass

WORLD_ID = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")

# module option -> "WorldMeta" column
META_COLUMNS = {
    "name": "name",
    "description": "description",
    "category": "category",
    "tags": "tags",
    "settings": "settings",
    "dependencies": "dependencies",
    "is_template": "isTemplate",
    "is_active": "isActive",
    "auto_cleanup": "autoCleanup",
    "cleanup_after_hours": "cleanupAfterHours",
    "isolation_level": "isolationLevel",
    "version": "version",
}
ISOLATION_LEVELS = ("FULL", "PARTIAL", "NONE")
KEY_NAMESPACE = uuid.UUID("7c0b6c3e-5d1f-4f5e-9a53-2d2f6f1e8a10")
EPOCH = datetime(2025, 1, 1, tzinfo=timezone.utc)  # the time of generated rows: the same world, the same rows
EXPIRED = (
    'NOT "isTemplate" AND "createdAt" + make_interval(hours => coalesce({max_age}, "cleanupAfterHours")) < now()'
)


def validate_world_id(world_id: str, option: str = "id") -> None:
    if not WORLD_ID.match(world_id or ""):
        raise PhoenixError("%s %r is not a valid world id: use an upper-case letter, then up to 63 upper-case "
                           "letters, digits or underscores (e.g. UC_TESTING)" % (option, world_id))


def jsonable(value: Any) -> Any:
    """A database value as JSON can carry it (application tables hold uuid, numeric, dates, bytea...)."""
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, (uuid.UUID, Decimal)):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "\\x" + bytes(value).hex()  # PostgreSQL's own bytea text form
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    return value


def expires_at(meta: dict[str, Any]) -> str | None:
    if meta["isTemplate"]:
        return None
    return (meta["createdAt"] + timedelta(hours=meta["cleanupAfterHours"])).isoformat(timespec="seconds")


def read_meta(conn, world_id: str, lock: bool = False) -> dict[str, Any] | None:
    query = sql.SQL('SELECT * FROM "WorldMeta" WHERE id = %s')
    if lock:
        query += sql.SQL(" FOR UPDATE")
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, [world_id]).fetchone()


def public_meta(meta: dict[str, Any] | None) -> dict[str, Any] | None:
    if meta is None:
        return None
    return dict({k: jsonable(v) for k, v in meta.items()}, expiresAt=expires_at(meta))


def require_world_meta(conn, where: str) -> None:
    if not catalog_mod.relation_exists(conn, catalog_mod.WORLD_META_TABLE):
        raise PhoenixError('%s has no "WorldMeta" table: run phoenix.platform.phoenix_schema first' % where)


def write_meta(conn, world_id: str, stage: str, actor: str, current, changes: dict[str, Any]) -> None:
    """Insert or update a "WorldMeta" row with ``changes`` (column -> value)."""
    values = {col: Jsonb(v) if col == "settings" else v for col, v in changes.items()}
    table = sql.Identifier("WorldMeta")
    if current is None:
        insert_values(conn, table, dict(values, id=world_id, environment=stage, createdBy=actor))
    else:
        update_values(conn, table, values, "id", world_id, extra=sql.SQL('"updatedAt" = now()'))


def expired_condition(max_age_param):
    return sql.SQL(EXPIRED).format(max_age=max_age_param)


def stable_key(world: str, kind: str, index: int) -> str:
    """The key of the index-th generated row of a kind in a world: the same on every run."""
    return str(uuid.uuid5(KEY_NAMESPACE, "%s:%s:%d" % (world, kind, index)))
