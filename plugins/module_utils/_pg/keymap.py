# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""New integer keys for rows copied under another world id: the one key-mapping mechanism of clone, import
under another id and transfer with a rename.

A table keyed by one integer column with a sequence (serial or identity) gets new keys from that sequence, the
database's own numbering, so a copy never collides with rows the database already has or will number later.
Each new key is recorded in ``phoenix.key_map`` (table, target world, old key -> new key; stored as one batch
of arrays per copy): a repeated copy finds the same keys and writes nothing. A foreign key column pointing at such a key is rewritten through the
map of the table it references; a reference to a row outside the copied world (production data) has no entry
and keeps its value. UUID keys are re-keyed deterministically instead (``sql.rekeyed``).
"""

from __future__ import annotations

from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._pg.catalog import WORLD_COLUMN, Catalog, Table
from ansible_collections.phoenix.platform.plugins.module_utils._pg.sql import identifiers, key_equals, key_text, same_row

try:
    from psycopg import sql
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass

KEY_MAP_BATCHES = ("phoenix", "key_map_batch")  # a row per copy: table, world, old keys[], new keys[]
KEY_MAP = ("phoenix", "key_map")  # its view: a row per key


def mapped_columns(catalog: Catalog, table: Table) -> dict[str, Table]:
    """Integer columns re-keyed through the key map -> the table whose map they read: the table's own sequence
    key, and FK columns pointing at the sequence key of a member table."""
    mapped = {table.sequence_key: table} if table.sequence_key else {}
    for fk in table.foreign_keys:
        parent = catalog.all_tables.get(fk.target)
        if parent is None or parent.label not in catalog.by_label or not parent.sequence_key:
            continue
        mapped.update({col: parent for col, ref in zip(fk.columns, fk.target_columns) if ref == parent.sequence_key})
    return mapped


def rekeyable_problem(catalog: Catalog, table: Table, transforms: dict[str, str]) -> str | None:
    """Why copies of the table's rows under another world id would collide with the originals, if they would.
    A key changes when it is a uuid, an integer numbered by a sequence, world_id, a reference to one of those,
    or a column with a ``column_transforms`` template (text keys)."""
    changing = catalog.uuid_key_columns(table) | set(mapped_columns(catalog, table)) | set(transforms) | {WORLD_COLUMN}
    if set(table.primary_key or table.columns) & changing:  # without a key, a row is identified by its content
        return None
    if not table.primary_key:
        return ("table %s has no primary key and no column a copy changes (world_id, or a reference to a re-keyed "
                "row), so a copy would be the original again; add a primary key to copy worlds" % table.label)
    return ("table %s: its primary key (%s) is neither a uuid nor an integer numbered by a sequence (serial or "
            "identity), nor a reference to one, so a copy would collide with the original; give the key a value per "
            "world with column_transforms, e.g. {\"%s.%s\": \"{value}__{world}\"}" % (
                table.label, ", ".join("%s %s" % (c, table.types[c]) for c in table.primary_key), table.label,
                table.primary_key[0]))


def assign_keys(conn, table: Table, rows, alias: str, world, condition=None, params=None) -> int:
    """Give the rows of ``rows`` (a FROM item whose row alias is ``alias``; ``condition`` limits them) a new key
    from the table's sequence in the world ``world`` (SQL), unless the map has one already. The new keys of one
    world are one batch: two arrays written once, whatever the number of rows. Returns how many were assigned."""
    key = sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(table.sequence_key))
    # nextval() in a sorted select list runs after the sort: new keys ascend with the old ones. Both arrays are
    # aggregated from the same rows in the same pass, so old_keys[i] and new_keys[i] always belong together.
    query = sql.SQL(
        "INSERT INTO {batches} (table_name, world, old_keys, new_keys) "
        "SELECT %(keymap_table)s, w, array_agg(k), array_agg(n) FROM ("
        "SELECT w, k, nextval(%(keymap_sequence)s::regclass) AS n FROM "
        "(SELECT DISTINCT ({world})::text AS w, ({key})::bigint AS k FROM {rows} WHERE {condition}) d "
        "WHERE NOT EXISTS (SELECT 1 FROM {map} m WHERE m.table_name = %(keymap_table)s AND m.world = d.w "
        "AND m.old_key = d.k) ORDER BY w, k) n GROUP BY w RETURNING cardinality(old_keys)").format(
        batches=sql.Identifier(*KEY_MAP_BATCHES), map=sql.Identifier(*KEY_MAP), world=world, key=key, rows=rows,
        condition=condition or sql.SQL("true"))
    values = dict(params or {}, keymap_table=table.label, keymap_sequence=table.sequences[table.sequence_key])
    return sum(n for (n,) in conn.execute(query, values))


class KeyMaps:
    """The key map entries one copy reads: per mapped table, a temporary table (world, old_key, new_key) of the
    copied worlds' entries, analysed. Rows unnested from arrays carry no statistics, and a planner guessing ten
    of them may rescan them once per row; with the real counts it joins them by hash. Made once every new key
    is assigned."""

    def __init__(self, conn, worlds: list[str]) -> None:
        self.conn, self.worlds = conn, worlds
        self.relations: dict[str, sql.Identifier] = {}

    def relation(self, table: Table) -> sql.Identifier:
        if table.label not in self.relations:
            relation = sql.Identifier("phoenix_keys_%d" % len(self.relations))
            self.conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(relation))  # an earlier copy's, same transaction
            self.conn.execute(sql.SQL(
                "CREATE TEMP TABLE {relation} ON COMMIT DROP AS SELECT world, old_key, new_key FROM {map} "
                "WHERE table_name = %s AND world = ANY(%s)").format(relation=relation, map=sql.Identifier(*KEY_MAP)),
                [table.label, self.worlds])
            self.conn.execute(sql.SQL("ANALYZE {}").format(relation))
            self.relations[table.label] = relation
        return self.relations[table.label]

    def lookups(self, world) -> "Lookups":
        return Lookups(self, world)


class Lookups:
    """The key map joins of one FROM item: each mapped column's value is read through a ``LEFT JOIN``."""

    def __init__(self, maps: KeyMaps, world) -> None:
        self.maps = maps
        self.world = world  # SQL for the world whose copies' keys are looked up
        self.joins: list[sql.Composable] = []

    def value(self, value, mapped_table: Table, column_type: str, keep_unmapped: bool = True):
        """SQL for ``value`` (an integer key of ``mapped_table``) as the key its copy has. Unmapped values (rows
        outside the world) are kept, or NULL with ``keep_unmapped=False``."""
        alias = sql.Identifier("km%d" % len(self.joins))
        self.joins.append(sql.SQL("LEFT JOIN {map} {a} ON {a}.world = ({world})::text AND {a}.old_key = ({value})::bigint")
                          .format(map=self.maps.relation(mapped_table), a=alias, world=self.world, value=value))
        found = sql.SQL("({}.new_key)::{}").format(alias, sql.SQL(column_type))
        return sql.SQL("coalesce({}, {})").format(found, value) if keep_unmapped else found

    def sql(self) -> sql.Composable:
        return sql.SQL(" ").join(self.joins)


