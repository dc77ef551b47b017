# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying the database.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
  action_group:
    description: Use C(group/phoenix.platform.phoenix) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - phoenix.platform.phoenix
"""

    INFO = r"""
attributes:
  check_mode:
    support: full
    details: Read-only.
  diff_mode:
    support: none
"""
