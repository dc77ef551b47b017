"""A run that meets a row or a table someone else holds waits lock_timeout at most, then fails naming who holds it,
having written nothing. Before, only the run's advisory lock was bounded: a world cleanup or a transfer behind an
application's open transaction, or a prepared transaction nobody decided, waited without end, holding its advisory
lock, so the next scheduled runs failed on that lock instead."""

from __future__ import annotations

import re
import threading
import time

import pytest
from psycopg import sql

from ansible_collections.phoenix.platform.plugins.modules import (
    phoenix_audit,
    phoenix_backup,
    phoenix_history_info,
    phoenix_restore,
    phoenix_transfer,
    phoenix_user_info,
    phoenix_world,
    phoenix_world_cleanup,
    phoenix_world_info,
)
from ansible_collections.phoenix.platform.tests.helpers import UNREACHABLE, run_module

from conftest import held_by, table_held
from test_backup_restore import app_fingerprints
from worlds_fixtures import TINY, migrate, table_fingerprints

pytestmark = pytest.mark.usefixtures("clean_env")
APPLICATION = "shop_web"
UNDECIDED = "shop:xa 7"  # a prepared transaction whose coordinator never came back
ROLLED_BACK = "its transaction was rolled back, so nothing was written"
MIGRATION = "nightly migration"


def holder_named(holder: str, application: str = APPLICATION) -> str:
    if holder == "prepared":
        return re.escape("prepared transaction '%s'" % UNDECIDED)
    return r"session \d+ of \w+ \(%s\)" % re.escape(application)


def still_held(database, holder: str) -> bool:
    """Whether the holder still holds its locks: the run returned before they were released, not after."""
    if holder == "prepared":
        return database.query("SELECT count(*) FROM pg_prepared_xacts WHERE gid = %s", (UNDECIDED,)) == [(1,)]
    return still_held_by(database, APPLICATION)


def still_held_by(database, application: str) -> bool:
    return database.query("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                          "AND state = 'idle in transaction'", (application,)) == [(1,)]


def still_held_by_migration(database) -> bool:
    return still_held_by(database, MIGRATION)


def held_by_migration(database, table: str):
    """``table`` locked so that no one may even read it, by a migration's open transaction; released after 15 s at
    the latest (a run that waits for it then ends, and fails its test)."""
    return held_by(database, sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.SQL(table)), MIGRATION,
                   released_after=15)


def failed_behind_the_migration(result, database, table: str, seconds: int = 1) -> None:
    assert result.get("failed") is True, result
    assert re.match(r"the run waited lock_timeout=%d s for a lock on a table in \S+/%s and gave up; %s" % (
        seconds, database.name, re.escape(ROLLED_BACK)), result["msg"]), result["msg"]
    assert re.search(re.escape("Held now by: %s by " % table) + holder_named("session", MIGRATION),
                     result["msg"]), result["msg"]


@pytest.fixture
def expired(database):
    """A BETA database with world UC_OLD, expired."""
    migrate(database)
    run_module(phoenix_world.main, {"db_url": database.url, "stage": "BETA", "id": "UC_OLD", "seed": TINY})
    with database.connect() as conn:
        conn.execute(sql.SQL('UPDATE "WorldMeta" SET "createdAt" = now() - interval \'100 hours\' WHERE id = %s'),
                     ["UC_OLD"])
    return database


def cleanup(database, **options):
    return run_module(phoenix_world_cleanup.main, dict({"db_url": database.url, "stage": "BETA"}, **options))


