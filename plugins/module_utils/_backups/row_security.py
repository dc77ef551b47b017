# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Row-level security and backups.

pg_dump reads every row of a table or none: it turns row security off, and the server then refuses any query that
a policy would filter. A policy filters the queries of every role but a superuser, a role with BYPASSRLS and the
table's owner (and, with FORCE ROW LEVEL SECURITY, the owner too). A backup role given ``pg_read_all_data`` is
such a role, and its backup of a database with row-level security would fail part-way.
"""

from __future__ import annotations

from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._pg.catalog import table_label
from ansible_collections.phoenix.platform.plugins.module_utils._pg.row_security import (
    EXEMPT,
    FILTERED,
    FILTERING,
    refused_by_a_policy,
)

try:
    import psycopg
    from psycopg import sql
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass

NAMED_AT_MOST = 8
BYPASS = "give the role BYPASSRLS (ALTER ROLE %s BYPASSRLS), or %s as a superuser"


def require_every_row_readable(conn, why: str, action: str) -> None:
    """Refuse, before anything is written, a run (which reads every row of every table: ``why``; ``action`` says
    what to do as a superuser instead) by a role whose queries a table's row-level security policies would filter."""
    user, exempt = conn.execute(sql.SQL("SELECT current_user, " + EXEMPT)).fetchone()
    if exempt:
        return
    filtered = conn.execute(sql.SQL("SELECT n.nspname, c.relname, c.relforcerowsecurity " + FILTERING + " ORDER BY 1, 2")
                            ).fetchall()
    if filtered:
        named = ", ".join(table_label(schema, name) + (" (forced, for its owner too)" if forced else "")
                          for schema, name, forced in filtered[:NAMED_AT_MOST])
        more = " and %d more" % (len(filtered) - NAMED_AT_MOST) if len(filtered) > NAMED_AT_MOST else ""
        raise PhoenixError("row-level security filters what role %s reads of %s%s, and %s: %s; nothing was written"
                           % (user, named, more, why, BYPASS % (user, action)))


def counted_in_full(exc: Exception, conn) -> None:
    """Turn the server's refusal of a count that a policy would filter (``exc``, with row security off) into one
    message: such a count is not the table's. ``conn``: the counting session, whose transaction may have failed."""
    try:
        refused = refused_by_a_policy(conn, str(exc), getattr(exc, "sqlstate", None))
    except psycopg.Error:
        refused = FILTERED in str(exc)
    if refused:
        user = conn.info.user
        raise PhoenixError("role %s may not count every row of a table, as its row-level security policies filter "
                           "what the role reads (%s): %s" % (user, str(exc).strip().splitlines()[0],
                                                             BYPASS % (user, "run this")))
