"""A server that speaks another language than English to its clients (``lc_messages``, which Debian's
pg_createcluster takes from the environment it runs in), and a module run in such an environment (``LC_ALL``)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Iterator

import psycopg
import pytest
from psycopg import sql

from ansible_collections.phoenix.platform.plugins.module_utils._pg.local_cluster import LocalCluster
from ansible_collections.phoenix.platform.plugins.module_utils._backups.restore import SESSION_SETUP_NEWER_SINCE
from ansible_collections.phoenix.platform.plugins.module_utils._pg.binaries import (
    find_tool_and_major,
    libpq_environment,
    tool_versions,
)
from ansible_collections.phoenix.platform.plugins.modules import (
    phoenix_backup,
    phoenix_restore,
    phoenix_restore_drill,
    phoenix_world,
    phoenix_world_info,
)
from ansible_collections.phoenix.platform.tests.helpers import free_port, run_module

from conftest import SERVER_PROGRAMS, THROWAWAY_SETTINGS, Database, make_base_dir, table_held
from test_backup_roles import TENANT_DOCUMENTS
from test_request_scope import seed_over_a_copied_user
from test_row_security import WHAT_TO_DO, run_all, tenant_policy
from worlds_fixtures import migrate, table_fingerprints

GERMAN = "de_DE.UTF-8"


@pytest.fixture(scope="module")
def german_locale() -> Iterator[Path]:
    """A directory holding the German locale, compiled from the system's locale sources (LOCPATH)."""
    base = make_base_dir("phoenix-locale-")
    try:
        made = subprocess.run(["localedef", "-i", "de_DE", "-f", "UTF-8", str(base / GERMAN)], capture_output=True,
                              text=True, check=False)
    except FileNotFoundError:
        made = None
    if made is None or not (base / GERMAN / "LC_MESSAGES").exists():
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip("no German locale can be compiled here (localedef and the locales package's sources)")
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def german_server(german_locale) -> Iterator[LocalCluster]:
    base = make_base_dir("phoenix-german-")
    cluster = LocalCluster(base / "pg", free_port(), bin_source=SERVER_PROGRAMS,
                           settings=dict(THROWAWAY_SETTINGS, lc_messages="'%s'" % GERMAN))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LOCPATH", str(german_locale))  # the server's, from its start on
        cluster.ensure_running()
    try:
        with psycopg.connect(**cluster.conninfo(), autocommit=True) as conn:
            said = conn.execute(sql.SQL("SELECT current_setting('lc_messages')")).fetchone()[0]
            with pytest.raises(psycopg.Error) as refused:
                conn.execute(sql.SQL("SELECT 1/0"))
        assert said == GERMAN and "Division durch Null" in str(refused.value), str(refused.value)
        yield cluster
    finally:
        cluster.ensure_absent()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def german_data(german_server) -> Iterator[Database]:
    database = Database(german_server, "t_" + uuid.uuid4().hex[:12])
    with psycopg.connect(**german_server.conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database.name)))
    migrate(database)
    yield database


def test_a_swap_restore_of_a_newer_pg_dumps_backup_on_a_german_server(german_data, tmp_path):
    """pg_restore 17 opens each session with a setting older servers reject, and a parallel restore forgives that
    one error, told by its words. Before, a server that said it in German (``FEHLER:  unbekannter
    Konfigurationsparameter``) failed every swap restore of a zstd backup, which pg_dump 17 makes for a server of 15
    or 16."""
    options = {"db_url": german_data.url, "stage": "BETA", "dest": str(tmp_path)}
    made = run_module(phoenix_backup.main, dict(options, format="directory", compress="zstd"))
    assert made.get("changed") is True, made.get("msg")
    manifest = json.loads((Path(made["backup"]["path"]) / "manifest.json").read_text())
    server_major = int(manifest["server_version"].split(".")[0])
    pg_restore_major = find_tool_and_major("pg_restore", manifest["pg_dump_major"])[1]
    if not server_major < SESSION_SETUP_NEWER_SINCE <= pg_restore_major:
        pytest.skip("the restore needs a pg_restore of %d or newer and an older server; found %d and %d"
                    % (SESSION_SETUP_NEWER_SINCE, pg_restore_major, server_major))
    before = german_data.query("SELECT count(*) FROM \"User\"")
    restored = run_module(phoenix_restore.main, dict(options, mode="swap", jobs=2, safety_backup=False))
    assert restored.get("changed") is True and "failed" not in restored, restored.get("msg")
    assert german_data.query("SELECT count(*) FROM \"User\"") == before


