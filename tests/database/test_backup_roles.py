"""The roles that back up, restore and drill: every table, sequence and row a backup holds read, or a refusal
naming what the role may not read before anything is written; row-level security, which would make counts short."""

from __future__ import annotations

import json
import time
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from ansible_collections.phoenix.platform.plugins.module_utils._backups.dump import parallel_jobs
from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._pg.lock_watch import LockWatch
from ansible_collections.phoenix.platform.plugins.modules import phoenix_backup, phoenix_restore, phoenix_restore_drill
from ansible_collections.phoenix.platform.tests.helpers import run_module
from conftest import refusal_purpose, table_held

pytestmark = pytest.mark.usefixtures("clean_env")

TENANT_DOCUMENTS = [
    sql.SQL("CREATE TABLE public.tenant_doc (id int PRIMARY KEY, tenant text NOT NULL, body text)"),
    sql.SQL("INSERT INTO public.tenant_doc SELECT g, 't' || g % 3, 'body' FROM generate_series(1, 30) g"),
    sql.SQL("ALTER TABLE public.tenant_doc ENABLE ROW LEVEL SECURITY"),
    sql.SQL("CREATE POLICY own_tenant ON public.tenant_doc USING (tenant = current_setting('app.tenant', true))"),
]


@pytest.fixture
def backup_reader(data):
    """The role of a backup job, as teams give one: it reads everything (pg_read_all_data), and is no superuser."""
    with data.connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE backup_reader LOGIN IN ROLE pg_read_all_data"))
    yield "backup_reader"
    with data.connect() as conn:
        conn.execute(sql.SQL("DROP OWNED BY backup_reader"))  # its grants in the test's database
        conn.execute(sql.SQL("DROP ROLE backup_reader"))


def backed_up_files(root: Path) -> list[str]:
    return [path.name for path in root.rglob("*") if path.is_file() and path.name != ".lock"]


def refused_until_granted(data, options: dict, check: bool, message: str, grant: sql.Composable) -> dict:
    """A backup with ``options`` is refused with ``message``, writing nothing; after ``grant`` (by a superuser), the
    same backup is made. Returns its result."""
    refused = run_module(phoenix_backup.main, options, check=check)
    assert refused["failed"] is True and "Traceback" not in refused["_raw"]
    assert refused["msg"] == message
    assert backed_up_files(Path(options["dest"])) == []
    with data.connect() as conn:
        conn.execute(grant)
    made = run_module(phoenix_backup.main, options, check=check)
    assert made.get("changed") is True and "failed" not in made, made.get("msg")
    return made


@pytest.mark.parametrize("check", [True, False], ids=["check", "run"])
def test_a_backup_by_a_role_that_row_level_security_filters_is_refused_naming_the_tables(
        data, backup_reader, tmp_path, check):
    with data.connect() as conn:
        for statement in TENANT_DOCUMENTS:
            conn.execute(statement)
    as_reader = {"db_url": make_conninfo(data.url, user=backup_reader), "stage": "BETA", "dest": str(tmp_path)}
    made = refused_until_granted(data, as_reader, check, (
        "row-level security filters what role backup_reader reads of tenant_doc, and a backup must hold every row "
        "(pg_dump refuses to read a table a policy would filter): give the role BYPASSRLS (ALTER ROLE backup_reader "
        "BYPASSRLS), or back up as a superuser; nothing was written"), sql.SQL("ALTER ROLE backup_reader BYPASSRLS"))
    if not check:
        manifest = json.loads((Path(made["backup"]["path"]) / "manifest.json").read_text())
        assert manifest["row_counts"]["tenant_doc"] == 30  # every row, not those a policy shows
        # a role that only reads: the backup stands, and a warning says the audit log does not record it
        assert [w["event"]["msg"] for w in made["warnings"]] == [
            "%s was made, but role backup_reader may not write the audit log, which does not record it: to record "
            "backups, GRANT INSERT ON phoenix.audit_log TO backup_reader and GRANT USAGE ON SEQUENCE "
            "phoenix.audit_log_id_seq TO backup_reader" % made["backup"]["id"]]
        with data.connect() as conn:
            conn.execute(sql.SQL("GRANT INSERT ON phoenix.audit_log TO backup_reader"))
            conn.execute(sql.SQL("GRANT USAGE ON SEQUENCE phoenix.audit_log_id_seq TO backup_reader"))
        recorded = run_module(phoenix_backup.main, as_reader)
        assert recorded.get("changed") is True and not recorded.get("warnings"), recorded.get("msg")
        assert data.query("SELECT details->>'backup' FROM phoenix.audit_log WHERE operation = 'backup.create'") == [
            (recorded["backup"]["id"],)]


