"""The embedded cluster (LocalCluster and the phoenix_local_postgres module) with both binary sources."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import textwrap
import threading
import uuid

import psycopg
import pytest
from psycopg import sql

from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._pg import binaries
from ansible_collections.phoenix.platform.plugins.module_utils._pg.local_cluster import LocalCluster
from ansible_collections.phoenix.platform.plugins.modules import phoenix_local_postgres
from ansible_collections.phoenix.platform.tests.helpers import free_port, repo_root, run_module

from conftest import THROWAWAY_SETTINGS, make_base_dir


@pytest.fixture
def base_dir():
    base = make_base_dir("phoenix-cluster-")
    yield base
    cluster_dir = base / "pg"
    if (cluster_dir / "data").exists():
        LocalCluster(cluster_dir, 1).ensure_stopped()
    shutil.rmtree(base, ignore_errors=True)


def server_major(cluster: LocalCluster) -> int:
    with psycopg.connect(**cluster.conninfo()) as conn:
        return int(conn.execute(sql.SQL("SHOW server_version_num")).fetchone()[0]) // 10000


@pytest.mark.parametrize("source, major", [("system", 15), ("pgserver", 16)])
def test_lifecycle_with_each_binary_source(base_dir, source, major):
    cluster = LocalCluster(base_dir / "pg", free_port(), bin_source=source, settings=THROWAWAY_SETTINGS)
    assert cluster.status() == "absent"
    assert cluster.ensure_running() is True
    assert cluster.status() == "running"
    assert server_major(cluster) == major
    assert str(cluster.bin_dir).startswith("/usr/lib/postgresql" if source == "system" else sys.prefix)
    assert cluster.ensure_running() is False
    assert cluster.ensure_databases(["phoenix_local", "phoenix_beta"]) == ["phoenix_local", "phoenix_beta"]
    assert cluster.ensure_databases(["phoenix_local", "phoenix_beta"]) == []
    assert cluster.ensure_stopped() is True
    assert cluster.status() == "stopped"
    assert cluster.ensure_stopped() is False
    assert cluster.ensure_running() is True
    with psycopg.connect(**cluster.conninfo("phoenix_beta")) as conn:  # data survived the restart
        assert conn.execute(sql.SQL("SELECT current_database()")).fetchone()[0] == "phoenix_beta"
    assert cluster.ensure_absent() is True
    assert not (base_dir / "pg").exists()
    assert cluster.ensure_absent() is False


def test_existing_data_directory_picks_matching_binaries(base_dir):
    port = free_port()
    LocalCluster(base_dir / "pg", port, bin_source="pgserver", settings=THROWAWAY_SETTINGS).ensure_initialised()
    auto = LocalCluster(base_dir / "pg", port)
    assert binaries.bin_dir_major(auto.bin_dir) == 16


def test_superuser_cannot_log_in_over_tcp(base_dir):
    """No password is set or stored: the private socket directory is the only way in."""
    cluster = LocalCluster(base_dir / "pg", free_port(), settings=THROWAWAY_SETTINGS)
    cluster.ensure_running()
    assert sorted(p.name for p in (base_dir / "pg").iterdir()) == ["data", "run", "server.log"]
    assert oct((base_dir / "pg" / "run").stat().st_mode & 0o777) == "0o700"
    tcp = {"host": "127.0.0.1", "port": cluster.port, "user": "postgres", "dbname": "postgres"}
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(**tcp, password="anything").close()
    psycopg.connect(**cluster.conninfo()).close()


def test_refuses_to_delete_a_directory_it_did_not_create(base_dir):
    (base_dir / "pg").mkdir()
    (base_dir / "pg" / "important.txt").write_text("keep me")
    with pytest.raises(PhoenixError, match="refusing to delete"):
        LocalCluster(base_dir / "pg", 1).ensure_absent()
    assert (base_dir / "pg" / "important.txt").exists()


def test_two_hosts_removing_one_cluster_together_both_succeed(base_dir):
    """Hosts sharing one embedded cluster run state=absent at the same time (molecule's destroy does)."""
    for attempt in range(5):
        root = base_dir / ("pg%d" % attempt)
        for n in range(300):  # a tree big enough for the removals to overlap
            (root / "data" / str(n % 10)).mkdir(parents=True, exist_ok=True)
            (root / "data" / str(n % 10) / str(n)).write_text("x")
        errors: list[BaseException] = []

        def remove(target=root):
            try:
                phoenix_local_postgres.apply(LocalCluster(target, 1), "absent", [])
            except BaseException as exc:  # reported below, with the attempt
                errors.append(exc)

        threads = [threading.Thread(target=remove) for _thread in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == [], (attempt, errors)
        assert not root.exists()


def test_module_check_mode_creates_nothing_then_runs_idempotently(base_dir):
    args = {"base_dir": str(base_dir / "pg"), "port": free_port(), "databases": ["phoenix_local"],
            "settings": THROWAWAY_SETTINGS}
    planned = run_module(phoenix_local_postgres.main, args, check=True)
    assert planned["changed"] is True and planned["status"] == "absent"
    assert not (base_dir / "pg" / "data").exists()
    first = run_module(phoenix_local_postgres.main, args)
    assert first["changed"] is True and first["databases_created"] == ["phoenix_local"]
    second = run_module(phoenix_local_postgres.main, args)
    assert second["changed"] is False and second["status"] == "running"
    stopped = run_module(phoenix_local_postgres.main, dict(args, state="stopped"))
    assert stopped["changed"] is True and stopped["status"] == "stopped"
    gone = run_module(phoenix_local_postgres.main, dict(args, state="absent"))
    assert gone["changed"] is True and not (base_dir / "pg").exists()


def test_runs_as_an_ordinary_user(base_dir):
    """As root the server runs as `postgres`; here the whole cluster code runs as that user."""
    script = textwrap.dedent("""
        import sys
        from ansible_collections.phoenix.platform.plugins.module_utils._pg.local_cluster import LocalCluster
        cluster = LocalCluster(sys.argv[1], int(sys.argv[2]), settings={"fsync": "off"})
        assert cluster.run_as is None
        print(cluster.ensure_running(), cluster.status(), cluster.ensure_stopped(), cluster.status())
    """)
    cluster_dir, port = base_dir / "pg", str(free_port())
    if os.geteuid() != 0:
        command = [sys.executable, "-c", script, str(cluster_dir), port]
        env = dict(os.environ, PYTHONPATH=os.path.join(repo_root(), "collections"))
    else:
        # Give the ordinary user its own copy of the code: the checkout may sit where it cannot read.
        tree = base_dir / "code" / "ansible_collections" / "phoenix" / "platform" / "plugins"
        shutil.copytree(os.path.join(repo_root(), "plugins", "module_utils"), tree / "module_utils")
        os.chmod(base_dir, 0o777)
        subprocess.run(["chmod", "-R", "a+rX", str(base_dir / "code")], check=True)
        command = ["runuser", "-u", "postgres", "--", "/usr/bin/python3", "-c", script, str(cluster_dir), port]
        env = dict(os.environ, PYTHONPATH=str(base_dir / "code"))
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd="/", check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "running", "True", "stopped"]


def test_creates_the_server_os_user_when_missing(base_dir):
    """A machine with only Python has no `postgres` user: as root the cluster creates one."""
    user = "phx" + uuid.uuid4().hex[:8]
    cluster = LocalCluster(base_dir / "pg", free_port(), os_user=user, settings=THROWAWAY_SETTINGS)
    if os.geteuid() != 0:
        assert cluster.run_as is None  # an ordinary user runs the server itself
        return
    try:
        assert cluster.ensure_running() is True
        entry = pwd.getpwnam(user)
        assert entry.pw_shell == "/usr/sbin/nologin"
        assert (base_dir / "pg" / "data").stat().st_uid == entry.pw_uid
        assert cluster.status() == "running"
    finally:
        cluster.ensure_absent()
        subprocess.run(["userdel", user], check=False)
