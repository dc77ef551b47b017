# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The stage fence (which stage a database belongs to), the PROD guard, and the gate of a server that takes no
writes (a standby, a read-only role)."""

from __future__ import annotations

from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import (
    PhoenixError,
    ProdGuardError,
    StageFenceError,
)

try:
    from psycopg import sql
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass

STAGES = ("LOCAL", "BETA", "PROD")


def registered_stage(conn) -> str | None:
    """The stage recorded in the database, or None before the first schema run. A role that may not read it is
    told which grants it needs: every run checks the fence before anything else."""
    readable = conn.execute(sql.SQL(  # by OID: a name in a schema the role may not use is an error of its own
        "SELECT has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT') FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'phoenix' AND c.relname = 'environment'"
    )).fetchone()
    if readable is None:
        return None
    if not readable[0]:
        user = conn.info.user
        raise PhoenixError("role %s may not read the stage fence (phoenix.environment), which every run checks "
                           "first: GRANT USAGE ON SCHEMA phoenix TO %s and GRANT SELECT ON phoenix.environment TO %s "
                           "(or pg_read_all_data); nothing was written" % (user, user, user))
    row = conn.execute(sql.SQL("SELECT stage FROM phoenix.environment")).fetchone()
    return row[0] if row else None


def check_stage_fence(declared: str, registered: str | None, where: str) -> None:
    """Refuse to act when the database is registered for another stage."""
    if registered is not None and registered != declared:
        raise StageFenceError(
            "stage fence: %s is registered as %s but this run declares stage %s; refusing to "
            "act. Point this inventory at its own %s database, or fix the stage setting"
            % (where, registered, declared, declared),
            declared_stage=declared,
            registered_stage=registered,
        )


def check_writable(conn, where: str) -> None:
    """Refuse before any write where the server would refuse the writes: on a standby, or in sessions a DBA made
    read-only."""
    standby, read_only = conn.execute(sql.SQL(
        "SELECT pg_is_in_recovery(), current_setting('default_transaction_read_only')::bool")).fetchone()
    if standby:
        raise PhoenixError("%s is a standby: it replays its primary's changes and takes no writes. Point this task at "
                           "the primary; nothing was written" % where)
    if read_only:
        raise PhoenixError("%s makes every transaction read-only (default_transaction_read_only is on for this role "
                           "or database), and this task writes. Connect as a role that may write; nothing was written"
                           % where)


def require_prod_allowed(stage: str, allow_prod: bool, operation: str) -> None:
    """Development operations run in PROD only when explicitly allowed."""
    if stage == "PROD" and not allow_prod:
        raise ProdGuardError(
            "%s is refused in PROD: set allow_prod=true if you really mean to change PROD"
            % operation
        )
