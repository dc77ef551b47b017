# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plausible, deterministic seed data for the reference application schema.

The same world id always yields the same rows (keys, timestamps and text), so seeding
again inserts nothing.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from ansible_collections.phoenix.platform.plugins.module_utils._core.world_meta import EPOCH, stable_key

ARTIFACT_KINDS = ("text", "image", "person", "code", "sheet", "set")
FIRST_NAMES = ("Ada", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Frances", "Edsger", "Radia")
LAST_NAMES = ("Lovelace", "Hopper", "Torvalds", "Hamilton", "Thompson", "Liskov", "Ritchie", "Allen", "Dijkstra")
DEPARTMENTS = ("Engineering", "People", "Sales", "Finance", "Design")
TOPICS = ("onboarding checklist", "quarterly goals", "team handbook", "release notes", "welcome letter",
          "security policy", "benefits overview", "style guide", "project brief", "meeting notes")

REFERENCE_TABLES = ("User", "Artifact", "A_Text", "A_Image", "A_Person", "A_SetItems", "Chat", "Message_v2")


def generate(world: str, users: int, artifacts: int, chats: int, messages_per_chat: int) -> dict[str, list[dict[str, Any]]]:
    """Rows per reference table for ``world``."""
    rng = random.Random(world)
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in REFERENCE_TABLES}
    user_ids = []
    for i in range(users):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        user_ids.append(stable_key(world, "user", i))
        rows["User"].append({
            "id": user_ids[-1], "email": "%s.%s%d@%s.example" % (first.lower(), last.lower(), i, world.lower()),
            "name": "%s %s" % (first, last), "password": None, "type": "admin" if i == 0 else "user",
            "world_id": world, "createdAt": EPOCH + timedelta(minutes=i),
        })
    if not user_ids and (artifacts or chats):
        raise ValueError("seed needs at least one user to own artifacts and chats")
    made: list[tuple[str, datetime]] = []
    for i in range(artifacts):
        kind = ARTIFACT_KINDS[i % len(ARTIFACT_KINDS)]
        if kind == "set" and len(made) < 2:
            kind = "text"
        artifact_id, created = stable_key(world, "artifact", i), EPOCH + timedelta(hours=1, minutes=i)
        topic = rng.choice(TOPICS)
        rows["Artifact"].append({
            "id": artifact_id, "createdAt": created, "title": "%s %d" % (topic.capitalize(), i + 1),
            "summary": "Generated %s artifact about the %s" % (kind, topic), "kind": kind,
            "userId": rng.choice(user_ids), "authorId": None, "deletedAt": None, "world_id": world,
        })
        _artifact_content(rows, rng, kind, artifact_id, created, topic, made)
        made.append((artifact_id, created))
    for c in range(chats):
        chat_id = stable_key(world, "chat", c)
        rows["Chat"].append({"id": chat_id, "createdAt": EPOCH + timedelta(days=1, hours=c),
                             "title": "Chat about the %s" % rng.choice(TOPICS), "userId": rng.choice(user_ids),
                             "visibility": "private", "world_id": world})
        for m in range(messages_per_chat):
            role = "user" if m % 2 == 0 else "assistant"
            rows["Message_v2"].append({
                "id": stable_key(world, "message:%d" % c, m), "chatId": chat_id, "role": role,
                "parts": [{"type": "text", "text": "%s message %d in chat %d" % (role.capitalize(), m + 1, c + 1)}],
                "attachments": [], "createdAt": EPOCH + timedelta(days=1, hours=c, minutes=m), "world_id": world,
            })
    return {table: table_rows for table, table_rows in rows.items() if table_rows}


def _artifact_content(rows, rng: random.Random, kind: str, artifact_id: str, created: datetime, topic: str,
                      made: list[tuple[str, datetime]]) -> None:
    link = {"artifactId": artifact_id, "createdAt": created}
    if kind in ("text", "code", "sheet"):
        content = "# %s\n\nThis %s covers the %s." % (topic.capitalize(), kind, topic)
        rows["A_Text"].append(dict(link, content=content, wordCount=len(content.split())))
    elif kind == "image":
        rows["A_Image"].append(dict(link, url="https://images.example/%s.png" % artifact_id,
                                    altText="Illustration of the %s" % topic, width=640, height=480))
    elif kind == "person":
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        rows["A_Person"].append(dict(link, fullName="%s %s" % (first, last), position="Team member",
                                     department=rng.choice(DEPARTMENTS), email=None, photoUrl=None))
    else:
        for order, (item_id, item_created) in enumerate(made[-2:]):
            rows["A_SetItems"].append({"setId": artifact_id, "setCreatedAt": created, "itemId": item_id,
                                       "itemCreatedAt": item_created, "order": order})
