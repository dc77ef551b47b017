# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The base class every Phoenix module is built on.

It merges the common connection and stage options into the module's spec, opens the
psycopg connection, enforces the stage fence, and turns every expected error into one
``fail_json`` message without a traceback or a password in it.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.phoenix.platform.plugins.module_utils._core.argspec import (
    CONNECTION_EXCLUSIVE,
    CONNECTION_OPTIONS,
    STAGE_OPTIONS,
)
from ansible_collections.phoenix.platform.plugins.module_utils._core.audit import default_actor
from ansible_collections.phoenix.platform.plugins.module_utils._core.connection import ConnectionTarget, connect
from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError, StageFenceError
from ansible_collections.phoenix.platform.plugins.module_utils._core.files import state_path_problem
from ansible_collections.phoenix.platform.plugins.module_utils._core.limits import nul_byte_option, range_problem
from ansible_collections.phoenix.platform.plugins.module_utils._core.locks import lock_wait_message, waited_relation
from ansible_collections.phoenix.platform.plugins.module_utils._core.stage import (
    check_stage_fence,
    check_writable,
    registered_stage,
)
from ansible_collections.phoenix.platform.plugins.module_utils._pg.catalog import named_in, table_label
from ansible_collections.phoenix.platform.plugins.module_utils._pg.row_security import with_row_security_advice
from ansible_collections.phoenix.platform.plugins.module_utils._pg.row_values import detail_without_row, server_message
from ansible_collections.phoenix.platform.plugins.module_utils._pg.sessions import lock_holders
from ansible_collections.phoenix.platform.plugins.module_utils._pg.standby import with_standby_advice

try:
    import psycopg
    from psycopg import sql
except ImportError:
    HAS_PSYCOPG = False
else:
    HAS_PSYCOPG = True


TAKEN = ("Rows already there hold that value - for example a world copied here earlier under the same id: remove it "
         "first or use another world id")
# What an integrity error means for a run, and what to do: (what the change would do, why), by SQLSTATE
COLLISIONS = {
    "23505": ("would duplicate a value that must be unique", TAKEN),
    "23503": ("would leave a reference to a row that does not exist", TAKEN),  # a row written refers to one not here
}
OTHER_COLLISION = ("breaks a constraint", "The rows written do not meet it, or rows already there conflict with them")
# a foreign key broken the other way (23503 too): rows outside the change refer to a row it removes (server's words,
# where it speaks English; the first way's are WRITTEN_UNREFERENCED)
REMOVED_WHILE_REFERENCED = "update or delete on table"
WRITTEN_UNREFERENCED = "insert or update on table"
STILL_REFERENCED = ("would remove a row that other rows still refer to", "Rows outside the change refer to rows it "
                    "removes: another world's, production's, or rows %s kept instead of deleting them; remove those "
                    "references first")
KEEPER_UNKNOWN = "an application's trigger"
# The triggers of a table that run before each of its rows is deleted (tgtype: ROW 1, BEFORE 2, DELETE 8), any of
# which may keep the row (a soft delete): the trigger of the referring table that kept its rows, where one did.
DELETE_TRIGGERS = ("SELECT string_agg(quote_ident(g.tgname), ', ' ORDER BY g.tgname), count(*) FROM pg_catalog.pg_trigger g "
                   "JOIN pg_catalog.pg_class t ON t.oid = g.tgrelid JOIN pg_catalog.pg_namespace n "
                   "ON n.oid = t.relnamespace WHERE NOT g.tgisinternal AND g.tgenabled <> 'D' AND g.tgtype & 11 = 11 "
                   "AND t.relname = %s AND n.nspname = %s")
# whether a foreign key refers to its own table
SELF_REFERRING = ("SELECT c.confrelid = c.conrelid FROM pg_catalog.pg_constraint c JOIN pg_catalog.pg_class t "
                  "ON t.oid = c.conrelid JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace "
                  "WHERE c.contype = 'f' AND c.conname = %s AND t.relname = %s AND n.nspname = %s")


