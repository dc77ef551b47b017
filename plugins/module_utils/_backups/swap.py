# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A restore that is parallel and atomic: the backup goes into a new database, which replaces the old one by name.

1. ``<database>_phoenix_restore`` is created (a leftover of a killed run is dropped first) with the old database's
   encoding, locale, owner and privileges, and the comment that marks a scratch database, and the dump restored
   into it with ``pg_restore -j``; nobody else connects to it, so the parallel restore needs no transaction.
2. It is checked: every table's row count and the schema version against the manifest. The old database's audit
   log and stage fence are carried over, so the environment's history and stage survive the restore as with
   ``in_place``, and the carried fence must name the stage of the run.
3. One transaction on the maintenance database renames the old database to ``<database>_pre_restore_<time>`` and
   the new one to ``<database>``, after terminating the sessions of both, and gives it the old one's comment,
   connection limit and settings; the old one gets the comment that marks a kept database. Killed before it
   commits, the old database is still the environment's; after, the new one is. The kept old database is dropped
   by the next successful swap (only with that comment: a database that merely has such a name is left), or by
   hand.

A swap holds an advisory lock for the database on the maintenance connection from its first check to its end: a
second swap of the same database (a job started twice) waits for it, instead of taking the first one's new
database for a leftover, dropping it, and having the first swap in a database half-restored by the second.
"""

from __future__ import annotations

import contextlib
import re
import time
from typing import Any, Callable, Iterator

from ansible_collections.phoenix.platform.plugins.module_utils._backups import store
from ansible_collections.phoenix.platform.plugins.module_utils._backups.database_properties import (
    access_statements,
    comment_statements,
    create_options,
    limit_statements,
    read_properties,
    setting_statements,
)
from ansible_collections.phoenix.platform.plugins.module_utils._backups.replication import require_no_logical_replication
from ansible_collections.phoenix.platform.plugins.module_utils._backups.scratch import (
    MARKED,
    create_scratch,
    database_owner,
    drop_database,
    leftover_droppable,
    mark,
    require_connectable,
    restored_problems,
    scratch_name,
)
from ansible_collections.phoenix.platform.plugins.module_utils._backups.server_room import require_room
from ansible_collections.phoenix.platform.plugins.module_utils._core.connection import open_session
from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._core.locks import session_lock
from ansible_collections.phoenix.platform.plugins.module_utils._core.stage import registered_stage
from ansible_collections.phoenix.platform.plugins.module_utils._pg.sessions import (
    END_PREPARED,
    acting_role,
    end_sessions,
    other_sessions,
    prepared_transactions,
    sessions_it_may_not_end,
)

try:
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict, make_conninfo
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass

NEW_SUFFIX = "_phoenix_restore"
KEPT_MARK = "_pre_restore_"
KEPT_TIME = "%Y%m%d%H%M%S"  # UTC
KEPT_TIME_DIGITS = len(time.strftime(KEPT_TIME, time.gmtime(0)))
KEPT_COMMENT = "phoenix.platform kept database"
MAINTENANCE_DATABASES = ("postgres", "template1")
SWAP_ATTEMPTS = 5  # each waits up to 5 s for terminated sessions to end (the server's own wait)
HISTORY_TABLES = ("environment", "audit_log")  # carried from the old database into the new one
HISTORY_SESSIONS = 2  # carried over a session to each database, beside the maintenance one


def new_name(database: str) -> str:
    return scratch_name("", database, NEW_SUFFIX)


def kept_name(database: str, when: str) -> str:
    return scratch_name("", database, KEPT_MARK + when)


def maintenance_connection(conninfo: str):
    """An autocommit connection to the same server, not to the environment's database (which gets renamed)."""
    problems = []
    for name in MAINTENANCE_DATABASES:
        try:
            return open_session(make_conninfo(conninfo, dbname=name), autocommit=True)
        except psycopg.OperationalError as exc:
            problems.append("%s: %s" % (name, str(exc).strip().splitlines()[0]))
    raise PhoenixError("mode=swap needs a connection to the server's postgres or template1 database, which failed "
                       "(%s); use mode=in_place" % "; ".join(problems))


