"""Worlds of an application keyed by serial and identity integers: copies get keys from the tables' own
sequences through the key map, references to production rows keep theirs."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Callable

import psycopg
import pytest
from psycopg import sql

from ansible_collections.phoenix.platform.plugins.modules import (
    phoenix_seed,
    phoenix_transfer,
    phoenix_world,
    phoenix_world_cleanup,
    phoenix_world_info,
)
from ansible_collections.phoenix.platform.tests.helpers import run_module

from conftest import Database
from store_schema import create_store, fill_store_world, world_graph
from worlds_fixtures import table_fingerprints

pytestmark = pytest.mark.usefixtures("clean_env")
# Customers' emails are unique: a copy under another world id gets its own
TRANSFORMS = {"store.customer.email": "{world}.{value}"}
# What fill_store_world writes for one world
WORLD_ROWS = {"store.staff": 2, "store.customer": 3, "store.customer_note": 3, "store.rental": 6,
              "store.rental_event": 12, "store.payment": 6}


def world(database, check=False, **options):
    return run_module(phoenix_world.main, dict({"db_url": database.url, "stage": "BETA"}, **options),
                      check=check, diff=True)


def assert_same_world(graph: dict, template: dict, copy: str) -> None:
    """The copy holds the template's rows, and its staff's favourite customers (a foreign-key cycle) are its own."""
    assert graph["payment"] == template["payment"] and graph["event"] == template["event"]
    assert [r[4] for r in graph["customer"]] == [r[4] for r in template["customer"]]  # production tiers kept
    assert [r[:2] for r in graph["staff"]] == [r[:2] for r in template["staff"]]
    assert {r[2] for r in graph["staff"]} == {copy}


def keys(database, world_id: str) -> set[int]:
    return {r[0] for r in database.query("SELECT customer_id FROM store.customer WHERE world_id = %s", (world_id,))}


@pytest.fixture
def store(database):
    create_store(database)
    fill_store_world(database, "STORE_TEMPLATE")
    return database


def test_clones_get_keys_from_the_tables_sequences_and_repeat_as_no_change(store):
    template = world_graph(store, "STORE_TEMPLATE")
    preview = world(store, check=True, id="STORE_A", from_template="STORE_TEMPLATE", column_transforms=TRANSFORMS)
    assert preview["rows_added"] == WORLD_ROWS
    assert store.query("SELECT count(*) FROM store.customer") == [(3,)]
    assert store.query("SELECT count(*) FROM phoenix.key_map") == [(0,)]
    first = world(store, id="STORE_A", from_template="STORE_TEMPLATE", column_transforms=TRANSFORMS)
    assert first["rows_added"] == preview["rows_added"], first.get("msg")
    second = world(store, id="STORE_B", from_template="STORE_TEMPLATE", column_transforms=TRANSFORMS)
    assert second["rows_added"] == preview["rows_added"]
    for copy in ("STORE_A", "STORE_B"):  # complete, and every reference inside its own world
        graph = world_graph(store, copy)
        assert_same_world(graph, template, copy)
        assert [n[0] for n in graph["note"]] == [n[0] for n in template["note"]]
        assert [(r[0], r[1], r[2]) for r in graph["customer"]] == [(r[0], copy + "." + r[1], r[2]) for r in template["customer"]]
        assert {row[3] for row in graph["customer"]} == {copy}
        assert {row[1] for row in graph["rental"]} == {copy}
        assert [row[2:] for row in graph["rental"]] == [row[2:] for row in template["rental"]]  # films kept
    assert not keys(store, "STORE_TEMPLATE") & keys(store, "STORE_A")
    assert not keys(store, "STORE_A") & keys(store, "STORE_B")
    assert store.query("SELECT count(*) FROM store.film") == [(3,)]
    written = store.statistics("SELECT sum(n_tup_ins + n_tup_upd + n_tup_del) FROM pg_stat_user_tables "
                               "WHERE schemaname = 'store'")
    again = world(store, id="STORE_A", from_template="STORE_TEMPLATE", column_transforms=TRANSFORMS)
    assert not again["changed"] and again["rows_added"] == {}
    assert store.statistics("SELECT sum(n_tup_ins + n_tup_upd + n_tup_del) FROM pg_stat_user_tables "
                            "WHERE schemaname = 'store'") == written


def test_the_application_numbers_its_next_rows_after_the_copies(store):
    world(store, id="STORE_A", from_template="STORE_TEMPLATE", column_transforms=TRANSFORMS)
    with store.connect() as conn:  # the application's own inserts take the next values, without a collision
        customer = conn.execute("INSERT INTO store.customer (name, email) VALUES ('Walk-in', 'w@store.example') "
                                "RETURNING customer_id").fetchone()[0]
        rental = conn.execute("INSERT INTO store.rental (customer_id, film_id, rented_at) VALUES (%s, 1, now()) "
                              "RETURNING rental_id", [customer]).fetchone()[0]
    assert customer > max(keys(store, "STORE_A") | keys(store, "STORE_TEMPLATE"))
    assert rental > store.query("SELECT max(rental_id) FROM store.rental WHERE rental_id <> %s", (rental,))[0][0]


def test_a_partitioned_table_is_one_member_table_whatever_declares_its_foreign_keys(store):
    listed = run_module(phoenix_world_info.main, {"db_url": store.url, "stage": "BETA"})["worlds"]
    assert listed[0]["rows"] == WORLD_ROWS
    assert store.query("SELECT count(*) FROM store.payment_2026") == [(3,)]  # rows in both partitions


def test_deleting_a_copy_forgets_its_keys(store):
    world(store, id="STORE_A", from_template="STORE_TEMPLATE", column_transforms=TRANSFORMS)
    assert store.query("SELECT DISTINCT world FROM phoenix.key_map") == [("STORE_A",)]
    removed = world(store, id="STORE_A", state="absent")
    assert removed["rows_removed"] == WORLD_ROWS
    assert store.query("SELECT count(*) FROM phoenix.key_map") == [(0,)]
    assert world_graph(store, "STORE_TEMPLATE")["payment"]  # the template keeps its rows


def expire(database, world_id: str) -> None:
    with database.connect() as conn:
        conn.execute("UPDATE \"WorldMeta\" SET \"createdAt\" = now() - interval '2 days' WHERE id = %s", [world_id])


# What a run that would delete from store.customer_note (no primary key) says under a publication of all tables
UNIDENTIFIED = ("%s deletes rows of store.customer_note (publication %s), whose deletes a publication sends to a "
                "change pipeline, and which has neither a primary key nor a replica identity, so the server refuses "
                "any delete from it; give it one (ALTER TABLE store.customer_note REPLICA IDENTITY FULL, or a primary "
                "key), or take it out of the publication; nothing was written")


def refused_until_identified(database, runs: Callable[[bool], list[dict]], purpose: str,
                             publications: str = "cdc") -> None:
    """Each of ``runs(check)`` is refused, in check mode and for real, with nothing written; then the application
    gives store.customer_note a replica identity (REPLICA IDENTITY FULL), as a change pipeline requires."""
    before = table_fingerprints(database)
    for check in (True, False):
        for refused in runs(check):
            assert refused.get("failed") is True and "Traceback" not in refused["_raw"], refused
            assert refused["msg"] == UNIDENTIFIED % (purpose, publications), refused["msg"]
    assert table_fingerprints(database) == before
    with database.connect() as conn:
        conn.execute("ALTER TABLE store.customer_note REPLICA IDENTITY FULL")


def test_worlds_are_removed_from_a_database_whose_every_table_is_published(store):
    """A change pipeline reads every table (CREATE PUBLICATION ... FOR ALL TABLES, as CDC tools set it up), and the
    server refuses a DELETE, even of no row, on a table with neither a primary key nor a replica identity. A removal
    that would meet one is refused before it deletes anything, in check mode too, naming the table; once the
    application gives it one (REPLICA IDENTITY FULL), worlds are removed, and cleaned up, with their entries in
    Phoenix's key map (a table with a key of its own)."""
    world(store, id="STORE_A", from_template="STORE_TEMPLATE", column_transforms=TRANSFORMS)
    expire(store, "STORE_A")
    with store.connect() as conn:
        conn.execute("CREATE PUBLICATION cdc FOR ALL TABLES")
        conn.execute("CREATE PUBLICATION \"notes'; --\" FOR TABLE store.customer_note")
    refused_until_identified(store, lambda check: [
        world(store, check=check, id="STORE_A", state="absent"),
        run_module(phoenix_world_cleanup.main, {"db_url": store.url, "stage": "BETA"}, check=check)],
        "removing worlds", "cdc, notes'; --")
    for removal in ("state", "cleanup"):
        if removal == "state":
            removed = world(store, id="STORE_A", state="absent")
            assert removed.get("rows_removed") == WORLD_ROWS, removed.get("msg")
        else:
            world(store, id="STORE_A", from_template="STORE_TEMPLATE", column_transforms=TRANSFORMS)
            expire(store, "STORE_A")
            cleaned = run_module(phoenix_world_cleanup.main, {"db_url": store.url, "stage": "BETA"})
            assert cleaned.get("removed") == ["STORE_A"], cleaned.get("msg")
        assert store.query("SELECT count(*) FROM phoenix.key_map") == [(0,)]
        assert world_graph(store, "STORE_TEMPLATE")["payment"]


