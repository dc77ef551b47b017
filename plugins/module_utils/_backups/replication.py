# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Logical replication around a restore: a database's slots, subscriptions and publications, and a dump's.

A logical replication slot (what a change data capture pipeline reads) and a subscription (what pulls a
publisher's changes in) belong to a database by its OID, not its name. A swap gives the name to a new database: they
would stay with the old one, kept under another name, where the slot's consumer no longer finds it (and the next swap
drops it with that database) and the subscription goes on applying changes. So a swap of a database that has any is refused
before anything is written; an in-place restore keeps them, and the slot's consumer reads the restore's changes.

While a logical slot reads the database, an in-place restore keeps its publications as they are (the dump's
entries that add tables to them are restored, but to one of all tables, which holds them already). pg_restore
--clean would drop each and create it again at the end, in the restore's transaction: the slot's consumer decodes
the rows restored in between, finds no publication of that name there, and fails on them for good. A plain dump's
script cannot keep them, so its in-place restore over such a database is refused. Without a slot, nothing reads
them, and the dump's replace them.

A backup holds no subscriptions (``pg_dump --no-subscriptions``: their connection strings may hold the publisher's
password), but one taken by an older release as a superuser does. A restore leaves them out (``pg_restore
--no-subscriptions``) and says so: restored beside or over another environment, one would pull the publisher's
changes there, and an in-place restore cannot replace one (DROP SUBSCRIPTION may not run in its transaction). A
plain dump's script cannot leave them out, so its restore is refused up front.
"""

from __future__ import annotations

import re
from typing import Iterable

from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._pg.sessions import SESSION_IN_WORDS

try:
    from psycopg import sql
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass

LEAVE_OUT_SUBSCRIPTIONS = "--no-subscriptions"
# pg_restore --list: "<id>; <class> <oid> SUBSCRIPTION - <name> <owner>" (a plain dump's reading: class and OID 0)
SUBSCRIPTION_ENTRY = re.compile(r"^\d+; \d+ \d+ SUBSCRIPTION - (.+) (\S+)$")
PUBLICATION_ENTRY = re.compile(r"^\d+; \d+ \d+ PUBLICATION - (.+) (\S+)$")  # the publication, not its tables
# a table or schema added to a publication: "... PUBLICATION TABLE <schema> <publication> <table> <owner>", "...
# PUBLICATION TABLES IN SCHEMA <schema> <publication> <schema> <owner>"
PUBLICATION_MEMBER = re.compile(r"^\d+; \d+ \d+ PUBLICATION (?:TABLE|TABLES IN SCHEMA) \S+ (.+) \S+$")


def dump_subscriptions(toc: Iterable[str]) -> list[str]:
    """The subscriptions of a dump, ``<name> (of <owner>)``, from its ``pg_restore --list`` lines."""
    found = (SUBSCRIPTION_ENTRY.match(line.rstrip("\n")) for line in toc)
    return ["%s (of %s)" % entry.groups() for entry in found if entry]


def subscriptions_left_out(toc: list[str], fmt: str, purpose: str) -> list[str]:
    """The warning for the dump's subscriptions, which ``purpose`` (``restoring backup ... over database ...``)
    leaves out; a plain dump holding any is refused, as its script would create them."""
    subscriptions = dump_subscriptions(toc)
    if not subscriptions:
        return []
    several = len(subscriptions) > 1
    named = ("subscriptions " if several else "subscription ") + ", ".join(subscriptions)
    if fmt == "plain":
        raise PhoenixError("%s would create %s: a plain dump's script cannot leave subscriptions out, and one would "
                           "pull its publisher's changes into the restored database; restore a custom or directory "
                           "backup (they restore without subscriptions)" % (purpose, named))
    verb, pronoun = ("were", "them") if several else ("was", "it")
    return ["%s of the dump %s not restored: a restore leaves logical replication as the database has it; create %s "
            "by hand where the database should subscribe" % (named, verb, pronoun)]


def kept_publications(conn, toc: Iterable[str], fmt: str, purpose: str) -> tuple[frozenset[str], frozenset[str]]:
    """The publications an in-place restore (``purpose``) of a dump of format ``fmt`` keeps, and those of them that
    publish all tables: all the database has while a logical slot reads it, else none (see above). A plain dump's
    script replaces them, so it is refused while a slot reads the database and the dump holds one of them."""
    slots = [name for (name,) in conn.execute(sql.SQL(
        "SELECT slot_name FROM pg_replication_slots WHERE database = current_database() AND slot_type = 'logical' "
        "ORDER BY 1")).fetchall()]
    if not slots:
        return frozenset(), frozenset()
    found = conn.execute(sql.SQL("SELECT pubname, puballtables FROM pg_publication")).fetchall()
    existing = frozenset(name for name, every in found)
    if fmt != "plain":
        return existing, frozenset(name for name, every in found if every)
    replaced = sorted({entry.group(1) for entry in (PUBLICATION_ENTRY.match(line.rstrip("\n")) for line in toc)
                       if entry and entry.group(1) in existing})
    if replaced:
        slot, read, its = ("slots", "read", "their") if len(slots) > 1 else ("slot", "reads", "its")
        raise PhoenixError("%s would drop and create %s %s, and logical replication %s %s %s this database: %s "
                           "consumer would fail for good on the rows restored in between; restore a custom or "
                           "directory backup (they keep the database's publications)" % (
                               purpose, "publications" if len(replaced) > 1 else "publication", ", ".join(replaced),
                               slot, ", ".join(slots), read, its))
    return frozenset(), frozenset()


def is_publication_of(line: str, publications: frozenset[str], of_all_tables: frozenset[str]) -> bool:
    """Whether the TOC ``line`` creates one of ``publications``, or adds a table or schema to one of
    ``of_all_tables``."""
    entry = PUBLICATION_ENTRY.match(line.rstrip("\n"))
    if entry:
        return entry.group(1) in publications
    member = PUBLICATION_MEMBER.match(line.rstrip("\n"))
    if not member:
        return False
    # "<publication> <table>": the longest publication name it starts with (names may hold spaces)
    named = max((name for name in publications if member.group(1).startswith(name + " ")), key=len, default=None)
    return named in of_all_tables


def require_no_logical_replication(admin, database: str) -> None:
    """Refuse a swap of ``database`` that has logical replication slots or subscriptions (see above)."""
    # run without parameters: the format() patterns hold % signs
    held = [row[0] for row in admin.execute(sql.SQL(
        "SELECT format('logical replication slot %s (%s, %s)', s.slot_name, s.plugin, CASE WHEN s.active_pid IS NULL "
        "THEN 'not in use' ELSE coalesce((SELECT 'in use by ' || " + SESSION_IN_WORDS + " FROM pg_stat_activity a "
        "WHERE a.pid = s.active_pid), format('in use by process %s', s.active_pid)) END) "
        "FROM pg_replication_slots s WHERE s.database = {database} AND s.slot_type = 'logical' UNION ALL "
        "SELECT format('subscription %s', s.subname) FROM pg_subscription s "
        "JOIN pg_database d ON d.oid = s.subdbid WHERE d.datname = {database} ORDER BY 1").format(
            database=sql.Literal(database))).fetchall()]
    if held:
        them = "them" if len(held) > 1 else "it"
        raise PhoenixError(
            "mode=swap gives the name of database %s to a new database, but the old one holds %s, which would stay "
            "with it under its kept name, out of reach of whatever uses %s; use mode=in_place (the database keeps %s, "
            "and a slot's consumer reads the restore's changes), or drop %s and create %s again after the swap"
            % (database, ", ".join(held), *[them] * 4))