def test_a_backup_by_a_role_whose_every_transaction_is_read_only_stands_with_a_warning(data, backup_reader, tmp_path):
    """Teams make a backup role read-only with ALTER ROLE ... SET default_transaction_read_only: pg_dump reads as
    before, and only the audit log's record is refused. Before, the run failed once the backup was made."""
    with data.connect() as conn:
        conn.execute(sql.SQL("ALTER ROLE backup_reader SET default_transaction_read_only = on"))
    as_reader = {"db_url": make_conninfo(data.url, user=backup_reader), "stage": "BETA", "dest": str(tmp_path),
                 "verify": True}
    made = run_module(phoenix_backup.main, as_reader)
    assert made.get("changed") is True and "failed" not in made, made.get("msg")
    assert made["backup"]["verified"]  # when it was verified
    assert [w["event"]["msg"] for w in made["warnings"]] == [
        "%s was made, but every transaction of role backup_reader is read-only (default_transaction_read_only is on "
        "for the role or the database), and the audit log does not record it: to record backups, run them as a role "
        "that may write phoenix.audit_log" % made["backup"]["id"]]
    assert data.query("SELECT count(*) FROM phoenix.audit_log WHERE operation = 'backup.create'") == [(0,)]


@pytest.fixture
def forced(owned_by_shop_owner):
    """shop_owner's database, whose tenant_doc forces row-level security: its policies filter its owner too (so the
    application, which connects as the owner, sees one tenant's rows at a time)."""
    with psycopg.connect(make_conninfo(owned_by_shop_owner.url, user="shop_owner"), autocommit=True) as conn:
        for statement in TENANT_DOCUMENTS:
            conn.execute(statement)
        conn.execute(sql.SQL("ALTER TABLE public.tenant_doc FORCE ROW LEVEL SECURITY"))
    return owned_by_shop_owner


def test_forced_row_level_security_filters_the_tables_owner_too(forced, tmp_path):
    data = forced
    as_owner = {"db_url": make_conninfo(data.url, user="shop_owner"), "stage": "BETA", "dest": str(tmp_path)}
    refused = run_module(phoenix_backup.main, as_owner)
    assert refused["failed"] is True
    assert "reads of tenant_doc (forced, for its owner too), and a backup must hold every row" in refused["msg"]
    assert backed_up_files(tmp_path) == []

    with psycopg.connect(as_owner["db_url"], autocommit=True) as conn:  # its owner's policies no longer filter it
        conn.execute(sql.SQL("ALTER TABLE public.tenant_doc NO FORCE ROW LEVEL SECURITY"))
    made = run_module(phoenix_backup.main, as_owner)
    assert made["changed"] is True and "failed" not in made, made.get("msg")


