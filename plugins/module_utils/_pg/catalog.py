# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which tables hold a world's rows, discovered from pg_catalog rather than hard-coded.

A table is world-scoped when it has a ``world_id`` column. A table without one that
references a world member by foreign key belongs to the world of the row it references
(``"A_Text"`` → ``"Artifact"``). Members are listed parents first; deletes walk the list
backwards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable

from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError

try:
    from psycopg import sql
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass

WORLD_COLUMN = "world_id"
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema")
EXCLUDED_SCHEMAS = SYSTEM_SCHEMAS + ("phoenix",)  # world tables live in the application's schemas
WORLD_META = "WorldMeta"
WORLD_META_TABLE = '"WorldMeta"'  # wherever the search path finds it


@dataclass(frozen=True)
class ForeignKey:
    name: str
    columns: tuple[str, ...]
    target: tuple[str, str]  # (schema, table)
    target_columns: tuple[str, ...]
    deferrable: bool = False  # checked at commit once deferred: no ordering constraint for writes


@dataclass
class Table:
    schema: str
    name: str
    columns: list[str]  # insertable columns, in table order
    types: dict[str, str]
    primary_key: tuple[str, ...]
    foreign_keys: list[ForeignKey] = field(default_factory=list)
    owner: ForeignKey | None = None  # for tables without world_id: the FK that makes them members
    sequences: dict[str, str] = field(default_factory=dict)  # integer column -> its sequence (serial or identity)
    identity_always: set[str] = field(default_factory=set)  # GENERATED ALWAYS AS IDENTITY columns
    partitioned: bool = False  # its rows live in partitions, which are not tables of their own here
    unique: dict[str, tuple[str, ...]] = field(default_factory=dict)  # UNIQUE constraint or index -> its columns
    large_objects: list[str] = field(default_factory=list)  # columns holding large objects' OIDs (oid, or a domain over it)

    @property
    def sequence_key(self) -> str | None:
        """The key column numbered by a sequence (serial or identity), when the primary key has exactly one;
        the sequence makes it unique on its own (a partitioned table adds its partition key to the key)."""
        numbered = [c for c in self.primary_key if c in self.sequences]
        return numbered[0] if len(numbered) == 1 else None

    @property
    def key(self) -> tuple[str, str]:
        return (self.schema, self.name)

    @property
    def label(self) -> str:
        return table_label(self.schema, self.name)

    @property
    def has_world_id(self) -> bool:
        return WORLD_COLUMN in self.types

    def identifier(self):
        return sql.Identifier(self.schema, self.name)

    def comparable(self, alias: str, column: str):
        """``alias.column`` in a form that has equality (json has none: it is compared as jsonb)."""
        cast = sql.SQL("::jsonb") if self.types[column] == "json" else sql.SQL("")
        return sql.SQL("{}.{}{}").format(sql.Identifier(alias), sql.Identifier(column), cast)

    def differs(self, left: str, right: str, columns: list[str]):
        """SQL that is true when rows ``left`` and ``right`` differ in ``columns``."""
        if not columns:
            return sql.SQL("false")
        return sql.SQL("({}) IS DISTINCT FROM ({})").format(
            sql.SQL(", ").join(self.comparable(left, c) for c in columns),
            sql.SQL(", ").join(self.comparable(right, c) for c in columns))


