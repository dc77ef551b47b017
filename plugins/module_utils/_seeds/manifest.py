# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Seed manifests (``seed.json``) of both format versions, validated with pydantic.

Only imports need this; exports and blob clean-ups do not pay for importing pydantic.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._seeds.format import BLOB_KEY, MANIFEST, TABLE_FILE

try:
    from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
except ImportError:  # the module reports it with missing_required_lib before getting here
    HAS_PYDANTIC = False
else:
    HAS_PYDANTIC = True

    class Source(BaseModel):
        worldId: str = Field(pattern=r"^[A-Z][A-Z0-9_]{0,63}$")
        environment: str

    class TableEntry(BaseModel):
        model_config = ConfigDict(extra="forbid")
        name: str = Field(min_length=1)
        file: str
        rows: int = Field(ge=0)
        sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

        @field_validator("file")
        @classmethod
        def _inside_tables(cls, value: str) -> str:
            if not TABLE_FILE.match(value):
                raise ValueError("must be tables/<name>.jsonl")
            return value

    class BlobEntry(BaseModel):
        model_config = ConfigDict(extra="forbid")
        key: str = Field(pattern=BLOB_KEY.pattern)
        size: int = Field(ge=0)
        sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    class Manifest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        version: str = Field(pattern=r"^2\.\d+\.\d+$")
        createdAt: str
        source: Source
        world: dict[str, Any]
        tables: list[TableEntry]
        blobs: list[BlobEntry] = []

    class LegacySource(BaseModel):  # the original seed manager took any id (e.g. "world1"); world: names the target
        worldId: str = Field(min_length=1, max_length=64)
        environment: str

    class LegacyWorld(BaseModel):
        model_config = ConfigDict(extra="allow")
        metadata: dict[str, Any] = {}
        users: list[dict[str, Any]] = []
        artifacts: list[dict[str, Any]] = []
        chats: list[dict[str, Any]] = []
        blobs: list[dict[str, Any]] = []

    class LegacyManifest(BaseModel):
        model_config = ConfigDict(extra="allow")
        version: str = Field(pattern=r"^1\.\d+\.\d+$")
        createdAt: Optional[str] = None
        source: LegacySource
        world: LegacyWorld


def validation_message(path: Path, error: Exception) -> str:
    """One line naming every invalid field path."""
    problems = []
    for item in error.errors():  # pydantic ValidationError
        where = ".".join(str(p) for p in item["loc"]) or "(top level)"
        problems.append("%s: %s" % (where, item["msg"]))
    return "%s is not a valid seed manifest: %s" % (path, "; ".join(problems))


def load_manifest(src: Path) -> tuple[str, Any]:
    """``("2", Manifest)`` or ``("1", LegacyManifest)`` for the seed directory ``src``."""
    path = src / MANIFEST
    if not path.is_file():
        raise PhoenixError("%s is not a seed directory: %s is missing" % (src, MANIFEST))
    try:
        document = json.loads(path.read_text())
    except ValueError as exc:
        raise PhoenixError("%s is not valid JSON: %s" % (path, exc)) from None
    except RecursionError:
        raise PhoenixError("%s is nested too deeply to be a seed manifest" % path) from None
    if not isinstance(document, dict):
        raise PhoenixError("%s must hold a JSON object" % path)
    version = str(document.get("version", ""))
    model = LegacyManifest if version.startswith("1.") else Manifest
    try:
        return ("1" if model is LegacyManifest else "2"), model.model_validate(document)
    except ValidationError as exc:
        raise PhoenixError(validation_message(path, exc)) from None
