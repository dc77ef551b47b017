"""phoenix_user and phoenix_user_info."""

from __future__ import annotations

import bcrypt
import pytest
from psycopg import sql

from ansible_collections.phoenix.platform.plugins.modules import phoenix_user, phoenix_user_info, phoenix_world
from ansible_collections.phoenix.platform.tests.helpers import run_module

from conftest import refused_as_unidentified
from worlds_fixtures import migrate, table_fingerprints

pytestmark = pytest.mark.usefixtures("clean_env")
SECRET = "C0rrect-Horse-Battery"


def user(database, check=False, diff=False, **options):
    return run_module(phoenix_user.main, dict({"db_url": database.url, "stage": "BETA"}, **options),
                      check=check, diff=diff)


def info(database, **options):
    return run_module(phoenix_user_info.main, dict({"db_url": database.url, "stage": "BETA"}, **options))


def stored_hash(database, email: str) -> str:
    return database.query('SELECT password FROM "User" WHERE lower(email) = lower(%s)', (email,))[0][0]


@pytest.fixture
def reference(database):
    migrate(database)
    return database


def test_create_then_unchanged(reference):
    first = user(reference, email="ada@example.com", name="Ada", role="admin", password=SECRET)
    assert first["changed"] is True
    assert first["user"]["role"] == "admin" and first["user"]["has_password"] is True
    assert first["user"]["id"]
    hashed = stored_hash(reference, "ada@example.com")
    assert hashed.startswith("$2b$10$") and bcrypt.checkpw(SECRET.encode(), hashed.encode())
    second = user(reference, email="ada@example.com", name="Ada", role="admin", password=SECRET)
    assert second["changed"] is False
    assert stored_hash(reference, "ada@example.com") == hashed
    for result in (first, second):
        assert SECRET not in result["_raw"] and hashed not in result["_raw"]


def test_email_differing_in_case_is_the_same_user(reference):
    user(reference, email="Grace@Example.com", name="Grace")
    again = user(reference, email="grace@example.COM", name="Grace")
    assert again["changed"] is False
    assert reference.query('SELECT count(*) FROM "User"') == [(1,)]
    assert again["user"]["email"] == "Grace@Example.com"


def test_password_update_always_and_on_create(reference):
    user(reference, email="lin@example.com", password=SECRET)
    before = stored_hash(reference, "lin@example.com")
    assert user(reference, email="lin@example.com", password="other", update_password="on_create")["changed"] is False
    assert stored_hash(reference, "lin@example.com") == before
    changed = user(reference, email="lin@example.com", password="other", diff=True)
    assert changed["changed"] is True
    assert bcrypt.checkpw(b"other", stored_hash(reference, "lin@example.com").encode())
    assert changed["diff"]["before"] == changed["diff"]["after"]  # the diff shows no password, only that one is set
    assert "other" not in str(changed["diff"])


def test_check_mode_and_diff_write_nothing(reference):
    user(reference, email="ken@example.com", name="Ken")
    before = table_fingerprints(reference)
    planned = user(reference, check=True, diff=True, email="ken@example.com", role="admin", password=SECRET)
    assert planned["changed"] is True
    assert planned["diff"]["before"]["role"] == "user" and planned["diff"]["after"]["role"] == "admin"
    assert planned["diff"]["after"]["has_password"] is True
    created = user(reference, check=True, email="new@example.com", password=SECRET)
    assert created["changed"] is True and created["user"]["id"] is None
    assert table_fingerprints(reference) == before
    assert SECRET not in planned["_raw"]


def test_set_admin_without_creating(reference):
    missing = user(reference, email="nobody@example.com", role="admin", create=False)
    assert missing["failed"] is True and "does not exist" in missing["msg"]
    user(reference, email="bob@example.com")
    assert user(reference, email="bob@example.com", role="admin", create=False)["changed"] is True
    assert user(reference, email="bob@example.com", role="admin", create=False)["changed"] is False


