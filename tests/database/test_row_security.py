"""Backups of a database with row-level security: every row, or a refusal naming the tables before anything."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from ansible_collections.phoenix.platform.plugins.modules import phoenix_backup
from ansible_collections.phoenix.platform.tests.helpers import run_module

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


@pytest.mark.parametrize("check", [True, False], ids=["check", "run"])
def test_a_backup_by_a_role_that_row_level_security_filters_is_refused_naming_the_tables(
        data, backup_reader, tmp_path, check):
    with data.connect() as conn:
        for statement in TENANT_DOCUMENTS:
            conn.execute(statement)
    as_reader = {"db_url": make_conninfo(data.url, user=backup_reader), "stage": "BETA", "dest": str(tmp_path)}
    refused = run_module(phoenix_backup.main, as_reader, check=check)
    assert refused["failed"] is True and "Traceback" not in refused["_raw"]
    assert refused["msg"] == (
        "row-level security filters what role backup_reader reads of tenant_doc, and a backup must hold every row "
        "(pg_dump refuses to read a table a policy would filter): give the role BYPASSRLS (ALTER ROLE backup_reader "
        "BYPASSRLS), or back up as a superuser; nothing was written")
    assert backed_up_files(tmp_path) == []

    with data.connect() as conn:
        conn.execute(sql.SQL("ALTER ROLE backup_reader BYPASSRLS"))
    made = run_module(phoenix_backup.main, as_reader, check=check)
    assert made.get("changed") is True and "failed" not in made, made.get("msg")
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


def test_forced_row_level_security_filters_the_tables_owner_too(owned_by_shop_owner, tmp_path):
    data = owned_by_shop_owner
    as_owner = {"db_url": make_conninfo(data.url, user="shop_owner"), "stage": "BETA", "dest": str(tmp_path)}
    with psycopg.connect(as_owner["db_url"], autocommit=True) as conn:
        for statement in TENANT_DOCUMENTS:
            conn.execute(statement)
        conn.execute(sql.SQL("ALTER TABLE public.tenant_doc FORCE ROW LEVEL SECURITY"))
    refused = run_module(phoenix_backup.main, as_owner)
    assert refused["failed"] is True
    assert "reads of tenant_doc (forced, for its owner too), and a backup must hold every row" in refused["msg"]
    assert backed_up_files(tmp_path) == []

    with psycopg.connect(as_owner["db_url"], autocommit=True) as conn:  # its owner's policies no longer filter it
        conn.execute(sql.SQL("ALTER TABLE public.tenant_doc NO FORCE ROW LEVEL SECURITY"))
    made = run_module(phoenix_backup.main, as_owner)
    assert made["changed"] is True and "failed" not in made, made.get("msg")
