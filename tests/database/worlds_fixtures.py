"""Schemas for world tests: the reference schema, and an unrelated shop that follows the world_id convention."""

from __future__ import annotations

import uuid

from psycopg import sql

from ansible_collections.phoenix.platform.plugins.modules import phoenix_schema
from ansible_collections.phoenix.platform.tests.helpers import run_module

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
