"""phoenix_backup, phoenix_backup_info and phoenix_restore against a real server and real pg_dump."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from datetime import datetime, timedelta, timezone

import psycopg
import pyrage
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from ansible_collections.phoenix.platform.plugins.module_utils._backups import compression, encryption, restore, store
from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._pg import binaries
from ansible_collections.phoenix.platform.plugins.modules import (
    phoenix_backup,
    phoenix_backup_info,
    phoenix_restore,
    phoenix_restore_drill,
    phoenix_world,
)
from ansible_collections.phoenix.platform.tests.helpers import descendants, module_process, run_module

from worlds_fixtures import app_fingerprints, migrate

pytestmark = pytest.mark.usefixtures("clean_env")


def call(main, database, check=False, diff=False, **options):
    return run_module(main, dict({"db_url": database.url, "stage": "BETA"}, **options), check=check, diff=diff)


def info(dest, **options):
    return run_module(phoenix_backup_info.main, dict({"dest": str(dest), "stage": "BETA"}, **options))


@pytest.mark.parametrize("fmt", ["custom", "directory", "plain"])
def test_backup_change_restore_brings_the_rows_back(data, tmp_path, fmt):
    before = app_fingerprints(data)
    made = call(phoenix_backup.main, data, dest=str(tmp_path), format=fmt, verify=True)
    assert made["changed"] is True, made
    path = tmp_path / "BETA" / made["backup"]["id"]
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["row_counts"]["Artifact"] == 6 and manifest["schema_version"] >= 5
    assert manifest["verified"] and manifest["format"] == fmt
    assert oct(path.stat().st_mode & 0o777) == "0o700"
    assert all(oct((path / f["name"]).stat().st_mode & 0o777) == "0o600" for f in manifest["files"])

    call(phoenix_world.main, data, id="KEEP_ME", state="absent")
    call(phoenix_world.main, data, id="ADDED_LATER", seed={"users": 1, "artifacts": 1, "chats": 0})
    planned = call(phoenix_restore.main, data, check=True, diff=True, dest=str(tmp_path))
    assert planned["row_changes"]["Artifact"] == {"now": 1, "backup": 6, "difference": 5}
    assert planned["diff"]["before"]["row_counts"]["Artifact"] == 1
    assert planned["diff"]["after"]["row_counts"]["Artifact"] == 6
    assert set(planned["diff"]["after"]["row_counts"]) == set(planned["row_changes"])
    assert app_fingerprints(data) != before

    audit_before = data.query("SELECT count(*) FROM phoenix.audit_log")[0][0]
    scans_before = audit_log_scans(data)
    restored = call(phoenix_restore.main, data, dest=str(tmp_path), backup=made["backup"]["id"])
    assert restored["changed"] is True, restored
    assert restored["safety_backup"]["kind"] == "pre-restore"
    if fmt != "plain":  # whose script creates the table again, with statistics of its own
        # counted by the safety backup (its count and pg_dump's COPY), and not by the restore once more
        assert audit_log_scans(data) == scans_before + 2
    assert restored["row_changes"] == planned["row_changes"]
    assert app_fingerprints(data) == before
    # the audit log survives a restore (safety backup and restore recorded), whatever the format
    assert data.query("SELECT count(*) FROM phoenix.audit_log")[0][0] == audit_before + 2
    assert data.query("SELECT stage FROM phoenix.environment") == [("BETA",)]


def audit_log_scans(database) -> int:
    """Scans of phoenix.audit_log (which an in-place restore keeps) so far, as the server's statistics have them."""
    return database.statistics("SELECT seq_scan + coalesce(idx_scan, 0) FROM pg_stat_user_tables "
                               "WHERE relid = 'phoenix.audit_log'::regclass")[0][0]


def test_fresh_within_hours_makes_backups_declarative(data, tmp_path):
    first = call(phoenix_backup.main, data, dest=str(tmp_path), kind="scheduled", fresh_within_hours=1)
    second = call(phoenix_backup.main, data, dest=str(tmp_path), kind="scheduled", fresh_within_hours=1)
    assert first["changed"] is True and second["changed"] is False
    assert second["backup"]["id"] == first["backup"]["id"]
    other_kind = call(phoenix_backup.main, data, dest=str(tmp_path), kind="manual", fresh_within_hours=1)
    assert other_kind["changed"] is True
    listed = info(tmp_path)
    assert [b["kind"] for b in listed["backups"]] == ["scheduled", "manual"]
    assert listed["latest"]["id"] == other_kind["backup"]["id"]