def collision_message(exc, where: str, connect: Callable) -> str:
    """An integrity error in words: which constraint, which table, which value, and what to do (``connect``: a new
    session, the run's own being rolled back, see ``_removed_while_referenced``)."""
    diag = exc.diag
    what, why = COLLISIONS.get(exc.sqlstate, OTHER_COLLISION)
    if exc.sqlstate == "23503" and _removed_while_referenced(diag, connect):
        what, why = STILL_REFERENCED
        why %= _keeper(diag, connect)
    met = ("constraint %s" % diag.constraint_name if diag.constraint_name
           else "column %s" % diag.column_name if diag.column_name else "a constraint")  # NOT NULL has no name
    return "the change %s on %s (%s on table %s: %s); nothing was written. %s" % (
        what, where, met, diag.table_name, detail_without_row(exc), why)


def _removed_while_referenced(diag, connect: Callable) -> bool:
    """Whether a broken foreign key (``diag``) is one whose rows outside the change refer to a row it removes. A
    server that speaks another language says so in other words: the detail then names the table that refers (the
    one the error is of) for a removal, the one referred to for a write; the two are alike only for a key that
    refers to its own table, which the catalog tells."""
    primary, detail = diag.message_primary or "", diag.message_detail or ""
    if primary.startswith((REMOVED_WHILE_REFERENCED, WRITTEN_UNREFERENCED)):
        return primary.startswith(REMOVED_WHILE_REFERENCED)
    if not diag.table_name or not named_in(detail, diag.table_name):
        return False
    found = _catalog_says(connect, SELF_REFERRING, [diag.constraint_name, diag.table_name, diag.schema_name])
    return found is not None and not found[0]


def _keeper(diag, connect: Callable) -> str:
    """What may have kept the referring rows of a broken foreign key (``diag``) that a removal meets: the triggers
    its table runs before each delete, where it has some."""
    found = _catalog_says(connect, DELETE_TRIGGERS, [diag.table_name, diag.schema_name])
    if not found or not found[1]:
        return KEEPER_UNKNOWN
    return "the trigger%s %s of table %s (before each delete)" % (
        "s" if found[1] > 1 else "", found[0], table_label(diag.schema_name, diag.table_name))


def _catalog_says(connect: Callable, query: str, params: list) -> tuple | None:
    """The first row ``query`` gives on a new session (``connect``, the run's own being rolled back); None where
    there is none, or no session."""
    try:
        with connect() as conn:
            return conn.execute(sql.SQL(query), params).fetchone()
    except (psycopg.Error, PhoenixError):
        return None


