# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which PostgreSQL program is which version: asked once per file, asked again when the file is replaced."""

from __future__ import annotations

import os

from ansible_collections.phoenix.platform.plugins.module_utils._pg.binaries import program_major


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
