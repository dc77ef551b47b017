# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Export a world to a seed directory, streaming rows with COPY ... TO STDOUT.

The directory is written under a temporary name, fsynced and renamed into place, so a
killed export leaves the previous directory (or none). When the content would be the
same as what is already there, nothing is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ansible_collections.phoenix.platform.plugins.module_utils import _catalog as catalog_mod
from ansible_collections.phoenix.platform.plugins.module_utils._blobs import BLOB_PREFIX, blob_columns, referenced_keys
from ansible_collections.phoenix.platform.plugins.module_utils._errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._files import sha256_file, write_json
from ansible_collections.phoenix.platform.plugins.module_utils._seed_format import FORMAT_VERSION, MANIFEST
from ansible_collections.phoenix.platform.plugins.module_utils._worlds import public_meta, read_meta, require_world_meta

# Rows leave as JSON text; CSV with quote and delimiter characters that JSON never contains
# raw passes each line through unchanged (text format would double every backslash).
COPY_JSON = "(FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"
EXPORTED_META = ("id", "name", "description", "environment", "category", "isActive", "isTemplate", "autoCleanup",
                 "cleanupAfterHours", "isolationLevel", "tags", "dependencies", "settings", "version")

README_TEMPLATE = """\
# Seed {{ world.id }}

{{ world.description or world.name }}

Exported from {{ source.environment }} on {{ created_at }} by phoenix.platform (seed format {{ version }}).
Import it with:

```yaml
- phoenix.platform.phoenix_seed:
    state: imported
    src: path/to/this/directory
```

| table | rows |
|---|---|
{% for t in tables -%}
| {{ t.name }} | {{ t.rows }} |
{% endfor %}
{% if blobs %}
{{ blobs | length }} blob file(s) under `blob/`.
{% endif %}"""


def table_file(label: str) -> str:
    return "tables/%s.jsonl" % re.sub(r"[^A-Za-z0-9_.-]", "_", label)


class _Sink:
    """Hashes and counts the lines of one table; writes them too unless only planning."""

    def __init__(self, path: Path | None) -> None:
        self.digest = hashlib.sha256()
        self.rows = 0
        self.handle = open(path, "wb") if path else None

    def write(self, data: bytes) -> None:
        self.digest.update(data)
        self.rows += data.count(b"\n")
        if self.handle:
            self.handle.write(data)

    def close(self) -> None:
        if self.handle:
            self.handle.flush()
            os.fsync(self.handle.fileno())
            self.handle.close()


def export_world(conn, world_id: str, dest: Path, include_blobs: bool, blob_dir: Path | None,
                 blob_column_names: list[str], check_mode: bool, where: str) -> dict[str, Any]:
    from psycopg import sql

    conn.rollback()  # a fresh transaction: one read-only snapshot for every table
    conn.execute(sql.SQL("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
    conn.execute(sql.SQL("SET LOCAL TIME ZONE 'UTC'"))  # timestamps in the files do not depend on the session
    require_world_meta(conn, where)
    meta = read_meta(conn, world_id)
    if meta is None:
        raise PhoenixError("world %s does not exist on %s" % (world_id, where))
    catalog = catalog_mod.load(conn)
    work = None if check_mode else dest.parent / (".%s.partial-%d" % (dest.name, os.getpid()))
    warnings: list[str] = []
    try:
        if work:
            shutil.rmtree(work, ignore_errors=True)
            (work / "tables").mkdir(parents=True)
        tables = [_export_table(conn, catalog, table, world_id, work) for table in catalog.members]
        tables = [t for t in tables if t["rows"]]
        blobs = []
        if include_blobs:
            blobs = _export_blobs(conn, catalog, world_id, blob_dir, blob_column_names, work, warnings)
        world = {k: v for k, v in public_meta(meta).items() if k in EXPORTED_META}
        manifest = {"version": FORMAT_VERSION, "createdAt": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "source": {"worldId": world_id, "environment": meta["environment"]}, "world": world,
                    "tables": tables, "blobs": blobs}
        changed = _content(manifest) != _existing_content(dest)
        if work and changed:
            _write_manifest_and_readme(work, manifest)
            _swap_into_place(work, dest)
    finally:
        conn.rollback()
        if work and work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return {"changed": changed, "path": str(dest), "tables": {t["name"]: t["rows"] for t in tables},
            "blobs": len(blobs), "warnings": warnings}


def _export_table(conn, catalog, table, world_id: str, work: Path | None) -> dict[str, Any]:
    from psycopg import sql

    order = sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in table.primary_key or table.columns)
    query = sql.SQL("COPY (SELECT row_to_json(t) FROM {table} t WHERE {pred} ORDER BY {order}) TO STDOUT "
                    + COPY_JSON).format(table=table.identifier(),
                                        pred=catalog.world_predicate(table, "t", sql.Literal([world_id])),
                                        order=order)
    name = table_file(table.label)
    sink = _Sink(work / name if work else None)
    try:
        with conn.cursor().copy(query) as copy:
            for data in copy:
                sink.write(bytes(data))
    finally:
        sink.close()
    if work and not sink.rows:
        (work / name).unlink()  # tables without rows of this world are left out
    return {"name": table.label, "file": name, "rows": sink.rows, "sha256": sink.digest.hexdigest()}


def _export_blobs(conn, catalog, world_id: str, blob_dir: Path | None, column_names: list[str],
                  work: Path | None, warnings: list[str]) -> list[dict[str, Any]]:
    keys = sorted(referenced_keys(conn, catalog, blob_columns(catalog, column_names), [world_id]))
    if keys and blob_dir is None:
        raise PhoenixError("world %s references %d blob(s): set blob_dir (or include_blobs=false)"
                           % (world_id, len(keys)))
    blobs = []
    for key in keys:
        source = blob_dir / key
        if not source.is_file():
            warnings.append("blob %s%s is referenced but missing from %s" % (BLOB_PREFIX, key, blob_dir))
            continue
        digest, size = sha256_file(source)
        if work:
            (work / "blob").mkdir(exist_ok=True)
            shutil.copyfile(source, work / "blob" / key)
        blobs.append({"key": key, "size": size, "sha256": digest})
    return blobs


def _content(manifest: dict[str, Any]) -> dict[str, Any]:
    """What makes two exports the same (everything but the time of writing)."""
    return {k: v for k, v in manifest.items() if k != "createdAt"}


def _existing_content(dest: Path) -> dict[str, Any] | None:
    try:
        return _content(json.loads((dest / MANIFEST).read_text()))
    except (OSError, ValueError):
        return None


def _write_manifest_and_readme(work: Path, manifest: dict[str, Any]) -> None:
    from jinja2 import Environment

    readme = Environment(autoescape=False).from_string(README_TEMPLATE).render(  # Markdown, not HTML
        world=manifest["world"], source=manifest["source"], created_at=manifest["createdAt"],
        version=manifest["version"], tables=manifest["tables"], blobs=manifest["blobs"])
    (work / "README.md").write_text(readme)
    write_json(work / MANIFEST, manifest)  # last: a directory without it is not a seed


def _swap_into_place(work: Path, dest: Path) -> None:
    old = dest.parent / (".%s.old-%d" % (dest.name, os.getpid()))
    if dest.exists():
        os.replace(dest, old)
    os.replace(work, dest)
    shutil.rmtree(old, ignore_errors=True)