class Catalog:
    """World member tables of a database, parents first."""

    def __init__(self, tables: dict[tuple[str, str], Table],
                 registry_key: tuple[str, str] | None = ("public", WORLD_META)) -> None:
        self.all_tables = tables
        self.registry = tables.get(registry_key) if registry_key else None  # "WorldMeta", where the search path finds it
        self.members: list[Table] = topological(_members(tables, registry_key))
        self.by_label = {t.label: t for t in self.members}
        # uuid key columns of each member table, what copies re-key and the references that follow them: the primary
        # key's, and UNIQUE columns that member rows reference (a copy's reference points at the copy)
        self.uuid_keys = {m.key: {c for c in m.primary_key if m.types[c] == "uuid"} for m in self.members}
        for member in self.members:
            for fk in member.foreign_keys:
                if fk.target in self.uuid_keys:
                    target = self.all_tables[fk.target]
                    self.uuid_keys[fk.target] |= {c for c in fk.target_columns if target.types[c] == "uuid"}

    def maintained_columns(self, entries: list[str] | None) -> dict[str, set[str]]:
        """``maintained_columns`` entries (``table.column``, e.g. ``store.customer.last_update``) per table label:
        columns the target database maintains itself (a BEFORE UPDATE trigger's ``last_update``), written when a
        row arrives and never compared or updated afterwards, so re-runs converge."""
        maintained: dict[str, set[str]] = {}
        for entry in entries or []:
            label, column = self._member_column(entry, "maintained_columns")
            maintained.setdefault(label, set()).add(column)
        return maintained

    def column_transforms(self, entries: dict[str, str] | None) -> dict[str, dict[str, str]]:
        """``column_transforms`` (``table.column`` -> template with ``{value}`` and ``{world}``) per table label:
        the value a copied row gets under another world id in a column whose values must stay unique."""
        transforms: dict[str, dict[str, str]] = {}
        for entry, template in (entries or {}).items():
            label, column = self._member_column(entry, "column_transforms")
            if not isinstance(template, str) or "{world}" not in template:
                raise PhoenixError("column_transforms[%r] must be a text with {world} in it (and {value} for the "
                                   "original value), e.g. '{world}.{value}', so each world's copy differs" % entry)
            transforms.setdefault(label, {})[column] = template
        for table in self.members:  # references to a transformed key follow it (a text key's children)
            for fk in table.foreign_keys:
                parent = self.all_tables[fk.target]
                for col, ref in zip(fk.columns, fk.target_columns):
                    if ref in transforms.get(parent.label, {}) and parent.label in self.by_label:
                        transforms.setdefault(table.label, {}).setdefault(col, transforms[parent.label][ref])
        return transforms

    def _member_column(self, entry: str, option: str) -> tuple[str, str]:
        label, _dot, column = str(entry).rpartition(".")
        table = self.by_label.get(label)
        if table is None or column not in table.columns:
            raise PhoenixError("%s entry %r names no column of a world table; use table.column with the table as the "
                               "plan names it (e.g. Artifact.updatedAt, store.customer.last_update)" % (option, entry))
        return label, column

    def is_registry(self, table: Table) -> bool:
        return self.registry is not None and table.key == self.registry.key

    def with_registry(self, tables: list[Table]) -> list[Table]:
        """``tables``, then the registry where the database has one."""
        return tables + ([self.registry] if self.registry is not None else [])

    def parent(self, table: Table) -> Table:
        if table.owner is None:
            raise ValueError("%s is not a dependent world table" % table.label)
        return self.all_tables[table.owner.target]

    def uuid_key_columns(self, table: Table) -> set[str]:
        """Columns re-keyed when rows are copied under another world id.

        UUID primary-key columns of members, UNIQUE uuid columns that member rows reference, and FK columns
        pointing at either.
        """
        return self.uuid_keys.get(table.key, set()) | set(self.uuid_references(table))

    def uuid_references(self, table: Table) -> dict[str, tuple[Table, str]]:
        """FK columns re-keyed with the uuid key they reference -> (the referenced table, its column)."""
        return {col: (self.all_tables[fk.target], ref) for fk in table.foreign_keys
                for col, ref in zip(fk.columns, fk.target_columns) if ref in self.uuid_keys.get(fk.target, set())}

    def world_expression(self, table: Table, alias: str, depth: int = 0, relation=None):
        """SQL for the world id of a row of ``table`` aliased ``alias``.

        ``relation(table)`` names where a parent's rows are read (default: the table itself; a transfer
        passes its staging tables to ask which world an incoming row will belong to)."""
        if table.has_world_id:
            return sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(WORLD_COLUMN))
        parent = self.parent(table)
        parent_alias = "p%d" % depth
        return sql.SQL("(SELECT {expr} FROM {parent} {pa} WHERE {join})").format(
            expr=self.world_expression(parent, parent_alias, depth + 1, relation),
            parent=relation(parent) if relation else parent.identifier(),
            pa=sql.Identifier(parent_alias),
            join=join_condition(table.owner, alias, parent_alias),
        )

    def world_joins(self, table: Table, alias: str):
        """(``LEFT JOIN``s up the owner chain of the row aliased ``alias``, SQL for its world id): for reading
        whole tables, joins the planner can hash or drive from the world_id index, not a subquery per row."""
        joins = []
        while not table.has_world_id:
            parent, parent_alias = self.parent(table), "o%d" % len(joins)
            joins.append(sql.SQL("LEFT JOIN {} {} ON {}").format(
                parent.identifier(), sql.Identifier(parent_alias), join_condition(table.owner, alias, parent_alias)))
            table, alias = parent, parent_alias
        return sql.SQL(" ").join(joins), sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(WORLD_COLUMN))

    def world_predicate(self, table: Table, alias: str, worlds_param, depth: int = 0):
        """SQL that is true when the row aliased ``alias`` belongs to one of ``worlds_param`` (a text[])."""
        if table.has_world_id:
            return sql.SQL("{}.{} = ANY({})").format(sql.Identifier(alias), sql.Identifier(WORLD_COLUMN), worlds_param)
        parent = self.parent(table)
        parent_alias = "p%d" % depth
        return sql.SQL("EXISTS (SELECT 1 FROM {parent} {pa} WHERE {join} AND {pred})").format(
            parent=parent.identifier(),
            pa=sql.Identifier(parent_alias),
            join=join_condition(table.owner, alias, parent_alias),
            pred=self.world_predicate(parent, parent_alias, worlds_param, depth + 1),
        )