def test_programs_write_their_own_words_in_english_whatever_locale_a_run_has(german_locale, monkeypatch):
    """Phoenix reads some of what pg_dump, pg_restore and psql write as they fail (``could not obtain lock on
    relation``, ``Command was:``). A run with LC_ALL set, which outranks LC_MESSAGES, had them write German:
    Debian's programs carry their translations (the wheels' do not)."""
    monkeypatch.setenv("LOCPATH", str(german_locale))
    monkeypatch.setenv("LC_ALL", GERMAN)
    monkeypatch.setenv("LC_TIME", "C.UTF-8")
    nowhere = "host=/nonexistent/phoenix dbname=app"
    spoken = {}
    for program in tool_versions("pg_dump"):
        said = subprocess.run([str(program), "--schema-only"], env=libpq_environment(nowhere), capture_output=True,
                              text=True, check=False).stderr
        german = subprocess.run([str(program), "--schema-only"], env=dict(libpq_environment(nowhere), LC_MESSAGES=GERMAN),
                                capture_output=True, text=True, check=False).stderr
        spoken[str(program)] = ("Verbindung" in german, "connection to server" in said and "Verbindung" not in said)
    assert (True, True) in spoken.values(), spoken  # a program that speaks German, now in English
    assert all(in_english for in_german, in_english in spoken.values()), spoken
    kept = libpq_environment(nowhere)
    assert "LC_ALL" not in kept and kept["LANG"] == kept["LC_TIME"] == GERMAN and kept["LC_MESSAGES"] == "C"


@pytest.fixture
def german_tenants(german_data) -> Iterator[str]:
    """``german_data`` with a world of 3 users, and a tenant policy on them (see ``tenant_policy``)."""
    made = run_module(phoenix_world.main, {"db_url": german_data.url, "stage": "BETA", "id": "KEEP_ME",
                                           "seed": {"users": 3}})
    assert made.get("changed") is True, made.get("msg")
    yield from tenant_policy(german_data)


def test_a_role_that_a_policy_filters_is_told_what_to_do_in_the_servers_words_too(
        german_data, german_tenants, tmp_path):
    """The server refuses a query a policy would filter, as Phoenix's sessions run with row security off: in German,
    the refusal is ``Policy für Sicherheit auf Zeilenebene für Tabelle »User« würde Auswirkung auf die Anfrage
    haben``, and before, it came without the advice, told by the English words. A privilege denied on the same
    table, with no policy, gets none."""
    before = table_fingerprints(german_data)
    results = run_all(german_tenants, tmp_path, check=False)
    assert table_fingerprints(german_data) == before
    for result in results:
        assert result.get("failed") is True and "Traceback" not in result["_raw"], result
        assert "»User«" in result["msg"] and result["msg"].endswith(WHAT_TO_DO), result["msg"]
    with german_data.connect() as conn:
        conn.execute(sql.SQL('ALTER TABLE "User" DISABLE ROW LEVEL SECURITY'))
        conn.execute(sql.SQL('REVOKE SELECT ON "User" FROM phoenix_ops'))
    denied = run_module(phoenix_world_info.main, {"db_url": german_tenants, "stage": "BETA", "detail": True})
    assert denied.get("failed") is True and "»User«" not in denied["msg"] and "User" in denied["msg"], denied
    assert not denied["msg"].endswith(WHAT_TO_DO), denied["msg"]


def test_a_drill_by_a_role_that_a_policy_filters_names_it_in_the_servers_words_too(german_data, tmp_path):
    """The drill counts the rows of its scratch database, whose tables the role owns, and a policy forced on its
    owner too filters them; before, on a server that speaks German, the count's refusal came as a failed drill,
    with no word of row security but the server's."""
    with german_data.connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE drill_runner LOGIN CREATEDB IN ROLE pg_read_all_data"))
        for statement in TENANT_DOCUMENTS:
            conn.execute(statement)
        conn.execute(sql.SQL("ALTER TABLE public.tenant_doc FORCE ROW LEVEL SECURITY"))
    made = run_module(phoenix_backup.main, {"db_url": german_data.url, "stage": "BETA", "dest": str(tmp_path)})
    assert made.get("changed") is True, made.get("msg")
    as_runner = {"db_url": german_data.url.replace("postgres@", "drill_runner@"), "stage": "BETA",
                 "dest": str(tmp_path)}
    refused = run_module(phoenix_restore_drill.main, as_runner)
    assert refused.get("failed") is True and "Traceback" not in refused["_raw"], refused
    assert refused["msg"].startswith("role drill_runner may not count every row of a table, as its row-level "
                                     "security policies filter what the role reads (") and "»tenant_doc«" in refused["msg"]
    assert refused["msg"].endswith("give the role BYPASSRLS (ALTER ROLE drill_runner BYPASSRLS), or run this as a "
                                   "superuser"), refused["msg"]
    assert german_data.query("SELECT count(*) FROM pg_database WHERE datname LIKE %s", ("phoenix_drill_%",)) == [(0,)]


