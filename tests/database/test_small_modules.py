"""The usual tests for the small modules: phoenix_audit, phoenix_backup_info, phoenix_user_info,
and bad input for phoenix_local_postgres."""

from __future__ import annotations

import pytest
from psycopg import sql

from ansible_collections.phoenix.platform.plugins.modules import (
    phoenix_audit,
    phoenix_backup,
    phoenix_backup_info,
    phoenix_local_postgres,
    phoenix_user,
    phoenix_user_info,
    phoenix_world_info,
)
from ansible_collections.phoenix.platform.tests.helpers import run_module

from worlds_fixtures import migrate, table_fingerprints

pytestmark = pytest.mark.usefixtures("clean_env")


def audit(database, check=False, **options):
    return run_module(phoenix_audit.main, dict({"db_url": database.url, "stage": "BETA"}, **options), check=check)


def test_audit_records_every_run_and_check_mode_writes_nothing(database):
    migrate(database)
    before = table_fingerprints(database)
    planned = audit(database, check=True, operation="deploy.succeeded", details={"version": "1.2"})
    assert planned["changed"] is True
    assert table_fingerprints(database) == before
    assert audit(database, operation="deploy.succeeded", details={"version": "1.2"})["changed"] is True
    assert audit(database, operation="deploy.succeeded", details={"version": "1.2"})["changed"] is True  # an event
    rows = database.query("SELECT operation, stage, details->>'version' FROM phoenix.audit_log "
                          "WHERE operation = 'deploy.succeeded'")
    assert rows == [("deploy.succeeded", "BETA", "1.2")] * 2


@pytest.mark.parametrize("options, expected", [
    ({}, "operation"),
    ({"operation": "x", "details": "not a dict"}, "details"),
])
def test_audit_bad_input(database, options, expected):
    migrate(database)
    result = audit(database, **options)
    assert result["failed"] is True and expected in result["msg"]


def test_audit_needs_the_phoenix_schema(database):
    result = audit(database, operation="x")
    assert result["failed"] is True and "run phoenix_schema first" in result["msg"]


def test_a_search_path_that_misses_the_applications_schema_is_named(database):
    migrate(database)
    with database.connect() as conn:  # a typo: the list quoted as one schema's name
        conn.execute(sql.SQL("ALTER DATABASE {} SET search_path = '\"$user\", public'").format(
            sql.Identifier(database.name)))
    result = run_module(phoenix_world_info.main, {"db_url": database.url, "stage": "BETA"})
    assert result["failed"] is True and result["msg"].endswith(
        'has "WorldMeta" in schema public, which its search_path ("""$user"", public") does not reach: set the '
        "search_path of the role or the database to the application's schema (ALTER ROLE ... SET search_path = ...), "
        "or name it in db_url (options=-c search_path=...)"), result["msg"]


def test_backup_info_lists_read_only(database, tmp_path):
    migrate(database)
    args = {"dest": str(tmp_path), "stage": "BETA"}
    empty = run_module(phoenix_backup_info.main, args)
    assert empty["changed"] is False and empty["backups"] == [] and empty["latest"] is None
    made = run_module(phoenix_backup.main, {"db_url": database.url, "stage": "BETA", "dest": str(tmp_path),
                                            "kind": "manual"})
    listed = run_module(phoenix_backup_info.main, dict(args, verify=True), check=True)
    assert listed["changed"] is False
    assert [b["id"] for b in listed["backups"]] == [made["backup"]["id"]]
    assert listed["backups"][0]["checksums_ok"] is True
    assert run_module(phoenix_backup_info.main, dict(args, kind="scheduled"))["backups"] == []


@pytest.mark.parametrize("options, expected", [
    ({"stage": "QA"}, "stage"),
    ({"kind": "hourly"}, "kind"),
])
def test_backup_info_bad_input(tmp_path, options, expected):
    result = run_module(phoenix_backup_info.main, dict({"dest": str(tmp_path), "stage": "BETA"}, **options))
    assert result["failed"] is True and expected in result["msg"]


def test_user_info_is_read_only_and_rejects_bad_input(database):
    migrate(database)
    args = {"db_url": database.url, "stage": "BETA"}
    run_module(phoenix_user.main, dict(args, email="a@example.com"))
    before = table_fingerprints(database)
    result = run_module(phoenix_user_info.main, args, check=True)
    assert result["changed"] is False and [u["email"] for u in result["users"]] == ["a@example.com"]
    assert table_fingerprints(database) == before
    bad = run_module(phoenix_user_info.main, dict(args, role="root"))
    assert bad["failed"] is True and "role" in bad["msg"]


@pytest.mark.parametrize("options, expected", [
    ({"bin_source": "docker"}, "bin_source"),
    ({"state": "running"}, "state"),
    ({"port": "many"}, "port"),
])
def test_local_postgres_bad_input(tmp_path, options, expected):
    result = run_module(phoenix_local_postgres.main, dict({"base_dir": str(tmp_path / "pg")}, **options))
    assert result["failed"] is True and expected in result["msg"]
    assert not (tmp_path / "pg").exists()


def test_state_paths_inside_an_installed_collection_are_refused(database, tmp_path):
    from ansible_collections.phoenix.platform.plugins.modules import phoenix_seed

    migrate(database)
    installed = tmp_path / "collections" / "ansible_collections" / "acme" / "ops"
    installed.mkdir(parents=True)
    (installed / "MANIFEST.json").write_text("{}")
    linked = tmp_path / "state-link"
    linked.symlink_to(installed)  # a link into the collection is the collection too
    before = table_fingerprints(database)
    cases = [
        (phoenix_backup.main, {"db_url": database.url, "stage": "BETA", "dest": str(installed / "backups")}, "dest"),
        (phoenix_seed.main, {"db_url": database.url, "stage": "BETA", "state": "exported", "world": "UC_A",
                             "dest": str(linked / "exports" / "UC_A")}, "dest"),
        (phoenix_local_postgres.main, {"base_dir": str(installed / "postgres")}, "base_dir"),
    ]
    for main, options, option in cases:
        result = run_module(main, options)
        assert result["failed"] is True
        assert result["msg"].startswith("%s=" % option)
        assert "lies inside the installed collection %s" % installed.resolve() in result["msg"]
        assert "PHOENIX_HOME" in result["msg"]
    assert sorted(p.name for p in installed.iterdir()) == ["MANIFEST.json"]
    assert table_fingerprints(database) == before
    outside = run_module(phoenix_backup.main, {"db_url": database.url, "stage": "BETA", "dest": str(tmp_path / "b")})
    assert outside["changed"] is True, outside
