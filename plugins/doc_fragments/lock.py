# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The lock option group (LOCK_OPTIONS in module_utils/_core/argspec.py).
    DOCUMENTATION = r"""
options:
  lock_timeout:
    description:
      - Seconds to wait for another run holding the same advisory lock (overlapping scheduled jobs wait,
        then fail with a clear message rather than interleave).
    type: int
    default: 60
"""
