# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A dump's extension entries and statements, told apart from everything else a dump may hold."""

from __future__ import annotations

import io

from ansible_collections.phoenix.platform.plugins.module_utils._backups.extensions import (
    dump_extensions,
    is_entry_of,
    is_statement_on,
)
from ansible_collections.phoenix.platform.plugins.module_utils._backups.plain_dump import without_definitions

TOC = [
    "; Archive created at 2026-12-05 13:21:31 UTC\n",
    "2; 3079 34898 EXTENSION - pgcrypto \n",
    "3629; 0 0 COMMENT - EXTENSION pgcrypto \n",
    "4; 3079 34899 EXTENSION - uuid-ossp \n",
    '3630; 0 0 COMMENT - EXTENSION "uuid-ossp" \n',
    "5; 3079 34900 EXTENSION - pgcrypto_extra \n",
    "215; 1259 16386 TABLE public pgcrypto postgres\n",
    "3600; 0 16386 TABLE DATA public pgcrypto postgres\n",
    '3601; 0 0 COMMENT public TABLE "EXTENSION - pgcrypto" postgres\n',
]


def test_the_dumps_extensions_are_read_from_its_table_of_contents():
    assert dump_extensions(TOC) == ["pgcrypto", "pgcrypto_extra", "uuid-ossp"]


def test_only_the_entries_of_the_installed_extensions_are_picked():
    picked = [line for line in TOC if is_entry_of(line, {"pgcrypto", "uuid-ossp"})]
    assert picked == TOC[1:5]  # not pgcrypto_extra, nor a table named pgcrypto or a comment that names one


def test_a_plain_dumps_statements_on_an_installed_extension_are_picked():
    installed = {"pgcrypto", "uuid-ossp"}
    assert is_statement_on("DROP EXTENSION IF EXISTS pgcrypto;\n", installed)
    assert is_statement_on('DROP EXTENSION IF EXISTS "uuid-ossp";\n', installed)
    assert is_statement_on("COMMENT ON EXTENSION pgcrypto IS 'cryptographic functions';\n", installed)
    assert not is_statement_on("DROP EXTENSION IF EXISTS pgcrypto_extra;\n", installed)
    assert not is_statement_on("CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA public;\n", installed)
    assert not is_statement_on("DROP TABLE IF EXISTS public.pgcrypto;\n", installed)


SCRIPT = b"""SET client_encoding = 'UTF8';
DROP EXTENSION IF EXISTS pgcrypto;
CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA public;
COMMENT ON EXTENSION pgcrypto IS 'cryptographic functions,
over two lines';
CREATE FUNCTION public.f() RETURNS void LANGUAGE sql AS $$
DROP EXTENSION IF EXISTS pgcrypto;
$$;
COMMENT ON TABLE public.t IS '
DROP EXTENSION IF EXISTS pgcrypto;';
COPY public.t (note) FROM stdin;
DROP EXTENSION IF EXISTS pgcrypto;
\\.

DROP EXTENSION IF EXISTS pgcrypto;
"""


def test_a_plain_dump_loses_only_the_statements_themselves():
    """Not the same text in a function's body, a string, the rows, or after the first rows."""
    kept = b"".join(without_definitions(io.BytesIO(SCRIPT), lambda line: is_statement_on(line, {"pgcrypto"})))
    lines = SCRIPT.splitlines(True)
    assert kept == b"".join(lines[:1] + lines[2:3] + lines[5:])