@contextlib.contextmanager
def swap_session(conninfo: str, lock_timeout: int) -> Iterator[Any]:
    """A maintenance connection holding the swap lock of the database of ``conninfo`` (waiting up to
    ``lock_timeout`` seconds for another swap of it to end)."""
    database = conninfo_to_dict(conninfo)["dbname"]
    with maintenance_connection(conninfo) as admin, session_lock(admin, "swap:" + database, lock_timeout):
        yield admin


def require_swap_possible(admin, conninfo: str, backup: store.Backup) -> str | None:
    """What a swap needs before it starts, in check mode too (``admin``: its ``swap_session``): the right to create
    a database, a database without logical replication (see ``replication``), and room for the new one on the
    server's disks (see ``server_room``). Returns why that room could not be checked, or None."""
    role, allowed = admin.execute(sql.SQL("SELECT rolname, rolcreatedb OR rolsuper FROM pg_roles "
                                          "WHERE rolname = current_user")).fetchone()
    if not allowed:
        raise PhoenixError("mode=swap restores into a new database, and role %s may not create one; give it the "
                           "CREATEDB right (ALTER ROLE ... CREATEDB) or use mode=in_place" % role)
    database = conninfo_to_dict(conninfo)["dbname"]
    found = database_owner(admin, database)
    owner, owns = found.owner, found.may_drop
    if not owns:
        raise PhoenixError("mode=swap renames database %s, which only its owner may do, and role %s is not %s (nor "
                           "a member of it); restore as %s or a superuser, or use mode=in_place"
                           % (database, role, owner, owner))
    leftover_droppable(admin, conninfo, new_name(database))
    require_no_logical_replication(admin, database)
    blocking = sessions_it_may_not_end(admin, [database])
    if blocking:
        raise PhoenixError("mode=swap ends every session in database %s, and role %s may not end %s; stop it, or "
                           "restore as a superuser, or use mode=in_place" % (database, role, blocking))
    return require_room(admin, backup, database, database, "use mode=in_place (it needs no second copy)")


