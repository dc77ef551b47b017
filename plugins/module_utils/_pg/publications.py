# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Publications (what a change pipeline reads) and the writes the server then refuses.

A publication that publishes a table's deletes needs the table to say which columns identify a row in the change
stream: its replica identity, by default its primary key. The server refuses every DELETE on such a table that has
none, even a DELETE of no row. ``CREATE PUBLICATION ... FOR ALL TABLES`` (as CDC tools such as Debezium set it up)
takes in every table, the keyless ones an application has too. Found before anything is written, in check mode
too, such a table is named with the ways out; otherwise a real run would fail where its check said it would work.
"""

from __future__ import annotations

from typing import Sequence

from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._pg.catalog import Table

try:
    from psycopg import sql
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass

# The tables given (by position) that hold, themselves or in a partition, rows whose deletes a publication
# publishes without a replica identity: not FULL, and no index that is one (the primary key, by default).
# A partition's deletes are published by its own publications, or by its partitioned table's.
UNIDENTIFIED = """
WITH RECURSIVE written(position, oid, top) AS (
    SELECT t.position, t.name::regclass::oid, t.name::regclass::oid
    FROM unnest(%(tables)s::text[]) WITH ORDINALITY AS t(name, position)
    UNION ALL
    SELECT w.position, i.inhrelid, w.top FROM pg_inherits i JOIN written w ON i.inhparent = w.oid)
SELECT w.position, string_agg(DISTINCT p.pubname, ', ' ORDER BY p.pubname), format('%%I.%%I', tn.nspname, tc.relname)
FROM written w
JOIN pg_class c ON c.oid = w.oid AND c.relkind = 'r'
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class tc ON tc.oid = w.top
JOIN pg_namespace tn ON tn.oid = tc.relnamespace
JOIN pg_publication_tables pt ON (pt.schemaname, pt.tablename) IN ((n.nspname, c.relname), (tn.nspname, tc.relname))
JOIN pg_publication p ON p.pubname = pt.pubname AND p.pubdelete
WHERE c.relreplident <> 'f' AND NOT EXISTS (
    SELECT FROM pg_index i WHERE i.indrelid = c.oid AND (i.indisreplident OR (c.relreplident = 'd' AND i.indisprimary)))
GROUP BY w.position, tn.nspname, tc.relname ORDER BY w.position"""


def require_deletable(conn, tables: Sequence[Table], purpose: str) -> None:
    """Refuse ``purpose`` (which deletes rows of ``tables``) when a publication publishes the deletes of one of them
    and it has no replica identity: the server would refuse the delete."""
    if not tables:
        return
    names = [table.identifier().as_string(conn) for table in tables]
    found = conn.execute(sql.SQL(UNIDENTIFIED), {"tables": names}).fetchall()
    if found:
        named = ["%s (publication %s)" % (tables[position - 1].label, publications) for position, publications, spelled in found]
        first = found[0][2]  # as SQL spells it, to be pasted into a statement
        raise PhoenixError(
            "%s deletes rows of %s, whose deletes a publication sends to a change pipeline, and which has neither a "
            "primary key nor a replica identity, so the server refuses any delete from it; give it one (ALTER TABLE %s "
            "REPLICA IDENTITY FULL, or a primary key), or take it out of the publication; nothing was written"
            % (purpose, ", ".join(named), first))
