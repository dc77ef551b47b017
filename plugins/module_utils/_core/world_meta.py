# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The world registry every concern shares: world ids, the "WorldMeta" row, expiry, and the stable keys
of generated rows. Worlds, seeds, transfers and users build on it."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._pg.publications import Change, require_identified
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
DEFAULT_TTL_HOURS = 24  # a world without cleanupAfterHours (NULL, or the original's 0) expires after this
# Every column Phoenix reads or writes; an application's own "WorldMeta" must have them all to be adopted.
REGISTRY_COLUMNS = ("id", "name", "description", "environment", "category", "isActive", "isTemplate", "autoCleanup",
                    "cleanupAfterHours", "isolationLevel", "tags", "dependencies", "settings", "version", "usageCount",
                    "lastUsedAt", "createdBy", "createdAt", "updatedAt")
LIST_TYPES = ("jsonb", "json", "text[]", "character varying[]")  # tags and dependencies
TEXT_TYPES = ("text", "character varying")
# What a world definition lists, where the application's registry keeps it (the original's 1.0.0 seeds do)
DEFINITION_COLUMNS = ("users", "artifacts", "chats")
KEY_NAMESPACE = uuid.UUID("7c0b6c3e-5d1f-4f5e-9a53-2d2f6f1e8a10")
EPOCH = datetime(2025, 1, 1, tzinfo=timezone.utc)  # the time of generated rows: the same world, the same rows
EXPIRED = (
    'NOT "isTemplate" AND "createdAt" + make_interval(hours => coalesce({max_age}, "cleanupAfterHours", %d)) < now()'
    % DEFAULT_TTL_HOURS
)


@dataclass(frozen=True)
class Registry:
    """The "WorldMeta" table a database has (Phoenix's own, or the application's it adopted): its column types
    and the columns a new row must fill because they are NOT NULL without a default."""
    types: dict[str, str]
    required: frozenset[str]

    def value(self, column: str, value: Any, actor: str) -> Any:
        """``value`` as the column's type takes it."""
        kind = self.types[column]
        if column == "createdBy":  # a uuid column references the application's users: the actor is no user
            return actor if _base_type(kind) in TEXT_TYPES else None
        if kind in ("json", "jsonb") and value is not None:
            return Jsonb(value)
        return value

    def empty(self, column: str) -> Any:
        """The empty value of a required column nobody gave a value for."""
        kind = self.types[column]
        if kind in ("json", "jsonb"):
            return Jsonb({} if column == "settings" else [])
        return [] if kind.endswith("[]") else ""

    def text_list(self, column: str):
        """SQL giving a list column (jsonb array or text[]) as text[]."""
        if self.types[column] in ("json", "jsonb"):
            return sql.SQL("ARRAY(SELECT jsonb_array_elements_text(coalesce({}::jsonb, '[]')))").format(
                sql.Identifier(column))
        return sql.SQL("coalesce({}::text[], '{{}}')").format(sql.Identifier(column))


def _base_type(kind: str) -> str:
    return kind.split("(")[0]


def registry_columns(conn) -> dict[str, tuple[str, bool]]:
    """``{column: (type, required)}`` of the "WorldMeta" the search path finds; empty when there is none."""
    return {name: (kind, required) for name, kind, required in conn.execute(sql.SQL(
        "SELECT attname, format_type(atttypid, atttypmod), attnotnull AND NOT atthasdef AND attidentity = '' "
        "FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped ORDER BY attnum"),
        ['"WorldMeta"'])}


