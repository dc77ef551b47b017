# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""World ids and the JSON form of the values application tables hold."""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

import pytest

from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._core.world_meta import (
    REGISTRY_COLUMNS,
    Registry,
    jsonable,
    registry_problems,
    validate_world_id,
)


def test_every_value_an_application_row_holds_becomes_json():
    key = uuid.UUID("0b7e1b4c-8a4e-4a55-9d4e-3f1c2a9b7c10")
    row = {"createdBy": key, "price": Decimal("9.90"), "day": date(2026, 11, 23), "at": time(9, 30),
           "createdAt": datetime(2026, 11, 23, 9, 30, tzinfo=timezone.utc), "photo": b"\x00\xff",
           "ttl": timedelta(hours=2), "tags": [key], "settings": {"owner": key}}
    converted = jsonable(row)
    assert json.loads(json.dumps(converted)) == {
        "createdBy": str(key), "price": "9.90", "day": "2026-11-23", "at": "09:30:00",
        "createdAt": "2026-11-23T09:30:00+00:00", "photo": "\\x00ff", "ttl": 7200.0, "tags": [str(key)],
        "settings": {"owner": str(key)}}


@pytest.mark.parametrize("world_id", ["", "world1", "1ST", "A-B", "A" * 65])
def test_invalid_world_ids_are_refused_with_an_example(world_id):
    with pytest.raises(PhoenixError, match="is not a valid world id: .*e.g. UC_TESTING"):
        validate_world_id(world_id)


APPLICATION_COLUMNS = dict({c: ("text", False) for c in REGISTRY_COLUMNS},
                           id=("character varying(64)", False), tags=("jsonb", False), dependencies=("jsonb", False),
                           createdBy=("uuid", False), users=("jsonb", True), settings=("jsonb", True))


def test_an_application_registry_with_every_column_can_be_adopted():
    assert registry_problems(APPLICATION_COLUMNS) == []


def test_a_registry_lacking_columns_names_every_one():
    columns = {c: kind for c, kind in APPLICATION_COLUMNS.items() if c not in ("isTemplate", "autoCleanup")}
    assert registry_problems(columns) == ["it lacks the column(s) isTemplate, autoCleanup"]


def test_a_registry_with_columns_phoenix_cannot_write_says_which():
    columns = dict(APPLICATION_COLUMNS, tags=("text", False), createdBy=("integer", False), owner=("bigint", True))
    assert registry_problems(columns) == [
        "tags is text, not a list (jsonb or text[])", "createdBy is integer, not text or character varying or uuid",
        "its NOT NULL column(s) owner have no default and no empty value Phoenix could write"]


def test_values_are_written_as_the_registry_types_demand():
    registry = Registry({c: kind for c, (kind, _required) in APPLICATION_COLUMNS.items()}, frozenset({"users"}))
    assert registry.value("createdBy", "root@vm", "root@vm") is None  # a uuid column holds users, not the actor
    assert registry.value("tags", ["a"], "root@vm").obj == ["a"]
    assert registry.empty("users").obj == [] and registry.empty("settings").obj == {}
    own = Registry({"createdBy": "text", "tags": "text[]", "description": "text"}, frozenset())
    assert own.value("createdBy", "root@vm", "root@vm") == "root@vm"
    assert own.value("tags", ["a"], "root@vm") == ["a"]
    assert own.empty("description") == "" and own.empty("tags") == []
