"""phoenix_seed: export, import (both formats), conflicts, blobs, atomicity."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import pytest
from psycopg import sql

from ansible_collections.phoenix.platform.plugins.modules import phoenix_seed, phoenix_world
from ansible_collections.phoenix.platform.tests.helpers import run_module

from conftest import kill_when_blocked, refused_as_unidentified
from original_schema import ONBOARDING_SEED
from worlds_fixtures import PASSWORD_HASH, create_shop, fill_shop_world, migrate, table_fingerprints

pytestmark = pytest.mark.usefixtures("clean_env")
SEED = {"users": 3, "artifacts": 8, "chats": 2, "messages_per_chat": 3}
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


def call(main, database, check=False, **options):
    return run_module(main, dict({"db_url": database.url, "stage": "BETA"}, **options), check=check)


def world_rows(database, world_id: str) -> dict[str, list[tuple]]:
    """Every row of the world per reference table, without its world_id, sorted: for comparing by query."""
    queries = {
        "User": 'SELECT id, email, name, type, "createdAt" FROM "User" WHERE world_id = %s',
        "Artifact": 'SELECT id, "createdAt", title, summary, kind, "userId" FROM "Artifact" WHERE world_id = %s',
        "A_Text": 'SELECT t.* FROM "A_Text" t JOIN "Artifact" a ON (a.id, a."createdAt") = (t."artifactId", '
                  't."createdAt") WHERE a.world_id = %s',
        "A_Image": 'SELECT t.* FROM "A_Image" t JOIN "Artifact" a ON (a.id, a."createdAt") = (t."artifactId", '
                   't."createdAt") WHERE a.world_id = %s',
        "A_SetItems": 'SELECT s.* FROM "A_SetItems" s JOIN "Artifact" a ON (a.id, a."createdAt") = (s."setId", '
                      's."setCreatedAt") WHERE a.world_id = %s',
        "Chat": 'SELECT id, "createdAt", title, "userId" FROM "Chat" WHERE world_id = %s',
        "Message_v2": 'SELECT id, "chatId", role, parts::text, "createdAt" FROM "Message_v2" WHERE world_id = %s',
    }
    return {table: sorted(database.query(q, (world_id,))) for table, q in queries.items()}


@pytest.fixture
def seeded(database, tmp_path):
    """A world with generated data, and one image that points at a real blob file."""
    migrate(database)
    call(phoenix_world.main, database, id="ROUND_TRIP", category="demo", tags=["x"], seed=SEED)
    blob_dir = tmp_path / "blobs"
    blob_dir.mkdir()
    (blob_dir / "logo.png").write_bytes(PNG)
    (blob_dir / "orphan.bin").write_bytes(b"nobody points here")
    with database.connect() as conn:
        conn.execute(sql.SQL('UPDATE "A_Image" SET url = %s WHERE "artifactId" IN (SELECT id FROM "Artifact" '
                             "WHERE world_id = 'ROUND_TRIP' AND kind = 'image')"), ["blob:logo.png"])
    return database, blob_dir


def export(database, dest, blob_dir, world="ROUND_TRIP", check=False):
    return call(phoenix_seed.main, database, check=check, state="exported", world=world, dest=str(dest),
                blob_dir=str(blob_dir))


def test_round_trip_is_row_for_row_identical(seeded, tmp_path):
    database, blob_dir = seeded
    # json keeps its text: key order and spacing as the application wrote them (jsonb would reorder them)
    database.query('UPDATE "Message_v2" SET parts = %s::json WHERE id = (SELECT id FROM "Message_v2" '
                   "WHERE world_id = 'ROUND_TRIP' ORDER BY id LIMIT 1) RETURNING id", ('[{"type": "text",   "text": "as written"}]',))
    json_text = 'SELECT id, parts::text, attachments::text FROM "Message_v2" WHERE world_id = %s ORDER BY id'
    before_text = database.query(json_text, ("ROUND_TRIP",))
    before = world_rows(database, "ROUND_TRIP")
    dest = tmp_path / "seed"
    result = export(database, dest, blob_dir)
    assert result.get("changed") is True, result
    assert result["tables"]["Artifact"] == 8 and result["blobs"] == 1
    manifest = json.loads((dest / "seed.json").read_text())
    assert manifest["source"] == {"worldId": "ROUND_TRIP", "environment": "BETA"}
    for table in manifest["tables"]:
        data = (dest / table["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == table["sha256"]
        assert data.count(b"\n") == table["rows"]
    assert (dest / "README.md").read_text().startswith("# Seed ROUND_TRIP")
    assert sorted(os.listdir(dest / "blob")) == ["logo.png"]

    call(phoenix_world.main, database, id="ROUND_TRIP", state="absent")
    assert world_rows(database, "ROUND_TRIP")["Artifact"] == []
    shutil.rmtree(blob_dir)
    imported = call(phoenix_seed.main, database, state="imported", src=str(dest), blob_dir=str(blob_dir))
    assert imported["changed"] is True
    assert imported["tables"]["Artifact"]["inserted"] == 8
    assert world_rows(database, "ROUND_TRIP") == before
    assert database.query(json_text, ("ROUND_TRIP",)) == before_text
    assert any('"type": "text",   "text": "as written"' in parts for _id, parts, _att in before_text)
    assert hashlib.sha256((blob_dir / "logo.png").read_bytes()).digest() == hashlib.sha256(PNG).digest()
    meta = database.query('SELECT category, tags, environment FROM "WorldMeta" WHERE id = %s', ("ROUND_TRIP",))
    assert meta == [("demo", ["x"], "BETA")]
    again = call(phoenix_seed.main, database, state="imported", src=str(dest), blob_dir=str(blob_dir))
    assert again["changed"] is False
    assert again["conflicts"]["Artifact"] == 8


def test_export_twice_changes_nothing_and_check_mode_writes_nothing(seeded, tmp_path):
    database, blob_dir = seeded
    dest = tmp_path / "seed"
    planned = export(database, dest, blob_dir, check=True)
    assert planned["changed"] is True and not dest.exists()
    export(database, dest, blob_dir)
    assert export(database, dest, blob_dir)["changed"] is False
    call(phoenix_world.main, database, id="ROUND_TRIP", description="changed")
    assert export(database, dest, blob_dir, check=True)["changed"] is True
    assert "changed" not in (dest / "seed.json").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blobs", "seed"]  # no partial directories left


def test_import_under_another_id_rekeys(seeded, tmp_path):
    database, blob_dir = seeded
    export(database, tmp_path / "seed", blob_dir)
    result = call(phoenix_seed.main, database, state="imported", src=str(tmp_path / "seed"), world="RENAMED",
                  blob_dir=str(blob_dir))
    assert result["changed"] is True and result["conflicts"] == {}
    original = {r[0] for r in database.query('SELECT id FROM "Artifact" WHERE world_id = %s', ("ROUND_TRIP",))}
    renamed = {r[0] for r in database.query('SELECT id FROM "Artifact" WHERE world_id = %s', ("RENAMED",))}
    assert len(renamed) == 8 and not original & renamed
    assert database.query('SELECT count(*) FROM "A_Text" t JOIN "Artifact" a ON a.id = t."artifactId" '
                          "WHERE a.world_id = 'RENAMED'") == database.query(
        'SELECT count(*) FROM "A_Text" t JOIN "Artifact" a ON a.id = t."artifactId" WHERE a.world_id = \'ROUND_TRIP\'')


def test_import_into_another_world_without_rename_is_refused(seeded, tmp_path):
    database, blob_dir = seeded
    export(database, tmp_path / "seed", blob_dir)
    manifest_path = tmp_path / "seed" / "seed.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["source"]["worldId"] = "OTHER"
    manifest_path.write_text(json.dumps(manifest))
    result = call(phoenix_seed.main, database, state="imported", src=str(tmp_path / "seed"), blob_dir=str(blob_dir))
    assert result["failed"] is True
    assert "belong to other worlds" in result["msg"]
    assert database.query('SELECT count(*) FROM "WorldMeta" WHERE id = %s', ("OTHER",)) == [(0,)]


def test_import_check_mode_analyses_conflicts_and_writes_nothing(seeded, tmp_path):
    database, blob_dir = seeded
    export(database, tmp_path / "seed", blob_dir)
    with database.connect() as conn:  # one text artifact changes, so merge would update it
        conn.execute(sql.SQL('UPDATE "A_Text" SET content = %s WHERE "artifactId" = (SELECT id FROM "Artifact" '
                             "WHERE world_id = 'ROUND_TRIP' AND kind = 'text' ORDER BY id LIMIT 1)"), ["edited"])
        conn.execute(sql.SQL('DELETE FROM "Message_v2" WHERE world_id = %s'), ["ROUND_TRIP"])
    before = table_fingerprints(database)
    plan = call(phoenix_seed.main, database, check=True, state="imported", src=str(tmp_path / "seed"),
                conflict="merge", blob_dir=str(blob_dir))
    assert plan["changed"] is True
    assert plan["tables"]["Message_v2"] == {"rows": 6, "conflicts": 0, "inserted": 6, "updated": 0, "deleted": 0}
    assert plan["tables"]["A_Text"]["updated"] == 1
    assert plan["conflicts"]["Artifact"] == 8
    assert table_fingerprints(database) == before


def test_a_merge_into_a_table_published_without_a_replica_identity_is_refused_before_writing(seeded, tmp_path):
    """A change pipeline's publication of all tables, and "Artifact" and "A_Text" set to REPLICA IDENTITY NOTHING:
    the server refuses every INSERT ... ON CONFLICT DO UPDATE into them, even one into a new world that meets no
    conflict. A merge is refused before anything is written, in check mode too, naming both; a skip (ON CONFLICT DO
    NOTHING) imports."""
    database, blob_dir = seeded
    export(database, tmp_path / "seed", blob_dir)
    with database.connect() as conn:
        conn.execute('ALTER TABLE "Artifact" REPLICA IDENTITY NOTHING')
        conn.execute('ALTER TABLE "A_Text" REPLICA IDENTITY NOTHING')
        conn.execute("CREATE PUBLICATION cdc FOR ALL TABLES")
    before = table_fingerprints(database)
    for check in (True, False):
        refused = call(phoenix_seed.main, database, check=check, state="imported", src=str(tmp_path / "seed"),
                       world="FRESH", conflict="merge", blob_dir=str(blob_dir))
        assert refused.get("failed") is True and refused["msg"] == refused_as_unidentified(
            "this import (conflict=merge)", "updates", 'public."Artifact"', "Artifact", "A_Text"), refused
    assert table_fingerprints(database) == before
    skipped = call(phoenix_seed.main, database, state="imported", src=str(tmp_path / "seed"), world="FRESH",
                   conflict="skip", blob_dir=str(blob_dir))
    assert skipped.get("failed") is not True and skipped["tables"]["A_Text"]["inserted"] > 0, skipped


def test_replace_removes_rows_the_seed_does_not_hold(seeded, tmp_path):
    database, blob_dir = seeded
    export(database, tmp_path / "seed", blob_dir)
    call(phoenix_world.main, database, id="ROUND_TRIP", seed={"users": 4, "artifacts": 10, "chats": 2,
                                                              "messages_per_chat": 3})
    result = call(phoenix_seed.main, database, state="imported", src=str(tmp_path / "seed"), conflict="replace",
                  blob_dir=str(blob_dir))
    assert result["tables"]["User"]["deleted"] == 1
    assert result["tables"]["Artifact"]["deleted"] == 2
    assert database.query('SELECT count(*) FROM "Artifact" WHERE world_id = %s', ("ROUND_TRIP",)) == [(8,)]


def test_tampered_seed_is_refused_before_writing(seeded, tmp_path):
    database, blob_dir = seeded
    dest = tmp_path / "seed"
    export(database, dest, blob_dir)
    call(phoenix_world.main, database, id="ROUND_TRIP", state="absent")
    with open(dest / "tables" / "User.jsonl", "ab") as handle:
        handle.write(b'{"id": "00000000-0000-0000-0000-000000000000"}\n')
    result = call(phoenix_seed.main, database, state="imported", src=str(dest), blob_dir=str(blob_dir))
    assert result["failed"] is True
    assert "tables/User.jsonl: sha256 mismatch" in result["msg"]
    assert database.query('SELECT count(*) FROM "WorldMeta"') == [(0,)]


@pytest.mark.parametrize("manifest, expected", [
    ({"version": "2.0.0"}, "source: Field required"),
    ({"version": "2.0.0", "createdAt": "x", "source": {"worldId": "lower", "environment": "BETA"}, "world": {},
      "tables": []}, "source.worldId"),
    ({"version": "2.0.0", "createdAt": "x", "source": {"worldId": "OK", "environment": "BETA"}, "world": {},
      "tables": [{"name": "User", "file": "../etc/passwd", "rows": 1, "sha256": "0" * 64}]}, "tables.0.file"),
])
def test_invalid_manifest_names_the_field(seeded, tmp_path, manifest, expected):
    database, _blob_dir = seeded
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "seed.json").write_text(json.dumps(manifest))
    result = call(phoenix_seed.main, database, state="imported", src=str(tmp_path / "bad"))
    assert result["failed"] is True
    assert expected in result["msg"]
    assert "Traceback" not in result["_raw"]


def test_orphaned_blobs(seeded, tmp_path):
    database, blob_dir = seeded
    planned = call(phoenix_seed.main, database, check=True, state="orphans_removed", blob_dir=str(blob_dir))
    assert planned["changed"] is True and planned["blobs"] == ["orphan.bin"]
    assert (blob_dir / "orphan.bin").exists()
    done = call(phoenix_seed.main, database, state="orphans_removed", blob_dir=str(blob_dir))
    assert done["blobs"] == ["orphan.bin"]
    assert sorted(os.listdir(blob_dir)) == ["logo.png"]
    assert call(phoenix_seed.main, database, state="orphans_removed", blob_dir=str(blob_dir))["changed"] is False


LEGACY_SEED = {
    "version": "1.0.0",
    "createdAt": "2024-05-01T10:00:00.000Z",
    "source": {"worldId": "LEGACY_WORLD", "environment": "LOCAL"},
    "world": {
        "metadata": {"name": "Legacy world", "description": "Written by the original seed manager",
                     "category": "onboarding", "tags": ["legacy"], "favouriteColour": "blue"},
        "users": [{"id": "11111111-1111-4111-8111-111111111111", "email": "admin@legacy.example", "type": "admin"},
                  {"email": "user@legacy.example", "nickname": "u"}],
        "artifacts": [
            {"id": "22222222-2222-4222-8222-222222222222", "title": "Welcome", "kind": "text",
             "content": "Hello there", "createdAt": "2024-05-01T10:00:00.000Z",
             "userId": "11111111-1111-4111-8111-111111111111"},
            {"title": "Team photo", "kind": "image", "url": "blob:team.png"},
            {"title": "Our CEO", "kind": "person", "fullName": "Ada Lovelace", "department": "Board"},
        ],
        "chats": [{"title": "First chat", "messages": [{"role": "user", "content": "Hi"},
                                                       {"role": "assistant", "content": "Hello!"}]}],
        "blobs": [{"key": "team.png", "file": "blobs/team.png", "contentType": "image/png"}],
    },
}


def test_original_1_0_0_format_imports(database, tmp_path):
    migrate(database)
    src = tmp_path / "legacy"
    (src / "blobs").mkdir(parents=True)
    (src / "blobs" / "team.png").write_bytes(PNG)
    (src / "seed.json").write_text(json.dumps(LEGACY_SEED))
    blob_dir = tmp_path / "blob_dir"
    result = call(phoenix_seed.main, database, state="imported", src=str(src), blob_dir=str(blob_dir))
    assert result.get("changed") is True, result
    assert {t: s["inserted"] for t, s in result["tables"].items()} == {
        "User": 2, "Artifact": 3, "A_Text": 1, "A_Image": 1, "A_Person": 1, "Chat": 1, "Message_v2": 2}
    messages = [w["event"]["msg"] for w in result["warnings"]]
    assert any("metadata" not in m and "users[1].nickname" in m for m in messages)
    assert database.query('SELECT name, category FROM "WorldMeta" WHERE id = %s', ("LEGACY_WORLD",)) == [
        ("Legacy world", "onboarding")]
    assert database.query('SELECT type FROM "User" WHERE email = %s', ("admin@legacy.example",)) == [("admin",)]
    assert database.query('SELECT content FROM "A_Text"') == [("Hello there",)]
    assert (blob_dir / "team.png").read_bytes() == PNG
    assert call(phoenix_seed.main, database, state="imported", src=str(src), blob_dir=str(blob_dir))["changed"] is False


# What the original seed manager wrote for a test world: an id of its own spelling, "never" as 0 hours.
ORIGINAL_TEST_WORLD = {
    "version": "1.0.0", "createdAt": "2025-07-03T07:36:45.944Z",
    "source": {"worldId": "world1", "environment": "LOCAL", "databaseUrl": "localhost"},
    "world": {"metadata": {"id": "world1", "name": "Test World 1", "category": "test", "isTemplate": False,
                           "isActive": True, "autoCleanup": False, "cleanupAfterHours": 0, "isolationLevel": "FULL",
                           "tags": [], "dependencies": [], "settings": {}, "createdBy": None},
              "users": [{"email": "tester@example.com", "name": "Tester"}], "artifacts": [], "chats": [], "blobs": []},
}


def test_an_original_seed_with_its_own_world_id_imports_under_the_id_given(database, tmp_path):
    migrate(database)
    src = tmp_path / "test-seed"
    src.mkdir()
    (src / "seed.json").write_text(json.dumps(ORIGINAL_TEST_WORLD))
    before = table_fingerprints(database)
    refused = call(phoenix_seed.main, database, state="imported", src=str(src))
    assert refused["failed"] is True
    assert "the seed's world id 'world1' is not a valid world id here" in refused["msg"]
    assert "(e.g. world: WORLD1)" in refused["msg"]
    assert table_fingerprints(database) == before

    imported = call(phoenix_seed.main, database, state="imported", src=str(src), world="WORLD1")
    assert imported["changed"] is True and imported["world"] == "WORLD1", imported
    assert database.query('SELECT name, category, "autoCleanup", "cleanupAfterHours" FROM "WorldMeta" WHERE id = %s',
                          ("WORLD1",)) == [("Test World 1", "test", False, 24)]  # 0 ("never") -> the default TTL
    assert database.query('SELECT world_id FROM "User" WHERE email = %s', ("tester@example.com",)) == [("WORLD1",)]
    assert call(phoenix_seed.main, database, state="imported", src=str(src), world="WORLD1")["changed"] is False


def test_the_original_onboarding_seed_fits_the_reference_schema(database):
    migrate(database)
    imported = call(phoenix_seed.main, database, state="imported", src=ONBOARDING_SEED)
    assert "failed" not in imported and imported["changed"], imported.get("msg")
    assert not imported.get("warnings"), imported["warnings"]
    assert {t: s["inserted"] for t, s in imported["tables"].items()} == {
        "User": 2, "Artifact": 13, "A_Text": 3, "A_Image": 1, "A_Person": 2, "A_Site": 1, "A_Address": 1,
        "A_FaqItem": 2, "A_Link": 1, "A_SetDefinition": 1, "A_SetItems": 2, "Chat": 1, "Message_v2": 2}
    assert database.query('SELECT name FROM "User" ORDER BY 1') == [("First-week Hire",), ("People Team Lead",)]
    assert database.query('SELECT "fullName", phone, location FROM "A_Person" ORDER BY 1') == [
        ("Noor Haddad", "+1 555 0100", None), ("Tomás Oliveira", None, "Floor 2")]
    assert database.query('SELECT tags, "isTemplate", "cleanupAfterHours" FROM "WorldMeta"') == [
        (["onboarding", "demo"], True, 24)]


def test_shop_round_trip(database, tmp_path):
    create_shop(database)
    fill_shop_world(database, "SHOP_A")
    query = ("SELECT c.name, o.total, o.note::text, l.line_no, l.sku, l.qty FROM shop.customers c "
             "JOIN shop.orders o ON o.customer_id = c.id JOIN shop.order_lines l ON l.order_id = o.id "
             "WHERE c.world_id = %s ORDER BY 1, 2, 4")
    before = database.query(query, ("SHOP_A",))
    assert call(phoenix_seed.main, database, state="exported", world="SHOP_A", dest=str(tmp_path / "s"))["tables"] == {
        "shop.customers": 3, "shop.orders": 6, "shop.order_lines": 12}
    run_module(phoenix_world.main, {"db_url": database.url, "stage": "BETA", "id": "SHOP_A", "state": "absent"})
    result = call(phoenix_seed.main, database, state="imported", src=str(tmp_path / "s"))
    assert result["tables"]["shop.order_lines"]["inserted"] == 12
    assert database.query(query, ("SHOP_A",)) == before


KILL_SCRIPT = """
import sys
from ansible_collections.phoenix.platform.plugins.modules import phoenix_seed
from ansible_collections.phoenix.platform.tests.helpers import run_module
run_module(phoenix_seed.main, {"db_url": sys.argv[1], "stage": "BETA", "state": "imported", "src": sys.argv[2],
                               "world": "KILLED"})