@pytest.mark.parametrize("holder", ["session", "prepared"])
def test_a_cleanup_meeting_a_row_an_application_holds_fails_after_lock_timeout_naming_who_holds_it(expired, holder):
    before = table_fingerprints(expired)
    row = sql.SQL('SELECT 1 FROM "Chat" WHERE world_id = %s FOR UPDATE' % "'UC_OLD'")
    with held_by(expired, row, APPLICATION, UNDECIDED if holder == "prepared" else None):
        result = cleanup(expired, lock_timeout=2)
        assert still_held(expired, holder)
        assert table_fingerprints(expired) == before
    assert result.get("failed") is True, result
    assert re.fullmatch(
        r'the run waited lock_timeout=2 s for a lock on a row of table "Chat" in \S+/' + expired.name + ' and gave up; '
        + re.escape(ROLLED_BACK) + r'\. Held now by: public\."Chat" by ' + holder_named(holder)
        + r"\. Run it again once that transaction ends, or raise lock_timeout", result["msg"]), result["msg"]
    assert result["sqlstate"] == "55P03"
    done = cleanup(expired)  # once the holder is gone
    assert done["removed"] == ["UC_OLD"]
    assert expired.query('SELECT count(*) FROM "Chat" WHERE world_id = %s', ("UC_OLD",)) == [(0,)]


def test_a_cleanup_meeting_a_table_a_migration_holds_names_the_table_and_the_migration(expired):
    before = table_fingerprints(expired)
    with table_held(expired, "ACCESS EXCLUSIVE") as table:
        result = cleanup(expired, lock_timeout=1)
        assert still_held_by_migration(expired)
    assert table_fingerprints(expired) == before  # read once the table is free again
    assert result.get("failed") is True, result
    assert re.match(r"the run waited lock_timeout=1 s for a lock on a table in \S+/%s and gave up" % expired.name,
                    result["msg"]), result["msg"]
    assert re.search(re.escape("Held now by: %s by " % table) + holder_named("session", "nightly migration"),
                     result["msg"]), result["msg"]
    assert cleanup(expired)["removed"] == ["UC_OLD"]


def test_a_transfer_meeting_a_target_row_an_application_holds_fails_naming_it_and_writes_nothing(pair):
    source, target = pair
    arguments = {"db_url": target.url, "stage": "BETA", "worlds": ["UC_TESTING"],
                 "source": {"db_url": source.url, "stage": "LOCAL"}}
    assert run_module(phoenix_transfer.main, arguments)["changed"] is True
    with source.connect() as conn:
        conn.execute(sql.SQL('UPDATE "User" SET name = name || %s WHERE world_id = %s'), [" (renamed)", "UC_TESTING"])
    before = table_fingerprints(target)
    row = sql.SQL('SELECT 1 FROM "User" WHERE world_id = %s FOR NO KEY UPDATE' % "'UC_TESTING'")
    with held_by(target, row, APPLICATION, UNDECIDED):
        result = run_module(phoenix_transfer.main, dict(arguments, lock_timeout=1))
        assert still_held(target, "prepared")
        assert table_fingerprints(target) == before
    assert result.get("failed") is True, result
    assert re.search(r'for a lock on a row of table "User" in \S+/%s and gave up' % target.name, result["msg"]), result["msg"]
    assert re.search(r'Held now by: public\."User" by ' + holder_named("prepared"), result["msg"]), result["msg"]
    assert ROLLED_BACK in result["msg"]
    again = run_module(phoenix_transfer.main, arguments)
    assert again["plan"]["User"]["update"] == 3
    assert target.query('SELECT count(*) FROM "User" WHERE world_id = %s AND name LIKE %s',
                        ("UC_TESTING", "% (renamed)")) == [(3,)]


def test_a_transfer_meeting_a_source_table_a_migration_holds_names_the_source_and_writes_nothing(pair):
    source, target = pair
    before = table_fingerprints(target)
    with table_held(source, "ACCESS EXCLUSIVE") as table:
        result = run_module(phoenix_transfer.main, {"db_url": target.url, "stage": "BETA", "worlds": ["UC_TESTING"],
                                                    "source": {"db_url": source.url, "stage": "LOCAL"},
                                                    "lock_timeout": 1})
        assert still_held_by_migration(source)
    assert result.get("failed") is True, result
    assert re.match(r"the run waited lock_timeout=1 s for a lock on a table in \S+/%s and gave up" % source.name,
                    result["msg"]), result["msg"]
    assert re.search(re.escape("Held now by: %s by " % table) + holder_named("session", "nightly migration"),
                     result["msg"]), result["msg"]
    assert table_fingerprints(target) == before
    assert run_module(phoenix_transfer.main, {"db_url": target.url, "stage": "BETA", "worlds": ["UC_TESTING"],
                                              "source": {"db_url": source.url, "stage": "LOCAL"}})["changed"] is True


