"""A database reached through pgpool-II with load balancing, in front of a primary and its hot standby, as some
deployments spread their reads. pgpool-II sends a statement that only reads to the standby and one that writes or
calls a volatile function to the primary, and a SET to both. Phoenix writes by what it read, and a standby's rows
may lag behind: every module refuses such a session before it writes anything, and a backup whose pg_dump alone
was sent to the standby says what happened. With Phoenix's sessions sent to the primary (the way out the message
names), everything works."""

from __future__ import annotations

import contextlib
import json
import re
import signal
from pathlib import Path
from typing import Iterator

import psycopg
import pytest

from ansible_collections.phoenix.platform.plugins.modules import (
    phoenix_backup,
    phoenix_restore,
    phoenix_restore_drill,
    phoenix_world,
)
from ansible_collections.phoenix.platform.tests.helpers import free_port, run_module

from conftest import make_base_dir, replayed, serving
from worlds_fixtures import TINY, migrate, table_fingerprints

pytestmark = pytest.mark.usefixtures("clean_env", "on_both_servers")
WAY_OUT = ("connect to the primary directly, or have the load balancer send Phoenix's sessions (their application_name "
           "starts with phoenix) to the primary (pgpool-II: app_name_redirect_preference_list = 'phoenix.*:primary(1.0)')")


@pytest.fixture
def on_both_servers(database, standby) -> None:
    """The test's database migrated, and replayed on the standby: pgpool-II opens each session on both servers."""
    migrate(database)
    replayed(database, standby)


@contextlib.contextmanager
def pgpool(database, standby, *settings: str) -> Iterator[str]:
    """pgpool-II in front of ``database``'s server (node 0) and ``standby`` (node 1), balancing every read to the
    standby (the primary's weight is 0) unless ``settings`` say otherwise; yields the db_url through it."""
    base = make_base_dir("phoenix-pgpool-")
    port = free_port()
    (base / "pcp.conf").touch()
    config = base / "pgpool.conf"
    config.write_text("\n".join([
        "backend_clustering_mode = 'streaming_replication'",
        "listen_addresses = ''", "port = %d" % port, "socket_dir = '%s'" % base,
        "pcp_listen_addresses = ''", "pcp_port = %d" % free_port(), "pcp_socket_dir = '%s'" % base,
        *["backend_hostname%d = '%s'\nbackend_port%d = %d\nbackend_weight%d = %d" % (
            node, cluster.socket_dir, node, cluster.port, node, weight)
          for node, (cluster, weight) in enumerate([(database.cluster, 0), (standby, 1)])],
        "load_balance_mode = on", "num_init_children = 16", "max_pool = 2",
        "sr_check_user = 'postgres'", "sr_check_period = 0", "health_check_period = 0",
        "pid_file_name = '%s'" % (base / "pgpool.pid"), "logdir = '%s'" % base, *settings, ""]))
    url = "postgresql://postgres@/%s?host=%s&port=%d" % (database.name, base, port)
    with serving("pgpool", ["-n", "-f", str(config), "-F", str(base / "pcp.conf")], base, url, signal.SIGINT):  # fast
        yield url


def test_reads_sent_to_a_standby_are_refused_before_anything(database, standby, tmp_path):
    before = table_fingerprints(database)
    with pgpool(database, standby) as url:
        for module, params, check in [
                (phoenix_world.main, {"id": "UC_BALANCED", "seed": TINY}, True),
                (phoenix_world.main, {"id": "UC_BALANCED", "seed": TINY}, False),
                (phoenix_backup.main, {"dest": str(tmp_path)}, False)]:
            refused = run_module(module, dict(params, db_url=url, stage="BETA"), check=check)
            assert refused.get("failed") is True and "Traceback" not in refused["_raw"], refused
            assert re.fullmatch(
                r"the connection to \S+:\d+/%s sends this session's reads to another server than the rest: a read "
                r"was answered by a read-only \(standby\) server process \d+, the session's settings by process \d+ "
                r"\(a load balancer, such as pgpool-II with load_balance_mode = on\)\. Phoenix writes by what it read "
                r"and holds locks for a whole session, and a standby's rows may lag behind the primary's; %s"
                % (database.name, re.escape(WAY_OUT)), refused["msg"]), refused["msg"]
    assert table_fingerprints(database) == before
    assert not list(tmp_path.iterdir())  # no backup was written
    assert not database.query("SELECT objid FROM pg_locks WHERE locktype = 'advisory'")