def test_world_users_are_separate_and_prod_guarded(reference):
    run_module(phoenix_world.main, {"db_url": reference.url, "stage": "BETA", "id": "UC_USERS"})
    user(reference, email="same@example.com", name="prod")
    assert user(reference, email="same@example.com", world="UC_USERS", name="test")["changed"] is True
    assert [u["world"] for u in info(reference, email="same@*")["users"]] == [None, "UC_USERS"]
    assert user(reference, email="x@example.com", world="NO_SUCH_WORLD")["msg"].startswith("world NO_SUCH_WORLD")


def test_prod_guard_only_for_world_users(database):
    migrate(database, stage="PROD")
    args = {"db_url": database.url, "stage": "PROD"}
    assert run_module(phoenix_user.main, dict(args, email="admin@example.com", role="admin"))["changed"] is True
    run_module(phoenix_world.main, dict(args, id="PROD_TEST", allow_prod=True))
    refused = run_module(phoenix_user.main, dict(args, email="t@example.com", world="PROD_TEST"))
    assert refused["failed"] is True and "allow_prod" in refused["msg"]


def test_absent_refuses_while_owning_rows_then_cascades(reference):
    run_module(phoenix_world.main, {"db_url": reference.url, "stage": "BETA", "id": "OWNED",
                                    "seed": {"users": 1, "artifacts": 6, "chats": 2, "messages_per_chat": 3}})
    email = reference.query('SELECT email FROM "User" WHERE world_id = %s', ("OWNED",))[0][0]
    refused = user(reference, email=email, world="OWNED", state="absent")
    assert refused["failed"] is True and "cascade=true" in refused["msg"]
    assert refused["owned_rows"]["Chat"] == 2
    before = table_fingerprints(reference)
    planned = user(reference, check=True, email=email, world="OWNED", state="absent", cascade=True)
    assert planned["rows_removed"]["Message_v2"] == 6
    assert table_fingerprints(reference) == before
    done = user(reference, email=email, world="OWNED", state="absent", cascade=True)
    assert done["rows_removed"] == planned["rows_removed"]
    for table in ("User", "Artifact", "Chat", "Message_v2"):
        with reference.connect() as conn:
            query = sql.SQL("SELECT count(*) FROM {} WHERE world_id = %s").format(sql.Identifier(table))
            assert conn.execute(query, ["OWNED"]).fetchone() == (0,)
    assert reference.query('SELECT count(*) FROM "A_Text"') == [(0,)]
    assert user(reference, email=email, world="OWNED", state="absent")["changed"] is False


def test_absent_under_a_publication_of_all_tables_names_a_keyless_table_it_would_delete_from(reference):
    """A keyless table of the application holds rows of the user's; a change pipeline's publication of all tables
    makes the server refuse any delete from it: the deletion is refused before anything, in check mode too."""
    run_module(phoenix_world.main, {"db_url": reference.url, "stage": "BETA", "id": "OWNED", "seed": {"users": 1}})
    email = reference.query('SELECT email FROM "User" WHERE world_id = %s', ("OWNED",))[0][0]
    with reference.connect() as conn:
        conn.execute('CREATE TABLE "User Note" ("userId" uuid REFERENCES "User" (id), body text)')
        conn.execute('INSERT INTO "User Note" SELECT id, \'first login\' FROM "User" WHERE email = %s', [email])
        conn.execute("CREATE PUBLICATION cdc FOR ALL TABLES")
    before = table_fingerprints(reference)
    for check in (True, False):
        refused = user(reference, check=check, email=email, world="OWNED", state="absent", cascade=True)
        assert refused.get("failed") is True and refused["msg"] == (
            "deleting a user deletes rows of User Note (publication cdc), whose deletes a publication sends "
            "to a change pipeline, and which has neither a primary key nor a replica identity, so the server refuses "
            'any delete from it; give it one (ALTER TABLE public."User Note" REPLICA IDENTITY FULL, or a primary '
            "key), or take it out of the publication; nothing was written"), refused
    assert table_fingerprints(reference) == before
    with reference.connect() as conn:
        conn.execute('ALTER TABLE "User Note" REPLICA IDENTITY FULL')
    done = user(reference, email=email, world="OWNED", state="absent", cascade=True)
    assert done.get("failed") is not True and done["rows_removed"]["User Note"] == 1, done