@pytest.mark.parametrize("mode", ["in_place", "swap"])
@pytest.mark.parametrize("check", [True, False], ids=["check", "run"])
def test_a_restore_by_a_role_that_row_level_security_filters_is_refused_first(forced, tmp_path, mode, check):
    """A restore counts every table's rows, and a policy would make them short: what it reports it changes, and
    a swap's check of the new database against the manifest, would be wrong."""
    data = forced
    made = run_module(phoenix_backup.main, {"db_url": data.url, "stage": "BETA", "dest": str(tmp_path)})
    as_owner = {"db_url": make_conninfo(data.url, user="shop_owner"), "stage": "BETA", "dest": str(tmp_path),
                "mode": mode, "safety_backup": False}
    refused = run_module(phoenix_restore.main, as_owner, check=check)
    assert refused["failed"] is True and "Traceback" not in refused["_raw"]
    assert refused["msg"] == (
        "row-level security filters what role shop_owner reads of tenant_doc (forced, for its owner too), and a "
        "restore counts the rows of every table (to report what it changes%s): give the role BYPASSRLS (ALTER ROLE "
        "shop_owner BYPASSRLS), or restore as a superuser; nothing was written"
        % (", and to check the restored database against the manifest" if mode == "swap" else ""))
    assert data.query("SELECT count(*) FROM pg_database WHERE datname LIKE %s", (data.name + "_%",)) == [(0,)]

    with data.connect() as conn:
        conn.execute(sql.SQL("ALTER ROLE shop_owner BYPASSRLS"))
    restored = run_module(phoenix_restore.main, as_owner, check=check)
    assert restored.get("changed") is True and "failed" not in restored, restored.get("msg")
    assert restored["row_changes"] == {}, made  # every row counted, none filtered out


def test_a_drill_by_a_role_that_row_level_security_filters_names_it_not_the_backup(forced, tmp_path):
    """The drill's scratch database forces row security as the backup does: a count short of the manifest would
    call a sound backup broken."""
    data = forced
    run_module(phoenix_backup.main, {"db_url": data.url, "stage": "BETA", "dest": str(tmp_path)})
    as_owner = {"db_url": make_conninfo(data.url, user="shop_owner"), "stage": "BETA", "dest": str(tmp_path)}
    refused = run_module(phoenix_restore_drill.main, as_owner)
    assert refused["failed"] is True and "Traceback" not in refused["_raw"]
    assert refused["msg"] == (
        'role shop_owner may not count every row of a table, as its row-level security policies filter what the '
        'role reads (query would be affected by row-level security policy for table "tenant_doc"): give the role '
        "BYPASSRLS (ALTER ROLE shop_owner BYPASSRLS), or run this as a superuser")
    assert data.query("SELECT count(*) FROM pg_database WHERE datname LIKE 'phoenix_drill_%'") == [(0,)]

    with data.connect() as conn:
        conn.execute(sql.SQL("ALTER ROLE shop_owner BYPASSRLS"))
    drilled = run_module(phoenix_restore_drill.main, as_owner)
    assert drilled.get("passed") is True, drilled.get("msg") or drilled.get("problems")


@pytest.mark.parametrize("check", [True, False], ids=["check", "run"])
def test_a_backup_by_a_role_that_may_not_read_a_dbas_tables_is_refused_naming_them(
        owned_by_shop_owner, tmp_path, check):
    """The application's owner backs up its database, where a DBA made a reporting schema as a superuser."""
    data = owned_by_shop_owner
    with data.connect() as conn:
        conn.execute(sql.SQL("REVOKE pg_read_all_data FROM shop_owner"))
        conn.execute(sql.SQL("CREATE SCHEMA dba"))
        conn.execute(sql.SQL("CREATE TABLE dba.daily (day date PRIMARY KEY, total serial)"))
        conn.execute(sql.SQL("CREATE TABLE public.dba_note (id int)"))
    as_owner = {"db_url": make_conninfo(data.url, user="shop_owner"), "stage": "BETA", "dest": str(tmp_path)}
    refused_until_granted(data, as_owner, check, (
        "role shop_owner may not read table dba.daily (of postgres), sequence dba.daily_total_seq (of postgres), "
        "table dba_note (of postgres), and a backup holds every table and sequence of the database: grant it "
        "pg_read_all_data (GRANT pg_read_all_data TO shop_owner), or USAGE on their schemas and SELECT on them, or "
        "back up as a superuser; nothing was written"), sql.SQL("GRANT pg_read_all_data TO shop_owner"))