def test_check_mode_creates_nothing(data, tmp_path):
    planned = call(phoenix_backup.main, data, check=True, dest=str(tmp_path))
    assert planned["changed"] is True and planned["backup"]["id"].startswith("backup-BETA-")
    assert not (tmp_path / "BETA").exists()


def backdate(backup_dir, days: float) -> None:
    manifest_path = backup_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["created_at"] = (datetime.now(timezone.utc) - timedelta(days=days)).isoformat()
    manifest_path.write_text(json.dumps(manifest))


def test_retention_keeps_recent_and_keep_min(data, tmp_path):
    ages = [40, 35, 20, 10, 1]
    for age in ages:
        made = call(phoenix_backup.main, data, dest=str(tmp_path), kind="scheduled", retention_days=1000)
        backdate(tmp_path / "BETA" / made["backup"]["id"], age)
    planned = call(phoenix_backup.main, data, check=True, dest=str(tmp_path), kind="scheduled",
                   retention_days=15, keep_min=2)
    assert len(planned["pruned"]) == 3
    assert len(info(tmp_path)["backups"]) == 5  # check mode pruned nothing
    done = call(phoenix_backup.main, data, dest=str(tmp_path), kind="scheduled", retention_days=15, keep_min=2)
    assert done["pruned"] == planned["pruned"]
    remaining = info(tmp_path)["backups"]
    assert [round(b["age_hours"] / 24) for b in remaining] == [10, 1, 0]
    kept_min = call(phoenix_backup.main, data, dest=str(tmp_path), kind="scheduled", retention_days=0, keep_min=2)
    assert len(kept_min["pruned"]) == 2 and len(info(tmp_path)["backups"]) == 2