def transformed(template: str, value, world, column_type: str):
    """SQL for a copied row's value of a column under ``column_transforms``: the template with ``{value}`` and
    ``{world}`` filled in, as the column's type."""
    return sql.SQL("replace(replace({template}, '{{value}}', ({value})::text), '{{world}}', ({world})::text)::{type}"
                   ).format(template=sql.Literal(template), value=value, world=world, type=sql.SQL(column_type))


def catch_up_sequences(conn, table: Table, columns) -> None:
    """Rows written with their own integer keys (an import or transfer that keeps keys) move the sequences
    numbering those columns past them, so the application's next insert does not collide."""
    for column in sorted(set(columns) & set(table.sequences)):
        conn.execute(sql.SQL(
            "SELECT setval(%(sequence)s::regclass, m) FROM (SELECT max({column})::bigint AS m FROM {table}) x "
            "WHERE m > coalesce(pg_sequence_last_value(%(sequence)s::regclass), 0)").format(
            column=sql.Identifier(column), table=table.identifier()), {"sequence": table.sequences[column]})


def forget_worlds(conn, worlds: list[str]) -> None:
    """The key map entries of deleted worlds go with them."""
    conn.execute(sql.SQL("DELETE FROM {} WHERE world = ANY(%s)").format(sql.Identifier(*KEY_MAP_BATCHES)), [worlds])


def overriding(table: Table, columns) -> sql.Composable:
    """``OVERRIDING SYSTEM VALUE`` when an insert gives GENERATED ALWAYS identity columns their values."""
    return sql.SQL(" OVERRIDING SYSTEM VALUE") if table.identity_always & set(columns) else sql.SQL("")


def refuse_unique_clashes(conn, table: Table, copies, columns: list[str], params=None, spared=None) -> None:
    """Fail before anything is written when copied rows (``copies``, a query yielding ``columns`` as they would be
    written) would repeat the values of a UNIQUE constraint that another row of the table holds: a copy keeps
    every value it is not given anew (an email, a slug). ``spared`` (SQL on the table's row x) marks rows gone
    by the time the copies are written."""
    other = sql.SQL("NOT {}").format(same_row(table, "x", "c", columns)) if table.primary_key else sql.SQL("true")
    if spared is not None:
        other = sql.SQL("{} AND NOT ({})").format(other, spared)
    for name, unique in sorted(table.unique.items()):
        if set(unique) == set(table.primary_key) or not set(unique) <= set(columns):
            continue
        found = conn.execute(sql.SQL(
            "SELECT {values}, count(*) OVER () FROM ({copies}) AS c({cols}) JOIN {table} x ON {equal} "
            "WHERE {other} LIMIT 1").format(
            values=key_text(unique, "c"), copies=copies, cols=identifiers(columns), table=table.identifier(),
            equal=key_equals(unique, "x", "c"), other=other), params).fetchone()
        if found:
            message = ("%d copied row(s) of %s would repeat values that other rows hold under the unique constraint "
                       "%s (%s), e.g. %s; nothing was written. Give the copies values of their own with "
                       "column_transforms, e.g. {\"%s.%s\": \"{world}.{value}\"}")
            raise PhoenixError(message % (found[1], table.label, name, ", ".join(unique), found[0], table.label,
                                          unique[0]), unique_constraint=name)
