# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Blob files: rows reference them as ``blob:<key>`` in the columns the data model names."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._core.files import fsync_path
from ansible_collections.phoenix.platform.plugins.module_utils._pg.catalog import Catalog, Table

try:
    from psycopg import sql
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass

BLOB_PREFIX = "blob:"
DEFAULT_BLOB_COLUMNS = ("A_Image.url",)


def blob_columns(catalog: Catalog, names: list[str]) -> list[tuple[Table, str]]:
    """``Table.column`` names resolved against the catalog; the ones absent here are skipped."""
    resolved = []
    for name in names:
        label, _dot, column = name.rpartition(".")
        if not label or not column:
            raise PhoenixError("blob_columns entry %r must look like Table.column (e.g. A_Image.url)" % name)
        table = catalog.all_tables.get(("public", label)) or catalog.by_label.get(label)
        if table is not None and column in table.types:
            resolved.append((table, column))
    return resolved


def referenced_keys(conn, catalog: Catalog, columns: list[tuple[Table, str]], worlds: list[str] | None) -> set[str]:
    """Blob keys referenced by the rows of ``worlds`` (all rows when None)."""
    keys: set[str] = set()
    for table, column in columns:
        condition = sql.SQL("true")
        if worlds is not None:
            condition = catalog.world_predicate(table, "t", sql.Placeholder("worlds"))
        query = sql.SQL("SELECT DISTINCT substr(t.{col}, %(start)s) FROM {table} t "
                        "WHERE t.{col} LIKE %(prefix)s AND {condition}").format(
            col=sql.Identifier(column), table=table.identifier(), condition=condition)
        params = {"start": len(BLOB_PREFIX) + 1, "prefix": BLOB_PREFIX + "%", "worlds": worlds}
        keys.update(row[0] for row in conn.execute(query, params))
    return keys


def install_blob(source: Path, blob_dir: Path, key: str) -> None:
    """Copy a blob into blob_dir atomically (temp file, fsync, rename)."""
    blob_dir.mkdir(parents=True, exist_ok=True)
    partial = blob_dir / (".%s.partial-%d" % (key, os.getpid()))
    shutil.copyfile(source, partial)
    fsync_path(partial)
    os.replace(partial, blob_dir / key)


def orphans(conn, catalog: Catalog, blob_dir: Path, column_names: list[str]) -> list[str]:
    """Files in blob_dir that no row references."""
    columns = blob_columns(catalog, column_names)
    if not columns:
        raise PhoenixError("none of the blob_columns (%s) exist in this database, so every blob would look "
                           "orphaned; name the columns that hold blob:<key> references" % ", ".join(column_names))
    if not blob_dir.is_dir():
        return []
    entries = [p for p in blob_dir.iterdir() if not p.name.startswith(".")]
    if blob_dir.resolve() == Path("/") or any(p.is_dir() for p in entries):
        raise PhoenixError("blob_dir %s holds directories, so it is not a blob directory (one file per key, nothing "
                           "else): a mistyped path would lose every file in it; nothing was removed" % blob_dir)
    used = referenced_keys(conn, catalog, columns, None)
    return sorted(p.name for p in entries if p.is_file() and p.name not in used)