def test_a_user_table_published_with_replica_identity_nothing_takes_new_users_but_no_change(reference):
    """"User" has a primary key, but REPLICA IDENTITY NOTHING, under a change pipeline's publication of all tables:
    the server takes inserts, and refuses any update or delete. A change or a deletion of a user is refused before
    anything is written, in check mode too, naming the setting and giving the key back as the identity."""
    user(reference, email="kept@example.com", name="Kept")
    with reference.connect() as conn:
        conn.execute('ALTER TABLE "User" REPLICA IDENTITY NOTHING')
        conn.execute("CREATE PUBLICATION cdc FOR ALL TABLES")
    created = user(reference, email="new@example.com")
    assert created.get("failed") is not True and created["changed"] is True, created
    before = table_fingerprints(reference)
    for check in (True, False):
        renamed = user(reference, check=check, email="kept@example.com", name="Renamed")
        assert renamed.get("failed") is True and "Traceback" not in renamed["_raw"], renamed
        assert renamed["msg"] == refused_as_unidentified("changing a user", "updates", 'public."User"', "User"), renamed
        removed = user(reference, check=check, email="kept@example.com", state="absent")
        assert removed.get("failed") is True and removed["msg"] == refused_as_unidentified(
            "deleting a user", "deletes", 'public."User"', "User"), removed
    assert table_fingerprints(reference) == before
    assert user(reference, email="kept@example.com", name="Kept")["changed"] is False  # nothing to write: no refusal
    with reference.connect() as conn:
        conn.execute('ALTER TABLE "User" REPLICA IDENTITY DEFAULT')
    assert user(reference, email="kept@example.com", name="Renamed")["changed"] is True
    assert reference.query('SELECT name FROM "User" WHERE email = %s', ("kept@example.com",)) == [("Renamed",)]


def test_info_filters_and_never_returns_hashes(reference):
    user(reference, email="a1@example.com", role="admin", password=SECRET)
    user(reference, email="u1@example.com")
    user(reference, email="u2@other.example")
    result = info(reference)
    assert [u["email"] for u in result["users"]] == ["a1@example.com", "u1@example.com", "u2@other.example"]
    assert "password" not in result["users"][0] and "$2b$" not in result["_raw"]
    assert [u["email"] for u in info(reference, role="admin")["users"]] == ["a1@example.com"]
    assert [u["email"] for u in info(reference, email="*@EXAMPLE.com")["users"]] == ["a1@example.com",
                                                                                     "u1@example.com"]
    assert info(reference, world="none")["users"] == result["users"]
    one = result["users"][1]
    assert info(reference, id=one["id"])["users"] == [one]


@pytest.mark.parametrize("options, expected", [
    ({"email": "not-an-email"}, "not a valid address"),
    ({"email": "x@example.com", "role": "root"}, "role"),
    ({"email": "x@example.com", "password": "p" * 73}, "72 bytes"),
    ({"email": "x@example.com", "world": "bad world"}, "not a valid world id"),
])
def test_bad_input(reference, options, expected):
    result = user(reference, **options)
    assert result["failed"] is True and expected in result["msg"]
    assert "Traceback" not in result["_raw"] and "p" * 73 not in result["_raw"]
    assert reference.query('SELECT count(*) FROM "User"') == [(0,)]


def test_schema_without_user_table(database):
    migrate(database, app_schema="none")
    result = user(database, email="a@example.com")
    assert result["failed"] is True and "reference" in result["msg"]
