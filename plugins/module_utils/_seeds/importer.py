# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Import a seed directory into a world, in one transaction.

Structure and checksums are validated before anything is written. Each table's JSON Lines
are streamed with COPY into a temporary table, then inserted server-side parents first,
re-keyed when the world is imported under another id. A killed import leaves no row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from ansible_collections.phoenix.platform.plugins.module_utils._core.audit import record
from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._core.files import sha256_file
from ansible_collections.phoenix.platform.plugins.module_utils._core.locks import acquire_transaction_lock
from ansible_collections.phoenix.platform.plugins.module_utils._core.stage import require_prod_allowed
from ansible_collections.phoenix.platform.plugins.module_utils._core.world_meta import (
    DEFINITION_COLUMNS,
    META_COLUMNS,
    WORLD_ID,
    Registry,
    load_registry,
    read_meta,
    require_registry_identified,
    validate_world_id,
    write_meta,
)
from ansible_collections.phoenix.platform.plugins.module_utils._pg import catalog as catalog_mod
from ansible_collections.phoenix.platform.plugins.module_utils._pg import keymap
from ansible_collections.phoenix.platform.plugins.module_utils._pg.catalog import WORLD_COLUMN, Table
from ansible_collections.phoenix.platform.plugins.module_utils._pg.publications import UPDATES, require_identified
from ansible_collections.phoenix.platform.plugins.module_utils._pg.sql import (
    assignments,
    bulk_memory,
    defer_constraints,
    identifiers,
    key_equals,
    rekeyed,
    same_row,
)
from ansible_collections.phoenix.platform.plugins.module_utils._seeds.blobs import install_blob
from ansible_collections.phoenix.platform.plugins.module_utils._seeds.format import BLOB_KEY, CONFLICTS, iter_lines, verify_files
from ansible_collections.phoenix.platform.plugins.module_utils._seeds.manifest import load_manifest

try:
    import psycopg
    from psycopg import sql
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass


@dataclass
class ImportRequest:
    src: Path
    world: str | None
    conflict: str
    blob_dir: Path | None
    stage: str
    actor: str
    allow_prod: bool
    lock_timeout: int
    where: str
    maintained_columns: list[str] | None = None  # table.column the target maintains: never compared or updated
    column_transforms: dict[str, str] | None = None  # table.column -> per-world value under another world id


@dataclass
class SeedContent:
    """A seed directory reduced to what the import needs, whatever its format version."""
    source: str
    metadata: dict[str, Any]
    tables: dict[str, Callable[[], Iterable[bytes]]]  # label -> JSON Lines
    blobs: list[dict[str, Any]]  # key, path, sha256
    warnings: list[str] = field(default_factory=list)


def read_seed(src: Path) -> SeedContent:
    version, manifest = load_manifest(src)
    if version == "1":
        from ansible_collections.phoenix.platform.plugins.module_utils._seeds.legacy import LegacyConversion

        legacy = LegacyConversion(manifest, src)
        lines = legacy.lines()
        return SeedContent(legacy.world_id, legacy.metadata, {t: (lambda ls=ls: ls) for t, ls in lines.items()},
                           legacy.blobs, legacy.warnings)
    problems = verify_files(src, manifest)
    if problems:
        raise PhoenixError("seed %s failed verification, nothing was imported: %s" % (src, "; ".join(problems)))
    tables = {t.name: (lambda path=src / t.file: iter_lines(path)) for t in manifest.tables}
    blobs = [{"key": b.key, "path": src / "blob" / b.key, "sha256": b.sha256} for b in manifest.blobs]
    return SeedContent(manifest.source.worldId, manifest.world, tables, blobs)


