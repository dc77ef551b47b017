# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The seed directory format, validated with pydantic.

Version 2 (written here)::

    seed.json              manifest: version, createdAt, source, world metadata, tables, blobs
    tables/<table>.jsonl   one JSON object per row, parents' tables listed first
    blob/<key>             blob files referenced by the world's rows
    README.md

Version 1.0.0 (written by the original Phoenix seed manager) keeps everything in
seed.json: ``world: {metadata, users[], artifacts[], chats[], blobs[]}``.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Iterator, Optional

from ansible_collections.phoenix.platform.plugins.module_utils._errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._files import sha256_file

FORMAT_VERSION = "2.0.0"
LEGACY_VERSION = "1.0.0"
MANIFEST = "seed.json"
BLOB_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
TABLE_FILE = re.compile(r"^tables/[A-Za-z0-9_.-]+\.jsonl$")

try:
    from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
except ImportError:  # reported by the module with missing_required_lib
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
        source: Source
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
    import json

    path = src / MANIFEST
    if not path.is_file():
        raise PhoenixError("%s is not a seed directory: %s is missing" % (src, MANIFEST))
    try:
        document = json.loads(path.read_text())
    except ValueError as exc:
        raise PhoenixError("%s is not valid JSON: %s" % (path, exc)) from None
    if not isinstance(document, dict):
        raise PhoenixError("%s must hold a JSON object" % path)
    version = str(document.get("version", ""))
    model = LegacyManifest if version.startswith("1.") else Manifest
    try:
        return ("1" if model is LegacyManifest else "2"), model.model_validate(document)
    except ValidationError as exc:
        raise PhoenixError(validation_message(path, exc)) from None


def verify_files(src: Path, manifest) -> list[str]:
    """Checksums and row counts of every table file and blob; returns the problems found."""
    problems = []
    for table in manifest.tables:
        path = src / table.file
        if not path.is_file():
            problems.append("%s: missing" % table.file)
            continue
        digest = hashlib.sha256()
        rows = 0
        with open(path, "rb") as handle:
            for line in handle:
                digest.update(line)
                rows += 1
        if digest.hexdigest() != table.sha256:
            problems.append("%s: sha256 mismatch" % table.file)
        if rows != table.rows:
            problems.append("%s: %d rows, manifest says %d" % (table.file, rows, table.rows))
    for blob in manifest.blobs:
        path = src / "blob" / blob.key
        if not path.is_file():
            problems.append("blob/%s: missing" % blob.key)
        elif sha256_file(path)[0] != blob.sha256:
            problems.append("blob/%s: sha256 mismatch" % blob.key)
    return problems


def iter_lines(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        yield from handle
