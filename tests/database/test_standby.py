"""The modules against a hot standby, as teams run one to take backups and answer reads off the primary: what reads
works there; what writes is refused before anything, naming the standby, in check mode too."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import time
from typing import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from ansible_collections.phoenix.platform.plugins.module_utils._backups import store
from ansible_collections.phoenix.platform.plugins.modules import (
    phoenix_audit,
    phoenix_backup,
    phoenix_backup_info,
    phoenix_health,
    phoenix_maintenance,
    phoenix_restore,
    phoenix_restore_drill,
    phoenix_schema,
    phoenix_seed,
    phoenix_transfer,
    phoenix_user,
    phoenix_world,
    phoenix_world_cleanup,
    phoenix_world_info,
)
from ansible_collections.phoenix.platform.tests.helpers import module_process, run_module

from conftest import Database, replayed, server_settings
from test_playbooks import playbook, recap
from worlds_fixtures import app_fingerprints, table_fingerprints

pytestmark = pytest.mark.usefixtures("clean_env")

REFUSED = "is a standby: it replays its primary's changes and takes no writes. Point this task at the primary"


def call(main, database, check=False, stage="BETA", **options):
    return run_module(main, dict({"db_url": database.url, "stage": stage}, **options), check=check)


def audited(database, operation: str) -> list[tuple]:
    return database.query("SELECT details FROM phoenix.audit_log WHERE operation = %s", (operation,))


@pytest.mark.parametrize("fmt", ["custom", "directory"])
def test_a_backup_taken_on_a_standby_restores_on_the_primary(data, standby, tmp_path, fmt):
    replica = replayed(data, standby)
    made = call(phoenix_backup.main, replica, dest=str(tmp_path), format=fmt, verify=True)
    assert made["changed"] is True and not made.get("failed"), made
    backup_id = made["backup"]["id"]
    assert "%s was taken on a standby" % backup_id in made["_raw"]
    manifest = json.loads((tmp_path / "BETA" / backup_id / "manifest.json").read_text())
    assert manifest["verified"] and manifest["row_counts"]["Artifact"] == 6
    assert manifest["standby"]["last_replayed_commit"] is not None
    listed = run_module(phoenix_backup_info.main, {"dest": str(tmp_path), "stage": "BETA"})["backups"]
    assert [b["standby"] for b in listed] == [manifest["standby"]]
    assert audited(data, "backup.create") == []  # the primary's audit log: the standby could not write it

    expected = app_fingerprints(data)
    call(phoenix_world.main, data, id="KEEP_ME", state="absent")
    restored = call(phoenix_restore.main, data, dest=str(tmp_path), backup=backup_id, safety_backup=False)
    assert restored["changed"] is True, restored
    assert app_fingerprints(data) == expected

    on_primary = call(phoenix_backup.main, data, dest=str(tmp_path), format=fmt)
    primary_manifest = json.loads((tmp_path / "BETA" / on_primary["backup"]["id"] / "manifest.json").read_text())
    assert primary_manifest["standby"] is None and "taken on a standby" not in on_primary["_raw"]
    assert on_primary["backup"]["standby"] is None and made["backup"]["standby"] == manifest["standby"]
    assert len(audited(data, "backup.create")) == 1


def test_health_reports_a_standby_and_records_only_on_the_primary(data, standby):
    call(phoenix_schema.main, data)
    replica = replayed(data, standby)
    report = call(phoenix_health.main, replica, record=True)
    assert report["status"] == "healthy" and report["changed"] is False, report
    assert report["checks"]["replication"]["status"] == "healthy"
    assert "the server is a standby, which takes no writes: this result was not recorded" in report["_raw"]
    assert call(phoenix_health.main, data, record=True)["changed"] is True
    assert data.query("SELECT count(*) FROM phoenix.health_history") == [(1,)]


def test_reads_and_transfers_from_a_standby(pair, data, standby, tmp_path):
    listed = call(phoenix_world_info.main, replayed(data, standby))
    assert [w["id"] for w in listed["worlds"]] == ["KEEP_ME"]
    exported = call(phoenix_seed.main, replayed(data, standby), state="exported", world="KEEP_ME",
                    dest=str(tmp_path / "seed"))
    assert exported["changed"] is True and (tmp_path / "seed").is_dir(), exported

    source, target = pair
    replica = replayed(source, standby)
    moved = run_module(phoenix_transfer.main, {"db_url": target.url, "stage": "BETA", "worlds": ["UC_TESTING"],
                                               "source": {"db_url": replica.url, "stage": "LOCAL"}})
    assert moved["changed"] is True, moved
    assert target.query('SELECT count(*) FROM "Artifact" WHERE world_id = %s', ("UC_TESTING",)) == [(8,)]
    into = run_module(phoenix_transfer.main, {"db_url": replica.url, "stage": "LOCAL", "worlds": ["UC_TESTING"],
                                              "source": {"db_url": target.url, "stage": "BETA"}}, check=True)
    assert into["failed"] and REFUSED in into["msg"], into


WRITERS = {
    "phoenix_schema": (phoenix_schema.main, {}),
    "phoenix_world": (phoenix_world.main, {"id": "NEW_WORLD"}),
    "phoenix_world_cleanup": (phoenix_world_cleanup.main, {}),
    "phoenix_user": (phoenix_user.main, {"email": "ops@example.com", "world": "KEEP_ME"}),
    "phoenix_audit": (phoenix_audit.main, {"operation": "deploy.succeeded"}),
    "phoenix_maintenance": (phoenix_maintenance.main, {}),
    "phoenix_restore": (phoenix_restore.main, {}),
    "phoenix_restore_drill": (phoenix_restore_drill.main, {}),
}


@pytest.mark.parametrize("check", [True, False], ids=["check", "run"])
@pytest.mark.parametrize("module", sorted(WRITERS))
def test_modules_that_write_refuse_a_standby_before_anything(data, standby, tmp_path, module, check):
    call(phoenix_backup.main, data, dest=str(tmp_path))
    main, options = WRITERS[module]
    if module.startswith("phoenix_restore"):
        options = dict(options, dest=str(tmp_path))
    before = table_fingerprints(data)
    refused = call(main, replayed(data, standby), check=check, **options)
    assert refused.get("failed") and REFUSED in refused["msg"], refused
    assert "%s/%s" % (standby.port, data.name) in refused["msg"]
    assert len(store.list_backups(tmp_path, "BETA")) == 1  # a restore took no safety backup either
    assert table_fingerprints(data) == before


def test_a_role_made_read_only_is_refused_by_name(data, pg_cluster):
    with psycopg.connect(**pg_cluster.conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = on").format(
            sql.Identifier(data.name)))
    try:
        refused = call(phoenix_world.main, data, id="NEW_WORLD")
        assert refused.get("failed") and "makes every transaction read-only (default_transaction_read_only is on" \
            in refused["msg"], refused
        assert call(phoenix_world_info.main, data)["changed"] is False  # reading is still fine
    finally:
        with psycopg.connect(**pg_cluster.conninfo(), autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER DATABASE {} RESET default_transaction_read_only").format(
                sql.Identifier(data.name)))
    assert call(phoenix_world.main, data, id="NEW_WORLD")["changed"] is True


@pytest.mark.slow
def test_a_deploy_pointed_at_a_standby_stops_before_its_backup(data, standby, phoenix_home):
    replica = replayed(data, standby)
    preflight = call(phoenix_health.main, replica)
    assert preflight["checks"]["database"]["standby"] is True
    assert call(phoenix_health.main, data)["checks"]["database"]["standby"] is False
    refused = playbook(phoenix_home, "deploy.yml", "-i", "inventories/beta",
                       extra_env={"PHOENIX_BETA_DB_URL": replica.url})
    assert refused.returncode != 0
    assert "BETA's database is a standby, which takes no writes: a deploy migrates it and restores it on failure. " \
        "Point phoenix_db_url at the primary; nothing was written" in " ".join(refused.stdout.split())
    assert recap(refused.stdout)["phoenix-beta"]["changed"] == 0
    backups = Path(phoenix_home["PHOENIX_HOME"]) / "backups"
    assert not backups.exists() or store.list_backups(backups, "BETA") == []


def standby_session(standby):
    return psycopg.connect(**standby.conninfo(), autocommit=True)


def wait_for_receiver(standby, streaming: bool) -> None:
    """Until the standby's WAL receiver streams, or does not."""
    def receiver() -> tuple | None:
        with standby_session(standby) as conn:
            return conn.execute(sql.SQL("SELECT status FROM pg_stat_wal_receiver")).fetchone()
    deadline = time.monotonic() + 30
    while (receiver() == ("streaming",)) != streaming:
        assert time.monotonic() < deadline, "the standby's WAL receiver is still %s" % (receiver(),)
        time.sleep(0.1)


