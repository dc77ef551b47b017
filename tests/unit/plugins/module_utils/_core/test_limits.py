"""Option bounds and NUL bytes: the checks every module runs before it connects."""

from __future__ import annotations

import pytest

from ansible_collections.phoenix.platform.plugins.module_utils._core.limits import MAX_HOURS, nul_byte_option, range_problem


@pytest.mark.parametrize("params, expected", [
    ({"retention_days": 30, "lock_timeout": 0, "compress": None}, None),
    ({"cleanup_after_hours": MAX_HOURS}, None),
    ({"cleanup_after_hours": MAX_HOURS + 1}, "cleanup_after_hours must be from 0 to 876000, got 876001"),
    ({"lock_timeout": -1}, "lock_timeout must be from 0 to 86400, got -1"),
    ({"jobs": 0, "unrelated": -5}, "jobs must be from 1 to 128, got 0"),
])
def test_range_problem(params, expected):
    assert range_problem(params) == expected


@pytest.mark.parametrize("params, expected", [
    ({"a": "plain", "b": ["x", {"c": "y"}], "n": 3, "none": None}, None),
    ({"password": "se\x00cret"}, "password"),
    ({"details": {"list": ["ok", "b\x00d"]}}, "details.list.1"),
])
def test_nul_byte_option(params, expected):
    assert nul_byte_option(params) == expected
