# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Health status arithmetic and the backup check."""

from __future__ import annotations

import pytest

from ansible_collections.phoenix.platform.plugins.module_utils._health.checks import check_backups, overall_status, should_fail


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
