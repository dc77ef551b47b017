# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The SQL toolkit: the small compositions that define data identity, written once.

Identifier lists, key equality, the re-key expression every copy uses, the read-only snapshot,
dry-run twins (count what a statement would touch, or run it), dict -> INSERT/UPDATE, and rows
inserted unless their key exists. Everything composes with psycopg.sql; values are bound.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from ansible_collections.phoenix.platform.plugins.module_utils._pg.catalog import Table

try:
    import psycopg
    from psycopg import sql
    from psycopg.types.json import Jsonb
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass

BATCH_ROWS = 500


def identifiers(columns: Iterable[str], alias: str | None = None):
    """``a, b`` or, with an alias, ``x.a, x.b``."""
    if alias is None:
        return sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    return sql.SQL(", ").join(sql.SQL("{}.{}").format(sql.Identifier(alias), sql.Identifier(c)) for c in columns)


def key_text(columns: Iterable[str], alias: str):
    """``concat_ws('/', x.a::text, x.b::text)``: a row's key as one readable value (composite keys too)."""
    return sql.SQL("concat_ws('/', {})").format(
        sql.SQL(", ").join(sql.SQL("{}.{}::text").format(sql.Identifier(alias), sql.Identifier(c)) for c in columns))


def assignments(columns: Iterable[str], source: str):
    """``a = s.a, b = s.b``: an UPDATE's SET list taking each column from the row ``source`` (e.g. EXCLUDED)."""
    return sql.SQL(", ").join(sql.SQL("{0} = {1}.{0}").format(sql.Identifier(c), sql.SQL(source)) for c in columns)


def key_equals(columns: Iterable[str], left: str, right: str | Mapping[str, Any]):
    """``(l.a, l.b) = (r.a, r.b)``; ``right`` is an alias, or column -> expression."""
    columns = list(columns)
    values = identifiers(columns, right) if isinstance(right, str) else sql.SQL(", ").join(right[c] for c in columns)
    return sql.SQL("({}) = ({})").format(identifiers(columns, left), values)


def same_row(table: Table, left: str, right: str, columns: Iterable[str] | None = None):
    """True when rows ``left`` and ``right`` (aliases) are the same row: equal primary keys, or for a table
    without one, equal in every column (or in ``columns``, those both sides have): such a row is its content."""
    if table.primary_key:
        return key_equals(table.primary_key, left, right)
    return sql.SQL("NOT {}").format(table.differs(left, right, list(columns or table.columns)))


def row_text(table: Table, alias: str):
    """A row's identity as one readable value: its key, or its whole content without one."""
    return key_text(table.primary_key or table.columns, alias)


def rekeyed(target, key):
    """The key a copied row gets under the world ``target``: ``md5(target || ':' || key)::uuid``.

    Deterministic, so copying again finds the copies already there. Clone, import under another id
    and transfer with a rename all use it."""
    return sql.SQL("md5({} || ':' || ({})::text)::uuid").format(target, key)


def defer_constraints(conn) -> None:
    """Deferrable constraints are checked at commit: rows of a foreign-key cycle can be written in any order."""
    conn.execute(sql.SQL("SET CONSTRAINTS ALL DEFERRED"))


def bulk_memory(conn, work_mem: str = "64MB", temp_buffers: str = "256MB") -> None:
    """Memory for statements over a whole world's rows; higher settings are kept.

    work_mem, for the rest of the transaction: sorts and hash joins (the key map's, 16 bytes a key) spilled to disk
    are slower, and a hash join in batches returns rows out of key order, which slows the inserts after it.
    temp_buffers, for the session: staging tables larger than the 8 MB default are written out and read back
    between statements. It can only be raised before the session's first temporary table; after that it stays."""
    raise_setting = sql.SQL("SELECT set_config(%(name)s, %(size)s, %(local)s) "
                            "WHERE pg_size_bytes(current_setting(%(name)s)) < pg_size_bytes(%(size)s)")
    conn.execute(raise_setting, {"name": "work_mem", "size": work_mem, "local": True})
    try:
        with conn.transaction():
            conn.execute(raise_setting, {"name": "temp_buffers", "size": temp_buffers, "local": False})
    except psycopg.errors.InvalidParameterValue:
        pass  # temporary tables were used already: their buffers are sized


