"""phoenix_world against the reference schema and an unrelated shop schema."""

from __future__ import annotations

import pytest

from ansible_collections.phoenix.platform.plugins.modules import phoenix_seed, phoenix_world, phoenix_world_cleanup
from ansible_collections.phoenix.platform.tests.helpers import run_module

from worlds_fixtures import PASSWORD_HASH, SHOP_TABLES, create_shop, fill_shop_world, migrate, table_fingerprints

pytestmark = pytest.mark.usefixtures("clean_env")
SMALL_SEED = {"users": 2, "artifacts": 6, "chats": 1, "messages_per_chat": 2}


def world(database, check=False, diff=False, **options):
    return run_module(phoenix_world.main, dict({"db_url": database.url, "stage": "BETA"}, **options),
                      check=check, diff=diff)


@pytest.fixture
def reference(database):
    migrate(database)
    return database


@pytest.fixture
def shop(database):
    create_shop(database)
    fill_shop_world(database, "SHOP_TEMPLATE")
    return database


def test_create_seed_then_unchanged(reference):
    first = world(reference, id="UC_TESTING", category="testing", tags=["ci"], seed={})
    assert first["changed"] is True
    assert first["rows_added"] == {"User": 5, "Artifact": 12, "A_Text": 6, "A_Image": 2, "A_Person": 2,
                                   "A_SetItems": 4, "Chat": 3, "Message_v2": 12}
    assert first["rows"] == first["rows_added"]
    assert first["world"]["environment"] == "BETA"
    assert first["world"]["tags"] == ["ci"]
    assert first["world"]["createdBy"]
    second = world(reference, id="UC_TESTING", category="testing", tags=["ci"], seed={})
    assert second["changed"] is False
    assert second["rows_added"] == {}
    assert reference.query("SELECT count(*) FROM phoenix.audit_log WHERE operation = 'world.present'") == [(1,)]


def test_seed_is_deterministic_per_world(reference):
    world(reference, id="ALPHA", seed=SMALL_SEED)
    first = reference.query('SELECT id, email FROM "User" WHERE world_id = %s ORDER BY id', ("ALPHA",))
    world(reference, id="ALPHA", state="absent")
    world(reference, id="ALPHA", seed=SMALL_SEED)
    assert reference.query('SELECT id, email FROM "User" WHERE world_id = %s ORDER BY id', ("ALPHA",)) == first


def test_metadata_update_and_diff(reference):
    world(reference, id="META", description="one")
    result = world(reference, id="META", description="two", is_active=False, diff=True)
    assert result["changed"] is True
    assert result["diff"]["before"]["world"]["description"] == "one"
    assert result["diff"]["after"]["world"]["description"] == "two"
    assert result["diff"]["after"]["world"]["isActive"] is False
    assert world(reference, id="META", description="two")["changed"] is False


def test_check_mode_writes_nothing(reference):
    world(reference, id="TEMPLATE_A", is_template=True, seed=SMALL_SEED)
    before = table_fingerprints(reference)
    planned = world(reference, check=True, diff=True, id="CLONE", from_template="TEMPLATE_A", seed={"users": 1,
                    "artifacts": 1, "chats": 0})
    assert planned["changed"] is True
    assert planned["rows_added"]["User"] == SMALL_SEED["users"] + 1
    assert planned["diff"]["before"]["world"] is None
    assert planned["diff"]["after"]["world"]["id"] == "CLONE"
    removal = world(reference, check=True, id="TEMPLATE_A", state="absent")
    assert removal["changed"] is True and removal["rows_removed"]["User"] == 2
    assert table_fingerprints(reference) == before


