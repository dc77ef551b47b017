# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checking a plain-format dump before psql runs it: no meta-command pg_dump would not write.

psql runs ``\\! cmd`` (a shell command), ``\\i``, ``\\o`` … wherever a backslash stands outside quotes,
comments and COPY data. pg_dump itself writes only ``\\connect``, ``\\restrict`` and ``\\unrestrict`` at
the start of a line, and ``\\.`` to end COPY data. This scanner follows psql's lexical states line by
line (strings, quoted identifiers, dollar quotes, nested comments, COPY … FROM stdin blocks) and reports
the first backslash that would be any other command.

The same pass reads the dump's objects from the comment pg_dump writes before each (``-- Name: orders; Type: TABLE;
Schema: public; Owner: shop_owner``), the words ``pg_restore --list`` gives an archive's: the checks a restore makes
before anything is written read them as they read an archive's table of contents. A plain dump holds no catalog or
OID of an object, so its entries carry 0 for both.
"""

from __future__ import annotations

import io
import re
from typing import BinaryIO, Callable, Iterable, Iterator

ALLOWED_COMMANDS = ("connect", "restrict", "unrestrict")
_SQL_TOKEN = re.compile(r"--|/\*|'|\"|\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$|\\")
_COPY_FROM_STDIN = re.compile(r"^COPY .+ FROM stdin;\s*$")
_COPY_END = re.compile(r"^\\\.\r?\n?$")
_COMMAND = re.compile(r"[A-Za-z0-9_!?]+|.", re.S)
_IDENTIFIER_CHAR = re.compile(r"[A-Za-z0-9_$]")
# pg_dump's comment before an object ("Data for Name" before a table's rows); a name is the whole text up to the last
# "; Type: " that the other fields follow
_OBJECT_HEADER = re.compile(r"^-- (?:Data for )?Name: (.*); Type: (.*?); Schema: (.*?); Owner: (.*?)\r?\n?$")


class _Scanner:
    def __init__(self) -> None:
        self.state = "sql"  # sql, copy, string, identifier, dollar, comment
        self.escapes = False  # inside E'...' strings a backslash escapes the next character
        self.tag = ""
        self.depth = 0

    def line(self, text: str) -> str | None:
        """Scan one line; returns the offending meta-command, if any."""
        if self.state == "copy":
            if _COPY_END.match(text):
                self.state = "sql"
            return None
        starts_in_sql = self.state == "sql"
        pos = 0
        while pos < len(text):
            if self.state == "sql":
                match = _SQL_TOKEN.search(text, pos)
                if not match:
                    break
                token, pos = match.group(), match.end()
                if token == "--":
                    break
                if token == "/*":
                    self.state, self.depth = "comment", 1
                elif token == "'":
                    prefix = text[match.start() - 1:match.start()] if match.start() else ""
                    before = text[match.start() - 2:match.start() - 1] if match.start() > 1 else ""
                    self.escapes = prefix in ("E", "e") and not _IDENTIFIER_CHAR.match(before or " ")
                    self.state = "string"
                elif token == '"':
                    self.state = "identifier"
                elif token.startswith("$"):
                    if match.start() and _IDENTIFIER_CHAR.match(text[match.start() - 1]):
                        pos = match.start() + 1  # part of an identifier such as a$b, not a dollar quote
                        continue
                    self.state, self.tag = "dollar", token
                else:  # a backslash: psql would run a meta-command here
                    command = _COMMAND.match(text, pos).group() if pos < len(text) else ""
                    if command in ALLOWED_COMMANDS and not text[:match.start()].strip():
                        break  # the rest of the line is the command's argument
                    return "\\" + command
            elif self.state == "string":
                pos = self._close_quote(text, pos, "'", self.escapes)
            elif self.state == "identifier":
                pos = self._close_quote(text, pos, '"', False)
            elif self.state == "dollar":
                end = text.find(self.tag, pos)
                if end < 0:
                    break
                self.state, pos = "sql", end + len(self.tag)
            else:  # a comment, which nests
                opened, closed = text.find("/*", pos), text.find("*/", pos)
                if closed < 0 and opened < 0:
                    break
                if 0 <= opened < closed or closed < 0:
                    self.depth, pos = self.depth + 1, opened + 2
                else:
                    self.depth, pos = self.depth - 1, closed + 2
                    if not self.depth:
                        self.state = "sql"
        if starts_in_sql and self.state == "sql" and _COPY_FROM_STDIN.match(text):
            self.state = "copy"
        return None

    def _close_quote(self, text: str, pos: int, quote: str, escapes: bool) -> int:
        while pos < len(text):
            char = text[pos]
            if escapes and char == "\\":
                pos += 2
            elif char == quote:
                if text[pos + 1:pos + 2] == quote:  # a doubled quote stays inside
                    pos += 2
                else:
                    self.state = "sql"
                    return pos + 1
            else:
                pos += 1
        return pos


def scan(lines: Iterable[str]) -> tuple[tuple[int, str] | None, list[str]]:
    """``(line number, command)`` of the first meta-command pg_dump would not write (or None), and the objects of
    the script up to there, as lines of ``pg_restore --list`` (see above)."""
    scanner, entries = _Scanner(), []
    for number, text in enumerate(lines, start=1):
        if scanner.state == "copy" and not text.startswith("\\."):  # a row: most lines, so the quickest way
            continue
        if text.startswith("-- ") and scanner.state == "sql":
            header = _OBJECT_HEADER.match(text)
            if header:
                name, kind, schema, owner = header.groups()
                entries.append("%d; 0 0 %s %s %s %s\n" % (len(entries) + 1, kind, schema, name,
                                                          "" if owner == "-" else owner))
        found = scanner.line(text)
        if found:
            return (number, found), entries
    return None, entries


def read_plain_dump(script: BinaryIO, name: str) -> tuple[str | None, list[str]]:
    """A problem with the plain dump ``script`` (named ``name``), or None when psql may run it; and its objects, as
    lines of ``pg_restore --list``."""
    text = io.TextIOWrapper(script, encoding="utf-8", errors="replace", newline="")
    try:
        found, entries = scan(text)
    finally:
        text.detach()  # the stream is the caller's to close
    if found:
        return "%s line %d holds the psql meta-command %s, which pg_dump never writes" % (name, *found), entries
    return None, entries


def without_definitions(script: BinaryIO, left_out: Callable[[str], bool]) -> Iterator[bytes]:
    """The plain dump ``script``, less the statements whose first line ``left_out`` picks among its definitions
    (lines that start outside any string, comment or rows, before the first rows). A statement left out ends with
    the line where its strings close. From the first rows on, the script is passed on as it is, in blocks."""
    scanner = _Scanner()
    leaving = False
    for line in script:
        text = line.decode("latin-1")  # pg_dump writes an encoding whose ASCII bytes are ASCII characters
        starts_in_sql = scanner.state == "sql"
        scanner.line(text)
        if leaving or (starts_in_sql and left_out(text)):
            leaving = scanner.state != "sql"
            continue
        yield line
        if scanner.state == "copy":
            break
    yield from iter(lambda: script.read(1 << 20), b"")
