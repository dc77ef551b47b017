# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who owns what a restore brings back.

An archive names each object's owner; pg_restore gives it back to that role, which a superuser may do for any
role's objects and another role only for those of roles it may act as, and only while the role exists. Restored
with ``--no-owner`` by a superuser, an application's tables would belong to the superuser afterwards, and the
application's owner role could neither migrate them nor, without grants of its own, read them. So owners are kept whenever they can be; otherwise the
restoring role owns the objects, and a warning names whose they were.
"""

from __future__ import annotations

from typing import Iterable

from ansible_collections.phoenix.platform.plugins.module_utils._pg.sessions import SUPERUSER

SET_OPTION_SINCE = 160000  # ALTER ... OWNER TO a role needs the SET option of membership in it

try:
    from psycopg import sql
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass


def dump_owners(toc: Iterable[str]) -> set[str]:
    """The roles that own a dump's objects, from its ``pg_restore --list`` lines (whose last field is the owner;
    empty for entries that have none, such as extensions)."""
    return {line.rstrip("\n").rsplit(" ", 1)[-1] for line in toc
            if line.strip() and not line.startswith(";")} - {""}


def owners_kept(conn, owners: set[str]) -> tuple[bool, str | None]:
    """Whether a restore on ``conn``'s server can give the objects back to ``owners``, and if not, the warning to
    give. It can when every owner exists here, and this role is a superuser or may act as each of them (SET ROLE:
    a member of it, with the SET option from PostgreSQL 16 on)."""
    user, superuser = conn.execute(sql.SQL("SELECT current_user, " + SUPERUSER)).fetchone()
    others = sorted(owners - {user})
    if not others:
        return False, None  # the restoring role owns them either way
    membership = "SET" if conn.info.server_version >= SET_OPTION_SINCE else "MEMBER"
    settable = dict(conn.execute(sql.SQL("SELECT rolname, pg_has_role(current_user, oid, %s) FROM pg_roles "
                                         "WHERE rolname = ANY(%s)"), [membership, others]).fetchall())
    missing = [name for name in others if name not in settable]
    foreign = [name for name in others if name in settable and not settable[name]]
    if not missing and (superuser or not foreign):
        return True, None
    reason = ("role(s) %s do not exist on this server" % ", ".join(missing) if missing
              else "it is not a superuser, and may not act as %s (SET ROLE)" % ", ".join(foreign))
    return False, ("the restored objects of role(s) %s are owned by %s, the role that restored them: %s"
                   % (", ".join(others), user, reason))
