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
from ansible_collections.phoenix.platform.plugins.module_utils._core.world_meta import jsonable, validate_world_id


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