@pytest.mark.parametrize("fmt", ["custom", "directory"])
def test_a_backup_that_waited_for_a_table_says_who_holds_it_in_the_servers_words_too(german_data, tmp_path, fmt):
    """pg_dump gives up waiting for a table's lock after lock_timeout, and the server says why in its language
    (``storniere Anfrage wegen Zeitüberschreitung der Anfrage``): before, the backup failed with that, and no word of
    who held the table."""
    made = run_module(phoenix_world.main, {"db_url": german_data.url, "stage": "BETA", "id": "KEEP_ME",
                                           "seed": {"users": 3}})
    assert made.get("changed") is True, made.get("msg")
    with table_held(german_data, "ACCESS EXCLUSIVE") as table:
        refused = run_module(phoenix_backup.main, {"db_url": german_data.url, "stage": "BETA", "dest": str(tmp_path),
                                                   "format": fmt, "lock_timeout": 2})
    assert refused.get("failed") is True and "Traceback" not in refused["_raw"], refused
    assert re.fullmatch(re.escape("the backup waited lock_timeout=2 s for a table that someone holds so that no one "
                                  "may read it (%s by " % table) + r"session \d+ of postgres \(nightly migration\)"
                        + re.escape("); run it again once that ends, or raise lock_timeout"), refused["msg"]), refused["msg"]


def test_a_broken_foreign_key_is_told_which_way_it_broke_in_the_servers_words_too(german_data):
    """A world whose chats an application's trigger keeps (a soft delete) cannot be removed: its users are still
    referred to. A seed that meets a user already there under another key writes a row that refers to one not
    there. The server says which in its language (``Schlüssel … wird noch aus Tabelle »Chat« verwiesen``, ``… ist
    nicht in Tabelle »User« vorhanden``); before, both got the advice for a taken value."""
    made = run_module(phoenix_world.main, {"db_url": german_data.url, "stage": "BETA", "id": "KEEP_ME",
                                           "seed": {"users": 2, "chats": 1}})
    assert made.get("changed") is True, made.get("msg")
    with german_data.connect() as conn:
        conn.execute(sql.SQL('ALTER TABLE "Chat" ADD COLUMN "deletedAt" timestamptz'))
        conn.execute(sql.SQL('CREATE FUNCTION soft_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN '
                             'UPDATE "Chat" SET "deletedAt" = now() WHERE id = OLD.id; RETURN NULL; END $$'))
        conn.execute(sql.SQL('CREATE TRIGGER soft_delete BEFORE DELETE ON "Chat" FOR EACH ROW '
                             'EXECUTE FUNCTION soft_delete()'))
    before = table_fingerprints(german_data)
    removed = run_module(phoenix_world.main, {"db_url": german_data.url, "stage": "BETA", "id": "KEEP_ME",
                                              "state": "absent"})
    assert removed.get("failed") is True and "Traceback" not in removed["_raw"], removed
    assert removed["msg"].startswith("the change would remove a row that other rows still refer to on ")
    assert "»Chat«" in removed["msg"] and removed["msg"].endswith(
        "or rows the trigger soft_delete of table Chat (before each delete) kept instead of deleting them; remove those "
        "references first"), removed["msg"]
    assert table_fingerprints(german_data) == before

    before, seeded = seed_over_a_copied_user(german_data)
    assert seeded.get("failed") is True and "Traceback" not in seeded["_raw"], seeded
    assert seeded["msg"].startswith("the change would leave a reference to a row that does not exist on ")
    assert seeded["msg"].endswith("remove it first or use another world id"), seeded["msg"]
    assert table_fingerprints(german_data) == before
