# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A dump's subscriptions and publications, told apart from the entries that only look like them."""

from __future__ import annotations

import pytest

from ansible_collections.phoenix.platform.plugins.module_utils._backups.replication import (
    dump_subscriptions,
    is_publication_of,
    subscriptions_left_out,
)
from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError

# pg_restore --list of a subscriber's and publisher's database (as pg_dump 17 lists them), with application objects
# named like them; and a plain dump's reading of the same (class and OID 0, see plain_dump)
TOC = [
    "; Archive created at 2026-12-06 02:37:32 UTC\n",
    "216; 1259 18718 TABLE public t shop_owner\n",
    '217; 1259 18719 TABLE public "SUBSCRIPTION - x" shop_owner\n',
    "3550; 6104 17482 PUBLICATION - cdc postgres\n",
    "3357; 6104 18728 PUBLICATION - cdc two shop_owner\n",
    "3358; 6106 18729 PUBLICATION TABLE public cdc two t shop_owner\n",
    "3359; 6237 18730 PUBLICATION TABLES IN SCHEMA s2 cdc two s2 shop_owner\n",
    "3551; 6100 17751 SUBSCRIPTION - supplier_prices postgres\n",
    "3552; 0 0 COMMENT - SUBSCRIPTION supplier_prices postgres\n",
    "12; 0 0 SUBSCRIPTION - price feed'; DROP TABLE x; -- shop_owner\n",
]


def test_the_subscriptions_of_a_dump_are_named_with_their_owners():
    assert dump_subscriptions(TOC) == ["supplier_prices (of postgres)", "price feed'; DROP TABLE x; -- (of shop_owner)"]


def test_only_the_publications_themselves_are_kept_and_the_tables_added_to_one_of_all_tables():
    kept = frozenset({"cdc", "cdc two"})
    assert [line for line in TOC if is_publication_of(line, kept, frozenset())] == [
        "3550; 6104 17482 PUBLICATION - cdc postgres\n", "3357; 6104 18728 PUBLICATION - cdc two shop_owner\n"]
    # "cdc" publishes all tables: "cdc two", which starts like it, keeps its tables
    assert [line for line in TOC if is_publication_of(line, kept, frozenset({"cdc"}))] == [
        "3550; 6104 17482 PUBLICATION - cdc postgres\n", "3357; 6104 18728 PUBLICATION - cdc two shop_owner\n"]
    assert [line for line in TOC if is_publication_of(line, kept, frozenset({"cdc two"}))] == [
        "3550; 6104 17482 PUBLICATION - cdc postgres\n", "3357; 6104 18728 PUBLICATION - cdc two shop_owner\n",
        "3358; 6106 18729 PUBLICATION TABLE public cdc two t shop_owner\n",
        "3359; 6237 18730 PUBLICATION TABLES IN SCHEMA s2 cdc two s2 shop_owner\n"]
    assert not [line for line in TOC if is_publication_of(line, frozenset({"cdc two t", "public"}), frozenset())]


def test_an_archives_subscriptions_are_left_out_with_one_warning_and_a_plain_dumps_are_refused():
    assert subscriptions_left_out(TOC[:3], "custom", "restoring backup b over database d") == []
    warning = subscriptions_left_out(TOC, "directory", "restoring backup b over database d")
    assert warning == ["subscriptions supplier_prices (of postgres), price feed'; DROP TABLE x; -- (of shop_owner) of "
                       "the dump were not restored: a restore leaves logical replication as the database has it; "
                       "create them by hand where the database should subscribe"]
    assert subscriptions_left_out(TOC[:8], "custom", "restoring backup b over database d") == [
        "subscription supplier_prices (of postgres) of the dump was not restored: a restore leaves logical replication "
        "as the database has it; create it by hand where the database should subscribe"]
    with pytest.raises(PhoenixError, match=r"^a drill of backup b would create subscriptions supplier_prices"):
        subscriptions_left_out(TOC, "plain", "a drill of backup b")
