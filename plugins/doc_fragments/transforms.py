# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The column-transforms option (TRANSFORM_OPTIONS in module_utils/_core/argspec.py).
    DOCUMENTATION = r"""
options:
  column_transforms:
    description:
      - "Values of columns that must stay unique (a UNIQUE email) for rows copied under another world id, as
        C(table.column) mapped to a template with C({world}) (the target world id) and C({value}) (the original
        value), for example C({\"store.customer.email\": \"{world}.{value}\"})."
      - Text keys are re-keyed the same way (for example C(store.voucher.code) with C({value}__{world})); the
        columns referencing them follow.
      - Without it, a copy that would duplicate such a value fails, naming the constraint and this option; nothing
        is written. Rows kept under their own world id keep their values.
    type: dict
"""
