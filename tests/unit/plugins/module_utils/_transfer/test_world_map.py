"""Which target world each source world lands in."""

from __future__ import annotations

import pytest

from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._transfer.engine import TransferRequest, world_map


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
