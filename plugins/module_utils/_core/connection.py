# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection options, conninfo building, secret redaction and connecting."""

from __future__ import annotations

import os
import re
from typing import Any, Mapping

from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._pg.binaries import LIBPQ_ENV, SSL_ONLY
from ansible_collections.phoenix.platform.plugins.module_utils._pg.pooler import (
    require_free_pool,
    require_one_server,
    require_session_pool,
)

try:
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict
    from psycopg.conninfo import make_conninfo
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass

DB_URL_ENV_VARS = ("PHOENIX_DB_URL", "DATABASE_URL")
LOGIN_OPTIONS = ("login_host", "login_port", "login_user", "login_password", "login_db")

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")

# key=value password in a conninfo string, and user:password@ in a URI.
_KEYWORD_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_URI_PASSWORD = re.compile(r"(postgres(?:ql)?://[^:/@\s]*:)([^@\s]*)(@)", re.IGNORECASE)
REDACTED = "********"


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Remove every password from ``text``: known secrets and any conninfo-shaped one."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    text = _KEYWORD_PASSWORD.sub(lambda m: m.group(1) + REDACTED, text)
    return _URI_PASSWORD.sub(lambda m: m.group(1) + REDACTED + m.group(3), text)


def reached_by(conninfo: str, environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The user and ``host:port/db`` that ``conninfo`` reaches, without the password, for messages: what it leaves
    out, libpq takes from the PG* variables of ``environ``."""
    info = conninfo_to_dict(conninfo)
    environ = os.environ if environ is None else environ

    def part(keyword: str, default: Any) -> Any:
        return info.get(keyword) or environ.get(LIBPQ_ENV[keyword]) or default
    address = "%s:%s/%s" % (part("host", "local socket"), part("port", 5432), part("dbname", "<default db>"))
    return part("user", "<default user>"), address


class ConnectionTarget:
    """Where to connect, built from module options and the environment."""

    def __init__(self, params: Mapping[str, Any], environ: Mapping[str, str] | None = None,
                 application_name: str = "phoenix.platform") -> None:
        environ = os.environ if environ is None else environ
        self.db_url: str = params.get("db_url") or ""
        uses_login = any(params.get(name) not in (None, "") for name in LOGIN_OPTIONS)
        if not self.db_url and not uses_login:
            self.db_url = next((environ[name] for name in DB_URL_ENV_VARS if environ.get(name)), "")
        if any("\x00" in str(value) for value in [self.db_url] + [params.get(name) or "" for name in LOGIN_OPTIONS]):
            raise PhoenixError("the connection options hold a NUL byte, which no libpq setting can contain; check "
                               "db_url and login_* for a stray character")
        self.keywords: dict[str, Any] = {
            "host": params.get("login_host"),
            "port": params.get("login_port"),
            "user": params.get("login_user"),
            "password": params.get("login_password"),
            "dbname": params.get("login_db"),
            "sslmode": params.get("ssl_mode"),
            "sslrootcert": params.get("ca_cert"),
            "connect_timeout": params.get("connect_timeout"),
            "application_name": application_name,
        }
        self._environ = environ
        # PGPASSWORD: libpq's own fallback, for a connection whose options leave the password out
        self.secrets: tuple[str, ...] = tuple(
            s for s in (params.get("login_password"), self._url_password(), environ.get("PGPASSWORD")) if s
        )

    def _url_password(self) -> str:
        match = _URI_PASSWORD.search(self.db_url)
        if match:
            return match.group(2)
        match = _KEYWORD_PASSWORD.search(self.db_url)
        return match.group(2).strip("'") if match else ""

    def conninfo(self) -> str:
        """The libpq conninfo string (holds the password: never show it)."""
        try:
            return make_conninfo(self.db_url, **{k: v for k, v in self.keywords.items() if v is not None})
        except Exception:  # psycopg.ProgrammingError; its text may quote any part of the URL, the password too
            raise PhoenixError(
                "db_url is not a valid libpq URI or conninfo string; expected e.g. "
                "postgresql://user@host:5432/dbname or 'host=... dbname=...' (check quoting and special characters, "
                "which must be percent-encoded in a URI)"
            ) from None

    def describe(self) -> str:
        """``user@host:port/db`` without the password, for messages."""
        try:
            user, address = reached_by(self.conninfo(), self._environ)
        except PhoenixError:
            return "<invalid db_url>"
        return "%s@%s" % (user, address)

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)


# a service's options are among those reached; its name would send a program to a service file it may not find
SERVICE = ("service", "servicefile")


def conninfo_reached(conn) -> str:
    """Where ``conn`` went, as a conninfo string: every option libpq used, whether it came from db_url and login_*
    or from the environment (PGHOST, PGDATABASE, a service file). Programs run with it (pg_dump, pg_restore),
    which get no PG* variable of their own (see ``libpq_environment``), reach the same database. Over SSL, they
    must use it too (``sslmode=require`` at least): where the server takes both, a program whose libpq was built
    without SSL would otherwise send the password and the rows in the clear."""
    options = {keyword: value for keyword, value in conn.info.get_parameters().items() if keyword not in SERVICE}
    if conn.pgconn.ssl_in_use and options.get("sslmode") not in SSL_ONLY:
        options["sslmode"] = "require"
    return make_conninfo(**options, password=conn.info.password or None)


# A run's statements are its work: like pg_dump's and pg_restore's sessions, a Phoenix session takes no limit on a
# statement's time, an idle transaction's or an idle session's from the role's or the database's settings (a
# backup's row counts, a VACUUM or a restore's check of a big table outlast the few seconds set for an application,
# and a session waits while pg_restore works). Its waits for other sessions' locks are bounded by lock_timeout
# instead. It reads dates in the only form psycopg parses, whatever the application shows its users (DateStyle
# 'SQL, DMY', say); TimeZone stays the application's, which gives meaning to its timestamps without a time zone.
# Row security is off, as pg_dump's: a query a policy would filter is refused, never run on part of the rows (see
# ``_pg.row_security``). Each: (setting, value, from which server_version_num).
SESSION_SETTINGS = (("statement_timeout", "0", 0), ("idle_in_transaction_session_timeout", "0", 0),
                    ("DateStyle", "ISO", 0), ("row_security", "off", 0), ("idle_session_timeout", "0", 140000),
                    ("transaction_timeout", "0", 170000))
# The same at the session's start (libpq's options, which take precedence over the role's and the database's
# settings): the statement that gives the settings runs under the application's limit otherwise, and a new server
# process's first statement may take milliseconds reading the catalogs. The programs a run starts (pg_dump,
# pg_restore) are given the options with the rest of the connection (``conninfo_reached``). Only settings every
# supported server knows: an unknown one would end the connection.
AT_START = " ".join("-c %s=%s" % (setting, value) for setting, value, since in SESSION_SETTINGS if not since)
# how a pool (PgBouncer) refuses options it does not pass on; the session is then started without them
REFUSED_OPTIONS = "startup parameter"


def open_session(conninfo: str, autocommit: bool = False, lock_timeout: int | None = None):
    """A psycopg connection to ``conninfo`` with the settings above (psycopg.OperationalError when it
    cannot be made; PhoenixError when a pool in front of the server is not fit for it, see ``pooler``). With
    ``lock_timeout`` (seconds, 0: no end), each of its lock waits ends after that long with
    psycopg.errors.LockNotAvailable: a table a migration holds, say, which nobody may even read meanwhile."""
    try:
        return _session(conninfo, autocommit, lock_timeout)
    except psycopg.OperationalError as exc:  # a pool in session mode gives a server process at the first statement
        require_free_pool(exc, reached_by(conninfo)[1])
        raise


def _session(conninfo: str, autocommit: bool, lock_timeout: int | None):
    conn = _connected(conninfo)
    try:
        settings = [(setting, value) for setting, value, since in SESSION_SETTINGS if conn.info.server_version >= since]
        if lock_timeout is not None:
            settings.append(("lock_timeout", "%ds" % lock_timeout))
        given = [sql.SQL("set_config({}, {}, false)").format(sql.Literal(setting), sql.Literal(value))
                 for setting, value in settings]
        # One round trip, the settings given only by the server process this connection started. Through a pool the
        # process id libpq learned is the pool's own, and they wait until the pool is known to keep sessions whole.
        direct, settled_by = conn.execute(sql.SQL("SELECT pg_backend_pid() = %(started)s, pg_backend_pid(), {}").format(
            sql.SQL(", ").join(sql.SQL("CASE WHEN pg_backend_pid() = %(started)s THEN {} END").format(setting)
                               for setting in given)), {"started": conn.info.backend_pid}).fetchone()[:2]
        if not direct:
            require_session_pool(conn, conninfo)
            settled_by = conn.execute(sql.SQL("SELECT pg_backend_pid(), {}").format(sql.SQL(", ").join(given))).fetchone()[0]
        require_one_server(conn, settled_by)  # and a second round trip, a read, which a load balancer sends elsewhere
    except BaseException:
        conn.close()
        raise
    conn.autocommit = autocommit
    return conn


def _connected(conninfo: str):
    """An autocommit connection (the settings outlive no transaction) in UTF-8, started with AT_START after the
    options the user gave, in ``conninfo`` or PGOPTIONS, when the way to the server takes them."""
    given = conninfo_to_dict(conninfo).get("options") or os.environ.get(LIBPQ_ENV["options"])
    # A run's text is Python's, any character: the server converts it to and from the database's encoding, whatever
    # client_encoding the database or the role sets for its users (LATIN1, say).
    conninfo = make_conninfo(conninfo, client_encoding="UTF8")
    try:
        return psycopg.connect(make_conninfo(conninfo, options=" ".join(filter(None, (given, AT_START)))),
                               autocommit=True)
    except psycopg.OperationalError as exc:
        if REFUSED_OPTIONS not in str(exc):
            raise
    return psycopg.connect(conninfo, autocommit=True)


def connect(target: ConnectionTarget, lock_timeout: int | None = None):
    """Open a psycopg connection (see ``open_session``), or raise PhoenixError saying why it failed."""
    conninfo = target.conninfo()
    try:
        return open_session(conninfo, lock_timeout=lock_timeout)
    except psycopg.OperationalError as exc:
        reason = " ".join(target.redact(str(exc)).split()) or exc.__class__.__name__
        raise PhoenixError(
            "cannot connect to %s: %s. Check db_url/login_* and that the server is running"
            % (target.describe(), reason),
            reason=reason,
        ) from None