"""


KILL_CASES = {
    # schema -> (child table the import waits for, tables that must hold none of its rows)
    "reference": (("public", "Message_v2"), ("User", "Artifact", "Chat", "Message_v2")),
    "shop": (("shop", "order_lines"), ("shop.customers", "shop.orders")),
}


@pytest.mark.parametrize("schema", sorted(KILL_CASES))
def test_import_killed_part_way_leaves_no_row(database, tmp_path, schema):
    """The import is stopped while it waits to write a child table, after writing its parents' rows."""
    locked, checked = KILL_CASES[schema]
    if schema == "reference":
        migrate(database)
        call(phoenix_world.main, database, id="BIG", seed=SEED)
    else:
        create_shop(database)
        fill_shop_world(database, "BIG")
    call(phoenix_seed.main, database, state="exported", world="BIG", dest=str(tmp_path / "big"), include_blobs=False)
    lock = sql.SQL("LOCK TABLE {} IN SHARE MODE").format(sql.Identifier(*locked))  # the INSERT waits
    waited_in = kill_when_blocked(database, lock, KILL_SCRIPT, database.url, str(tmp_path / "big"))
    assert "INSERT INTO %s" % sql.Identifier(*locked).as_string(None) in waited_in, \
        "the import never reached %s.%s" % locked
    assert database.query('SELECT count(*) FROM "WorldMeta" WHERE id = %s', ("KILLED",)) == [(0,)]
    for table in checked:
        schema_name, _dot, name = table.rpartition(".")
        query = sql.SQL("SELECT count(*) FROM {} WHERE world_id = %s").format(
            sql.Identifier(schema_name or "public", name))
        with database.connect() as conn:
            assert conn.execute(query, ["KILLED"]).fetchone() == (0,)


