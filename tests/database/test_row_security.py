"""Worlds and users on an application with row-level security, as multi-tenant applications keep their users: a
policy shows a session only its tenant's rows. Phoenix reads and writes whole worlds, so its sessions run with row
security off, as pg_dump's do: where a policy would hide rows from the role a run connects as, the server refuses
the run's query and nothing is written. Before, the role saw part of the rows: a world listed without its users,
a copy or an export short of them, and a world removed with its users left behind."""

from __future__ import annotations

from typing import Iterator

import pytest
from psycopg import sql

from ansible_collections.phoenix.platform.plugins.modules import (
    phoenix_seed,
    phoenix_user_info,
    phoenix_world,
    phoenix_world_info,
)
from ansible_collections.phoenix.platform.tests.helpers import run_module

from worlds_fixtures import table_fingerprints

pytestmark = pytest.mark.usefixtures("clean_env")

WHAT_TO_DO = (' (Phoenix reads and writes every row of a world or a table, and row-level security would hide some '
              'from the role it connects as: give that role BYPASSRLS, or run this as a superuser)')
REFUSED = 'query would be affected by row-level security policy for table "User"' + WHAT_TO_DO


def tenant_policy(database) -> Iterator[str]:
    """``database`` with a tenant policy on "User", and the db_url of a role the operators run Phoenix as: granted
    every table, neither their owner nor a superuser (a fixture's body)."""
    with database.connect() as conn:
        for statement in ("CREATE ROLE phoenix_ops LOGIN",
                          "GRANT USAGE, CREATE ON SCHEMA public, phoenix TO phoenix_ops",
                          "GRANT ALL ON ALL TABLES IN SCHEMA public, phoenix TO phoenix_ops",
                          "GRANT ALL ON ALL SEQUENCES IN SCHEMA public, phoenix TO phoenix_ops",
                          'ALTER TABLE "User" ENABLE ROW LEVEL SECURITY',
                          """CREATE POLICY own_tenant ON "User" USING (email LIKE current_setting('app.tenant', true) || '@%')"""):
            conn.execute(sql.SQL(statement))
    yield database.url.replace("postgres@", "phoenix_ops@")
    with database.connect() as conn:
        conn.execute(sql.SQL("DROP OWNED BY phoenix_ops"))
        conn.execute(sql.SQL("DROP ROLE phoenix_ops"))


@pytest.fixture
def tenants(data) -> Iterator[str]:
    yield from tenant_policy(data)


RUNS = [
    (phoenix_world_info.main, {"detail": True}),
    (phoenix_user_info.main, {}),
    (phoenix_seed.main, {"state": "exported", "world": "KEEP_ME", "dest": "{tmp}/seed"}),
    (phoenix_world.main, {"id": "UC_COPY", "from_template": "KEEP_ME"}),
    (phoenix_world.main, {"id": "KEEP_ME", "state": "absent"}),
]


def run_all(url: str, tmp_path, check: bool) -> list[dict]:
    return [run_module(main, dict({"db_url": url, "stage": "BETA"}, **{
        name: value.format(tmp=tmp_path) if isinstance(value, str) else value for name, value in options.items()}),
        check=check) for main, options in RUNS]


@pytest.mark.parametrize("check", [True, False], ids=["check", "run"])
def test_a_role_that_a_policy_filters_is_refused_and_nothing_is_written(data, tenants, tmp_path, check):
    before = table_fingerprints(data)
    results = run_all(tenants, tmp_path, check)
    for result in results:
        assert result.get("failed") is True and "Traceback" not in result["_raw"], result
        assert result["msg"].startswith("database error on phoenix_ops@") and result["msg"].endswith(REFUSED), result
    assert table_fingerprints(data) == before
    assert not (tmp_path / "seed").exists()


def test_a_role_with_bypassrls_works_on_every_row(data, tenants, tmp_path):
    with data.connect() as conn:
        conn.execute(sql.SQL("ALTER ROLE phoenix_ops BYPASSRLS"))
    listed, users, exported, copied, removed = run_all(tenants, tmp_path, check=False)
    assert not any(result.get("failed") for result in (listed, users, exported, copied, removed))
    assert listed["worlds"][0]["rows"]["User"] == 3 and len(users["users"]) == 3
    assert copied["rows"]["User"] == 3 and removed["changed"] is True
    assert data.query('SELECT world_id, count(*) FROM "User" GROUP BY 1') == [("UC_COPY", 3)]
