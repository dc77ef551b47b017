"""phoenix_health against a real PostgreSQL database."""

from __future__ import annotations

import json
import os
import re
import time

import pytest
from psycopg import sql

from ansible_collections.phoenix.platform.plugins.module_utils._schema import migrations
from ansible_collections.phoenix.platform.plugins.modules import (
    phoenix_audit,
    phoenix_health,
    phoenix_history_info,
    phoenix_metrics,
    phoenix_schema,
)
from ansible_collections.phoenix.platform.tests.helpers import UNREACHABLE, run_module

from conftest import Database, held_by, logical_slot, server_settings

pytestmark = pytest.mark.usefixtures("clean_env")


def health(database, check=False, **options):
    return run_module(phoenix_health.main, dict({"db_url": database.url, "stage": "BETA"}, **options),
                      check=check)


@pytest.fixture
def migrated(database):
    run_module(phoenix_schema.main, {"db_url": database.url, "stage": "BETA"})
    return database


def add_world(database, world_id: str, hours_old: float = 0, template: bool = False, category: str = "demo"):
    with database.connect() as conn:
        conn.execute(sql.SQL(
            'INSERT INTO "WorldMeta" (id, name, environment, category, "isTemplate", "createdAt") '
            "VALUES (%s, %s, 'BETA', %s, %s, now() - make_interval(secs => %s))"),
            [world_id, world_id.title(), category, template, hours_old * 3600])


def test_healthy_database_report_shape(migrated):
    result = health(migrated)
    assert result["changed"] is False
    assert result["status"] == "healthy"
    assert result["environment"] == "BETA"
    checks = result["checks"]
    assert set(checks) == {"database", "schema", "stage", "worlds", "connections", "replication", "backups"}
    assert checks["database"]["status"] == "healthy"
    assert checks["database"]["responseTime"] > 0
    assert checks["schema"]["pending"] == 0
    assert checks["stage"] == {"status": "healthy", "declared": "BETA", "registered": "BETA"}
    assert checks["backups"]["status"] == "unknown"
    assert checks["replication"] == {"status": "healthy", "slots": 0, "inactive": 0, "retainedBytes": 0}
    assert "metrics" not in result


@pytest.mark.parametrize("prepared_as", [None, "drizzle:migrate 3"])
def test_a_table_a_migration_holds_makes_its_check_unhealthy_naming_it_instead_of_hanging(migrated, prepared_as):
    lock = sql.SQL('LOCK TABLE "WorldMeta" IN ACCESS EXCLUSIVE MODE')
    with held_by(migrated, lock, "drizzle migrate", prepared_as):
        result = health(migrated, lock_timeout=1)
        held = migrated.query("SELECT count(*) FROM pg_locks WHERE mode = 'AccessExclusiveLock' AND granted "
                              "AND relation = (SELECT oid FROM pg_class WHERE relname = 'WorldMeta')")
    assert held == [(1,)]  # the health check ended while the migration still held the table
    assert result["failed"] is True and result["status"] == "unhealthy", result
    holder = re.escape("prepared transaction '%s'" % prepared_as) if prepared_as else \
        r"session \d+ of \w+ \(drizzle migrate\)"
    worlds = result["checks"]["worlds"]
    assert worlds["status"] == "unhealthy"
    assert re.fullmatch(r"a table it reads was held for longer than lock_timeout=1 s so that no one may read it: "
                        r'public\."WorldMeta" by ' + holder, worlds["message"]), worlds
    assert "worlds: a table it reads was held" in result["msg"]
    assert result["checks"]["database"]["status"] == result["checks"]["stage"]["status"] == "healthy"
    assert health(migrated)["status"] == "healthy"  # once the migration is over


@pytest.mark.parametrize("options, message", [
    ({"lock_timeout": -1}, "lock_timeout must be from 0 to 86400, got -1"),
    ({"lock_timout": 5}, "Unsupported parameters for (basic.py) module: lock_timout"),
])
def test_a_bad_or_misspelt_lock_timeout_is_refused_before_connecting(migrated, options, message):
    refused = health(migrated, **options)
    assert refused["failed"] is True and message in refused["msg"], refused
    assert "checks" not in refused


def test_world_counts_and_limit(migrated):
    add_world(migrated, "FRESH")
    add_world(migrated, "OLD_ONE", hours_old=48)
    add_world(migrated, "TEMPLATE_A", hours_old=48, template=True)
    result = health(migrated, max_worlds=2)
    worlds = result["checks"]["worlds"]
    assert (worlds["total"], worlds["active"], worlds["templates"], worlds["expired"]) == (3, 3, 1, 1)
    assert worlds["status"] == "degraded"
    assert result["status"] == "degraded"
    assert health(migrated, max_worlds=10)["checks"]["worlds"]["status"] == "healthy"


