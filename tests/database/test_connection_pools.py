"""A database reached through PgBouncer, as many deployments reach theirs. A pool in session mode keeps a client on
one server process, and everything works through it. A pool in transaction or statement mode hands each
transaction to any server process: a run's advisory lock would stay with a process that then serves someone else,
and its settings (no statement time limit, its lock_timeout) would reach the application's sessions. Every module
refuses such a pool before it writes or sets anything."""

from __future__ import annotations

import contextlib
import signal
from typing import Iterator

import psycopg
import pytest

from ansible_collections.phoenix.platform.plugins.modules import (
    phoenix_backup,
    phoenix_health,
    phoenix_restore,
    phoenix_world,
    phoenix_world_info,
)
from ansible_collections.phoenix.platform.tests.helpers import free_port, run_module

from conftest import make_base_dir, serving
from worlds_fixtures import TINY, app_fingerprints, migrate, table_fingerprints

pytestmark = pytest.mark.usefixtures("clean_env")


@contextlib.contextmanager
def pgbouncer(database, pool_mode: str, pool_size: int, *settings: str,
              ignored: str = "extra_float_digits,options") -> Iterator[str]:
    """PgBouncer in ``pool_mode`` in front of ``database``'s server, with ``pool_size`` server processes per
    database and more ``settings``, passing on no startup parameter it ``ignored`` (it refuses a connection that
    gives one it neither knows nor ignores); yields the db_url that reaches ``database`` through it."""
    base = make_base_dir("phoenix-pgbouncer-")
    port = free_port()
    config = base / "pgbouncer.ini"
    config.write_text("\n".join([
        "[databases]",
        "* = host=%s port=%d user=postgres" % (database.cluster.socket_dir, database.cluster.port),
        "[pgbouncer]",
        "listen_addr = 127.0.0.1", "listen_port = %d" % port, "unix_socket_dir =",
        "auth_type = any", "pool_mode = %s" % pool_mode, "default_pool_size = %d" % pool_size,
        "ignore_startup_parameters = %s" % ignored,
        "logfile = %s" % (base / "pgbouncer.log"), *settings, ""]))
    url = "postgresql://postgres@127.0.0.1:%d/%s" % (port, database.name)
    with serving("pgbouncer", [str(config)], base, url, signal.SIGTERM):  # SIGTERM: at once, sessions or not
        yield url


def refused_by_the_pool(result: dict, url: str, reason: str, said_first: str = "") -> None:
    """``said_first``: what the module says before the reason it was given (a health check: which check failed)."""
    assert result.get("failed") is True, result
    assert "Traceback" not in result["_raw"]
    port, database = url.rsplit(":", 1)[1].split("/")
    assert result["msg"] == said_first + (
        "the connection to 127.0.0.1:%s/%s goes through a pool that hands each transaction to any of its server "
        "processes (PgBouncer with pool_mode = transaction or statement): %s. Phoenix holds locks and settings for a "
        "whole session, which such a pool would share with other clients; connect to the server directly, or "
        "through a pool in session mode" % (port, database, reason)), result["msg"]


def settings_of_a_pooled_session(url: str) -> tuple[str, str]:
    """What an application's session through the pool gets (the pool has one server process: the run's)."""
    with psycopg.connect(url, autocommit=True) as conn:
        return (conn.execute("SHOW lock_timeout").fetchone()[0], conn.execute("SHOW statement_timeout").fetchone()[0])


@pytest.mark.parametrize("pool_mode, reason", [
    ("transaction", "two connections were served by one server process"),
    ("statement", "it refused a transaction block")])
def test_a_pool_that_shares_server_processes_is_refused_before_anything(database, tmp_path, pool_mode, reason):
    migrate(database)
    with database.connect() as conn:
        conn.execute("ALTER DATABASE %s SET statement_timeout = '41s'" % database.name)  # the application's limit
    before = table_fingerprints(database)
    with pgbouncer(database, pool_mode, pool_size=1) as url:  # a busy pool: one idle server process
        for check in (True, False):
            created = run_module(phoenix_world.main, {"db_url": url, "stage": "BETA", "id": "UC_POOL", "seed": TINY,
                                                      "lock_timeout": 7}, check=check)
            refused_by_the_pool(created, url, reason)
        refused_by_the_pool(run_module(phoenix_backup.main, {"db_url": url, "stage": "BETA", "dest": str(tmp_path)}),
                            url, reason)
        unhealthy = run_module(phoenix_health.main, {"db_url": url, "stage": "BETA"})
        refused_by_the_pool(unhealthy, url, reason, "BETA is unhealthy (postgres@%s): database: " % url.split("@")[1])
        assert unhealthy["checks"]["database"]["status"] == "unhealthy"
        if pool_mode == "transaction":  # the run's settings never reached the pool's server process
            assert settings_of_a_pooled_session(url) == ("0", "41s")
    assert table_fingerprints(database) == before
    assert not list(tmp_path.iterdir())  # no backup was written
    assert not database.query("SELECT objid FROM pg_locks WHERE locktype = 'advisory'")


