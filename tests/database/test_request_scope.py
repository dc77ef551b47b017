"""Nothing outside the request is written: transfers and imports match rows by key and owner."""

from __future__ import annotations

import hashlib
import json

import psycopg
import pytest
from psycopg import sql

from ansible_collections.phoenix.platform.plugins.module_utils._worlds.generate import generate
from ansible_collections.phoenix.platform.plugins.modules import (
    phoenix_audit,
    phoenix_seed,
    phoenix_user,
    phoenix_world,
    phoenix_world_cleanup,
)
from ansible_collections.phoenix.platform.tests.helpers import run_module

from test_phoenix_transfer import transfer
from worlds_fixtures import migrate, table_fingerprints

pytestmark = pytest.mark.usefixtures("clean_env")
SEED_ROWS = {"users": 3, "artifacts": 8, "chats": 2, "messages_per_chat": 3}


def execute(database, statement: str, params: tuple = ()) -> None:
    with psycopg.connect(database.url, autocommit=True) as conn:
        conn.execute(sql.SQL(statement), params or None)  # test-only static SQL


def production_admin(target, user_id: str) -> None:
    execute(target, 'INSERT INTO "User" (id, email, name, password, type) VALUES (%s, %s, %s, %s, %s)',
            (user_id, "admin@beta.example", "Beta Admin", "$2b$10$hashofthebetaadmin", "admin"))


def test_a_world_row_with_a_production_key_is_a_conflict_not_an_update(pair):
    source, target = pair
    stolen = source.query('SELECT id::text FROM "User" WHERE world_id = %s ORDER BY id LIMIT 1', ("UC_TESTING",))[0][0]
    production_admin(target, stolen)
    before = table_fingerprints(target)
    refused = transfer(source, target, worlds=["UC_TESTING"])
    assert refused["failed"] is True
    assert "User: 1 row(s), e.g. key %s belongs to production data in the target, not to world UC_TESTING" % stolen \
        in refused["msg"]
    assert "key_conflict=rekey" in refused["msg"]
    assert table_fingerprints(target) == before
    checked = transfer(source, target, check=True, worlds=["UC_TESTING"])
    assert checked["failed"] is True and table_fingerprints(target) == before

    rekeyed = transfer(source, target, worlds=["UC_TESTING"], key_conflict="rekey")
    assert rekeyed["changed"] is True, rekeyed
    admin = target.query('SELECT email, password, type, world_id FROM "User" WHERE id = %s', (stolen,))
    assert admin == [("admin@beta.example", "$2b$10$hashofthebetaadmin", "admin", None)]
    assert target.query('SELECT count(*) FROM "User" WHERE world_id = %s', ("UC_TESTING",)) == \
        source.query('SELECT count(*) FROM "User" WHERE world_id = %s', ("UC_TESTING",))
    assert transfer(source, target, worlds=["UC_TESTING"], key_conflict="rekey")["changed"] is False


def test_a_dependent_row_owned_by_production_is_a_conflict(pair):
    """A_Text has no world_id: its owner is the artifact it belongs to."""
    source, target = pair
    artifact, created = source.query('SELECT a.id::text, a."createdAt" FROM "Artifact" a JOIN "A_Text" t ON '
                                     '(t."artifactId", t."createdAt") = (a.id, a."createdAt") WHERE a.world_id = %s '
                                     'ORDER BY 1 LIMIT 1', ("UC_TESTING",))[0]
    user = "00000000-0000-4000-8000-0000000000be"
    production_admin(target, user)
    execute(target, 'INSERT INTO "Artifact" (id, "createdAt", title, kind, "userId") VALUES (%s, %s, %s, %s, %s)',
            (artifact, created, "Production page", "text", user))
    execute(target, 'INSERT INTO "A_Text" ("artifactId", "createdAt", content) VALUES (%s, %s, %s)',
            (artifact, created, "production content"))
    before = table_fingerprints(target)
    refused = transfer(source, target, worlds=["UC_TESTING"])
    assert refused["failed"] is True
    assert "Artifact: 1 row(s)" in refused["msg"] and "A_Text: 1 row(s)" in refused["msg"]
    assert table_fingerprints(target) == before


