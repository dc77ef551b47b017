# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rows that point at large objects (their OIDs, in the columns ``catalog.Table.large_objects`` names), which a
copy of rows to another database does not carry: there, the same OID names another large object, or none."""

from __future__ import annotations

from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError

AS_NULL = 'send the column as NULL (mask {"<table>.<column>": "null"})'


def refuse_references(found: list[str], rows: str, copy: str, there: str, leave_out: str | None = None) -> None:
    """Fail, when ``found`` names columns (with their large objects), a copy of ``rows`` (which ``copy`` does) that
    would point ``there`` at other large objects; the way out is to send such columns as NULL, or to leave their
    tables out with the option ``leave_out``."""
    if found:
        fix = "leave those tables out (%s), or %s" % (leave_out, AS_NULL) if leave_out else AS_NULL
        raise PhoenixError("%s point at large objects: %s. %s rows, not large objects, so %s they would point at "
                           "another large object of the same OID, or at none; nothing was written: %s"
                           % (rows, "; ".join(found), copy, there, fix))