@contextlib.contextmanager
def primary_conninfo(standby, conninfo: str):
    """The standby's primary_conninfo for one test (a reload starts its WAL receiver again), then put back."""
    with server_settings(standby, primary_conninfo=conninfo):
        wait_for_receiver(standby, streaming=False)
        yield
    wait_for_receiver(standby, streaming=True)


@pytest.fixture
def watcher(data, standby) -> Iterator[Database]:
    """``data`` on the standby, reached as a monitoring role that reads every table and no server statistics (no
    pg_read_all_stats): it sees that a WAL receiver runs, not its status, nor primary_conninfo."""
    with data.connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE standby_watcher LOGIN IN ROLE pg_read_all_data"))
    try:
        yield replayed(data, standby)
    finally:
        with data.connect() as conn:
            conn.execute(sql.SQL("DROP ROLE standby_watcher"))


def as_watcher(replica: Database, check: str) -> dict:
    url = "postgresql://standby_watcher@/%s?host=%s&port=%d" % (replica.name, replica.cluster.socket_dir,
                                                                replica.cluster.port)
    return run_module(phoenix_health.main, {"db_url": url, "stage": "BETA"})["checks"][check]


def test_health_says_when_a_standby_falls_behind_its_primary(data, standby, watcher):
    replica = replayed(data, standby)
    fed = call(phoenix_health.main, replica)["checks"]["replication"]
    assert fed["status"] == "healthy" and fed["receiving"] is True and fed["replayPaused"] is False, fed
    assert fed["replayBacklogBytes"] >= 0
    assert as_watcher(watcher, "replication")["status"] == "healthy"
    assert "receiving" not in call(phoenix_health.main, data)["checks"]["replication"]  # a primary receives nothing

    with standby_session(standby) as conn:
        conn.execute(sql.SQL("SELECT pg_wal_replay_pause()"))
        try:
            call(phoenix_world.main, data, id="WHILE_PAUSED")
            paused = call(phoenix_health.main, replica, fail_on="degraded")
        finally:
            conn.execute(sql.SQL("SELECT pg_wal_replay_resume()"))
    assert paused["failed"] and paused["checks"]["replication"]["replayPaused"] is True
    assert re.search(r"replication: replay is paused on this standby \(pg_wal_replay_pause\), so its rows stay as "
                     r"of \d{4}-\d\d-\d\dT\S+: resume it with pg_wal_replay_resume\(\)", paused["msg"]), paused["msg"]
    assert [w["id"] for w in call(phoenix_world_info.main, replayed(data, standby))["worlds"]] == [
        "KEEP_ME", "WHILE_PAUSED"]

    with primary_conninfo(standby, "host=/nonexistent port=1 user=postgres"):
        cut_off = call(phoenix_health.main, replica)
        # The standby starts a WAL receiver again every few seconds, which fails at once: a role that cannot see
        # its status takes one found running for one that streams, until it is gone again.
        deadline = time.monotonic() + 15
        while (seen_by_watcher := as_watcher(watcher, "replication"))["status"] != "degraded":
            assert time.monotonic() < deadline, seen_by_watcher
            time.sleep(0.2)
    assert seen_by_watcher["receiving"] is False
    replication = cut_off["checks"]["replication"]
    assert cut_off["status"] == "degraded" and replication["receiving"] is False, cut_off
    assert re.search(r"this standby receives no WAL from its primary \(its WAL receiver is (not running|starting|"
                     r"waiting|stopping|restarting)\), so its rows fall behind the primary's: check primary_conninfo "
                     r"and that the primary is reachable", replication["message"]), replication["message"]
    assert call(phoenix_health.main, replica)["status"] == "healthy"


