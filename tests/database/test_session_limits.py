"""A database whose settings limit each statement's time or a session's idle time, for its application's sake
(``ALTER DATABASE ... SET statement_timeout``, ``idle_session_timeout``), does not stop Phoenix's runs: like
pg_dump's sessions, theirs lift the limits. Before, a backup failed on its own row counts, maintenance on its
VACUUM, and a restore drill as its session waited for pg_restore, where pg_dump and vacuumdb went through. The
statement limit is lifted from a session's start: the statement that lifted it, the first of a new server process,
at times took longer than a millisecond reading the catalogs, and was cancelled.

Nor do the settings with which a database shows its data to its application's users: Phoenix's sessions read
dates as ISO, whatever DateStyle the database sets. Before, every module that read a timestamp failed with
psycopg's traceback on a database set to DateStyle 'SQL, DMY'."""

from __future__ import annotations

import time

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from ansible_collections.phoenix.platform.plugins.module_utils._core.connection import conninfo_reached, open_session
from ansible_collections.phoenix.platform.plugins.modules import (
    phoenix_backup,
    phoenix_health,
    phoenix_history_info,
    phoenix_maintenance,
    phoenix_restore,
    phoenix_restore_drill,
    phoenix_seed,
    phoenix_user,
    phoenix_user_info,
    phoenix_world,
    phoenix_world_cleanup,
    phoenix_world_info,
)
from ansible_collections.phoenix.platform.tests.helpers import run_module

from conftest import dead_rows
from test_backup_restore import app_fingerprints

pytestmark = pytest.mark.usefixtures("clean_env")
LIMIT = "1ms"  # far less than a count of the table below takes, and than a new session's first statement may
IDLE_LIMIT = "100ms"  # far less than a session of a run waits for pg_restore


@pytest.fixture
def ledger(data):
    """The data database with a big table whose dead rows want a VACUUM (autovacuum kept off it: on a busy machine
    a worker may come first and leave the run nothing to do)."""
    with data.connect() as conn:
        conn.execute(sql.SQL("CREATE TABLE ledger WITH (autovacuum_enabled = off) AS SELECT g AS id, "
                             "md5(g::text) AS entry FROM generate_series(1, 300000) g"))
        conn.execute(sql.SQL("DELETE FROM ledger WHERE id % 3 = 0"))
    assert dead_rows(data, "ledger") == 100000
    return data


def limit_sessions(database, limited: bool) -> None:
    """Every new session of ``database`` limited to LIMIT a statement and IDLE_LIMIT idle (or not, as the server
    sets). Its own session starts without them: the one that lifts them would otherwise be limited too, and with
    1 ms its statement was at times cancelled."""
    with psycopg.connect(database.url, autocommit=True,
                         options="-c statement_timeout=0 -c idle_session_timeout=0") as conn:
        target = sql.Identifier(database.name)
        for setting, limit in (("statement_timeout", LIMIT), ("idle_session_timeout", IDLE_LIMIT)):
            conn.execute(sql.SQL("ALTER DATABASE {} SET {} = {}").format(target, sql.Identifier(setting),
                                                                         sql.Literal(limit)) if limited else
                         sql.SQL("ALTER DATABASE {} RESET {}").format(target, sql.Identifier(setting)))


def call(main, database, **options):
    return run_module(main, dict({"db_url": database.url, "stage": "BETA"}, **options))


def test_the_limit_stops_an_applications_session_but_no_phoenix_run(ledger, tmp_path):
    before = app_fingerprints(ledger)
    limit_sessions(ledger, True)
    with pytest.raises(psycopg.errors.QueryCanceled), ledger.connect() as application:
        application.execute(sql.SQL("SELECT count(*) FROM ledger"))
    with pytest.raises(psycopg.OperationalError, match="idle-session timeout"), ledger.connect() as application:
        time.sleep(0.5)
        application.execute(sql.SQL("SELECT 1"))
    made = call(phoenix_backup.main, ledger, dest=str(tmp_path), format="directory", jobs=2)
    assert made.get("changed") is True, made.get("msg")
    maintained = call(phoenix_maintenance.main, ledger)
    assert "ledger" in maintained.get("vacuum", []), maintained.get("msg")
    assert maintained["report"]["ledger"]["dead_rows"] == 0
    drilled = call(phoenix_restore_drill.main, ledger, dest=str(tmp_path))
    assert drilled.get("passed") is True, drilled.get("msg")
    for mode in ("swap", "in_place"):
        restored = call(phoenix_restore.main, ledger, dest=str(tmp_path), backup=made["backup"]["id"], mode=mode,
                        jobs=2, safety_backup=True)
        assert restored.get("failed") is not True, (mode, restored.get("msg"))
    limit_sessions(ledger, False)
    assert app_fingerprints(ledger) == before