def import_seed(conn, request: ImportRequest, check_mode: bool) -> dict[str, Any]:
    if request.conflict not in CONFLICTS:
        raise PhoenixError("conflict must be one of %s" % ", ".join(CONFLICTS))
    seed = read_seed(request.src)
    if request.world is None and not WORLD_ID.match(seed.source):
        raise PhoenixError("the seed's world id %r is not a valid world id here: import it under one with the world "
                           "option (e.g. world: %s); nothing was imported" % (seed.source, suggested_id(seed.source)))
    target = request.world or seed.source
    validate_world_id(target, "world")
    blobs = _checked_blobs(seed, request)
    require_prod_allowed(request.stage, request.allow_prod, "importing a seed")
    result: dict[str, Any] = {}
    try:
        with conn.transaction():
            acquire_transaction_lock(conn, "world:" + target, request.lock_timeout)
            registry = load_registry(conn, request.where)
            catalog = catalog_mod.load(conn)
            unknown = sorted(set(seed.tables) - set(catalog.by_label))
            if unknown:
                raise PhoenixError("seed %s has tables this database does not hold as world tables: %s"
                                   % (request.src, ", ".join(unknown)))
            current = read_meta(conn, target, lock=True)
            wanted = seed_meta_values(seed.metadata, registry)
            if current is None:
                meta_changes = wanted
            elif request.conflict == "skip":  # an existing world keeps its metadata, like its rows
                meta_changes = {}
            else:
                meta_changes = {c: v for c, v in wanted.items() if current[c] != v}
            if current is None:
                meta_changes.setdefault("name", target)
            if meta_changes and current is not None:
                require_registry_identified(conn, catalog, _import_purpose(request.conflict), UPDATES)
            if meta_changes:
                write_meta(conn, registry, target, request.stage, request.actor, current, meta_changes)
            tables = _import_tables(conn, catalog, seed, target, request.conflict, seed.warnings,
                                    catalog.maintained_columns(request.maintained_columns),
                                    catalog.column_transforms(request.column_transforms))
            blobs_written = [b["key"] for b in blobs if _blob_needed(b, request.blob_dir)]
            changed = bool(meta_changes) or bool(blobs_written) or any(
                t.get("inserted") or t.get("updated") or t.get("deleted") for t in tables.values())
            result = {
                "changed": changed, "path": str(request.src), "world": target,
                "world_existed": current is not None, "tables": tables,
                "conflicts": {name: t["conflicts"] for name, t in tables.items() if t["conflicts"]},
                "blobs": blobs_written, "warnings": seed.warnings,
            }
            if check_mode:
                raise psycopg.Rollback()
            for blob in blobs:  # before the rows commit, so no committed row points at a missing file
                if blob["key"] in blobs_written:
                    install_blob(blob["path"], request.blob_dir, blob["key"])
            if changed:
                record(conn, "seed.import", request.stage, request.actor,
                       {"world": target, "source": seed.source, "src": str(request.src), "conflict": request.conflict,
                        "tables": {n: {k: v for k, v in t.items() if k != "rows"} for n, t in tables.items()}})
    except psycopg.errors.IntegrityError as exc:
        raise PhoenixError("seed %s does not fit this database (%s); nothing was imported"
                           % (request.src, str(exc).strip().splitlines()[0])) from None
    return result


def seed_meta_values(metadata: dict[str, Any], registry: Registry) -> dict[str, Any]:
    """The "WorldMeta" values a seed sets: Phoenix's columns, and the world's definitions (users, artifacts,
    chats) where the registry keeps them. ``cleanupAfterHours`` 0 or null (the original's "never") leaves the
    column to its default TTL: a world here always expires, and one without autoCleanup is then only deactivated."""
    columns = list(META_COLUMNS.values()) + [c for c in DEFINITION_COLUMNS if c in registry.types]
    wanted = {col: metadata[col] for col in columns if col in metadata}
    if not wanted.get("cleanupAfterHours"):
        wanted.pop("cleanupAfterHours", None)
    return wanted


def suggested_id(source: str) -> str:
    """A valid world id close to ``source``: upper case, other characters as underscores, a letter first."""
    cleaned = re.sub(r"[^A-Z0-9_]", "_", source.upper())
    return (cleaned if cleaned[:1].isalpha() else "W_" + cleaned)[:64]