def test_a_pg_dump_sent_to_the_standby_is_explained(database, standby, tmp_path):
    """The modules' sessions go to the primary, pg_dump's (named phoenix backup ...) still to the standby."""
    with pgpool(database, standby, "app_name_redirect_preference_list = 'phoenix[.]platform[.].*:primary(1.0)'") as url:
        failed = run_module(phoenix_backup.main, {"db_url": url, "stage": "BETA", "dest": str(tmp_path)})
    assert failed.get("failed") is True and "Traceback" not in failed["_raw"], failed
    assert failed["msg"] == (
        "pg_dump went through pgpool-II, which sends a SET to the primary and to the standby that answers the "
        "session's reads, and the standby refused pg_dump's SET TRANSACTION SNAPSHOT, a snapshot taken on the primary "
        "(pgpool-II: kind mismatch among backends); " + WAY_OUT), failed["msg"]
    assert [path.name for path in (tmp_path / "BETA").iterdir()] == [".lock"]  # the stage's lock: no backup was kept


def test_with_phoenix_sent_to_the_primary_every_module_works(database, standby, tmp_path):
    with pgpool(database, standby, "app_name_redirect_preference_list = 'phoenix.*:primary(1.0)'") as url:
        world = {"db_url": url, "stage": "BETA", "id": "UC_BALANCED", "seed": TINY}
        assert run_module(phoenix_world.main, world)["changed"] is True
        assert run_module(phoenix_world.main, world)["changed"] is False
        taken = run_module(phoenix_backup.main, {"db_url": url, "stage": "BETA", "dest": str(tmp_path)})
        assert taken["changed"] is True, taken.get("msg")
        manifest = json.loads((Path(taken["backup"]["path"]) / "manifest.json").read_text())
        assert manifest["row_counts"]["WorldMeta"] == database.query('SELECT count(*) FROM "WorldMeta"')[0][0]
        removed = run_module(phoenix_world.main, dict(world, state="absent"))
        assert removed["changed"] is True, removed.get("msg")
    assert not database.query('SELECT 1 FROM "WorldMeta" WHERE id = %s', ("UC_BALANCED",))


@contextlib.contextmanager
def replay_paused(standby) -> Iterator[None]:
    """The standby stops applying the primary's changes within the block: a database created meanwhile is not there."""
    with psycopg.connect(**standby.conninfo(), autocommit=True) as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
        try:
            yield
        finally:
            conn.execute("SELECT pg_wal_replay_resume()")


@pytest.mark.parametrize("module, params, said, otherwise", [
    (phoenix_restore.main, {"mode": "swap", "safety_backup": False}, "mode=swap restores", ", or use mode=in_place"),
    (phoenix_restore_drill.main, {}, "a drill restores", "")])
def test_a_new_database_the_standby_lacks_is_explained(database, standby, tmp_path, module, params, said, otherwise):
    """A swap restore or a drill connects to the database it has just created, which pgpool-II opens on the standby
    too; an in-place restore needs no new database and works."""
    with pgpool(database, standby, "app_name_redirect_preference_list = 'phoenix.*:primary(1.0)'") as url:
        assert run_module(phoenix_backup.main, {"db_url": url, "stage": "BETA", "dest": str(tmp_path)})["changed"]
        run_module(phoenix_world.main, {"db_url": url, "stage": "BETA", "id": "UC_LATER", "seed": TINY})
        before = table_fingerprints(database)
        with replay_paused(standby):
            failed = run_module(module, dict(params, db_url=url, stage="BETA", dest=str(tmp_path), backup="latest"))
            assert failed.get("failed") is True and "Traceback" not in failed["_raw"], failed
            assert re.fullmatch(
                r"%s into a new database \S+, and the load balancer in front of the server \(pgpool-II\) could not "
                r"connect to it on every server: a standby had not yet replayed its creation \(.*kind does not match "
                r"between main.*\)\. Connect straight to the primary for this%s" % (re.escape(said), re.escape(otherwise)),
                failed["msg"]), failed["msg"]
            assert table_fingerprints(database) == before
            assert not database.query("SELECT datname FROM pg_database WHERE datname LIKE %s OR datname LIKE %s",
                                      ("%phoenix_restore%", "phoenix_drill%"))  # the new database was dropped
            restored = run_module(phoenix_restore.main, {"db_url": url, "stage": "BETA", "dest": str(tmp_path),
                                                         "backup": "latest", "mode": "in_place"})
            assert restored["changed"] is True, restored.get("msg")
        assert not database.query('SELECT 1 FROM "WorldMeta" WHERE id = %s', ("UC_LATER",))  # as in the backup