def test_a_world_whose_rows_point_at_large_objects_is_not_exported_as_bare_oids(seeded, tmp_path):
    """A seed holds rows, not large objects: where it is imported, the OIDs would point at other documents."""
    database, blob_dir = seeded
    with database.connect() as conn:
        conn.execute(sql.SQL("CREATE TABLE public.scan (id int PRIMARY KEY, world_id text NOT NULL, document oid)"))
        conn.execute(sql.SQL("INSERT INTO public.scan VALUES (1, 'ROUND_TRIP', lo_from_bytea(0, 'a scan')), "
                             "(2, 'ROUND_TRIP', lo_from_bytea(0, 'another')), (3, 'OTHER', lo_from_bytea(0, 'x'))"))
    for check in (True, False):
        refused = export(database, tmp_path / "seed", blob_dir, check=check)
        assert refused["failed"] is True and "Traceback" not in refused["_raw"]
        assert refused["msg"] == (
            "rows of world ROUND_TRIP point at large objects: scan.document (2 large object(s)). A seed holds rows, "
            "not large objects, so where it is imported they would point at another large object of the same OID, "
            'or at none; nothing was written: send the column as NULL (mask {"<table>.<column>": "null"})')
        assert not (tmp_path / "seed").exists()
    masked = call(phoenix_seed.main, database, state="exported", world="ROUND_TRIP", dest=str(tmp_path / "seed"),
                  blob_dir=str(blob_dir), mask={"scan.document": "null"})
    assert masked["changed"] is True and masked["tables"]["scan"] == 2, masked.get("msg")
    assert all(json.loads(line)["document"] is None
               for line in (tmp_path / "seed" / "tables" / "scan.jsonl").read_text().splitlines())
    again = call(phoenix_seed.main, database, state="exported", world="ROUND_TRIP", dest=str(tmp_path / "seed"),
                 blob_dir=str(blob_dir), mask={"scan.document": "null"})
    assert again["changed"] is False, again.get("msg")