def test_health_names_the_delay_of_a_standby_set_to_apply_changes_late(data, standby):
    """A standby kept to undo mistakes applies its primary's changes an hour late (recovery_min_apply_delay): by
    design, so it stays healthy, with a warning that its rows, and backups taken from it, are an hour behind."""
    replica = replayed(data, standby)
    assert call(phoenix_health.main, replica)["checks"]["replication"]["applyDelaySeconds"] == 0
    with server_settings(standby, recovery_min_apply_delay="1h"):
        delayed = call(phoenix_health.main, replica, fail_on="degraded")
    replayed(data, standby)  # what came meanwhile (autovacuum's, say), replayed before the next test reads it
    assert delayed.get("failed") is not True and delayed["status"] == "healthy", delayed
    assert delayed["checks"]["replication"]["applyDelaySeconds"] == 3600
    assert [w["event"]["msg"] for w in delayed["warnings"]][:1] == [
        "this standby applies its primary's changes 1 h late (recovery_min_apply_delay): its rows, and backups taken "
        "from it, are at least that far behind the primary's"]
    assert "warnings" not in call(phoenix_health.main, data)  # a primary applies nothing late


def test_a_backup_cancelled_by_the_standbys_replay_says_what_to_do(data, standby, tmp_path):
    with data.connect() as conn:  # a table whose dump lasts a while
        conn.execute(sql.SQL("CREATE TABLE public.ledger AS SELECT g AS id, md5(g::text) AS entry "
                             "FROM generate_series(1, 1500000) g"))
    replica = replayed(data, standby)
    with server_settings(standby, max_standby_streaming_delay="0"):
        backup = module_process("phoenix_backup", {"db_url": replica.url, "stage": "BETA", "dest": str(tmp_path)},
                                stdout=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while replica.query("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                            "WHERE l.relation = 'public.ledger'::regclass AND a.application_name <> ''") == [(0,)]:
            assert time.monotonic() < deadline and backup.poll() is None, (
                "the backup never held the table: %s" % (backup.communicate()[0] if backup.poll() is not None else ""))
            time.sleep(0.02)
        with data.connect() as conn:  # the primary changes the table, which replay may not do while it is read
            conn.execute(sql.SQL("SET synchronous_commit = on"))  # flushed, so sent to the standby at once
            conn.execute(sql.SQL("ALTER TABLE public.ledger ADD COLUMN checked boolean"))
        result = json.loads(backup.communicate(timeout=120)[0])
    assert result["failed"], result
    assert result["msg"] == (
        "the standby's replay cancelled the backup (a conflict with recovery), and no backup was made: the server is "
        "a standby: its replay cancels a query that holds back its primary's changes for longer than "
        "max_standby_streaming_delay. Run this again; for long reads, such as a backup, raise "
        "max_standby_streaming_delay on the standby (-1 waits for them) and set hot_standby_feedback = on, or run "
        "them on the primary"), result["msg"]
    assert store.list_backups(tmp_path, "BETA") == []


@pytest.mark.slow
def test_a_standbys_host_writes_metrics_apart_from_the_primarys(data, standby, phoenix_home):
    metrics_dir = Path(phoenix_home["PHOENIX_HOME"]) / "metrics"
    for url, server in ((data.url, ""), (replayed(data, standby).url, "standby")):
        ran = playbook(phoenix_home, "health.yml", "-i", "inventories/beta", "-e", "phoenix_metrics_server=" + server,
                       extra_env={"PHOENIX_BETA_DB_URL": url})
        assert ran.returncode == 0, ran.stdout
    primary, replica = (metrics_dir / "phoenix_beta_health.prom").read_text(), \
        (metrics_dir / "phoenix_beta_standby_health.prom").read_text()
    assert 'phoenix_health_status{stage="BETA"} 0' in primary and "server=" not in primary
    assert 'phoenix_health_status{server="standby",stage="BETA"} 0' in replica
