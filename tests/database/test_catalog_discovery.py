"""World member tables discovered from pg_catalog."""

from __future__ import annotations

from ansible_collections.phoenix.platform.plugins.module_utils._pg.catalog import load

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