def test_a_second_suffix_never_takes_over_the_first_copy(pair):
    """Text keys are not re-keyed by a rename unless a transform says how: without one the transfer is refused
    before writing; with one, each suffix makes a copy of its own."""
    source, target = pair
    for database in pair:
        execute(database, 'CREATE TABLE "Coupon" (code text PRIMARY KEY, percent integer NOT NULL, world_id text)')
    execute(source, 'INSERT INTO "Coupon" VALUES (%s, %s, %s)', ("WELCOME10", 10, "UC_TESTING"))
    groups = {"worlds": ["WorldMeta"], "coupons": ["Coupon"]}
    before = table_fingerprints(target)
    refused = transfer(source, target, worlds=["UC_TESTING"], suffix="_BETA", groups=groups, include=list(groups))
    assert refused["failed"] is True
    assert 'Coupon: its primary key (code text)' in refused["msg"]
    assert 'column_transforms, e.g. {"Coupon.code": "{value}__{world}"}' in refused["msg"]
    assert table_fingerprints(target) == before
    options = {"worlds": ["UC_TESTING"], "groups": groups, "include": list(groups),
               "column_transforms": {"Coupon.code": "{value}__{world}"}}
    assert transfer(source, target, suffix="_BETA", **options)["changed"] is True
    assert transfer(source, target, suffix="_QA", **options)["changed"] is True
    assert target.query('SELECT code, world_id FROM "Coupon" ORDER BY 1') == [
        ("WELCOME10__UC_TESTING_BETA", "UC_TESTING_BETA"), ("WELCOME10__UC_TESTING_QA", "UC_TESTING_QA")]
    assert transfer(source, target, suffix="_QA", **options)["changed"] is False


def test_a_world_the_source_lacks_fails_and_deletes_nothing(pair):
    source, target = pair
    made = transfer(source, target, worlds=["UC_TESTING"], suffix="_LOCAL")
    assert made["changed"] is True
    execute(source, 'UPDATE "WorldMeta" SET id = %s WHERE id = %s', ("UC_GONE", "UC_OTHER"))
    before = table_fingerprints(target)
    ghost = transfer(source, target, worlds=["UC_TESTING_GHOST", "UC_TESTING"], suffix="_LOCAL", delete_missing=True)
    assert ghost["failed"] is True
    assert "the source has no world UC_TESTING_GHOST" in ghost["msg"]
    assert ghost["missing_worlds"] == ["UC_TESTING_GHOST"]
    planned = transfer(source, target, check=True, worlds=["UC_TESTING_GHOST"], suffix="_LOCAL", delete_missing=True)
    assert planned["failed"] is True
    assert table_fingerprints(target) == before


def test_delete_missing_stays_inside_the_requested_worlds(pair):
    source, target = pair
    transfer(source, target, worlds=["UC_TESTING", "UC_OTHER"])
    others = table_fingerprints(target)
    execute(source, 'DELETE FROM "Message_v2" WHERE world_id = %s', ("UC_TESTING",))
    done = transfer(source, target, worlds=["UC_TESTING"], delete_missing=True)
    assert done["plan"]["Message_v2"]["delete"] == 6
    assert target.query('SELECT count(*) FROM "User" WHERE world_id = %s', ("UC_OTHER",)) == [(1,)]
    assert table_fingerprints(target)["public.Artifact"] == others["public.Artifact"]


# -- seed imports ----------------------------------------------------------------------------------------------

def exported_seed(database, tmp_path, world="ROUND_TRIP"):
    migrate(database)
    run_module(phoenix_world.main, {"db_url": database.url, "stage": "BETA", "id": world, "seed": SEED_ROWS})
    dest = tmp_path / "seed"
    result = run_module(phoenix_seed.main, {"db_url": database.url, "stage": "BETA", "state": "exported",
                                            "world": world, "dest": str(dest)})
    assert result["changed"] is True, result
    return dest


