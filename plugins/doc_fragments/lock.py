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
      - A module that writes rows in one transaction (worlds, world cleanup, transfers, seeds, users, schema
        migrations) waits as long at most for each row or table that transaction must lock and someone else holds
        (an application's open transaction, a migration, a transaction left prepared). It then fails naming who
        holds such a lock, and its transaction is rolled back, so nothing is written.
      - V(0) waits without end.
    type: int
    default: 60
"""
