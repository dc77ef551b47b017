# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Table order: parents before children, whatever the names say."""

from __future__ import annotations

from ansible_collections.phoenix.platform.plugins.module_utils._pg.catalog import ForeignKey, Table, table_label, topological


def table(name: str, *parents: str) -> Table:
    fks = [ForeignKey("%s_%s_fkey" % (name, p), ("%s_id" % p,), ("public", p), ("id",)) for p in parents]
    return Table("public", name, ["id"], {"id": "integer"}, ("id",), fks)


def names(tables) -> list[str]:
    return [t.name for t in tables]


def test_parents_come_first_ties_by_name():
    tables = [table("a_line", "order", "product"), table("order", "customer"), table("product"), table("customer")]
    assert names(topological(tables)) == ["customer", "product", "order", "a_line"]


def test_self_references_and_parents_outside_the_set_are_ignored():
    tables = [table("employee", "employee", "department"), table("badge", "employee")]
    assert names(topological(tables)) == ["employee", "badge"]


def test_a_cycle_still_yields_every_table_once():
    tables = [table("a", "b"), table("b", "a"), table("c", "a")]
    ordered = names(topological(tables))
    assert sorted(ordered) == ["a", "b", "c"] and ordered.index("c") > ordered.index("a")


def test_labels_leave_out_public():
    assert table_label("public", "User") == "User"
    assert table_label("sales", "order") == "sales.order"