def _checked_blobs(seed: SeedContent, request: ImportRequest) -> list[dict[str, Any]]:
    src = request.src.resolve()
    for blob in seed.blobs:
        if not BLOB_KEY.match(blob["key"]):
            raise PhoenixError("blob key %r is not a plain file name" % blob["key"])
        path = Path(blob["path"]).resolve()
        if src not in path.parents:
            raise PhoenixError("blob %s points outside the seed directory" % blob["key"])
        if not path.is_file():
            seed.warnings.append("blob %s is missing from the seed directory" % blob["key"])
            continue
        digest = sha256_file(path)[0]
        if blob.get("sha256") and digest != blob["sha256"]:
            raise PhoenixError("blob %s failed its sha256 check, nothing was imported" % blob["key"])
        blob["sha256"] = digest  # checked (or, for 1.0.0 seeds without one, computed) once
    present = [b for b in seed.blobs if Path(b["path"]).is_file()]
    if present and request.blob_dir is None:
        raise PhoenixError("seed %s carries %d blob(s): set blob_dir" % (request.src, len(present)))
    return present


def _blob_needed(blob: dict[str, Any], blob_dir: Path) -> bool:
    target = blob_dir / blob["key"]
    return not (target.is_file() and sha256_file(target)[0] == blob["sha256"])


def _import_tables(conn, catalog, seed: SeedContent, target: str, conflict: str, warnings: list[str],
                   maintained: dict[str, set[str]], transforms: dict[str, dict[str, str]]) -> dict[str, dict[str, int]]:
    renamed = target != seed.source
    staged: list[tuple[Table, Any, Any]] = []
    stats: dict[str, dict[str, int]] = {}
    loaded = []
    bulk_memory(conn)
    for index, table in enumerate(t for t in catalog.members if t.label in seed.tables):
        staging, total = _stage(conn, index, table, seed.tables[table.label]())
        mapped = keymap.mapped_columns(catalog, table) if renamed else {}
        if table.sequence_key in mapped:  # every new key first: in a foreign-key cycle a parent can come later
            keymap.assign_keys(conn, table, _populated(table, staging), "r", sql.Placeholder("target"),
                               params={"target": target})
        loaded.append((table, staging, total, mapped))
    defer_constraints(conn)
    maps = keymap.KeyMaps(conn, [target])
    written = []  # (table, its rows as written, their columns, the rows staged): all known before the first write
    for table, staging, total, mapped in loaded:
        keys = catalog.uuid_key_columns(table) if renamed else set()
        columns = _columns(conn, table, staging, warnings)
        transformed = transforms.get(table.label, {}) if renamed else {}
        problem = keymap.rekeyable_problem(catalog, table, transformed) if renamed else None
        if problem:
            raise PhoenixError(problem + "; nothing was imported")
        lookups = maps.lookups(sql.Placeholder("target"))
        exprs = {c: _expression(table, c, keys, mapped, transformed, lookups) for c in columns}
        for column, (parent, ref) in (catalog.uuid_references(table) if renamed else {}).items():
            if column in exprs:  # a reference to the database's production data keeps its value
                exprs[column] = sql.SQL("CASE WHEN EXISTS (SELECT 1 FROM {parent} p WHERE p.{ref} = r.{c} AND "
                                        "({world}) IS NULL) THEN r.{c} ELSE {rekeyed} END").format(
                    parent=parent.identifier(), ref=sql.Identifier(ref), c=sql.Identifier(column),
                    world=catalog.world_expression(parent, "p"), rekeyed=exprs[column])
        values = sql.SQL("SELECT {exprs} FROM {populated} {joins}").format(
            exprs=sql.SQL(", ").join(sql.SQL("{} AS {}").format(exprs[c], sql.Identifier(c)) for c in columns),
            populated=_populated(table, staging), joins=lookups.sql())
        keymap.refuse_unique_clashes(conn, table, values, columns, {"target": target})
        written.append((table, values, columns, total))
    purpose = _import_purpose(conflict)
    if conflict == "replace":
        require_identified(conn, [table for table, *rest in written], purpose)
    require_identified(conn, [table for table, values, columns, total in written
                              if _updated_columns(table, columns, conflict, maintained.get(table.label, set()))],
                       purpose, UPDATES)
    for table, values, columns, total in written:
        _refuse_other_owners(conn, catalog, table, values, columns, target)  # parents are in: owners can be checked
        stats[table.label] = _insert(conn, table, values, columns, conflict, target, total,
                                     maintained.get(table.label, set()))
        keymap.catch_up_sequences(conn, table, columns)
        staged.append((table, values, columns))
    if conflict == "replace":  # rows of the world that the seed does not hold go, children first
        for table, values, columns in reversed(staged):
            stats[table.label]["deleted"] = _delete_absent(conn, catalog, table, values, columns, target)
    return stats


