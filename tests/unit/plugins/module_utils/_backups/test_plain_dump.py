"""The plain-dump check: only the meta-commands pg_dump writes pass."""

from __future__ import annotations

import pytest

from ansible_collections.phoenix.platform.plugins.module_utils._backups.plain_dump import foreign_meta_command

PG_DUMP_LIKE = """\\restrict abc123
SET standard_conforming_strings = on;
CREATE FUNCTION f() RETURNS text AS $body$
SELECT '\\! not a command inside a dollar quote';
$body$ LANGUAGE sql;
COMMENT ON TABLE t IS 'a backslash \\! inside a string';
SELECT E'it''s \\' still \\! a string';
/* a comment /* nested \\! */ still comment */
-- \\! a line comment
CREATE TABLE "we\\!ird" (a text);
COPY public.t (a) FROM stdin;
\\N
\\! data, not a command
\\.
\\unrestrict abc123
"""


def lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def test_what_pg_dump_writes_passes():
    assert foreign_meta_command(lines(PG_DUMP_LIKE)) is None


@pytest.mark.parametrize("attack, command", [
    ("\\! id\n", "\\!"),
    ("SELECT 1; \\! id\n", "\\!"),
    ("   \\connect_x db\n", "\\connect_x"),
    ("SELECT 1 \\gexec\n", "\\gexec"),
    ("\\o | sh\n", "\\o"),
    ("SELECT 'closed' \\i /etc/x\n", "\\i"),
    ("SELECT 1; \\connect other\n", "\\connect"),
])
def test_any_other_meta_command_is_found(attack, command):
    found = foreign_meta_command(lines(PG_DUMP_LIKE + attack))
    assert found == (len(lines(PG_DUMP_LIKE)) + 1, command)


def test_a_command_hidden_after_copy_data_ends_is_found():
    text = "COPY public.t (a) FROM stdin;\nrow\n\\.\n\\! id\n"
    assert foreign_meta_command(lines(text)) == (4, "\\!")
