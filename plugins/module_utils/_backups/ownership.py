# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who owns what a restore brings back.

An archive names each object's owner; pg_restore gives it back to that role, which only a superuser may do for
another role's objects, and only while the role exists. Restored by a superuser with ``--no-owner``, an
application's tables would belong to the superuser afterwards, and the application's owner role could neither
migrate them nor, without grants of its own, read them. So owners are kept whenever they can be; otherwise the
restoring role owns the objects, and a warning names whose they were.
"""

from __future__ import annotations

from typing import Iterable

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
    """Whether a restore on ``conn``'s server can give the objects back to ``owners``, and if not (some owner is
    another role, and this role is not a superuser, or an owner does not exist here), the warning to give."""
    user, superuser = conn.execute(sql.SQL("SELECT current_user, rolsuper FROM pg_roles "
                                           "WHERE rolname = current_user")).fetchone()
    others = sorted(owners - {user})
    if not others:
        return False, None  # the restoring role owns them either way
    existing = {name for (name,) in conn.execute(sql.SQL("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)"),
                                                 [others]).fetchall()}
    missing = [name for name in others if name not in existing]
    if superuser and not missing:
        return True, None
    reason = ("role(s) %s do not exist on this server" % ", ".join(missing) if missing
              else "only a superuser may give them back")
    return False, ("the restored objects of role(s) %s are owned by %s, the role that restored them: %s"
                   % (", ".join(others), user, reason))