def test_a_transfer_whose_source_fence_a_migration_holds_names_the_source_instead_of_hanging(pair):
    """The source's stage fence is read before any transaction of the transfer bounds its waits."""
    source, target = pair
    before = table_fingerprints(target)
    with held_by_migration(source, "phoenix.environment"):
        result = run_module(phoenix_transfer.main, {"db_url": target.url, "stage": "BETA", "worlds": ["UC_TESTING"],
                                                    "source": {"db_url": source.url, "stage": "LOCAL"},
                                                    "lock_timeout": 1})
        assert still_held_by_migration(source)
    failed_behind_the_migration(result, source, "phoenix.environment")
    assert table_fingerprints(target) == before


@pytest.mark.parametrize("fmt, compress", [
    ("custom", None),  # pg_restore in one transaction
    ("plain", None),  # psql in one transaction
    ("custom", "zstd"),  # pg_restore 17's script through psql, into this older server
])
def test_an_in_place_restore_behind_a_console_left_in_a_transaction_stops_after_lock_timeout_naming_it(
        data, tmp_path, fmt, compress):
    made = run_module(phoenix_backup.main, {"db_url": data.url, "stage": "BETA", "dest": str(tmp_path), "format": fmt,
                                            **({"compress": compress} if compress else {})})
    assert made["changed"] is True, made.get("msg")
    before = app_fingerprints(data)
    restore = {"db_url": data.url, "stage": "BETA", "dest": str(tmp_path), "backup": made["backup"]["id"],
               "mode": "in_place", "safety_backup": False}
    with held_by(data, sql.SQL('SELECT count(*) FROM "User"'), "psql console"):  # a read: ACCESS SHARE till its end
        result = run_module(phoenix_restore.main, dict(restore, lock_timeout=2))
        assert still_held_by(data, "psql console")
        assert app_fingerprints(data) == before  # readable: the restore's locks went with its transaction
    assert result.get("failed") is True, result
    assert re.fullmatch(
        r'the restore waited lock_timeout=2 s for table public\."User", held by ' + holder_named("session", "psql console")
        + r"; it was stopped and its transaction rolled back, so the database is as it was\. Stop the application "
        r"\(or end that session\) and run it again, or raise lock_timeout", result["msg"]), result["msg"]
    assert run_module(phoenix_restore.main, restore).get("failed") is not True  # once the console is gone
    assert app_fingerprints(data) == before


@pytest.mark.parametrize("module, options, table", [
    (phoenix_world_info, {}, 'public."WorldMeta"'),
    (phoenix_user_info, {}, 'public."User"'),
    (phoenix_history_info, {}, "phoenix.health_history"),
    (phoenix_audit, {"operation": "deploy.finished"}, "phoenix.audit_log"),
], ids=["world_info", "user_info", "history_info", "audit"])
def test_a_run_reading_a_table_a_migration_holds_fails_after_lock_timeout_naming_it_instead_of_hanging(
        expired, module, options, table):
    arguments = dict({"db_url": expired.url, "stage": "BETA"}, **options)
    audited = expired.query("SELECT count(*) FROM phoenix.audit_log")
    with held_by_migration(expired, table):
        result = run_module(module.main, dict(arguments, lock_timeout=1))
        assert still_held_by_migration(expired)  # the run gave up; the migration did not end first
    failed_behind_the_migration(result, expired, table)
    assert expired.query("SELECT count(*) FROM phoenix.audit_log") == audited
    again = run_module(module.main, arguments)  # once the migration is done
    assert again.get("failed") is not True, again.get("msg")
    if module is phoenix_world_info:
        assert [world["id"] for world in again["worlds"]] == ["UC_OLD"]


