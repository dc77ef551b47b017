# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The lock option group (LOCK_OPTIONS in module_utils/_core/argspec.py).
    DOCUMENTATION = r"""
options:
  lock_timeout:
    description:
      - Seconds the run waits at most for each lock someone else holds. It then fails naming who holds such a lock,
        and its transaction is rolled back, so nothing is written.
      - That covers another Phoenix run holding the same advisory lock (overlapping scheduled jobs wait, then fail,
        rather than interleave); each row or table the transaction of a module that writes rows (worlds, world
        cleanup, transfers, seeds, users, schema migrations) must lock, held by an application's open transaction or
        a transaction left prepared; and each table the run reads that someone holds so that no one may read it (a
        migration's C(ALTER TABLE), a C(VACUUM FULL)).
      - V(0) waits without end.
    type: int
    default: 60
"""
