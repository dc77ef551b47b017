# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Publications (what a change pipeline reads) and the writes the server then refuses.

A publication that publishes a table's deletes or updates needs the table to say which columns identify a row in
the change stream: its replica identity, by default its primary key. The server refuses every DELETE (or UPDATE,
and every INSERT ... ON CONFLICT DO UPDATE, even one that meets no conflict) on such a table that has none, even
of no row. ``CREATE PUBLICATION ... FOR ALL TABLES`` (as CDC tools such as Debezium set it up) takes in every
table, the keyless ones an application has too. Found before anything is written, in check mode too, such a table
is named with why it has none and the ways out; otherwise a real run would fail where its check said it would work.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._pg.catalog import Table

try:
    from psycopg import sql
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass

# The tables given (by position) that hold, themselves or in a partition, rows whose {published} a publication
# sends without a replica identity: not FULL, and no index that is one (the primary key, by default). A partition's
# changes are published by its own publications, or by its partitioned table's, and its REPLICA IDENTITY is its own
# (ALTER TABLE does not pass it on). With each: the first such table as SQL spells it (the table or a partition),
# how many, whether they are partitions, and the first's REPLICA IDENTITY setting (d, n or i) and whether it has
# a primary key.
UNIDENTIFIED = """
WITH RECURSIVE written(position, oid, top) AS (
    SELECT t.position, t.name::regclass::oid, t.name::regclass::oid
    FROM unnest(%(tables)s::text[]) WITH ORDINALITY AS t(name, position)
    UNION ALL
    SELECT w.position, i.inhrelid, w.top FROM pg_inherits i JOIN written w ON i.inhparent = w.oid)
SELECT w.position, string_agg(DISTINCT p.pubname, ', ' ORDER BY p.pubname),
       (array_agg(format('%%I.%%I', n.nspname, c.relname) ORDER BY n.nspname, c.relname))[1],
       count(DISTINCT c.oid), bool_or(c.oid <> w.top),
       (array_agg(c.relreplident::text ORDER BY n.nspname, c.relname))[1],
       (array_agg(EXISTS (SELECT FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)
                  ORDER BY n.nspname, c.relname))[1]
FROM written w
JOIN pg_class c ON c.oid = w.oid AND c.relkind = 'r'
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class tc ON tc.oid = w.top
JOIN pg_namespace tn ON tn.oid = tc.relnamespace
JOIN pg_publication_tables pt ON (pt.schemaname, pt.tablename) IN ((n.nspname, c.relname), (tn.nspname, tc.relname))
JOIN pg_publication p ON p.pubname = pt.pubname AND p.{published}
WHERE c.relreplident <> 'f' AND NOT EXISTS (
    SELECT FROM pg_index i WHERE i.indrelid = c.oid AND (i.indisreplident OR (c.relreplident = 'd' AND i.indisprimary)))
GROUP BY w.position, tn.nspname, tc.relname ORDER BY w.position"""


class Change(NamedTuple):
    """A kind of write a publication may send: the flag of pg_publication that says so, and its words."""
    published: str
    words: str  # "<purpose> deletes rows of ..., whose deletes a publication sends"
    refused: str  # "the server refuses any delete from it"


DELETES = Change("pubdelete", "deletes", "any delete from it")
UPDATES = Change("pubupdate", "updates", "any update of it (an INSERT ... ON CONFLICT DO UPDATE too)")

# Why a table has no replica identity ("which has ..."), by its REPLICA IDENTITY setting (pg_class.relreplident)
WITHOUT_IDENTITY = {"d": "neither a primary key nor a replica identity",
                    "n": "REPLICA IDENTITY NOTHING",
                    "i": "a dropped index as its replica identity (REPLICA IDENTITY USING INDEX)"}


def require_identified(conn, tables: Sequence[Table], purpose: str, change: Change = DELETES) -> None:
    """Refuse ``purpose`` (which makes ``change`` to rows of ``tables``) when a publication publishes that change
    for one of them and it has no replica identity: the server would refuse the write."""
    if not tables:
        return
    names = [table.identifier().as_string(conn) for table in tables]
    found = conn.execute(sql.SQL(UNIDENTIFIED).format(published=sql.Identifier(change.published)),
                         {"tables": names}).fetchall()
    if not found:
        return
    named = ["%s (publication %s)" % (tables[position - 1].label, publications)
             for position, publications, *rest in found]
    _position, _publications, first, how_many, partitions, setting, keyed = found[0]
    cause = WITHOUT_IDENTITY[setting] + ("" if setting == "d" or keyed else " and no primary key")
    if partitions:
        cause = "%s, %s, with %s" % ("%d partitions" % how_many if how_many > 1 else "a partition",
                                     "%s and %d more" % (first, how_many - 1) if how_many > 1 else first, cause)
    others = ", and the same for each such partition" if how_many > 1 else ""
    if setting == "d" or not keyed:
        fix = "give it one (ALTER TABLE %s REPLICA IDENTITY FULL%s, or a primary key)" % (first, others)
    else:
        fix = "give it its primary key as one (ALTER TABLE %s REPLICA IDENTITY DEFAULT%s)" % (first, others)
    raise PhoenixError(
        "%s %s rows of %s, whose %s a publication sends to a change pipeline, and %s has %s, so the server refuses %s; "
        "%s, or take it out of the publication; nothing was written"
        % (purpose, change.words, ", ".join(named), change.words, "which" if len(found) == 1 else "the first of which",
           cause, change.refused, fix))
