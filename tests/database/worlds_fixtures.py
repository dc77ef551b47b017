"""Schemas for the tests: the reference schema, an unrelated shop that follows the world_id convention, and
application tables that make a dump and its restore work (identity keys, partitions, triggers, odd names)."""

from __future__ import annotations

import uuid
from typing import Callable

from psycopg import sql

from ansible_collections.phoenix.platform.plugins.module_utils._backups import restore as restore_module
from ansible_collections.phoenix.platform.plugins.module_utils._backups.split_load import load_split
from ansible_collections.phoenix.platform.plugins.modules import phoenix_schema
from ansible_collections.phoenix.platform.tests.helpers import run_module

TINY = {"users": 1, "artifacts": 2, "chats": 1, "messages_per_chat": 1}  # the smallest seed of a world

SHOP_DDL = (
    "CREATE SCHEMA shop",
    "CREATE TABLE shop.products (sku text PRIMARY KEY, title text NOT NULL)",
    "CREATE TABLE shop.customers (id uuid PRIMARY KEY, name text NOT NULL, email text, world_id text)",
    "CREATE TABLE shop.orders (id uuid PRIMARY KEY, customer_id uuid NOT NULL REFERENCES shop.customers (id), "
    "placed_at timestamptz NOT NULL, total numeric(10, 2), note jsonb, world_id text)",
    "CREATE TABLE shop.order_lines (order_id uuid NOT NULL REFERENCES shop.orders (id), line_no integer NOT NULL, "
    "sku text NOT NULL REFERENCES shop.products (sku), qty integer NOT NULL, PRIMARY KEY (order_id, line_no))",
)
SHOP_TABLES = ("shop.customers", "shop.orders", "shop.order_lines")

ODD_TABLES = r"""
CREATE TABLE ledger (id int GENERATED ALWAYS AS IDENTITY, note text, doubled int GENERATED ALWAYS AS (id * 2) STORED);
-- values that look like the end of a COPY, or cut it into lines, once unescaped
INSERT INTO ledger (note) SELECT CASE g % 5 WHEN 0 THEN E'\\.' WHEN 1 THEN E'row\n\\.\nnext' WHEN 2 THEN E'tab\there'
    WHEN 3 THEN 'plain ' || g ELSE NULL END FROM generate_series(1, 300000) g;
CREATE TABLE readings (taken date NOT NULL, value int) PARTITION BY RANGE (taken);
CREATE TABLE readings_2025 PARTITION OF readings FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE readings_2026 PARTITION OF readings FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO readings SELECT date '2025-01-01' + (g % 700), g FROM generate_series(1, 100000) g;
CREATE TABLE no_key (value text);
INSERT INTO no_key SELECT 'same' FROM generate_series(1, 1000);
-- a name that needs quoting wherever it goes
CREATE SCHEMA "Odd schema";
CREATE TABLE "Odd schema"."a ""quoted"" (name" (value text);
INSERT INTO "Odd schema"."a ""quoted"" (name" SELECT md5(g::text) FROM generate_series(1, 5000) g;
CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'no inserts'; END $$;
CREATE TRIGGER ledger_refuses BEFORE INSERT ON ledger FOR EACH ROW EXECUTE FUNCTION refuse();
"""


# a bcrypt hash as an application stores a password: what no message may show
PASSWORD_HASH = "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"


def loads_in_pieces(monkeypatch, chosen: Callable[[str, int], bool]) -> dict[str, tuple[str, int] | None]:
    """A parallel restore loads in pieces the table data that ``chosen(entry, size)`` picks (as if each held most
    of the dump); returns what each of those loads returned, by its ``pg_restore --list`` entry."""
    monkeypatch.setattr(restore_module, "entries_to_split",
                        lambda entries, jobs: [entry for entry, size in entries if chosen(entry, size)])
    loaded: dict[str, tuple[str, int] | None] = {}

    def loading(*args):
        loaded[args[2]] = load_split(*args)
        return loaded[args[2]]
    monkeypatch.setattr(restore_module, "load_split", loading)
    return loaded


def the_ledger(entry: str, size: int) -> bool:
    return " TABLE DATA public ledger " in entry


def migrate(database, stage: str = "BETA", app_schema: str = "reference") -> None:
    result = run_module(phoenix_schema.main, {"db_url": database.url, "stage": stage, "app_schema": app_schema})
    assert "failed" not in result, result


def create_shop(database, stage: str = "BETA", app_schema: str = "none") -> None:
    """The shop's tables, next to the reference schema's with app_schema=reference."""
    migrate(database, stage=stage, app_schema=app_schema)
    with database.connect() as conn:
        for statement in SHOP_DDL:
            conn.execute(sql.SQL(statement))
        conn.execute(sql.SQL("INSERT INTO shop.products VALUES ('SKU-1', 'Mug'), ('SKU-2', 'Shirt')"))


def fill_shop_world(database, world: str, customers: int = 3, orders_each: int = 2) -> None:
    """Plain rows for a shop world, with its WorldMeta row."""
    with database.connect() as conn:
        conn.execute(sql.SQL('INSERT INTO "WorldMeta" (id, name, environment, "isTemplate") VALUES (%s, %s, %s, true)'),
                     [world, world, "BETA"])
        for c in range(customers):
            customer = uuid.uuid4()
            conn.execute(sql.SQL("INSERT INTO shop.customers VALUES (%s, %s, %s, %s)"),
                         [customer, "Customer %d" % c, "c%d@shop.example" % c, world])
            for o in range(orders_each):
                order = uuid.uuid4()
                conn.execute(sql.SQL("INSERT INTO shop.orders VALUES (%s, %s, now(), %s, %s, %s)"),
                             [order, customer, 10 * (o + 1), '{"gift": true}', world])
                for line in range(2):
                    conn.execute(sql.SQL("INSERT INTO shop.order_lines VALUES (%s, %s, %s, %s)"),
                                 [order, line, "SKU-%d" % (line + 1), line + 1])


def table_fingerprints(database) -> dict[str, tuple[int, str]]:
    """Row count and an order-independent checksum of every application table."""
    rows = database.query(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind = 'r' AND n.nspname IN ('public', 'shop', 'store', 'phoenix') ORDER BY 1, 2")
    result = {}
    for schema, table in rows:
        with database.connect() as conn:
            count, digest = conn.execute(sql.SQL(
                "SELECT count(*), coalesce(md5(string_agg(md5(t::text), '' ORDER BY md5(t::text))), '') FROM {} t"
            ).format(sql.Identifier(schema, table))).fetchone()
        result["%s.%s" % (schema, table)] = (count, digest)
    return result


def app_fingerprints(database) -> dict[str, tuple[int, str]]:
    """``table_fingerprints`` without the history a restore keeps or adds (audit log, recorded health checks)."""
    return {t: v for t, v in table_fingerprints(database).items()
            if t not in ("phoenix.audit_log", "phoenix.health_history")}
