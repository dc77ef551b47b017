# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Names of the databases a swap or a drill builds beside the environment's: they fit an identifier and never
coincide for two databases."""

from __future__ import annotations

import pytest

from ansible_collections.phoenix.platform.plugins.module_utils._backups.drill import SCRATCH_PREFIX
from ansible_collections.phoenix.platform.plugins.module_utils._backups.scratch import MAX_IDENTIFIER, scratch_name
from ansible_collections.phoenix.platform.plugins.module_utils._backups.swap import kept_name, new_name

# 53 characters each, alike but for the last: too long for every name below
TENANTS = ["shop_production_eu_west_1_customer_tenant_number_000%d" % tenant for tenant in (1, 2)]


def test_a_short_name_is_kept_whole():
    assert new_name("shop") == "shop_phoenix_restore"
    assert kept_name("shop", "20261205103000") == "shop_pre_restore_20261205103000"
    assert scratch_name(SCRATCH_PREFIX, "shop") == "phoenix_drill_shop"


@pytest.mark.parametrize("name_of", [new_name, lambda database: kept_name(database, "20261205103000"),
                                     lambda database: scratch_name(SCRATCH_PREFIX, database)])
def test_long_names_that_start_alike_get_names_of_their_own_that_fit(name_of):
    alpha, bravo = (name_of(database) for database in TENANTS)
    assert alpha != bravo
    assert max(len(alpha.encode()), len(bravo.encode())) <= MAX_IDENTIFIER
    assert alpha == name_of(TENANTS[0])  # the next run finds its leftovers by name


def test_a_name_is_shortened_in_bytes_without_cutting_a_character():
    database = "магазин_" * 8  # 120 bytes in UTF-8
    name = new_name(database)
    assert len(name.encode()) <= MAX_IDENTIFIER and name.endswith("_phoenix_restore")
    assert name.startswith("магазин_магазин_")
    assert new_name(database + "x") != name
