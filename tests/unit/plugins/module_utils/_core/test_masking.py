"""Masking rules: the default profile when data leaves PROD, user rules, and the guard on unmasked data."""

from __future__ import annotations

import pytest

from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._core.masking import DEFAULT_PROFILE, parse, rules_for


def test_leaving_prod_applies_the_default_profile():
    rules = rules_for(True, None, False)
    assert {"%s.%s" % key for key in rules} == set(DEFAULT_PROFILE)


def test_staying_out_of_prod_masks_only_what_is_asked():
    assert rules_for(False, None, False) == {}
    assert rules_for(False, {"User.name": "null"}, False) == {("User", "name"): ("null", None)}


def test_keeping_personal_data_leaving_prod_needs_allow_unmasked():
    column = next(iter(DEFAULT_PROFILE))
    with pytest.raises(PhoenixError, match="allow_unmasked"):
        rules_for(True, {column: "keep"}, False)
    assert rules_for(True, {column: "keep"}, True) == {tuple(column.split(".", 1)): ("keep", None)}


@pytest.mark.parametrize("mask, message", [
    ({"email": "null"}, "Table.column"),
    ({"User.email": "shout"}, "unknown transformer"),
    ({"User.email": {"value": 1}}, "constant"),
])
def test_bad_rules_are_named(mask, message):
    with pytest.raises(PhoenixError, match=message):
        parse(mask)


def test_constant_rule_keeps_its_value():
    assert parse({"User.name": {"constant": "Someone"}}) == {("User", "name"): ("constant", "Someone")}