def test_a_removal_names_the_partitions_a_publication_cannot_identify_rows_of(store):
    """A partition's REPLICA IDENTITY is its own: the partitions of store.payment set to NOTHING make the server
    refuse deletes from them, whatever store.payment itself says. The refusal names the partitions to give one."""
    world(store, id="STORE_A", from_template="STORE_TEMPLATE", column_transforms=TRANSFORMS)
    with store.connect() as conn:
        conn.execute("CREATE PUBLICATION cdc FOR ALL TABLES")
        conn.execute("ALTER TABLE store.customer_note REPLICA IDENTITY FULL")
        for partition in ("store.payment_2025", "store.payment_2026"):
            conn.execute("ALTER TABLE %s REPLICA IDENTITY NOTHING" % partition)
    before = table_fingerprints(store)
    for fixed_where in ("nowhere", "the partitioned table"):
        for check in (True, False):
            refused = world(store, check=check, id="STORE_A", state="absent")
            assert refused.get("failed") is True and refused["msg"] == (
                "removing worlds deletes rows of store.payment (publication cdc), whose deletes a publication sends "
                "to a change pipeline, and which has 2 partitions, store.payment_2025 and 1 more, with REPLICA "
                "IDENTITY NOTHING, so the server refuses any delete from it; give it its primary key as one (ALTER "
                "TABLE store.payment_2025 REPLICA IDENTITY DEFAULT, and the same for each such partition), or take "
                "it out of the publication; nothing was written"), (fixed_where, refused)
        with store.connect() as conn:
            conn.execute("ALTER TABLE store.payment REPLICA IDENTITY DEFAULT")  # not passed on to its partitions
    assert table_fingerprints(store) == before
    with store.connect() as conn:
        for partition in ("store.payment_2025", "store.payment_2026"):
            conn.execute("ALTER TABLE %s REPLICA IDENTITY DEFAULT" % partition)
    assert world(store, id="STORE_A", state="absent").get("rows_removed") == WORLD_ROWS


