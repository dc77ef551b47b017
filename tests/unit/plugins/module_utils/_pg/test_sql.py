"""The pure parts of the SQL toolkit."""

from __future__ import annotations

import pytest

from ansible_collections.phoenix.platform.plugins.module_utils._pg.sql import assignments, glob_to_like, key_text


@pytest.mark.parametrize("pattern, like", [
    ("UC_*", "UC\\_%"),
    ("UC_?", "UC\\__"),
    ("100%", "100\\%"),
    ("a\\b", "a\\\\b"),
    ("PLAIN", "PLAIN"),
])
def test_glob_to_like(pattern, like):
    assert glob_to_like(pattern) == like


def test_key_text_and_assignments_quote_every_name():
    text = key_text(["id", "createdAt"], "s").as_string(None)
    assert text == "concat_ws('/', \"s\".\"id\"::text, \"s\".\"createdAt\"::text)"
    assert assignments(["a", "We\"ird"], "EXCLUDED").as_string(None) == \
        '"a" = EXCLUDED."a", "We""ird" = EXCLUDED."We""ird"'
