# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Transfers of worlds between two environment databases: a plan first, then one transaction.

Source rows are selected (re-keyed when a world is renamed, masked when leaving PROD) in one
REPEATABLE READ snapshot and streamed with binary COPY into temporary staging tables on the
target. The plan compares staging and target rows by key and content (each row crosses the
wire once); the execution inserts, updates changed rows only, and deletes, parents first
(children first for deletes). Check mode computes the plan and rolls back.
"""

from __future__ import annotations

import json
import time
from typing import Any

from ansible_collections.phoenix.platform.plugins.module_utils._core import masking
from ansible_collections.phoenix.platform.plugins.module_utils._core.audit import record
from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._core.locks import acquire_transaction_lock
from ansible_collections.phoenix.platform.plugins.module_utils._core.world_meta import validate_world_id
from ansible_collections.phoenix.platform.plugins.module_utils._pg import catalog as catalog_mod
from ansible_collections.phoenix.platform.plugins.module_utils._pg import keymap, large_objects
from ansible_collections.phoenix.platform.plugins.module_utils._pg.catalog import WORLD_COLUMN, Table
from ansible_collections.phoenix.platform.plugins.module_utils._pg.publications import UPDATES, require_identified
from ansible_collections.phoenix.platform.plugins.module_utils._pg.sql import (
    assignments,
    bulk_memory,
    defer_constraints,
    identifiers,
    key_equals,
    key_text,
    read_only_snapshot,
    rekeyed,
    row_text,
    same_row,
)
from ansible_collections.phoenix.platform.plugins.module_utils._transfer.plan import (
    CONFLICTS,
    TransferRequest,
    left_out,
    mask_rules,
    rekeyed_targets,
    schema_differences,
    selected_tables,
    world_map,
)

try:
    import psycopg
    from psycopg import sql
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass

DIFF_SAMPLE = 5
DIFF_SIDES = {"insert": ("after",), "update": ("before", "after"), "delete": ("before",)}  # where a change shows


class Transfer:
    """A transfer from ``source`` to ``target`` (connections whose lock waits end after the request's
    ``lock_timeout``, as ``connection.connect`` opens them: a table a migration holds in the source, say)."""

    def __init__(self, source, target, request: TransferRequest) -> None:
        self.source, self.target, self.request = source, target, request
        self.target_catalog: catalog_mod.Catalog | None = None  # loaded once the target is locked
        self.targets: list[str] = []  # the target world ids
        self.rekeyed: list[str] = []  # the target worlds whose rows get keys of their own
        self.maintained: dict[str, set[str]] = {}  # label -> columns the target maintains
        self.transforms: dict[str, dict[str, str]] = {}  # label -> column -> per-world value template
        self.source_members: list[Table] = []
        self.source_worlds: list[str] = []  # the source world ids
        self.rewritten: dict[str, list[str]] = {}  # label -> columns the target changed again after an update

    def run(self, check_mode: bool) -> dict[str, Any]:
        request = self.request
        if request.conflict not in CONFLICTS:
            raise PhoenixError("conflict must be one of %s" % ", ".join(CONFLICTS))
        rules = mask_rules(request)
        started = time.monotonic()
        read_only_snapshot(self.source)
        source_catalog = catalog_mod.load(self.source)
        self.source_members = source_catalog.members
        self.transforms = source_catalog.column_transforms(request.column_transforms)
        worlds = request.worlds if request.worlds is not None else [r[0] for r in self.source.execute(sql.SQL(
            'SELECT id FROM "WorldMeta" WHERE NOT "isTemplate" ORDER BY id'))]
        for world in worlds:
            validate_world_id(world, "worlds entry")
        _require_source_worlds(self.source, worlds)
        mapping = world_map(request, worlds)
        self.source_worlds = list(mapping)
        tables = selected_tables(source_catalog, request)
        self.rekeyed = rekeyed_targets(request, mapping)
        if self.rekeyed:
            for table in tables:
                problem = None if source_catalog.is_registry(table) else keymap.rekeyable_problem(
                    source_catalog, table, self.transforms.get(table.label, {}))
                if problem:
                    raise PhoenixError(problem + "; nothing was written")
        masking.check_columns(rules, request.mask, source_catalog.all_tables.values())
        result: dict[str, Any] = {}
        try:
            with self.target.transaction():
                acquire_transaction_lock(self.target, "transfer:target", request.lock_timeout)
                bulk_memory(self.target)
                self.target_catalog = catalog_mod.load(self.target)
                self.maintained = self.target_catalog.maintained_columns(request.maintained_columns)
                self.targets = list(mapping.values())
                problems = schema_differences(source_catalog, self.target_catalog, tables)
                if problems:
                    raise PhoenixError("source and target schemas differ, nothing was written: %s" % "; ".join(problems))
                staged = [self._stage(i, source_catalog, table, worlds, mapping, rules) for i, table in enumerate(tables)]
                self._map_integer_keys(staged)
                self._refuse_large_object_references(staged)
                self._refuse_foreign_owners(staged)
                self._refuse_unique_clashes(staged)
                plan = {t.label: self._plan(t, stage) for t, stage in staged}
                if request.conflict == "fail":
                    clashing = sorted(label for label, p in plan.items() if p["update"])
                    if clashing:
                        raise PhoenixError("rows differ in the target for %s and conflict=fail; nothing was written"
                                           % ", ".join(clashing))
                if request.conflict == "skip":
                    for p in plan.values():
                        p["unchanged"], p["update"] = p["unchanged"] + p["update"], 0
                require_identified(self.target, [t for t, stage in staged if plan[t.label]["delete"]],
                                   "this transfer (delete_missing=true)")
                require_identified(self.target, [t for t, stage in staged if plan[t.label]["update"]],
                                   "this transfer", UPDATES)
                if not check_mode:
                    defer_constraints(self.target)
                    # Deletes first (children first): rows leaving a mirrored world free their unique values
                    # (emails ...) for the rows arriving.
                    for table, stage in reversed(staged):
                        if plan[table.label]["delete"]:
                            self._delete(table, stage)
                    for table, stage in staged:
                        self._apply(table, stage, plan[table.label])
                changed = any(p["insert"] or p["update"] or p["delete"] for p in plan.values())
                moved = sum(p["insert"] + p["update"] + p["delete"] for p in plan.values())
                duration = round(time.monotonic() - started, 3)
                result = {"changed": changed, "plan": plan, "worlds": mapping, "masked": sorted("%s.%s" % k for k in rules),
                          "left_out": left_out(source_catalog, tables), "rewritten_by_target": self.rewritten,
                          "duration": duration, "rows_per_second": round(moved / duration, 1) if duration else None}
                if request.diff:
                    result["diff"] = self._diff(staged, plan)
                if check_mode:
                    raise psycopg.Rollback()
                if changed:
                    record(self.target, "transfer", request.target_stage, request.actor,
                           {"source_stage": request.source_stage, "worlds": mapping, "plan": plan,
                            "masked": result["masked"]})
        except psycopg.errors.IntegrityError as exc:
            raise PhoenixError(
                "the target refused the transfer, nothing was written: %s. Rows of the target world hold the same "
                "unique values under other keys; mirror the world with delete_missing=true or copy it under another id"
                % str(exc).strip().splitlines()[0]) from None
        finally:
            self.source.rollback()
        return result

    # -- staging ----------------------------------------------------------------------
    @staticmethod
    def _source_world(catalog, table: Table):
        """(joins, SQL) giving each source row of ``table`` aliased t its world id."""
        if catalog.is_registry(table):
            return sql.SQL(""), sql.SQL("t.id")
        return catalog.world_joins(table, "t")

    def _source_predicate(self, world, worlds: list[str]):
        condition = sql.SQL("{} = ANY({})").format(world, sql.Literal(worlds))
        if self.request.production_data:
            condition = sql.SQL("({} OR {} IS NULL)").format(condition, world)
        return condition

    @staticmethod
    def _arriving_world(world, mapping: dict[str, str]):
        """SQL for the world id a source row arrives in (``world`` renamed through the mapping)."""
        return sql.SQL("coalesce({map}::jsonb ->> ({w})::text, ({w})::text)").format(
            map=sql.Literal(json.dumps(mapping)), w=world)

    def _select_list(self, catalog, table: Table, rules, world, mapped):
        """Each column as it should arrive: renamed world, re-keyed UUIDs, masked PII, cast to its type."""
        is_meta = catalog.is_registry(table)
        # Keys change only for renamed worlds (or key_conflict=rekey): without one, rows arrive as they are.
        keys = catalog.uuid_key_columns(table) if self.rekeyed and not is_meta else set()
        references = catalog.uuid_references(table) if self.rekeyed and not is_meta else {}
        transforms = self.transforms.get(table.label, {})
        items = []
        for column in table.columns:
            ident = sql.SQL("t.{}").format(sql.Identifier(column))
            if column in transforms:  # renamed worlds' rows get a value of their own
                value = sql.SQL("CASE WHEN {m} IS DISTINCT FROM ({w})::text THEN {t} ELSE {c} END").format(
                    m=mapped, w=world, t=keymap.transformed(transforms[column], ident, mapped, table.types[column]),
                    c=ident)
            elif (is_meta and column == "id") or column == WORLD_COLUMN:
                value = sql.SQL("CASE WHEN {c} IS NULL THEN NULL ELSE {m} END").format(c=ident, m=mapped)
            elif is_meta and column == "environment":
                value = sql.Literal(self.request.target_stage)
            elif column in keys:
                # Rows of a renamed world get keys of their own; key_conflict=rekey renames every world's keys.
                renamed = sql.SQL("{w} IS NOT NULL") if self.request.key_conflict == "rekey" \
                    else sql.SQL("{m} IS DISTINCT FROM ({w})::text")
                renamed = renamed.format(m=mapped, w=world)
                if column in references:  # a reference to a row outside the worlds (production data) keeps its value
                    parent, ref = references[column]
                    renamed = sql.SQL("{r} AND {c} IN (SELECT p.{ref} FROM {parent} p WHERE {inside})").format(
                        r=renamed, parent=parent.identifier(), ref=sql.Identifier(ref), c=ident,
                        inside=catalog.world_predicate(parent, "p", sql.Literal(self.source_worlds)))
                value = sql.SQL("CASE WHEN {r} THEN {k} ELSE {c} END").format(r=renamed, k=rekeyed(mapped, ident), c=ident)
            elif (table.label, column) in rules:
                value = masking.expression(rules[(table.label, column)], ident)
            else:
                value = ident
            # Type names come from format_type() in pg_catalog.
            items.append(sql.SQL("({})::{}").format(value, sql.SQL(table.types[column])))
        return sql.SQL(", ").join(items)

    def _stage(self, index: int, catalog, table: Table, worlds, mapping, rules):
        """Stream the table's source rows as they arrive into a temporary table on the target. Rows whose
        integer keys will be mapped carry their arriving world in a phoenix_world column: the key map is
        per world."""
        stage = sql.Identifier("phoenix_transfer_%d" % index)
        cols = identifiers(table.columns)
        joined, world = self._source_world(catalog, table)
        mapped = self._arriving_world(world, mapping)
        select = self._select_list(catalog, table, rules, world, mapped)
        if self._keys_mapped(table):
            cols = sql.SQL("{}, phoenix_world").format(cols)
            select = sql.SQL("{}, ({})::text").format(select, mapped)
        self.target.execute(sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {}, NULL::text AS phoenix_world "
                                    "FROM {} WITH NO DATA").format(stage, identifiers(table.columns), table.identifier()))
        # COPY takes no bound parameters, so values are composed in as literals.
        query = sql.SQL("COPY (SELECT {select} FROM {table} t {joined} WHERE {pred}) TO STDOUT (FORMAT binary)").format(
            select=select, table=table.identifier(), joined=joined, pred=self._source_predicate(world, worlds))
        with self.source.cursor().copy(query) as out, \
                self.target.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(stage, cols)) as into:
            for data in out:
                into.write(data)
        self._index(table, stage, owners=not self._keys_mapped(table))  # else once it has its new keys
        return table, stage

    def _index(self, table: Table, stage, owners: bool = True) -> None:
        """Rows of tables without world_id find their world through their owner's staged rows, by key."""
        if owners:
            for columns in {m.owner.target_columns for m in self.source_members
                            if m.owner and m.owner.target == table.key}:
                self.target.execute(sql.SQL("CREATE INDEX ON {} ({})").format(stage, identifiers(columns)))
        self.target.execute(sql.SQL("ANALYZE {}").format(stage))  # temporary tables get no autovacuum statistics

    def _keys_mapped(self, table: Table) -> bool:
        """Whether the table's staged rows get integer keys through the target's key map."""
        catalog = self.target_catalog
        return bool(self.rekeyed) and not catalog.is_registry(table) and bool(
            keymap.mapped_columns(catalog, catalog.all_tables[table.key]))

    def _map_integer_keys(self, staged) -> None:
        """Staged rows of renamed worlds get integer keys of their own from the target's sequences, through the
        target's key map (the mechanism clones and imports use); references to rows outside the world keep theirs.
        Each staging table is rewritten once, through hash joins of the map."""
        catalog = self.target_catalog
        work = [(catalog.all_tables[table.key], stage) for table, stage in staged if self._keys_mapped(table)]
        world, params = sql.SQL("s.phoenix_world"), {"renamed": self.rekeyed}
        in_renamed = sql.SQL("s.phoenix_world = ANY(%(renamed)s)")
        for table, stage in work:  # every new key first: in a foreign-key cycle a parent can come later
            if table.sequence_key:
                keymap.assign_keys(self.target, table, sql.SQL("{} s").format(stage), "s", world, in_renamed, params)
        maps = keymap.KeyMaps(self.target, self.rekeyed)
        for table, stage in work:
            lookups = maps.lookups(world)
            mapped = keymap.mapped_columns(catalog, table)
            items = []
            for column in table.columns:
                value = sql.SQL("s.{}").format(sql.Identifier(column))
                if column in mapped:
                    value = sql.SQL("CASE WHEN {renamed} THEN {new} ELSE {value} END").format(
                        renamed=in_renamed, value=value, new=lookups.value(
                            value, mapped[column], table.types[column], keep_unmapped=column != table.sequence_key))
                items.append(sql.SQL("{} AS {}").format(value, sql.Identifier(column)))
            keyed = sql.Identifier("phoenix_transfer_keyed")
            self.target.execute(sql.SQL("CREATE TEMP TABLE {keyed} ON COMMIT DROP AS SELECT {items}, s.phoenix_world "
                                        "FROM {stage} s {joins}").format(
                keyed=keyed, items=sql.SQL(", ").join(items), stage=stage, joins=lookups.sql()), params)
            self.target.execute(sql.SQL("DROP TABLE {}").format(stage))
            self.target.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(keyed, stage))
            self._index(table, stage)

    def _refuse_large_object_references(self, staged) -> None:
        """A transfer moves rows, not large objects: an arriving row that points at one of the source's would point
        at whatever the target holds under that OID (another document), or at nothing."""
        found = []
        for table, stage in staged:
            for column in table.large_objects:
                referenced = self.target.execute(sql.SQL(
                    "SELECT array_agg(DISTINCT s.{c}) FROM {stage} s WHERE s.{c} IS NOT NULL").format(
                    c=sql.Identifier(column), stage=stage)).fetchone()[0]
                objects = self.source.execute(sql.SQL(
                    "SELECT count(*) FROM pg_catalog.pg_largeobject_metadata WHERE oid = ANY(%s)"),
                    [referenced or []]).fetchone()[0]
                if objects:
                    found.append("%s.%s (%d large object(s))" % (table.label, column, objects))
        large_objects.refuse_references(found, "rows of the worlds", "A transfer moves", "in the target", "include")

    # -- ownership -------------------------------------------------------------------------
    def _refuse_foreign_owners(self, staged) -> None:
        """A staged row whose key the target holds under another owner (another world, or production data) is
        a conflict, never an update: identity is key and owner."""
        catalog = self.target_catalog
        stages = {table.key: stage for table, stage in staged}
        clashes = []
        for table, stage in staged:
            target_table = catalog.all_tables[table.key]
            member = target_table.has_world_id or target_table.owner is not None
            if catalog.is_registry(target_table) or not table.primary_key or not member:
                continue  # keyed by the world id itself, or not a world table (schema_differences reports that)
            owner = catalog.world_expression(target_table, "x")  # whose the target row is
            mine = catalog.world_expression(target_table, "s", relation=lambda t: stages[t.key])  # whose it will be
            found = self.target.execute(sql.SQL(
                "SELECT {keys}, {owner}, {mine}, count(*) OVER () FROM {stage} s JOIN {t} x ON {m} "
                "WHERE ({owner}) IS DISTINCT FROM ({mine}) ORDER BY 1 LIMIT 1").format(
                keys=key_text(table.primary_key, "s"), owner=owner, mine=mine, stage=stage, t=table.identifier(),
                m=key_equals(table.primary_key, "x", "s"))).fetchone()
            if found:
                key, theirs, ours, count = found
                clashes.append("%s: %d row(s), e.g. key %s belongs to %s in the target, not to %s"
                               % (table.label, count, key, _owner_name(theirs), _owner_name(ours)))
        if clashes:
            raise PhoenixError(
                "rows arriving from the source have the keys of target rows with another owner; nothing was written: "
                "%s. Copy the worlds under another id (rename/suffix), or set key_conflict=rekey so the incoming rows "
                "get keys of their own" % "; ".join(clashes), key_conflicts=clashes)

    def _refuse_unique_clashes(self, staged) -> None:
        """Arriving rows must not repeat the unique values (emails ...) of target rows that stay: those of other
        owners, and with delete_missing=false those of the target worlds' rows the source no longer holds."""
        for table, stage in staged:
            if self.target_catalog.is_registry(table):
                continue
            spared = self._leaving(table, stage) if self.request.delete_missing else None
            keymap.refuse_unique_clashes(
                self.target, self.target_catalog.all_tables[table.key],
                sql.SQL("SELECT {} FROM {} s").format(identifiers(table.columns), stage), table.columns,
                {"targets": self.targets}, spared)

    # -- plan and execution ----------------------------------------------------------------
    def _compared(self, table: Table) -> list[str]:
        """The columns a target row is compared and updated on: not the key, not those the target maintains."""
        maintained = self.maintained.get(table.label, set())
        return [c for c in table.columns if c not in table.primary_key and c not in maintained]

    def _differs(self, table: Table):
        """Target row x differs from staged row s in a compared column."""
        return table.differs("x", "s", self._compared(table))

    def _target_rows(self, table: Table, alias: str):
        """Rows of the target worlds in the target table."""
        catalog = self.target_catalog
        if catalog.is_registry(table):
            return sql.SQL("{}.id = ANY(%(targets)s)").format(sql.Identifier(alias))
        return catalog.world_predicate(catalog.all_tables[table.key], alias, sql.Placeholder("targets"))

    @staticmethod
    def _arriving(table: Table):
        """Staged row s whose key the target table does not hold yet."""
        return sql.SQL("NOT EXISTS (SELECT 1 FROM {t} x WHERE {m})").format(
            t=table.identifier(), m=same_row(table, "x", "s"))

    def _leaving(self, table: Table, stage):
        """Target row x of the target worlds that the staged rows no longer hold (delete_missing)."""
        return sql.SQL("{own} AND NOT EXISTS (SELECT 1 FROM {stage} s WHERE {m})").format(
            own=self._target_rows(table, "x"), stage=stage, m=same_row(table, "x", "s"))

    def _plan(self, table: Table, stage) -> dict[str, int]:
        if table.primary_key:
            first_key = sql.Identifier(table.primary_key[0])
            insert, update, total = self.target.execute(sql.SQL(
                "SELECT count(*) FILTER (WHERE x.{k} IS NULL), count(*) FILTER (WHERE x.{k} IS NOT NULL AND {d}), "
                "count(*) FROM {stage} s LEFT JOIN {t} x ON {m}").format(
                k=first_key, d=self._differs(table), stage=stage, t=table.identifier(),
                m=key_equals(table.primary_key, "x", "s"))).fetchone()
        else:  # rows are their content: one is there or it is not, never updated
            update = 0
            insert, total = self.target.execute(sql.SQL("SELECT count(*) FILTER (WHERE {new}), count(*) FROM {stage} s")
                                                .format(new=self._arriving(table), stage=stage)).fetchone()
        delete = 0
        if self.request.delete_missing:
            delete = self.target.execute(sql.SQL("SELECT count(*) FROM {t} x WHERE {leaving}").format(
                t=table.identifier(), leaving=self._leaving(table, stage)), {"targets": self.targets}).fetchone()[0]
        return {"insert": insert, "update": update, "unchanged": total - insert - update, "delete": delete}

    def _apply(self, table: Table, stage, plan: dict[str, int]) -> None:
        cols = identifiers(table.columns)
        if plan["insert"]:
            # When every staged row arrives (the plan found none of their keys), they are inserted as they are.
            # Otherwise rows whose key is there are skipped through the key's index: an anti-join against the table
            # being written could scan its growing heap once per row. Other unique constraints still fail the run.
            if not table.primary_key:
                new = sql.SQL("WHERE {}").format(self._arriving(table))
            elif plan["update"] or plan["unchanged"]:
                new = sql.SQL("ON CONFLICT ({}) DO NOTHING").format(identifiers(table.primary_key))
            else:
                new = sql.SQL("")
            done = self.target.execute(sql.SQL(
                "INSERT INTO {t} ({cols}){overriding} SELECT {cols} FROM {stage} s {new}").format(
                t=table.identifier(), cols=cols, stage=stage, new=new,
                overriding=keymap.overriding(table, table.columns))).rowcount
            _expect(table, "inserted", done, plan["insert"])
            keymap.catch_up_sequences(self.target, table, table.columns)
        others = self._compared(table)
        if plan["update"] and others:
            done = self.target.execute(sql.SQL("UPDATE {t} x SET {sets} FROM {stage} s WHERE {m} AND {d}").format(
                t=table.identifier(), stage=stage, m=key_equals(table.primary_key, "x", "s"), d=self._differs(table),
                sets=assignments(others, "s"))).rowcount
            _expect(table, "updated", done, plan["update"])
            self._note_rewrites(table, stage, others)

    def _note_rewrites(self, table: Table, stage, columns: list[str]) -> None:
        """Columns the target's triggers changed again right after the update: the next run would find them
        different and update them again, never converging, unless they are listed in maintained_columns."""
        counts = self.target.execute(sql.SQL("SELECT {} FROM {} s JOIN {} x ON {}").format(
            sql.SQL(", ").join(sql.SQL("count(*) FILTER (WHERE {})").format(table.differs("x", "s", [c]))
                               for c in columns),
            stage, table.identifier(), key_equals(table.primary_key, "x", "s"))).fetchone()
        rewritten = [c for c, n in zip(columns, counts) if n]
        if rewritten:
            self.rewritten[table.label] = rewritten

    def _delete(self, table: Table, stage) -> None:
        self.target.execute(sql.SQL("DELETE FROM {t} x WHERE {leaving}").format(
            t=table.identifier(), leaving=self._leaving(table, stage)), {"targets": self.targets})

    def _diff(self, staged, plan: dict[str, dict[str, int]]) -> dict[str, dict[str, Any]]:
        """--diff: per table, a few keys of the rows updated and deleted (before) and inserted and updated (after),
        with "+N more" when there are more than DIFF_SAMPLE."""
        diff: dict[str, dict[str, Any]] = {"before": {}, "after": {}}
        for table, stage in staged:
            counts = plan[table.label]
            changed = sql.SQL("EXISTS (SELECT 1 FROM {t} x WHERE {m} AND {d})").format(
                t=table.identifier(), m=key_equals(table.primary_key, "x", "s"), d=self._differs(table))
            queries = {  # kind -> (where the keys come from, alias, condition)
                "insert": (stage, "s", self._arriving(table)),
                "update": (stage, "s", changed),
                "delete": (table.identifier(), "x", self._leaving(table, stage)),
            }
            for kind, (rows, alias, condition) in queries.items():
                if not counts[kind]:
                    continue
                sample = [r[0] for r in self.target.execute(sql.SQL(
                    "SELECT {k} FROM {rows} {a} WHERE {c} ORDER BY 1 LIMIT %(n)s").format(
                    k=row_text(table, alias), rows=rows, a=sql.Identifier(alias), c=condition),
                    {"n": DIFF_SAMPLE, "targets": self.targets}).fetchall()]
                if counts[kind] > len(sample):
                    sample.append("+%d more" % (counts[kind] - len(sample)))
                for side in DIFF_SIDES[kind]:
                    diff[side].setdefault(table.label, {})[kind] = sample
        return diff


def _owner_name(world: str | None) -> str:
    return "production data" if world is None else "world %s" % world


def _require_source_worlds(source, worlds: list[str]) -> None:
    """A world the source lacks is an error: copying "nothing" would mirror it into deletions."""
    present = {r[0] for r in source.execute(sql.SQL('SELECT id FROM "WorldMeta" WHERE id = ANY(%s)'), [worlds])}
    missing = [w for w in worlds if w not in present]
    if missing:
        raise PhoenixError("the source has no world %s; nothing was written. Check the world id (world ids are "
                           "upper case) and the source environment" % ", ".join(missing), missing_worlds=missing)


def _expect(table: Table, what: str, done: int, planned: int) -> None:
    if done != planned:
        raise PhoenixError("%s: %d rows %s, the plan said %d; the target changed during the transfer, nothing was "
                           "written" % (table.label, done, what, planned))