def test_a_text_keyed_world_table_is_refused_with_its_column_named(store):
    with store.connect() as conn:
        conn.execute("CREATE TABLE store.voucher (code text PRIMARY KEY, customer_id integer "
                     "REFERENCES store.customer (customer_id), world_id text)")
    refused = world(store, id="STORE_A", from_template="STORE_TEMPLATE", column_transforms=TRANSFORMS)
    assert refused["failed"] and "store.voucher: its primary key (code text)" in refused["msg"]
    assert keys(store, "STORE_A") == set()


def seed(database, check=False, **options):
    return run_module(phoenix_seed.main, dict({"db_url": database.url, "stage": "BETA"}, **options), check=check)


def test_a_replacing_import_into_a_store_whose_every_table_is_published(store, tmp_path):
    """conflict=replace deletes the world's rows the seed does not hold; under a publication of all tables, from a
    table without a replica identity the server would refuse it: refused before anything is written."""
    assert seed(store, world="STORE_TEMPLATE", state="exported", dest=str(tmp_path / "store"))["changed"]
    with store.connect() as conn:
        conn.execute("INSERT INTO store.customer_note SELECT customer_id, 'added after the export' FROM store.customer "
                     "WHERE world_id = 'STORE_TEMPLATE' LIMIT 1")
        conn.execute("CREATE PUBLICATION cdc FOR ALL TABLES")
    refused_until_identified(store, lambda check: [
        seed(store, check=check, state="imported", src=str(tmp_path / "store"), conflict="replace")],
        "this import (conflict=replace)")
    replaced = seed(store, state="imported", src=str(tmp_path / "store"), conflict="replace")
    assert replaced.get("failed") is not True and replaced["tables"]["store.customer_note"]["deleted"] == 1, replaced


