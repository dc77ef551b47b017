# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The transfer's plan from the request and the catalogs: world renames, tables, schema differences."""

from __future__ import annotations

import pytest

from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._pg.catalog import Catalog, ForeignKey, Table
from ansible_collections.phoenix.platform.plugins.module_utils._transfer.plan import (
    TransferRequest,
    left_out,
    schema_differences,
    selected_tables,
    world_map,
)


def request(**options):
    return TransferRequest(source_stage="LOCAL", target_stage="BETA", actor="test", **options)


def test_same_ids_without_rename_or_suffix():
    assert world_map(request(), ["UC_A", "UC_B"]) == {"UC_A": "UC_A", "UC_B": "UC_B"}


def test_rename_wins_over_suffix():
    mapped = world_map(request(rename={"UC_A": "UC_RENAMED"}, suffix="_BETA"), ["UC_A", "UC_B"])
    assert mapped == {"UC_A": "UC_RENAMED", "UC_B": "UC_B_BETA"}


@pytest.mark.parametrize("options", [{"suffix": "'; drop"}, {"rename": {"UC_A": "lower"}}])
def test_an_invalid_target_id_is_refused(options):
    with pytest.raises(PhoenixError, match="not a valid world id"):
        world_map(request(**options), ["UC_A"])


def table(name: str, types: dict[str, str], fks: tuple[tuple[str, str, str], ...] = (), key: tuple[str, ...] = ("id",)):
    """A catalog entry; ``fks`` as (column, parent table, parent column)."""
    return Table("public", name, list(types), dict(types), key,
                 [ForeignKey("%s_%s_fkey" % (name, col), (col,), ("public", parent), (ref,)) for col, parent, ref in fks])


def shop(**changes) -> Catalog:
    """A small application: customers own orders, orders have lines, lines point at products (no world_id)."""
    tables = {
        "WorldMeta": table("WorldMeta", {"id": "text", "name": "text"}),
        "customer": table("customer", {"id": "integer", "world_id": "text", "email": "text"}),
        "product": table("product", {"id": "integer", "title": "text"}),
        "orders": table("orders", {"id": "integer", "customer_id": "integer"}, (("customer_id", "customer", "id"),)),
        "line": table("line", {"id": "integer", "order_id": "integer", "product_id": "integer"},
                      (("order_id", "orders", "id"), ("product_id", "product", "id"))),
    }
    tables.update(changes)
    return Catalog({("public", name): t for name, t in tables.items() if t is not None})


def test_membership_follows_foreign_keys_and_parents_come_first():
    catalog = shop()
    assert [t.name for t in catalog.members] == ["customer", "orders", "line"]
    assert catalog.parent(catalog.by_label["line"]).name == "orders"


def test_selected_groups_bring_the_parents_their_rows_reference():
    catalog = shop()
    groups = {"orders": ["line"], "worlds": ["WorldMeta"]}
    chosen = selected_tables(catalog, request(include=["orders"], groups=groups))
    assert [t.name for t in chosen] == ["customer", "orders", "line"]  # product is not a world table
    with pytest.raises(PhoenixError, match="include names unknown groups planets; known: orders, worlds"):
        selected_tables(catalog, request(include=["planets"], groups=groups))
    with pytest.raises(PhoenixError, match="the source has no world table"):
        selected_tables(catalog, request(include=["orders"], groups={"orders": ["invoice"]}))


def test_schema_differences_name_table_column_and_both_types():
    source = shop()
    target = shop(
        customer=table("customer", {"id": "bigint", "world_id": "text", "phone": "text"}),
        orders=table("orders", {"id": "integer", "customer_id": "integer"}, (("customer_id", "customer", "id"),),
                     key=("id", "customer_id")),
        line=None,
    )
    assert schema_differences(source, target, source.members) == [
        "customer.email: missing in the target",
        "customer.id: integer in the source, bigint in the target",
        "customer.phone: missing in the source",
        "orders: primary key (id) in the source, (id, customer_id) in the target",
        "line: missing in the target",
    ]
    assert schema_differences(source, shop(), source.members) == []


def test_without_include_the_whole_world_moves_and_nothing_is_left_out():
    catalog = shop()
    chosen = selected_tables(catalog, request())
    assert [t.name for t in chosen] == ["WorldMeta", "customer", "orders", "line"]
    assert left_out(catalog, chosen) == []


def test_a_group_selection_reports_the_member_tables_it_leaves_out():
    catalog = shop()
    chosen = selected_tables(catalog, request(include=["customers"], groups={"customers": ["customer"]}))
    assert [t.name for t in chosen] == ["customer"]
    assert left_out(catalog, chosen) == ["line", "orders"]


def test_the_world_registry_is_never_a_member_whatever_its_foreign_keys():
    # An application's own "WorldMeta" may reference its users (createdBy -> customer here).
    registry = table("WorldMeta", {"id": "text", "name": "text", "createdBy": "integer"}, (("createdBy", "customer", "id"),))
    catalog = shop(WorldMeta=registry)
    assert "WorldMeta" not in catalog.by_label
    assert [t.name for t in catalog.members] == ["customer", "orders", "line"]
    chosen = selected_tables(catalog, request())
    assert [t.name for t in chosen] == ["customer", "WorldMeta", "orders", "line"]  # after the row it references
