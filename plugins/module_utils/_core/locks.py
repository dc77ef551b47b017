# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Advisory locks so overlapping scheduled runs wait or fail clearly, never interleave."""

from __future__ import annotations

import contextlib
import hashlib
from typing import Iterator

from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import LockBusyError

try:
    import psycopg
    from psycopg import sql
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass


def lock_key(scope: str) -> int:
    """A stable signed 64-bit key for a scope such as ``schema`` or ``world:UC_TESTING``."""
    digest = hashlib.sha256(("phoenix:" + scope).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def acquire_transaction_lock(conn, scope: str, timeout_seconds: int, function: str = "pg_advisory_xact_lock") -> None:
    """Take the scope's lock for the current transaction, waiting up to ``timeout_seconds``."""
    conn.execute(sql.SQL("SELECT set_config('lock_timeout', %s, true)"), [f"{int(timeout_seconds)}s"])
    try:
        conn.execute(sql.SQL("SELECT {}(%s)").format(sql.Identifier(function)), [lock_key(scope)])
    except psycopg.errors.LockNotAvailable:
        raise LockBusyError(
            "another Phoenix run holds the '%s' lock and did not finish within %ss; "
            "wait for it or raise lock_timeout" % (scope, timeout_seconds)
        ) from None
    conn.execute(sql.SQL("SELECT set_config('lock_timeout', '0', true)"))


@contextlib.contextmanager
def session_lock(conn, scope: str, timeout_seconds: int) -> Iterator[None]:
    """The scope's lock for a run that spans several transactions (released at the end, or when the
    connection goes)."""
    with conn.transaction():
        acquire_transaction_lock(conn, scope, timeout_seconds, function="pg_advisory_lock")
    try:
        yield
    finally:
        conn.rollback()
        conn.execute(sql.SQL("SELECT pg_advisory_unlock(%s)"), [lock_key(scope)])
        conn.commit()
