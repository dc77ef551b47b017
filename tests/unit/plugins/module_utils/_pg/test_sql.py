"""The pure parts of the SQL toolkit."""

from __future__ import annotations

import pytest

from ansible_collections.phoenix.platform.plugins.module_utils._pg.sql import glob_to_like


@pytest.mark.parametrize("pattern, like", [
    ("UC_*", "UC\\_%"),
    ("UC_?", "UC\\__"),
    ("100%", "100\\%"),
    ("a\\b", "a\\\\b"),
    ("PLAIN", "PLAIN"),
])
def test_glob_to_like(pattern, like):
    assert glob_to_like(pattern) == like