def test_export_delete_import_is_exact_and_an_import_under_another_id_is_a_second_copy(store, tmp_path):
    before = table_fingerprints(store)
    template = world_graph(store, "STORE_TEMPLATE")
    assert seed(store, world="STORE_TEMPLATE", state="exported", dest=str(tmp_path / "store"))["changed"]
    copy = seed(store, state="imported", src=str(tmp_path / "store"), world="STORE_COPY", column_transforms=TRANSFORMS)
    assert "failed" not in copy and copy["changed"], copy.get("msg")
    assert {t: s["inserted"] for t, s in copy["tables"].items()} == WORLD_ROWS
    graph = world_graph(store, "STORE_COPY")
    assert_same_world(graph, template, "STORE_COPY")
    assert {r[1] for r in graph["rental"]} == {"STORE_COPY"}
    assert not keys(store, "STORE_COPY") & keys(store, "STORE_TEMPLATE")
    assert not seed(store, state="imported", src=str(tmp_path / "store"), world="STORE_COPY", column_transforms=TRANSFORMS)["changed"]

    assert world(store, id="STORE_COPY", state="absent")["changed"]
    assert world(store, id="STORE_TEMPLATE", state="absent")["changed"]
    back = seed(store, state="imported", src=str(tmp_path / "store"))
    assert "failed" not in back, back.get("msg")
    assert back["changed"]
    after = table_fingerprints(store)
    assert {t: v for t, v in after.items() if t.startswith("store.")} == \
        {t: v for t, v in before.items() if t.startswith("store.")}
    with store.connect() as conn:  # the sequences are not behind the keys the import brought back
        conn.execute("SELECT setval('store.customer_customer_id_seq', 1)")
    back_again = seed(store, state="imported", src=str(tmp_path / "store"), conflict="merge")
    assert "failed" not in back_again, back_again.get("msg")
    assert not back_again["changed"]
    with store.connect() as conn:
        new = conn.execute("INSERT INTO store.customer (name, email) VALUES ('Walk-in', 'w@store.example') "
                           "RETURNING customer_id").fetchone()[0]
    assert new > max(keys(store, "STORE_TEMPLATE"))


def test_an_import_under_another_id_that_would_duplicate_unique_values_is_refused_before_writing(store, tmp_path):
    assert seed(store, world="STORE_TEMPLATE", state="exported", dest=str(tmp_path / "store"))["changed"]
    before = table_fingerprints(store)
    refused = seed(store, state="imported", src=str(tmp_path / "store"), world="STORE_COPY")
    assert refused["failed"] and refused["msg"] == "3 copied row(s) of store.customer " + UNIQUE_ADVICE
    assert table_fingerprints(store) == before