def join_condition(fk: ForeignKey, child_alias: str, parent_alias: str):
    return sql.SQL(" AND ").join(
        sql.SQL("{}.{} = {}.{}").format(sql.Identifier(child_alias), sql.Identifier(col),
                                        sql.Identifier(parent_alias), sql.Identifier(ref))
        for col, ref in zip(fk.columns, fk.target_columns)
    )


def _members(tables: dict[tuple[str, str], Table], registry: tuple[str, str] | None) -> list[Table]:
    """World member tables; never the world registry itself, whatever its FKs (e.g. "createdBy" -> "User")."""
    members = {key for key, t in tables.items() if t.has_world_id and key != registry}
    grew = True
    while grew:  # tables hanging off members by FK, transitively
        grew = False
        for key, table in sorted(tables.items()):
            if key in members or key == registry:
                continue
            owners = sorted((fk for fk in table.foreign_keys if fk.target in members and fk.target != key),
                            key=lambda fk: fk.name)
            if owners:
                table.owner = owners[0]
                members.add(key)
                grew = True
    return [tables[key] for key in sorted(members)]


def topological(tables: Iterable[Table]) -> list[Table]:
    """Parents before children (Kahn's algorithm, ties by name; self references ignored). Deferrable foreign keys
    do not order writes: every writer defers them to the commit, which is how the application breaks its cycles."""
    pending = {t.key: t for t in tables}
    parents = {key: {fk.target for fk in t.foreign_keys if fk.target in pending and fk.target != key
                     and not fk.deferrable} for key, t in pending.items()}
    ordered: list[Table] = []
    while pending:
        ready = sorted(key for key in pending if not parents[key] & pending.keys())
        if not ready:  # a cycle: keep going in name order rather than loop forever
            ready = [min(pending)]
        for key in ready:
            ordered.append(pending.pop(key))
    return ordered


def table_label(schema: str, name: str) -> str:
    """``Artifact`` for the public schema, ``shop.orders`` otherwise."""
    return name if schema == "public" else "%s.%s" % (schema, name)


def named_in(message: str, name: str) -> bool:
    """Whether the server's ``message`` names table ``name`` whole, in whatever quotes its language uses (``"User"``,
    ``»User«``), not as part of a longer name."""
    return re.search(r"(?<![\w$])%s(?![\w$])" % re.escape(name), message) is not None


def relation_exists(conn, qualified_name: str) -> bool:
    """Whether a table such as ``phoenix.migrations`` or ``public."WorldMeta"`` exists."""
    return conn.execute(sql.SQL("SELECT to_regclass(%s) IS NOT NULL"), [qualified_name]).fetchone()[0]