def test_max_worlds_falls_back_to_the_environment(migrated, monkeypatch):
    add_world(migrated, "ONE")
    add_world(migrated, "TWO")
    monkeypatch.setenv("PHOENIX_WORLD_MAX_PER_ENV", "1")
    assert health(migrated)["checks"]["worlds"]["max"] == 1


def test_detail_adds_metrics_with_exact_row_counts(migrated):
    add_world(migrated, "ALPHA", category="onboarding")
    add_world(migrated, "BETA_WORLD", category="onboarding")
    result = health(migrated, detail=True)
    metrics = result["metrics"]
    assert metrics["worlds"]["byCategory"] == {"onboarding": 2}
    assert metrics["worlds"]["byEnvironment"] == {"BETA": 2}
    assert metrics["tables"]["WorldMeta"]["rows"] == 2
    assert metrics["tables"]["phoenix.migrations"]["rows"] == len(migrations.MIGRATIONS)
    assert metrics["tables"]["Artifact"]["sizeBytes"] > 0
    assert metrics["database"]["sizeBytes"] > 0


def test_uninitialised_database_is_unhealthy(database):
    result = health(database, fail_on="never")
    assert result["status"] == "unhealthy"
    assert "phoenix_schema" in result["checks"]["schema"]["message"]
    assert result["checks"]["worlds"]["status"] == "unknown"


def test_pending_migrations_are_degraded(database):
    run_module(phoenix_schema.main, {"db_url": database.url, "stage": "BETA", "target_version": 2})
    result = health(database, fail_on="never")
    assert result["checks"]["schema"]["pending"] == migrations.LATEST_VERSION - 2
    assert result["status"] == "degraded"


def test_stage_mismatch_is_unhealthy_and_fails_by_default(migrated):
    result = health(migrated, stage="PROD")
    assert result["failed"] is True
    assert result["checks"]["stage"]["status"] == "unhealthy"
    assert "registered as BETA, not PROD" in result["msg"]


def test_fail_on_degraded(migrated):
    add_world(migrated, "A")
    add_world(migrated, "B")
    assert health(migrated, max_worlds=1, fail_on="degraded")["failed"] is True
    assert "failed" not in health(migrated, max_worlds=1)


def write_backup(root, stage: str, name: str, hours_old: float) -> None:
    """A backup directory as phoenix_backup writes it (health finds backups as phoenix_backup_info does)."""
    path = os.path.join(root, stage, name)
    os.makedirs(path)
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - hours_old * 3600))
    with open(os.path.join(path, "manifest.json"), "w") as handle:
        json.dump({"created_at": created, "stage": stage, "kind": "scheduled", "format": "custom", "files": [],
                   "row_counts": {}}, handle)


def test_backup_age(migrated, tmp_path):
    os.makedirs(tmp_path / "BETA" / "incomplete")  # no manifest: not a backup
    assert health(migrated, backup_dir=str(tmp_path))["checks"]["backups"]["status"] == "unknown"
    write_backup(tmp_path, "BETA", "old", hours_old=50)
    write_backup(tmp_path, "PROD", "other-stage", hours_old=1)
    stale = health(migrated, backup_dir=str(tmp_path), backup_max_age_hours=24)["checks"]["backups"]
    assert stale["status"] == "degraded"
    assert 49.9 < stale["latestAgeHours"] < 50.1
    write_backup(tmp_path, "BETA", "new", hours_old=2)
    fresh = health(migrated, backup_dir=str(tmp_path), backup_max_age_hours=24)["checks"]["backups"]
    assert fresh["status"] == "healthy"


def test_young_idle_in_transaction_sessions_do_not_count(migrated):
    with migrated.connect() as idle:
        idle.autocommit = False
        idle.execute(sql.SQL("SELECT 1"))
        pid = idle.info.backend_pid
        states = migrated.query("SELECT state FROM pg_stat_activity WHERE pid = %s", (pid,))
        assert states == [("idle in transaction",)]
        connections = health(migrated)["checks"]["connections"]
        idle.rollback()
    assert connections["idleInTransaction"] == 0
    assert connections["status"] == "healthy"
    assert connections["active"] >= 2


def test_unreachable_database_is_a_result(database):
    result = run_module(phoenix_health.main, dict(UNREACHABLE, fail_on="never"))
    assert "failed" not in result
    assert result["status"] == "unhealthy"
    assert "Connection refused" in result["checks"]["database"]["message"]


def test_unreachable_database_fails_the_task_by_default(database):
    result = run_module(phoenix_health.main, UNREACHABLE)
    assert result["failed"] is True
    assert result["msg"].startswith("BETA is unhealthy")


def test_wrong_password_is_unhealthy_and_never_shown(migrated):
    secret = "N0t-The-Password"
    result = run_module(phoenix_health.main, dict(migrated.tcp_args(password=secret), stage="BETA"))
    assert result["failed"] is True
    assert "password authentication failed" in result["checks"]["database"]["message"]
    assert secret not in result["_raw"]


