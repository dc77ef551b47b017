# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Generated world data: deterministic, consistent, the counts asked for."""

from __future__ import annotations

import pytest

from ansible_collections.phoenix.platform.plugins.module_utils._worlds.generate import generate


def test_the_same_world_gives_the_same_rows_and_another_world_other_keys():
    first = generate("UC_DEMO", users=3, artifacts=7, chats=2, messages_per_chat=3)
    assert generate("UC_DEMO", 3, 7, 2, 3) == first
    other = generate("UC_OTHER", 3, 7, 2, 3)
    assert not {r["id"] for r in first["User"]} & {r["id"] for r in other["User"]}


def test_counts_and_ownership():
    rows = generate("UC_DEMO", users=3, artifacts=7, chats=2, messages_per_chat=3)
    assert (len(rows["User"]), len(rows["Artifact"]), len(rows["Chat"]), len(rows["Message_v2"])) == (3, 7, 2, 6)
    user_ids = {u["id"] for u in rows["User"]}
    assert [u["type"] for u in rows["User"]] == ["admin", "user", "user"]
    assert all(r["userId"] in user_ids for r in rows["Artifact"] + rows["Chat"])
    assert all(r["world_id"] == "UC_DEMO" for table in ("User", "Artifact", "Chat", "Message_v2") for r in rows[table])
    assert len({u["email"] for u in rows["User"]}) == 3


def test_every_artifact_has_its_content_and_sets_hold_earlier_artifacts():
    rows = generate("UC_DEMO", users=1, artifacts=6, chats=0, messages_per_chat=0)
    by_kind = {a["kind"]: a for a in rows["Artifact"]}
    assert set(by_kind) == {"text", "image", "person", "code", "sheet", "set"}
    content = {r["artifactId"] for table in ("A_Text", "A_Image", "A_Person") for r in rows[table]}
    assert content == {a["id"] for a in rows["Artifact"] if a["kind"] != "set"}
    items = [r for r in rows["A_SetItems"] if r["setId"] == by_kind["set"]["id"]]
    earlier = {a["id"] for a in rows["Artifact"][:5]}
    assert len(items) == 2 and {r["itemId"] for r in items} <= earlier


def test_a_set_needs_two_artifacts_before_it_and_data_needs_a_user():
    kinds = [a["kind"] for a in generate("UC_DEMO", 1, 6, 0, 0)["Artifact"]]
    assert kinds[-1] == "set"
    assert "A_SetItems" not in generate("UC_DEMO", 1, 1, 0, 0)
    assert "Chat" not in generate("UC_DEMO", 1, 0, 0, 0)
    with pytest.raises(ValueError, match="at least one user"):
        generate("UC_DEMO", users=0, artifacts=1, chats=0, messages_per_chat=0)
