"""Nothing outside the request is written: transfers and imports match rows by key and owner."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from test_phoenix_transfer import pair, transfer  # noqa: F401  (pair is a fixture)
from worlds_fixtures import table_fingerprints

pytestmark = pytest.mark.usefixtures("clean_env")


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
    """Text keys are not re-keyed by a rename: the second copy's rows meet the first copy's keys."""
    source, target = pair
    for database in pair:
        execute(database, 'CREATE TABLE "Coupon" (code text PRIMARY KEY, percent integer NOT NULL, world_id text)')
    execute(source, 'INSERT INTO "Coupon" VALUES (%s, %s, %s)', ("WELCOME10", 10, "UC_TESTING"))
    groups = {"worlds": ["WorldMeta"], "coupons": ["Coupon"]}
    first = transfer(source, target, worlds=["UC_TESTING"], suffix="_BETA", groups=groups, include=list(groups))
    assert first["changed"] is True, first
    before = table_fingerprints(target)
    second = transfer(source, target, worlds=["UC_TESTING"], suffix="_QA", groups=groups, include=list(groups))
    assert second["failed"] is True
    assert "Coupon: 1 row(s), e.g. key WELCOME10 belongs to world UC_TESTING_BETA in the target, not to world " \
           "UC_TESTING_QA" in second["msg"]
    assert table_fingerprints(target) == before
    assert target.query('SELECT world_id FROM "Coupon"') == [("UC_TESTING_BETA",)]


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
