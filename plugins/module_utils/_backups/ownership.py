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

import re
from typing import Iterable

from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._pg.sessions import acting_role

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
    user, others, reason = _unsettable(conn, owners)
    if not others:
        return False, None  # the restoring role owns them either way
    if reason is None:
        return True, None
    return False, ("the restored objects of role(s) %s are owned by %s, the role that restored them: %s"
                   % (", ".join(others), user, reason))


def require_plain_owners(conn, owners: set[str], purpose: str) -> None:
    """A plain dump gives each object to its owner itself (``ALTER ... OWNER TO`` in its script), and psql stops at
    the first it may not give: refuse such a restore (``purpose``) before anything is written."""
    user, others, reason = _unsettable(conn, owners)
    if reason:
        raise PhoenixError("%s runs a plain dump, which gives its objects to role(s) %s itself, and role %s may not: "
                           "%s; run it as a superuser or as a role that may act as them, or take backups in format "
                           "custom or directory, whose objects a restore gives to the restoring role when it must"
                           % (purpose, ", ".join(others), user, reason))


def _unsettable(conn, owners: set[str]) -> tuple[str, list[str], str | None]:
    """The role of ``conn``, the other roles among ``owners``, and why it may not give objects to them (None when
    it may, as ``owners_kept`` says)."""
    user, superuser = acting_role(conn)
    others = sorted(owners - {user})
    if not others:
        return user, others, None
    membership = "SET" if conn.info.server_version >= SET_OPTION_SINCE else "MEMBER"
    settable = dict(conn.execute(sql.SQL("SELECT rolname, pg_has_role(current_user, oid, %s) FROM pg_roles "
                                         "WHERE rolname = ANY(%s)"), [membership, others]).fetchall())
    missing = [name for name in others if name not in settable]
    foreign = [name for name in others if name in settable and not settable[name]]
    if not missing and (superuser or not foreign):
        return user, others, None
    return user, others, ("role(s) %s do not exist on this server" % ", ".join(missing) if missing
                          else "it is not a superuser, and may not act as %s (SET ROLE)" % ", ".join(foreign))


# The entries of pg_restore --list whose objects an in-place restore drops (--clean), by the catalog that holds
# them: "<id>; <catalog oid> <object oid> <kind> <schema or -> <name> <owner>". A function's name carries its
# arguments, which the catalog's name column does not; an operator's, its symbol only.
DROPPED_FROM = {
    1259: ("pg_class", "relname", "relowner"),
    1255: ("pg_proc", "proname", "proowner"),
    1247: ("pg_type", "typname", "typowner"),
    2615: ("pg_namespace", "nspname", "nspowner"),
    2617: ("pg_operator", "oprname", "oprowner"),
    2616: ("pg_opclass", "opcname", "opcowner"),
    2753: ("pg_opfamily", "opfname", "opfowner"),
    3456: ("pg_collation", "collname", "collowner"),
    2607: ("pg_conversion", "conname", "conowner"),
    3600: ("pg_ts_dict", "dictname", "dictowner"),
    3602: ("pg_ts_config", "cfgname", "cfgowner"),
    3381: ("pg_statistic_ext", "stxname", "stxowner"),
    2612: ("pg_language", "lanname", "lanowner"),
}
DROPPED_KINDS = ("MATERIALIZED VIEW", "FOREIGN TABLE", "TABLE", "VIEW", "SEQUENCE", "INDEX", "FUNCTION", "PROCEDURE",
                 "AGGREGATE", "TYPE", "DOMAIN", "SCHEMA", "OPERATOR CLASS", "OPERATOR FAMILY", "OPERATOR",
                 "COLLATION", "CONVERSION", "TEXT SEARCH DICTIONARY", "TEXT SEARCH CONFIGURATION", "STATISTICS",
                 "PROCEDURAL LANGUAGE")
DROPPED_ENTRY = re.compile(r"^\d+; (%s) (\d+) (%s) (\S+) (.+) \S+$" % (
    "|".join(map(str, DROPPED_FROM)), "|".join(map(re.escape, DROPPED_KINDS))))
NAMED_AT_MOST = 8


def dropped_entries(toc: Iterable[str]) -> dict[int, list[tuple[int, str, str]]]:
    """The entries of a ``pg_restore --list`` whose objects ``--clean`` drops, by the OID of their catalog: each
    object's OID, its words for a message, and its name as the catalog holds it."""
    entries: dict[int, list[tuple[int, str, str]]] = {}
    for line in toc:
        entry = DROPPED_ENTRY.match(line.rstrip("\n"))
        if entry:
            catalog, oid, kind, schema, tag = entry.groups()
            spoken = "%s %s" % (kind.lower(), tag if schema == "-" else "%s.%s" % (schema, tag))
            entries.setdefault(int(catalog), []).append((int(oid), spoken, tag.split("(", 1)[0]))
    return entries


def require_droppable(conn, toc: Iterable[str], purpose: str) -> None:
    """Refuse, before anything is written, an in-place restore (``purpose``) by a role that is not a superuser of a
    dump whose objects are in the database under a role it may not act as: ``--clean`` drops each first, which only
    its owner (or a superuser) may. An object is the dump's when it has the entry's OID and name (an object made
    again since the backup has another OID, and is dropped by name: then pg_restore's own error stays the message;
    so does psql's for a plain dump, whose entries carry no OID)."""
    user, superuser = acting_role(conn)
    if superuser:
        return
    refused = []
    for catalog, listed in sorted(dropped_entries(toc).items()):
        table, name_column, owner_column = DROPPED_FROM[catalog]
        refused += conn.execute(sql.SQL(
            "SELECT e.spoken, pg_get_userbyid(o.{owner}) FROM {table} o JOIN unnest(%s::oid[], %s::text[], "
            "%s::text[]) e(oid, spoken, name) ON e.oid = o.oid AND e.name = o.{name}::text "
            "WHERE NOT pg_has_role(current_user, o.{owner}, 'USAGE')").format(
                table=sql.Identifier("pg_catalog", table), name=sql.Identifier(name_column),
                owner=sql.Identifier(owner_column)), [list(column) for column in zip(*listed)]).fetchall()
    refused.sort()
    if refused:
        named = ", ".join("%s (of %s)" % found for found in refused[:NAMED_AT_MOST])
        more = " and %d more" % (len(refused) - NAMED_AT_MOST) if len(refused) > NAMED_AT_MOST else ""
        owners = ", ".join(sorted({owner for name, owner in refused}))
        raise PhoenixError("%s drops and creates again %s%s, and role %s may not: only their owner or a superuser "
                           "drops them; restore as %s (or a member of it) or a superuser, or give them to %s (ALTER "
                           "... OWNER TO)" % (purpose, named, more, user, owners, user))
