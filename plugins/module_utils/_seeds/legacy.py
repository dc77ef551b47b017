# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Seed directories of the original Phoenix seed manager (format 1.0.0), as table rows.

``world: {metadata, users[], artifacts[], chats[], blobs[]}``: users go to "User", artifacts to "Artifact"
with their ``content`` in the content table of their kind (as the original importer wrote them), chats to
"Chat" with their messages in "Message_v2". Fields this mapping does not know become warnings.

An artifact's content is an object whose keys are the content table's columns (a person's ``fullName``,
``position``, ``email`` …), or a plain value for the kind's main column (a text's ``content``, an image's
``url``). A site's or set definition's whole object is its definition. A set lists other artifacts of the
seed by title or id, in order.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ansible_collections.phoenix.platform.plugins.module_utils._core.world_meta import EPOCH, stable_key

USER_FIELDS = {"id": "id", "email": "email", "name": "name", "password": "password", "role": "type",
               "type": "type", "createdAt": "createdAt"}
ARTIFACT_FIELDS = {"id": "id", "title": "title", "summary": "summary", "kind": "kind", "userId": "userId",
                   "authorId": "authorId", "createdAt": "createdAt"}
# Content given next to the artifact's own fields, as early 1.0.0 seeds did for images and people
CONTENT_FIELDS = {"content", "url", "altText", "width", "height", "fullName", "position", "department", "email",
                  "photoUrl"}
# kind -> (content table, the column a plain content value goes to)
CONTENT_TABLES = {
    "text": ("A_Text", "content"), "code": ("A_Text", "content"), "sheet": ("A_Text", "content"),
    "image": ("A_Image", "url"), "person": ("A_Person", "fullName"), "address": ("A_Address", "streetAddress"),
    "faq-item": ("A_FaqItem", "question"), "link": ("A_Link", "url"),
    "site": ("A_Site", "siteDefinition"), "set-definition": ("A_SetDefinition", "definition"),
}
WHOLE_OBJECT_KINDS = ("site", "set-definition")  # their content object is one jsonb value
TEXT_KINDS = ("text", "code", "sheet")
# A content column the original importer filled from the artifact when the content has none
FROM_TITLE = {"person": "fullName", "link": "title"}
CHAT_FIELDS = {"id": "id", "title": "title", "userId": "userId", "visibility": "visibility", "createdAt": "createdAt"}
MESSAGE_FIELDS = {"id", "role", "content", "parts", "attachments", "createdAt"}


