"""phoenix_restore mode=swap: a parallel restore into a new database that takes the old one's name in one step."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Iterator

import psycopg
import pyrage
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from ansible_collections.phoenix.platform.plugins.module_utils._backups import encryption, server_room, store
from ansible_collections.phoenix.platform.plugins.module_utils._backups import restore as restore_module
from ansible_collections.phoenix.platform.plugins.module_utils._backups import swap as swap_module
from ansible_collections.phoenix.platform.plugins.module_utils._backups.dump import list_dump
from ansible_collections.phoenix.platform.plugins.module_utils._backups.restore import restore_dump
from ansible_collections.phoenix.platform.plugins.module_utils._backups.drill import SCRATCH_PREFIX
from ansible_collections.phoenix.platform.plugins.module_utils._backups.extensions import require_creatable
from ansible_collections.phoenix.platform.plugins.module_utils._backups.scratch import (
    SCRATCH_MARK,
    create_scratch,
    drop_database,
    scratch_name,
)
from ansible_collections.phoenix.platform.plugins.module_utils._backups.split_load import load_split
from ansible_collections.phoenix.platform.plugins.module_utils._backups.swap import (
    KEPT_COMMENT,
    KEPT_MARK,
    kept_databases,
    kept_mark,
    kept_name,
    new_name,
    swap_restore,
    swap_session,
)
from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._pg.binaries import find_tool, libpq_environment
from ansible_collections.phoenix.platform.plugins.modules import (
    phoenix_backup,
    phoenix_backup_info,
    phoenix_restore,
    phoenix_restore_drill,
    phoenix_world,
)
from ansible_collections.phoenix.platform.tests.helpers import (
    DiskFull,
    miscount,
    module_process,
    run_module,
    waiting_for_an_advisory_lock,
)

from conftest import (
    Database,
    databases_like,
    drop_swapped,
    hand_to_shop_owner,
    refusal_purpose,
    server_settings,
    table_held,
)
from worlds_fixtures import ODD_TABLES, app_fingerprints, loads_in_pieces, migrate, table_fingerprints, the_ledger

pytestmark = pytest.mark.usefixtures("clean_env")


def call(main, database, check=False, **options):
    return run_module(main, dict({"db_url": database.url, "stage": "BETA"}, **options), check=check)


@pytest.fixture
def shop_tablespace(pg_cluster):
    """A tablespace of the application's database (its own disk, in the field)."""
    location = pg_cluster.base_dir / "shop_space"
    location.mkdir()
    if pg_cluster.run_as:  # the server's OS user owns it
        entry = pwd.getpwnam(pg_cluster.run_as)
        os.chown(location, entry.pw_uid, entry.pw_gid)
    with psycopg.connect(**pg_cluster.conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE TABLESPACE shop_space LOCATION {}").format(sql.Literal(str(location))))
    yield "shop_space"
    with psycopg.connect(**pg_cluster.conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP TABLESPACE shop_space"))
    shutil.rmtree(location)


def database_properties(database) -> list[tuple]:
    return database.query(
        "SELECT (SELECT spcname FROM pg_tablespace WHERE oid = d.dattablespace), pg_encoding_to_char(d.encoding), "
        "d.datcollate, d.datctype, d.datlocprovider, d.daticulocale, "
        "d.datconnlimit, pg_get_userbyid(d.datdba), (SELECT array_agg(a::text ORDER BY a::text) FROM "
        "unnest(d.datacl) a), shobj_description(d.oid, 'pg_database'), (SELECT array_agg(coalesce("
        "pg_get_userbyid(nullif(s.setrole, 0)), '*') || ': ' || s.setconfig::text ORDER BY 1) "
        "FROM pg_db_role_setting s WHERE s.setdatabase = d.oid) FROM pg_database d WHERE d.datname = %s",
        (database.name,))


class SecondOfTheSwapBefore:
    """The swap module's clock, whose first reading is the second in the name ``kept`` (of a swap just before)."""

    strftime = staticmethod(time.strftime)
    sleep = staticmethod(time.sleep)

    def __init__(self, kept: str) -> None:
        self.readings = [time.strptime(kept[-swap_module.KEPT_TIME_DIGITS:], swap_module.KEPT_TIME)]

    def gmtime(self) -> time.struct_time:
        return self.readings.pop() if self.readings else time.gmtime()


@pytest.mark.parametrize("fmt", ["custom", "directory", "plain"])
def test_swap_restores_exactly_keeps_history_and_the_old_database(swappable, tmp_path, fmt, monkeypatch):
    data = swappable
    before = app_fingerprints(data)
    made = call(phoenix_backup.main, data, dest=str(tmp_path), format=fmt)
    call(phoenix_world.main, data, id="KEEP_ME", state="absent")
    call(phoenix_world.main, data, id="ADDED_LATER", seed={"users": 1, "artifacts": 1, "chats": 0})
    changed = app_fingerprints(data)
    audit_before = data.query("SELECT count(*) FROM phoenix.audit_log")[0][0]

    planned = call(phoenix_restore.main, data, check=True, dest=str(tmp_path), mode="swap")
    assert planned["changed"] is True and planned["row_changes"]["Artifact"]["difference"] == 5
    assert planned["dropped_kept"] == []
    assert app_fingerprints(data) == changed and not databases_like(data, "_")  # check mode made nothing

    restored = call(phoenix_restore.main, data, dest=str(tmp_path), mode="swap", jobs=2)
    assert restored["changed"] is True, restored.get("msg")
    assert restored["safety_backup"] is None and restored["leftover_removed"] is False
    # the old database was counted while pg_restore ran: the same changes as planned, also in the audit log
    assert restored["row_changes"] == planned["row_changes"]
    recorded = data.query("SELECT details->'row_changes' FROM phoenix.audit_log ORDER BY id DESC LIMIT 1")[0][0]
    assert recorded == planned["row_changes"]
    assert app_fingerprints(data) == before
    assert data.query("SELECT count(*) FROM phoenix.audit_log")[0][0] == audit_before + 1  # history carried over
    assert data.query("SELECT operation, details->>'mode' FROM phoenix.audit_log ORDER BY id DESC LIMIT 1") == [
        ("backup.restore", "swap")]
    assert data.query("SELECT stage FROM phoenix.environment") == [("BETA",)]
    # the old database had no comment: the new one's scratch mark went with the swap
    assert data.query("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
                      (data.name,)) == [(None,)]
    assert databases_like(data, KEPT_MARK) == [restored["kept_database"]]
    assert data.query("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
                      (restored["kept_database"],)) == [
        ("%s: %s as it was before a swap restore; the next successful swap drops it" % (KEPT_COMMENT, data.name),)]
    kept = type(data)(data.cluster, restored["kept_database"])
    assert app_fingerprints(kept) == changed  # the old database, as it was, under its new name

    # kept names carry the second: a swap whose clock first reads the second of the one before waits for the next
    monkeypatch.setattr(swap_module, "time", SecondOfTheSwapBefore(restored["kept_database"]))
    planned = call(phoenix_restore.main, data, check=True, dest=str(tmp_path), backup=made["backup"]["id"], mode="swap")
    assert planned["dropped_kept"] == [restored["kept_database"]]
    again = call(phoenix_restore.main, data, dest=str(tmp_path), backup=made["backup"]["id"], mode="swap")
    assert again["dropped_kept"] == [restored["kept_database"]], again.get("msg")
    assert databases_like(data, KEPT_MARK) == [again["kept_database"]]
    assert app_fingerprints(data) == before


def create_databases(pg_cluster, names: list[str]) -> list[Database]:
    with psycopg.connect(**pg_cluster.conninfo(), autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return [Database(pg_cluster, name) for name in names]


def drop_databases(pg_cluster, names: list[str]) -> None:
    with psycopg.connect(**pg_cluster.conninfo(), autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def tenants(pg_cluster):
    """Two application databases named alike but for their last characters, too long to keep whole in the name
    of a database kept by a swap."""
    stem = "t_%s_shop_production_eu_west_1_customer_tenant_" % uuid.uuid4().hex[:8]
    made = create_databases(pg_cluster, [stem + "0001", stem + "0002"])
    for tenant in made:
        migrate(tenant)
        call(phoenix_world.main, tenant, id="KEEP_ME", seed={"users": 1, "artifacts": 1, "chats": 0})
    yield made
    with psycopg.connect(**pg_cluster.conninfo(), autocommit=True) as admin:
        swapped = [name for tenant in made for name in [new_name(tenant.name), *kept_databases(admin, tenant.name)[0]]]
    drop_databases(pg_cluster, [tenant.name for tenant in made] + swapped)


def test_a_swap_keeps_to_its_own_database_when_long_names_start_alike(tenants, pg_cluster, tmp_path):
    first, second = tenants
    for tenant in tenants:
        call(phoenix_backup.main, tenant, dest=str(tmp_path / tenant.name))
    other = call(phoenix_restore.main, second, dest=str(tmp_path / second.name), mode="swap")
    assert other["changed"] is True, other.get("msg")
    others_kept = table_fingerprints(Database(second.cluster, other["kept_database"]))

    kept = []
    for run in range(2):
        restored = call(phoenix_restore.main, first, dest=str(tmp_path / first.name), mode="swap")
        assert restored["changed"] is True and restored["kept_database"] != other["kept_database"], restored
        # only the first tenant's own kept database goes, on its second swap
        assert restored["dropped_kept"] == kept, restored["dropped_kept"]
        kept = [restored["kept_database"]]
        with psycopg.connect(**pg_cluster.conninfo(), autocommit=True) as admin:
            assert kept_databases(admin, second.name) == ([other["kept_database"]], [])
            assert kept_databases(admin, first.name) == (kept, [])
        assert table_fingerprints(Database(second.cluster, other["kept_database"])) == others_kept


def test_kept_databases_are_told_apart_by_exact_name_time_and_mark(pg_cluster):
    """A database named with fourteen digits is not another's kept copy, nor is a name with a letter in its
    time; a kept name without the mark a swap gives is only a name alike."""
    stem = "t_%s_" % uuid.uuid4().hex[:8]
    zeros, digits = stem + "0" * 14, stem + "12345678901234"
    others = [kept_name(digits, "20261205103000"), kept_name(zeros, "2026120510300x")]
    ours = [kept_name(zeros, "20261205103000"), kept_name(zeros, "20261205103001")]
    unmarked = kept_name(zeros, "20261205103002")
    create_databases(pg_cluster, others + ours + [unmarked])
    try:
        with psycopg.connect(**pg_cluster.conninfo(), autocommit=True) as admin:
            for name in others + ours:
                admin.execute(kept_mark(name, zeros))
            assert kept_databases(admin, zeros) == (ours, [unmarked])
            assert kept_databases(admin, digits) == (others[:1], [])
    finally:
        drop_databases(pg_cluster, others + ours + [unmarked])


@pytest.mark.parametrize("mode", ["in_place", "swap"])
def test_a_restore_lists_the_dump_once(swappable, tmp_path, monkeypatch, mode):
    """The verification and the restore read the same table of contents: pg_restore --list runs once."""
    call(phoenix_backup.main, swappable, dest=str(tmp_path), format="directory")
    listed = []
    run = subprocess.run

    def counting(args, *rest, check=False, **options):
        if "--list" in args:
            listed.append(args)
        return run(args, *rest, check=check, **options)
    monkeypatch.setattr(subprocess, "run", counting)
    restored = call(phoenix_restore.main, swappable, dest=str(tmp_path), safety_backup=False, mode=mode)
    assert restored["changed"] is True, restored
    assert len(listed) == 1, listed


@pytest.mark.parametrize("check", [True, False], ids=["check", "run"])
def test_a_swap_without_room_on_the_servers_disk_is_refused_before_anything_is_written(
        swappable, tmp_path, monkeypatch, check):
    data = swappable
    made = call(phoenix_backup.main, data, dest=str(tmp_path))
    before = table_fingerprints(data)
    disk = DiskFull()
    monkeypatch.setattr(server_room.shutil, "disk_usage", disk)
    refused = call(phoenix_restore.main, data, check=check, dest=str(tmp_path), mode="swap")
    assert refused["failed"] is True and "Traceback" not in refused["_raw"]
    assert "restoring backup %s beside database %s needs about" % (made["backup"]["id"], data.name) in refused["msg"]
    assert "1 MB are free. Free some space, or use mode=in_place" in refused["msg"], refused["msg"]
    data_directory = data.query("SHOW data_directory")[0][0]
    assert disk.paths and all(path.startswith(data_directory) for path in disk.paths)
    assert table_fingerprints(data) == before and not databases_like(data, "_")


# shop_owner restores objects postgres owns (as the fixtures make them), and may not give them back
OWNED_BY_THE_RESTORER = ("the restored objects of role(s) postgres are owned by shop_owner, the role that restored "
                         "them: it is not a superuser, and may not act as postgres (SET ROLE)")


def swap_as_shop_owner(data, dest, check=False, **options) -> dict:
    as_owner = psycopg.conninfo.make_conninfo(data.url, user="shop_owner")  # may create databases, no more
    return run_module(phoenix_restore.main, dict({"db_url": as_owner, "stage": "BETA", "dest": str(dest),
                                                  "mode": "swap"}, **options), check=check)


@pytest.mark.usefixtures("shop_roles")
def test_a_role_that_cannot_see_the_servers_files_swaps_with_a_warning(swappable, tmp_path):
    data = swappable
    call(phoenix_backup.main, data, dest=str(tmp_path))
    hand_to_shop_owner(data)  # the owner may rename it
    planned = swap_as_shop_owner(data, tmp_path, check=True)
    assert planned["changed"] is True, planned.get("msg")
    assert [w["event"]["msg"] for w in planned["warnings"]] == [
        "free space for the swap's second copy of the database was not checked: the server does not show this role "
        "where its files are (superuser or pg_read_all_settings)", OWNED_BY_THE_RESTORER]


@pytest.mark.usefixtures("shop_roles")
@pytest.mark.parametrize("check", [True, False], ids=["check", "run"])
def test_a_swap_the_role_could_not_finish_is_refused_before_it_restores(swappable, tmp_path, check):
    """Renaming a database takes its owner, and ending a session the right to signal it: both are checked before
    the restore, not found missing after it."""
    data = swappable
    call(phoenix_backup.main, data, dest=str(tmp_path))
    refused = swap_as_shop_owner(data, tmp_path, check)
    assert refused["failed"] is True and "Traceback" not in refused["_raw"]
    assert refused["msg"] == (
        "mode=swap renames database %s, which only its owner may do, and role shop_owner is not postgres (nor a "
        "member of it); restore as postgres or a superuser, or use mode=in_place" % data.name)

    hand_to_shop_owner(data)
    with psycopg.connect(data.url, application_name="metrics agent") as agent:  # a superuser's session
        agent.execute(sql.SQL("SELECT 1"))
        refused = swap_as_shop_owner(data, tmp_path, check)
    assert refused["failed"] is True and "Traceback" not in refused["_raw"]
    assert refused["msg"] == (
        "mode=swap ends every session in database %s, and role shop_owner may not end 1 session of postgres "
        "(metrics agent); stop it, or restore as a superuser, or use mode=in_place" % data.name)
    assert not databases_like(data, "_")


@pytest.mark.usefixtures("shop_roles")
def test_a_session_it_may_not_end_that_comes_during_the_restore_stops_the_swap(swappable, tmp_path, monkeypatch):
    data = swappable
    call(phoenix_backup.main, data, dest=str(tmp_path))
    hand_to_shop_owner(data)
    before = table_fingerprints(data)
    agents = []
    checked = swap_module.restored_problems

    def an_agent_connects(*args, **kwargs):  # after the checks before the restore, before the swap
        agents.append(psycopg.connect(data.url, application_name="metrics agent"))
        return checked(*args, **kwargs)
    monkeypatch.setattr(swap_module, "restored_problems", an_agent_connects)
    try:
        refused = swap_as_shop_owner(data, tmp_path)
    finally:
        for agent in agents:
            agent.close()
    assert refused["failed"] is True and "Traceback" not in refused["_raw"]
    assert refused["msg"] == ("the restored database is ready, but it was not swapped in: role shop_owner may not end "
                              "1 session of postgres (metrics agent) in %s; stop it and run the restore again"
                              % data.name)
    assert table_fingerprints(data) == before and not databases_like(data, "_")


@contextlib.contextmanager
def autovacuum_at_work(database):
    """An autovacuum worker in ``database`` for a minute: a table of dead rows that it vacuums slowly."""
    with server_settings(database.cluster, autovacuum_naptime="1s"):
        with database.connect() as conn:
            conn.execute(sql.SQL("CREATE TABLE public.slowly_vacuumed (n int) WITH (autovacuum_vacuum_cost_delay = "
                                 "100, autovacuum_vacuum_cost_limit = 1, autovacuum_vacuum_threshold = 0, "
                                 "autovacuum_vacuum_scale_factor = 0)"))
            conn.execute(sql.SQL("INSERT INTO public.slowly_vacuumed SELECT generate_series(1, 100000)"))
            conn.execute(sql.SQL("DELETE FROM public.slowly_vacuumed"))
        for wait in range(300):
            if database.query("SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                              "AND backend_type = 'autovacuum worker'", (database.name,)) == [(1,)]:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("no autovacuum worker came to the database in 30 s")
        yield


@pytest.mark.usefixtures("shop_roles")
def test_a_role_that_is_not_a_superuser_drops_a_database_while_autovacuum_works_there(pg_cluster):
    """As a drill drops its scratch database and a swap its new one, freshly loaded: autovacuum's first stop."""
    name = "t_%s_scratch" % uuid.uuid4().hex[:8]
    scratch, = create_databases(pg_cluster, [name])
    try:
        hand_to_shop_owner(scratch)
        with autovacuum_at_work(scratch), psycopg.connect(make_conninfo(scratch.url, user="shop_owner",
                                                                        dbname="postgres"), autocommit=True) as admin:
            drop_database(admin, name)
        with psycopg.connect(**pg_cluster.conninfo()) as conn:
            assert not conn.execute(sql.SQL("SELECT 1 FROM pg_database WHERE datname = %s"), [name]).fetchall()
    finally:
        drop_databases(pg_cluster, [name])


@pytest.mark.usefixtures("shop_roles")
def test_an_owner_swaps_while_autovacuum_works_in_the_database(swappable, tmp_path):
    """Autovacuum runs as no role an owner may signal; renaming the database ends it, as the server does."""
    data = swappable
    before = app_fingerprints(data)
    call(phoenix_backup.main, data, dest=str(tmp_path))
    hand_to_shop_owner(data)
    call(phoenix_world.main, data, id="KEEP_ME", state="absent")
    with autovacuum_at_work(data):
        restored = swap_as_shop_owner(data, tmp_path)
    assert restored.get("changed") is True, restored["_raw"]
    assert app_fingerprints(data) == before
    assert data.query("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (data.name,)) == [
        ("shop_owner",)]


def test_a_new_database_the_server_lets_no_one_reach_stops_the_swap_before_it_restores(
        swappable, tmp_path, hba_rejects):
    data = swappable
    call(phoenix_backup.main, data, dest=str(tmp_path))
    call(phoenix_world.main, data, id="KEEP_ME", state="absent")
    before = table_fingerprints(data)
    hba_rejects(new_name(data.name))
    refused = call(phoenix_restore.main, data, dest=str(tmp_path), mode="swap")
    assert refused["failed"] is True and "Traceback" not in refused["_raw"]
    assert refused["msg"].startswith("mode=swap restores into a new database %s, and the server refuses this role's "
                                     "connections to it (" % new_name(data.name))
    assert 'pg_hba.conf rejects connection for host "[local]", user "postgres", database "%s"' % new_name(data.name) \
        in refused["msg"]
    assert refused["msg"].endswith("); allow them in pg_hba.conf (that database's name, or all), or use mode=in_place")
    assert table_fingerprints(data) == before and not databases_like(data, "_")


def test_an_application_that_keeps_reconnecting_ends_up_in_the_restored_database(swappable, tmp_path):
    """An application left running (restarted by its supervisor, or a pool) comes back at once after each
    termination. Its new sessions wait for the transaction that renames the databases (a connection locks its
    database), so the swap goes through, and the application is then in the restored database, not the kept one."""
    data = swappable
    backed_up = app_fingerprints(data)
    call(phoenix_backup.main, data, dest=str(tmp_path))
    call(phoenix_world.main, data, id="KEEP_ME", state="absent")
    stop = threading.Event()
    failures = []

    def reconnecting_application() -> None:
        while not stop.is_set():
            try:
                with psycopg.connect(data.url, application_name="shop web") as conn:
                    while not stop.is_set():
                        conn.execute(sql.SQL("SELECT 1"))
                        time.sleep(0.001)
            except psycopg.OperationalError as exc:  # terminated, or the name was just given away: back at once
                failures.append(str(exc))
    application = threading.Thread(target=reconnecting_application)
    application.start()
    try:
        restored = call(phoenix_restore.main, data, dest=str(tmp_path), mode="swap")
        assert restored.get("changed") is True, restored.get("msg")
        for wait in range(50):  # the application's next session, in the database now named as its own
            where = data.query("SELECT datname FROM pg_stat_activity WHERE application_name = 'shop web'")
            if where == [(data.name,)]:
                break
            time.sleep(0.1)
    finally:
        stop.set()
        application.join()
    assert failures, "the application was never disconnected"
    assert where == [(data.name,)]
    assert app_fingerprints(data) == backed_up


UNDECIDED = "shop-checkout:order 17' -- xa"  # a global transaction id, as the application's coordinator wrote it
HELD_SINCE = r"\d{4}-\d\d-\d\d \d\d:\d\d UTC"


def undecided_two_phase_commit(database):
    """An application's two-phase commit left prepared, holding the lock of its row changes on a table."""
    return table_held(database, "ROW EXCLUSIVE", prepared_as=UNDECIDED)


@pytest.mark.parametrize("check", [True, False], ids=["check", "run"])
@pytest.mark.parametrize("mode", ["in_place", "swap"])
def test_a_database_holding_a_prepared_transaction_is_refused_before_anything_is_written(
        swappable, tmp_path, mode, check):
    """No termination ends a prepared transaction: an in-place restore would wait on its lock without end, and the
    server renames no database that holds one."""
    data = swappable
    call(phoenix_backup.main, data, dest=str(tmp_path))
    with undecided_two_phase_commit(data):
        before = table_fingerprints(data)
        refused = call(phoenix_restore.main, data, check=check, dest=str(tmp_path), mode=mode)
        assert refused["failed"] is True and "Traceback" not in refused["_raw"]
        assert re.fullmatch(
            re.escape("database %s holds 1 prepared transaction ('shop-checkout:order 17'' -- xa' of postgres, since "
                      % data.name) + HELD_SINCE + re.escape(
                "), which keeps its locks until it ends: a restore would wait on it without end; end each with COMMIT "
                "PREPARED or ROLLBACK PREPARED '<id>' in that database (as its role or a superuser), then run the "
                "restore again"), refused["msg"]), refused["msg"]
        assert table_fingerprints(data) == before and not databases_like(data, "_")


def test_a_transaction_prepared_during_a_swap_stops_it_at_the_first_rename_naming_it(swappable, tmp_path,
                                                                                     monkeypatch):
    data = swappable
    call(phoenix_backup.main, data, dest=str(tmp_path))
    before = table_fingerprints(data)
    undecided = contextlib.ExitStack()
    checked, ending = swap_module.restored_problems, swap_module.end_sessions
    renames = []

    def the_application_prepares(*args, **kwargs):  # after the checks before the restore, before the swap
        undecided.enter_context(undecided_two_phase_commit(data))
        return checked(*args, **kwargs)

    def before_each_rename(*args, **kwargs):
        renames.append(args[1])
        return ending(*args, **kwargs)
    monkeypatch.setattr(swap_module, "restored_problems", the_application_prepares)
    monkeypatch.setattr(swap_module, "end_sessions", before_each_rename)
    with undecided:
        refused = call(phoenix_restore.main, data, dest=str(tmp_path), mode="swap")
        assert refused["failed"] is True and "Traceback" not in refused["_raw"]
        assert re.fullmatch(
            re.escape("the restored database is ready, but it was not swapped in: database %s holds 1 prepared "
                      "transaction ('shop-checkout:order 17'' -- xa' of postgres, since " % data.name) + HELD_SINCE
            + re.escape("), prepared while the restore ran, and the server renames no database that holds one; end "
                        "each with COMMIT PREPARED or ROLLBACK PREPARED '<id>' in that database (as its role or a "
                        "superuser), then run the restore again"), refused["msg"]), refused["msg"]
        assert renames == [[data.name, new_name(data.name)]]  # one attempt: no retry outlasts it
        assert table_fingerprints(data) == before and not databases_like(data, "_")


def test_a_session_back_at_every_attempt_stops_the_swap_naming_it(swappable, tmp_path, monkeypatch):
    """Sessions that connect between the termination and the rename (before the renaming transaction locks the
    database) make the rename fail; the swap tries again, and after its last attempt names who is still there. A
    session that is back at every attempt is one never ended."""
    data = swappable
    call(phoenix_backup.main, data, dest=str(tmp_path))
    before = table_fingerprints(data)
    attempts = []
    monkeypatch.setattr(swap_module, "SWAP_ATTEMPTS", 2)  # each waits 5 s for the session to end (the server's wait)
    monkeypatch.setattr(swap_module, "end_sessions", lambda admin, databases: attempts.append(databases))
    with psycopg.connect(data.url, application_name="shop web"):
        refused = call(phoenix_restore.main, data, dest=str(tmp_path), mode="swap")
    assert refused["failed"] is True and "Traceback" not in refused["_raw"]
    assert re.fullmatch(re.escape("the restored database is ready, but sessions kept reconnecting to %s (" % data.name)
                        + r"(1 session|2 sessions) of (autovacuum worker, )?postgres \(shop web\)" + re.escape(
        "), so it was not swapped in; stop the application and run the restore again"), refused["msg"]), \
        refused["msg"]  # autovacuum may be at work there too: the server ends it itself
    assert len(attempts) == 2
    assert table_fingerprints(data) == before and not databases_like(data, "_")


@pytest.fixture
def dba_extensions(owned_by_shop_owner):
    """shop_owner's database, with extensions a DBA installed as a superuser: pgcrypto (trusted, which any role
    with CREATE on a database may create) and pg_buffercache (only a superuser may), and a table that uses one."""
    database = owned_by_shop_owner
    with database.connect() as conn:
        conn.execute(sql.SQL("CREATE EXTENSION pgcrypto"))
        conn.execute(sql.SQL("CREATE EXTENSION pg_buffercache"))
    with psycopg.connect(make_conninfo(database.url, user="shop_owner")) as conn:
        conn.execute(sql.SQL("CREATE TABLE public.tokens (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), n int)"))
        conn.execute(sql.SQL("INSERT INTO public.tokens (n) SELECT generate_series(1, 100)"))
    return database


def extensions_of(database) -> list[tuple[str, str]]:
    return database.query("SELECT extname, pg_get_userbyid(extowner) FROM pg_extension ORDER BY 1")


@pytest.mark.parametrize("fmt", ["custom", "directory", "plain"])
def test_an_owner_restores_over_extensions_a_superuser_installed_and_keeps_them(dba_extensions, tmp_path, fmt):
    data = dba_extensions
    call(phoenix_backup.main, data, dest=str(tmp_path), format=fmt)
    tokens = data.query("SELECT id, n FROM public.tokens ORDER BY n")
    installed = extensions_of(data)
    assert ("pgcrypto", "postgres") in installed and ("pg_buffercache", "postgres") in installed
    with data.connect() as conn:
        conn.execute(sql.SQL("DELETE FROM public.tokens WHERE n > 50"))
    as_owner = make_conninfo(data.url, user="shop_owner")
    restored = run_module(phoenix_restore.main, {"db_url": as_owner, "stage": "BETA", "dest": str(tmp_path),
                                                 "safety_backup": False})
    assert restored.get("changed") is True and "failed" not in restored, restored.get("msg")
    assert data.query("SELECT id, n FROM public.tokens ORDER BY n") == tokens
    assert extensions_of(data) == installed  # kept as they were, by their owner


@pytest.fixture
def dba_additions(owned_by_shop_owner):
    """shop_owner's database, where a DBA added, as a superuser, a DDL audit (an event trigger and its function),
    change data capture (a publication of all tables) and a foreign server with shop_owner's user mapping; and
    shop_owner its own publication of a table, which it may replace."""
    database = owned_by_shop_owner
    with database.connect() as conn:
        conn.execute(sql.SQL("CREATE FUNCTION public.ddl_audit() RETURNS event_trigger LANGUAGE plpgsql "
                             "AS 'BEGIN NULL; END'"))
        conn.execute(sql.SQL("CREATE EVENT TRIGGER ddl_audit ON ddl_command_end EXECUTE FUNCTION public.ddl_audit()"))
        conn.execute(sql.SQL("CREATE PUBLICATION cdc FOR ALL TABLES"))
        conn.execute(sql.SQL("CREATE FOREIGN DATA WRAPPER reports_fdw"))
        conn.execute(sql.SQL("CREATE SERVER reports FOREIGN DATA WRAPPER reports_fdw"))
        conn.execute(sql.SQL("CREATE USER MAPPING FOR shop_owner SERVER reports"))
        table = conn.execute(sql.SQL("SELECT min(relname) FROM pg_stat_user_tables WHERE schemaname = 'public'")
                             ).fetchone()[0]
    with psycopg.connect(make_conninfo(database.url, user="shop_owner"), autocommit=True) as conn:  # its own
        conn.execute(sql.SQL("CREATE PUBLICATION shop_feed FOR TABLE {}").format(sql.Identifier("public", table)))
    return database


def dba_objects_of(database) -> list[tuple[str, ...]]:
    return database.query(
        "SELECT 'event trigger', evtname, pg_get_userbyid(evtowner) FROM pg_event_trigger UNION ALL "
        "SELECT 'publication', pubname, pg_get_userbyid(pubowner) FROM pg_publication UNION ALL "
        "SELECT 'server', srvname, pg_get_userbyid(srvowner) FROM pg_foreign_server UNION ALL "
        "SELECT 'user mapping', usename, srvname FROM pg_user_mappings ORDER BY 1, 2")


@pytest.mark.parametrize("fmt", ["directory", "plain"])
@pytest.mark.parametrize("check", [True, False], ids=["check", "run"])
@pytest.mark.parametrize("module, mode", [(phoenix_restore, "in_place"), (phoenix_restore, "swap"),
                                          (phoenix_restore_drill, None)], ids=["in_place", "swap", "drill"])
def test_a_dbas_superuser_objects_are_named_before_an_owner_restores_anything(dba_additions, tmp_path, module, mode,
                                                                              check, fmt):
    """pg_restore (psql, for a plain dump) would fail at the first of them, after a safety backup or a whole load;
    and with the names of all of them, the DBA knows what to restore as a superuser."""
    data = dba_additions
    made = call(phoenix_backup.main, data, dest=str(tmp_path), format=fmt)
    before, objects = table_fingerprints(data), dba_objects_of(data)
    options = {"db_url": make_conninfo(data.url, user="shop_owner"), "stage": "BETA", "dest": str(tmp_path)}
    refused = run_module(module.main, dict(options, mode=mode) if mode else options, check=check)
    assert refused["failed"] is True and "Traceback" not in refused["_raw"]
    purpose = refusal_purpose(made, mode, data)
    assert refused["msg"] == (
        "%s drops or creates foreign-data wrapper reports_fdw (of postgres), foreign server reports (of postgres), "
        "user mapping shop_owner SERVER reports (of postgres), publication cdc (of postgres), event trigger "
        "ddl_audit (of postgres), and role shop_owner may not (only a superuser creates event triggers and "
        "foreign-data wrappers; only their owner or a superuser replaces publications, foreign servers and user "
        "mappings); restore as a superuser" % purpose)
    assert table_fingerprints(data) == before and dba_objects_of(data) == objects
    listed = run_module(phoenix_backup_info.main, {"dest": str(tmp_path), "stage": "BETA"})
    assert [backup["kind"] for backup in listed["backups"]] == ["manual"]  # no safety backup either
    assert not databases_like(data, "_")
    assert not data.query("SELECT 1 FROM pg_database WHERE datname = %s", (scratch_name(SCRATCH_PREFIX, data.name),))

    as_superuser = run_module(module.main, dict(options, db_url=data.url, **({"mode": mode} if mode else {})))
    assert "failed" not in as_superuser, as_superuser.get("msg")
    assert dba_objects_of(data) == objects


@pytest.mark.parametrize("fmt", ["custom", "directory"])
def test_an_owner_restores_in_place_under_a_dbas_change_data_capture_publication_and_keeps_it(
        owned_by_shop_owner, tmp_path, fmt):
    """The application's owner restores its own database; the DBA's publication of all tables, which its pipeline
    reads through a slot, is the database's, kept as it is, so the owner needs no right over it."""
    data = owned_by_shop_owner
    with data.connect() as conn:
        conn.execute(sql.SQL("CREATE PUBLICATION cdc FOR ALL TABLES"))
        conn.execute(sql.SQL("SELECT pg_create_logical_replication_slot('dba_cdc', 'pgoutput')"))
    call(phoenix_backup.main, data, dest=str(tmp_path), format=fmt)
    expected, objects = app_fingerprints(data), dba_objects_of(data)
    publication = data.query("SELECT oid FROM pg_publication WHERE pubname = 'cdc'")
    as_owner = {"db_url": make_conninfo(data.url, user="shop_owner"), "stage": "BETA", "dest": str(tmp_path),
                "safety_backup": False}
    planned = run_module(phoenix_restore.main, as_owner, check=True)
    assert "failed" not in planned, planned.get("msg")
    restored = run_module(phoenix_restore.main, as_owner)
    assert "failed" not in restored and "warnings" not in restored, restored  # every object it restores is its own
    assert app_fingerprints(data) == expected and dba_objects_of(data) == objects
    assert data.query("SELECT oid FROM pg_publication WHERE pubname = 'cdc'") == publication
    data.query("SELECT pg_drop_replication_slot('dba_cdc')")


@pytest.mark.parametrize("check", [True, False], ids=["check", "run"])
def test_an_owners_in_place_restore_over_objects_a_superuser_owns_names_them_before_anything_is_written(
        owned_by_shop_owner, tmp_path, check):
    """--clean drops each object of the dump first, which only its owner may: objects a DBA made as a superuser in
    the application's database (a reporting schema and table, a helper function) are named first, not found by
    pg_restore after the safety backup. Those gone since the backup are no obstacle: they are made again."""
    data = owned_by_shop_owner
    with data.connect() as conn:
        conn.execute(sql.SQL("CREATE SCHEMA reports"))
        conn.execute(sql.SQL('CREATE TABLE reports."daily totals" (day date PRIMARY KEY, total bigint)'))
        conn.execute(sql.SQL("CREATE FUNCTION public.shop_helper(n integer, label text) RETURNS text "
                             "LANGUAGE sql AS 'SELECT label || n'"))
    made = call(phoenix_backup.main, data, dest=str(tmp_path), format="custom")
    before = table_fingerprints(data)
    as_owner = {"db_url": make_conninfo(data.url, user="shop_owner"), "stage": "BETA", "dest": str(tmp_path)}
    refused = run_module(phoenix_restore.main, as_owner, check=check)
    assert refused["failed"] is True and "Traceback" not in refused["_raw"]
    assert refused["msg"] == (
        "restoring backup %s over database %s drops and creates again function public.shop_helper(integer, text) "
        "(of postgres), schema reports (of postgres), table reports.daily totals (of postgres), and role "
        "shop_owner may not: only their owner or a superuser drops them; restore as postgres (or a member of it) or "
        "a superuser, or give them to shop_owner (ALTER ... OWNER TO)" % (made["backup"]["id"], data.name))
    assert table_fingerprints(data) == before
    listed = run_module(phoenix_backup_info.main, {"dest": str(tmp_path), "stage": "BETA"})
    assert [backup["kind"] for backup in listed["backups"]] == ["manual"]  # no safety backup

    with data.connect() as conn:  # the DBA's objects gone since the backup: the owner makes them again
        conn.execute(sql.SQL("DROP SCHEMA reports CASCADE"))
        conn.execute(sql.SQL("DROP FUNCTION public.shop_helper"))
    restored = run_module(phoenix_restore.main, dict(as_owner, safety_backup=False), check=check)
    assert restored.get("changed") is True and "failed" not in restored, restored.get("msg")
    if not check:
        assert data.query("SELECT public.shop_helper(7, 'order ')") == [("order 7",)]
        assert data.query("SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'reports'") == [
            ("shop_owner",)]


def test_an_owners_in_place_restore_names_a_dbas_operators_collations_text_search_and_statistics_first(
        owned_by_shop_owner, tmp_path):
    """Not only tables, functions and types: --clean drops every object of the dump first. A DBA's operator, its
    operator class and family, a collation, a text search dictionary and configuration, a conversion and extended
    statistics, made as a superuser in the application's schema, are named before anything is written; pg_restore
    met the first of them after the safety backup."""
    data = owned_by_shop_owner
    with data.connect() as conn:
        for statement in (
                "CREATE OPERATOR public.=~= (LEFTARG = text, RIGHTARG = text, FUNCTION = pg_catalog.texteq)",
                "CREATE OPERATOR CLASS public.sku_hash FOR TYPE text USING hash AS OPERATOR 1 =",
                'CREATE COLLATION public."sku order" FROM "C"',
                "CREATE TEXT SEARCH DICTIONARY public.sku_words (TEMPLATE = simple)",
                "CREATE TEXT SEARCH CONFIGURATION public.sku_search (COPY = simple)",
                "CREATE CONVERSION public.sku_latin1 FOR 'LATIN1' TO 'UTF8' FROM iso8859_1_to_utf8",
                'CREATE STATISTICS public.user_world_email ON world_id, email FROM public."User"'):
            conn.execute(sql.SQL(statement))
    made = call(phoenix_backup.main, data, dest=str(tmp_path), format="custom")
    before = table_fingerprints(data)
    as_owner = {"db_url": make_conninfo(data.url, user="shop_owner"), "stage": "BETA", "dest": str(tmp_path)}
    refused = run_module(phoenix_restore.main, as_owner)
    assert refused["failed"] is True and "Traceback" not in refused["_raw"]
    assert refused["msg"] == (
        "restoring backup %s over database %s drops and creates again collation public.sku order (of postgres), "
        "conversion public.sku_latin1 (of postgres), operator class public.sku_hash (of postgres), operator family "
        "public.sku_hash (of postgres), operator public.=~= (of postgres), statistics public.user_world_email (of "
        "postgres), text search configuration public.sku_search (of postgres), text search dictionary "
        "public.sku_words (of postgres), and role shop_owner may not: only their owner or a superuser drops them; restore "
        "as postgres (or a member of it) or a superuser, or give them to shop_owner (ALTER ... OWNER TO)"
        % (made["backup"]["id"], data.name))
    assert table_fingerprints(data) == before
    listed = run_module(phoenix_backup_info.main, {"dest": str(tmp_path), "stage": "BETA"})
    assert [backup["kind"] for backup in listed["backups"]] == ["manual"]  # no safety backup
    as_superuser = run_module(phoenix_restore.main, dict(as_owner, db_url=data.url, safety_backup=False))
    assert "failed" not in as_superuser, as_superuser.get("msg")
    assert data.query("SELECT 'ab-1' OPERATOR(public.=~=) 'ab-1'") == [(True,)]


@pytest.mark.parametrize("check", [True, False], ids=["check", "run"])
@pytest.mark.parametrize("module, mode", [(phoenix_restore, "in_place"), (phoenix_restore, "swap"),
                                          (phoenix_restore_drill, None)], ids=["in_place", "swap", "drill"])
def test_a_plain_dump_whose_objects_another_role_owns_is_refused_to_a_role_that_may_not_give_them_back(
        owned_by_shop_owner, tmp_path, module, mode, check):
    """A plain dump's script gives each object to its owner (ALTER ... OWNER TO); psql stopped at the first that the
    restoring role may not give, after a safety backup or in a new database's load."""
    data = owned_by_shop_owner
    with data.connect() as conn:
        conn.execute(sql.SQL('CREATE SCHEMA reports CREATE TABLE "daily totals" (day date PRIMARY KEY, total bigint)'))
    made = call(phoenix_backup.main, data, dest=str(tmp_path), format="plain")
    before = table_fingerprints(data)
    options = dict({"db_url": make_conninfo(data.url, user="shop_owner"), "stage": "BETA", "dest": str(tmp_path)},
                   **({"mode": mode} if mode else {}))
    refused = run_module(module.main, options, check=check)
    assert refused["failed"] is True and "Traceback" not in refused["_raw"]
    purpose = refusal_purpose(made, mode, data)
    assert refused["msg"] == (
        "%s runs a plain dump, which gives its objects to role(s) postgres itself, and role shop_owner may not: it "
        "is not a superuser, and may not act as postgres (SET ROLE); run it as a superuser or as a role that may act "
        "as them, or take backups in format custom or directory, whose objects a restore gives to the restoring "
        "role when it must" % purpose)
    assert table_fingerprints(data) == before and not databases_like(data, "_")
    listed = run_module(phoenix_backup_info.main, {"dest": str(tmp_path), "stage": "BETA"})
    assert [backup["kind"] for backup in listed["backups"]] == ["manual"]  # no safety backup
    as_superuser = run_module(module.main, dict(options, db_url=data.url, safety_backup=False) if mode else
                              dict(options, db_url=data.url), check=check)
    assert "failed" not in as_superuser, as_superuser.get("msg")


def owners_of(database) -> list[tuple[str, str]]:
    """Every relation of the database's own schemas (not an extension's) and its owner."""
    return database.query(
        "SELECT c.oid::regclass::text, pg_get_userbyid(c.relowner) FROM pg_class c "
        "WHERE c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace, "
        "'pg_toast'::regnamespace) AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass "
        "AND d.objid = c.oid AND d.deptype = 'e') ORDER BY 1")


@pytest.mark.parametrize("fmt, mode", [("custom", "in_place"), ("directory", "in_place"), ("plain", "in_place"),
                                       ("directory", "swap")])
def test_a_superusers_restore_gives_the_objects_back_to_their_owners(dba_extensions, tmp_path, fmt, mode):
    """The application's owner role keeps its tables: to migrate them, and to read them without grants."""
    data = dba_extensions
    owners = owners_of(data)
    assert {owner for name, owner in owners} == {"shop_owner"}
    call(phoenix_backup.main, data, dest=str(tmp_path), format=fmt)
    restored = call(phoenix_restore.main, data, dest=str(tmp_path), mode=mode, safety_backup=False)
    assert restored.get("changed") is True and not restored.get("warnings"), restored.get("msg")
    assert owners_of(data) == owners


@pytest.fixture
def deployer(owned_by_shop_owner):
    """A role that deploys for the application: a member of its owner role, not a superuser."""
    database = owned_by_shop_owner
    with database.connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE deployer LOGIN IN ROLE shop_owner"))
    yield make_conninfo(database.url, user="deployer")
    with database.connect() as conn:
        conn.execute(sql.SQL("DROP OWNED BY deployer"))
        conn.execute(sql.SQL("DROP ROLE deployer"))


@pytest.mark.parametrize("fmt", ["custom", "directory"])
def test_a_member_of_the_owner_role_restores_and_the_owner_keeps_its_objects(owned_by_shop_owner, deployer, tmp_path,
                                                                             fmt):
    data = owned_by_shop_owner
    owners = owners_of(data)
    call(phoenix_backup.main, data, dest=str(tmp_path), format=fmt)
    restored = run_module(phoenix_restore.main, {"db_url": deployer, "stage": "BETA", "dest": str(tmp_path),
                                                 "safety_backup": False})
    assert restored.get("changed") is True and not restored.get("warnings"), restored.get("msg")
    assert owners_of(data) == owners


def test_a_member_without_the_set_option_owns_what_it_restores_with_a_warning(owned_by_shop_owner, tmp_path):
    """PostgreSQL 16 on: a member of the owner role granted WITH SET FALSE has its privileges (it may drop and create
    the objects) but may not act as it, so it cannot give the objects back. (Before 16 every member may SET ROLE,
    and the option does not exist.)"""
    data = owned_by_shop_owner
    if int(data.query("SHOW server_version_num")[0][0]) < 160000:
        with pytest.raises(psycopg.errors.SyntaxError):
            data.query("GRANT shop_owner TO postgres WITH SET FALSE")
        return
    call(phoenix_backup.main, data, dest=str(tmp_path))
    with data.connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE deployer LOGIN"))
        conn.execute(sql.SQL("GRANT shop_owner TO deployer WITH SET FALSE"))
    try:
        restored = run_module(phoenix_restore.main, {"db_url": make_conninfo(data.url, user="deployer"),
                                                     "stage": "BETA", "dest": str(tmp_path), "safety_backup": False})
        assert restored.get("changed") is True, restored.get("msg")
        assert [w["event"]["msg"] for w in restored["warnings"]] == [
            "the restored objects of role(s) shop_owner are owned by deployer, the role that restored them: it is not "
            "a superuser, and may not act as shop_owner (SET ROLE)"]
        kept = [(name, owner) for name, owner in owners_of(data) if name.startswith(restore_module.KEPT_TABLES)]
        assert {owner for name, owner in kept} == {"shop_owner"}  # the history an in_place restore keeps
        assert {owner for name, owner in owners_of(data) if (name, owner) not in kept} == {"deployer"}
    finally:
        with data.connect() as conn:
            conn.execute(sql.SQL("REASSIGN OWNED BY deployer TO shop_owner"))
            conn.execute(sql.SQL("DROP OWNED BY deployer"))
            conn.execute(sql.SQL("DROP ROLE deployer"))


def test_objects_of_a_role_that_is_gone_belong_to_the_restorer_with_a_warning(swappable, tmp_path):
    """A backup restored after its owner role was dropped, or on a server without it (another environment's)."""
    data = swappable
    with data.connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE reports_owner"))
        conn.execute(sql.SQL("CREATE TABLE public.reports (n int)"))
        conn.execute(sql.SQL("ALTER TABLE public.reports OWNER TO reports_owner"))
    call(phoenix_backup.main, data, dest=str(tmp_path))
    with data.connect() as conn:
        conn.execute(sql.SQL("DROP TABLE public.reports"))
        conn.execute(sql.SQL("DROP ROLE reports_owner"))
    restored = call(phoenix_restore.main, data, dest=str(tmp_path), safety_backup=False)
    assert restored.get("changed") is True, restored.get("msg")
    assert [w["event"]["msg"] for w in restored["warnings"]] == [
        "the restored objects of role(s) reports_owner are owned by postgres, the role that restored them: role(s) "
        "reports_owner do not exist on this server"]
    assert data.query("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'public.reports'::regclass") == [
        ("postgres",)]


@pytest.mark.parametrize("fmt", ["custom", "plain"])
@pytest.mark.parametrize("check", [True, False], ids=["check", "run"])
@pytest.mark.parametrize("module, purpose, remedy", [
    (phoenix_restore, "mode=swap", "restore as a superuser, or use mode=in_place"),
    (phoenix_restore_drill, "a drill", "run the drill as a superuser"),
], ids=["swap", "drill"])
def test_an_extension_only_a_superuser_may_create_is_named_before_anything_is_written(
        dba_extensions, tmp_path, check, module, purpose, remedy, fmt):
    data = dba_extensions
    call(phoenix_backup.main, data, dest=str(tmp_path), format=fmt)
    before = table_fingerprints(data)
    options = {"mode": "swap"} if module is phoenix_restore else {}
    refused = run_module(module.main, dict({"db_url": make_conninfo(data.url, user="shop_owner"), "stage": "BETA",
                                            "dest": str(tmp_path)}, **options), check=check)
    assert refused["failed"] is True and "Traceback" not in refused["_raw"]
    assert refused["msg"] == ("%s creates the dump's extensions in a new database, and role shop_owner may not "
                              "create pg_buffercache: only a superuser creates an extension that is not trusted; "
                              "%s" % (purpose, remedy))
    assert table_fingerprints(data) == before and not databases_like(data, "_")
    assert data.query("SELECT count(*) FROM pg_database WHERE datname = %s",
                      (scratch_name(SCRATCH_PREFIX, data.name),)) == [(0,)]


def test_an_extension_the_server_lacks_is_named(pg_cluster):
    """A dump from a server with an extension this one was not built with (a backup of another environment)."""
    with psycopg.connect(**pg_cluster.conninfo(), autocommit=True) as admin:
        with pytest.raises(PhoenixError) as refused:
            require_creatable(admin, ["pgcrypto", "no_such_extension"], "mode=swap", "restore as a superuser")
    assert refused.value.msg == ("mode=swap creates the dump's extensions in a new database, and this server has no "
                                 "no_such_extension installed; install it on the server")


def test_an_owner_swaps_in_a_database_with_the_trusted_extensions_it_creates(dba_extensions, tmp_path):
    data = dba_extensions
    with data.connect() as conn:
        conn.execute(sql.SQL("DROP EXTENSION pg_buffercache"))
    call(phoenix_backup.main, data, dest=str(tmp_path), format="directory")
    tokens = data.query("SELECT id, n FROM public.tokens ORDER BY n")
    restored = swap_as_shop_owner(data, tmp_path, jobs=2)
    assert restored.get("changed") is True, restored.get("msg")
    assert data.query("SELECT id, n FROM public.tokens ORDER BY n") == tokens
    assert ("pgcrypto", "shop_owner") in extensions_of(data)  # created anew, by the role that restored
    drilled = run_module(phoenix_restore_drill.main, {"db_url": make_conninfo(data.url, user="shop_owner"),
                                                      "stage": "BETA", "dest": str(tmp_path)})
    assert drilled.get("passed") is True, drilled.get("msg")


@pytest.mark.usefixtures("shop_roles")
def test_a_connection_limit_below_the_restores_connections_holds_only_after_the_swap(swappable, tmp_path):
    """A limit binds a role that is not a superuser; pg_restore -j and the pieces of a big table take more sessions
    than it allows, in a database nobody else uses until the swap."""
    data = swappable
    with data.connect() as conn:  # a table big enough to come in pieces
        conn.execute(sql.SQL("CREATE TABLE filler AS SELECT g AS id, md5(g::text) || md5((-g)::text) AS t "
                             "FROM generate_series(1, 300000) g"))
    call(phoenix_backup.main, data, dest=str(tmp_path), format="directory")
    before = app_fingerprints(data)
    hand_to_shop_owner(data)
    with data.connect() as conn:
        conn.execute(sql.SQL("ALTER DATABASE {} CONNECTION LIMIT 1").format(sql.Identifier(data.name)))
    call(phoenix_world.main, data, id="KEEP_ME", state="absent")
    restored = swap_as_shop_owner(data, tmp_path, jobs=3)
    assert restored.get("changed") is True, restored.get("msg")
    assert app_fingerprints(data) == before
    assert data.query("SELECT datconnlimit FROM pg_database WHERE datname = %s", (data.name,)) == [(1,)]


def test_a_database_that_merely_has_a_kept_name_is_left_by_the_swaps_with_a_warning(swappable, tmp_path):
    """A DBA's own copy named as a swap names the database it keeps (or a copy kept by a release that did not mark
    them): no swap drops it, and each says so, in check mode too."""
    data = swappable
    call(phoenix_backup.main, data, dest=str(tmp_path))
    theirs = create_databases(data.cluster, [kept_name(data.name, "20261201120000")])[0]
    with theirs.connect() as conn:
        conn.execute(sql.SQL("CREATE TABLE archive AS SELECT 'kept' AS note"))
    warning = ("database %s has the name of a database kept by a swap, but no comment starting with '%s', so no "
               "swap drops it; drop it by hand if it is a copy kept by an older release" % (theirs.name, KEPT_COMMENT))
    planned = call(phoenix_restore.main, data, check=True, dest=str(tmp_path), mode="swap")
    assert planned["dropped_kept"] == [] and warning in [w["event"]["msg"] for w in planned["warnings"]], planned
    first = call(phoenix_restore.main, data, dest=str(tmp_path), mode="swap")
    second = call(phoenix_restore.main, data, dest=str(tmp_path), mode="swap")
    assert first["changed"] is True and second["changed"] is True, (first.get("msg"), second.get("msg"))
    assert second["dropped_kept"] == [first["kept_database"]]  # a kept database the swap made goes
    for swapped in (first, second):
        assert warning in [w["event"]["msg"] for w in swapped["warnings"]], swapped
    assert theirs.query("SELECT note FROM archive") == [("kept",)]
    assert databases_like(data, KEPT_MARK) == sorted([theirs.name, second["kept_database"]])


@pytest.mark.usefixtures("shop_roles")
def test_a_kept_database_the_role_may_not_drop_is_left_with_a_warning_after_the_swap(swappable, tmp_path):
    """The swap is done by then: a kept database of another owner does not make it a failure."""
    data = swappable
    before = app_fingerprints(data)
    call(phoenix_backup.main, data, dest=str(tmp_path))
    first = call(phoenix_restore.main, data, dest=str(tmp_path), mode="swap")  # kept as postgres's
    assert first["changed"] is True, first.get("msg")
    hand_to_shop_owner(data)
    call(phoenix_world.main, data, id="KEEP_ME", state="absent")
    planned = swap_as_shop_owner(data, tmp_path, check=True)
    assert planned["dropped_kept"] == [] and databases_like(data, KEPT_MARK) == [first["kept_database"]]
    assert [w["event"]["msg"] for w in planned["warnings"]][1:] == [
        OWNED_BY_THE_RESTORER,
        "database %s, kept by an earlier swap, would be left: role shop_owner may not drop it (postgres owns it); "
        "drop it as postgres or a superuser" % first["kept_database"]]
    second = swap_as_shop_owner(data, tmp_path)
    assert second.get("changed") is True and "failed" not in second, second["_raw"]
    assert second["dropped_kept"] == [] and app_fingerprints(data) == before
    assert [w["event"]["msg"] for w in second["warnings"]][1:] == [  # after the room check's, as in check mode
        OWNED_BY_THE_RESTORER,
        "the restore is done, but database %s, kept by an earlier swap, could not be dropped (must be owner of "
        "database %s); drop it by hand to free its space" % (first["kept_database"], first["kept_database"])]
    assert databases_like(data, KEPT_MARK) == sorted([first["kept_database"], second["kept_database"]])


@pytest.fixture(params=["shop_owner", "acting"])
def shop_owner_login(request, shop_roles, pg_cluster) -> Iterator[str]:
    """The login with which a run acts as shop_owner: shop_owner itself, or a person's role that acts as it
    (``ALTER ROLE ... SET role = shop_owner``), whose messages name shop_owner, the role whose privileges count."""
    if request.param == "shop_owner":
        yield "shop_owner"
        return
    with psycopg.connect(**pg_cluster.conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE shop_person LOGIN IN ROLE shop_owner"))
        conn.execute(sql.SQL("ALTER ROLE shop_person SET role = 'shop_owner'"))
    yield "shop_person"
    with psycopg.connect(**pg_cluster.conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE shop_person"))


@pytest.mark.usefixtures("shop_roles")  # set up before the database that shop_owner will own, removed after it
@pytest.mark.parametrize("check", [True, False], ids=["check", "run"])
@pytest.mark.parametrize("module, leftover_of", [(phoenix_restore, new_name),
                                                 (phoenix_restore_drill, lambda name: scratch_name(SCRATCH_PREFIX, name))],
                         ids=["swap", "drill"])
def test_a_leftover_the_role_may_not_drop_is_named_before_anything_is_written(swappable, tmp_path, check, module,
                                                                              leftover_of, shop_owner_login):
    """A killed run of another role (a superuser's) left its scratch database: this role says so, and whose it is."""
    data = swappable
    call(phoenix_backup.main, data, dest=str(tmp_path))
    leftover = leftover_of(data.name)
    hand_to_shop_owner(data)
    with data.connect() as conn:
        create_scratch(conn, leftover, sql.SQL(""), "a run killed in a test")
    as_owner = psycopg.conninfo.make_conninfo(data.url, user=shop_owner_login)
    refused = run_module(module.main, {"db_url": as_owner, "stage": "BETA", "dest": str(tmp_path), "mode": "swap"}
                         if module is phoenix_restore else {"db_url": as_owner, "stage": "BETA",
                                                            "dest": str(tmp_path)}, check=check)
    assert refused["failed"] is True and "Traceback" not in refused["_raw"]
    assert refused["msg"] == ("database %s, left by a run that was killed, is in the way, and role shop_owner may not "
                              "drop it: postgres owns it; drop it as postgres or a superuser" % leftover)
    assert data.query("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (leftover,)) == [
        ("postgres",)]
    drop_databases(data.cluster, [leftover])


@pytest.mark.parametrize("check", [True, False], ids=["check", "run"])
@pytest.mark.parametrize("module, name_of", [(phoenix_restore, new_name),
                                             (phoenix_restore_drill, lambda name: scratch_name(SCRATCH_PREFIX, name))],
                         ids=["swap", "drill"])
@pytest.mark.parametrize("comment", [None, "the shop's archive, phoenix.platform scratch database"],
                         ids=["uncommented", "commented"])
def test_a_database_that_merely_has_the_scratch_name_is_never_dropped(swappable, tmp_path, check, module,
                                                                      name_of, comment):
    """Someone's own database whose name is the one a restore would give its scratch database (or one left by a
    release that did not mark them): a run refuses, names it, and leaves it and the environment as they were."""
    data = swappable
    call(phoenix_backup.main, data, dest=str(tmp_path))
    before = table_fingerprints(data)
    theirs = create_databases(data.cluster, [name_of(data.name)])[0]
    try:
        with theirs.connect() as conn:
            conn.execute(sql.SQL("CREATE TABLE archive AS SELECT 'kept' AS note"))
            conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(theirs.name), comment))
        options = {"mode": "swap"} if module is phoenix_restore else {}
        refused = call(module.main, data, check=check, dest=str(tmp_path), **options)
        assert refused["failed"] is True and "Traceback" not in refused["_raw"]
        assert refused["msg"] == (
            "database %s is in the way, and no Phoenix restore made it (its comment does not start with '%s', and it "
            "holds objects or could not be reached to tell), so it is not dropped; rename it, or drop it yourself if it "
            "is a leftover of an older release" % (theirs.name, SCRATCH_MARK))
        assert theirs.query("SELECT note FROM archive") == [("kept",)]
        assert table_fingerprints(data) == before and databases_like(data, KEPT_MARK) == []
    finally:
        drop_databases(data.cluster, [theirs.name])


@pytest.mark.parametrize("module, name_of", [(phoenix_restore, new_name),
                                             (phoenix_restore_drill, lambda name: scratch_name(SCRATCH_PREFIX, name))],
                         ids=["swap", "drill"])
def test_an_empty_leftover_without_the_mark_is_dropped(swappable, tmp_path, module, name_of):
    """A run killed while the server created its scratch database (CREATE DATABASE goes on without the client)
    leaves it before it got its mark, and empty: the next run drops it."""
    data = swappable
    call(phoenix_backup.main, data, dest=str(tmp_path))
    before = app_fingerprints(data)
    left = create_databases(data.cluster, [name_of(data.name)])[0]
    options = {"mode": "swap"} if module is phoenix_restore else {}
    again = call(module.main, data, dest=str(tmp_path), **options)
    assert again["leftover_removed"] is True and "failed" not in again, again.get("msg")
    assert data.query("SELECT count(*) FROM pg_database WHERE datname = %s", (left.name,)) == [(0,)]
    assert app_fingerprints(data) == before


def test_an_unmarked_leftover_that_cannot_be_reached_is_left(swappable, tmp_path, hba_rejects):
    """Empty or not cannot be told of a database the server will not let this role reach: it is left."""
    data = swappable
    call(phoenix_backup.main, data, dest=str(tmp_path))
    left = create_databases(data.cluster, [new_name(data.name)])[0]
    hba_rejects(left.name)
    refused = call(phoenix_restore.main, data, dest=str(tmp_path), mode="swap")
    assert refused["failed"] is True and "could not be reached to tell" in refused["msg"], refused
    assert data.query("SELECT count(*) FROM pg_database WHERE datname = %s", (left.name,)) == [(1,)]


def one_more_row(manifest: dict) -> str:
    manifest["row_counts"]["Artifact"] += 1
    return "Artifact: 6 row(s) restored, the manifest says 7"


def a_newer_schema(manifest: dict) -> str:
    restored = manifest["schema_version"]
    manifest["schema_version"] += 1
    return "schema version %d restored, the manifest says %d" % (restored, restored + 1)


@pytest.mark.parametrize("tamper", [one_more_row, a_newer_schema])
def test_a_restore_that_does_not_match_its_manifest_leaves_the_database_as_it_was(swappable, tmp_path, tamper):
    data = swappable
    made = call(phoenix_backup.main, data, dest=str(tmp_path))
    manifest_path = tmp_path / "BETA" / made["backup"]["id"] / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    expected_problem = tamper(manifest)
    manifest_path.write_text(json.dumps(manifest))
    before = table_fingerprints(data)
    refused = call(phoenix_restore.main, data, dest=str(tmp_path), mode="swap")
    assert refused["failed"] is True
    assert expected_problem in refused["msg"] and "left as it was" in refused["msg"], refused["msg"]
    assert table_fingerprints(data) == before
    assert not databases_like(data, "_")  # the half-checked new database is gone


def test_a_fence_registered_anew_while_the_restore_ran_stops_the_swap(swappable, tmp_path):
    data = swappable
    made = call(phoenix_backup.main, data, dest=str(tmp_path))
    backup = store.find_backup(tmp_path, "BETA", made["backup"]["id"])
    major = int(data.query("SHOW server_version_num")[0][0]) // 10000

    def restore_while_the_old_database_is_registered_anew(target: str) -> None:
        restore_dump(major, target, backup, encryption.DumpFiles(backup), keep_history=False)
        with data.connect() as conn:
            conn.execute(sql.SQL("UPDATE phoenix.environment SET stage = 'LOCAL'"))

    finished = []
    with pytest.raises(PhoenixError, match="stage fence carried over to the restored database says LOCAL, this run "
                                           "declares BETA; the environment's database was left as it was"):
        with swap_session(data.url, lock_timeout=5) as admin:
            swap_restore(admin, data.url, "BETA", 5, backup, restore_while_the_old_database_is_registered_anew,
                         finished.append)
    assert finished == [] and not databases_like(data, "_")  # nothing recorded, nothing swapped or left
    assert data.query("SELECT stage FROM phoenix.environment") == [("LOCAL",)]


@pytest.mark.parametrize("check", [True, False], ids=["check_mode", "run"])
def test_a_swap_behind_a_table_a_migration_holds_in_the_old_database_fails_after_lock_timeout(
        swappable, tmp_path, check):
    """The old database's rows are counted (for row_changes) and its history read: a table held so that no one may
    read it made the swap wait without end, its new database finished and waiting too."""
    data = swappable
    made = call(phoenix_backup.main, data, dest=str(tmp_path))
    before = app_fingerprints(data)
    restore = {"dest": str(tmp_path), "backup": made["backup"]["id"], "mode": "swap"}
    with table_held(data, "ACCESS EXCLUSIVE", released_after=20) as table:
        result = call(phoenix_restore.main, data, check=check, lock_timeout=2, **restore)
        assert data.query("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'nightly migration'") == [(1,)]
    assert result.get("failed") is True, result
    assert re.match(r"the run waited lock_timeout=2 s for a lock on a table in \S+/%s and gave up; its transaction "
                    r"was rolled back, so nothing was written\. Held now by: %s by session \d+ of \w+ \(nightly "
                    r"migration\)" % (data.name, re.escape(table)), result["msg"]), result["msg"]
    assert not databases_like(data, "_")  # nothing swapped, no new database left
    assert app_fingerprints(data) == before
    again = call(phoenix_restore.main, data, check=check, **restore)  # once the migration is done
    assert again.get("failed") is not True, again.get("msg")
    assert bool(databases_like(data, KEPT_MARK)) is not check


def test_a_second_swap_of_the_same_database_waits_for_the_first(swappable, tmp_path, monkeypatch):
    """A job started twice: the second swap must not take the first one's new database for a leftover (dropping
    it, or having the first swap in the database the second is still restoring)."""
    data = swappable
    call(phoenix_backup.main, data, dest=str(tmp_path))
    backed_up = app_fingerprints(data)
    call(phoenix_world.main, data, id="KEEP_ME", state="absent")
    args = {"db_url": data.url, "stage": "BETA", "dest": str(tmp_path), "mode": "swap"}
    seen = {}
    checked = swap_module.restored_problems

    def other_swaps_start(*args_, **kwargs):  # the first swap has restored its new database, and not swapped it in
        impatient = module_process("phoenix_restore", dict(args, lock_timeout=1), stdout=subprocess.PIPE)
        seen["impatient"] = json.loads(impatient.communicate()[0])
        seen["new database after it"] = databases_like(data, "_phoenix_restore")
        seen["patient"] = module_process("phoenix_restore", args, stdout=subprocess.PIPE)
        waiting_for_an_advisory_lock(data)
        return checked(*args_, **kwargs)
    monkeypatch.setattr(swap_module, "restored_problems", other_swaps_start)
    first = call(phoenix_restore.main, data, dest=str(tmp_path), mode="swap")
    second = json.loads(seen["patient"].communicate()[0])

    assert seen["impatient"]["failed"] is True
    assert seen["impatient"]["msg"] == ("another Phoenix run holds the 'swap:%s' lock and did not finish within 1s; "
                                        "wait for it or raise lock_timeout" % data.name)
    assert seen["new database after it"] == [new_name(data.name)]  # the first swap's, untouched
    assert first["changed"] is True and first["leftover_removed"] is False, first.get("msg")
    assert second["changed"] is True and second["leftover_removed"] is False, second.get("msg")
    assert second["dropped_kept"] == [first["kept_database"]] and second["kept_database"] != first["kept_database"]
    assert app_fingerprints(data) == backed_up
    assert databases_like(data, "_phoenix_restore") == []


@pytest.mark.parametrize("options, message", [
    ({"mode": "swapp"}, "mode"),
    ({"mode": "swap", "jobs": 0}, "jobs must be from 1 to 128, got 0"),
])
def test_a_typo_is_one_clear_message(swappable, tmp_path, options, message):
    result = call(phoenix_restore.main, swappable, dest=str(tmp_path), **options)
    assert result["failed"] is True and message in result["msg"] and "Traceback" not in result["_raw"]


@pytest.mark.slow
@pytest.mark.parametrize("fmt, rows", [
    ("custom", 400000),
    ("directory", 600000),  # its data file above SPLIT_BYTES: the rows come over several connections
])
def test_swap_killed_at_any_point_leaves_the_old_or_the_new_database(swappable, tmp_path, fmt, rows):
    data = swappable
    with data.connect() as conn:  # enough rows that the restore takes a moment
        conn.execute(sql.SQL("CREATE TABLE filler AS SELECT g AS id, md5(g::text) || md5((-g)::text) AS t "
                             "FROM generate_series(1, %s) g"), [rows])
        conn.execute(sql.SQL("ALTER TABLE filler ADD PRIMARY KEY (id)"))
    made = call(phoenix_backup.main, data, dest=str(tmp_path), format=fmt)
    if fmt == "directory":
        sizes = [f["size"] for f in json.loads((tmp_path / "BETA" / made["backup"]["id"] / "manifest.json")
                                               .read_text())["files"]]
        assert max(sizes) >= restore_module.SPLIT_BYTES, sizes
    backed_up = app_fingerprints(data)
    call(phoenix_world.main, data, id="KEEP_ME", state="absent")
    changed = app_fingerprints(data)
    args = {"db_url": data.url, "stage": "BETA", "dest": str(tmp_path), "mode": "swap", "jobs": 2}
    started = time.monotonic()
    full = module_process("phoenix_restore", args, stdout=subprocess.DEVNULL)
    assert full.wait() == 0 and app_fingerprints(data) == backed_up
    whole = time.monotonic() - started
    states = {"old": changed, "new": backed_up}
    seen = []
    for fraction in (0.3, 0.6, 0.85):
        call(phoenix_world.main, data, id="KEEP_ME", state="absent")  # back to the state a restore changes
        assert app_fingerprints(data) == changed
        process = module_process("phoenix_restore", args, start_new_session=True, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + whole * fraction
        while time.monotonic() < deadline and process.poll() is None:
            # The first kill comes by the time its share of the rows is in, at the latest: before the swap, however
            # much faster than the measured run this one goes (a busy machine's first run can take three times as long).
            if fraction == 0.3 and copied_rows(data, new_name(data.name)) >= rows * fraction:
                break
            time.sleep(0.01)
        if process.poll() is None:  # else it ended before its time: nothing left to kill
            os.killpg(process.pid, signal.SIGKILL)  # the module and every pg_restore job
        process.wait()
        now = app_fingerprints(data)
        state = next((name for name, fingerprints in states.items() if fingerprints == now), None)
        assert state is not None, "killed at %d %%: the database is neither the old nor the new one" % (fraction * 100)
        seen.append(state)
        left_behind = databases_like(data, "_phoenix_restore")
        assert left_behind in ([], [new_name(data.name)])
        again = call(phoenix_restore.main, data, dest=str(tmp_path), mode="swap", jobs=2)
        assert again["changed"] is True, again.get("msg")
        assert again["leftover_removed"] is bool(left_behind)
        assert app_fingerprints(data) == backed_up
        assert not databases_like(data, "_phoenix_restore")
    assert "old" in seen, seen  # at least one kill landed before the swap


def copied_rows(database, name: str) -> int:
    """The rows the COPYs into database ``name`` have loaded so far."""
    return database.query("SELECT coalesce(sum(tuples_processed), 0)::bigint FROM pg_stat_progress_copy "
                          "WHERE datname = %s", (name,))[0][0]


@pytest.mark.usefixtures("shop_roles", "shop_tablespace")  # set up before the database, removed after it
def test_the_new_database_has_the_old_ones_tablespace_locale_privileges_and_settings(database, tmp_path):
    name = sql.Identifier(database.name)
    with psycopg.connect(**database.cluster.conninfo(), autocommit=True) as conn:  # as the application made it
        conn.execute(sql.SQL("DROP DATABASE {}").format(name))
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'LATIN1' LOCALE 'C' "
                             "LOCALE_PROVIDER icu ICU_LOCALE 'und' CONNECTION LIMIT 40 TABLESPACE shop_space").format(name))
        for statement in ("REVOKE ALL ON DATABASE {} FROM PUBLIC",
                          "GRANT CONNECT, TEMPORARY ON DATABASE {} TO shop_web",
                          "GRANT CREATE ON DATABASE {} TO shop_web WITH GRANT OPTION",
                          "COMMENT ON DATABASE {} IS 'the shop''s data'",
                          "ALTER DATABASE {} SET search_path = \"$user\", app, public",
                          "ALTER DATABASE {} SET statement_timeout = '5min'",
                          "ALTER DATABASE {} SET shop.region = 'eu west'",
                          "ALTER ROLE shop_web IN DATABASE {} SET work_mem = '8MB'"):
            conn.execute(sql.SQL(statement).format(name))
    migrate(database)
    call(phoenix_world.main, database, id="KEEP_ME", seed={"users": 2, "artifacts": 3, "chats": 1})
    properties = database_properties(database)
    try:
        call(phoenix_backup.main, database, dest=str(tmp_path))
        backed_up = app_fingerprints(database)
        call(phoenix_world.main, database, id="KEEP_ME", state="absent")
        restored = call(phoenix_restore.main, database, dest=str(tmp_path), mode="swap", jobs=2)
        assert restored["changed"] is True, restored.get("msg")
        assert "warnings" not in restored  # the room was checked, in the tablespace's directory
        assert database_properties(database) == properties
        assert app_fingerprints(database) == backed_up
        with psycopg.connect(database.url) as conn:  # the settings reach new sessions
            assert conn.execute(sql.SQL("SHOW search_path")).fetchone()[0] == '"$user", app, public'
    finally:
        drop_swapped(database)


@pytest.mark.usefixtures("shop_roles")
def test_settings_the_restoring_role_may_not_give_stop_the_swap_before_it_restores(swappable, tmp_path):
    data = swappable
    call(phoenix_backup.main, data, dest=str(tmp_path))
    hand_to_shop_owner(data)
    with data.connect() as conn:
        conn.execute(sql.SQL("ALTER ROLE shop_web IN DATABASE {} SET work_mem = '8MB'").format(
            sql.Identifier(data.name)))
    before = table_fingerprints(data)
    as_owner = psycopg.conninfo.make_conninfo(data.url, user="shop_owner")
    refused = run_module(phoenix_restore.main, {"db_url": as_owner, "stage": "BETA", "dest": str(tmp_path),
                                                "mode": "swap"})
    assert refused["failed"] is True and "Traceback" not in refused["_raw"]
    assert "cannot give the new database the old one's setting work_mem of role shop_web" in refused["msg"]
    assert "mode=in_place" in refused["msg"], refused["msg"]
    assert table_fingerprints(data) == before and not databases_like(data, "_")


@pytest.mark.usefixtures("shop_roles")
@pytest.mark.parametrize("check", [True, False], ids=["check", "run"])
def test_a_role_that_may_not_create_databases_is_told_before_anything_happens(swappable, tmp_path, check):
    data = swappable
    call(phoenix_backup.main, data, dest=str(tmp_path))
    with data.connect() as conn:
        conn.execute(sql.SQL("GRANT pg_read_all_data TO shop_web"))
    before = table_fingerprints(data)
    as_web = psycopg.conninfo.make_conninfo(data.url, user="shop_web")
    refused = run_module(phoenix_restore.main, {"db_url": as_web, "stage": "BETA", "dest": str(tmp_path),
                                                "mode": "swap"}, check=check)
    assert refused["failed"] is True and "Traceback" not in refused["_raw"]
    assert "role shop_web may not create one; give it the CREATEDB right" in refused["msg"], refused["msg"]
    assert "mode=in_place" in refused["msg"]
    assert table_fingerprints(data) == before and not databases_like(data, "_")


@pytest.mark.parametrize("compress, encrypted, library_installed, read_here", [
    ("gzip", False, True, True), ("zstd", False, True, True), ("gzip", True, True, True), ("zstd", True, True, True),
    ("none", False, True, True), ("lz4", False, True, True), ("lz4", True, True, True), ("zstd", False, False, False),
    ("lz4", False, False, False)])
def test_big_tables_rows_come_over_several_connections_exactly(swappable, tmp_path, monkeypatch, compress,
                                                               encrypted, library_installed, read_here):
    """The rows come from the data file, read in the module, wherever it can decompress them (zstd and lz4 with
    their Python libraries); else from pg_restore."""
    data = swappable
    with data.connect() as conn:
        conn.execute(sql.SQL(ODD_TABLES))
    identity = pyrage.x25519.Identity.generate()
    made = call(phoenix_backup.main, data, dest=str(tmp_path), format="directory", compress=compress,
                encrypt_to=[str(identity.to_public())] if encrypted else None)
    before = rows_restored(data)
    call(phoenix_world.main, data, id="KEEP_ME", state="absent")
    if not library_installed:
        monkeypatch.setitem(sys.modules, "zstandard", None)
        monkeypatch.setitem(sys.modules, "lz4.frame", None)
    # these tables are small and none holds most rows: any but the tiniest (no_key's, uncompressed too) is
    # loaded in pieces here
    in_pieces = loads_in_pieces(monkeypatch, lambda entry, size: size >= 4096 and " no_key " not in entry)
    openers, rows_read_here = [], restore_module._rows_read_here
    monkeypatch.setattr(restore_module, "_rows_read_here",
                        lambda *args: openers.append(rows_read_here(*args)) or openers[-1])
    restored = run_module(phoenix_restore.main, {"db_url": data.url, "stage": "BETA", "dest": str(tmp_path),
                                                 "mode": "swap", "jobs": 2, "backup_identity": str(identity)})
    assert restored.get("changed") is True, restored.get("msg")
    assert rows_restored(data) == before
    assert data.query("SELECT count(*) FROM pg_trigger WHERE tgname = 'ledger_refuses'") == [(1,)]  # after the rows

    def split(listed: str) -> list:  # what loading the table (as pg_restore --list names it) in pieces returned
        return [counted for entry, counted in in_pieces.items() if " TABLE DATA %s " % listed in entry]
    # the server's count of the rows its COPYs took stands for the table's count; a partition's rows are counted
    # with its partitioned table, afterwards
    assert split("public ledger") == [("ledger", 300000)], in_pieces
    assert split('Odd schema a "quoted" (name') == [('Odd schema.a "quoted" (name', 5000)]
    assert split("public readings_2025") == [None]
    assert split("public no_key") == []  # not picked: loaded by pg_restore
    assert made["backup"]["id"] in restored["restored"]["id"]
    assert len(openers) == len(in_pieces) and all((opener is not None) == read_here for opener in openers)


def test_rows_loaded_in_pieces_that_disagree_with_the_manifest_stop_the_swap(swappable, tmp_path, monkeypatch):
    data = swappable
    with data.connect() as conn:
        conn.execute(sql.SQL(ODD_TABLES))
    made = call(phoenix_backup.main, data, dest=str(tmp_path), format="directory")
    miscount(tmp_path, "BETA", made["backup"]["id"], "ledger", -1)
    loads_in_pieces(monkeypatch, the_ledger)
    before = table_fingerprints(data)
    refused = call(phoenix_restore.main, data, dest=str(tmp_path), mode="swap", jobs=2)
    assert refused["failed"] is True
    assert "ledger: 300000 row(s) restored, the manifest says 299999" in refused["msg"], refused["msg"]
    assert table_fingerprints(data) == before and not databases_like(data, "_")


def rows_restored(database) -> dict:
    """Every table's rows, less the audit log's (a swap carries the history over and records itself)."""
    return {table: rows for table, rows in table_fingerprints(database).items() if table != "phoenix.audit_log"}


def test_a_row_refused_while_loading_in_pieces_fails_the_load_and_names_it(swappable, tmp_path):
    data = swappable
    with data.connect() as conn:
        conn.execute(sql.SQL(ODD_TABLES))
    call(phoenix_backup.main, data, dest=str(tmp_path), format="directory")
    backup = store.find_backup(tmp_path, "BETA", "latest")
    major = int(data.query("SHOW server_version_num")[0][0]) // 10000
    pg_restore = find_tool("pg_restore", backup.reader_major(major))
    files = encryption.DumpFiles(backup)
    entry = next(line for line in list_dump(pg_restore, files, "database").stdout.splitlines(True)
                 if "TABLE DATA public ledger " in line)
    with data.connect() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(new_name(data.name))))
    target = type(data)(data.cluster, new_name(data.name))
    subprocess.run([str(pg_restore), "--section=pre-data", "--no-owner", "--dbname", target.name,
                    str(backup.path / "database")], env=libpq_environment(target.url), check=True,
                   capture_output=True)
    with target.connect() as conn:  # the 150 000th row is refused
        conn.execute(sql.SQL("ALTER TABLE ledger ADD CHECK (id <> 150000)"))
    with pytest.raises(PhoenixError, match=r'loading rows failed: .*violates check constraint "ledger_id_check"'):
        load_split(pg_restore, [str(backup.path / "database")], entry, target.url, 2)
    assert not running_children(), "pg_restore outlived the failed load"


def running_children() -> list[int]:
    """This process's child processes still running."""
    children = Path("/proc/%d/task/%d/children" % (os.getpid(), os.getpid())).read_text().split()
    return [int(pid) for pid in children]
