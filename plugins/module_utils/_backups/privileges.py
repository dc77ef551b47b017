# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The tables and sequences a backup reads, and a role that may not read them all.

pg_dump reads the rows of every table and the value of every sequence of the database (of an extension's, only
those it marks as configuration), and stops at the first it may not read. An application's owner role
backing up its database often meets one a DBA made there as a superuser (a reporting schema, say).
"""

from __future__ import annotations

from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._pg.catalog import table_label

try:
    from psycopg import sql
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass

NAMED_AT_MOST = 8
KINDS = {"r": "table", "p": "table", "S": "sequence"}
# The relations pg_dump reads, as c (in its schema n): not temporary, outside the system schemas, and not an
# extension's own, unless a configuration table of it (whose rows it dumps)
DUMPED_RELATIONS = (
    "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relpersistence <> 't' "
    "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast' "
    "AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid "
    "WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e' "
    "AND NOT c.oid = ANY(coalesce(e.extconfig, '{}'))) ")
UNREADABLE = (
    "SELECT c.relkind, n.nspname, c.relname, pg_get_userbyid(c.relowner) " + DUMPED_RELATIONS
    + "AND c.relkind IN ('r', 'p', 'S') "
    "AND NOT (has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT')) ORDER BY 2, 3")


def require_readable_relations(conn, user: str) -> None:
    """Refuse, before anything is written, a backup by ``user`` (the role of ``conn``, not a superuser) that may not
    read every table and sequence pg_dump reads (SELECT on it, USAGE on its schema)."""
    refused = conn.execute(sql.SQL(UNREADABLE)).fetchall()
    if refused:
        named = ", ".join("%s %s (of %s)" % (KINDS[kind], table_label(schema, name), owner)
                          for kind, schema, name, owner in refused[:NAMED_AT_MOST])
        more = " and %d more" % (len(refused) - NAMED_AT_MOST) if len(refused) > NAMED_AT_MOST else ""
        raise PhoenixError(
            "role %s may not read %s%s, and a backup holds every table and sequence of the database: grant it "
            "pg_read_all_data (GRANT pg_read_all_data TO %s), or USAGE on their schemas and SELECT on them, or back "
            "up as a superuser; nothing was written" % (user, named, more, user))
