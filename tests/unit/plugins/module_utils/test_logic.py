"""Pure logic of the common layer: stage fence, PROD guard, locks, migrations, health status."""

from __future__ import annotations

import pytest

from ansible_collections.phoenix.platform.plugins.module_utils._core.audit import default_actor
from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import ProdGuardError, StageFenceError
from ansible_collections.phoenix.platform.plugins.module_utils._core.locks import lock_key
from ansible_collections.phoenix.platform.plugins.module_utils._core.stage import (
    check_stage_fence,
    require_prod_allowed,
)
from ansible_collections.phoenix.platform.plugins.module_utils._health.checks import (
    check_backups,
    overall_status,
    should_fail,
)
from ansible_collections.phoenix.platform.plugins.module_utils._schema import migrations


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


def test_lock_keys_are_stable_signed_64_bit_and_distinct():
    assert lock_key("schema") == lock_key("schema")
    assert lock_key("schema") != lock_key("world:A")
    assert -(2 ** 63) <= lock_key("schema") < 2 ** 63


def test_migrations_are_ordered_and_unique():
    versions = [m.version for m in migrations.MIGRATIONS]
    assert versions == sorted(set(versions))
    assert migrations.LATEST_VERSION == versions[-1]


def test_pending_respects_app_schema_and_target():
    assert [m.version for m in migrations.pending(set(), "reference")] == [1, 2, 3, 4, 5]
    assert [m.version for m in migrations.pending(set(), "none")] == [1, 2]
    assert [m.version for m in migrations.pending({1}, "reference", 2)] == [2]
    assert migrations.pending({1, 2, 3, 4, 5}, "reference") == []
    assert [m.version for m in migrations.pending({1, 2}, "none")] == []


def test_overall_status_is_the_worst_known_one():
    assert overall_status({}) == "healthy"
    assert overall_status({"a": {"status": "healthy"}, "b": {"status": "unknown"}}) == "healthy"
    assert overall_status({"a": {"status": "degraded"}, "b": {"status": "healthy"}}) == "degraded"
    assert overall_status({"a": {"status": "degraded"}, "b": {"status": "unhealthy"}}) == "unhealthy"


@pytest.mark.parametrize("status, fail_on, expected", [
    ("healthy", "degraded", False),
    ("degraded", "degraded", True),
    ("degraded", "unhealthy", False),
    ("unhealthy", "unhealthy", True),
    ("unhealthy", "never", False),
])
def test_should_fail(status, fail_on, expected):
    assert should_fail(status, fail_on) is expected


def test_backup_check_without_dir_or_backups(tmp_path):
    assert check_backups(None, [], "BETA", 24, 0)["status"] == "unknown"
    assert check_backups(str(tmp_path), [], "BETA", 24, 0)["status"] == "unknown"


def test_actor_prefers_the_awx_job():
    assert default_actor({"AWX_JOB_ID": "42"}) == "awx-job-42"
    assert default_actor({"JOB_ID": "7"}) == "awx-job-7"
    assert "@" in default_actor({})
