# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Row-level security: Phoenix's sessions run with it off, as pg_dump's do.

A policy filters the queries of every role but a superuser, a role with BYPASSRLS and the table's owner (and, with
FORCE ROW LEVEL SECURITY, the owner too). Phoenix reads and writes whole worlds, whole tables: a filtered query
would count a world short, copy or export part of it, or delete part of it and leave the rest behind. With row
security off, the server refuses such a query instead, and the run's transaction is rolled back.
"""

from __future__ import annotations

# what the server says when row security is off and a policy would filter a query
FILTERED = "would be affected by row-level security policy"


def with_row_security_advice(message: str) -> str:
    """``message`` (the server's), with what to do when it refused a query that a policy would filter."""
    if FILTERED not in message:
        return message
    return message + (" (Phoenix reads and writes every row of a world or a table, and row-level security would hide "
                      "some from the role it connects as: give that role BYPASSRLS, or run this as a superuser)")
