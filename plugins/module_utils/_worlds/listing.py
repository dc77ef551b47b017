# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Worlds with their row counts, as phoenix_world_info returns them."""

from __future__ import annotations

from typing import Any

from ansible_collections.phoenix.platform.plugins.module_utils._core.world_meta import load_registry, public_meta
from ansible_collections.phoenix.platform.plugins.module_utils._pg import catalog as catalog_mod
from ansible_collections.phoenix.platform.plugins.module_utils._worlds import rows as world_rows
from ansible_collections.phoenix.platform.plugins.module_utils._worlds.query import WorldFilter, find_worlds


def list_worlds(conn, world_filter: WorldFilter, where: str) -> list[dict[str, Any]]:
    found = find_worlds(conn, load_registry(conn, where), world_filter)
    counts = world_rows.count_rows(conn, catalog_mod.load(conn), [w["id"] for w in found])
    return [dict(public_meta(w), rows=counts[w["id"]]) for w in found]
