"""The plain-dump check: only the meta-commands pg_dump writes pass; and the objects it reads on the way."""

from __future__ import annotations

import pytest

from ansible_collections.phoenix.platform.plugins.module_utils._backups.plain_dump import scan

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
    assert scan(lines(PG_DUMP_LIKE))[0] is None


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
    found = scan(lines(PG_DUMP_LIKE + attack))[0]
    assert found == (len(lines(PG_DUMP_LIKE)) + 1, command)


def test_a_command_hidden_after_copy_data_ends_is_found():
    text = "COPY public.t (a) FROM stdin;\nrow\n\\.\n\\! id\n"
    assert scan(lines(text))[0] == (4, "\\!")


WITH_OBJECTS = """--
-- Name: pgcrypto; Type: EXTENSION; Schema: -; Owner: -
--

CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA public;

--
-- Name: notes(); Type: FUNCTION; Schema: public; Owner: shop_owner
--

CREATE FUNCTION public.notes() RETURNS text LANGUAGE sql AS $$
-- Name: not_an_object; Type: EVENT TRIGGER; Schema: -; Owner: postgres
SELECT 'a comment inside a function body'
$$;

--
-- Name: order; Type: lines; Type: TABLE; Schema: public; Owner: shop_owner
--

CREATE TABLE public."order; Type: lines" (note text);

--
-- Data for Name: order; Type: lines; Type: TABLE DATA; Schema: public; Owner: shop_owner
--

COPY public."order; Type: lines" (note) FROM stdin;
-- Name: rows; Type: EVENT TRIGGER; Schema: -; Owner: postgres
\\.

--
-- Name: ddl_audit; Type: EVENT TRIGGER; Schema: -; Owner: postgres
--

CREATE EVENT TRIGGER ddl_audit ON ddl_command_end EXECUTE FUNCTION public.notes();
"""


def test_the_objects_are_read_as_pg_restore_lists_them_and_not_from_bodies_or_rows():
    assert scan(lines(WITH_OBJECTS)) == (None, [
        "1; 0 0 EXTENSION - pgcrypto \n",  # pg_restore --list gives an extension no owner
        "2; 0 0 FUNCTION public notes() shop_owner\n",
        "3; 0 0 TABLE public order; Type: lines shop_owner\n",
        "4; 0 0 TABLE DATA public order; Type: lines shop_owner\n",
        "5; 0 0 EVENT TRIGGER - ddl_audit postgres\n",
    ])
