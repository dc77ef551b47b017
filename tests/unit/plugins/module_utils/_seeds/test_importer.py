# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an import takes from a seed's metadata, and the world id it suggests."""

from __future__ import annotations

import pytest

from ansible_collections.phoenix.platform.plugins.module_utils._core.world_meta import REGISTRY_COLUMNS, WORLD_ID, Registry
from ansible_collections.phoenix.platform.plugins.module_utils._seeds.importer import seed_meta_values, suggested_id


PHOENIX_REGISTRY = Registry(dict.fromkeys(REGISTRY_COLUMNS, "text"), frozenset())
APPLICATION_REGISTRY = Registry(dict(PHOENIX_REGISTRY.types, users="jsonb", artifacts="jsonb", chats="jsonb"),
                                frozenset({"users", "artifacts", "chats"}))


def test_never_expiring_worlds_get_the_default_ttl_and_unknown_keys_are_ignored():
    metadata = {"name": "Test World 1", "category": "test", "cleanupAfterHours": 0, "users": [], "createdBy": None}
    assert seed_meta_values(metadata, PHOENIX_REGISTRY) == {"name": "Test World 1", "category": "test"}
    assert seed_meta_values({"cleanupAfterHours": None}, PHOENIX_REGISTRY) == {}
    assert seed_meta_values({"cleanupAfterHours": 48}, PHOENIX_REGISTRY) == {"cleanupAfterHours": 48}


def test_world_definitions_go_where_the_registry_keeps_them():
    metadata = {"name": "Tour", "users": [{"email": "a@b.example"}], "chats": [], "createdBy": None}
    assert seed_meta_values(metadata, APPLICATION_REGISTRY) == {
        "name": "Tour", "users": [{"email": "a@b.example"}], "chats": []}


@pytest.mark.parametrize("source, suggested", [
    ("world1", "WORLD1"),
    ("my-world.v2", "MY_WORLD_V2"),
    ("1st", "W_1ST"),
    ("x" * 70, "X" * 64),
])
def test_suggested_ids_are_valid(source, suggested):
    assert suggested_id(source) == suggested
    assert WORLD_ID.match(suggested)