def swap_restore(admin, conninfo: str, stage: str, lock_timeout: int, backup: store.Backup,
                 restore_into: Callable[[str], dict[str, int]], finish: Callable[[Any], None],
                 settled: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """Restore ``backup`` beside the database of ``conninfo`` (of ``stage``) with ``restore_into(new conninfo)`` and
    swap it in, on ``admin`` (its ``swap_session``). ``restore_into`` returns the row counts of tables it counted as
    it loaded them. ``finish(new_conn)`` runs in the new database's transaction that carries the history over (it
    records the restore). Reading the old database's history waits ``lock_timeout`` at most for a lock someone
    holds there. ``settled()`` runs before the history is carried over, on a session to each database (see
    ``connection_room``)."""
    database = conninfo_to_dict(conninfo)["dbname"]
    new = new_name(database)
    leftover = leftover_droppable(admin, conninfo, new)
    drop_database(admin, new)
    owner, restorer = admin.execute(sql.SQL(
        "SELECT CASE WHEN pg_has_role(current_user, datdba, 'MEMBER') THEN pg_get_userbyid(datdba) END, "
        "current_user FROM pg_database WHERE datname = %s"), [database]).fetchone()
    properties = read_properties(admin, database)
    create_scratch(admin, new, sql.SQL("TEMPLATE template0 {}{}").format(
        create_options(properties), sql.SQL(" OWNER {}").format(sql.Identifier(owner)) if owner else sql.SQL("")),
        "the new database of a swap restore of " + database)
    try:
        for statement in access_statements(new, owner or restorer, properties):
            admin.execute(statement)
        _try_settings(admin, new, properties)
        target = make_conninfo(conninfo, dbname=new)
        require_connectable(target, "mode=swap restores", ", or use mode=in_place")
        loaded = restore_into(target)
        problems = restored_problems(target, backup, loaded)
        if problems:
            raise PhoenixError("the restored database does not match backup %s, the environment's database was "
                               "left as it was: %s" % (backup.id, "; ".join(problems)))
        settled()
        _carry_history(conninfo, target, stage, lock_timeout, finish)
        kept = _unused_kept_name(admin, database)
        at_the_swap = ([kept_mark(kept, database)] + comment_statements(database, properties)
                       + limit_statements(database, properties) + setting_statements(database, properties))
        _swap(admin, database, new, kept, at_the_swap)
    except BaseException:
        drop_database(admin, new)
        raise
    dropped, warnings = _drop_older_kept(admin, database, kept)
    swapped: dict[str, Any] = {"kept_database": kept, "leftover_removed": leftover, "dropped_kept": dropped}
    if warnings:
        swapped["warnings"] = warnings
    return swapped


def _carry_history(old_conninfo: str, new_conninfo: str, stage: str, lock_timeout: int, finish) -> None:
    with open_session(old_conninfo, lock_timeout=lock_timeout) as old, open_session(new_conninfo) as new:
        with new.transaction():
            for table in HISTORY_TABLES:
                name = sql.Identifier("phoenix", table)
                new.execute(sql.SQL("DELETE FROM {}").format(name))
                with old.cursor().copy(sql.SQL("COPY {} TO STDOUT (FORMAT binary)").format(name)) as source, \
                        new.cursor().copy(sql.SQL("COPY {} FROM STDIN (FORMAT binary)").format(name)) as sink:
                    for block in source:
                        sink.write(block)
            new.execute(sql.SQL("SELECT setval('phoenix.audit_log_id_seq', "
                                "(SELECT coalesce(max(id), 0) + 1 FROM phoenix.audit_log), false)"))
            fence = registered_stage(new)
            if fence != stage:  # the old database was registered anew while the restore ran
                raise PhoenixError("the stage fence carried over to the restored database says %s, this run declares "
                                   "%s; the environment's database was left as it was" % (fence, stage))
            finish(new)


def _try_settings(admin, new: str, properties) -> None:
    """The old database's settings, tried on the new one and taken back: a setting the restoring role may not give
    fails before the restore, and one like ``default_transaction_read_only`` does not reach it."""
    with admin.transaction(force_rollback=True):
        for setting, statement in zip(properties.settings, setting_statements(new, properties)):
            try:
                admin.execute(statement)
            except psycopg.errors.InsufficientPrivilege:
                raise PhoenixError("mode=swap cannot give the new database the old one's setting %s%s (permission "
                                   "denied); restore as a superuser, or use mode=in_place" % (
                                       setting.name, " of role %s" % setting.role if setting.role else "")) from None


def _swap(admin, database: str, new: str, kept: str, settings: list[sql.Composable]) -> None:
    rename = sql.SQL("ALTER DATABASE {} RENAME TO {}")
    for attempt in range(SWAP_ATTEMPTS):
        try:
            with admin.transaction():
                require_no_logical_replication(admin, database)  # again: one may come while the restore ran
                end_sessions(admin, [database, new])
                admin.execute(rename.format(sql.Identifier(database), sql.Identifier(kept)))
                admin.execute(rename.format(sql.Identifier(new), sql.Identifier(database)))
                for setting in settings:
                    admin.execute(setting)
            return
        except psycopg.errors.InsufficientPrivilege:  # a session it may not end came after the check
            raise PhoenixError("the restored database is ready, but it was not swapped in: role %s may not end %s in "
                               "%s; stop it and run the restore again" % (
                                   acting_role(admin)[0], sessions_it_may_not_end(admin, [database, new]) or "a session",
                                   database)) from None
        except psycopg.errors.ObjectInUse:  # a session came back between the termination and the rename
            held = prepared_transactions(admin, [database])
            if held:  # checked before the restore: this one came during it, and no retry outlasts it
                raise PhoenixError("the restored database is ready, but it was not swapped in: database %s holds %s, "
                                   "prepared while the restore ran, and the server renames no database that holds "
                                   "one; %s, then run the restore again" % (database, held, END_PREPARED)) from None
            if attempt == SWAP_ATTEMPTS - 1:
                still = other_sessions(admin, [database, new])
                raise PhoenixError("the restored database is ready, but sessions kept reconnecting to %s (%s), so it "
                                   "was not swapped in; stop the application and run the restore again"
                                   % (database, still or "none left now"))


def _unused_kept_name(admin, database: str) -> str:
    """The name the old database is kept under, from the time of the swap: a swap of a small database within the
    same second as the one before waits for the next second (kept names carry the second)."""
    while True:
        kept = kept_name(database, time.strftime(KEPT_TIME, time.gmtime()))
        if database_owner(admin, kept) is None:
            return kept
        time.sleep(0.1)


def kept_mark(kept: str, database: str) -> sql.Composable:
    """The comment that marks ``kept`` as the database ``database`` was before a swap."""
    return mark(kept, KEPT_COMMENT, database + " as it was before a swap restore; the next successful swap drops it")


def kept_databases(admin, database: str) -> tuple[list[str], list[str]]:
    """The databases kept by swaps of ``database``: exactly the names ``kept_name`` gives, whatever the time, with
    the comment of ``kept_mark``; and the databases that merely have such a name (someone's own, or one kept by a
    release that did not mark them), which a swap leaves."""
    stamp = KEPT_TIME_DIGITS
    ours = re.compile(re.escape(kept_name(database, "0" * stamp)[:-stamp]) + r"\d{%d}\Z" % stamp)
    names = admin.execute(sql.SQL("SELECT datname, " + MARKED + " FROM pg_database ORDER BY 1"),
                          [KEPT_COMMENT]).fetchall()
    kept = [name for name, marked in names if marked and ours.match(name)]
    alike = [name for name, marked in names if not marked and ours.match(name)]
    return kept, alike


def _unmarked(alike: list[str]) -> list[str]:
    return ["database %s has the name of a database kept by a swap, but no comment starting with '%s', so no swap "
            "drops it; drop it by hand if it is a copy kept by an older release" % (name, KEPT_COMMENT)
            for name in alike]


def planned_kept_drops(admin, database: str) -> dict[str, Any]:
    """Check mode: the databases kept by earlier swaps that a swap would drop, and a warning for each this role may
    not drop (another role owns it), which the swap would leave, and for each that merely has such a name."""
    kept, alike = kept_databases(admin, database)
    plan: dict[str, Any] = {"dropped_kept": [], "warnings": []}
    for name in kept:
        found = database_owner(admin, name)
        owner, droppable = found.owner, found.may_drop
        if droppable:
            plan["dropped_kept"].append(name)
        else:
            plan["warnings"].append("database %s, kept by an earlier swap, would be left: role %s may not drop it (%s "
                                    "owns it); drop it as %s or a superuser" % (name, acting_role(admin)[0], owner, owner))
    plan["warnings"] += _unmarked(alike)
    return plan


def _drop_older_kept(admin, database: str, kept: str) -> tuple[list[str], list[str]]:
    """Databases kept by earlier swaps of this database: gone once a newer swap succeeded. Returns those dropped,
    and a warning for each left (another role owns it, say, or it merely has such a name): the swap is done
    whatever happens here."""
    dropped, warnings = [], []
    older, alike = kept_databases(admin, database)
    for name in older:
        if name == kept:
            continue
        try:
            drop_database(admin, name)
            dropped.append(name)
        except psycopg.Error as exc:
            warnings.append("the restore is done, but database %s, kept by an earlier swap, could not be dropped (%s); "
                            "drop it by hand to free its space" % (name, str(exc).strip().splitlines()[0]))
    return dropped, warnings + _unmarked(alike)
