"""The collection on a database shaped like the original WelcomeCraft: its own "WorldMeta" (adopted), uuid keys,
versioned artifacts with one content table per kind, timestamps without time zone, json columns."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest
from psycopg import sql

from ansible_collections.phoenix.platform.plugins.modules import (
    phoenix_backup,
    phoenix_health,
    phoenix_restore,
    phoenix_schema,
    phoenix_seed,
    phoenix_transfer,
    phoenix_user,
    phoenix_world,
    phoenix_world_cleanup,
    phoenix_world_info,
)
from ansible_collections.phoenix.platform.tests.helpers import run_module

from conftest import Database
from original_schema import ONBOARDING_SEED, build_original

pytestmark = pytest.mark.usefixtures("clean_env")

# The shape of the application's tables: columns with types, nullability and defaults, and constraints.
APPLICATION_SHAPE = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid
LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
WHERE n.nspname IN ('public', 'drizzle') AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT c.relname, k.conname, pg_get_constraintdef(k.oid), true, NULL
FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname IN ('public', 'drizzle')
ORDER BY 1, 2
"""


def schema(database, check=False, **options):
    return run_module(phoenix_schema.main, dict({"db_url": database.url, "stage": "BETA", "app_schema": "none"},
                                                **options), check=check, diff=True)


@pytest.fixture
def original(database):
    """A database the application's migrator built, before Phoenix has seen it."""
    assert build_original(database) == 13
    return database