def test_record_writes_history_but_not_in_check_mode(migrated):
    assert health(migrated, record=True, check=True)["changed"] is False
    assert migrated.query("SELECT count(*) FROM phoenix.health_history") == [(0,)]
    assert health(migrated, record=True)["changed"] is True
    assert migrated.query("SELECT status, stage FROM phoenix.health_history") == [("healthy", "BETA")]


def test_recording_prunes_history_older_than_the_retention(migrated):
    with migrated.connect() as conn:
        conn.execute(sql.SQL("INSERT INTO phoenix.health_history (checked_at, stage, status, checks) VALUES "
                             "(now() - interval '15 days', 'BETA', 'healthy', '{}'), "
                             "(now() - interval '13 days', 'BETA', 'degraded', '{}')"))
    assert "history_pruned" not in health(migrated, record=True, check=True, history_retention_days=14)
    assert migrated.query("SELECT count(*) FROM phoenix.health_history") == [(2,)]
    recorded = health(migrated, record=True, history_retention_days=14)
    assert recorded["changed"] and recorded["history_pruned"] == 1
    assert migrated.query("SELECT status FROM phoenix.health_history ORDER BY checked_at") == [
        ("degraded",), ("healthy",)]
    refused = health(migrated, record=True, history_retention_days=0)
    assert refused["failed"] and refused["msg"] == "history_retention_days must be from 1 to 36500, got 0"


def test_check_mode_is_read_only(migrated):
    before = migrated.query("SELECT count(*) FROM phoenix.audit_log")
    result = health(migrated, check=True, detail=True)
    assert result["status"] == "healthy"
    assert migrated.query("SELECT count(*) FROM phoenix.audit_log") == before


@pytest.mark.parametrize("options, expected", [
    ({"fail_on": "sometimes"}, "fail_on"),
    ({"max_worlds": "many"}, "max_worlds"),
])
def test_bad_input(migrated, options, expected):
    result = health(migrated, **options)
    assert result["failed"] is True
    assert expected in result["msg"]


def history(database, check=False, **options):
    return run_module(phoenix_history_info.main, dict({"db_url": database.url, "stage": "BETA"}, **options),
                      check=check)


def test_history_is_thinned_to_max_points_keeping_the_newest_and_only_read(migrated, tmp_path):
    with migrated.connect() as conn:
        conn.execute(sql.SQL(
            "INSERT INTO phoenix.health_history (checked_at, stage, status, response_ms, checks) "
            "SELECT now() - make_interval(mins => n), 'BETA', 'healthy', n, "
            """jsonb_build_object('worlds', jsonb_build_object('total', n % 7, 'active', 1)) """
            "FROM generate_series(0, 999) AS n"))
        conn.execute(sql.SQL("INSERT INTO phoenix.health_history (checked_at, stage, status, checks) "
                             "VALUES (now() - interval '40 days', 'BETA', 'degraded', '{}')"))
    before = migrated.query("SELECT count(*) FROM phoenix.health_history")
    result = history(migrated, check=True, max_points=100)
    assert result["changed"] is False and migrated.query("SELECT count(*) FROM phoenix.health_history") == before
    points = result["history"]
    assert 90 <= len(points) <= 101, len(points)  # every 10th, and the newest
    assert [p["epoch"] for p in points] == sorted(p["epoch"] for p in points)
    assert points[-1]["response_ms"] == 0 and points[0]["response_ms"] == 999  # newest kept, 40 days old left out
    assert {"at", "epoch", "status", "response_ms", "worlds_total", "worlds_active"} == set(points[0])
    assert result["last_deploy"] is None and result["last_drill"] is None
    everything = history(migrated, max_points=5000)["history"]
    assert len(everything) == 1000 and {p["worlds_total"] for p in everything} == set(range(7))


def test_history_reads_the_last_deploy_and_the_drill_metrics(migrated, tmp_path):
    run_module(phoenix_audit.main, {"db_url": migrated.url, "stage": "BETA", "operation": "deploy.succeeded",
                                    "details": {"version": "1.2.3"}})
    run_module(phoenix_audit.main, {"db_url": migrated.url, "stage": "BETA", "operation": "user.note"})
    run_module(phoenix_metrics.main, {"dir": str(tmp_path), "stage": "BETA", "job": "restore_drill", "succeeded": True,
                                      "values": {"restore_drill_duration_seconds": 4.5}})
    run_module(phoenix_metrics.main, {"dir": str(tmp_path), "stage": "BETA", "job": "restore_drill", "succeeded": False})
    result = history(migrated, metrics_dir=str(tmp_path))
    assert result["last_deploy"]["operation"] == "deploy.succeeded"
    assert result["last_deploy"]["details"] == {"version": "1.2.3"}
    drill = result["last_drill"]
    assert drill["succeeded"] is False and drill["last_success_at"] is not None and drill["at"] >= drill["last_success_at"]
    assert drill["duration_seconds"] is None  # the failed run did not report one


