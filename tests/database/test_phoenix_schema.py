"""phoenix_schema against a real PostgreSQL database."""

from __future__ import annotations

import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from ansible_collections.phoenix.platform.plugins.module_utils._schema import migrations
from ansible_collections.phoenix.platform.plugins.modules import phoenix_schema, phoenix_world_info
from ansible_collections.phoenix.platform.tests.helpers import UNREACHABLE, run_module

pytestmark = pytest.mark.usefixtures("clean_env")

REFERENCE_TABLES = {"User", "Chat", "Message_v2", "Artifact", "Suggestion", "A_Text", "A_Image",
                    "A_Person", "A_SetItems", "A_Site", "A_Address", "A_FaqItem", "A_Link", "A_SetDefinition", "WorldMeta"}


def tables(database, schema: str = "public") -> set[str]:
    return {r[0] for r in database.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,))}


def schema(database, check=False, diff=False, **options):
    return run_module(phoenix_schema.main, dict({"db_url": database.url, "stage": "BETA"}, **options),
                      check=check, diff=diff)


def test_first_run_applies_everything_and_registers_the_stage(database):
    result = schema(database)
    assert result["changed"] is True
    assert result["version"] == migrations.LATEST_VERSION
    assert [m["version"] for m in result["applied"]] == [m.version for m in migrations.MIGRATIONS]
    assert result["pending"] == []
    assert tables(database) == REFERENCE_TABLES
    assert tables(database, "phoenix") == {
        "migrations", "environment", "audit_log", "health_history", "key_map", "key_map_batch"}
    assert database.query("SELECT stage, app_schema FROM phoenix.environment") == [("BETA", "reference")]
    audit = database.query("SELECT operation, stage, details->'applied' FROM phoenix.audit_log")
    assert audit == [("schema.migrate", "BETA", [m.version for m in migrations.MIGRATIONS])]


def test_second_run_changes_nothing(database):
    schema(database)
    again = schema(database)
    assert again["changed"] is False
    assert again["applied"] == []
    assert database.query("SELECT count(*) FROM phoenix.audit_log") == [(1,)]


