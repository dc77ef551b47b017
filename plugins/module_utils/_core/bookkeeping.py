# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the phoenix schema records about its own database: the migrations applied, the application schema."""

from __future__ import annotations

from ansible_collections.phoenix.platform.plugins.module_utils._pg.catalog import relation_exists

try:
    from psycopg import sql
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass


def applied_versions(conn) -> set[int]:
    if not relation_exists(conn, "phoenix.migrations"):
        return set()
    return {row[0] for row in conn.execute(sql.SQL("SELECT version FROM phoenix.migrations"))}


def migration_name(conn, version: int) -> str | None:
    """The name an applied migration was recorded under (e.g. whether "WorldMeta" was created or adopted)."""
    if not relation_exists(conn, "phoenix.migrations"):
        return None
    row = conn.execute(sql.SQL("SELECT name FROM phoenix.migrations WHERE version = %s"), [version]).fetchone()
    return row[0] if row else None


def registered_app_schema(conn) -> str | None:
    if not relation_exists(conn, "phoenix.environment"):
        return None
    row = conn.execute(sql.SQL("SELECT app_schema FROM phoenix.environment")).fetchone()
    return row[0] if row else None
