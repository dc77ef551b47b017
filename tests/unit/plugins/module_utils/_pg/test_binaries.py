# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which PostgreSQL program is which version: asked once per file, asked again when the file is replaced; and what a
program said as it failed, shortened for a message."""

from __future__ import annotations

import os

from ansible_collections.phoenix.platform.plugins.module_utils._pg.binaries import english_locale, program_major, tool_said


def write_program(path, version: str, runs) -> None:
    """A program that reports ``version`` and leaves a line in ``runs`` each time it is run."""
    new = path.with_suffix(".new")
    new.write_text("#!/bin/sh\necho run >> %s\necho '%s'\n" % (runs, version))
    new.chmod(0o755)
    os.replace(new, path)  # as a package upgrade does: a new file under the old name


def test_a_program_is_asked_its_version_once_and_again_once_replaced(tmp_path):
    program, runs = tmp_path / "pg_dump", tmp_path / "runs"
    write_program(program, "pg_dump (PostgreSQL) 15.4", runs)
    assert [program_major(program) for time in range(3)] == [15, 15, 15]
    assert runs.read_text().count("run") == 1
    write_program(program, "pg_dump (PostgreSQL) 17.2", runs)
    assert program_major(program) == 17
    assert runs.read_text().count("run") == 2


def test_a_missing_program_reports_no_version(tmp_path):
    assert program_major(tmp_path / "absent") == 0


def test_a_tools_quoted_statement_is_cut_so_that_its_error_stays_in_the_message():
    """pg_dump 16 and later lock a batch of tables in one LOCK TABLE, and quote it whole after its error."""
    batch = ", ".join("tenant_%03d.t%d" % (tenant, table) for tenant in range(150) for table in range(10))
    said = ("pg_dump: error: query failed: ERROR:  out of shared memory\nHINT:  You might need to increase "
            "max_locks_per_transaction.\npg_dump: detail: Query was: LOCK TABLE %s IN ACCESS SHARE MODE\n" % batch)
    shown = tool_said(said)
    assert shown.startswith("pg_dump: error: query failed: ERROR:  out of shared memory\nHINT:  You might need to "
                            "increase max_locks_per_transaction.\npg_dump: detail: Query was: LOCK TABLE "
                            "tenant_000.t0, tenant_000.t1, "), shown
    assert shown.endswith(" ... (%d characters)" % len("LOCK TABLE %s IN ACCESS SHARE MODE" % batch)), shown
    assert len(shown) < 800


def test_a_multi_line_command_is_cut_up_to_the_tools_next_line_and_short_ones_are_left_whole():
    body = "\n".join("    PERFORM step_%d();" % step for step in range(100))
    said = ("pg_restore: from TOC entry 215; 1255 16390 FUNCTION public.nightly() shop_owner\n"
            "pg_restore: error: could not execute query: ERROR:  permission denied for schema public\n"
            "Command was: CREATE FUNCTION public.nightly() RETURNS void AS $$\nBEGIN\n%s\nEND $$ LANGUAGE plpgsql;\n"
            "pg_restore: error: could not execute query: ERROR:  relation \"t\" does not exist\n"
            "Command was: ALTER TABLE public.t OWNER TO shop_owner;\n" % body)
    shown = tool_said(said)
    assert "permission denied for schema public\nCommand was: CREATE FUNCTION public.nightly() RETURNS void" in shown
    assert "PERFORM step_99" not in shown and " characters)\npg_restore: error: could not execute query" in shown
    assert shown.endswith("Command was: ALTER TABLE public.t OWNER TO shop_owner;")
    assert tool_said("pg_dump: error: connection to server failed  \n") == "pg_dump: error: connection to server failed"


def test_a_table_name_that_breaks_the_quoted_statement_does_not_push_the_error_out():
    """A name with a line break that looks like the program's next line ends the quoted statement early: the rest,
    one long line, is cut all the same."""
    names = ['"tenant_%03d"."t%d"' % (tenant, table) for tenant in range(150) for table in range(10)]
    names.insert(3, '"tenant_000"."evil\npg_dump: error: all good"')
    said = ("pg_dump: error: query failed: ERROR:  out of shared memory\nHINT:  You might need to increase "
            "max_locks_per_transaction.\npg_dump: detail: Query was: LOCK TABLE %s IN ACCESS SHARE MODE\n"
            % ", ".join(names))
    shown = tool_said(said)
    assert shown.startswith("pg_dump: error: query failed: ERROR:  out of shared memory\n"), shown
    assert len(shown) < 800 and shown.count(" characters)") == 1, shown


def test_a_locale_is_english_by_its_language_not_its_first_letter():
    english = ["", "C", "C.UTF-8", "POSIX", "en_US.UTF-8", "en_GB", "en", "English_United States.1252"]
    other = ["de_DE.UTF-8", "ca_ES.UTF-8", "cs_CZ.UTF-8", "cy_GB", "fr_FR", "pt_BR.utf8", "German_Germany.1252"]
    assert [name for name in english + other if english_locale(name)] == english