class PhoenixModule(AnsibleModule):
    """An AnsibleModule with the Phoenix connection, stage fence and error handling.

    ``argument_spec`` holds the module's own options and the option groups it adds (lock, allow_prod...);
    the connection and stage groups every Phoenix module takes are merged in here. ``state_paths`` names the
    path options the module writes state to: none may lie inside an installed collection.
    """

    def __init__(self, argument_spec: dict[str, dict[str, Any]], state_paths: tuple[str, ...] = (), **kwargs: Any) -> None:
        kwargs.setdefault("supports_check_mode", True)
        kwargs["mutually_exclusive"] = CONNECTION_EXCLUSIVE + list(kwargs.get("mutually_exclusive", []))
        super().__init__(argument_spec={**CONNECTION_OPTIONS, **STAGE_OPTIONS, **argument_spec}, **kwargs)
        if not HAS_PSYCOPG:
            self.fail_json(msg=missing_required_lib("psycopg (pip install 'psycopg[binary]')"))
        problem = self._input_problem(state_paths)
        if problem:
            self.fail_json(msg=problem)
        self.target: ConnectionTarget | None = None
        self.other_targets: list[ConnectionTarget] = []  # e.g. a transfer's source: its password is redacted too

    def _input_problem(self, state_paths: tuple[str, ...]) -> str | None:
        """What Ansible's own validation lets through but no run should start with, or None."""
        for name, spec in self.argument_spec.items():
            if spec.get("type") == "path" and self.params.get(name) == "":  # "" would mean the current directory
                return "%s must not be empty: give a path (or leave the option out)" % name
        problem = range_problem(self.params)
        if problem:
            return problem
        with_nul = nul_byte_option(self.params)
        if with_nul:  # named, never echoed: the value may be a password
            return "%s holds a NUL byte, which PostgreSQL text cannot store; remove it" % with_nul
        return state_path_problem(self.params, state_paths)

    @property
    def stage(self) -> str:
        return self.params["stage"]

    @property
    def actor(self) -> str:
        return self.params["actor"] or default_actor()

    def connection_target(self) -> ConnectionTarget:
        if self.target is None:
            self.target = ConnectionTarget(self.params, application_name="phoenix.platform." + self._name)
        return self.target

    def connect(self):
        """A new connection (autocommit off: every change happens in a transaction). A module with a
        ``lock_timeout`` waits that long at most for each lock someone else holds, from its first statement on."""
        return connect(self.connection_target(), self.params.get("lock_timeout"))

    def check_fence(self, conn, writes: bool = True) -> str | None:
        """Fail before any write when the database belongs to another stage, or (for a module that writes)
        to a server that takes no writes, or to no stage yet: only phoenix_schema registers one."""
        registered = registered_stage(conn)
        check_stage_fence(self.stage, registered, self.connection_target().describe())
        if writes:
            self.check_writable(conn)
            if registered is None:
                raise StageFenceError(
                    "%s has no stage registered yet: run phoenix_schema first (stage %s), which registers the stage "
                    "fence; nothing was written" % (self.connection_target().describe(), self.stage))
        return registered

    def check_writable(self, conn) -> None:
        """Fail before any write when the server takes none: a standby, or a read-only role."""
        check_writable(conn, self.connection_target().describe())

    def _warn_all(self, result: dict[str, Any]) -> None:
        for warning in result.pop("warnings", []):
            self.warn(warning)

    @contextlib.contextmanager
    def fenced_connection(self, writes: bool = True) -> Iterator[Any]:
        """A connection to a database that belongs to the declared stage (checked before anything else)."""
        with self.connect() as conn:
            self.check_fence(conn, writes)
            yield conn

    def run(self, action: Callable[["PhoenixModule"], dict[str, Any]]) -> None:
        """Run ``action`` and exit with its result, or fail with one clear message. The ``warnings`` (text) of a
        result, or of a failure's details, are given as Ansible warnings."""
        try:
            result = action(self)
            if not self._diff:
                result.pop("diff", None)
            self._warn_all(result)
        except PhoenixError as exc:
            self._warn_all(exc.details)
            self.no_log_values.update(exc.secrets)
            self.fail_json(msg=self._redact(exc.msg), **exc.details)
        except psycopg.errors.IntegrityError as exc:
            message = collision_message(exc, self._where(), lambda: connect(self.target))
            if exc.sqlstate == "23505" and "column_transforms" in self.params:
                message += ("; for rows copied under another world id, give the column a value per world with "
                            "column_transforms, e.g. {\"%s.<column>\": \"{world}.{value}\"}"
                            % table_label(exc.diag.schema_name, exc.diag.table_name))
            self.fail_json(msg=self._redact(message), sqlstate=getattr(exc, "sqlstate", None))
        except psycopg.errors.LockNotAvailable as exc:
            self.fail_json(msg=self._redact(self._lock_wait_message(exc)), sqlstate=exc.sqlstate)
        except psycopg.Error as exc:
            where, sqlstate = self._where(), getattr(exc, "sqlstate", None)
            message = with_standby_advice(server_message(exc))
            if self.target:
                message = with_row_security_advice(message, sqlstate, lambda: connect(self.target))
            self.fail_json(msg="database error on %s: %s" % (where, self._redact(message)), sqlstate=sqlstate)
        except OSError as exc:  # a path that cannot be used: too long, not writable, in /proc ...
            path = " ".join(str(p) for p in (exc.filename, exc.filename2) if p) or "a file"
            self.fail_json(msg="cannot use %s: %s" % (self._redact(path), exc.strerror or exc))
        self.exit_json(**result)

    def _lock_wait_message(self, exc) -> str:
        """A lock timeout of the run's transaction (rolled back by now), with who holds such a lock now: in the
        first database of the run (a transfer's target, then its source) where someone does."""
        relation = waited_relation(exc)
        for target in [self.target] + self.other_targets:
            try:
                with connect(target) as conn:
                    holders = lock_holders(conn, relation)
            except (psycopg.Error, PhoenixError):  # the message is still worth giving without them
                continue
            if holders:
                return lock_wait_message(target.describe(), self.params.get("lock_timeout"), relation, holders)
        return lock_wait_message(self._where(), self.params.get("lock_timeout"), relation, "")

    def _where(self) -> str:
        return self.target.describe() if self.target else "the database"

    def _redact(self, text: str) -> str:
        for target in [self.target] + self.other_targets:
            if target is not None:
                text = target.redact(text)
        return text
