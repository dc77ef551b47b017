# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Seed directories of the original Phoenix seed manager (format 1.0.0), as table rows.

``world: {metadata, users[], artifacts[], chats[], blobs[]}``: users go to "User",
artifacts to "Artifact" (text content to "A_Text", images to "A_Image", people to
"A_Person"), chats to "Chat" with their messages in "Message_v2". Fields this mapping does
not know become warnings.
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
CONTENT_FIELDS = {"content", "url", "altText", "width", "height", "fullName", "position", "department", "email",
                  "photoUrl"}
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
        for i, artifact in enumerate(world.artifacts):
            self._artifact(i, artifact)
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

    def _artifact(self, i: int, artifact: dict[str, Any]) -> None:
        self._known("artifacts[%d]" % i, artifact, set(ARTIFACT_FIELDS) | CONTENT_FIELDS)
        row = {column: artifact[name] for name, column in ARTIFACT_FIELDS.items() if name in artifact}
        row.setdefault("id", stable_key(self.world_id, "artifact", i))
        row.setdefault("createdAt", self.default_time)
        row.setdefault("title", "Artifact %d" % (i + 1))
        row.setdefault("kind", "text")
        row.setdefault("userId", self.default_user)
        row["world_id"] = self.world_id
        self._add("Artifact", row)
        link = {"artifactId": row["id"], "createdAt": row["createdAt"]}
        if row["kind"] == "image":
            self._add("A_Image", dict(link, **{f: artifact[f] for f in ("url", "altText", "width", "height")
                                               if f in artifact}))
        elif row["kind"] == "person":
            self._add("A_Person", dict(link, fullName=artifact.get("fullName") or row["title"],
                                       **{f: artifact[f] for f in ("position", "department", "email", "photoUrl")
                                          if f in artifact}))
        else:
            self._add("A_Text", dict(link, content=artifact.get("content", "")))

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
