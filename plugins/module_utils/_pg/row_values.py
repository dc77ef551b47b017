# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The server's error messages, without the values of the row that failed.

A not-null or check violation's detail lists every column of the failing row ("Failing row contains (...)"), a data
error ends with the value it could not take ('invalid input syntax for type integer: "..."'), and the context of a
failed COPY quotes its input line or value: a password hash, an email, whatever the row held. A task's output goes
to job logs that many read, so a message keeps what names the table, column, constraint and line, and leaves the
values out. A unique or foreign key's detail names only the key's values, which say what collides, and stays.
"""

from __future__ import annotations

import re

ROW_IN_DETAIL = frozenset({"23502", "23514"})  # not null, check (a partition's bounds too)
DATA_ERRORS = "22"  # the class of SQLSTATEs of a value a column cannot take
NOT_SHOWN = "(the row's values are not shown)"
HIDDEN_VALUE = '"..."'
QUOTED = re.compile('"[^"\n]*"|\u00ab[^\u00bb\n]*\u00bb|\u00bb[^\u00ab\n]*\u00ab|[\u201c\u201e][^\u201c\u201d\n]*[\u201c\u201d]')
# the quotes of the server's languages: straight double quotes, guillemets either way, curly quotes low or high
# what pg_restore and psql write of the server's error: "<program's words> ERROR:  <message>", then lines led by
# libpq's labels (in English: they run with LC_MESSAGES=C), among them "CONTEXT:  COPY t, line 2[, column c]: <input>"
LABELLED = re.compile(r"^(?:DETAIL|HINT|CONTEXT|QUERY|LOCATION):  ")
CONTEXT = "CONTEXT:  "
# a COPY's context: where (its table, line and column) and what it quotes; "COPY" is the statement's name, in any
# language
COPY_LOCATION = re.compile(r"^(COPY [^,\n]+, [^:\n]+)(?:: .*)?$")
KEY_DETAIL = "DETAIL:  Key ("  # a unique key's values (where the server speaks English): what collides


def server_message(exc: BaseException) -> str:
    """The message of the error ``exc``, a psycopg error's row values left out: a data error's message with its
    quoted values hidden, and the line of the COPY it came from (its detail and context quote the value again)."""
    message = str(exc).strip()
    diag = getattr(exc, "diag", None)
    if diag is None or not diag.message_primary:
        return message
    copy_lines = {line: copy.group(1) for line in (diag.context or "").splitlines()
                  if (copy := COPY_LOCATION.match(line))}
    if (exc.sqlstate or "").startswith(DATA_ERRORS):
        return "; ".join([QUOTED.sub(HIDDEN_VALUE, diag.message_primary), *copy_lines.values()])
    if diag.message_detail and exc.sqlstate in ROW_IN_DETAIL:
        message = message.replace(diag.message_detail, NOT_SHOWN)
    for line, kept in copy_lines.items():
        message = message.replace(line, kept)
    return message


def detail_without_row(exc) -> str:
    """What an integrity error ``exc`` met, in one line: a key's detail ("Key (email)=(...) already exists"), or
    the primary message where the detail would list the failing row."""
    detail = exc.diag.message_detail if exc.sqlstate not in ROW_IN_DETAIL else None
    return (detail or exc.diag.message_primary or str(exc)).strip().splitlines()[0]


def output_without_rows(output: str) -> str:
    """What pg_restore or psql wrote, the server's quotes of a failing row or COPY input left out, whatever language
    the server speaks: in the error of a COPY, its context's quote, its detail (but a unique key's, in English),
    and, when the context names a column, the values its message quotes."""
    lines = output.split("\n")
    for number, line in enumerate(lines):
        copy = COPY_LOCATION.match(line[len(CONTEXT):]) if line.startswith(CONTEXT) else None
        if not copy:
            continue
        lines[number] = CONTEXT + copy.group(1)
        first = number
        while first > 0 and LABELLED.match(lines[first - 1]):
            first -= 1
        for at in range(first, number):
            if lines[at].startswith("DETAIL:  ") and not lines[at].startswith(KEY_DETAIL):
                lines[at] = "DETAIL:  " + NOT_SHOWN
        if first > 0 and copy.group(1).count(", ") >= 2:  # "COPY t, line 2, column c": a value of that column
            words, severity, message = lines[first - 1].partition(":  ")  # libpq's "ERROR:  " (in any language)
            lines[first - 1] = words + severity + QUOTED.sub(HIDDEN_VALUE, message)
    return "\n".join(lines)
