"""World member tables discovered from pg_catalog."""

from __future__ import annotations

from psycopg import sql

from ansible_collections.phoenix.platform.plugins.module_utils._pg.catalog import load
from ansible_collections.phoenix.platform.plugins.modules import phoenix_world
from ansible_collections.phoenix.platform.tests.helpers import run_module

from worlds_fixtures import create_shop, migrate


def test_reference_schema_members_in_parent_first_order(database):
    migrate(database)
    with database.connect() as conn:
        catalog = load(conn)
    order = [t.label for t in catalog.members]
    assert set(order) == {"User", "Chat", "Message_v2", "Artifact", "Suggestion", "A_Text", "A_Image",
                          "A_Person", "A_SetItems", "A_Site", "A_Address", "A_FaqItem", "A_Link", "A_SetDefinition"}
    for parent, child in [("User", "Chat"), ("Chat", "Message_v2"), ("User", "Artifact"),
                          ("Artifact", "A_Text"), ("Artifact", "A_SetItems"), ("Artifact", "Suggestion")]:
        assert order.index(parent) < order.index(child), (parent, child)
    assert "WorldMeta" not in order


def test_dependent_tables_and_composite_keys(database):
    migrate(database)
    with database.connect() as conn:
        catalog = load(conn)
    text = catalog.by_label["A_Text"]
    assert not text.has_world_id
    assert text.owner.target == ("public", "Artifact")
    assert text.owner.columns == ("artifactId", "createdAt")
    assert catalog.by_label["Artifact"].primary_key == ("id", "createdAt")
    set_items = catalog.by_label["A_SetItems"]
    assert len([fk for fk in set_items.foreign_keys if fk.target == ("public", "Artifact")]) == 2
    assert catalog.uuid_key_columns(set_items) == {"setId", "itemId"}
    assert catalog.uuid_key_columns(catalog.by_label["Artifact"]) == {"id", "userId", "authorId"}


def test_unrelated_schema_following_the_convention(database):
    create_shop(database)
    with database.connect() as conn:
        catalog = load(conn)
    assert [t.label for t in catalog.members] == ["shop.customers", "shop.orders", "shop.order_lines"]
    lines = catalog.by_label["shop.order_lines"]
    assert lines.owner.target == ("shop", "orders")
    assert catalog.uuid_key_columns(lines) == {"order_id"}  # sku points at a global table: kept
    assert "shop.products" not in catalog.by_label


def test_a_uuid_reference_to_a_unique_column_follows_the_copy(database):
    """Members reference a card by its UNIQUE public code, not its key: a copy's reference points at the
    copied card, whose code is re-keyed like a key, never at the template's."""
    migrate(database, app_schema="none")
    for statement in (
        "CREATE SCHEMA wallet",
        "CREATE TABLE wallet.card (id uuid PRIMARY KEY, code uuid NOT NULL UNIQUE, world_id text)",
        "CREATE TABLE wallet.payment (id uuid PRIMARY KEY, card_code uuid NOT NULL REFERENCES wallet.card (code), "
        "amount integer NOT NULL)",
        "INSERT INTO \"WorldMeta\" (id, name, environment, \"isTemplate\") VALUES ('CARDS', 'Cards', 'BETA', true)",
        "INSERT INTO wallet.card SELECT gen_random_uuid(), gen_random_uuid(), 'CARDS' FROM generate_series(1, 2)",
        "INSERT INTO wallet.payment SELECT gen_random_uuid(), code, 5 FROM wallet.card",
    ):
        with database.connect() as conn:
            conn.execute(sql.SQL(statement))
    with database.connect() as conn:
        catalog = load(conn)
    assert catalog.uuid_key_columns(catalog.by_label["wallet.card"]) == {"id", "code"}
    assert catalog.uuid_key_columns(catalog.by_label["wallet.payment"]) == {"id", "card_code"}
    result = run_module(phoenix_world.main, {"db_url": database.url, "stage": "BETA", "id": "CARDS_COPY",
                                             "from_template": "CARDS"})
    assert result["changed"], result
    owners = database.query("SELECT c.world_id, count(*) FROM wallet.payment p JOIN wallet.card c ON c.code = p.card_code "
                            "GROUP BY 1 ORDER BY 1")
    assert owners == [("CARDS", 2), ("CARDS_COPY", 2)]
    assert database.query("SELECT count(DISTINCT code) FROM wallet.card") == [(4,)]
