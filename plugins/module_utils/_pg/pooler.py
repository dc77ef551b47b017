# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A connection pool between Phoenix and the server (PgBouncer, say), and whether it keeps a session whole.

A Phoenix session holds advisory locks and settings (``lock_timeout``, no statement time limit) from one
transaction to the next. A pool in session mode gives a client one server process for its whole connection, and
that works. A pool in transaction or statement mode hands each transaction to any idle server process: a lock
would stay behind with a process that then serves another client (which could take it again, advisory locks
counting per process), and the settings would reach the application's sessions. Such a pool is refused.

A pool answers a client's startup with a cancel key of its own, so the process id libpq learned at the start is
not the server's ``pg_backend_pid()``: only then is the pool tried, with a second connection. In transaction
mode, the pool gives that connection the server process the first one just gave back (or, handing them out in
turn, the first one another); in statement mode, it refuses a transaction block.
"""

from __future__ import annotations

from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError

try:
    import psycopg
    from psycopg import sql
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass

SERVER_PROCESS = "SELECT pg_backend_pid()"
POOL_WAIT = "query_wait_timeout"  # PgBouncer's words for a client it found no free server process for in time
_SESSION_POOLS: set[str] = set()  # conninfo strings already found to keep a session on one server process


def require_session_pool(conn, conninfo: str) -> None:
    """Refuse the pool that ``conn`` (autocommit, idle, made with ``conninfo``) reaches the server through, when it
    shares server processes between connections; tried once per conninfo in a run."""
    if conninfo in _SESSION_POOLS:
        return
    server = _server_process(conn)
    with psycopg.connect(conninfo, autocommit=True) as other:
        others = _server_process(other)
        again = _server_process(conn)
        shared = ("two connections were served by one server process" if others == server else
                  "one connection was served by two server processes" if again != server else None)
        try:  # never while both hold a server process: a pool with one would leave the second waiting
            other.execute(sql.SQL("BEGIN"))
            other.execute(sql.SQL("ROLLBACK"))
        except psycopg.errors.ProtocolViolation:  # "transaction blocks not allowed in statement pooling mode"
            shared = "it refused a transaction block"
    if shared:
        raise PhoenixError(
            "the connection to %s:%s/%s goes through a pool that hands each transaction to any of its server processes "
            "(PgBouncer with pool_mode = transaction or statement): %s. Phoenix holds locks and settings for a whole "
            "session, which such a pool would share with other clients; connect to the server directly, or through a "
            "pool in session mode" % (conn.info.host, conn.info.port, conn.info.dbname, shared))
    _SESSION_POOLS.add(conninfo)


def _server_process(conn) -> int:
    return conn.execute(sql.SQL(SERVER_PROCESS)).fetchone()[0]


def require_free_pool(failure: psycopg.OperationalError, address: str) -> None:
    """Say what ``failure`` (a connection to ``address``, ``host:port/db``, that failed) means when a pool found no
    free server process for it in time: PgBouncer says only ``query_wait_timeout``."""
    if POOL_WAIT not in str(failure):
        return
    raise PhoenixError(
        "the pool in front of %s gave this run no server process within its query_wait_timeout: all of them were "
        "taken. A run opens several sessions at once (a parallel backup or restore: its jobs and a few more), each "
        "needing a server process of its own in session mode; raise the pool's default_pool_size, or connect to the "
        "server directly" % address)
