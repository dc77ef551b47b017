# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a DBA adds to an application's database as a superuser, in a restore by a role that is not one.

Event triggers (a DDL audit, say), publications (change data capture), foreign-data wrappers, foreign servers and
their user mappings are often a DBA's, not the application's. A restore drops each object of the dump and creates
it again (``in_place``), or creates each in a new database (a swap, a drill). Only a superuser creates an event
trigger or a foreign-data wrapper, and only an object's owner (or a superuser) drops it. pg_restore would find
that out at the first such object, after a safety backup or a whole parallel load; the restore names them all
before anything is written, in check mode too; a plain dump's are read from the comments pg_dump writes (see
``plain_dump``).
"""

from __future__ import annotations

import re
from typing import Iterable

from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._pg.sessions import acting_role

try:
    from psycopg import sql
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass

SUPERUSER_ONLY = ("EVENT TRIGGER", "FOREIGN DATA WRAPPER")
OWNER_ONLY = ("PUBLICATION TABLES IN SCHEMA", "PUBLICATION TABLE", "PUBLICATION", "SERVER", "USER MAPPING")
REASONS = ((SUPERUSER_ONLY, "only a superuser creates event triggers and foreign-data wrappers"),
           (OWNER_ONLY, "only their owner or a superuser replaces publications, foreign servers and user mappings"))
SPOKEN = {"SERVER": "foreign server", "FOREIGN DATA WRAPPER": "foreign-data wrapper"}
# pg_restore --list: "<id>; <class> <oid> <kind> <schema or -> <name ...> <owner>"
ENTRY = re.compile(r"^\d+; \d+ \d+ (%s) (.+) (\S+)$" % "|".join(re.escape(kind) for kind in SUPERUSER_ONLY + OWNER_ONLY))


def dba_entries(toc: Iterable[str]) -> list[tuple[str, str, str]]:
    """(kind, object, owner) of each entry of a ``pg_restore --list`` that only a superuser or its owner
    replaces."""
    found = []
    for line in toc:
        entry = ENTRY.match(line.rstrip("\n"))
        if entry:
            kind, tag, owner = entry.groups()
            tag = tag[2:] if tag.startswith("- ") else tag  # no schema
            tag = tag[len(kind) + 1:] if tag.startswith(kind + " ") else tag  # a user mapping's tag repeats its kind
            found.append((kind, "%s %s" % (SPOKEN.get(kind, kind.lower()), tag), owner))
    return found


def require_replaceable(conn, toc: Iterable[str], purpose: str) -> None:
    """Refuse, before anything is written, a dump holding objects that this role, which ``purpose`` (``restoring
    backup ... over database ...``) has drop or create, may not: any event trigger or foreign-data wrapper unless
    it is a superuser, and any other of ``OWNER_ONLY`` whose owner it may not act as."""
    entries = dba_entries(toc)
    if not entries:
        return
    user, superuser = acting_role(conn)
    if superuser:
        return
    owners = sorted({owner for kind, name, owner in entries})
    acts_as = dict(conn.execute(sql.SQL("SELECT o.name, coalesce(pg_has_role(current_user, r.oid, 'USAGE'), false) "
                                        "FROM unnest(%s::text[]) o(name) LEFT JOIN pg_roles r ON r.rolname = o.name"),
                                [owners]).fetchall())
    refused = [(kind, name, owner) for kind, name, owner in entries if kind in SUPERUSER_ONLY or not acts_as[owner]]
    if not refused:
        return
    reasons = [reason for kinds, reason in REASONS if any(kind in kinds for kind, name, owner in refused)]
    raise PhoenixError("%s drops or creates %s, and role %s may not (%s); restore as a superuser" % (
        purpose, ", ".join("%s (of %s)" % (name, owner) for kind, name, owner in refused), user, "; ".join(reasons)))
