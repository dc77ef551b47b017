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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ansible_collections.phoenix.platform.plugins.module_utils._core import masking
from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._core.files import (
    exchange_paths,
    secure_tree,
    sha256_file,
    write_json,
)
from ansible_collections.phoenix.platform.plugins.module_utils._core.world_meta import DEFINITION_COLUMNS, load_registry, public_meta, read_meta
from ansible_collections.phoenix.platform.plugins.module_utils._pg import catalog as catalog_mod
from ansible_collections.phoenix.platform.plugins.module_utils._pg import large_objects
from ansible_collections.phoenix.platform.plugins.module_utils._pg.sql import identifiers, read_only_snapshot
from ansible_collections.phoenix.platform.plugins.module_utils._seeds.blobs import BLOB_PREFIX, blob_columns, referenced_keys
from ansible_collections.phoenix.platform.plugins.module_utils._seeds.format import BLOB_KEY, FORMAT_VERSION, MANIFEST

try:
    from psycopg import sql
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass

# Rows leave as JSON text; CSV with quote and delimiter characters that JSON never contains
# raw passes each line through unchanged (text format would double every backslash).
COPY_JSON = "(FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"
EXPORTED_META = ("id", "name", "description", "environment", "category", "isActive", "isTemplate", "autoCleanup",
                 "cleanupAfterHours", "isolationLevel", "tags", "dependencies", "settings", "version") + DEFINITION_COLUMNS

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


# What an export writes into its directory; anything else there was not written by an export.
SEED_ENTRIES = (MANIFEST, "README.md", "tables", "blob")


@dataclass
class ExportRequest:
    world: str
    dest: Path
    stage: str
    include_blobs: bool = True
    blob_dir: Path | None = None
    blob_columns: tuple[str, ...] = ("A_Image.url",)
    mask: dict[str, Any] | None = None
    allow_unmasked: bool = False
    where: str = ""


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


def export_world(conn, request: ExportRequest, check_mode: bool) -> dict[str, Any]:
    dest = request.dest
    check_destination(dest)
    rules = masking.rules_for(request.stage == "PROD", request.mask, request.allow_unmasked)
    conn.rollback()  # a fresh transaction: one read-only snapshot for every table
    read_only_snapshot(conn)
    conn.execute(sql.SQL("SET LOCAL TIME ZONE 'UTC'"))  # timestamps in the files do not depend on the session
    load_registry(conn, request.where)
    meta = read_meta(conn, request.world)
    if meta is None:
        raise PhoenixError("world %s does not exist on %s" % (request.world, request.where))
    catalog = catalog_mod.load(conn)
    masking.check_columns(rules, request.mask, catalog.all_tables.values())
    _refuse_large_object_references(conn, catalog, request.world, rules)
    work = None if check_mode else dest.parent / (".%s.partial-%d" % (dest.name, os.getpid()))
    warnings: list[str] = []
    try:
        if work:
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(mode=0o700)  # private while it is written: rows hold emails and password hashes
            (work / "tables").mkdir()
        tables = [_export_table(conn, catalog, table, request.world, rules, work) for table in catalog.members]
        tables = [t for t in tables if t["rows"]]
        blobs = []
        if request.include_blobs:
            blobs = _export_blobs(conn, catalog, request, work, warnings)
        world = {k: v for k, v in public_meta(meta).items() if k in EXPORTED_META}
        manifest = {"version": FORMAT_VERSION, "createdAt": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "source": {"worldId": request.world, "environment": meta["environment"]}, "world": world,
                    "tables": tables, "blobs": blobs}
        if rules:
            manifest["masked"] = sorted("%s.%s" % key for key in rules)
        changed = _content(manifest) != _existing_content(dest)
        if work and changed:
            _write_manifest_and_readme(work, manifest)
            _swap_into_place(work, dest)
    finally:
        conn.rollback()
        if work and work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return {"changed": changed, "path": str(dest), "tables": {t["name"]: t["rows"] for t in tables},
            "blobs": len(blobs), "masked": manifest.get("masked", []), "warnings": warnings}


