# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The maintained-columns option (MAINTAINED_OPTIONS in module_utils/_core/argspec.py).
    DOCUMENTATION = r"""
options:
  maintained_columns:
    description:
      - Columns the target database maintains itself, as C(table.column) with the table as the plan names it (for
        example C(store.customer.last_update), set by a BEFORE UPDATE trigger).
      - They are written when a row arrives, but never compared or updated afterwards. Without this, a trigger that
        rewrites a column on every update makes every later run find the row different and update it again.
      - A run that sees the target rewrite columns right after updating them names them in a warning.
    type: list
    elements: str
"""