@pytest.mark.parametrize("options, message", [
    ({"max_points": 0}, "max_points must be at least 1, got 0"),
    ({"history_days": -3}, "history_days must be at least 1, got -3"),
    ({"history_dayz": 3}, "history_dayz"),
])
def test_history_typos_are_one_clear_message(migrated, options, message):
    result = history(migrated, **options)
    assert result["failed"] and message in result["msg"] and "Traceback" not in result["_raw"]


SLOT = "orders_cdc"  # a change data capture pipeline's (Debezium, say), whose consumer is gone


def write_wal_until(database, state: str) -> None:
    """Write WAL (a row, a switch to the next segment, a checkpoint) until the slot reaches ``state``."""
    with database.connect() as conn:
        conn.autocommit = True
        conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS wal_filler (n int)"))
        for segment in range(12):
            conn.execute(sql.SQL("INSERT INTO wal_filler VALUES (%s)"), [segment])
            conn.execute(sql.SQL("SELECT pg_switch_wal()"))
            conn.execute(sql.SQL("CHECKPOINT"))
            found = conn.execute(sql.SQL("SELECT wal_status FROM pg_replication_slots WHERE slot_name = %s"),
                                 [SLOT]).fetchone()[0]
            if found == state:
                return
    raise AssertionError("slot %s is %s, not %s" % (SLOT, found, state))


def test_a_slot_whose_consumer_is_gone_degrades_the_environment_once_it_holds_more_than_max_wal_size(
        migrated, pg_cluster):
    with server_settings(pg_cluster, max_wal_size="32MB", min_wal_size="32MB"), logical_slot(migrated, SLOT):
        fresh = health(migrated)["checks"]["replication"]
        assert fresh == {"status": "healthy", "slots": 1, "inactive": 1, "retainedBytes": fresh["retainedBytes"]}
        write_wal_until(migrated, "extended")
        result = health(migrated)
        check = result["checks"]["replication"]
        assert result["status"] == "degraded" and "failed" not in result, result
        assert check["status"] == "degraded" and check["slots"] == check["inactive"] == 1
        assert check["retainedBytes"] > 32 * 1024 * 1024
        assert re.fullmatch(r"logical slot orders_cdc \(not in use\) holds \d+ MB of WAL, more than max_wal_size; the server "
                            r"keeps WAL until a slot's consumer reads it: start the consumer, or drop a slot nothing "
                            r"reads \(pg_drop_replication_slot\) before the disk fills", check["message"]), check
        refused = health(migrated, fail_on="degraded")
        assert refused["failed"] is True and "replication: logical slot orders_cdc (not in use) holds" in refused["msg"]


def test_a_slot_that_lost_wal_its_consumer_needs_makes_the_environment_unhealthy(migrated, pg_cluster):
    with server_settings(pg_cluster, max_wal_size="32MB", min_wal_size="32MB", max_slot_wal_keep_size="16MB"), \
            logical_slot(migrated, SLOT):
        write_wal_until(migrated, "lost")
        result = health(migrated)
    assert result["failed"] is True and result["status"] == "unhealthy", result
    assert result["checks"]["replication"] == {
        "status": "unhealthy", "slots": 1, "inactive": 1, "retainedBytes": 0,
        "message": "logical slot orders_cdc lost WAL its consumer had not read, so the consumer cannot go on; drop such a "
                   "slot (pg_drop_replication_slot) and set its consumer up again"}


def test_another_databases_logical_slot_is_not_the_environments(migrated, pg_cluster):
    with logical_slot(Database(pg_cluster, "postgres"), SLOT):  # another application's, on the same server
        assert health(migrated)["checks"]["replication"]["slots"] == 0
        with logical_slot(migrated, "shop_cdc"):
            assert health(migrated)["checks"]["replication"]["slots"] == 1


def test_a_gone_standbys_physical_slot_degrades_every_environment_of_the_server(migrated, pg_cluster):
    with server_settings(pg_cluster, max_wal_size="32MB", min_wal_size="32MB"), migrated.connect() as conn:
        conn.execute(sql.SQL("SELECT pg_create_physical_replication_slot(%s, true)"), [SLOT])  # reserves WAL now
        try:
            write_wal_until(migrated, "extended")
            check = health(migrated)["checks"]["replication"]
        finally:
            conn.execute(sql.SQL("SELECT pg_drop_replication_slot(%s)"), [SLOT])
    assert check["status"] == "degraded" and check["slots"] == check["inactive"] == 1, check
    assert check["message"].startswith("physical slot orders_cdc (not in use) holds "), check
