# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rows of one big table, loaded over several connections at once.

``pg_restore --jobs`` gives each table one connection, so a database whose rows sit mostly in one table restores
no faster in parallel than in one transaction: one backend parses every row. A swap restores into a database
nobody sees until it is verified, so there a big table's rows may come in pieces: pg_restore writes the table's
COPY as a script, and its rows, cut between two lines, are spread over ``jobs`` COPYs into the same table. In
COPY's text format a row is one line (newlines inside values are escaped) and the data ends at a line ``\\.``.
Each COPY commits on its own: a failure leaves the new database part-loaded, and the swap drops it.

Where this process can decompress the table's data file itself (see ``compression.rows_reader``), pg_restore
gives only the COPY statement and its settings, and the rows come from the file: no second process decompresses
them and writes them through a pipe for this one to read again.
"""

from __future__ import annotations

import fcntl
import queue
import re
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Callable, ContextManager, Iterable, Iterator

from ansible_collections.phoenix.platform.plugins.module_utils._backups.dump import use_list
from ansible_collections.phoenix.platform.plugins.module_utils._core.connection import open_session
from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._pg.binaries import tool_said
from ansible_collections.phoenix.platform.plugins.module_utils._pg.catalog import table_label
from ansible_collections.phoenix.platform.plugins.module_utils._pg.row_values import server_message

try:
    from psycopg import sql
except ImportError:  # PhoenixModule reports the missing library before any of this runs
    pass

BLOCK = 1 << 20
# pg_restore writes a few short lines after the rows (a comment, psql's \\unrestrict): the line that ends the data
# ends within the stream's last HELD bytes. (Searching every block for it took half the relay's CPU time.)
HELD = 64 << 10
QUEUED_BLOCKS = 2  # per connection: memory stays flat whatever the table's size
END_OF_DATA = b"\\.\n"
NEWLINE = ord("\n")
# What pg_restore writes before a table's COPY: comments, psql's \restrict, and the session's settings
COPY_STATEMENT = re.compile(rb"^(COPY .+ FROM stdin);\n$")
SESSION_SETTING = re.compile(rb"^(SET [a-z_]+ = .*|SELECT pg_catalog\.set_config\(.*\));\n$")
SKIPPED = re.compile(rb"^(--.*|\\restrict .*|\s*)\n$")
IDENTIFIER = rb'(?:"(?:[^"]|"")+"|[^\s".(]+)'
COPY_TARGET = re.compile(rb"^COPY (%s\.%s)[ ;]" % (IDENTIFIER, IDENTIFIER))  # pg_dump names a table with its schema
RowsOpener = Callable[[], ContextManager[Iterator[bytes]]]  # opens a table's rows, read in blocks in this process


def load_split(pg_restore: Path, dump: list[str], entry: str, conninfo: str, jobs: int,
               skip_setting: re.Pattern | None = None, rows: RowsOpener | None = None,
               settled: Callable[[], None] = lambda: None) -> tuple[str, int] | None:
    """Load the rows of the table data ``entry`` (a line of ``pg_restore --list``) of ``dump`` into the database of
    ``conninfo`` over ``jobs`` connections. ``skip_setting`` matches session settings the server would reject.
    ``rows()`` opens the rows in blocks, read from the data file in this process; without it pg_restore writes
    them. Returns the table's label and the rows its COPYs loaded (the server's count), when the rows went into that
    table itself; None when they went through a partitioned table. ``settled()`` runs before the table is looked up,
    on a connection after the COPYs' (see ``connection_room``)."""
    with use_list([entry]) as selection, tempfile.TemporaryFile() as errors:
        process = subprocess.Popen([str(pg_restore), "--use-list", selection, "--file", "-", *dump],
                                   stdout=subprocess.PIPE, stderr=errors, bufsize=BLOCK)
        _widen(process.stdout.fileno())
        try:
            statement, settings = _preamble(process.stdout, entry)
            settings = [s for s in settings if not (skip_setting and skip_setting.match(s))]
            copies = _Copies(conninfo, settings, statement, jobs)
            if rows is None:
                _spread(iter(lambda: process.stdout.read1(BLOCK), b""), copies)
            else:
                process.kill()  # it has written all that is needed of it
                with rows() as blocks:
                    _spread(blocks, copies)
        except BaseException:
            process.kill()
            raise
        finally:
            process.stdout.close()
            process.wait()
        if process.returncode != 0 and rows is None:
            errors.seek(0)
            raise PhoenixError("pg_restore failed (exit %d) writing the rows of %s: %s" % (
                process.returncode, entry.strip(), tool_said(errors.read().decode(errors="replace"))))
    settled()
    table = _loaded_table(conninfo, statement)
    return (table, sum(copies.counts)) if table else None


