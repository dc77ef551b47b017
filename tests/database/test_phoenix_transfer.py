"""phoenix_transfer between two real databases of the test server."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg import sql

from ansible_collections.phoenix.platform.plugins.modules import phoenix_transfer, phoenix_user, phoenix_world
from ansible_collections.phoenix.platform.tests.helpers import run_module

from conftest import kill_when_blocked, refused_as_unidentified
from worlds_fixtures import create_shop, fill_shop_world, table_fingerprints

pytestmark = pytest.mark.usefixtures("clean_env")
SEED = {"users": 3, "artifacts": 8, "chats": 2, "messages_per_chat": 3}
CONTENT = {  # the rows of a world, per table, without world ids or keys that renaming changes
    "User": 'SELECT email, name, type FROM "User" WHERE world_id = %s',
    "Artifact": 'SELECT "createdAt", title, kind FROM "Artifact" WHERE world_id = %s',
    "A_Text": 'SELECT t.content FROM "A_Text" t JOIN "Artifact" a ON (a.id, a."createdAt") = '
              '(t."artifactId", t."createdAt") WHERE a.world_id = %s',
    "Message_v2": 'SELECT role, parts::text FROM "Message_v2" WHERE world_id = %s',
}


def transfer(source, target, check=False, diff=False, source_stage="LOCAL", target_stage="BETA", **options):
    return run_module(phoenix_transfer.main, dict({"db_url": target.url, "stage": target_stage,
                                                   "source": {"db_url": source.url, "stage": source_stage}},
                                                  **options), check=check, diff=diff)


def content(database, world):
    return {t: sorted(database.query(q, (world,))) for t, q in CONTENT.items()}


def xmins(database):
    return database.query('SELECT xmin::text, id::text FROM "Artifact" UNION ALL SELECT xmin::text, id FROM "WorldMeta" '
                          "ORDER BY 2")


def test_plan_equals_the_run_and_second_run_rewrites_nothing(pair):
    source, target = pair
    before = table_fingerprints(target)
    plan = transfer(source, target, check=True, diff=True, worlds=["UC_TESTING"])
    assert plan["changed"] is True
    assert table_fingerprints(target) == before
    sample = plan["diff"]["after"]
    assert sample["Artifact"]["insert"][5:] == ["+3 more"]  # bounded: five keys a table, then how many more
    assert len(set(sample["Artifact"]["insert"][:5])) == 5
    assert sample["WorldMeta"] == {"insert": ["UC_TESTING"]}
    assert plan["diff"]["before"] == {}  # nothing there yet: nothing updated or deleted
    done = transfer(source, target, worlds=["UC_TESTING"])
    assert done["plan"] == plan["plan"]
    assert done["plan"]["Artifact"] == {"insert": 8, "update": 0, "unchanged": 0, "delete": 0}
    assert done["plan"]["WorldMeta"]["insert"] == 1
    assert content(target, "UC_TESTING") == content(source, "UC_TESTING")
    assert target.query('SELECT environment FROM "WorldMeta" WHERE id = %s', ("UC_TESTING",)) == [("BETA",)]
    rows_before = xmins(target)
    again = transfer(source, target, worlds=["UC_TESTING"])
    assert again["changed"] is False
    assert all(p["insert"] == p["update"] == p["delete"] == 0 for p in again["plan"].values())
    assert xmins(target) == rows_before
    assert done["rows_per_second"] > 0 and done["duration"] > 0


def test_suffix_rekeys_and_updates_and_deletes(pair):
    source, target = pair
    result = transfer(source, target, worlds=["UC_TESTING"], suffix="_BETA")
    assert result["worlds"] == {"UC_TESTING": "UC_TESTING_BETA"}
    assert content(target, "UC_TESTING_BETA") == content(source, "UC_TESTING")
    ids = {r[0] for r in target.query('SELECT id FROM "Artifact" WHERE world_id = %s', ("UC_TESTING_BETA",))}
    expected = {r[0] for r in source.query("SELECT md5('UC_TESTING_BETA:' || id::text)::uuid FROM \"Artifact\" "
                                           "WHERE world_id = %s", ("UC_TESTING",))}
    assert ids == expected
    with source.connect() as conn:  # change one row, delete one chat's messages
        conn.execute(sql.SQL('UPDATE "Artifact" SET title = %s WHERE world_id = %s AND kind = %s'),
                     ["Renamed", "UC_TESTING", "person"])
        conn.execute(sql.SQL('DELETE FROM "Message_v2" WHERE world_id = %s'), ["UC_TESTING"])
    plan = transfer(source, target, check=True, diff=True, worlds=["UC_TESTING"], suffix="_BETA", delete_missing=True)
    assert plan["plan"]["Artifact"]["update"] == 1  # the one person artifact
    assert plan["plan"]["Message_v2"]["delete"] == 6
    person = target.query('SELECT concat_ws(\'/\', id::text, "createdAt"::text) FROM "Artifact" '
                          "WHERE world_id = %s AND kind = %s", ("UC_TESTING_BETA", "person"))[0][0]
    assert plan["diff"]["before"]["Artifact"] == plan["diff"]["after"]["Artifact"] == {"update": [person]}
    assert plan["diff"]["before"]["Message_v2"]["delete"][5:] == ["+1 more"]
    assert "Message_v2" not in plan["diff"]["after"]
    skipped = transfer(source, target, check=True, worlds=["UC_TESTING"], suffix="_BETA", conflict="skip")
    assert skipped["plan"]["Artifact"]["update"] == 0
    refused = transfer(source, target, worlds=["UC_TESTING"], suffix="_BETA", conflict="fail")
    assert refused["failed"] is True and "conflict=fail" in refused["msg"]
    done = transfer(source, target, worlds=["UC_TESTING"], suffix="_BETA", delete_missing=True)
    assert done["plan"] == plan["plan"]
    assert content(target, "UC_TESTING_BETA") == content(source, "UC_TESTING")


def test_prod_to_local_masks_personal_data(pg_cluster, pair):
    source, target = pair
    with psycopg.connect(source.url, autocommit=True) as conn:
        conn.execute(sql.SQL("UPDATE phoenix.environment SET stage = 'PROD'"))
    run_module(phoenix_user.main, {"db_url": source.url, "stage": "PROD", "email": "real.person@corp.example",
                                   "name": "Real Person", "password": "secret"})
    with psycopg.connect(target.url, autocommit=True) as conn:
        conn.execute(sql.SQL("UPDATE phoenix.environment SET stage = 'LOCAL'"))
    originals = source.query('SELECT email, name FROM "User"')
    people = source.query('SELECT "fullName" FROM "A_Person"')
    result = transfer(source, target, source_stage="PROD", target_stage="LOCAL", worlds=["UC_TESTING"],
                      production_data=True)
    assert result["changed"] is True, result
    assert "User.email" in result["masked"]
    emails = {r[0] for r in target.query('SELECT email FROM "User"')}
    names = {r[0] for r in target.query('SELECT name FROM "User"')} | {r[0] for r in target.query(
        'SELECT "fullName" FROM "A_Person"')}
    for email, name in originals:
        assert email not in emails and name not in names
    assert not {p[0] for p in people} & names
    assert all(e.endswith("@example.invalid") for e in emails)
    assert target.query('SELECT count(*) FROM "User" WHERE world_id IS NULL') == [(1,)]
    assert target.query('SELECT count(*) FROM "User" WHERE password IS NOT NULL') == [(0,)]
    assert transfer(source, target, source_stage="PROD", target_stage="LOCAL", worlds=["UC_TESTING"],
                    production_data=True)["changed"] is False
    unmasked = transfer(source, target, check=True, source_stage="PROD", target_stage="LOCAL",
                        worlds=["UC_TESTING"], mask={"User.email": "keep"})
    assert unmasked["failed"] is True and "allow_unmasked" in unmasked["msg"]


def test_into_prod_needs_allow_prod_and_fails_before_writing(pair):
    source, target = pair
    with psycopg.connect(target.url, autocommit=True) as conn:
        conn.execute(sql.SQL("UPDATE phoenix.environment SET stage = 'PROD'"))
    before = table_fingerprints(target)
    refused = transfer(source, target, target_stage="PROD", worlds=["UC_TESTING"])
    assert refused["failed"] is True and "allow_prod=true" in refused["msg"]
    assert table_fingerprints(target) == before


def test_schema_mismatch_lists_the_differences(pair):
    source, target = pair
    with psycopg.connect(target.url, autocommit=True) as conn:
        conn.execute(sql.SQL('ALTER TABLE "Chat" ADD COLUMN pinned boolean'))
        conn.execute(sql.SQL('ALTER TABLE "A_Image" ALTER COLUMN width TYPE bigint'))
    before = table_fingerprints(target)
    result = transfer(source, target, worlds=["UC_TESTING"])
    assert result["failed"] is True
    assert "Chat.pinned: missing in the source" in result["msg"]
    assert "A_Image.width: integer in the source, bigint in the target" in result["msg"]
    assert table_fingerprints(target) == before


def test_wrong_source_stage_and_bad_input(pair):
    source, target = pair
    fenced = transfer(source, target, source_stage="PROD", worlds=["UC_TESTING"])
    assert fenced["failed"] is True and "registered as LOCAL" in fenced["msg"]
    assert "include names unknown groups" in transfer(source, target, include=["planets"])["msg"]
    assert "not a valid world id" in transfer(source, target, worlds=["bad id"])["msg"]
    secret = "Source-Pw-123"
    wrong = run_module(
        phoenix_transfer.main, {"db_url": target.url, "stage": "BETA", "source": {
            "login_host": "127.0.0.1", "login_port": source.cluster.port, "login_user": "postgres",
            "login_password": secret, "login_db": source.name, "stage": "LOCAL"}})
    assert wrong["failed"] is True and secret not in wrong["_raw"]


KILL_SCRIPT = """
import sys
from ansible_collections.phoenix.platform.plugins.modules import phoenix_transfer
from ansible_collections.phoenix.platform.tests.helpers import run_module
run_module(phoenix_transfer.main, {"db_url": sys.argv[2], "stage": "BETA",
                                   "source": {"db_url": sys.argv[1], "stage": "LOCAL"}, "worlds": ["UC_TESTING"]})