def test_clone_is_deterministic_disjoint_and_idempotent(reference):
    world(reference, id="TEMPLATE_A", is_template=True, seed=SMALL_SEED)
    one = world(reference, id="COPY_ONE", from_template="TEMPLATE_A")
    two = world(reference, id="COPY_TWO", from_template="TEMPLATE_A")
    template_rows = world(reference, id="TEMPLATE_A")["rows"]
    assert one["rows_added"] == template_rows == two["rows_added"]
    ids = {w: {r[0] for r in reference.query('SELECT id FROM "Artifact" WHERE world_id = %s', (w,))}
           for w in ("TEMPLATE_A", "COPY_ONE", "COPY_TWO")}
    assert not ids["COPY_ONE"] & ids["COPY_TWO"] and not ids["COPY_ONE"] & ids["TEMPLATE_A"]
    expected = reference.query("SELECT md5('COPY_ONE:' || id::text)::uuid FROM \"Artifact\" WHERE world_id = %s",
                               ("TEMPLATE_A",))
    assert {r[0] for r in expected} == ids["COPY_ONE"]
    # Dependent rows follow their re-keyed parents.
    assert reference.query('SELECT count(*) FROM "A_Text" t JOIN "Artifact" a ON a.id = t."artifactId" '
                           'AND a."createdAt" = t."createdAt" WHERE a.world_id = %s', ("COPY_ONE",)) == \
        [(template_rows["A_Text"],)]
    again = world(reference, id="COPY_ONE", from_template="TEMPLATE_A")
    assert again["changed"] is False
    assert reference.query('SELECT "usageCount" FROM "WorldMeta" WHERE id = %s', ("TEMPLATE_A",)) == [(2,)]


def test_absent_deletes_every_row_in_one_go(reference):
    world(reference, id="GONE", seed=SMALL_SEED)
    world(reference, id="KEPT", seed=SMALL_SEED)
    result = world(reference, id="GONE", state="absent")
    assert result["changed"] is True
    assert result["rows_removed"]["A_SetItems"] == 2
    assert reference.query('SELECT count(*) FROM "Artifact" WHERE world_id = %s', ("GONE",)) == [(0,)]
    assert reference.query('SELECT count(*) FROM "WorldMeta" WHERE id = %s', ("GONE",)) == [(0,)]
    assert reference.query('SELECT count(*) FROM "Artifact" WHERE world_id = %s', ("KEPT",)) == [(6,)]
    assert world(reference, id="GONE", state="absent")["changed"] is False


def test_prod_guard(database):
    migrate(database, stage="PROD")
    args = {"db_url": database.url, "stage": "PROD", "id": "PROD_WORLD"}
    refused = run_module(phoenix_world.main, args)
    assert refused["failed"] is True and "allow_prod=true" in refused["msg"]
    assert database.query('SELECT count(*) FROM "WorldMeta"') == [(0,)]
    assert run_module(phoenix_world.main, dict(args, allow_prod=True))["changed"] is True


def test_world_limit(reference):
    world(reference, id="ONE", max_worlds=2)
    world(reference, id="TWO", max_worlds=2)
    result = world(reference, id="THREE", max_worlds=2)
    assert result["failed"] is True and "the limit" in result["msg"]
    assert world(reference, id="TWO", max_worlds=2, description="updating is fine")["changed"] is True


def test_dependencies_protect_a_world(reference):
    world(reference, id="BASE")
    world(reference, id="USER_OF_BASE", dependencies=["BASE"])
    refused = world(reference, id="BASE", state="absent")
    assert refused["failed"] is True and "USER_OF_BASE" in refused["msg"]
    assert world(reference, id="BASE", state="absent", force=True)["changed"] is True


@pytest.mark.parametrize("options, expected", [
    ({"id": "lower_case"}, "not a valid world id"),
    ({"id": "OK", "from_template": "MISSING"}, "template world MISSING does not exist"),
    ({"id": "OK", "dependencies": ["NOPE"]}, "do not exist: NOPE"),
    ({"id": "OK", "seed": {"planets": 3}}, "unknown keys planets"),
    ({"id": "OK", "isolation_level": "TOTAL"}, "isolation_level"),
])
def test_bad_input(reference, options, expected):
    result = world(reference, **options)
    assert result["failed"] is True
    assert expected in result["msg"]
    assert "Traceback" not in result["_raw"]
    assert reference.query('SELECT count(*) FROM "WorldMeta"') == [(0,)]