def _loaded_table(conninfo: str, statement: bytes) -> str | None:
    """The label of the table the COPY ``statement`` writes to, if it is a table whose rows are counted as its own
    (not a partitioned table, nor a partition: those are counted with their partitioned table)."""
    target = COPY_TARGET.match(statement)
    if not target:
        return None
    with open_session(conninfo) as conn:
        found = conn.execute(sql.SQL(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.oid = to_regclass(%s) AND c.relkind = 'r' AND NOT c.relispartition"),
            [target.group(1).decode(conn.info.encoding)]).fetchone()
    return table_label(*found) if found else None


def _widen(pipe: int) -> None:
    """A pipe of BLOCK bytes instead of 64 KiB: 16 times fewer wake-ups of the reader (Linux; elsewhere as is)."""
    try:
        fcntl.fcntl(pipe, getattr(fcntl, "F_SETPIPE_SZ", 1031), BLOCK)
    except OSError:  # above the system's pipe-max-size
        pass


def _preamble(script: Iterable[bytes], entry: str) -> tuple[bytes, list[bytes]]:
    """The COPY statement of the script and the settings before it; anything else there is not a table's COPY."""
    settings = []
    for line in script:
        copy = COPY_STATEMENT.match(line)
        if copy:
            return copy.group(1), settings
        setting = SESSION_SETTING.match(line)
        if setting:
            settings.append(setting.group(1))
        elif not SKIPPED.match(line):
            raise PhoenixError("the dump's rows of %s are not one COPY (%r): they cannot be loaded in pieces"
                               % (entry.strip(), line[:80]))
    raise PhoenixError("the dump holds no rows for %s" % entry.strip())


def _spread(blocks: Iterable[bytes], copies: _Copies) -> None:
    """Give the rows, in ``blocks`` cut again after a line, to the COPYs, up to the line that ends the data. The
    stream's last HELD bytes are held back until it ends, and only they are searched for that line."""
    pending = b""  # the held-back end of what was read, from the start of a line
    end = None
    try:
        for block in blocks:
            rows = pending + block
            cut = rows.rfind(b"\n", 0, max(len(rows) - HELD, 0)) + 1
            if cut:
                copies.put(memoryview(rows)[:cut])
            pending = rows[cut:]
            if copies.failures:
                break
        else:
            end = _end_of_data(pending)
            if end:
                copies.put(pending[:end])
    finally:
        copies.close()
    if copies.failures:
        raise PhoenixError("loading rows failed: %s" % server_message(copies.failures[0])) from None
    if end is None:
        raise PhoenixError("the dump's rows end before the line that ends a COPY: it was cut short")


def _end_of_data(rows: bytes) -> int | None:
    """Where the rows end in ``rows`` (which starts a line): at a line ``\\.``, if there is one."""
    found = rows.find(END_OF_DATA)
    while found > 0 and rows[found - 1] != NEWLINE:
        found = rows.find(END_OF_DATA, found + 1)
    return None if found < 0 else found


class _Copies:
    """``jobs`` COPYs into one table, each on a connection and a thread of its own, taking blocks of whole rows from
    one queue: a COPY held up (waiting for the lock that extends the table, say) leaves the next blocks to the
    others. After a failure a thread takes the blocks still coming without loading them, so the feeder never
    waits on it."""

    def __init__(self, conninfo: str, settings: list[bytes], statement: bytes, jobs: int) -> None:
        self.failures: list[BaseException] = []
        self.counts: list[int] = []  # rows loaded by each COPY, as the server counted them when it ended
        self._blocks: queue.Queue = queue.Queue(QUEUED_BLOCKS * jobs)
        self._threads = [threading.Thread(target=self._load, args=(conninfo, settings, statement), daemon=True)
                         for connection in range(jobs)]
        for thread in self._threads:
            thread.start()

    def put(self, block: bytes) -> None:
        self._blocks.put(block)

    def close(self) -> None:
        for thread in self._threads:  # one end for each
            self._blocks.put(None)
        for thread in self._threads:
            thread.join()

    def _load(self, conninfo: str, settings: list[bytes], statement: bytes) -> None:
        blocks = iter(self._blocks.get, None)
        try:
            with open_session(conninfo, autocommit=True) as conn:
                # the statements pg_restore itself would send, the dump's own text, in the encoding it sets
                for setting in settings:
                    conn.execute(sql.SQL(setting.decode(conn.info.encoding)))
                cursor = conn.cursor()
                with cursor.copy(sql.SQL(statement.decode(conn.info.encoding))) as copy:
                    for block in blocks:
                        copy.write(block)
                self.counts.append(cursor.rowcount)
        except BaseException as exc:  # a server error may surface only when the COPY ends
            self.failures.append(exc)
        for unloaded in blocks:
            del unloaded
