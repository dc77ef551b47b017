# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The migration registry."""

from __future__ import annotations

from ansible_collections.phoenix.platform.plugins.module_utils._schema import migrations


def test_migrations_are_ordered_and_unique():
    versions = [m.version for m in migrations.MIGRATIONS]
    assert versions == sorted(set(versions))
    assert migrations.LATEST_VERSION == versions[-1]


def test_pending_respects_app_schema_and_target():
    assert [m.version for m in migrations.pending(set(), "reference")] == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert [m.version for m in migrations.pending(set(), "none")] == [1, 2, 7, 8, 9]
    assert [m.version for m in migrations.pending({1}, "reference", 2)] == [2]
    assert migrations.pending({1, 2, 3, 4, 5, 6, 7, 8, 9}, "reference") == []
    assert [m.version for m in migrations.pending({1, 2}, "none")] == [7, 8, 9]
