# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A PostgreSQL cluster in a local directory: the embedded default and the test database.

Binaries come from the system (/usr/lib/postgresql/*/bin, pg_config --bindir) or from the
``pgserver`` wheel. PostgreSQL refuses to run as root, so as root the server runs as an
unprivileged OS user (``postgres`` by default).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._pg.binaries import find_bin_dir, major_of

try:
    import psycopg
    from psycopg import sql
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass

BIN_SOURCES = ("auto", "system", "pgserver")
SUPERUSER = "postgres"
CONFIG_FILE = "phoenix.conf"
OWN_FILES = ("data", "run", "server.log", ".lock")  # .lock: where earlier versions kept the lock file


class LocalCluster:
    """A cluster under ``base_dir``: data/, run/ (socket), server.log."""

    def __init__(self, base_dir: str | os.PathLike, port: int, bin_source: str = "auto",
                 os_user: str = "postgres", settings: dict[str, str] | None = None) -> None:
        self.base_dir = Path(base_dir).absolute()
        self.data_dir = self.base_dir / "data"
        self.socket_dir = self.base_dir / "run"
        self.log_file = self.base_dir / "server.log"
        self.port = int(port)
        self.bin_source = bin_source
        self.run_as = os_user if os.geteuid() == 0 else None
        self.settings = settings or {}
        self._bin_dir: Path | None = None

    # -- discovery -------------------------------------------------------------------
    @property
    def bin_dir(self) -> Path:
        if self._bin_dir is None:
            version_file = self.data_dir / "PG_VERSION"
            want = major_of(version_file.read_text()) if version_file.exists() else None
            self._bin_dir = find_bin_dir(self.bin_source, want)
        return self._bin_dir

    def conninfo(self, dbname: str = "postgres") -> dict[str, str | int]:
        """Keywords for a superuser connection over the Unix socket (trusted locally)."""
        return {"host": str(self.socket_dir), "port": self.port, "user": SUPERUSER, "dbname": dbname}

    def status(self) -> str:
        """``absent``, ``stopped`` or ``running``."""
        if not (self.data_dir / "PG_VERSION").exists():
            return "absent"
        result = self._run("pg_ctl", "status", "-D", str(self.data_dir), check=False)
        return "running" if result.returncode == 0 else "stopped"

    # -- changes (each returns whether it changed something) ---------------------------
    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Serialise cluster operations of concurrent runs (several hosts, one cluster). The lock file sits next
        to base_dir, not in it: state=absent deletes base_dir while holding the lock."""
        self.base_dir.parent.mkdir(parents=True, exist_ok=True)
        with open(self.base_dir.with_name(".%s.lock" % self.base_dir.name), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def ensure_initialised(self) -> bool:
        if (self.data_dir / "PG_VERSION").exists():
            return self._write_config()
        self._prepare_directories()
        # The superuser gets no password: it logs in over the private socket directory only.
        self._run(
            "initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "--auth-local=trust",
            "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync",
        )
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write("\ninclude_if_exists = '%s'\n" % CONFIG_FILE)
        self._write_config()
        return True

    def ensure_running(self) -> bool:
        changed = self.ensure_initialised()
        state = self.status()
        if state == "running" and changed:
            self._run("pg_ctl", "restart", "-D", str(self.data_dir), "-l", str(self.log_file), "-m", "fast", "-w")
            return True
        if state == "running":
            return changed
        self._run("pg_ctl", "start", "-D", str(self.data_dir), "-l", str(self.log_file), "-w", "-t", "60")
        return True

    def ensure_stopped(self) -> bool:
        if self.status() != "running":
            return False
        self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w")
        return True

    def ensure_absent(self) -> bool:
        if not self.base_dir.exists():
            return False
        foreign = sorted(p.name for p in self.base_dir.iterdir() if p.name not in OWN_FILES)
        if foreign:
            raise PhoenixError(
                "%s holds files this role did not create (%s); refusing to delete it"
                % (self.base_dir, ", ".join(foreign))
            )
        self.ensure_stopped()
        shutil.rmtree(self.base_dir)
        return True

    def ensure_databases(self, names: list[str]) -> list[str]:
        """Create the missing databases; returns the ones created."""
        with psycopg.connect(**self.conninfo(), autocommit=True) as conn:
            existing = {row[0] for row in conn.execute(sql.SQL("SELECT datname FROM pg_database"))}
            created = [name for name in names if name not in existing]
            for name in created:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return created

    # -- helpers -----------------------------------------------------------------------
    def _prepare_directories(self) -> None:
        if self.run_as:
            self._ensure_os_user()
        for path in (self.data_dir, self.socket_dir):
            path.mkdir(parents=True, exist_ok=True)
            self._hand_over(path, 0o700)
        self.log_file.touch()
        self._hand_over(self.log_file, 0o600)
        if self.run_as:
            self._require_access("-w", self.data_dir, "choose a base directory whose parents it can traverse")
            self._require_access("-x", self.bin_dir / "postgres",
                                 "install PostgreSQL system-wide or keep the venv where that user can read it")

    def _ensure_os_user(self) -> None:
        """As root on a machine without PostgreSQL packages, create the server's system user."""
        try:
            pwd.getpwnam(self.run_as)
        except KeyError:
            subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                            "--shell", "/usr/sbin/nologin", self.run_as], check=True, capture_output=True)

    def _require_access(self, test_flag: str, path: Path, advice: str) -> None:
        probe = subprocess.run(["runuser", "-u", self.run_as, "--", "test", test_flag, str(path)],
                               capture_output=True, check=False)
        if probe.returncode != 0:
            raise PhoenixError(
                "PostgreSQL runs as OS user %s (it refuses to run as root), and that user cannot use %s: %s"
                % (self.run_as, path, advice)
            )

    def _hand_over(self, path: Path, mode: int) -> None:
        path.chmod(mode)
        if self.run_as:
            entry = pwd.getpwnam(self.run_as)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _write_config(self) -> bool:
        """Write phoenix.conf (port, socket, local-only listening); True when it changed."""
        lines = {
            "port": str(self.port),
            "unix_socket_directories": "'%s'" % self.socket_dir,
            "listen_addresses": "'127.0.0.1'",
        }
        lines.update(self.settings)
        text = "".join("%s = %s\n" % item for item in sorted(lines.items()))
        path = self.data_dir / CONFIG_FILE
        if path.exists() and path.read_text() == text:
            return False
        path.write_text(text)
        self._hand_over(path, 0o600)
        return True

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bin_dir / tool), *args]
        if self.run_as:
            command = ["runuser", "-u", self.run_as, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, check=False, cwd="/")
        if check and result.returncode != 0:
            raise PhoenixError(
                "%s failed (exit %d): %s; see %s"
                % (tool, result.returncode, (result.stderr or result.stdout).strip()[-800:], self.log_file)
            )
        return result