def check_destination(dest: Path) -> None:
    """An export replaces its whole destination: only an empty directory or an earlier export may be there."""
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise PhoenixError("dest %s exists and is not a directory; an export writes a seed directory: choose a new "
                           "path" % dest)
    if not dest.is_dir() or not any(dest.iterdir()):
        return
    if not (dest / MANIFEST).is_file():
        raise PhoenixError("dest %s is a directory but not a seed directory (no %s); an export replaces its "
                           "destination whole, so choose a new or empty directory" % (dest, MANIFEST))
    foreign = [p.name for p in dest.iterdir() if p.name not in SEED_ENTRIES]
    for sub, wanted in (("tables", ".jsonl"), ("blob", "")):
        if (dest / sub).is_dir():
            foreign += ["%s/%s" % (sub, p.name) for p in (dest / sub).iterdir()
                        if p.is_symlink() or not p.is_file() or not p.name.endswith(wanted)]
    if foreign:
        raise PhoenixError("dest %s holds files an export would not write (%s); an export replaces its destination "
                           "whole, so move them away or choose another directory" % (dest, ", ".join(sorted(foreign))))


def _rows_source(table, rules):
    """The table, or (when some of its columns are masked) a select giving the masked values."""
    masked = {column: rule for (label, column), rule in rules.items() if label == table.label}
    if not masked:
        return table.identifier()
    columns = sql.SQL(", ").join(
        sql.SQL("({})::{} AS {}").format(masking.expression(masked[c], sql.SQL("m.{}").format(sql.Identifier(c))),
                                         sql.SQL(table.types[c]), sql.Identifier(c))
        if c in masked else sql.SQL("m.{}").format(sql.Identifier(c)) for c in table.types)
    return sql.SQL("(SELECT {} FROM {} m)").format(columns, table.identifier())


def _refuse_large_object_references(conn, catalog, world_id: str, rules) -> None:
    """A seed holds rows, not large objects: an exported OID would point, where the seed is imported, at another
    large object of the same OID, or at none."""
    found = []
    for table in catalog.members:
        for column in table.large_objects:
            objects = conn.execute(sql.SQL(
                "SELECT count(DISTINCT t.{c}) FROM {table} t WHERE {pred} "
                "AND t.{c} IN (SELECT oid FROM pg_catalog.pg_largeobject_metadata)").format(
                c=sql.Identifier(column), table=_rows_source(table, rules),
                pred=catalog.world_predicate(table, "t", sql.Literal([world_id])))).fetchone()[0]
            if objects:
                found.append("%s.%s (%d large object(s))" % (table.label, column, objects))
    large_objects.refuse_references(found, "rows of world %s" % world_id, "A seed holds", "where it is imported")


def _export_table(conn, catalog, table, world_id: str, rules, work: Path | None) -> dict[str, Any]:
    order = identifiers(table.primary_key or table.columns, "t")
    query = sql.SQL("COPY (SELECT row_to_json(t) FROM {table} t WHERE {pred} ORDER BY {order}) TO STDOUT "
                    + COPY_JSON).format(table=_rows_source(table, rules),
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


def _export_blobs(conn, catalog, request: ExportRequest, work: Path | None,
                  warnings: list[str]) -> list[dict[str, Any]]:
    keys = sorted(referenced_keys(conn, catalog, blob_columns(catalog, list(request.blob_columns)), [request.world]))
    blob_dir = request.blob_dir
    if keys and blob_dir is None:
        raise PhoenixError("world %s references %d blob(s): set blob_dir (or include_blobs=false)"
                           % (request.world, len(keys)))
    outside = [key for key in keys if not BLOB_KEY.match(key)]
    if outside:  # blob:../../x or an absolute path would copy a file from outside blob_dir into the seed
        raise PhoenixError("world %s references blobs that are not plain file names inside blob_dir (%s); nothing "
                           "was exported. Fix those rows' blob: references" % (request.world, ", ".join(outside[:5])))
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
    secure_tree(work)


def _swap_into_place(work: Path, dest: Path) -> None:
    """The new export takes the place of the old one in one step (the old one ends up in ``work``)."""
    if dest.exists() and exchange_paths(work, dest):
        shutil.rmtree(work, ignore_errors=True)
        return
    old = dest.parent / (".%s.old-%d" % (dest.name, os.getpid()))
    if dest.exists():  # no atomic exchange on this system: two renames
        os.replace(dest, old)
    os.replace(work, dest)
    shutil.rmtree(old, ignore_errors=True)
