# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A connection pool or load balancer between Phoenix and the server, and whether it keeps a session whole.

A Phoenix session holds advisory locks and settings (``lock_timeout``, no statement time limit) from one
transaction to the next. A pool in session mode gives a client one server process for its whole connection, and
that works. A pool in transaction or statement mode hands each transaction to any idle server process: a lock
would stay behind with a process that then serves another client (which could take it again, advisory locks
counting per process), and the settings would reach the application's sessions. Such a pool is refused.

A pool answers a client's startup with a cancel key of its own, so the process id libpq learned at the start is
not the server's ``pg_backend_pid()``: only then is the pool tried, with a second connection. In transaction
mode, the pool gives that connection the server process the first one just gave back (or, handing them out in
turn, the first one another); in statement mode, it refuses a transaction block.

A load balancer such as pgpool-II (``load_balance_mode = on``) keeps a connection to the primary and one to a
standby for each client, and sends a statement that only reads to the standby, one that calls a volatile function
(``set_config``, ``pg_advisory_lock``) or writes to the primary. Phoenix reads rows and writes by what it read, and
a standby's rows may lag behind; pgpool-II also sends a SET to both, and a standby refuses pg_dump's
``SET TRANSACTION SNAPSHOT`` (a snapshot of the primary). Every session therefore reads its server process id once
more, in a statement that only reads: another one than gave the settings means a second server answers its reads.
With Phoenix's sessions sent to the primary, pgpool-II still connects each of them to the standby as well: a
database a swap or a drill has just created is not there yet, and the connection fails.
"""

from __future__ import annotations

from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError

try:
    import psycopg
    from psycopg import sql
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass

SERVER_PROCESS = "SELECT pg_backend_pid()"
# a statement that only reads (stable functions), which a load balancer may send to a standby
READER = "SELECT pg_backend_pid(), current_setting('transaction_read_only') = 'on'"
BALANCED = b"kind mismatch among backends"  # pgpool-II's words when its servers answered one statement differently
# and when one of them refused a connection the other took (to a database the standby has not replayed yet)
NOT_ON_EVERY_SERVER = "kind does not match between main"
# Phoenix's sessions are named phoenix.platform.<module>, pg_dump's phoenix backup <snapshot>
BALANCED_WAY_OUT = ("connect to the primary directly, or have the load balancer send Phoenix's sessions (their "
                    "application_name starts with phoenix) to the primary (pgpool-II: app_name_redirect_preference_list "
                    "= 'phoenix.*:primary(1.0)')")
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
            "the connection to %s goes through a pool that hands each transaction to any of its server processes "
            "(PgBouncer with pool_mode = transaction or statement): %s. Phoenix holds locks and settings for a whole "
            "session, which such a pool would share with other clients; connect to the server directly, or through a "
            "pool in session mode" % (_address(conn), shared))
    _SESSION_POOLS.add(conninfo)


def require_one_server(conn, settled_by: int) -> None:
    """Refuse ``conn`` when a statement that only reads is answered by another server process than
    ``settled_by``, the one that gave the session its settings (see above)."""
    reader, read_only = conn.execute(sql.SQL(READER)).fetchone()
    if reader != settled_by:
        raise PhoenixError(
            "the connection to %s sends this session's reads to another server than the rest: a read was answered by "
            "%sserver process %d, the session's settings by process %d (a load balancer, such as pgpool-II with "
            "load_balance_mode = on). Phoenix writes by what it read and holds locks for a whole session, and a "
            "standby's rows may lag behind the primary's; %s" % (
                _address(conn), "a read-only (standby) " if read_only else "", reader, settled_by, BALANCED_WAY_OUT))


def require_dump_on_one_server(stderr: bytes) -> None:
    """Say what pg_dump's failure (its ``stderr``) means when pgpool-II's servers answered one statement
    differently: a standby refused the primary's snapshot."""
    if BALANCED in stderr:
        raise PhoenixError(
            "pg_dump went through pgpool-II, which sends a SET to the primary and to the standby that answers the "
            "session's reads, and the standby refused pg_dump's SET TRANSACTION SNAPSHOT, a snapshot taken on the "
            "primary (pgpool-II: kind mismatch among backends); %s"
            % BALANCED_WAY_OUT)


def require_reachable_everywhere(reason: str, database: str, purpose: str, otherwise: str) -> None:
    """Say what a failed connection (``reason``) to ``database``, just created for ``purpose``, means when pgpool-II
    could not reach it on its standby."""
    if NOT_ON_EVERY_SERVER in reason:
        raise PhoenixError(
            "%s into a new database %s, and the load balancer in front of the server (pgpool-II) could not connect to "
            "it on every server: a standby had not yet replayed its creation (%s). Connect straight to the primary "
            "for this%s" % (purpose, database, reason, otherwise))


def _address(conn) -> str:
    return "%s:%s/%s" % (conn.info.host, conn.info.port, conn.info.dbname)


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
