# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The seed directory format (its manifest is validated in manifest.py).

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
from typing import Iterator

from ansible_collections.phoenix.platform.plugins.module_utils._core.files import sha256_file

FORMAT_VERSION = "2.0.0"
LEGACY_VERSION = "1.0.0"
MANIFEST = "seed.json"
BLOB_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
TABLE_FILE = re.compile(r"^tables/[A-Za-z0-9_.-]+\.jsonl$")
CONFLICTS = ("skip", "replace", "merge")  # what an import does with a world that is already there


def verify_files(src: Path, manifest) -> list[str]:
    """Checksums and row counts of every table file and blob; returns the problems found."""
    problems = []
    inside = src.resolve()
    for table in manifest.tables:
        path = src / table.file
        if path.is_symlink() and inside not in path.resolve().parents:
            problems.append("%s: a link leaving the seed directory" % table.file)
            continue
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