def test_shop_clone_and_delete(shop):
    result = world(shop, id="SHOP_COPY", from_template="SHOP_TEMPLATE")
    assert result["rows_added"] == {"shop.customers": 3, "shop.orders": 6, "shop.order_lines": 12}
    assert world(shop, id="SHOP_COPY", from_template="SHOP_TEMPLATE")["changed"] is False
    copied = shop.query("SELECT l.sku, l.qty FROM shop.order_lines l JOIN shop.orders o ON o.id = l.order_id "
                        "WHERE o.world_id = 'SHOP_COPY' ORDER BY 1, 2")
    original = shop.query("SELECT l.sku, l.qty FROM shop.order_lines l JOIN shop.orders o ON o.id = l.order_id "
                          "WHERE o.world_id = 'SHOP_TEMPLATE' ORDER BY 1, 2")
    assert copied == original
    world(shop, id="SHOP_OTHER", from_template="SHOP_TEMPLATE")
    keys = {w: {r[0] for r in shop.query("SELECT id FROM shop.orders WHERE world_id = %s", (w,))}
            for w in ("SHOP_TEMPLATE", "SHOP_COPY", "SHOP_OTHER")}
    assert len(keys["SHOP_COPY"]) == len(keys["SHOP_OTHER"]) == 6
    assert not keys["SHOP_COPY"] & keys["SHOP_OTHER"] and not keys["SHOP_COPY"] & keys["SHOP_TEMPLATE"]
    removed = world(shop, id="SHOP_COPY", state="absent")
    assert removed["rows_removed"] == {"shop.customers": 3, "shop.orders": 6, "shop.order_lines": 12}
    assert shop.query("SELECT count(*) FROM shop.order_lines") == [(24,)]


def test_shop_has_no_reference_tables_to_seed(shop):
    result = world(shop, id="SHOP_SEEDED", seed={})
    assert result["failed"] is True
    assert "reference application schema" in result["msg"]


def test_shop_check_mode_writes_nothing(shop):
    before = table_fingerprints(shop)
    assert world(shop, check=True, id="SHOP_COPY", from_template="SHOP_TEMPLATE")["rows_added"]["shop.orders"] == 6
    assert world(shop, check=True, id="SHOP_TEMPLATE", state="absent")["rows_removed"]["shop.order_lines"] == 12
    assert table_fingerprints(shop) == before
    assert SHOP_TABLES


def test_references_to_production_rows_keep_their_keys_in_copies(reference, tmp_path):
    world(reference, id="TEMPLATE", seed=SMALL_SEED)
    with reference.connect() as conn:  # an artifact of the world written by a production user
        author = conn.execute("INSERT INTO \"User\" (email) VALUES ('editor@prod.example') RETURNING id").fetchone()[0]
        conn.execute('UPDATE "Artifact" SET "authorId" = %s WHERE world_id = %s', [author, "TEMPLATE"])
    assert world(reference, id="CLONE", from_template="TEMPLATE")["changed"]
    seed_dir = tmp_path / "template"
    exported = run_module(phoenix_seed.main, {"db_url": reference.url, "stage": "BETA", "state": "exported",
                                              "world": "TEMPLATE", "dest": str(seed_dir)})
    assert exported["changed"], exported.get("msg")
    imported = run_module(phoenix_seed.main, {"db_url": reference.url, "stage": "BETA", "state": "imported",
                                              "src": str(seed_dir), "world": "IMPORTED"})
    assert imported["changed"], imported.get("msg")
    for copy in ("CLONE", "IMPORTED"):
        assert reference.query('SELECT DISTINCT "authorId" FROM "Artifact" WHERE world_id = %s', (copy,)) == [(author,)]
        owners = reference.query('SELECT DISTINCT u.world_id FROM "Artifact" a JOIN "User" u ON u.id = a."userId" '
                                 "WHERE a.world_id = %s", (copy,))
        assert owners == [(copy,)]  # references inside the world follow the copy