def rewrite_table(dest, label: str, lines: list[bytes] | None = None, keep: list[str] | None = None) -> None:
    """Change one table file (or keep only some tables) and re-hash the manifest, as a tamperer would."""
    manifest = json.loads((dest / "seed.json").read_text())
    if keep is not None:
        manifest["tables"] = [t for t in manifest["tables"] if t["name"] in keep]
    for entry in manifest["tables"]:
        if entry["name"] == label and lines is not None:
            data = b"".join(lines)
            (dest / entry["file"]).write_bytes(data)
            entry.update(rows=len(lines), sha256=hashlib.sha256(data).hexdigest())
    (dest / "seed.json").write_text(json.dumps(manifest))


def import_seed(database, src, check=False, **options):
    return run_module(phoenix_seed.main, dict({"db_url": database.url, "stage": "BETA", "state": "imported",
                                               "src": str(src)}, **options), check=check)


@pytest.mark.parametrize("conflict", ["skip", "merge", "replace"])
def test_a_seed_never_writes_a_production_rows_dependants(database, tmp_path, conflict):
    dest = exported_seed(database, tmp_path)
    artifact = database.query('SELECT "artifactId"::text FROM "A_Text" ORDER BY 1 LIMIT 1')[0][0]
    with database.connect() as conn:  # the world's artifact becomes production data, then the world goes
        conn.execute(sql.SQL('UPDATE "Artifact" SET world_id = NULL WHERE id = %s'), [artifact])
        conn.execute(sql.SQL('UPDATE "User" SET world_id = NULL WHERE id = (SELECT "userId" FROM "Artifact" '
                             'WHERE id = %s)'), [artifact])
        conn.execute(sql.SQL('UPDATE "A_Text" SET content = %s WHERE "artifactId" = %s'), ["production text", artifact])
    rewrite_table(dest, "A_Text", keep=["A_Text"])  # a seed of A_Text rows only
    before = table_fingerprints(database)
    refused = import_seed(database, dest, conflict=conflict)
    assert refused["failed"] is True
    assert "of A_Text, e.g. key %s/" % artifact in refused["msg"] and "nothing was imported" in refused["msg"]
    assert table_fingerprints(database) == before
    with database.connect() as conn:  # with no A_Text row there yet, the seed would attach one to production
        conn.execute(sql.SQL('DELETE FROM "A_Text" WHERE "artifactId" = %s'), [artifact])
    before = table_fingerprints(database)
    attached = import_seed(database, dest, conflict=conflict)
    assert attached["failed"] is True and "of A_Text" in attached["msg"]
    assert table_fingerprints(database) == before


def test_a_copy_end_marker_in_a_table_file_cannot_cut_the_import(database, tmp_path):
    dest = exported_seed(database, tmp_path)
    lines = (dest / "tables" / "User.jsonl").read_bytes().splitlines(keepends=True)
    assert len(lines) == 3
    rewrite_table(dest, "User", lines=lines[:2] + [b"\\.\n"] + lines[2:])
    deleted = run_module(phoenix_world.main, {"db_url": database.url, "stage": "BETA", "id": "ROUND_TRIP",
                                              "state": "absent", "force": True})
    assert deleted["changed"] is True, deleted
    before = table_fingerprints(database)
    result = import_seed(database, dest)
    assert result["failed"] is True and "User are not valid JSON" in result["msg"]
    assert table_fingerprints(database) == before


def test_control_characters_in_a_row_cannot_escape_the_stream(database, tmp_path):
    dest = exported_seed(database, tmp_path)
    lines = (dest / "tables" / "User.jsonl").read_bytes().splitlines(keepends=True)
    hostile = json.loads(lines[0])
    hostile["name"] = "tab\there \\. back\\slash \u0001 quote\u0002 cr\r end"
    rewrite_table(dest, "User", lines=[json.dumps(hostile).encode() + b"\n"] + lines[1:])
    run_module(phoenix_world.main, {"db_url": database.url, "stage": "BETA", "id": "ROUND_TRIP", "state": "absent",
                                    "force": True})
    done = import_seed(database, dest, world="ROUND_TRIP")
    assert done["changed"] is True, done
    assert database.query('SELECT name FROM "User" WHERE id = %s', (hostile["id"],)) == [(hostile["name"],)]