def test_the_applications_migrator_built_the_original_shape(original):
    assert original.query('SELECT count(*) FROM drizzle."__drizzle_migrations"') == [(13,)]
    assert original.query("SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                          "WHERE attrelid = '\"WorldMeta\"'::regclass AND attname = 'createdBy'") == [("uuid",)]


def test_schema_adopts_the_applications_world_meta_and_alters_nothing_of_it(original):
    shape = original.query(APPLICATION_SHAPE)
    preview = schema(original, check=True)
    assert preview["changed"] and preview["world_meta"] is None
    assert preview["diff"]["after"]["world_meta"] == "application"
    assert original.query("SELECT to_regclass('phoenix.migrations') IS NULL") == [(True,)]
    first = schema(original)
    assert first["changed"] and first["world_meta"] == "application", first
    assert original.query("SELECT version, name FROM phoenix.migrations ORDER BY 1") == [
        (1, "phoenix_core"), (2, "world_meta_adopted"), (7, "key_map"), (8, "key_map_batches"), (9, "key_map_batch_key")]
    assert original.query(APPLICATION_SHAPE) == shape
    again = schema(original)
    assert not again["changed"] and again["world_meta"] == "application"


def test_a_world_meta_lacking_columns_is_refused_with_their_names(original):
    with original.connect() as conn:
        conn.execute(sql.SQL('ALTER TABLE "WorldMeta" DROP COLUMN "autoCleanup", DROP COLUMN "isolationLevel"'))
    result = schema(original)
    assert result["failed"]
    assert "lacks the column(s) autoCleanup, isolationLevel" in result["msg"] and "nothing was changed" in result["msg"]
    assert original.query("SELECT to_regclass('phoenix.migrations') IS NULL") == [(True,)]


def test_the_reference_schema_is_not_installed_over_an_applications_world_meta(original):
    result = schema(original, app_schema="reference")
    assert result["failed"] and "Use app_schema=none to adopt it" in result["msg"], result


def call(main, database, check=False, stage="BETA", **options):
    return run_module(main, dict({"db_url": database.url, "stage": stage}, **options), check=check, diff=True)


def application_digest(database) -> dict[str, tuple[int, str]]:
    """Row count and an order-independent checksum of every application table but the world registry."""
    tables = database.query("SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                            "WHERE n.nspname = 'public' AND c.relkind = 'r' AND relname <> 'WorldMeta' ORDER BY 1")
    digest = {}
    with database.connect() as conn:
        for (table,) in tables:
            digest[table] = conn.execute(sql.SQL(
                "SELECT count(*), coalesce(md5(string_agg(md5(t::text), '' ORDER BY md5(t::text))), '') FROM {} t"
            ).format(sql.Identifier(table))).fetchone()
    return digest


@pytest.fixture
def adopted(original):
    """The original database with Phoenix's schema next to the application's."""
    assert schema(original)["world_meta"] == "application"
    return original


def add_hand_written_rows(database, world: str) -> None:
    """Values as the application writes them: json with its own key order and spacing, an embedding, a
    timestamp with microseconds and no time zone."""
    with database.connect() as conn:
        chat = conn.execute(sql.SQL('SELECT id FROM "Chat" WHERE world_id = %s ORDER BY id LIMIT 1'), [world]).fetchone()[0]
        conn.execute(sql.SQL(
            'INSERT INTO "Message_v2" (id, "chatId", role, parts, attachments, "createdAt", world_id) '
            "VALUES (%s, %s, 'assistant', %s::json, '[ ]'::json, '2025-06-30 09:15:00.123456', %s)"),
            [uuid.uuid5(uuid.NAMESPACE_URL, world), chat, '[{"type": "text",  "text": "Hi", "a": 1}]', world])
        conn.execute(sql.SQL('UPDATE "Artifact" SET embedding = %s, publication_state = %s::jsonb '
                             "WHERE world_id = %s"), [[0.25, -1.5e-7, 3.0], '[{"site": "intranet"}]', world])


def test_worlds_live_in_the_applications_registry(adopted):
    created = call(phoenix_world.main, adopted, id="UC_ORIGINAL", is_template=True, tags=["demo"],
                   seed={"users": 3, "artifacts": 12, "chats": 2})
    assert created["changed"] and "failed" not in created, created
    assert created["rows_added"]["Artifact"] == 12 and created["rows_added"]["A_Person"] == 2
    assert adopted.query('SELECT "createdBy", users, tags, settings, environment FROM "WorldMeta"') == [
        (None, [], ["demo"], {}, "BETA")]
    again = call(phoenix_world.main, adopted, id="UC_ORIGINAL", is_template=True, tags=["demo"],
                 seed={"users": 3, "artifacts": 12, "chats": 2})
    assert not again["changed"], again["rows_added"]
    clone = call(phoenix_world.main, adopted, id="UC_CLONE", from_template="UC_ORIGINAL", dependencies=["UC_ORIGINAL"])
    assert clone["rows_added"] == created["rows_added"]
    assert adopted.query('SELECT dependencies, "usageCount" FROM "WorldMeta" ORDER BY id') == [
        (["UC_ORIGINAL"], 0), ([], 1)]
    listed = call(phoenix_world_info.main, adopted, tags=["demo"])
    assert [w["id"] for w in listed["worlds"]] == ["UC_ORIGINAL"]
    assert json.loads(listed["_raw"])["worlds"][0]["rows"]["A_Text"] == created["rows_added"]["A_Text"]
    refused = call(phoenix_world.main, adopted, id="UC_ORIGINAL", state="absent")
    assert refused["failed"] and "UC_CLONE" in refused["msg"]


def test_export_delete_import_gives_the_same_rows_byte_for_byte(adopted, tmp_path):
    call(phoenix_world.main, adopted, id="UC_ORIGINAL", seed={"users": 2, "artifacts": 7, "chats": 2})
    add_hand_written_rows(adopted, "UC_ORIGINAL")
    before = application_digest(adopted)
    exported = call(phoenix_seed.main, adopted, world="UC_ORIGINAL", state="exported", dest=str(tmp_path / "seed"))
    assert exported["changed"], exported
    assert call(phoenix_world.main, adopted, id="UC_ORIGINAL", state="absent")["changed"]
    assert application_digest(adopted) != before
    imported = call(phoenix_seed.main, adopted, state="imported", src=str(tmp_path / "seed"))
    assert imported["changed"] and not imported.get("warnings"), imported.get("msg", imported)
    assert application_digest(adopted) == before
    assert adopted.query("SELECT parts::text FROM \"Message_v2\" WHERE role = 'assistant' AND parts::text LIKE '%%Hi%%'") \
        == [('[{"type": "text",  "text": "Hi", "a": 1}]',)]
    again = call(phoenix_seed.main, adopted, state="imported", src=str(tmp_path / "seed"))
    assert not again["changed"]


@pytest.fixture
def second_original(pg_cluster):
    """Another database the application's migrator built, adopted as LOCAL."""
    name = "wc_" + uuid.uuid4().hex[:10]
    with psycopg.connect(**pg_cluster.conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    database = Database(pg_cluster, name)
    build_original(database)
    assert schema(database, stage="LOCAL")["world_meta"] == "application"
    yield database
    with psycopg.connect(**pg_cluster.conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_a_transfer_with_a_suffix_between_two_original_databases_is_exact_and_converges(adopted, second_original):
    source = second_original
    call(phoenix_world.main, source, stage="LOCAL", id="UC_TOUR", seed={"users": 3, "artifacts": 12, "chats": 2})
    add_hand_written_rows(source, "UC_TOUR")
    options = {"db_url": adopted.url, "stage": "BETA", "source": {"db_url": source.url, "stage": "LOCAL"},
               "worlds": ["UC_TOUR"], "suffix": "_BETA"}
    moved = run_module(phoenix_transfer.main, options)
    assert moved["changed"] and "failed" not in moved, moved
    assert not moved.get("left_out"), moved
    counts = call(phoenix_world_info.main, source, stage="LOCAL")["worlds"][0]["rows"]
    copied = call(phoenix_world_info.main, adopted)["worlds"]
    assert [w["id"] for w in copied] == ["UC_TOUR_BETA"] and copied[0]["rows"] == counts
    assert adopted.query("SELECT parts::text FROM \"Message_v2\" WHERE parts::text LIKE '%%Hi%%'") == \
        [('[{"type": "text",  "text": "Hi", "a": 1}]',)]
    assert adopted.query('SELECT DISTINCT embedding FROM "Artifact"') == [([0.25, -1.5e-7, 3.0],)]
    written = adopted.statistics("SELECT sum(n_tup_ins + n_tup_upd + n_tup_del) FROM pg_stat_user_tables")
    again = run_module(phoenix_transfer.main, options)
    assert not again["changed"], again
    assert adopted.statistics("SELECT sum(n_tup_ins + n_tup_upd + n_tup_del) FROM pg_stat_user_tables") == written


def test_an_expired_world_is_cleaned_up(adopted):
    call(phoenix_world.main, adopted, id="UC_OLD", seed={"users": 1, "artifacts": 3, "chats": 1})
    call(phoenix_world.main, adopted, id="UC_NEW", seed={"users": 1, "artifacts": 1, "chats": 0})
    with adopted.connect() as conn:  # the application's own "never": NULL hours, which means the default TTL
        conn.execute(sql.SQL('UPDATE "WorldMeta" SET "cleanupAfterHours" = NULL, '
                             "\"createdAt\" = now() - interval '25 hours' WHERE id = 'UC_OLD'"))
    preview = call(phoenix_world_cleanup.main, adopted, check=True)
    assert preview["removed"] == ["UC_OLD"]
    done = call(phoenix_world_cleanup.main, adopted)
    assert done["removed"] == ["UC_OLD"] and done["rows_deleted"]["Artifact"] == 3
    assert adopted.query('SELECT id FROM "WorldMeta"') == [("UC_NEW",)]
    assert adopted.query('SELECT count(*) FROM "A_Text"') == [(1,)] or adopted.query(
        'SELECT count(*) FROM "A_Text" t JOIN "Artifact" a ON a.id = t."artifactId" WHERE a.world_id = \'UC_OLD\'') == [(0,)]


def test_users_of_the_application(adopted):
    made = call(phoenix_user.main, adopted, email="admin@tour.example", role="admin", password="S3cret-pass!")
    assert "failed" not in made and made["changed"], made.get("msg")
    assert "S3cret-pass!" not in made["_raw"]
    assert adopted.query('SELECT type, world_id FROM "User" WHERE email = %s', ("admin@tour.example",)) == \
        [("admin", None)]
    again = call(phoenix_user.main, adopted, email="admin@tour.example", role="admin", password="S3cret-pass!",
                 update_password="on_create")
    assert not again["changed"]
    named = call(phoenix_user.main, adopted, email="hire@tour.example", name="New Hire", world=None)
    assert named["changed"] and named["user"]["name"] == "New Hire"


def test_users_of_an_application_without_user_names(adopted):
    with adopted.connect() as conn:
        conn.execute(sql.SQL('ALTER TABLE "User" DROP COLUMN name'))
    made = call(phoenix_user.main, adopted, email="admin@tour.example", role="admin")
    assert "failed" not in made and made["changed"] and made["user"]["name"] is None, made.get("msg")
    named = call(phoenix_user.main, adopted, email="hire@tour.example", name="New Hire")
    assert named["failed"] and 'has no name column: leave name unset' in named["msg"]
    assert adopted.query('SELECT email FROM "User"') == [("admin@tour.example",)]


@pytest.mark.parametrize("backup, restore", [
    ({}, {"safety_backup": False}),
    ({"format": "directory", "compress": "zstd"}, {"mode": "swap", "jobs": 2}),
], ids=["in_place", "swap"])
def test_backup_restore_and_health(adopted, tmp_path, backup, restore):
    call(phoenix_world.main, adopted, id="UC_ORIGINAL", seed={"users": 2, "artifacts": 6, "chats": 1})
    add_hand_written_rows(adopted, "UC_ORIGINAL")
    before = application_digest(adopted)
    migrations = adopted.query("SELECT * FROM drizzle.__drizzle_migrations ORDER BY 1")
    assert migrations  # the application's own migration history, which a restore must bring back as it was
    made = call(phoenix_backup.main, adopted, dest=str(tmp_path), **backup)
    assert made["changed"], made
    call(phoenix_world.main, adopted, id="UC_ORIGINAL", state="absent")
    restored = call(phoenix_restore.main, adopted, backup=made["backup"]["path"], **restore)
    if restored.get("kept_database"):
        with adopted.connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(restored["kept_database"])))
    assert restored["changed"] and "failed" not in restored, restored
    assert application_digest(adopted) == before
    assert adopted.query("SELECT * FROM drizzle.__drizzle_migrations ORDER BY 1") == migrations
    health = call(phoenix_health.main, adopted, backup_dir=str(tmp_path))
    assert health["status"] == "healthy", health["checks"]
    assert health["checks"]["worlds"]["status"] == "healthy", health["checks"]["worlds"]


def test_the_original_onboarding_seed_lands_in_every_content_table(adopted):
    imported = call(phoenix_seed.main, adopted, state="imported", src=ONBOARDING_SEED)
    assert "failed" not in imported and imported["changed"], imported.get("msg")
    assert not imported.get("warnings"), imported["warnings"]
    assert adopted.query('SELECT name, type FROM "User" ORDER BY 1') == [
        ("First-week Hire", "user"), ("People Team Lead", "admin")]
    kinds = dict(adopted.query('SELECT kind, count(*) FROM "Artifact" GROUP BY 1'))
    assert kinds == {"site": 1, "text": 1, "code": 1, "sheet": 1, "image": 1, "person": 2, "address": 1,
                     "faq-item": 2, "link": 1, "set-definition": 1, "set": 1}
    assert adopted.query('SELECT "fullName", position, phone FROM "A_Person" ORDER BY 1') == [
        ("Noor Haddad", "Head of People", "+1 555 0100"), ("Tomás Oliveira", "Helpdesk lead", None)]
    assert adopted.query('SELECT "siteDefinition"->>\'theme\', jsonb_array_length("siteDefinition"->\'blocks\') '
                         'FROM "A_Site"') == [("calm", 4)]
    assert adopted.query('SELECT "streetAddress", city, country FROM "A_Address"') == [
        ("12 Harbour Street", "Portsmouth", "United States")]
    assert adopted.query('SELECT question, category FROM "A_FaqItem" ORDER BY 2') == [
        ("When is payday?", "Finance"), ("When do I get my laptop?", "IT")]
    assert adopted.query('SELECT url, title FROM "A_Link"') == [("https://handbook.tour.example", "Company handbook")]
    assert adopted.query('SELECT definition FROM "A_SetDefinition"') == [
        ({"itemKind": "person", "fields": ["fullName", "position"]},)]
    assert adopted.query('SELECT a.title FROM "A_SetItems" s JOIN "Artifact" a ON a.id = s."itemId" '
                         'ORDER BY s."order"') == [("Head of People",), ("IT helpdesk",)]
    assert adopted.query('SELECT url FROM "A_Image"') == [("https://images.tour.example/office-map.png",)]
    assert dict(adopted.query('SELECT a.kind, t.content FROM "A_Text" t JOIN "Artifact" a ON a.id = t."artifactId"')) == {
        "text": "Welcome aboard: this week is about meeting people.",
        "code": 'brew install git\ngit config --global user.name "New Hire"',
        "sheet": "day,task\nMonday,Accounts\nTuesday,Team lunch"}
    assert adopted.query('SELECT jsonb_array_length(users), "isTemplate" FROM "WorldMeta"') == [(2, True)]
    again = call(phoenix_seed.main, adopted, state="imported", src=ONBOARDING_SEED)
    assert not again["changed"]


def test_every_content_table_round_trips_exactly(adopted, tmp_path):
    """The onboarding world fills every content table; numeric, jsonb, json and timestamps come back unchanged."""
    call(phoenix_seed.main, adopted, state="imported", src=ONBOARDING_SEED)
    with adopted.connect() as conn:
        conn.execute(sql.SQL('UPDATE "A_Address" SET latitude = 43.07184512, longitude = -70.76262312, '
                             "\"updated_at\" = '2025-07-01 08:00:00.000001'"))
    add_hand_written_rows(adopted, "ONBOARDING_TOUR")
    before = application_digest(adopted)
    registry = 'SELECT name, description, users, artifacts, chats, settings, tags, "isTemplate" FROM "WorldMeta"'
    meta = adopted.query(registry)
    assert call(phoenix_seed.main, adopted, world="ONBOARDING_TOUR", state="exported",
                dest=str(tmp_path / "tour"))["changed"]
    assert call(phoenix_world.main, adopted, id="ONBOARDING_TOUR", state="absent")["changed"]
    assert adopted.query('SELECT count(*) FROM "A_Address"') == [(0,)]
    imported = call(phoenix_seed.main, adopted, state="imported", src=str(tmp_path / "tour"))
    assert "failed" not in imported and imported["changed"], imported.get("msg")
    assert application_digest(adopted) == before
    assert adopted.query(registry) == meta
    assert adopted.query('SELECT latitude::text FROM "A_Address"') == [("43.07184512",)]


def test_a_world_meta_the_search_path_finds_in_the_applications_schema_is_adopted(database):
    """An application with its own schema first on the search path, whose registry references its users."""
    columns = ", ".join('"%s" %s' % (name, kind) for name, kind in (
        ("description", "text"), ("environment", "text NOT NULL"), ("category", "text"),
        ("isActive", "boolean NOT NULL DEFAULT true"), ("isTemplate", "boolean NOT NULL DEFAULT false"),
        ("autoCleanup", "boolean NOT NULL DEFAULT true"), ("cleanupAfterHours", "integer"),
        ("isolationLevel", "text NOT NULL DEFAULT 'FULL'"), ("tags", "text[]"), ("dependencies", "text[]"),
        ("settings", "jsonb NOT NULL"), ("version", "text"), ("usageCount", "integer NOT NULL DEFAULT 0"),
        ("lastUsedAt", "timestamptz"), ("createdAt", "timestamptz NOT NULL DEFAULT now()"),
        ("updatedAt", "timestamptz NOT NULL DEFAULT now()")))
    with database.connect() as conn:
        conn.execute(sql.SQL("CREATE SCHEMA app"))
        conn.execute(sql.SQL("ALTER DATABASE {} SET search_path TO app, public").format(sql.Identifier(database.name)))
        conn.execute(sql.SQL("CREATE TABLE app.members (id uuid PRIMARY KEY, email text NOT NULL, world_id text)"))
        conn.execute(sql.SQL('CREATE TABLE app."WorldMeta" (id text PRIMARY KEY, name text NOT NULL, {}, '
                             '"createdBy" uuid REFERENCES app.members (id))').format(sql.SQL(columns)))
    adopted = schema(database)
    assert adopted["world_meta"] == "application", adopted.get("msg")
    assert database.query("SELECT to_regclass('public.\"WorldMeta\"') IS NULL") == [(True,)]
    assert call(phoenix_world.main, database, id="W_APP", tags=["x"])["changed"]
    with database.connect() as conn:
        conn.execute(sql.SQL("INSERT INTO app.members VALUES (gen_random_uuid(), 'a@app.example', 'W_APP')"))
    listed = call(phoenix_world_info.main, database)["worlds"]
    assert [(w["id"], w["rows"], w["tags"]) for w in listed] == [("W_APP", {"app.members": 1}, ["x"])]
    health = call(phoenix_health.main, database, fail_on="never")
    assert health["checks"]["worlds"]["total"] == 1, health["checks"]
    removed = call(phoenix_world.main, database, id="W_APP", state="absent")
    assert removed["rows_removed"] == {"app.members": 1}
    assert database.query('SELECT count(*) FROM app."WorldMeta"') == [(0,)]
