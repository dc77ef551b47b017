# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Seed files of the original seed manager (1.0.0) as table rows."""

from __future__ import annotations

import json

import pytest

from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._core.world_meta import stable_key
from ansible_collections.phoenix.platform.plugins.module_utils._seeds.legacy import LegacyConversion
from ansible_collections.phoenix.platform.plugins.module_utils._seeds.manifest import load_manifest

ORIGINAL = {  # the shape the original seed manager writes: everything in seed.json
    "version": "1.0.0",
    "createdAt": "2025-06-01T10:00:00.000Z",
    "source": {"worldId": "ONBOARDING", "environment": "LOCAL"},
    "world": {
        "metadata": {"name": "Onboarding", "category": "demo"},
        "users": [{"email": "lead@example.com", "name": "Lead", "role": "admin", "favouriteColour": "teal"}],
        "artifacts": [
            {"title": "Welcome", "kind": "text", "content": "Hello"},
            {"title": "Logo", "kind": "image", "url": "blob:logo.png", "altText": "logo"},
            {"title": "Grace Hopper", "kind": "person", "position": "Admiral"},
        ],
        "chats": [{"title": "First day", "messages": [{"role": "user", "content": "Where is the coffee?"}]}],
        "blobs": [{"key": "logo.png", "sha256": "0" * 64}, {"file": "blob/orphan"}],
    },
}


def convert(tmp_path, document: dict | None = None) -> LegacyConversion:
    (tmp_path / "seed.json").write_text(json.dumps(document or ORIGINAL))
    version, manifest = load_manifest(tmp_path)
    assert version == "1"
    return LegacyConversion(manifest, tmp_path)


def test_every_entity_lands_in_its_table_with_stable_keys(tmp_path):
    converted = convert(tmp_path)
    user = converted.rows["User"][0]
    assert user["id"] == stable_key("ONBOARDING", "user", 0) and user["type"] == "admin"
    assert user["world_id"] == "ONBOARDING" and user["createdAt"] == ORIGINAL["createdAt"]
    assert [a["kind"] for a in converted.rows["Artifact"]] == ["text", "image", "person"]
    assert all(a["userId"] == user["id"] for a in converted.rows["Artifact"])  # the first user owns them
    assert converted.rows["A_Text"] == [{"artifactId": stable_key("ONBOARDING", "artifact", 0),
                                         "createdAt": ORIGINAL["createdAt"], "content": "Hello"}]
    assert converted.rows["A_Image"][0]["url"] == "blob:logo.png"
    assert converted.rows["A_Person"][0]["fullName"] == "Grace Hopper"
    message = converted.rows["Message_v2"][0]
    assert message["parts"] == [{"type": "text", "text": "Where is the coffee?"}]
    assert message["chatId"] == converted.rows["Chat"][0]["id"]
    assert convert(tmp_path).rows == converted.rows  # the same file, the same keys: a re-import finds its rows


def test_unknown_fields_and_keyless_blobs_become_warnings(tmp_path):
    converted = convert(tmp_path)
    assert converted.warnings == ["users[0].favouriteColour is not a known field and was ignored",
                                  "blobs[1] has no key and was ignored"]
    assert [b["key"] for b in converted.blobs] == ["logo.png"]
    assert converted.blobs[0]["path"] == tmp_path / "blob" / "logo.png"


def test_lines_are_the_json_lines_an_export_writes(tmp_path):
    lines = convert(tmp_path).lines()
    assert set(lines) == {"User", "Artifact", "A_Text", "A_Image", "A_Person", "Chat", "Message_v2"}
    assert json.loads(lines["Chat"][0])["title"] == "First day"
    assert all(line.endswith(b"\n") for rows in lines.values() for line in rows)


def test_the_original_world_id_spelling_is_read_and_an_overlong_one_names_the_field(tmp_path):
    lower = convert(tmp_path, dict(ORIGINAL, source={"worldId": "world1", "environment": "LOCAL"}))
    assert lower.world_id == "world1"  # the import asks for world: to name a valid target
    document = dict(ORIGINAL, source={"worldId": "w" * 65, "environment": "LOCAL"})
    with pytest.raises(PhoenixError, match="source.worldId: String should have at most 64 characters"):
        convert(tmp_path, document)