def user_tables(conn, excluded_schemas: tuple[str, ...] = SYSTEM_SCHEMAS) -> list[tuple[int, str, str, int]]:
    """``(oid, schema, name, estimated rows)`` of every table outside the system schemas, by schema and name."""
    return conn.execute(sql.SQL(
        "SELECT c.oid, n.nspname, c.relname, c.reltuples::bigint FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition "
        "AND n.nspname <> ALL(%s) AND n.nspname NOT LIKE %s ORDER BY 2, 3"
    ), [list(excluded_schemas), "pg\\_%"]).fetchall()


def load(conn) -> Catalog:
    """Read tables, columns, primary and foreign keys of the application schemas."""
    names = {oid: (schema, name) for oid, schema, name, _rows in user_tables(conn, EXCLUDED_SCHEMAS)}
    if not names:
        return Catalog({})
    tables = {key: Table(key[0], key[1], [], {}, ()) for key in names.values()}
    for (oid,) in conn.execute(sql.SQL("SELECT oid FROM pg_class WHERE oid = ANY(%s) AND relkind = 'p'"), [list(names)]):
        tables[names[oid]].partitioned = True
    for oid, _attnum, attname, typname, generated, identity, sequence, large_object in conn.execute(sql.SQL(
        "SELECT attrelid, attnum, attname, format_type(atttypid, atttypmod), attgenerated <> '', attidentity, "
        "CASE WHEN atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype) "
        "THEN pg_get_serial_sequence(attrelid::regclass::text, attname) END, "
        "'oid'::regtype IN (atttypid, (SELECT typbasetype FROM pg_type WHERE oid = atttypid)) "
        "FROM pg_attribute WHERE attrelid = ANY(%s) AND attnum > 0 AND NOT attisdropped ORDER BY attrelid, attnum"
    ), [list(names)]):
        table = tables[names[oid]]
        table.types[attname] = typname
        if large_object:
            table.large_objects.append(attname)
        if not generated:
            table.columns.append(attname)
        if sequence:
            table.sequences[attname] = sequence
        if identity == "a":
            table.identity_always.add(attname)
    # A partitioned table is one table: keys declared on its partitions count as its own (those it declared
    # itself are repeated on each partition with conparentid set, and skipped).
    for oid, contype, conname, columns, target, target_columns, deferrable in conn.execute(sql.SQL(
        "SELECT coalesce(pg_partition_root(conrelid), conrelid)::oid, contype, conname, "
        "ARRAY(SELECT attname FROM unnest(conkey) WITH ORDINALITY k(n, i) JOIN pg_attribute a "
        "ON a.attrelid = conrelid AND a.attnum = k.n ORDER BY k.i), "
        "coalesce(pg_partition_root(confrelid), confrelid)::oid, "
        "ARRAY(SELECT attname FROM unnest(confkey) WITH ORDINALITY k(n, i) JOIN pg_attribute a "
        "ON a.attrelid = confrelid AND a.attnum = k.n ORDER BY k.i), condeferrable "
        "FROM pg_constraint WHERE contype IN ('p', 'f') AND conparentid = 0 "
        "AND coalesce(pg_partition_root(conrelid), conrelid) = ANY(%s) ORDER BY conrelid, conname"
    ), [list(names)]):
        table = tables[names[oid]]
        if contype == "p":
            table.primary_key = table.primary_key or tuple(columns)
        elif target in names:
            fk = ForeignKey(conname, tuple(columns), names[target], tuple(target_columns), deferrable)
            if not any((f.columns, f.target, f.target_columns) == (fk.columns, fk.target, fk.target_columns)
                       for f in table.foreign_keys):  # the same FK declared on every partition
                table.foreign_keys.append(fk)
    # UNIQUE constraints and plain unique indexes (as some ORMs declare them); not those on expressions or partial.
    unique_indexes = sql.SQL(
        "SELECT i.indrelid, c.relname, ARRAY(SELECT attname FROM unnest(i.indkey) WITH ORDINALITY k(n, o) "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o) "
        "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = ANY(%s) AND i.indisunique "
        "AND NOT i.indisprimary AND i.indexprs IS NULL AND i.indpred IS NULL ORDER BY 1, 2")
    for oid, name, columns in conn.execute(unique_indexes, [list(names)]):
        tables[names[oid]].unique[name] = tuple(columns)
    registry = conn.execute(sql.SQL(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.oid = to_regclass(%s)"), ['"WorldMeta"']).fetchone()
    return Catalog(tables, tuple(registry) if registry else None)