def read_only_snapshot(conn) -> None:
    """Make the transaction just begun see one consistent snapshot and write nothing."""
    conn.execute(sql.SQL("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))


def count_or_execute(conn, dry_run: bool, rows, statement, params: Mapping[str, Any] | None = None) -> int:
    """The dry-run twin: ``count(*)`` of ``rows`` (a query yielding what ``statement`` would touch) in dry
    run, otherwise ``statement``'s row count."""
    if dry_run:
        return conn.execute(sql.SQL("SELECT count(*) FROM ({}) touched").format(rows), params).fetchone()[0]
    return conn.execute(statement, params).rowcount


def insert_values(conn, table, values: Mapping[str, Any], returning: Iterable[str] = ()):
    """``INSERT INTO table (cols) VALUES (...)`` from a dict of column -> value; the returned row, if asked."""
    query = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        table, identifiers(values), sql.SQL(", ").join(sql.Placeholder(c) for c in values))
    returning = list(returning)
    if returning:
        return conn.execute(query + sql.SQL(" RETURNING {}").format(identifiers(returning)), values).fetchone()
    conn.execute(query, values)
    return None


def update_values(conn, table, values: Mapping[str, Any], key_column: str, key: Any, extra=None) -> None:
    """``UPDATE table SET col = value, ... [, extra] WHERE key_column = key`` from a dict of column -> value."""
    sets = [sql.SQL("{} = {}").format(sql.Identifier(c), sql.Placeholder(c)) for c in values]
    if extra is not None:
        sets.append(extra)
    conn.execute(sql.SQL("UPDATE {} SET {} WHERE {} = {}").format(
        table, sql.SQL(", ").join(sets), sql.Identifier(key_column), sql.Placeholder("_key")),
        dict(values, _key=key))


def _batches(rows: list[dict[str, Any]], size: int) -> Iterable[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def _values(table: Table, columns: list[str], batch: list[dict[str, Any]]):
    """``(%s::type, ...), (...)`` for the batch, with the parameters in order."""
    # Type names come from format_type() in pg_catalog, already quoted where needed.
    row_sql = sql.SQL("({})").format(sql.SQL(", ").join(
        sql.SQL("{}::{}").format(sql.Placeholder(), sql.SQL(table.types[c])) for c in columns))
    params: list[Any] = []
    for row in batch:
        params.extend(Jsonb(row[c]) if table.types[c] in ("json", "jsonb") and row[c] is not None else row[c]
                      for c in columns)
    return sql.SQL(", ").join([row_sql] * len(batch)), params


def insert_missing(conn, table: Table, rows: list[dict[str, Any]], dry_run: bool) -> int:
    """Insert ``rows`` (dicts of column -> value) unless their primary key exists; returns how many."""
    if not rows:
        return 0
    columns = [c for c in table.columns if c in rows[0]]
    total = 0
    for batch in _batches(rows, BATCH_ROWS):
        if dry_run:
            key = list(table.primary_key)
            values, params = _values(table, key, batch)
            query = sql.SQL("SELECT count(*) FROM (VALUES {values}) AS v({cols}) WHERE NOT EXISTS "
                            "(SELECT 1 FROM {table} x WHERE {match})").format(
                values=values, cols=identifiers(key), table=table.identifier(), match=key_equals(key, "x", "v"))
            total += conn.execute(query, params).fetchone()[0]
        else:
            values, params = _values(table, columns, batch)
            query = sql.SQL("INSERT INTO {table} ({cols}) VALUES {values} ON CONFLICT DO NOTHING").format(
                table=table.identifier(), cols=identifiers(columns), values=values)
            total += conn.execute(query, params).rowcount
    return total


def glob_to_like(pattern: str) -> str:
    """``UC_*`` → ``UC\\_%``: shell-style wildcards as a LIKE pattern."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")
