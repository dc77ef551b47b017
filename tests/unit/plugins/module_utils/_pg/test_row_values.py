# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What pg_restore and psql wrote as a COPY failed, as PostgreSQL 15's pg_restore and psql write it."""

from __future__ import annotations

from ansible_collections.phoenix.platform.plugins.module_utils._pg.binaries import tool_said
from ansible_collections.phoenix.platform.plugins.module_utils._pg.row_values import output_without_rows

HASH = "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"


def test_a_failing_rows_values_are_left_out_of_a_tools_words_and_what_names_it_stays():
    said = ('pg_restore: error: COPY failed for table "User": ERROR:  null value in column "email" of relation '
            '"User" violates not-null constraint\nDETAIL:  Failing row contains (1, null, %s).\n'
            'CONTEXT:  COPY User, line 1: "1\t\\N\t%s"\n' % (HASH, HASH))
    assert output_without_rows(said) == (
        'pg_restore: error: COPY failed for table "User": ERROR:  null value in column "email" of relation "User" '
        'violates not-null constraint\nDETAIL:  (the row\'s values are not shown)\nCONTEXT:  COPY User, line 1\n')
    assert HASH not in tool_said(said)


def test_a_value_a_column_cannot_take_is_hidden_in_the_error_and_its_context():
    said = ('psql:/tmp/restore.sql:27: ERROR:  invalid input syntax for type integer: "%s"\n'
            'CONTEXT:  COPY "User", line 3, column password: "%s"\n'
            'pg_restore: error: COPY failed for table "t": ERROR:  value "99999999999" is out of range for type '
            'integer\nCONTEXT:  COPY t, line 4, column n: "99999999999"\n' % (HASH, HASH))
    assert output_without_rows(said) == (
        'psql:/tmp/restore.sql:27: ERROR:  invalid input syntax for type integer: "..."\n'
        'CONTEXT:  COPY "User", line 3, column password\n'
        'pg_restore: error: COPY failed for table "t": ERROR:  value "..." is out of range for type integer\n'
        'CONTEXT:  COPY t, line 4, column n\n')


def test_other_errors_keep_their_names():
    said = ('pg_restore: error: could not execute query: ERROR:  relation "t" does not exist\n'
            'Command was: ALTER TABLE public.t OWNER TO shop;\n'
            'pg_restore: error: COPY failed for table "t": ERROR:  duplicate key value violates unique constraint '
            '"t_pkey"\nDETAIL:  Key (id)=(5) already exists.\n')
    assert output_without_rows(said) == said


def test_a_server_that_speaks_another_language_has_its_rows_left_out_too():
    """The server's words in German, libpq's labels in English (the programs run with LC_MESSAGES=C)."""
    said = ('pg_restore: error: COPY failed for table "User": FEHLER:  NULL-Wert in Spalte \u00bbemail\u00ab '
            'verletzt Not-Null-Constraint\nDETAIL:  Fehlgeschlagene Zeile enth\u00e4lt (1, null, %s).\n'
            'CONTEXT:  COPY User, Zeile 1: \u00bb1\t\\N\t%s\u00ab\n'
            'psql:/tmp/restore.sql:27: FEHLER:  ung\u00fcltige Eingabesyntax f\u00fcr Typ integer: \u00bb%s\u00ab\n'
            'CONTEXT:  COPY User, Zeile 3, Spalte n: \u00bb%s\u00ab\n' % (HASH, HASH, HASH, HASH))
    shown = output_without_rows(said)
    assert HASH not in shown
    assert shown == ('pg_restore: error: COPY failed for table "User": FEHLER:  NULL-Wert in Spalte \u00bbemail\u00ab '
                     'verletzt Not-Null-Constraint\nDETAIL:  (the row\'s values are not shown)\n'
                     'CONTEXT:  COPY User, Zeile 1\n'
                     'psql:/tmp/restore.sql:27: FEHLER:  ung\u00fcltige Eingabesyntax f\u00fcr Typ integer: "..."\n'
                     'CONTEXT:  COPY User, Zeile 3, Spalte n\n')