def test_a_table_file_linking_out_of_the_seed_is_refused(database, tmp_path):
    dest = exported_seed(database, tmp_path)
    outside = tmp_path / "outside.jsonl"
    original = dest / "tables" / "User.jsonl"
    outside.write_bytes(original.read_bytes())
    original.unlink()
    original.symlink_to(outside)
    run_module(phoenix_world.main, {"db_url": database.url, "stage": "BETA", "id": "ROUND_TRIP", "state": "absent",
                                    "force": True})
    before = table_fingerprints(database)
    result = import_seed(database, dest)
    assert result["failed"] is True and "tables/User.jsonl: a link leaving the seed directory" in result["msg"]
    assert table_fingerprints(database) == before


# -- seed exports ----------------------------------------------------------------------------------------------

def export_to(database, dest, stage="BETA", check=False, **options):
    return run_module(phoenix_seed.main, dict({"db_url": database.url, "stage": stage, "state": "exported",
                                               "world": "ROUND_TRIP", "dest": str(dest)}, **options), check=check)


def test_an_export_never_deletes_what_it_did_not_write(database, tmp_path):
    exported_seed(database, tmp_path)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.txt").write_text("years of work")
    refused = export_to(database, mine)
    assert refused["failed"] is True and "not a seed directory" in refused["msg"]
    assert (mine / "thesis.txt").read_text() == "years of work"
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep me")
    assert "is not a directory" in export_to(database, a_file)["msg"]
    assert a_file.read_text() == "keep me"
    earlier = tmp_path / "seed"
    (earlier / "tables" / "keep.txt").write_text("not an export's")
    stray = export_to(database, earlier)
    assert stray["failed"] is True and "tables/keep.txt" in stray["msg"]
    assert (earlier / "tables" / "keep.txt").exists()


def test_an_export_replaces_an_earlier_export_whole_and_private(database, tmp_path):
    dest = exported_seed(database, tmp_path)
    with database.connect() as conn:
        conn.execute(sql.SQL('UPDATE "User" SET name = %s WHERE world_id = %s'), ["Renamed", "ROUND_TRIP"])
    again = export_to(database, dest)
    assert again["changed"] is True, again
    assert b"Renamed" in (dest / "tables" / "User.jsonl").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seed"]  # no partial or old copy left beside it
    modes = {str(p.relative_to(dest)): p.stat().st_mode & 0o777 for p in [dest] + list(dest.rglob("*"))}
    assert modes["."] == 0o700 and modes["tables"] == 0o700
    assert {m for name, m in modes.items() if name not in (".", "tables")} == {0o600}


@pytest.mark.parametrize("reference", ["blob:../../etc/passwd", "blob:/etc/passwd"])
def test_blob_references_resolve_inside_blob_dir_only(database, tmp_path, reference):
    dest = exported_seed(database, tmp_path)
    blob_dir = tmp_path / "blobs"
    blob_dir.mkdir()
    with database.connect() as conn:
        conn.execute(sql.SQL('UPDATE "A_Image" SET url = %s'), [reference])
    refused = export_to(database, tmp_path / "fresh", blob_dir=str(blob_dir))
    assert refused["failed"] is True and "not plain file names inside blob_dir" in refused["msg"]
    assert not (tmp_path / "fresh").exists()
    assert dest.exists()


def test_an_export_from_prod_is_masked_unless_allowed(database, tmp_path):
    exported_seed(database, tmp_path)
    emails = {r[0] for r in database.query('SELECT email FROM "User" WHERE world_id = %s', ("ROUND_TRIP",))}
    with database.connect() as conn:
        conn.execute(sql.SQL("UPDATE phoenix.environment SET stage = 'PROD'"))
    masked = export_to(database, tmp_path / "prod", stage="PROD")
    assert masked["changed"] is True and "User.email" in masked["masked"], masked
    written = (tmp_path / "prod" / "tables" / "User.jsonl").read_text()
    assert not any(email in written for email in emails) and "@example.invalid" in written
    assert '"password":null' in written.replace(" ", "")
    assert export_to(database, tmp_path / "prod", stage="PROD")["changed"] is False
    planned = export_to(database, tmp_path / "planned", stage="PROD", check=True)
    assert planned["changed"] is True and not (tmp_path / "planned").exists()
    kept = export_to(database, tmp_path / "kept", stage="PROD", mask={"User.email": "keep"})
    assert kept["failed"] is True and "allow_unmasked" in kept["msg"]
    unmasked = export_to(database, tmp_path / "unmasked", stage="PROD", allow_unmasked=True)
    assert unmasked["changed"] is True
    assert all(email in (tmp_path / "unmasked" / "tables" / "User.jsonl").read_text() for email in emails)
    typo = export_to(database, tmp_path / "typo", stage="PROD", mask={"User.emial": "null"})
    assert typo["failed"] is True and "User.emial" in typo["msg"]