def test_a_pool_in_session_mode_serves_every_module(database, tmp_path):
    migrate(database)
    with pgbouncer(database, "session", pool_size=10) as url:  # room for a run's sessions at once
        created = run_module(phoenix_world.main, {"db_url": url, "stage": "BETA", "id": "UC_POOL", "seed": TINY})
        assert created.get("failed") is not True and created["changed"] is True, created
        again = run_module(phoenix_world.main, {"db_url": url, "stage": "BETA", "id": "UC_POOL", "seed": TINY})
        assert again.get("failed") is not True and again["changed"] is False, again
        with_world = app_fingerprints(database)
        made = run_module(phoenix_backup.main, {"db_url": url, "stage": "BETA", "dest": str(tmp_path), "verify": True})
        assert made.get("failed") is not True and made["changed"] is True, made
        for mode in ("in_place", "swap"):
            removed = run_module(phoenix_world.main, {"db_url": url, "stage": "BETA", "id": "UC_POOL",
                                                      "state": "absent"})
            assert removed["changed"] is True and app_fingerprints(database) != with_world, removed
            restored = run_module(phoenix_restore.main, {"db_url": url, "stage": "BETA", "dest": str(tmp_path),
                                                         "mode": mode, "safety_backup": False})
            assert restored.get("failed") is not True, restored
            assert app_fingerprints(database) == with_world, mode


def test_a_pool_that_refuses_startup_options_serves_the_sessions_started_without_them(database, tmp_path):
    """Sessions start with libpq options lifting the application's limits; PgBouncer refuses a connection that
    gives options it does not ignore, and a run's sessions and pg_dump connect without them then."""
    migrate(database)
    with pgbouncer(database, "session", pool_size=10, ignored="extra_float_digits") as url:
        with pytest.raises(psycopg.OperationalError, match="unsupported startup parameter"):
            psycopg.connect(url + "?options=-c%20statement_timeout%3D0").close()
        created = run_module(phoenix_world.main, {"db_url": url, "stage": "BETA", "id": "UC_POOL", "seed": TINY})
        assert created.get("failed") is not True and created["changed"] is True, created
        made = run_module(phoenix_backup.main, {"db_url": url, "stage": "BETA", "dest": str(tmp_path), "jobs": 2,
                                                "format": "directory", "verify": True})
        assert made.get("failed") is not True and made["changed"] is True, made


def test_a_pool_that_hands_out_its_server_processes_in_turn_is_refused(database):
    """server_round_robin: the pool gives each transaction the server process idle the longest, so a second
    connection does not get the first one's; the first one moves to another process instead."""
    migrate(database)
    with pgbouncer(database, "transaction", 3, "server_round_robin = 1") as url:
        clients = [psycopg.connect(url, autocommit=True) for client in range(3)]
        for client in clients:  # three server processes, all idle afterwards
            client.execute("BEGIN")
        assert len({client.execute("SELECT pg_backend_pid()").fetchone()[0] for client in clients}) == 3
        for client in clients:
            client.execute("ROLLBACK")
            client.close()
        refused = run_module(phoenix_world.main, {"db_url": url, "stage": "BETA", "id": "UC_POOL", "seed": TINY})
        refused_by_the_pool(refused, url, "one connection was served by two server processes")
    assert not database.query('SELECT id FROM "WorldMeta"')


def test_a_session_pool_without_a_free_server_process_says_so(database):
    """Every server process of a session pool is taken (by the application, say): PgBouncer holds the run's
    connection until query_wait_timeout, then refuses it in its own words; the run says what they mean."""
    migrate(database)
    with pgbouncer(database, "session", 1, "query_wait_timeout = 2") as url:
        with psycopg.connect(url, autocommit=True) as application:
            application.execute("SELECT 1")  # the pool's one server process is the application's now
            taken = run_module(phoenix_world_info.main, {"db_url": url, "stage": "BETA"})
    assert taken.get("failed") is True and "Traceback" not in taken["_raw"], taken
    port, name = url.rsplit(":", 1)[1].split("/")
    assert taken["msg"] == (
        "the pool in front of 127.0.0.1:%s/%s gave this run no server process within its query_wait_timeout: all of "
        "them were taken. A run opens several sessions at once (a parallel backup or restore: its jobs and a few "
        "more), each needing a server process of its own in session mode; raise the pool's default_pool_size, or "
        "connect to the server directly" % (port, name)), taken["msg"]