def test_a_session_starts_without_the_limit_and_keeps_the_options_its_user_gave(data):
    """Its programs (pg_dump, pg_restore) connect with the same options, and start without the limit too."""
    limit_sessions(data, True)
    with open_session(data.url + "&options=-c%20search_path%3Dledgers,public") as conn:
        assert conn.execute(sql.SQL("SELECT current_setting('search_path'), current_setting('statement_timeout')")
                            ).fetchone() == ("ledgers,public", "0")
        assert conninfo_to_dict(conninfo_reached(conn))["options"] == (
            "-c search_path=ledgers,public -c statement_timeout=0 -c idle_in_transaction_session_timeout=0 "
            "-c DateStyle=ISO -c row_security=off")


# what a database may set for the people and the application that use it, each with another value than the server's
SHOWN_TO_USERS = {"DateStyle": "SQL, DMY", "IntervalStyle": "iso_8601", "TimeZone": "Asia/Kathmandu",
                  "bytea_output": "escape", "extra_float_digits": "-15", "xmloption": "document",
                  "default_transaction_isolation": "serializable", "client_encoding": "LATIN1",
                  "standard_conforming_strings": "off"}
USER_TEXT = r"Zoë Łukasiewicz 🚀 C:\new\path '%_"  # beyond LATIN1, with what a string literal escapes


def test_every_module_runs_on_a_database_that_shows_its_data_otherwise(data, tmp_path):
    with data.connect() as conn:
        for setting, value in SHOWN_TO_USERS.items():
            conn.execute(sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                sql.Identifier(data.name), sql.Identifier(setting), sql.Literal(value)))
    seed, dest = str(tmp_path / "seed"), str(tmp_path / "backups")
    runs = [
        (phoenix_world.main, {"id": "UC_SHOWN", "seed": {"users": 2, "artifacts": 2, "chats": 1},
                              "description": USER_TEXT}),
        (phoenix_world_info.main, {"detail": True}),
        (phoenix_health.main, {"record": True}),
        (phoenix_history_info.main, {}),
        (phoenix_user.main, {"email": "ops@example.com", "world": "KEEP_ME", "name": USER_TEXT}),
        (phoenix_user_info.main, {}),
        (phoenix_seed.main, {"state": "exported", "world": "UC_SHOWN", "dest": seed}),
        (phoenix_seed.main, {"state": "imported", "src": seed, "world": "UC_IMPORTED"}),
        (phoenix_backup.main, {"dest": dest, "verify": True}),
        (phoenix_restore_drill.main, {"dest": dest}),
        (phoenix_maintenance.main, {}),
        (phoenix_world_cleanup.main, {}),
    ]
    results = [call(main, data, **options) for main, options in runs]
    assert [r.get("msg") for r in results if r.get("failed") or "Traceback" in r["_raw"]] == []
    listed = {world["id"]: world for world in results[1]["worlds"]}
    assert set(listed) == {"KEEP_ME", "UC_SHOWN"} and listed["UC_SHOWN"]["expired"] is False
    assert listed["UC_SHOWN"]["createdAt"].endswith("+05:45")  # read in the application's time zone
    assert listed["UC_SHOWN"]["description"] == USER_TEXT
    assert [user["name"] for user in results[5]["users"] if user["email"] == "ops@example.com"] == [USER_TEXT]
    backed_up = app_fingerprints(data)
    assert call(phoenix_world.main, data, id="UC_SHOWN", state="absent")["changed"] is True
    restored = call(phoenix_restore.main, data, dest=dest, mode="swap", safety_backup=False)
    assert restored.get("failed") is not True, restored.get("msg")
    assert app_fingerprints(data) == backed_up
    with data.connect() as conn:  # the application's sessions still get the database's settings
        assert conn.execute(sql.SQL("SHOW DateStyle")).fetchone() == ("SQL, DMY",)
        assert conn.execute(sql.SQL("SHOW client_encoding")).fetchone() == ("LATIN1",)
    with psycopg.connect(data.url + "&client_encoding=UTF8") as conn:  # the characters came back from the backup
        assert conn.execute(sql.SQL('SELECT description FROM "WorldMeta" WHERE id = %s'), ("UC_SHOWN",)).fetchone() == (
            USER_TEXT,)
