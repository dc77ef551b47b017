"""How pg_restore's script of one transaction reaches psql: without the one setting an older server rejects, and
with what the restore runs first in that transaction."""

from __future__ import annotations

import io
import subprocess

import pytest

from ansible_collections.phoenix.platform.plugins.module_utils._backups.restore import (
    forgiving_rejected_settings,
    opened_script,
)
from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError

REJECTED = ('pg_restore: error: could not execute query: ERROR:  unrecognized configuration parameter '
            '"transaction_timeout"\nCommand was: SET transaction_timeout = 0;\n')


def finished(returncode: int, stderr: str) -> subprocess.CompletedProcess:
    return subprocess.CompletedProcess(["pg_restore"], returncode, "", stderr)


# the same, from a server whose lc_messages is German: pg_restore's own words stay English (libpq_environment)
REJECTED_IN_GERMAN = ('pg_restore: error: could not execute query: FEHLER:  unbekannter Konfigurationsparameter '
                      '\u00bbtransaction_timeout\u00ab\nCommand was: SET transaction_timeout = 0;\n')


@pytest.mark.parametrize("rejected", [REJECTED, REJECTED_IN_GERMAN], ids=["English", "German"])
def test_a_parallel_restore_whose_only_errors_are_the_rejected_setting_succeeded(rejected):
    for printed, counted in ((3, 3), (4, 2)):  # pg_restore -j 2 prints four and counts the leader's two
        forgiven = forgiving_rejected_settings(finished(1, rejected * printed + "pg_restore: warning: errors "
                                                        "ignored on restore: %d\n" % counted))
        assert forgiven.returncode == 0 and forgiven.stderr == ""


def test_messages_of_workers_printing_at_once_are_still_read():
    body = REJECTED[len("pg_restore: error: "):]
    interleaved = (REJECTED + "pg_restore:pg_restore: error: " + body + " error: " + body + REJECTED
                   + "pg_restore: warning: errors ignored on restore: 2\n")  # as pg_restore 17 -j 2 printed it
    assert forgiving_rejected_settings(finished(1, interleaved)).returncode == 0
    other = "pg_restore:pg_restore: error: " + body + ' error: could not execute query: ERROR:  relation "x" exists\n'
    assert forgiving_rejected_settings(finished(1, other + "pg_restore: warning: errors ignored on restore: 1\n")
                                       ).returncode == 1


def test_any_other_error_or_a_count_that_does_not_add_up_still_fails():
    other = ('pg_restore: error: could not execute query: ERROR:  relation "x" already exists\n'
             'Command was: CREATE TABLE x ();\n')
    for stderr in (REJECTED * 2 + other + "pg_restore: warning: errors ignored on restore: 3\n",
                   REJECTED * 2 + "pg_restore: warning: errors ignored on restore: 3\n",
                   REJECTED * 2 + "pg_restore: warning: errors ignored on restore: 0\n",
                   REJECTED + "pg_restore: error: could not read from input file: end of file\n"):
        assert forgiving_rejected_settings(finished(1, stderr)).returncode == 1, stderr


def test_only_the_preamble_loses_the_setting_and_rows_that_read_like_it_pass_untouched():
    script = (b"--\n\\restrict k\n\nBEGIN;\n\nSET statement_timeout = 0;\nSET transaction_timeout = 0;\n"
              b"SELECT pg_catalog.set_config('search_path', '', false);\n\nCREATE TABLE public.notes (body text);\n"
              b"COPY public.notes (body) FROM stdin;\nSET transaction_timeout = 0;\n\\.\n\nCOMMIT;\n")
    out = b"".join(opened_script(io.BytesIO(script), True, b""))
    assert out == script.replace(b"SET statement_timeout = 0;\nSET transaction_timeout = 0;\n",
                                 b"SET statement_timeout = 0;\n")
    assert out.count(b"SET transaction_timeout = 0;") == 1  # the row
    assert b"".join(opened_script(io.BytesIO(script), False, b"")) == script  # a server that knows the setting


OPENING = b"SELECT 'first';\n"


def test_the_opening_runs_right_after_begin_and_once():
    script = (b"--\n\\restrict k\nBEGIN;\nSET statement_timeout = 0;\nCREATE TABLE t (b text);\n"
              b"COPY t (b) FROM stdin;\nBEGIN;\n\\.\nCOMMIT;\n")
    out = b"".join(opened_script(io.BytesIO(script), False, OPENING))
    assert out == script.replace(b"BEGIN;\n", b"BEGIN;\n" + OPENING, 1)  # not after the row that reads like it


def test_a_script_that_runs_a_statement_before_its_transaction_gets_no_opening():
    script = b"--\nSET statement_timeout = 0;\nDROP TABLE t;\nBEGIN;\nCOMMIT;\n"
    lines = opened_script(io.BytesIO(script), False, OPENING)
    assert next(lines) == b"--\n" and next(lines) == b"SET statement_timeout = 0;\n"
    with pytest.raises(PhoenixError, match="DROP TABLE t"):
        next(lines)