def copy_text_line(line: bytes) -> bytes:
    """One JSON Lines line as one COPY text-format field: backslashes, tabs and carriage returns are
    escaped, so no payload (``\\.``, a delimiter, a line break) can end or split the stream."""
    payload = line.rstrip(b"\n").replace(b"\\", b"\\\\").replace(b"\t", b"\\t").replace(b"\r", b"\\r")
    return payload + b"\n"


def _stage(conn, index: int, table: Table, lines: Iterable[bytes]):
    """Stream JSON Lines into a temporary table; returns its identifier and the row count."""
    staging = sql.Identifier("phoenix_import_%d" % index)
    conn.execute(sql.SQL("CREATE TEMP TABLE {} (doc json) ON COMMIT DROP").format(staging))
    rows = 0
    try:
        with conn.cursor().copy(sql.SQL("COPY {} (doc) FROM STDIN").format(staging)) as copy:
            for line in lines:
                if line.strip():
                    copy.write(copy_text_line(line))
                    rows += 1
    except psycopg.errors.DataError as exc:
        raise PhoenixError("seed rows of %s are not valid JSON objects (%s); nothing was imported"
                           % (table.label, str(exc).strip().splitlines()[0])) from None
    return staging, rows


def _populated(table: Table, staging):
    """FROM clause giving each staged row as a record of the table's type, aliased r."""
    return sql.SQL("{staging} i CROSS JOIN LATERAL json_populate_record(NULL::{table}, i.doc) r").format(
        staging=staging, table=table.identifier())


def _columns(conn, table: Table, staging, warnings: list[str]) -> list[str]:
    """The table's columns present in the seed (absent ones keep their defaults)."""
    present = {row[0] for row in conn.execute(
        sql.SQL("SELECT DISTINCT json_object_keys(doc) FROM {}").format(staging))}
    extra = sorted(present - set(table.types))
    if extra:
        warnings.append("%s: seed columns %s are not in the table and were ignored" % (table.label, ", ".join(extra)))
    columns = [c for c in table.columns if c in present or c == WORLD_COLUMN]
    missing_key = [c for c in table.primary_key if c not in columns]
    if missing_key:
        raise PhoenixError("%s: seed rows lack primary key column(s) %s" % (table.label, ", ".join(missing_key)))
    return columns


def _expression(table: Table, column: str, new_keys: set[str], mapped: dict[str, Table], transforms: dict[str, str],
                lookups: keymap.Lookups):
    """A seed row's column as it is written: under the target world, with new keys and per-world values when
    renamed."""
    value = sql.SQL("r.{}").format(sql.Identifier(column))
    if column in transforms:
        return keymap.transformed(transforms[column], value, sql.Placeholder("target"), table.types[column])
    if column == WORLD_COLUMN:
        return sql.Placeholder("target")
    if column in new_keys:
        return rekeyed(sql.Placeholder("target"), value)
    if column in mapped:
        return lookups.value(value, mapped[column], table.types[column])
    return value


def _insert(conn, table: Table, values, columns: list[str], conflict: str, target: str, total: int,
            maintained: set[str]) -> dict[str, int]:
    """One INSERT ... SELECT of the seed's rows as written (``values``); conflicts are the rows whose key (or,
    without a key, whose whole content) was already there."""
    params = {"target": target}
    insert = sql.SQL("INSERT INTO {table} AS x ({cols}){overriding} SELECT {cols} FROM ({values}) e ").format(
        table=table.identifier(), cols=identifiers(columns), overriding=keymap.overriding(table, columns),
        values=values)
    updatable = _updated_columns(table, columns, conflict, maintained)
    updated = 0
    if not table.primary_key:
        insert += sql.SQL("WHERE NOT EXISTS (SELECT 1 FROM {table} x WHERE {same})").format(
            table=table.identifier(), same=same_row(table, "x", "e", columns))
    elif not updatable:
        insert += sql.SQL("ON CONFLICT ")
        insert += sql.SQL("DO NOTHING")
    else:  # _refuse_other_owners ran first: every conflicting key is this world's own row
        insert += sql.SQL("ON CONFLICT ({pk}) DO UPDATE SET {sets} WHERE {differs}").format(
            pk=identifiers(table.primary_key),
            sets=assignments(updatable, "EXCLUDED"),
            differs=table.differs("x", "excluded", updatable))
        # Counted before writing (a partitioned table has no xmax to tell updated rows from inserted ones).
        updated = conn.execute(sql.SQL("SELECT count(*) FROM ({values}) e JOIN {table} x ON {match} WHERE {differs}")
                               .format(values=values, table=table.identifier(),
                                       match=key_equals(table.primary_key, "x", "e"),
                                       differs=table.differs("x", "e", updatable)), params).fetchone()[0]
    inserted = conn.execute(insert, params).rowcount - updated
    conflicts = total - inserted
    return {"rows": total, "conflicts": conflicts, "inserted": inserted, "updated": updated, "deleted": 0}