def test_a_value_a_column_cannot_take_is_named_without_showing_it(seeded, tmp_path):
    """A seed edited by hand (its checksums made anew): the server's refusal quotes the value, which may be a
    password hash; the message names the type instead."""
    database, blob_dir = seeded
    dest = tmp_path / "seed"
    export(database, dest, blob_dir)
    users = dest / "tables" / "User.jsonl"
    rows = [json.loads(line) for line in users.read_text().splitlines()]
    rows[0]["createdAt"] = PASSWORD_HASH
    users.write_text("".join(json.dumps(row) + "\n" for row in rows))
    manifest = json.loads((dest / "seed.json").read_text())
    for table in manifest["tables"]:
        table["sha256"] = hashlib.sha256((dest / table["file"]).read_bytes()).hexdigest()
    (dest / "seed.json").write_text(json.dumps(manifest))
    call(phoenix_world.main, database, id="ROUND_TRIP", state="absent")
    before = table_fingerprints(database)
    result = call(phoenix_seed.main, database, state="imported", src=str(dest), blob_dir=str(blob_dir))
    assert result["failed"] is True and "Traceback" not in result["_raw"]
    assert 'invalid input syntax for type timestamp with time zone: "..."' in result["msg"], result["msg"]
    assert PASSWORD_HASH not in result["_raw"] and "N9qo8uLOick" not in result["_raw"]
    assert table_fingerprints(database) == before