@pytest.fixture
def two_stores(pg_cluster, store):
    """The store as LOCAL source, and a BETA store that has lived: its own world, numbered from 1 too."""
    name = "st_" + uuid.uuid4().hex[:10]
    with psycopg.connect(**pg_cluster.conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    target = Database(pg_cluster, name)
    create_store(target)
    fill_store_world(target, "STORE_THEIRS", template=False)
    with store.connect() as conn:
        conn.execute(sql.SQL("UPDATE phoenix.environment SET stage = 'LOCAL'"))
    yield store, target
    with psycopg.connect(**pg_cluster.conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def transfer(source, target, check=False, **options):
    return run_module(phoenix_transfer.main, dict({"db_url": target.url, "stage": "BETA",
                                                   "source": {"db_url": source.url, "stage": "LOCAL"}}, **options),
                      check=check)


def test_a_transfer_with_a_suffix_into_a_store_with_its_own_rows_leaves_them_untouched(two_stores):
    source, target = two_stores
    assert keys(source, "STORE_TEMPLATE") == keys(target, "STORE_THEIRS")  # the same integer ids on both sides
    theirs = world_graph(target, "STORE_THEIRS")
    template = world_graph(source, "STORE_TEMPLATE")
    preview = transfer(source, target, check=True, worlds=["STORE_TEMPLATE"], suffix="_BETA",
                       column_transforms=TRANSFORMS)
    assert "failed" not in preview, preview.get("msg")
    assert {t: p["insert"] for t, p in preview["plan"].items() if p["insert"]} == dict(WORLD_ROWS, WorldMeta=1)
    assert target.query("SELECT count(*) FROM store.customer") == [(3,)]
    first = transfer(source, target, worlds=["STORE_TEMPLATE"], suffix="_BETA", column_transforms=TRANSFORMS)
    assert first["changed"], first.get("msg")
    second = transfer(source, target, worlds=["STORE_TEMPLATE"], suffix="_TWO", column_transforms=TRANSFORMS)
    assert second["changed"], second.get("msg")
    assert world_graph(target, "STORE_THEIRS") == theirs
    for copy in ("STORE_TEMPLATE_BETA", "STORE_TEMPLATE_TWO"):
        graph = world_graph(target, copy)
        assert_same_world(graph, template, copy)
        assert {r[1] for r in graph["rental"]} == {copy} and {r[3] for r in graph["customer"]} == {copy}
    assert len(keys(target, "STORE_THEIRS") | keys(target, "STORE_TEMPLATE_BETA") | keys(target, "STORE_TEMPLATE_TWO")) == 9
    again = transfer(source, target, worlds=["STORE_TEMPLATE"], suffix="_BETA", column_transforms=TRANSFORMS)
    assert "failed" not in again and not again["changed"], again.get("msg") or again["plan"]


def test_a_second_suffix_that_would_repeat_the_first_copys_emails_is_refused_before_writing(two_stores):
    source, target = two_stores
    first = transfer(source, target, worlds=["STORE_TEMPLATE"], suffix="_BETA")  # the target has none of these emails
    assert first["changed"], first.get("msg")
    before = table_fingerprints(target)
    for check in (True, False):
        refused = transfer(source, target, check=check, worlds=["STORE_TEMPLATE"], suffix="_TWO")
        assert refused["failed"] and refused["msg"] == "3 copied row(s) of store.customer " + UNIQUE_ADVICE
    assert table_fingerprints(target) == before


def test_a_mirroring_transfer_into_a_store_whose_every_table_is_published(two_stores):
    """delete_missing deletes the target's rows the source no longer has; under a publication of all tables, from
    a table without a replica identity the server would refuse it: refused before anything is written."""
    source, target = two_stores
    transfer(source, target, worlds=["STORE_TEMPLATE"], suffix="_BETA", column_transforms=TRANSFORMS)
    with source.connect() as conn:
        conn.execute("DELETE FROM store.customer_note WHERE ctid = (SELECT min(ctid) FROM store.customer_note)")
    with target.connect() as conn:
        conn.execute("CREATE PUBLICATION cdc FOR ALL TABLES")
    refused_until_identified(target, lambda check: [
        transfer(source, target, check=check, worlds=["STORE_TEMPLATE"], suffix="_BETA", column_transforms=TRANSFORMS,
                 delete_missing=True)], "this transfer (delete_missing=true)")
    mirrored = transfer(source, target, worlds=["STORE_TEMPLATE"], suffix="_BETA", column_transforms=TRANSFORMS,
                        delete_missing=True)
    assert mirrored.get("failed") is not True and mirrored["plan"]["store.customer_note"]["delete"] == 1, mirrored


def test_a_source_change_arrives_at_the_renamed_copy(two_stores):
    source, target = two_stores
    transfer(source, target, worlds=["STORE_TEMPLATE"], suffix="_BETA", column_transforms=TRANSFORMS)
    with source.connect() as conn:
        conn.execute("UPDATE store.payment SET amount = 9.99 WHERE payment_id = (SELECT min(payment_id) FROM store.payment)")
    moved = transfer(source, target, worlds=["STORE_TEMPLATE"], suffix="_BETA", column_transforms=TRANSFORMS)
    assert {t: (p["insert"], p["update"]) for t, p in moved["plan"].items() if p["insert"] or p["update"]} == {
        "store.payment": (0, 1)}
    assert sorted(r[2] for r in world_graph(target, "STORE_TEMPLATE_BETA")["payment"])[-1] == Decimal("9.99")


def test_a_source_change_converges_under_the_targets_triggers_with_maintained_columns(two_stores):
    source, target = two_stores
    options = {"worlds": ["STORE_TEMPLATE"], "suffix": "_BETA", "maintained_columns": ["store.customer.last_update"],
               "column_transforms": TRANSFORMS}
    transfer(source, target, **options)
    with source.connect() as conn:
        conn.execute("UPDATE store.customer SET name = 'Customer One' WHERE name = 'Customer 1'")
    second = transfer(source, target, **options)
    assert second["plan"]["store.customer"]["update"] == 1 and not second.get("warnings"), second.get("msg")
    assert target.query("SELECT count(*) FROM store.customer WHERE name = 'Customer One'") == [(1,)]
    third = transfer(source, target, **options)
    assert not third["changed"], third["plan"]


def test_a_column_the_targets_triggers_rewrite_is_named(two_stores):
    source, target = two_stores
    options = {"worlds": ["STORE_TEMPLATE"], "suffix": "_BETA", "column_transforms": TRANSFORMS}
    transfer(source, target, **options)
    with source.connect() as conn:
        conn.execute("UPDATE store.customer SET name = 'Customer One' WHERE name = 'Customer 1'")
    second = transfer(source, target, **options)
    assert second["rewritten_by_target"] == {"store.customer": ["last_update"]}
    assert any("List them in maintained_columns" in w["event"]["msg"] and "store.customer.last_update" in w["event"]["msg"]
               for w in second["warnings"])
    typo = transfer(source, target, maintained_columns=["store.customers.last_update"], **options)
    assert typo["failed"] and "'store.customers.last_update' names no column of a world table" in typo["msg"]


def test_a_seed_import_converges_under_the_targets_triggers_with_maintained_columns(store, tmp_path):
    seed(store, world="STORE_TEMPLATE", state="exported", dest=str(tmp_path / "store"))
    with store.connect() as conn:
        conn.execute("UPDATE store.customer SET name = 'Renamed' WHERE name = 'Customer 1'")
    options = {"state": "imported", "src": str(tmp_path / "store"), "conflict": "merge",
               "maintained_columns": ["store.customer.last_update"]}
    back = seed(store, **options)
    assert back["tables"]["store.customer"]["updated"] == 1, back.get("msg")
    assert not seed(store, **options)["changed"]


UNIQUE_ADVICE = ("would repeat values that other rows hold under the unique constraint customer_email_key (email), "
                 "e.g. c1@store_template.example; nothing was written. Give the copies values of their own with "
                 'column_transforms, e.g. {"store.customer.email": "{world}.{value}"}')


def test_a_copy_that_would_duplicate_unique_values_is_refused_before_writing_with_the_constraint_named(store):
    before = table_fingerprints(store)
    predicted = world(store, check=True, id="STORE_A", from_template="STORE_TEMPLATE")
    assert predicted["failed"] and predicted["msg"] == "3 copied row(s) of store.customer " + UNIQUE_ADVICE
    refused = world(store, id="STORE_A", from_template="STORE_TEMPLATE")
    assert refused["failed"] and refused["msg"] == predicted["msg"], refused.get("msg")
    assert table_fingerprints(store) == before
    typo = world(store, id="STORE_A", from_template="STORE_TEMPLATE", column_transforms={"store.customer.email": "x"})
    assert typo["failed"] and "must be a text with {world} in it" in typo["msg"]
    copied = world(store, id="STORE_A", from_template="STORE_TEMPLATE", column_transforms=TRANSFORMS)
    assert copied["changed"] and store.query("SELECT email FROM store.customer WHERE world_id = 'STORE_A' "
                                             "ORDER BY 1 LIMIT 1") == [("STORE_A.c1@store_template.example",)]


def test_world_info_explains_how_each_table_is_found_and_copied(store):
    with store.connect() as conn:
        conn.execute("CREATE TABLE store.voucher (code text PRIMARY KEY, customer_id integer "
                     "REFERENCES store.customer (customer_id), world_id text)")
    info = run_module(phoenix_world_info.main, {"db_url": store.url, "stage": "BETA", "detail": True})
    described = {t["table"]: t for t in info["catalog"]["tables"]}
    assert info["catalog"]["world_meta"] == "WorldMeta"
    order = list(described)  # parents first
    assert set(order) == set(WORLD_ROWS) | {"store.voucher"}
    assert order.index("store.customer") < order.index("store.rental") < order.index("store.payment")
    rental = described["store.rental"]
    assert rental["member_by"] == "foreign key rental_customer_id_fkey to store.customer"
    assert rental["identity_always"] == ["rental_id"] and "film_id" not in rental["copies"]
    assert rental["copies"]["rental_id"] == "a new value from store.rental_rental_id_seq, recorded in phoenix.key_map"
    assert rental["copies"]["customer_id"] == "the new key of the store.customer row it references (phoenix.key_map)"
    assert described["store.payment"]["partitioned"] and described["store.payment"]["primary_key"] == ["payment_id", "paid_at"]
    assert described["store.customer_note"]["identified_by"] == "whole row (no primary key)"
    assert described["store.staff"]["deferrable_foreign_keys"] == ["staff_favourite_customer_fkey"]
    assert "its primary key (code text)" in described["store.voucher"]["copy_problem"]
    assert described["store.customer"]["copy_problem"] is None


def test_an_expired_copy_is_cleaned_up_with_its_partitioned_rows_and_its_keys(store):
    world(store, id="STORE_A", from_template="STORE_TEMPLATE", column_transforms=TRANSFORMS)
    expire(store, "STORE_A")
    cleaned = run_module(phoenix_world_cleanup.main, {"db_url": store.url, "stage": "BETA"})
    assert cleaned["removed"] == ["STORE_A"] and cleaned["rows_deleted"] == WORLD_ROWS, cleaned.get("msg")
    assert store.query("SELECT count(*) FROM store.payment_2025") == [(3,)]  # the template's rows stay
    assert store.query("SELECT count(*) FROM phoenix.key_map") == [(0,)]


def test_text_keys_are_copied_with_the_transform_they_are_given(store):
    with store.connect() as conn:
        conn.execute("CREATE TABLE store.voucher (code text PRIMARY KEY, world_id text)")
        conn.execute("CREATE TABLE store.redemption (redemption_id serial PRIMARY KEY, "
                     "code text NOT NULL REFERENCES store.voucher (code))")
        conn.execute("INSERT INTO store.voucher VALUES ('WELCOME10', 'STORE_TEMPLATE')")
        conn.execute("INSERT INTO store.redemption (code) VALUES ('WELCOME10')")
    refused = world(store, id="STORE_A", from_template="STORE_TEMPLATE", column_transforms=TRANSFORMS)
    assert refused["failed"] and 'column_transforms, e.g. {"store.voucher.code": "{value}__{world}"}' in refused["msg"]
    transforms = dict(TRANSFORMS, **{"store.voucher.code": "{value}__{world}"})
    copied = world(store, id="STORE_A", from_template="STORE_TEMPLATE", column_transforms=transforms)
    assert copied["rows_added"]["store.voucher"] == 1 and copied["rows_added"]["store.redemption"] == 1, copied.get("msg")
    assert store.query("SELECT r.code FROM store.redemption r JOIN store.voucher v USING (code) "
                       "WHERE v.world_id = 'STORE_A'") == [("WELCOME10__STORE_A",)]
    assert not world(store, id="STORE_A", from_template="STORE_TEMPLATE", column_transforms=transforms)["changed"]


def test_a_hostile_transform_template_is_a_value_not_sql(store):
    hostile = {"store.customer.email": "{world}'); DROP TABLE store.film; --{value}"}
    copied = world(store, id="STORE_A", from_template="STORE_TEMPLATE", column_transforms=hostile)
    assert copied["changed"], copied.get("msg")
    assert store.query("SELECT count(*) FROM store.film") == [(3,)]
    assert store.query("SELECT min(email) FROM store.customer WHERE world_id = 'STORE_A'") == [
        ("STORE_A'); DROP TABLE store.film; --c1@store_template.example",)]


def test_a_checked_import_under_another_id_writes_nothing_and_a_misspelt_column_is_named(store, tmp_path):
    seed(store, world="STORE_TEMPLATE", state="exported", dest=str(tmp_path / "store"))
    before = table_fingerprints(store)
    preview = seed(store, check=True, state="imported", src=str(tmp_path / "store"), world="STORE_COPY",
                   column_transforms=TRANSFORMS)
    assert {t: s["inserted"] for t, s in preview["tables"].items()} == WORLD_ROWS, preview.get("msg")
    assert table_fingerprints(store) == before  # the key map included
    typo = seed(store, state="imported", src=str(tmp_path / "store"), world="STORE_COPY",
                column_transforms=TRANSFORMS, maintained_columns=["store.customer.lastupdate"])
    assert typo["failed"] and "'store.customer.lastupdate' names no column of a world table" in typo["msg"]
    assert table_fingerprints(store) == before