class LegacyConversion:
    def __init__(self, manifest, src: Path) -> None:
        self.world_id = manifest.source.worldId
        self.default_time = manifest.createdAt or EPOCH.isoformat()
        self.src = src
        self.warnings: list[str] = []
        self.rows: dict[str, list[dict[str, Any]]] = {}
        world = manifest.world
        for name in sorted(set(world.model_extra or {})):
            self.warnings.append("world.%s is not part of the 1.0.0 format and was ignored" % name)
        users = [self._user(i, u) for i, u in enumerate(world.users)]
        self.default_user = users[0]["id"] if users else None
        artifacts = [self._artifact(i, artifact) for i, artifact in enumerate(world.artifacts)]
        for i, (artifact, row) in enumerate(zip(world.artifacts, artifacts)):
            if row["kind"] == "set":
                self._set_items(i, row, artifact.get("content"), artifacts)
        for i, chat in enumerate(world.chats):
            self._chat(i, chat)
        self.blobs = [self._blob(i, b) for i, b in enumerate(world.blobs)]
        self.blobs = [b for b in self.blobs if b]
        self.metadata = dict(world.metadata)

    def lines(self) -> dict[str, list[bytes]]:
        """JSON Lines per table, the same shape an export writes."""
        return {table: [json.dumps(r, default=str).encode() + b"\n" for r in rows] for table, rows in self.rows.items()}

    def _add(self, table: str, row: dict[str, Any]) -> dict[str, Any]:
        self.rows.setdefault(table, []).append(row)
        return row

    def _known(self, where: str, item: dict[str, Any], known) -> None:
        for name in sorted(set(item) - set(known)):
            self.warnings.append("%s.%s is not a known field and was ignored" % (where, name))

    def _user(self, i: int, user: dict[str, Any]) -> dict[str, Any]:
        self._known("users[%d]" % i, user, USER_FIELDS)
        row = {column: user[name] for name, column in USER_FIELDS.items() if name in user}
        row.setdefault("id", stable_key(self.world_id, "user", i))
        row.setdefault("email", "user%d@%s.example" % (i, self.world_id.lower()))
        row.setdefault("createdAt", self.default_time)
        row["type"] = "admin" if row.get("type") == "admin" else "user"
        row["world_id"] = self.world_id
        return self._add("User", row)

    def _artifact(self, i: int, artifact: dict[str, Any]) -> dict[str, Any]:
        self._known("artifacts[%d]" % i, artifact, set(ARTIFACT_FIELDS) | CONTENT_FIELDS)
        row = {column: artifact[name] for name, column in ARTIFACT_FIELDS.items() if name in artifact}
        row.setdefault("id", stable_key(self.world_id, "artifact", i))
        row.setdefault("createdAt", self.default_time)
        row.setdefault("title", "Artifact %d" % (i + 1))
        row.setdefault("kind", "text")
        row.setdefault("userId", self.default_user)
        row["world_id"] = self.world_id
        self._add("Artifact", row)
        if row["kind"] == "set":
            return row  # its items can refer to artifacts listed after it: added once all are known
        if row["kind"] not in CONTENT_TABLES:
            self.warnings.append("artifacts[%d] is of kind %r, which has no content table; its content was ignored"
                                 % (i, row["kind"]))
            return row
        table, _main = CONTENT_TABLES[row["kind"]]
        self._add(table, dict(self._content(row, artifact), artifactId=row["id"], createdAt=row["createdAt"]))
        return row

    @staticmethod
    def _content(row: dict[str, Any], artifact: dict[str, Any]) -> dict[str, Any]:
        """The content table's columns for an artifact of the seed."""
        kind, content = row["kind"], artifact.get("content")
        _table, main = CONTENT_TABLES[kind]
        if kind in TEXT_KINDS:
            return {main: "" if content is None else content if isinstance(content, str) else json.dumps(content)}
        if kind in WHOLE_OBJECT_KINDS:
            return {main: content if content is not None else {}}
        values = {f: artifact[f] for f in CONTENT_FIELDS - {"content"} if f in artifact}
        if isinstance(content, dict):
            values.update(content)
        elif content is not None:
            values[main] = content
        if kind in FROM_TITLE:
            values.setdefault(FROM_TITLE[kind], row["title"])
        return values

    def _set_items(self, i: int, row: dict[str, Any], content: Any, artifacts: list[dict[str, Any]]) -> None:
        """A_SetItems rows for the artifacts a set lists (by title or id), in order."""
        if isinstance(content, dict):
            content = content.get("items")
        by_reference = {}
        for artifact in artifacts:
            by_reference.setdefault(str(artifact["id"]), artifact)
            by_reference.setdefault(artifact["title"], artifact)
        for order, reference in enumerate(content or []):
            item = by_reference.get(str(reference))
            if item is None:
                self.warnings.append("artifacts[%d] lists %r, which is no artifact of this seed; it was left out"
                                     % (i, reference))
                continue
            self._add("A_SetItems", {"setId": row["id"], "setCreatedAt": row["createdAt"], "itemId": item["id"],
                                     "itemCreatedAt": item["createdAt"], "order": order})

    def _chat(self, i: int, chat: dict[str, Any]) -> None:
        self._known("chats[%d]" % i, chat, set(CHAT_FIELDS) | {"messages"})
        row = {column: chat[name] for name, column in CHAT_FIELDS.items() if name in chat}
        row.setdefault("id", stable_key(self.world_id, "chat", i))
        row.setdefault("createdAt", self.default_time)
        row.setdefault("title", "Chat %d" % (i + 1))
        row.setdefault("userId", self.default_user)
        row["world_id"] = self.world_id
        self._add("Chat", row)
        for m, message in enumerate(chat.get("messages") or []):
            self._known("chats[%d].messages[%d]" % (i, m), message, MESSAGE_FIELDS)
            parts = message.get("parts") or [{"type": "text", "text": message.get("content", "")}]
            self._add("Message_v2", {
                "id": message.get("id") or stable_key(self.world_id, "message:%d" % i, m), "chatId": row["id"],
                "role": message.get("role", "user"), "parts": parts, "attachments": message.get("attachments", []),
                "createdAt": message.get("createdAt", row["createdAt"]), "world_id": self.world_id,
            })

    def _blob(self, i: int, blob: dict[str, Any]) -> dict[str, Any] | None:
        self._known("blobs[%d]" % i, blob, {"key", "id", "file", "path", "sha256", "size", "contentType"})
        blob_key = blob.get("key") or blob.get("id")
        path = self.src / (blob.get("file") or blob.get("path") or "blob/%s" % blob_key)
        if not blob_key:
            self.warnings.append("blobs[%d] has no key and was ignored" % i)
            return None
        return {"key": blob_key, "path": path, "sha256": blob.get("sha256")}
