"""The collection on a database shaped like the original WelcomeCraft: its own "WorldMeta" (adopted), uuid keys,
versioned artifacts with one content table per kind, timestamps without time zone, json columns."""

from __future__ import annotations

import pytest
from psycopg import sql

from ansible_collections.phoenix.platform.plugins.modules import phoenix_schema
from ansible_collections.phoenix.platform.tests.helpers import run_module

from original_schema import build_original

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
        (1, "phoenix_core"), (2, "world_meta_adopted")]
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