def test_world_meta_has_every_design_column(database):
    schema(database)
    columns = {r[0] for r in database.query(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'WorldMeta'")}
    assert columns == {"id", "name", "description", "environment", "category", "isActive", "isTemplate",
                       "autoCleanup", "cleanupAfterHours", "isolationLevel", "tags", "dependencies",
                       "settings", "version", "usageCount", "lastUsedAt", "createdBy", "createdAt",
                       "updatedAt"}


def test_check_mode_lists_pending_and_writes_nothing(database):
    result = schema(database, check=True, diff=True)
    assert result["changed"] is True
    assert [m["name"] for m in result["pending"]] == [m.name for m in migrations.MIGRATIONS]
    assert result["diff"]["before"]["version"] == 0
    assert result["diff"]["after"]["version"] == migrations.LATEST_VERSION
    assert database.query("SELECT count(*) FROM pg_namespace WHERE nspname = 'phoenix'") == [(0,)]
    assert tables(database) == set()


def test_check_mode_on_current_database_reports_unchanged(database):
    schema(database)
    assert schema(database, check=True)["changed"] is False


def test_target_version_then_upgrade(database):
    first = schema(database, target_version=2)
    assert first["version"] == 2
    assert [m["version"] for m in first["pending"]] == [3, 4, 5, 6, 7, 8, 9]
    assert "User" not in tables(database)
    second = schema(database)
    assert [m["version"] for m in second["applied"]] == [3, 4, 5, 6, 7, 8, 9]
    assert "User" in tables(database)


def test_key_map_entries_survive_the_move_to_batches(database):
    schema(database, target_version=7)
    database.query("INSERT INTO phoenix.key_map VALUES ('store.customer', 'A', '10', '501'), "
                   "('store.customer', 'A', '9', '500'), ('store.rental', 'A', '3', '77') RETURNING 1")
    upgraded = schema(database)
    assert [m["name"] for m in upgraded["applied"]] == ["key_map_batches", "key_map_batch_key"]
    assert database.query("SELECT table_name, world, old_key, new_key FROM phoenix.key_map ORDER BY 1, 3") == [
        ("store.customer", "A", 9, 500), ("store.customer", "A", 10, 501), ("store.rental", "A", 3, 77)]
    assert database.query("SELECT count(DISTINCT id) FROM phoenix.key_map_batch") == [(2,)]


def test_every_phoenix_table_has_a_primary_key(database):
    """A publication of all tables (a change pipeline's) makes the server refuse UPDATE and DELETE on a table with
    neither a primary key nor a replica identity: none of Phoenix's own tables may lack one."""
    schema(database)
    assert database.query(
        "SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'phoenix'::regnamespace AND c.relkind IN ('r', 'p') "
        "AND NOT EXISTS (SELECT FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)") == []
    assert len(tables(database, "phoenix")) >= 5


def test_app_schema_none_creates_only_world_meta_and_phoenix(database):
    result = schema(database, app_schema="none")
    assert result["changed"] is True
    assert tables(database) == {"WorldMeta"}
    assert schema(database, app_schema="none")["changed"] is False


def test_stage_fence_mismatch_fails_before_any_write(database):
    schema(database, stage="PROD")
    before = database.query("SELECT count(*) FROM phoenix.audit_log")
    result = schema(database, stage="BETA")
    assert result["failed"] is True
    assert "registered as PROD" in result["msg"] and "declares stage BETA" in result["msg"]
    assert result["registered_stage"] == "PROD"
    assert database.query("SELECT count(*) FROM phoenix.audit_log") == before
    assert database.query("SELECT stage FROM phoenix.environment") == [("PROD",)]


def test_stage_fence_mismatch_with_pending_migrations_applies_none(database):
    schema(database, stage="PROD", target_version=1)
    result = schema(database, stage="BETA")
    assert result["failed"] is True
    assert database.query("SELECT max(version) FROM phoenix.migrations") == [(1,)]


@pytest.mark.parametrize("options, expected", [
    ({"target_version": 99}, "target_version 99 does not exist"),
    ({"target_version": 0}, "target_version must be 1 or higher"),
    ({"app_schema": "other"}, "app_schema"),
    ({"stage": "QA"}, "stage"),
])
def test_bad_input_gives_one_clear_message(database, options, expected):
    result = schema(database, **options)
    assert result["failed"] is True
    assert expected in result["msg"]
    assert "Traceback" not in result["_raw"]


def test_downgrade_is_refused(database):
    schema(database)
    result = schema(database, target_version=2)
    assert result["failed"] is True
    assert "downgrades are not supported" in result["msg"]


def test_wrong_password_fails_clearly_without_leaking_it(database):
    secret = "Wr0ng-Secret-Value"
    result = run_module(phoenix_schema.main, dict(database.tcp_args(password=secret), stage="BETA"))
    assert result["failed"] is True
    assert "password authentication failed" in result["msg"]
    assert secret not in result["_raw"]


def test_password_in_db_url_never_reaches_the_output(database):
    secret = "An0ther-Secret"
    url = "postgresql://postgres:%s@127.0.0.1:%d/%s" % (secret, database.cluster.port, database.name)
    result = run_module(phoenix_schema.main, {"db_url": url, "stage": "BETA"})
    assert result["failed"] is True
    assert secret not in result["_raw"]


def test_right_password_over_tcp_works(database):
    result = run_module(phoenix_schema.main, dict(database.tcp_args(), stage="LOCAL"))
    assert result["changed"] is True
    assert database.password not in result["_raw"]


def test_unreachable_database_fails_with_the_reason(database):
    result = run_module(phoenix_schema.main, UNREACHABLE)
    assert result["failed"] is True
    assert result["msg"].startswith("cannot connect to nobody@127.0.0.1:1/nowhere")


def test_db_url_and_login_options_are_exclusive(database):
    result = run_module(phoenix_schema.main, {"db_url": database.url, "login_host": "x", "stage": "BETA"})
    assert result["failed"] is True
    assert "mutually exclusive: db_url|login_host" in result["msg"]


def test_environment_fallbacks(database, monkeypatch):
    monkeypatch.setenv("PHOENIX_DB_URL", database.url)
    monkeypatch.setenv("APP_STAGE", "LOCAL")
    result = run_module(phoenix_schema.main, {})
    assert result["changed"] is True
    assert database.query("SELECT stage FROM phoenix.environment") == [("LOCAL",)]


def test_concurrent_run_waits_for_the_schema_lock(database):
    from ansible_collections.phoenix.platform.plugins.module_utils._core.locks import lock_key

    with database.connect() as holder:
        holder.autocommit = False
        holder.execute(sql.SQL("SELECT pg_advisory_xact_lock(%s)"), [lock_key("schema")])
        result = schema(database, lock_timeout=1)
        holder.rollback()
    assert result["failed"] is True
    assert "holds the 'schema' lock" in result["msg"]
    assert tables(database) == set()


def test_failing_migration_leaves_the_database_as_it_was(database):
    """Migrations 1 and 2 would succeed; 3 collides with an existing table: nothing stays applied."""
    with database.connect() as conn:
        conn.execute(sql.SQL('CREATE TABLE "Chat" (id integer)'))
    result = schema(database)
    assert result["failed"] is True
    assert "migration 3 (reference_app) failed" in result["msg"]
    assert "app_schema=none" in result["msg"]
    assert database.query("SELECT count(*) FROM pg_namespace WHERE nspname = 'phoenix'") == [(0,)]
    assert tables(database) == {"Chat"}
    assert schema(database, app_schema="none")["changed"] is True


def test_a_role_that_may_not_read_the_stage_fence_is_told_the_grants_before_anything(database):
    schema(database, stage="BETA")
    with database.connect() as conn:
        conn.execute(sql.SQL("CREATE ROLE fence_reader LOGIN"))
    try:
        as_reader = {"db_url": make_conninfo(database.url, user="fence_reader"), "stage": "BETA"}
        refused = run_module(phoenix_world_info.main, as_reader)
        assert refused["failed"] is True and "Traceback" not in refused["_raw"]
        assert refused["msg"] == (
            "role fence_reader may not read the stage fence (phoenix.environment), which every run checks first: "
            "GRANT USAGE ON SCHEMA phoenix TO fence_reader and GRANT SELECT ON phoenix.environment TO fence_reader "
            "(or pg_read_all_data); nothing was written")
        with database.connect() as conn:
            conn.execute(sql.SQL("GRANT pg_read_all_data TO fence_reader"))
        listed = run_module(phoenix_world_info.main, as_reader)
        assert "failed" not in listed and listed["worlds"] == [], listed.get("msg")
    finally:
        with database.connect() as conn:
            conn.execute(sql.SQL("DROP ROLE fence_reader"))
