# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Row-level security: Phoenix's sessions run with it off, as pg_dump's do.

A policy filters the queries of every role but a superuser, a role with BYPASSRLS and the table's owner (and, with
FORCE ROW LEVEL SECURITY, the owner too). Phoenix reads and writes whole worlds, whole tables: a filtered query
would count a world short, copy or export part of it, or delete part of it and leave the rest behind. With row
security off, the server refuses such a query instead, and the run's transaction is rolled back.
"""

from __future__ import annotations

from typing import Callable

from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._pg.catalog import named_in

try:
    import psycopg
    from psycopg import sql
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass

# what the server says when row security is off and a policy would filter a query (on a server whose lc_messages is
# English; otherwise, its words for it, with the table's name)
FILTERED = "would be affected by row-level security policy"
REFUSED = "42501"  # insufficient_privilege: that refusal's SQLSTATE, and a denied privilege's
# the tables whose policies filter what the session's role reads, unless the role is EXEMPT
FILTERING = ("FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
             "WHERE c.relrowsecurity AND c.relkind IN ('r', 'p') "
             "AND (c.relforcerowsecurity OR NOT pg_has_role(current_user, c.relowner, 'USAGE'))")
EXEMPT = "(SELECT rolsuper OR rolbypassrls FROM pg_catalog.pg_roles WHERE rolname = current_user)"
ADVICE = (" (Phoenix reads and writes every row of a world or a table, and row-level security would hide some from the "
          "role it connects as: give that role BYPASSRLS, or run this as a superuser)")


def with_row_security_advice(message: str, sqlstate: str | None, connect: Callable) -> str:
    """``message`` (the server's), with what to do when it refused a query that a policy would filter
    (``connect``: a new session as the run's role, the run's own being rolled back; see ``refused_by_a_policy``)."""
    refused = FILTERED in message
    if not refused and sqlstate == REFUSED:
        try:
            with connect() as conn:
                refused = refused_by_a_policy(conn, message, sqlstate)
        except (psycopg.Error, PhoenixError):
            pass  # the message is still worth giving without the advice
    return message + ADVICE if refused else message


def refused_by_a_policy(conn, message: str, sqlstate: str | None) -> bool:
    """Whether the server's ``message`` refused a query that a policy would filter. A server that speaks another
    language says so in other words: then a refusal naming a table whose policies filter what the role of ``conn``
    reads is one."""
    if FILTERED in message:
        return True
    if sqlstate != REFUSED:
        return False
    tables = [name for name, in conn.execute(sql.SQL("SELECT c.relname " + FILTERING + " AND NOT " + EXEMPT)).fetchall()]
    return any(named_in(message, name) for name in tables)
