"""phoenix_world_info and phoenix_world_cleanup."""

from __future__ import annotations

import csv
import io
import json

import pytest
import yaml
from psycopg import sql

from ansible_collections.phoenix.platform.plugins.modules import (
    phoenix_seed, phoenix_world, phoenix_world_cleanup, phoenix_world_info)
from ansible_collections.phoenix.platform.tests.helpers import run_module

from conftest import refused_as_unidentified
from worlds_fixtures import TINY, create_shop, fill_shop_world, migrate, table_fingerprints

pytestmark = pytest.mark.usefixtures("clean_env")


def call(main, database, check=False, diff=False, **options):
    return run_module(main, dict({"db_url": database.url, "stage": "BETA"}, **options), check=check, diff=diff)


def age(database, world_id: str, hours: float) -> None:
    with database.connect() as conn:
        conn.execute(sql.SQL('UPDATE "WorldMeta" SET "createdAt" = now() - make_interval(secs => %s) WHERE id = %s'),
                     [hours * 3600, world_id])


@pytest.fixture
def worlds(database):
    migrate(database)
    call(phoenix_world.main, database, id="TEMPLATE_MAIN", is_template=True, category="general", seed=TINY)
    call(phoenix_world.main, database, id="UC_FRESH", category="testing", tags=["ci", "fast"], seed=TINY)
    call(phoenix_world.main, database, id="UC_OLD", category="testing", tags=["ci"], seed=TINY)
    call(phoenix_world.main, database, id="KEEP_OLD", category="demo", auto_cleanup=False, seed=TINY)
    for world_id in ("UC_OLD", "KEEP_OLD", "TEMPLATE_MAIN"):
        age(database, world_id, 100)
    return database


def ids(result):
    return [w["id"] for w in result["worlds"]]


def test_info_lists_with_rows_and_expiry(worlds):
    result = call(phoenix_world_info.main, worlds)
    assert result["changed"] is False
    assert ids(result) == ["KEEP_OLD", "TEMPLATE_MAIN", "UC_FRESH", "UC_OLD"]
    by_id = {w["id"]: w for w in result["worlds"]}
    assert by_id["UC_FRESH"]["rows"] == {"User": 1, "Artifact": 2, "A_Text": 1, "A_Image": 1, "Chat": 1,
                                         "Message_v2": 1}
    assert by_id["TEMPLATE_MAIN"]["expiresAt"] is None and by_id["TEMPLATE_MAIN"]["expired"] is False
    assert by_id["UC_OLD"]["expired"] is True and by_id["UC_FRESH"]["expired"] is False


@pytest.mark.parametrize("filters, expected", [
    ({"id": "UC_*"}, ["UC_FRESH", "UC_OLD"]),
    ({"category": "testing"}, ["UC_FRESH", "UC_OLD"]),
    ({"template": True}, ["TEMPLATE_MAIN"]),
    ({"tags": ["ci", "fast"]}, ["UC_FRESH"]),
    ({"expired": True}, ["KEEP_OLD", "UC_OLD"]),
    ({"expired": False, "template": False}, ["UC_FRESH"]),
    ({"active": False}, []),
])
def test_info_filters(worlds, filters, expected):
    assert ids(call(phoenix_world_info.main, worlds, **filters)) == expected


def test_info_renders_every_format(worlds):
    as_json = json.loads(call(phoenix_world_info.main, worlds, format="json")["rendered"])
    assert [w["id"] for w in as_json] == ["KEEP_OLD", "TEMPLATE_MAIN", "UC_FRESH", "UC_OLD"]
    as_yaml = yaml.safe_load(call(phoenix_world_info.main, worlds, format="yaml", id="UC_FRESH")["rendered"])
    assert as_yaml[0]["tags"] == ["ci", "fast"]
    rows = list(csv.DictReader(io.StringIO(call(phoenix_world_info.main, worlds, format="csv")["rendered"])))
    assert [(r["id"], r["expired"], r["rows"]) for r in rows] == [
        ("KEEP_OLD", "true", "7"), ("TEMPLATE_MAIN", "false", "7"), ("UC_FRESH", "false", "7"), ("UC_OLD", "true", "7")]
    markdown = call(phoenix_world_info.main, worlds, format="markdown", id="UC_*")["rendered"]
    assert markdown.startswith("# Worlds (2)")
    assert "| `UC_FRESH` | UC_FRESH | testing | yes | no |" in markdown
    assert "## UC_OLD" in markdown and "| Artifact | 2 |" in markdown


def test_cleanup_removes_deactivates_and_spares_templates(worlds):
    before = table_fingerprints(worlds)
    planned = call(phoenix_world_cleanup.main, worlds, check=True, diff=True)
    assert planned["changed"] is True
    assert (planned["removed"], planned["deactivated"]) == (["UC_OLD"], ["KEEP_OLD"])
    assert planned["diff"] == {"before": {"worlds": {"UC_OLD": "active", "KEEP_OLD": "active"}},
                               "after": {"worlds": {"KEEP_OLD": "inactive"}}}
    assert planned["rows_deleted"]["Artifact"] == 2
    assert table_fingerprints(worlds) == before

    done = call(phoenix_world_cleanup.main, worlds)
    assert (done["removed"], done["deactivated"], done["rows_deleted"]) == (
        planned["removed"], planned["deactivated"], planned["rows_deleted"])
    assert worlds.query('SELECT count(*) FROM "Artifact" WHERE world_id = %s', ("UC_OLD",)) == [(0,)]
    remaining = worlds.query('SELECT id, "isActive" FROM "WorldMeta" ORDER BY id')
    assert remaining == [("KEEP_OLD", False), ("TEMPLATE_MAIN", True), ("UC_FRESH", True)]
    assert worlds.query('SELECT count(*) FROM "Artifact" WHERE world_id = %s', ("KEEP_OLD",)) == [(2,)]
    again = call(phoenix_world_cleanup.main, worlds, diff=True)
    assert again["changed"] is False and again["diff"]["before"] == again["diff"]["after"]