def test_flipped_byte_fails_verify_and_restore_refuses(data, tmp_path):
    made = call(phoenix_backup.main, data, dest=str(tmp_path))
    dump = tmp_path / "BETA" / made["backup"]["id"] / "database.dump"
    raw = bytearray(dump.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    dump.write_bytes(bytes(raw))
    assert info(tmp_path, verify=True)["backups"][0]["checksums_ok"] is False
    before = app_fingerprints(data)
    refused = call(phoenix_restore.main, data, dest=str(tmp_path))
    assert refused["failed"] is True and "checksum mismatch" in refused["msg"]
    assert app_fingerprints(data) == before


@pytest.mark.parametrize("fmt, compress", [("custom", None), ("custom", "zstd"), ("plain", None)])
def test_failing_restore_leaves_the_database_unchanged(data, tmp_path, fmt, compress):
    # zstd archives are written by pg_dump 17 and reach this PostgreSQL 15 server as a script through psql
    call(phoenix_backup.main, data, dest=str(tmp_path), format=fmt, compress=compress)
    call(phoenix_world.main, data, id="AFTER_BACKUP", seed={"users": 2, "artifacts": 2, "chats": 1})
    with data.connect() as conn:  # a view the backup does not know blocks dropping "User"
        conn.execute(sql.SQL('CREATE VIEW user_emails AS SELECT email FROM "User"'))
    before = app_fingerprints(data)
    failed = call(phoenix_restore.main, data, dest=str(tmp_path), safety_backup=False)
    assert failed["failed"] is True and "left as it was" in failed["msg"]
    assert app_fingerprints(data) == before


def test_cross_stage_and_prod_guards(data, tmp_path, database):
    made = call(phoenix_backup.main, data, dest=str(tmp_path))
    path = str(tmp_path / "BETA" / made["backup"]["id"])
    refused = run_module(phoenix_restore.main, {"db_url": data.url, "stage": "BETA", "backup": path,
                                                "safety_backup": False})
    assert "failed" not in refused  # same stage by path is fine
    # Pretend the backup came from PROD.
    manifest_path = tmp_path / "BETA" / made["backup"]["id"] / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["stage"] = "PROD"
    manifest_path.write_text(json.dumps(manifest))
    cross = call(phoenix_restore.main, data, backup=path, safety_backup=False)
    assert cross["failed"] is True and "allow_cross_stage" in cross["msg"]
    allowed = call(phoenix_restore.main, data, backup=path, safety_backup=False, allow_cross_stage=True)
    assert allowed["changed"] is True
    assert data.query("SELECT stage FROM phoenix.environment") == [("BETA",)]


def test_restore_in_prod_needs_allow_prod(database, tmp_path):
    migrate(database, stage="PROD")
    args = {"db_url": database.url, "stage": "PROD", "dest": str(tmp_path)}
    run_module(phoenix_backup.main, args)
    refused = run_module(phoenix_restore.main, dict(args, safety_backup=False))
    assert refused["failed"] is True and "allow_prod=true" in refused["msg"]


def pg_dump_processes(module: int) -> list[int]:
    """Dumps the process ``module`` runs (not the short ``pg_dump --version`` probes that pick the binary)."""
    pids = []
    for pid in descendants(module):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as handle:
                argv = handle.read().split(b"\0")
            if b"pg_dump" in argv[0] and b"--snapshot" in argv:
                pids.append(pid)
        except OSError:
            pass
    return pids


def test_password_never_on_the_command_line_or_in_output(data, tmp_path):
    secret = "S3cret-Dump"
    with data.connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE backup_user LOGIN SUPERUSER PASSWORD {}").format(sql.Literal(secret)))
    args = {"login_host": "127.0.0.1", "login_port": data.cluster.port, "login_user": "backup_user",
            "login_password": secret, "login_db": data.name, "stage": "BETA", "dest": str(tmp_path)}
    with data.connect() as blocker:  # pg_dump waits for this lock, so it can be inspected while it runs
        blocker.autocommit = False
        blocker.execute(sql.SQL('LOCK TABLE "Artifact" IN ACCESS EXCLUSIVE MODE'))
        process = module_process("phoenix_backup", args, stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while not pg_dump_processes(process.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        pids = pg_dump_processes(process.pid)
        assert pids, "pg_dump never started"
        for pid in pids:
            with open("/proc/%s/cmdline" % pid, "rb") as handle:
                assert secret.encode() not in handle.read()
            with open("/proc/%s/environ" % pid, "rb") as handle:
                assert b"PGPASSWORD=" + secret.encode() in handle.read().split(b"\0")
        blocker.rollback()
    output = process.communicate()[0]
    assert process.returncode == 0, output
    assert secret not in output
    made = json.loads(output)
    assert secret not in (tmp_path / "BETA" / made["backup"]["id"] / "manifest.json").read_text()


@pytest.mark.parametrize("found_in", ["variables", "service file"])
def test_programs_reach_the_database_the_connection_found_in_the_environment(data, tmp_path, monkeypatch, found_in):
    """No db_url: libpq finds the database in PGHOST, PGPORT, PGUSER and PGDATABASE, as a job's credential may set
    them, or in a service file. pg_dump and pg_restore, which are given no PG* variable of the caller's, reach the
    same database."""
    where = {"host": str(data.cluster.socket_dir), "port": str(data.cluster.port), "user": "postgres",
             "dbname": data.name}
    if found_in == "variables":
        for keyword, value in where.items():
            monkeypatch.setenv(binaries.LIBPQ_ENV[keyword], value)
    else:
        services = tmp_path / "services.conf"
        services.write_text("[shop_beta]\n" + "".join("%s=%s\n" % option for option in where.items()))
        monkeypatch.setenv("PGSERVICEFILE", str(services))
        monkeypatch.setenv("PGSERVICE", "shop_beta")
    before = app_fingerprints(data)
    made = run_module(phoenix_backup.main, {"stage": "BETA", "dest": str(tmp_path)})
    assert made["changed"] is True, made.get("msg")
    manifest = json.loads((tmp_path / "BETA" / made["backup"]["id"] / "manifest.json").read_text())
    assert manifest["row_counts"]["User"] == data.query('SELECT count(*) FROM "User"')[0][0] > 0
    kept = []
    try:
        for mode in ("in_place", "swap"):
            call(phoenix_world.main, data, id="KEEP_ME", state="absent")
            assert app_fingerprints(data) != before
            restored = run_module(phoenix_restore.main, {"stage": "BETA", "dest": str(tmp_path), "mode": mode,
                                                         "safety_backup": False})
            assert restored["changed"] is True, restored.get("msg")
            kept += [restored["kept_database"]] if mode == "swap" else []
            assert app_fingerprints(data) == before
        drilled = run_module(phoenix_restore_drill.main, {"stage": "BETA", "dest": str(tmp_path)})
        assert drilled["passed"] is True, drilled.get("msg")
    finally:
        with data.connect() as conn:
            for name in kept:
                conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_killed_backup_leaves_no_listed_backup(data, tmp_path):
    with data.connect() as conn:  # enough data that the dump takes a moment
        conn.execute(sql.SQL("CREATE TABLE filler AS SELECT g AS id, md5(g::text) AS t FROM generate_series(1, 300000) g"))
    args = {"db_url": data.url, "stage": "BETA", "dest": str(tmp_path), "compress": 9}
    process = module_process("phoenix_backup", args, stdout=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not list((tmp_path / "BETA").glob(".*.partial")):
        time.sleep(0.01)
    assert list((tmp_path / "BETA").glob(".*.partial")), "the backup never started"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert info(tmp_path)["backups"] == []
    made = call(phoenix_backup.main, data, dest=str(tmp_path))  # the next run cleans up and succeeds
    assert [b["id"] for b in info(tmp_path)["backups"]] == [made["backup"]["id"]]
    assert not list((tmp_path / "BETA").glob(".*.partial"))


OFFERED = [(fmt, compress) for fmt in ("custom", "directory") for compress in ("gzip:1", 6, "zstd:3", "lz4", "none")]
OFFERED += [("plain", "none")]


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain_files", "age"])
@pytest.mark.parametrize("fmt, compress", OFFERED)
def test_every_format_compression_and_encryption_round_trips_exactly(data, tmp_path, fmt, compress, encrypted):
    identity = pyrage.x25519.Identity.generate()
    keys = {"encrypt_to": [str(identity.to_public())]} if encrypted else {}
    before = app_fingerprints(data)
    made = call(phoenix_backup.main, data, dest=str(tmp_path), format=fmt, compress=compress, verify=True, **keys)
    assert made["changed"] is True, made.get("msg")
    manifest = json.loads((tmp_path / "BETA" / made["backup"]["id"] / "manifest.json").read_text())
    assert manifest["compression"] == {6: "gzip:6", "none": "none"}.get(compress, compress)
    assert manifest["pg_dump_major"] >= (16 if str(compress)[:4] in ("zstd", "lz4") else 15)
    assert bool(manifest["encryption"]) is encrypted
    call(phoenix_world.main, data, id="KEEP_ME", state="absent")
    assert app_fingerprints(data) != before
    # directory backups come back in parallel through a swap, the others in one transaction
    mode = "swap" if fmt == "directory" else "in_place"
    restored = call(phoenix_restore.main, data, dest=str(tmp_path), safety_backup=False, mode=mode,
                    backup_identity=str(identity) if encrypted else None)
    assert restored.get("changed") is True, restored
    assert app_fingerprints(data) == before
    if mode == "swap":
        with data.connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(restored["kept_database"])))


def test_a_newer_archive_cut_short_restores_nothing_and_rows_like_its_preamble_survive(data, tmp_path):
    with data.connect() as conn:  # rows that read like what the script bridge leaves out, then enough to cut
        conn.execute(sql.SQL("CREATE TABLE notes (body text)"))
        conn.execute(sql.SQL("INSERT INTO notes VALUES ('SET transaction_timeout = 0;'), ('BEGIN;')"))
        conn.execute(sql.SQL("INSERT INTO notes SELECT md5(g::text) FROM generate_series(1, 20000) g"))
    made = call(phoenix_backup.main, data, dest=str(tmp_path), compress="zstd")
    backup = store.find_backup(tmp_path, "BETA", made["backup"]["id"])
    dump = backup.path / "database.dump"
    whole = dump.read_bytes()
    with data.connect() as conn:
        conn.execute(sql.SQL("CREATE DATABASE phoenix_cut_short"))
    target = make_conninfo(data.url, dbname="phoenix_cut_short")
    try:
        dump.write_bytes(whole[: len(whole) * 3 // 4])  # pg_restore fails part-way through the script it writes
        with pytest.raises(PhoenixError, match="pg_restore failed"):
            restore.restore_dump(15, target, backup, encryption.DumpFiles(backup), keep_history=False)
        with psycopg.connect(target) as conn:
            assert conn.execute(sql.SQL("SELECT to_regclass('public.notes')")).fetchone()[0] is None
        dump.write_bytes(whole)
        restore.restore_dump(15, target, backup, encryption.DumpFiles(backup), keep_history=False)
        with psycopg.connect(target) as conn:
            counts = conn.execute(sql.SQL("SELECT count(*) FILTER (WHERE body = 'SET transaction_timeout = 0;'), "
                                          "count(*) FILTER (WHERE body = 'BEGIN;'), count(*) FROM notes")).fetchone()
        assert counts == (1, 1, 20002)
    finally:
        with data.connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE phoenix_cut_short WITH (FORCE)"))


def test_zstd_dumps_are_smaller_than_lz4_and_uncompressed_ones(data, tmp_path):
    with data.connect() as conn:  # repetitive text, which every method compresses
        conn.execute(sql.SQL("CREATE TABLE filler AS SELECT g AS id, repeat(md5((g % 100)::text), 8) AS t "
                             "FROM generate_series(1, 50000) g"))
    sizes = {compress: call(phoenix_backup.main, data, dest=str(tmp_path / compress.replace(":", "")),
                            compress=compress)["backup"]["size"] for compress in ("none", "lz4", "zstd:9")}
    assert sizes["zstd:9"] < sizes["lz4"] < sizes["none"], sizes


def test_no_compression_writes_a_larger_dump_than_gzip(data, tmp_path):
    sizes = {}
    for compress in ("none", "gzip:9"):
        made = call(phoenix_backup.main, data, dest=str(tmp_path / compress.replace(":", "")), compress=compress)
        sizes[compress] = made["backup"]["size"]
    assert sizes["none"] > sizes["gzip:9"], sizes


def test_directory_format_takes_parallel_jobs_by_default(data, tmp_path):
    made = call(phoenix_backup.main, data, dest=str(tmp_path), format="directory")
    assert made["changed"] is True, made.get("msg")
    assert made["backup"]["format"] == "directory"


def test_zstd_is_written_by_the_newest_pg_dump_built_with_it_and_refused_naming_the_ones_without():
    found = binaries.tool_versions("pg_dump")
    zstd = compression.parse("zstd:3")
    chosen, major = compression.capable_pg_dump(zstd, found, 15)
    assert major == max(m for p, m in found.items() if p.parent != binaries.pgserver_bin_dir()) >= 16
    # a machine with only the system's pg_dump 15 and pgserver's 16, which is built without zstd
    without = {path: m for path, m in found.items() if path.parent in (binaries.pgserver_bin_dir(), *old_dirs(found))}
    with pytest.raises(PhoenixError, match=r"compress zstd is not available: \S+pgserver\S+pg_dump \(PostgreSQL 16\) "
                                           r"was built without it \(.*\); use gzip, or install a PostgreSQL 16\+"):
        compression.capable_pg_dump(zstd, without, 15)
    only_old = {path: m for path, m in found.items() if m < 16}
    with pytest.raises(PhoenixError, match=r"compress lz4 needs pg_dump 16 or newer; found \S+ \(15\)"):
        compression.capable_pg_dump(compression.parse("lz4"), only_old, 15)
    assert chosen not in without


def old_dirs(found) -> list:
    return [path.parent for path, major in found.items() if major < 16]


def test_a_compression_nothing_can_write_is_refused_before_anything_is_written(data, tmp_path):
    for check, compress in ((True, "zstd"), (False, "gzip:6")):  # plain dumps stay readable SQL
        refused = call(phoenix_backup.main, data, check=check, dest=str(tmp_path), compress=compress, format="plain")
        assert refused["failed"] is True
        assert "format=plain is kept as readable SQL, uncompressed: compress %s needs format custom" % compress \
            in refused["msg"]
    assert not (tmp_path / "BETA").exists() or not list((tmp_path / "BETA").iterdir())


@pytest.mark.parametrize("options, expected", [
    ({"jobs": 4}, "jobs > 1 needs format=directory"),
    ({"compress": 12}, "compress must be from 0 to 9, got 12"),
    ({"compress": "zstd:99"}, "compress zstd takes a level from 1 to 22, got 99"),
    ({"compress": "brotli"}, "compress must be gzip, zstd, lz4 or none"),
    ({"retention_days": -1}, "retention_days must be from 0 to 36500, got -1"),
    ({"state": "absent"}, "id"),
])
def test_bad_input(data, tmp_path, options, expected):
    result = call(phoenix_backup.main, data, dest=str(tmp_path), **options)
    assert result["failed"] is True and expected in result["msg"]
    assert not list(tmp_path.glob("BETA/backup-*"))


def test_absent_removes_one_backup(data, tmp_path):
    made = call(phoenix_backup.main, data, dest=str(tmp_path))
    assert call(phoenix_backup.main, data, dest=str(tmp_path), state="absent", id=made["backup"]["id"])["changed"]
    assert info(tmp_path)["backups"] == []
    assert not call(phoenix_backup.main, data, dest=str(tmp_path), state="absent", id=made["backup"]["id"])["changed"]
    assert store.KINDS


@pytest.mark.parametrize("options, expected", [
    ({"backup": "backup-BETA-19990101T000000000000Z"}, "not found under"),
    ({"backup": "/nonexistent/backup"}, "is not a backup directory"),
    ({"backup": "latest"}, "no backup of BETA"),
])
def test_restore_bad_input(data, tmp_path, options, expected):
    result = call(phoenix_restore.main, data, dest=str(tmp_path), **options)
    assert result["failed"] is True and expected in result["msg"]
