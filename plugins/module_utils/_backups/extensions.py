# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A dump's extensions, in a restore by a role that may not own them.

A DBA often installs an application database's extensions (pgcrypto, pg_trgm ...) as a superuser, and the
application's owner role restores. Over the database (``in_place``), ``--clean`` would drop and recreate each
extension, which only its owner may do: an extension the database already has is kept as it is, and left out of
the restore with its comment (TOC entries of an archive; statements of a plain dump). Into a new database (a
swap, a drill), every extension is created, and a role that is not a superuser may create only the trusted ones:
the others are named before anything is written.
"""

from __future__ import annotations

import re
from typing import Iterable

from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._pg.sessions import SUPERUSER, acting_role

try:
    from psycopg import sql
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass

# pg_restore --list: "<id>; <class> <oid> EXTENSION - <name> <owner>", "<id>; 0 0 COMMENT - EXTENSION <name> ..."
# (the comment's tag quotes the name where SQL would)
EXTENSION_ENTRY = re.compile(r"^\d+; \d+ \d+ (?:EXTENSION - |COMMENT - EXTENSION )(.*)$")


# What pg_dump --clean --if-exists writes of an extension that only its owner may run (a plain dump)
PLAIN_STATEMENT = re.compile(r"^(?:DROP EXTENSION IF EXISTS (.+);|COMMENT ON EXTENSION (.+?) IS ')")


def installed_extensions(conn) -> set[str]:
    """The extensions the database of ``conn`` has."""
    return {name for (name,) in conn.execute(sql.SQL("SELECT extname FROM pg_extension")).fetchall()}


def is_entry_of(line: str, extensions: set[str]) -> bool:
    """Whether the TOC ``line`` creates, or comments on, one of ``extensions``."""
    found = EXTENSION_ENTRY.match(line.rstrip("\n"))
    if not found:
        return False
    tag = found.group(1).rstrip() + " "
    return any(tag.startswith(spelling + " ") for spelling in _spellings(extensions))


def is_statement_on(line: str, extensions: set[str]) -> bool:
    """Whether the plain dump's ``line`` starts a DROP EXTENSION or COMMENT ON EXTENSION on one of ``extensions``."""
    found = PLAIN_STATEMENT.match(line)
    return bool(found) and (found.group(1) or found.group(2)) in _spellings(extensions)


def dump_extensions(toc: Iterable[str]) -> list[str]:
    """The extensions a dump creates, from its ``pg_restore --list`` lines."""
    return sorted({line.split(" EXTENSION - ", 1)[1].rstrip().split(" ", 1)[0] for line in toc
                   if EXTENSION_ENTRY.match(line) and " EXTENSION - " in line})


def require_creatable(admin, extensions: list[str], purpose: str, remedy: str) -> None:
    """Refuse, before anything is written, extensions this role may not create: not trusted (only a superuser
    creates those; ``remedy`` says what to do), or not installed on the server at all."""
    if not extensions:
        return
    rows = admin.execute(sql.SQL(
        "SELECT e.name, v.trusted, " + SUPERUSER + " FROM unnest(%s::text[]) e(name) LEFT JOIN "
        "pg_available_extensions a ON a.name = e.name LEFT JOIN pg_available_extension_versions v "
        "ON v.name = a.name AND v.version = a.default_version ORDER BY 1"), [extensions]).fetchall()
    missing = [name for name, trusted, superuser in rows if trusted is None]
    if missing:
        raise PhoenixError("%s creates the dump's extensions in a new database, and this server has no %s "
                           "installed; install it on the server" % (purpose, ", ".join(missing)))
    untrusted = [name for name, trusted, superuser in rows if not trusted and not superuser]
    if untrusted:
        raise PhoenixError("%s creates the dump's extensions in a new database, and role %s may not create %s: "
                           "only a superuser creates an extension that is not trusted; %s"
                           % (purpose, acting_role(admin)[0], ", ".join(untrusted), remedy))


def _spellings(extensions: set[str]) -> set[str]:
    """The names as a dump may write them: as they are, and quoted."""
    return extensions | {'"%s"' % name.replace('"', '""') for name in extensions}