def test_cleanup_max_age_overrides_ttl(worlds):
    age(worlds, "UC_FRESH", 3)
    assert call(phoenix_world_cleanup.main, worlds, check=True)["removed"] == ["UC_OLD"]
    assert call(phoenix_world_cleanup.main, worlds, check=True, max_age_hours=2)["removed"] == ["UC_FRESH", "UC_OLD"]


def test_cleanup_spares_worlds_others_depend_on(worlds):
    call(phoenix_world.main, worlds, id="UC_FRESH", dependencies=["UC_OLD"])
    result = call(phoenix_world_cleanup.main, worlds)
    assert result["removed"] == []
    assert "UC_OLD" in result["deactivated"]
    assert any("is a dependency of UC_FRESH" in w["event"]["msg"] for w in result["warnings"])


def test_cleanup_refuses_deleting_in_prod(database):
    migrate(database, stage="PROD")
    run_module(phoenix_world.main, {"db_url": database.url, "stage": "PROD", "id": "OLD", "allow_prod": True})
    age(database, "OLD", 100)
    args = {"db_url": database.url, "stage": "PROD"}
    assert "allow_prod" in run_module(phoenix_world_cleanup.main, args)["msg"]
    assert run_module(phoenix_world_cleanup.main, dict(args, allow_prod=True))["removed"] == ["OLD"]


def test_cleanup_on_the_shop_schema(database):
    create_shop(database)
    fill_shop_world(database, "SHOP_A")
    with database.connect() as conn:
        conn.execute(sql.SQL('UPDATE "WorldMeta" SET "isTemplate" = false'))
    age(database, "SHOP_A", 100)
    result = call(phoenix_world_cleanup.main, database)
    assert result["rows_deleted"] == {"shop.customers": 3, "shop.orders": 6, "shop.order_lines": 12}
    assert database.query("SELECT count(*) FROM shop.products") == [(2,)]


def test_bad_input(worlds):
    assert "max_age_hours must be from 0 to 876000, got -1" in call(phoenix_world_cleanup.main, worlds, max_age_hours=-1)["msg"]
    assert "format" in call(phoenix_world_info.main, worlds, format="xml")["msg"]


def test_a_world_meta_published_without_a_replica_identity_takes_new_worlds_and_refuses_its_changes_up_front(
        worlds, tmp_path):
    """A change pipeline's publication of all tables, and "WorldMeta" (here the registry) set to REPLICA IDENTITY
    NOTHING: the server takes new worlds and refuses any update or delete of its rows. Changing a world, copying a
    template (which counts its uses), removing a world, a cleanup that deactivates one and a seed import that
    changes a world's metadata are each refused before anything is written, in check mode too."""
    seed_dir, blob_dir = tmp_path / "seed", tmp_path / "blobs"
    blob_dir.mkdir()
    exported = call(phoenix_seed.main, worlds, state="exported", world="UC_FRESH", dest=str(seed_dir),
                    blob_dir=str(blob_dir))
    assert exported.get("failed") is not True, exported
    call(phoenix_world.main, worlds, id="UC_FRESH", category="demo")  # the seed holds "testing"
    with worlds.connect() as conn:
        conn.execute('ALTER TABLE "WorldMeta" REPLICA IDENTITY NOTHING')
        conn.execute("CREATE PUBLICATION cdc FOR ALL TABLES")
    created = call(phoenix_world.main, worlds, id="UC_NEW", seed=TINY)
    assert created.get("failed") is not True and created["changed"] is True, created
    before = table_fingerprints(worlds)
    refusals = [
        (phoenix_world.main, {"id": "UC_FRESH", "category": "general"}, "changing world UC_FRESH", "updates"),
        (phoenix_world.main, {"id": "UC_COPY", "from_template": "TEMPLATE_MAIN"}, "copying template TEMPLATE_MAIN",
         "updates"),
        (phoenix_world.main, {"id": "UC_FRESH", "state": "absent"}, "removing worlds", "deletes"),
        (phoenix_world_cleanup.main, {}, "deactivating expired worlds", "updates"),
        (phoenix_seed.main, {"state": "imported", "src": str(seed_dir), "conflict": "merge", "blob_dir": str(blob_dir)},
         "this import (conflict=merge)", "updates"),
    ]
    for main, options, purpose, writes in refusals:
        for check in (True, False):
            refused = call(main, worlds, check=check, **options)
            assert refused.get("failed") is True and refused["msg"] == refused_as_unidentified(
                purpose, writes, 'public."WorldMeta"', "WorldMeta"), (check, refused)
    assert table_fingerprints(worlds) == before
    with worlds.connect() as conn:
        conn.execute('ALTER TABLE "WorldMeta" REPLICA IDENTITY DEFAULT')
    cleaned = call(phoenix_world_cleanup.main, worlds)
    assert (cleaned["removed"], cleaned["deactivated"]) == (["UC_OLD"], ["KEEP_OLD"]), cleaned