def _import_purpose(conflict: str) -> str:
    """What an import is called in a refusal, which depends on how it meets rows already there."""
    return "this import (conflict=%s)" % conflict


def _updated_columns(table: Table, columns: list[str], conflict: str, maintained: set[str]) -> list[str]:
    """The columns of ``table`` that an import in ``conflict`` mode updates where a row's key is already there: none
    where it leaves such rows as they are (skip, or no key, or no column but the key's and maintained ones)."""
    if conflict == "skip" or not table.primary_key:
        return []
    return [c for c in columns if c not in table.primary_key and c not in maintained]


def _refuse_other_owners(conn, catalog, table: Table, values, columns: list[str], target: str) -> None:
    """Identity is key and owner: a seed row whose key is held by a row of production data or of another
    world, or (for tables without world_id) whose owning row is not this world's, is refused in every
    conflict mode. ``values`` yields the rows as written."""
    exprs = {c: sql.SQL("e.{}").format(sql.Identifier(c)) for c in columns}
    owner = catalog.world_expression(table, "x")
    checks = [sql.SQL("EXISTS (SELECT 1 FROM {table} x WHERE {match} AND ({owner}) IS DISTINCT FROM %(target)s)").format(
        table=table.identifier(), match=key_equals(table.primary_key, "x", exprs), owner=owner)] \
        if table.primary_key else []  # a row without a key is its content: nobody else holds it
    if table.owner is not None and all(c in exprs for c in table.owner.columns):
        parent = catalog.parent(table)
        checks.append(sql.SQL("NOT EXISTS (SELECT 1 FROM {parent} p WHERE {join} AND ({world}) = %(target)s)").format(
            parent=parent.identifier(), world=catalog.world_expression(parent, "p"),
            join=sql.SQL(" AND ").join(sql.SQL("p.{} = {}").format(sql.Identifier(ref), exprs[col])
                                       for col, ref in zip(table.owner.columns, table.owner.target_columns))))
    if not checks:
        return
    keys = sql.SQL(", ").join(sql.SQL("({})::text").format(exprs[c]) for c in table.primary_key or exprs)
    found = conn.execute(sql.SQL("SELECT concat_ws('/', {keys}), count(*) OVER () FROM ({values}) e WHERE {checks} "
                                 "ORDER BY 1 LIMIT 1").format(keys=keys, values=values,
                                                              checks=sql.SQL(" OR ").join(checks)),
                         {"target": target}).fetchone()
    if found:
        raise PhoenixError("%d row(s) of %s, e.g. key %s, belong to other worlds or to production data in this "
                           "database, not to %s; nothing was imported. Import under another id (world=...) so the "
                           "keys are re-keyed" % (found[1], table.label, found[0], target),
                           foreign_rows={table.label: found[1]})


def _delete_absent(conn, catalog, table: Table, values, columns: list[str], target: str) -> int:
    query = sql.SQL("DELETE FROM {table} x WHERE {pred} AND NOT EXISTS (SELECT 1 FROM ({values}) e WHERE {match})").format(
        table=table.identifier(), pred=catalog.world_predicate(table, "x", sql.Placeholder("worlds")),
        values=values, match=same_row(table, "x", "e", columns))
    return conn.execute(query, {"worlds": [target], "target": target}).rowcount