def test_the_lock_no_one_may_read_past_is_named_before_others_on_tables_named_first(expired):
    """A wait on a whole table could be on any lock: the migration's comes first, not a report's (or an autovacuum
    worker's) lock on a table whose name sorts before it."""
    report = sql.SQL("SELECT count(*) FROM phoenix.audit_log")  # ACCESS SHARE, kept to the end of its transaction
    with held_by(expired, report, "nightly report"), held_by_migration(expired, 'public."WorldMeta"'):
        result = run_module(phoenix_world_info.main, {"db_url": expired.url, "stage": "BETA", "lock_timeout": 1})
        assert still_held_by_migration(expired)
    failed_behind_the_migration(result, expired, 'public."WorldMeta"')
    assert re.search(r"phoenix\.audit_log by session \d+ of \w+ \(nightly report\)", result["msg"]), result["msg"]


@pytest.mark.parametrize("module, options", [
    (phoenix_world_info, {}), (phoenix_user_info, {}), (phoenix_history_info, {}),
    (phoenix_audit, {"operation": "deploy.finished"}),
], ids=["world_info", "user_info", "history_info", "audit"])
@pytest.mark.parametrize("bad, message", [
    ({"lock_timeout": -1}, "lock_timeout must be from 0 to 86400, got -1"),
    ({"lock_timout": 5}, "Unsupported parameters for (basic.py) module: lock_timout"),
    ({"lock_timeout": "5; DROP TABLE x"}, "argument 'lock_timeout' is of type str and we were unable to convert to int"),
], ids=["negative", "misspelt", "hostile"])
def test_a_bad_misspelt_or_hostile_lock_timeout_is_refused_before_connecting(module, options, bad, message):
    refused = run_module(module.main, dict(UNREACHABLE, **options, **bad))  # a server that is not there
    assert refused.get("failed") is True and message in refused["msg"], refused
    assert "cannot connect" not in refused["msg"] and "Traceback" not in refused["_raw"]


def test_a_stage_fence_a_migration_holds_stops_a_run_after_lock_timeout_before_anything_else(expired):
    """The fence is read before the run's advisory lock is taken, or any other lock_timeout is set."""
    before = table_fingerprints(expired)
    with held_by_migration(expired, "phoenix.environment"):
        result = cleanup(expired, lock_timeout=1)
        assert still_held_by_migration(expired)
    failed_behind_the_migration(result, expired, "phoenix.environment")
    assert table_fingerprints(expired) == before
    assert cleanup(expired)["removed"] == ["UC_OLD"]


def test_an_in_place_restores_lock_watch_whose_session_is_ended_part_way_watches_on_from_a_new_one(data, tmp_path):
    """A DBA's idle-session killer ends the watch's session while the restore waits behind a console: the watch
    connects again, and the restore is still stopped after lock_timeout, instead of waiting for the console."""
    made = run_module(phoenix_backup.main, {"db_url": data.url, "stage": "BETA", "dest": str(tmp_path)})
    before = app_fingerprints(data)
    ended = []

    def end_the_watchs_session() -> None:  # found by the statement it polls with
        deadline = time.monotonic() + 10
        with data.connect() as conn:
            while not ended and time.monotonic() < deadline:
                ended.extend(pid for pid, in conn.execute(sql.SQL(
                    "SELECT pid FROM pg_stat_activity WHERE query LIKE %s AND pid <> pg_backend_pid() "
                    "AND pg_terminate_backend(pid)"), ["%pg_blocking_pids%"]).fetchall())
                time.sleep(0.05)

    killer = threading.Thread(target=end_the_watchs_session)
    with held_by(data, sql.SQL('SELECT count(*) FROM "User"'), "psql console", released_after=20):
        killer.start()
        result = run_module(phoenix_restore.main, {"db_url": data.url, "stage": "BETA", "dest": str(tmp_path),
                                                   "backup": made["backup"]["id"], "mode": "in_place",
                                                   "safety_backup": False, "lock_timeout": 2})
        killer.join()
        assert still_held_by(data, "psql console")  # not released after 20 s: stopped by the watch
    assert len(ended) == 1, ended
    assert result.get("failed") is True and result["msg"].startswith(
        'the restore waited lock_timeout=2 s for table public."User", held by '), result
    assert app_fingerprints(data) == before
