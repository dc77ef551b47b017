# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Databases a restore builds next to the environment's: named after it, so the next run finds a leftover, and
marked by their comment, so that run drops only a database a restore made, never one that merely has the name.
A run killed while the server created the database leaves it without the mark, and empty: a leftover without the
mark is dropped only when it holds no object at all."""

from __future__ import annotations

import hashlib
from typing import NamedTuple

from ansible_collections.phoenix.platform.plugins.module_utils._backups import large_objects, store
from ansible_collections.phoenix.platform.plugins.module_utils._backups.row_counts import table_counts
from ansible_collections.phoenix.platform.plugins.module_utils._core.bookkeeping import applied_versions
from ansible_collections.phoenix.platform.plugins.module_utils._core.connection import open_session
from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._pg.pooler import require_reachable_everywhere
from ansible_collections.phoenix.platform.plugins.module_utils._pg.sessions import SUPERUSER, acting_role, end_sessions

try:
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict, make_conninfo
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass

SCRATCH_MARK = "phoenix.platform scratch database"
# whether a pg_database row's comment starts with the mark given as a parameter (see ``mark``)
MARKED = "coalesce(starts_with(shobj_description(oid, 'pg_database'), %s), false)"
FIRST_USER_OID = 16384  # the server's FirstNormalObjectId: what CREATE DATABASE copies from template0 is below it
MAX_IDENTIFIER = 63  # bytes: PostgreSQL's NAMEDATALEN - 1; a longer name is cut there by the server
DIGEST_CHARS = 8


def scratch_name(prefix: str, database: str, suffix: str = "") -> str:
    """``<prefix><database><suffix>``. When that does not fit an identifier, the database's name is shortened and
    followed by a digest of the whole name: two long names that start alike (``shop_eu_tenant_a``,
    ``shop_eu_tenant_b``) keep scratch names of their own, so a run for one never takes the other's for a leftover."""
    whole = prefix + database + suffix
    if len(whole.encode()) <= MAX_IDENTIFIER:
        return whole
    digest = "_" + hashlib.sha256(database.encode()).hexdigest()[:DIGEST_CHARS]
    room = MAX_IDENTIFIER - len((prefix + digest + suffix).encode())
    return prefix + database.encode()[:room].decode(errors="ignore") + digest + suffix  # no character cut in two


class Ownership(NamedTuple):
    owner: str
    may_drop: bool  # this role has the owner's privileges, or is a superuser: it may drop or rename the database
    scratch: bool  # it carries the comment create_scratch gives


def database_owner(admin, database: str) -> Ownership | None:
    """Who owns ``database``, and what this role may do with it; None when there is no such database."""
    found = admin.execute(sql.SQL(
        "SELECT pg_get_userbyid(datdba), pg_has_role(datdba, 'USAGE') OR " + SUPERUSER + ", " + MARKED + " "
        "FROM pg_database WHERE datname = %s"), [SCRATCH_MARK, database]).fetchone()
    return Ownership(*found) if found else None


def mark(database: str, kind: str, what: str) -> sql.Composable:
    """The comment that marks ``database`` as one of ``kind`` (a mark a run finds again with ``MARKED``)."""
    return sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(database), sql.Literal(kind + ": " + what))


def create_scratch(admin, database: str, options: sql.Composable, purpose: str) -> None:
    """``CREATE DATABASE database options``, marked as a scratch database for ``purpose``."""
    admin.execute(sql.SQL("CREATE DATABASE {} {}").format(sql.Identifier(database), options))
    admin.execute(mark(database, SCRATCH_MARK, purpose + "; a run that finds it left behind drops it"))


def leftover_droppable(admin, conninfo: str, database: str) -> bool:
    """Whether ``database`` (a scratch database a killed run left; ``conninfo`` reaches the server) is there;
    refuses when it lacks the scratch mark and holds something (someone else's database that has the name), or this
    role may not drop it, before anything is written."""
    found = database_owner(admin, database)
    if found and not found.scratch and not _holds_nothing(make_conninfo(conninfo, dbname=database)):
        raise PhoenixError("database %s is in the way, and no Phoenix restore made it (its comment does not start "
                           "with '%s', and it holds objects or could not be reached to tell), so it is not dropped; "
                           "rename it, or drop it yourself if it is a leftover of an older release"
                           % (database, SCRATCH_MARK))
    if found and not found.may_drop:
        owner = found.owner
        raise PhoenixError("database %s, left by a run that was killed, is in the way, and role %s may not drop it: "
                           "%s owns it; drop it as %s or a superuser" % (database, acting_role(admin)[0], owner, owner))
    return found is not None


def _holds_nothing(conninfo: str) -> bool:
    """Whether the database of ``conninfo`` has no object beyond those CREATE DATABASE gives it (no schema,
    relation, function, type or extension of its own); False when it cannot be reached to tell."""
    catalogs = ("pg_namespace", "pg_class", "pg_proc", "pg_type", "pg_extension")
    try:
        with open_session(conninfo) as conn:
            return not conn.execute(sql.SQL("SELECT {}").format(sql.SQL(" OR ").join(
                sql.SQL("EXISTS (SELECT FROM {} WHERE oid >= %(first)s)").format(sql.Identifier("pg_catalog", catalog))
                for catalog in catalogs)), {"first": FIRST_USER_OID}).fetchone()[0]
    except psycopg.OperationalError:
        return False


def drop_database(admin, database: str) -> None:
    """Drop ``database`` after ending its sessions (not WITH (FORCE), which a role that is not a superuser may not
    use while autovacuum works there: a plain DROP ends autovacuum itself, see ``sessions``)."""
    end_sessions(admin, [database])
    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(database)))


def require_connectable(conninfo: str, purpose: str, otherwise: str) -> None:
    """Refuse, before any restore, a new database the server lets this role create but not connect to (pg_hba.conf
    names the databases a role may reach, often only the application's own), or that pgpool-II cannot reach yet on a
    standby it also connects to (see ``pooler``)."""
    try:
        open_session(conninfo).close()
    except psycopg.OperationalError as exc:
        reason = " ".join(str(exc).split()) or exc.__class__.__name__
        database = conninfo_to_dict(conninfo)["dbname"]
        require_reachable_everywhere(reason, database, purpose, otherwise)
        raise PhoenixError("%s into a new database %s, and the server refuses this role's connections to it (%s); "
                           "allow them in pg_hba.conf (that database's name, or all)%s"
                           % (purpose, database, reason, otherwise)) from None


def restored_problems(conninfo: str, backup: store.Backup, loaded: dict[str, int] | None = None) -> list[str]:
    """Where the restored database differs from the backup's manifest: a table's row count, the schema version,
    the number of large objects (manifests written before these were recorded have none to compare). ``loaded``:
    counts the server reported as it loaded those tables, which are not counted again."""
    with open_session(conninfo) as conn:
        restored = table_counts(conn, loaded)
        version = max(applied_versions(conn) or {0})
        objects = large_objects.changes(large_objects.count(conn), backup.manifest.get("large_objects"))
    expected = backup.manifest["row_counts"]
    problems = ["%s: %d row(s) restored, the manifest says %d" % (t, restored.get(t, 0), expected.get(t, 0))
                for t in sorted(set(expected) | set(restored)) if restored.get(t, 0) != expected.get(t, 0)]
    expected_version = backup.manifest.get("schema_version")
    if expected_version is not None and version != expected_version:
        problems.append("schema version %d restored, the manifest says %s" % (version, expected_version))
    if objects:
        problems.append("%d large object(s) restored, the manifest says %d" % (objects["now"], objects["backup"]))
    return problems
