"""phoenix_maintenance: vacuum where dead rows pile up, reindex, reap idle transactions; PROD guarded."""

from __future__ import annotations

import re

import psycopg
import pytest
from psycopg import sql

from ansible_collections.phoenix.platform.plugins.modules import phoenix_maintenance
from ansible_collections.phoenix.platform.tests.helpers import run_module

from conftest import dead_rows, held_by
from worlds_fixtures import migrate

pytestmark = pytest.mark.usefixtures("clean_env")


def maintenance(database, check=False, stage="BETA", **options):
    return run_module(phoenix_maintenance.main, dict({"db_url": database.url, "stage": stage}, **options), check=check)


@pytest.fixture
def churned(database):
    """A migrated database whose orders table has as many dead rows as live ones, everything else analysed."""
    migrate(database)
    with database.connect() as conn:
        # autovacuum off for it: on a busy machine, a worker may come before the run and leave it nothing to do
        conn.execute(sql.SQL("CREATE TABLE orders (id integer PRIMARY KEY, total integer NOT NULL) "
                             "WITH (autovacuum_enabled = off)"))
        conn.execute(sql.SQL("INSERT INTO orders SELECT g, 1 FROM generate_series(1, 2000) g"))
        conn.execute(sql.SQL("ANALYZE"))
        conn.execute(sql.SQL("UPDATE orders SET total = total + 1"))  # 2000 dead row versions
    assert dead_rows(database, "orders") == 2000
    return database


def test_check_mode_lists_what_it_would_do_and_does_nothing(churned):
    audit = churned.query("SELECT count(*) FROM phoenix.audit_log")
    planned = maintenance(churned, check=True, reindex=["orders"])
    assert planned["changed"] and planned["vacuum"] == ["orders"] and planned["reindex"] == ["orders"], planned
    assert planned["report"]["orders"]["dead_rows"] == 2000 and planned["report"]["orders"]["dead_ratio"] > 0.1
    assert dead_rows(churned, "orders") == 2000
    assert churned.query("SELECT count(*) FROM phoenix.audit_log") == audit


def test_a_run_vacuums_what_needs_it_and_the_next_finds_nothing(churned):
    done = maintenance(churned, reindex=["orders"])
    assert done["changed"] and done["vacuum"] == ["orders"] and done["reindex"] == ["orders"], done.get("msg")
    assert dead_rows(churned, "orders") == 0 and done["report"]["orders"]["last_vacuum"] is not None
    assert churned.query("SELECT details->'vacuum' FROM phoenix.audit_log WHERE operation = 'maintenance'") == [
        (["orders"],)]
    again = maintenance(churned)
    assert not again["changed"] and again["vacuum"] == []


def test_idle_transactions_are_reaped_but_never_ours_or_another_phoenix_jobs(churned):
    connections = {}
    for name in ("shop-web", "phoenix.platform.phoenix_transfer"):
        conn = psycopg.connect(churned.url, application_name=name)
        conn.execute(sql.SQL("SELECT count(*) FROM orders"))  # opens a transaction, then idles in it
        connections[name] = conn
    try:
        reaped = maintenance(churned, vacuum=False, terminate_idle_minutes=0)
        assert [s["application"] for s in reaped["terminate"]] == ["shop-web"], reaped.get("msg")
        assert reaped["terminated"] == [connections["shop-web"].info.backend_pid]
        with pytest.raises(psycopg.OperationalError):
            connections["shop-web"].execute(sql.SQL("SELECT 1"))
        assert connections["phoenix.platform.phoenix_transfer"].execute(sql.SQL("SELECT 1")).fetchone() == (1,)
    finally:
        for conn in connections.values():
            conn.close()


def indexes_of_orders(database) -> list[tuple[str, bool]]:
    return database.query("SELECT i.relname::text, x.indisvalid FROM pg_index x JOIN pg_class i ON i.oid = "
                          "x.indexrelid WHERE x.indrelid = 'orders'::regclass ORDER BY 1")


def test_idle_writers_are_reaped_before_the_reindex_that_would_wait_for_them(churned):
    with held_by(churned, sql.SQL("UPDATE orders SET total = total WHERE id = 1"), "shop-web") as writer:
        done = maintenance(churned, vacuum=False, reindex=["orders"], terminate_idle_minutes=0, lock_timeout=5)
        assert done["terminated"] == [writer], done
        assert done["reindex"] == ["orders"] and done["skipped"] == [], done
        assert indexes_of_orders(churned) == [("orders_pkey", True)]


@pytest.mark.parametrize("holder, leftover", [
    # an open write: REINDEX CONCURRENTLY waits for it before building, its new copy left invalid
    ("writer", "orders_pkey_ccnew"),
    # a transaction left prepared that locked a row: REINDEX builds and swaps, then waits for it to drop the old copy
    ("prepared locker", "orders_pkey_ccold"),
])
def test_a_reindex_behind_an_open_transaction_is_left_for_the_next_run_which_drops_its_leftover_first(
        churned, holder, leftover):
    if holder == "writer":
        holding = held_by(churned, sql.SQL("UPDATE orders SET total = total WHERE id = 1"), "shop-web")
    else:
        holding = held_by(churned, sql.SQL("SELECT 1 FROM orders WHERE id = 1 FOR UPDATE"), "shop-web", "shop:xa 9")
    with holding:
        left = maintenance(churned, vacuum=False, reindex=["orders"], lock_timeout=1)
        # the holder still held the table, so the copy the REINDEX left invalid could not be dropped either
        assert indexes_of_orders(churned) == sorted([("orders_pkey", True), (leftover, False)])
    assert "failed" not in left and left["reindex"] == [] and left["changed"] is False, left
    assert [(s["table"], s["action"]) for s in left["skipped"]] == [("orders", "reindex")]
    held = left["skipped"][0]["held_by"]
    assert re.fullmatch(r"public\.orders by " + (r"session \d+ of \w+ \(shop-web\)" if holder == "writer" else
                                                 re.escape("prepared transaction 'shop:xa 9'")), held), left
    assert [w["event"]["msg"] for w in left["warnings"]] == [
        "REINDEX of orders was left for the next run: it waited lock_timeout=1 s for the table, held now by %s; the "
        "invalid index public.%s, left by a REINDEX stopped half-way, could not be dropped (the next run drops it "
        "first, or DROP INDEX CONCURRENTLY by hand)" % (held, leftover)]
    done = maintenance(churned, vacuum=False, reindex=["orders"])  # once the holder is gone
    assert done["dropped_indexes"] == ["public." + leftover] and done["reindex"] == ["orders"], done
    assert done["skipped"] == [] and done["changed"] is True
    assert indexes_of_orders(churned) == [("orders_pkey", True)]


