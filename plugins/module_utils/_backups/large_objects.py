# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Large objects (``lo_create``, an ``oid`` column that points at one), which live beside the tables.

pg_dump writes a database's large objects into its dump, and ``--clean`` unlinks each of them before creating it
again; a large object made since the backup is in no dump, so a restore over the database would leave it there,
holding the bytes of a row the restore took away. An in-place restore therefore unlinks every large object of the
database first, in its own transaction, and the dump brings back its own. The manifest counts them, as it counts
each table's rows, and a restore into a new database is checked against that count.
"""

from __future__ import annotations

from typing import Any

from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._pg.sessions import acting_role

try:
    from psycopg import sql
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass

# Run first in an in-place restore's transaction; one row printed, whatever the number unlinked
UNLINK_ALL = b"SELECT count(pg_catalog.lo_unlink(oid)) FROM pg_catalog.pg_largeobject_metadata;\n"
# Large objects this role may not read: neither its own (or a role's whose privileges it has) nor granted to it or
# to PUBLIC. pg_read_all_data does not cover them.
UNREADABLE = (
    "SELECT pg_get_userbyid(lomowner), array_agg(oid::bigint ORDER BY oid) FROM pg_catalog.pg_largeobject_metadata "
    "WHERE NOT pg_has_role(current_user, lomowner, 'USAGE') AND NOT EXISTS (SELECT FROM aclexplode(lomacl) a "
    "WHERE a.privilege_type = 'SELECT' AND (a.grantee = 0 OR pg_has_role(current_user, a.grantee, 'USAGE'))) "
    "GROUP BY 1 ORDER BY 1")
NAMED_AT_MOST = 5


def count(conn) -> int:
    return conn.execute(sql.SQL("SELECT count(*) FROM pg_catalog.pg_largeobject_metadata")).fetchone()[0]


def changes(now: int, backup: Any) -> dict[str, int]:
    """The large objects now and in the backup (a count its manifest records since it was added), when a restore
    changes their number; empty when it does not, or the manifest does not say."""
    if not isinstance(backup, int) or backup == now:
        return {}
    return {"now": now, "backup": backup, "difference": backup - now}


def require_readable(conn, user: str) -> None:
    """Refuse, before anything is written, a backup by ``user`` (the role of ``conn``, not a superuser) that may not
    read every large object of the database: pg_dump reads them all, and would stop at the first it may not (unless
    ``lo_compat_privileges`` is on)."""
    if _compatible(conn):
        return
    refused = conn.execute(sql.SQL(UNREADABLE)).fetchall()
    if refused:
        oids = [oid for owner, owned in refused for oid in owned]
        named = ", ".join(map(str, oids[:NAMED_AT_MOST])) + (", ..." if len(oids) > NAMED_AT_MOST else "")
        raise PhoenixError(
            "role %s may not read %d large object(s) of role(s) %s (OID %s), and a backup holds every large object of "
            "the database: back up as their owner or a superuser, or grant %s SELECT on them (GRANT SELECT ON LARGE "
            "OBJECT %d TO %s); nothing was written"
            % (user, len(oids), ", ".join(owner for owner, owned in refused), named, user, oids[0], user))


def _compatible(conn) -> bool:
    """Whether the server checks no privileges on large objects (the setting of PostgreSQL before 9.0)."""
    return conn.execute(sql.SQL("SELECT current_setting('lo_compat_privileges')::bool")).fetchone()[0]


def require_unlinkable(conn, purpose: str) -> None:
    """Refuse, before anything is written, an in-place restore (``purpose``) by a role that may not unlink every
    large object of the database: only their owner or a superuser may (unless ``lo_compat_privileges`` is on)."""
    user, superuser = acting_role(conn)
    if superuser or _compatible(conn):
        return
    refused = conn.execute(sql.SQL(
        "SELECT pg_get_userbyid(lomowner), count(*) FROM pg_catalog.pg_largeobject_metadata "
        "WHERE NOT pg_has_role(current_user, lomowner, 'USAGE') GROUP BY 1 ORDER BY 1")).fetchall()
    if refused:
        owners = ", ".join(owner for owner, objects in refused)
        raise PhoenixError(
            "%s replaces the database's large objects with the backup's, and role %s may not unlink %d of them "
            "(of role(s) %s): only their owner or a superuser may; restore as %s (or a member of it) or a "
            "superuser, or use mode=swap, which restores into a new database"
            % (purpose, user, sum(objects for owner, objects in refused), owners, owners))
