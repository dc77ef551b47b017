# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The stage fence and the PROD guard."""

from __future__ import annotations

import pytest

from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import ProdGuardError, StageFenceError
from ansible_collections.phoenix.platform.plugins.module_utils._core.stage import check_stage_fence, require_prod_allowed


def test_stage_fence_allows_same_or_unregistered():
    check_stage_fence("BETA", "BETA", "db")
    check_stage_fence("BETA", None, "db")


def test_stage_fence_names_both_stages():
    with pytest.raises(StageFenceError) as caught:
        check_stage_fence("BETA", "PROD", "app@db:5432/phoenix")
    assert "registered as PROD" in caught.value.msg
    assert "declares stage BETA" in caught.value.msg
    assert caught.value.details == {"declared_stage": "BETA", "registered_stage": "PROD"}


def test_prod_guard():
    require_prod_allowed("BETA", False, "world create")
    require_prod_allowed("PROD", True, "world create")
    with pytest.raises(ProdGuardError, match="allow_prod=true"):
        require_prod_allowed("PROD", False, "world create")