def test_a_vacuum_of_a_table_a_migration_holds_is_left_for_the_next_run_and_the_rest_is_done(churned):
    with churned.connect() as conn:
        conn.execute(sql.SQL("CREATE TABLE returns (id integer PRIMARY KEY) WITH (autovacuum_enabled = off)"))
        conn.execute(sql.SQL("INSERT INTO returns SELECT generate_series(1, 500)"))
        conn.execute(sql.SQL("DELETE FROM returns"))  # 500 dead rows here too
    assert dead_rows(churned, "returns") == 500
    with held_by(churned, sql.SQL("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE"), "nightly migration"):
        left = maintenance(churned, lock_timeout=1)
    assert "failed" not in left and left["changed"] is True, left
    assert left["vacuum"] == ["returns"] and dead_rows(churned, "returns") == 0
    assert [(s["table"], s["action"]) for s in left["skipped"]] == [("orders", "vacuum")]
    assert re.search(r"VACUUM of orders was left for the next run: it waited lock_timeout=1 s for the table, held now "
                     r"by public\.orders by session \d+ of \w+ \(nightly migration\)$", left["warnings"][0]["event"]["msg"])
    assert dead_rows(churned, "orders") == 2000
    again = maintenance(churned)
    assert again["vacuum"] == ["orders"] and dead_rows(churned, "orders") == 0


@pytest.fixture(params=[
    ("maintainer", "pg_read_all_data, pg_read_all_stats",  # sees every session's state
     "1 session of postgres (dba console) idle in a transaction for longer than 0 minutes were left: role maintainer "
     "may not end them (a superuser's only a superuser, others' a member of pg_signal_backend)"),
    ("reader", "pg_read_all_data",  # sees the state of no session but its own
     "the state of 1 session(s) of other roles in this database is hidden from role reader, so they were not looked "
     "at for idle transactions; make it a member of pg_read_all_stats"),
], ids=["maintainer", "reader"])
def limited_role(request, pg_cluster):
    """A role that may end no session but its own, and the warning it gets for a superuser's idle transaction."""
    role, memberships, warning = request.param
    with psycopg.connect(**pg_cluster.conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(sql.Identifier(role), sql.SQL(memberships)))
    yield role, warning
    with psycopg.connect(**pg_cluster.conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_an_idle_session_the_role_may_not_end_or_see_is_left_with_a_warning(churned, limited_role):
    role, warning = limited_role
    with psycopg.connect(churned.url, application_name="dba console") as console:  # a superuser's
        console.execute(sql.SQL("SELECT count(*) FROM orders"))  # opens a transaction, then idles in it
        as_role = psycopg.conninfo.make_conninfo(churned.url, user=role)
        reaped = run_module(phoenix_maintenance.main, {"db_url": as_role, "stage": "BETA", "vacuum": False,
                                                       "terminate_idle_minutes": 0})
        assert "failed" not in reaped and reaped["terminate"] == [] and reaped["changed"] is False, reaped
        assert [w["event"]["msg"] for w in reaped["warnings"]] == [warning]
        assert console.execute(sql.SQL("SELECT 1")).fetchone() == (1,)


def test_prod_reports_freely_and_acts_only_with_allow_prod(database):
    migrate(database, stage="PROD")
    with database.connect() as conn:
        conn.execute(sql.SQL("CREATE TABLE orders AS SELECT g AS id FROM generate_series(1, 100) g"))  # never analysed
    report = maintenance(database, stage="PROD", vacuum=False)
    assert not report["changed"] and report["report"]["orders"]["rows"] == 100, report.get("msg")
    refused = maintenance(database, stage="PROD")
    assert refused["failed"] and "allow_prod=true" in refused["msg"]
    assert "orders" in maintenance(database, stage="PROD", allow_prod=True)["vacuum"]


@pytest.mark.parametrize("options, message", [
    ({"reindex": ["ordres"]}, "reindex names no table of this database: ordres"),
    ({"dead_ratio": -1.0}, "dead_ratio must be from 0 to 100"),
    ({"terminate_idle_minutes": -5}, "terminate_idle_minutes must be from 0 to"),
    ({"lock_timeout": -1}, "lock_timeout must be from 0 to 86400, got -1"),
    ({"reindex": ['orders"; DROP TABLE orders; --']}, 'reindex names no table of this database: orders"; DROP'),
])
def test_typos_and_hostile_names_are_refused_before_anything_runs(churned, options, message):
    refused = maintenance(churned, **options)
    assert refused["failed"] and message in refused["msg"], refused
    assert dead_rows(churned, "orders") == 2000