@pytest.fixture
def acting_as_owner(owned_by_shop_owner):
    """The db_url of a person's login role that acts as the application's owner, as teams set one up so that what
    it creates is the owner's: ``ALTER ROLE alice SET role = shop_owner``."""
    with owned_by_shop_owner.connect() as conn:
        for statement in ("CREATE ROLE alice LOGIN IN ROLE shop_owner", "ALTER ROLE alice SET role = 'shop_owner'"):
            conn.execute(sql.SQL(statement))
    yield make_conninfo(owned_by_shop_owner.url, user="alice")
    with owned_by_shop_owner.connect() as conn:
        conn.execute(sql.SQL("DROP ROLE alice"))


def test_a_role_that_acts_as_the_owner_drills_and_swaps(owned_by_shop_owner, acting_as_owner, tmp_path):
    """The server lets a role that acts as another end none of the sessions of the role it logged in as: the run's
    own programs' sessions, which may still be exiting as it drops its scratch database or swaps the new one in.
    Before, the drill failed ("must be a member of the role whose process is being terminated") and left its
    scratch database behind."""
    data = owned_by_shop_owner
    as_alice = {"db_url": acting_as_owner, "stage": "BETA", "dest": str(tmp_path)}
    made = run_module(phoenix_backup.main, as_alice)
    assert made.get("changed") is True, made.get("msg")
    for attempt in range(3):  # the programs' sessions exit at their own pace: the failure came most times, not all
        drilled = run_module(phoenix_restore_drill.main, dict(as_alice, jobs=2))
        assert drilled.get("passed") is True, drilled.get("msg") or drilled.get("problems")
        swapped = run_module(phoenix_restore.main, dict(as_alice, backup=made["backup"]["id"], mode="swap", jobs=2,
                                                        safety_backup=False))
        assert swapped.get("changed") is True and "failed" not in swapped, swapped.get("msg")
    assert data.query("SELECT datname, pg_get_userbyid(datdba) FROM pg_database WHERE datname LIKE %s OR datname = %s",
                      ("phoenix_drill_%", data.name)) == [(data.name, "shop_owner")]


def shop_owner_limited_to(data, limit: int):
    """``data``, with shop_owner's CONNECTION LIMIT ``limit`` and none of its sessions open (those that migrated the
    database as shop_owner exit at their own pace)."""
    if parallel_jobs() < 2:
        pytest.skip("one CPU: pg_dump and pg_restore take one job by default")
    with data.connect() as conn:
        conn.execute(sql.SQL("ALTER ROLE shop_owner CONNECTION LIMIT {}").format(sql.Literal(limit)))
    shop_owner_gone(data)
    return data


def shop_owner_gone(data) -> None:
    """``data``, once the sessions of shop_owner's runs so far have exited (the server counts them until then)."""
    deadline = time.monotonic() + 10
    while data.query("SELECT count(*) FROM pg_stat_activity WHERE usename = 'shop_owner'") != [(0,)]:
        assert time.monotonic() < deadline
        time.sleep(0.05)


@pytest.mark.parametrize("limit, jobs", [(3, 1), (4, 2)])
def test_a_backup_left_to_choose_its_jobs_fits_them_to_the_roles_connection_limit(
        owned_by_shop_owner, tmp_path, limit, jobs):
    """A parallel pg_dump opens a connection per job and one to lead them, beside the run's own session. Before,
    with the role's CONNECTION LIMIT 3, a directory backup with the default jobs (one per CPU) failed every time:
    ``too many connections for role "shop_owner"``."""
    data = shop_owner_limited_to(owned_by_shop_owner, limit)
    made = run_module(phoenix_backup.main, {"db_url": make_conninfo(data.url, user="shop_owner"), "stage": "BETA",
                                            "dest": str(tmp_path), "format": "directory", "verify": True})
    assert made.get("changed") is True and "failed" not in made, made.get("msg")
    assert made["jobs"] == min(jobs, parallel_jobs())
    warned = [w["event"]["msg"] for w in made.get("warnings", []) if "CONNECTION LIMIT" in w["event"]["msg"]]
    if made["jobs"] < parallel_jobs():
        assert warned == [
            "the backup's pg_dump takes %d job%s, not %d: %d jobs open %d connections, and role shop_owner's "
            "CONNECTION LIMIT %d, with 1 session open, leaves room for %d more; give jobs to choose, or raise the limit "
            "for parallel backups" % (jobs, "" if jobs == 1 else "s", parallel_jobs(), parallel_jobs(),
                                      parallel_jobs() + 1, limit, limit - 1)]
    else:
        assert warned == []