def no_registry_message(conn, where: str) -> str:
    """Why the search path finds no "WorldMeta": there is none, or the role's or the database's search_path
    (a typo, say) misses the schema that holds it."""
    search_path, schemas = conn.execute(sql.SQL(
        "SELECT current_setting('search_path'), array(SELECT n.nspname::text FROM pg_class c JOIN pg_namespace n "
        "ON n.oid = c.relnamespace WHERE c.relname = 'WorldMeta' AND c.relkind IN ('r', 'p') ORDER BY 1)")).fetchone()
    if schemas:
        return ('%s has "WorldMeta" in schema %s, which its search_path (%s) does not reach: set the search_path '
                'of the role or the database to the application\'s schema (ALTER ROLE ... SET search_path = ...), or '
                'name it in db_url (options=-c search_path=...)' % (where, ", ".join(schemas), search_path))
    return '%s has no "WorldMeta" table: run phoenix.platform.phoenix_schema first' % where


def registry_problems(columns: dict[str, tuple[str, bool]]) -> list[str]:
    """Why a "WorldMeta" cannot serve as the world registry; empty when it can."""
    problems = []
    missing = [c for c in REGISTRY_COLUMNS if c not in columns]
    if missing:
        problems.append("it lacks the column(s) %s" % ", ".join(missing))
    for column in ("tags", "dependencies"):
        if column in columns and columns[column][0] not in LIST_TYPES:
            problems.append("%s is %s, not a list (jsonb or text[])" % (column, columns[column][0]))
    for column in ("id", "createdBy"):
        allowed = TEXT_TYPES + (("uuid",) if column == "createdBy" else ())
        if column in columns and _base_type(columns[column][0]) not in allowed:
            problems.append("%s is %s, not %s" % (column, columns[column][0], " or ".join(allowed)))
    unfillable = [c for c, (kind, required) in columns.items() if required and c not in REGISTRY_COLUMNS
                  and kind not in ("json", "jsonb") and not kind.endswith("[]") and _base_type(kind) not in TEXT_TYPES]
    if unfillable:
        problems.append("its NOT NULL column(s) %s have no default and no empty value Phoenix could write"
                        % ", ".join(unfillable))
    return problems


def load_registry(conn, where: str) -> Registry:
    columns = registry_columns(conn)
    if not columns:
        raise PhoenixError(no_registry_message(conn, where))
    problems = registry_problems(columns)
    if problems:
        raise PhoenixError('the "WorldMeta" table of %s cannot hold worlds: %s' % (where, "; ".join(problems)))
    return Registry({c: kind for c, (kind, _required) in columns.items()},
                    frozenset(c for c, (_kind, required) in columns.items() if required))


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
    hours = meta["cleanupAfterHours"] or DEFAULT_TTL_HOURS
    return (meta["createdAt"] + timedelta(hours=hours)).isoformat(timespec="seconds")


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


def write_meta(conn, registry: Registry, world_id: str, stage: str, actor: str, current,
               changes: dict[str, Any]) -> None:
    """Insert or update a "WorldMeta" row with ``changes`` (column -> value), as the table's types demand."""
    values = {col: registry.value(col, v, actor) for col, v in changes.items()}
    table = sql.Identifier("WorldMeta")
    if current is None:
        values.update(id=world_id, environment=stage, createdBy=registry.value("createdBy", actor, actor))
        values.update({col: registry.empty(col) for col in registry.required if col not in values})
        insert_values(conn, table, values)
    else:
        update_values(conn, table, values, "id", world_id, extra=sql.SQL('"updatedAt" = now()'))


def require_registry_identified(conn, catalog, purpose: str, change: Change) -> None:
    """Refuse ``purpose``, which makes ``change`` to "WorldMeta" rows, before it writes, when a publication sends
    that change and "WorldMeta" has no replica identity (see ``require_identified``)."""
    require_identified(conn, catalog.with_registry([]), purpose, change)


def expired_condition(max_age_param):
    return sql.SQL(EXPIRED).format(max_age=max_age_param)


def stable_key(world: str, kind: str, index: int) -> str:
    """The key of the index-th generated row of a kind in a world: the same on every run."""
    return str(uuid.uuid5(KEY_NAMESPACE, "%s:%s:%d" % (world, kind, index)))