"""


def test_killed_transfer_leaves_the_target_unchanged(pair):
    source, target = pair
    before = table_fingerprints(target)
    lock = sql.SQL('LOCK TABLE "Message_v2" IN SHARE MODE')  # the INSERT waits here
    waited_in = kill_when_blocked(target, lock, KILL_SCRIPT, source.url, target.url)
    assert waited_in.startswith("INSERT"), "the transfer never reached its inserts"
    assert table_fingerprints(target) == before


def test_same_emails_under_other_keys(pair):
    """The target world already holds the users under other ids: refused clearly, or mirrored."""
    source, target = pair
    run_module(phoenix_world.main, {"db_url": target.url, "stage": "BETA", "id": "UC_TESTING", "seed": SEED})
    with psycopg.connect(target.url, autocommit=True) as conn:  # same emails, other keys
        conn.execute(sql.SQL('DELETE FROM "Message_v2"'))
        conn.execute(sql.SQL('DELETE FROM "Chat"'))
        conn.execute(sql.SQL('DELETE FROM "A_SetItems"; DELETE FROM "A_Text"; DELETE FROM "A_Image"; '
                             'DELETE FROM "A_Person"; DELETE FROM "Artifact"'))
        conn.execute(sql.SQL('UPDATE "User" SET id = md5(id::text)::uuid'))
    before = table_fingerprints(target)
    refused = transfer(source, target, worlds=["UC_TESTING"])
    assert refused["failed"] is True and "delete_missing=true" in refused["msg"]
    assert table_fingerprints(target) == before
    mirrored = transfer(source, target, worlds=["UC_TESTING"], delete_missing=True)
    assert mirrored["plan"]["User"] == {"insert": 3, "update": 0, "unchanged": 0, "delete": 3}
    assert content(target, "UC_TESTING") == content(source, "UC_TESTING")


def test_a_transfer_moves_the_whole_world_unless_told_otherwise_and_says_what_it_leaves_out(pair):
    source, target = pair
    for database, stage in zip(pair, ("LOCAL", "BETA")):
        create_shop(database, stage, app_schema="reference")
    fill_shop_world(source, "SHOP_A")
    counted = 'SELECT count(*) FROM shop.customers c JOIN shop.orders o ON o.customer_id = c.id WHERE c.world_id = %s'
    whole = transfer(source, target, worlds=["SHOP_A"])
    assert whole["changed"] is True and whole["left_out"] == []
    assert {"shop.customers", "shop.orders", "shop.order_lines"} <= set(whole["plan"])  # tables no group names
    assert target.query(counted, ("SHOP_A",)) == source.query(counted, ("SHOP_A",)) == [(6,)]

    fill_shop_world(source, "SHOP_B")
    before = table_fingerprints(target)
    partial = transfer(source, target, worlds=["SHOP_B"], include=["worlds"], check=True)
    assert partial["left_out"] == ["A_Address", "A_FaqItem", "A_Image", "A_Link", "A_Person", "A_SetDefinition",
                                   "A_SetItems", "A_Site", "A_Text", "Artifact", "Chat", "Message_v2", "Suggestion",
                                   "User", "shop.customers", "shop.order_lines", "shop.orders"]
    warnings = [w["event"]["msg"] if isinstance(w, dict) else w for w in partial.get("warnings", [])]
    assert any("include=worlds leaves out these tables of the world" in w and "shop.orders" in w for w in warnings)
    assert table_fingerprints(target) == before


def test_references_to_production_rows_keep_their_keys_under_a_rename(pair):
    source, target = pair
    author = uuid.uuid4()
    for database in pair:  # the same production user on both sides, as a shared account would be
        with database.connect() as conn:
            conn.execute("INSERT INTO \"User\" (id, email) VALUES (%s, 'editor@prod.example')", [author])
    with source.connect() as conn:
        conn.execute('UPDATE "Artifact" SET "authorId" = %s WHERE world_id = %s', [author, "UC_TESTING"])
    moved = transfer(source, target, worlds=["UC_TESTING"], suffix="_BETA")
    assert moved["changed"], moved.get("msg")
    assert target.query('SELECT DISTINCT "authorId" FROM "Artifact" WHERE world_id = %s', ("UC_TESTING_BETA",)) == \
        [(author,)]
    assert target.query('SELECT count(*) FROM "User" WHERE world_id IS NULL') == [(1,)]


def test_a_world_whose_rows_point_at_large_objects_is_refused_not_pointed_at_another_document(pair):
    """A transfer moves rows, not large objects: the target may hold another document under the same OID."""
    source, target = pair
    for database in (source, target):
        with database.connect() as conn:
            conn.execute(sql.SQL("CREATE TABLE public.scan (id int PRIMARY KEY, world_id text NOT NULL, document oid)"))
    with source.connect() as conn:
        document = conn.execute(sql.SQL("SELECT lo_from_bytea(0, 'a scan of UC_TESTING')")).fetchone()[0]
        conn.execute(sql.SQL("INSERT INTO public.scan VALUES (1, 'UC_TESTING', %s), (2, 'UC_OTHER', NULL)"), [document])
    with target.connect() as conn:
        conn.execute(sql.SQL("SELECT lo_from_bytea(%s, 'a document of BETA')"), [document])
    before = table_fingerprints(target)
    for check in (True, False):
        refused = transfer(source, target, check=check, worlds=["UC_TESTING"])
        assert refused["failed"] is True and "Traceback" not in refused["_raw"]
        assert refused["msg"] == (
            "rows of the worlds point at large objects: scan.document (1 large object(s)). A transfer moves rows, not "
            "large objects, so in the target they would point at another large object of the same OID, or at none; "
            "nothing was written: leave those tables out (include), or send the column as NULL "
            '(mask {"<table>.<column>": "null"})')
        assert table_fingerprints(target) == before
    moved = transfer(source, target, worlds=["UC_OTHER"])  # its scan points at none
    assert moved["changed"] is True and moved["plan"]["scan"]["insert"] == 1, moved.get("msg")
    masked = transfer(source, target, worlds=["UC_TESTING"], mask={"scan.document": "null"})
    assert masked["changed"] is True, masked.get("msg")
    assert target.query("SELECT id, document FROM public.scan ORDER BY id") == [(1, None), (2, None)]
    again = transfer(source, target, worlds=["UC_TESTING"], mask={"scan.document": "null"})
    assert again["changed"] is False and again["plan"]["scan"]["unchanged"] == 1, again.get("msg")


def test_updates_into_a_table_published_without_a_replica_identity_are_refused_before_writing(pair):
    """The target's change pipeline publishes every table, and its "A_Text" has REPLICA IDENTITY NOTHING: the server
    refuses any update of it. A transfer that would update its rows is refused before anything is written, in check
    mode too; one that only inserts, or skips what differs, goes ahead."""
    source, target = pair
    transfer(source, target, worlds=["UC_TESTING"])
    with source.connect() as conn:
        conn.execute(sql.SQL('UPDATE "A_Text" t SET content = %s FROM "Artifact" a WHERE (a.id, a."createdAt") = '
                             '(t."artifactId", t."createdAt") AND a.world_id = %s'), ["edited", "UC_TESTING"])
    with target.connect() as conn:
        conn.execute('ALTER TABLE "A_Text" REPLICA IDENTITY NOTHING')
        conn.execute("CREATE PUBLICATION cdc FOR ALL TABLES")
    before = table_fingerprints(target)
    for check in (True, False):
        refused = transfer(source, target, check=check, worlds=["UC_TESTING"])
        assert refused.get("failed") is True and refused["msg"] == refused_as_unidentified(
            "this transfer", "updates", 'public."A_Text"', "A_Text"), refused
    assert table_fingerprints(target) == before
    skipped = transfer(source, target, worlds=["UC_TESTING"], conflict="skip")
    assert skipped.get("failed") is not True and skipped["changed"] is False, skipped
    with target.connect() as conn:
        conn.execute('ALTER TABLE "A_Text" REPLICA IDENTITY DEFAULT')
    done = transfer(source, target, worlds=["UC_TESTING"])
    assert done["plan"]["A_Text"]["update"] > 0 and content(target, "UC_TESTING") == content(source, "UC_TESTING")