def test_a_world_whose_rows_a_trigger_keeps_is_not_removed_and_the_message_says_why(data):
    """An application that soft-deletes its chats: a trigger turns the DELETE into an UPDATE. The world's users are
    still referenced by its kept chats, so the removal is refused whole, in check mode too, and the message names
    the references and the trigger that kept them. Before, check mode counted the rows and said it would remove them."""
    with data.connect() as conn:
        conn.execute('ALTER TABLE "Chat" ADD COLUMN "deletedAt" timestamptz')
        conn.execute('CREATE FUNCTION soft_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN '
                     'UPDATE "Chat" SET "deletedAt" = now() WHERE id = OLD.id; RETURN NULL; END $$')
        conn.execute('CREATE TRIGGER soft_delete BEFORE DELETE ON "Chat" FOR EACH ROW EXECUTE FUNCTION soft_delete()')
    before = table_fingerprints(data)
    for check in (True, False):  # only the server's run of the trigger tells: check mode deletes, then rolls back
        removed = run_module(phoenix_world.main, {"db_url": data.url, "stage": "BETA", "id": "KEEP_ME",
                                                  "state": "absent"}, check=check)
        assert removed["failed"] is True and "Traceback" not in removed["_raw"], removed
        assert removed["msg"].startswith("the change would remove a row that other rows still refer to on ")
        assert removed["msg"].endswith(
            "; nothing was written. Rows outside the change refer to rows it removes: another world's, production's, "
            "or rows the trigger soft_delete of table Chat (before each delete) kept instead of deleting them; remove "
            "those references first"), removed["msg"]
    assert table_fingerprints(data) == before


def test_a_world_whose_user_a_production_row_refers_to_is_not_removed_and_no_trigger_is_blamed(data):
    """A production chat (no world) of a world's user: the removal meets it, in check mode too (a cleanup's as
    well), and the table it is in runs no trigger before its deletes, so the message names none."""
    with data.connect() as conn:
        conn.execute('INSERT INTO "Chat" (id, "createdAt", title, "userId", world_id) SELECT gen_random_uuid(), now(), '
                     "'support', id, NULL FROM \"User\" WHERE world_id = 'KEEP_ME' LIMIT 1")
    before = table_fingerprints(data)
    for check in (True, False):
        removed = run_module(phoenix_world.main, {"db_url": data.url, "stage": "BETA", "id": "KEEP_ME",
                                                  "state": "absent"}, check=check)
        assert removed["failed"] is True and removed["msg"].startswith(
            "the change would remove a row that other rows still refer to on "), removed
        assert removed["msg"].endswith("another world's, production's, or rows an application's trigger kept instead "
                                       "of deleting them; remove those references first"), removed["msg"]
    assert table_fingerprints(data) == before
    cleaned = run_module(phoenix_world_cleanup.main, {"db_url": data.url, "stage": "BETA", "max_age_hours": 0},
                         check=True)
    assert cleaned["failed"] is True and "still refer to" in cleaned["msg"], cleaned


@pytest.mark.parametrize("broken, named", [
    # a check the copied rows fail (added NOT VALID: the template's own rows were never checked)
    (['ALTER TABLE "User" ADD CONSTRAINT "User_world_open" CHECK (world_id <> \'LEAKY\') NOT VALID'],
     'violates check constraint "User_world_open"'),
    # an application's trigger that empties a column the table requires
    (['CREATE FUNCTION forget_email() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.email := NULL; RETURN NEW; '
      'END $$', 'CREATE TRIGGER forget_email BEFORE INSERT ON "User" FOR EACH ROW EXECUTE FUNCTION forget_email()'],
     '(column email on table User: null value in column "email" of relation "User" violates not-null constraint)'),
])
def test_a_copied_row_that_breaks_a_constraint_is_named_without_its_values(reference, broken, named):
    world(reference, id="TEMPLATE_A", is_template=True, seed=SMALL_SEED)
    with reference.connect() as conn:
        conn.execute('UPDATE "User" SET password = %s, email = \'ada.secret.\' || id || \'@example.org\' '
                     'WHERE world_id = %s', [PASSWORD_HASH, "TEMPLATE_A"])
        for statement in broken:
            conn.execute(statement)
    before = table_fingerprints(reference)
    result = world(reference, id="LEAKY", from_template="TEMPLATE_A")
    assert result["failed"] is True and named in result["msg"] and "nothing was written" in result["msg"]
    assert PASSWORD_HASH not in result["_raw"] and "ada.secret" not in result["_raw"], result["msg"]
    assert table_fingerprints(reference) == before
