# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The audit log: one row per change, written in the same transaction as the change, and read back."""

from __future__ import annotations

import getpass
import os
import socket
from typing import Any, Mapping

from ansible_collections.phoenix.platform.plugins.module_utils._pg.catalog import relation_exists

try:
    from psycopg import sql
    from psycopg.rows import dict_row
    from psycopg.types.json import Jsonb
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass


def default_actor(environ: Mapping[str, str] | None = None) -> str:
    """Who is acting: the AWX job when run by AWX, otherwise user@host."""
    environ = os.environ if environ is None else environ
    for name in ("AWX_JOB_ID", "JOB_ID", "TOWER_JOB_ID"):
        if environ.get(name):
            return "awx-job-%s" % environ[name]
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry (containers)
        user = str(os.getuid())
    return "%s@%s" % (user, socket.gethostname())


def record(conn, operation: str, stage: str, actor: str, details: Mapping[str, Any]) -> None:
    conn.execute(
        sql.SQL(
            "INSERT INTO phoenix.audit_log (operation, stage, actor, details) "
            "VALUES (%s, %s, %s, %s)"
        ),
        [operation, stage, actor, Jsonb(dict(details))],
    )


def last_event(conn, prefix: str) -> dict[str, Any] | None:
    """The newest event whose operation starts with ``prefix`` (e.g. ``deploy.``), or None (also before the
    audit log exists)."""
    if not relation_exists(conn, "phoenix.audit_log"):
        return None
    query = sql.SQL("""
        SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS at, operation, actor, details
        FROM phoenix.audit_log WHERE starts_with(operation, %s) ORDER BY at DESC, id DESC LIMIT 1""")
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, [prefix]).fetchone()