# -- the PROD guard and the stage fence ------------------------------------------------------------------------

def test_cleanup_in_prod_without_allow_prod_writes_nothing(database):
    migrate(database)
    run_module(phoenix_world.main, {"db_url": database.url, "stage": "BETA", "id": "OLD_ONE", "auto_cleanup": False,
                                    "cleanup_after_hours": 1})
    with database.connect() as conn:
        conn.execute(sql.SQL('UPDATE "WorldMeta" SET "createdAt" = now() - interval \'2 hours\''))
        conn.execute(sql.SQL("UPDATE phoenix.environment SET stage = 'PROD'"))
    before = table_fingerprints(database)
    refused = run_module(phoenix_world_cleanup.main, {"db_url": database.url, "stage": "PROD"})
    assert refused["failed"] is True and "allow_prod=true" in refused["msg"]
    assert table_fingerprints(database) == before
    prod = {"db_url": database.url, "stage": "PROD", "allow_prod": True}
    planned = run_module(phoenix_world_cleanup.main, prod, check=True)
    assert planned["deactivated"] == ["OLD_ONE"] and table_fingerprints(database) == before
    allowed = run_module(phoenix_world_cleanup.main, prod)
    assert allowed["changed"] is True and allowed["deactivated"] == ["OLD_ONE"]
    assert run_module(phoenix_world_cleanup.main, prod)["changed"] is False


@pytest.mark.parametrize("module, args", [
    (phoenix_world, {"id": "UC_TESTING"}),
    (phoenix_world_cleanup, {}),
    (phoenix_user, {"email": "a@b.example", "password": "Correct-Horse-42"}),
    (phoenix_seed, {"state": "orphans_removed", "blob_dir": "/nonexistent"}),
    (phoenix_audit, {"operation": "note"}),
])
def test_a_database_without_a_fence_is_written_only_by_phoenix_schema(database, module, args):
    with database.connect() as conn:  # an application's own tables, as the collection finds them
        conn.execute(sql.SQL('CREATE TABLE "WorldMeta" (id text PRIMARY KEY, name text)'))
    before = table_fingerprints(database)
    refused = run_module(module.main, dict({"db_url": database.url, "stage": "BETA"}, **args))
    assert refused["failed"] is True and "run phoenix_schema first" in refused["msg"], refused
    assert table_fingerprints(database) == before


def seed_over_a_copied_user(database) -> tuple[dict, dict]:
    """As after world_copy: world COPIED holds a user with the email its seed generates, under another key. Seeds
    it; returns the tables' fingerprints from before the seed, and its result."""
    generated = generate("COPIED", users=1, artifacts=1, chats=0, messages_per_chat=0)["User"][0]
    with database.connect() as conn:
        conn.execute(sql.SQL('INSERT INTO "WorldMeta" (id, name, environment) VALUES (%s, %s, %s)'),
                     ["COPIED", "COPIED", "BETA"])
        conn.execute(sql.SQL('INSERT INTO "User" (email, world_id) VALUES (%s, %s)'), [generated["email"], "COPIED"])
    before = table_fingerprints(database)
    return before, run_module(phoenix_world.main, {"db_url": database.url, "stage": "BETA", "id": "COPIED",
                                                   "seed": {"users": 1, "artifacts": 1, "chats": 0}})


def test_a_seed_colliding_with_rows_already_there_gets_a_clear_message(database):
    migrate(database)
    before, result = seed_over_a_copied_user(database)
    assert result["failed"] is True
    assert "constraint" in result["msg"] and "nothing was written" in result["msg"], result["msg"]
    assert "another world id" in result["msg"] and "Traceback" not in result["_raw"]
    assert table_fingerprints(database) == before