@pytest.mark.parametrize("limit", [2, 3, 4])
def test_a_drill_and_a_swap_left_to_choose_their_jobs_fit_them_to_the_roles_connection_limit(
        owned_by_shop_owner, tmp_path, limit):
    """A parallel pg_restore opens a connection per job, beside the run's own session, and its leader's is counted
    until its process has exited. Before, with the role's CONNECTION LIMIT 2, a drill with the default jobs (one per
    CPU) failed with ``too many connections for role "shop_owner"``, and so did a swap, after creating its new
    database. A swap also carries the history over a session to each database: with a limit of 2 it is refused
    before it writes."""
    data = shop_owner_limited_to(owned_by_shop_owner, limit)
    as_owner = {"db_url": make_conninfo(data.url, user="shop_owner"), "stage": "BETA", "dest": str(tmp_path)}
    made = run_module(phoenix_backup.main, dict(as_owner, format="directory", jobs=1))
    assert made.get("changed") is True, made.get("msg")
    databases = data.query("SELECT datname FROM pg_database ORDER BY 1")
    shop_owner_gone(data)
    drilled = run_module(phoenix_restore_drill.main, as_owner)
    shop_owner_gone(data)
    swapped = run_module(phoenix_restore.main, dict(as_owner, backup=made["backup"]["id"], mode="swap",
                                                    safety_backup=False))
    ran = [(drilled, "the drill's pg_restore", "drills")]
    if limit == 2:
        assert swapped["failed"] is True and "Traceback" not in swapped["_raw"]
        assert swapped["msg"] == (
            "mode=swap carries the old database's history into the new one over a session to each, beside its own, "
            "and role shop_owner's CONNECTION LIMIT 2, with 1 session open, leaves room for 1 more; raise the limit, "
            "or use mode=in_place")
        assert data.query("SELECT datname FROM pg_database ORDER BY 1") == databases
    else:
        ran.append((swapped, "the swap's pg_restore", "restores"))
    for result, program, what in ran:
        assert "failed" not in result, result.get("msg")
        jobs = max([n for n in range(2, parallel_jobs() + 1) if n + 1 <= limit - 1] or [1])  # a leader beside them
        assert result["jobs"] == jobs
        warned = [w["event"]["msg"] for w in result.get("warnings", []) if "CONNECTION LIMIT" in w["event"]["msg"]]
        assert warned == ([] if jobs == parallel_jobs() else [
            "%s takes %d job%s, not %d: %d jobs open %d connections, and role shop_owner's CONNECTION LIMIT %d, with 1 "
            "session open, leaves room for %d more; give jobs to choose, or raise the limit for parallel %s"
            % (program, jobs, "" if jobs == 1 else "s", parallel_jobs(), parallel_jobs(), parallel_jobs() + 1, limit,
               limit - 1, what)])
    assert drilled["passed"] is True


def test_a_swap_counts_the_old_databases_rows_before_its_jobs_where_the_limit_leaves_no_room_beside_them(
        owned_by_shop_owner, tmp_path):
    """The old database's rows are counted on a connection of their own, beside the restore's jobs where the role's
    CONNECTION LIMIT leaves room for it. Here it leaves none, and the count waits on the lock of a migration (as
    shop_owner, whose session the swap ends): before, the jobs connected while it waited, one session too many, and
    the swap failed with ``too many connections``."""
    jobs = min(parallel_jobs(), 2)
    data = shop_owner_limited_to(owned_by_shop_owner, 3 + jobs)  # the migration's, the run's own, the jobs, a leader
    as_owner = {"db_url": make_conninfo(data.url, user="shop_owner"), "stage": "BETA", "dest": str(tmp_path)}
    made = run_module(phoenix_backup.main, dict(as_owner, format="directory", jobs=1))
    shop_owner_gone(data)
    with table_held(data, "ACCESS EXCLUSIVE", released_after=3, user="shop_owner"):
        swapped = run_module(phoenix_restore.main, dict(as_owner, backup=made["backup"]["id"], mode="swap",
                                                        jobs=jobs, safety_backup=False))
    assert swapped.get("changed") is True and "failed" not in swapped, swapped.get("msg")
    assert swapped["kept_database"] in [name for (name,) in data.query("SELECT datname FROM pg_database")]


def test_a_lock_watch_that_cannot_connect_stops_its_program_from_starting(owned_by_shop_owner):
    """A session that came after the in-place restore's count of the room left (an application's, say) takes the
    connection its lock watch needed. Before, the watch connected in its own thread, and its failure was silent: the
    restore ran unwatched, its lock_timeout unkept. It connects before the program starts, and stops it there."""
    data = shop_owner_limited_to(owned_by_shop_owner, 1)
    as_owner = make_conninfo(data.url, user="shop_owner")
    started = []
    with psycopg.connect(as_owner):  # the application's session: the role's last connection
        with pytest.raises(PhoenixError) as refused:
            with LockWatch(as_owner, 5, "restore"):
                started.append(True)
    assert started == []
    assert refused.value.msg.startswith("the restore's lock watch, which keeps lock_timeout=5 s, could not connect (")
    assert refused.value.msg.endswith(
        "too many connections for role \"shop_owner\"), so the restore did not start and the database is as it was; "
        "run it again once a connection is free, or with lock_timeout=0 (no watch, one session less)")
    with LockWatch(as_owner, 0, "restore"):  # no watch, no session of its own
        started.append(True)
    assert started == [True]


@pytest.mark.parametrize("check", [True, False], ids=["check", "run"])
def test_an_in_place_restore_with_no_room_under_the_limit_for_its_sessions_is_refused_before_its_safety_backup(
        owned_by_shop_owner, tmp_path, check):
    """An in-place restore runs its program on a session of its own and watches its lock waits on another, beside
    the run's. Before, with the role's CONNECTION LIMIT 2, the two raced for the one connection left once the safety
    backup was taken: the restore failed with ``too many connections``, or ran unwatched, its lock_timeout unkept.
    Without the watch (lock_timeout 0) it fits, and restores."""
    data = shop_owner_limited_to(owned_by_shop_owner, 2)
    as_owner = {"db_url": make_conninfo(data.url, user="shop_owner"), "stage": "BETA", "dest": str(tmp_path)}
    made = run_module(phoenix_backup.main, as_owner)
    assert made.get("changed") is True, made.get("msg")
    shop_owner_gone(data)
    refused = run_module(phoenix_restore.main, dict(as_owner, backup=made["backup"]["id"]), check=check)
    assert refused["failed"] is True and "Traceback" not in refused["_raw"]
    assert refused["msg"] == (
        "%s runs its program (pg_restore or psql) on a session of its own, and watches its lock waits on one more, "
        "beside the run's, and role shop_owner's CONNECTION LIMIT 2, with 1 session open, leaves room for 1 more; "
        "raise the limit, or set lock_timeout=0 (the restore then waits for a lock without end, unwatched); nothing "
        "was written" % refusal_purpose(made, "in_place", data))
    assert sorted(backed_up_files(tmp_path)) == sorted(backed_up_files(Path(made["backup"]["path"])))  # no safety one
    shop_owner_gone(data)
    restored = run_module(phoenix_restore.main, dict(as_owner, backup=made["backup"]["id"], lock_timeout=0),
                          check=check)
    assert restored.get("changed") is True and "failed" not in restored, restored.get("msg")
