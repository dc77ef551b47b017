#!/usr/bin/python
# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: phoenix_maintenance
short_description: Vacuum, reindex and reap idle transactions, planned from the server's statistics
version_added: 0.1.0
description:
  - Runs C(VACUUM (ANALYZE)) on the tables whose dead rows exceed 50 plus O(dead_ratio) of their live rows, and on
    tables with rows that were never analysed; a second run right after finds nothing to do.
  - Runs C(REINDEX TABLE CONCURRENTLY) on the tables in O(reindex), so they stay writable.
  - With O(terminate_idle_minutes), terminates sessions of this database left idle in a transaction for longer
    (they hold locks and keep old rows from being vacuumed). Never this session, another Phoenix job's (application
    name C(phoenix.platform.*)), or a replication connection. Sessions the role may not end (a superuser's, unless
    it is one; another role's, unless it is a member of it or of C(pg_signal_backend)) are left, with a warning.
  - Idle sessions are terminated first, then tables vacuumed, then reindexed. REINDEX CONCURRENTLY waits for every
    transaction that wrote to its table, and VACUUM cannot remove rows an old transaction may still see.
  - Each VACUUM and REINDEX waits O(lock_timeout) seconds at most for its table (a migration holds it, an
    application's open transaction wrote to it). A table it cannot have is left for the next run, with a warning
    naming who holds it, and listed in RV(skipped).
  - A REINDEX stopped that way leaves the new copy of an index (C(*_ccnew)) or, once swapped, the old one
    (C(*_ccold)), invalid. It is dropped at once (C(DROP INDEX CONCURRENTLY)) when it can be; otherwise the warning
    names it, and the next REINDEX of the table drops it first, as it would rebuild it too (RV(dropped_indexes)).
  - Always returns RV(report), the statistics-based bloat estimate of every table (dead rows and their share,
    table and index sizes, last vacuum and analyse). Index bloat proper would need the pgstattuple extension,
    which is not used.
  - In PROD anything but the report needs O(allow_prod). Actions are recorded in the audit log.
options:
  vacuum:
    description: Vacuum (with ANALYZE) the tables that need it.
    type: bool
    default: true
  dead_ratio:
    description: Share of a table's live rows its dead rows must exceed (beyond 50) for it to be vacuumed.
    type: float
    default: 0.1
  reindex:
    description: Tables to reindex, named as in RV(report) (C(Artifact), C(shop.orders)).
    type: list
    elements: str
    default: []
  terminate_idle_minutes:
    description:
      - Terminate sessions idle in a transaction for longer than this many minutes (V(0), any). Unset, none are.
      - Sessions this role may not end (a superuser's, unless it is one; another role's, unless it is a member of
        C(pg_signal_backend)) are left, with a warning naming them. Sessions of other roles whose state the role may
        not see (it needs C(pg_read_all_stats)) are counted in a warning.
    type: int
  allow_prod:
    description: Allow vacuuming, reindexing and terminating sessions in PROD (the report needs no permission).
    type: bool
    default: false
  lock_timeout:
    description:
      - Seconds each VACUUM and REINDEX waits at most for its table's lock, then leaves the table for the next run.
      - V(0) waits without end.
    type: int
    default: 60
extends_documentation_fragment:
  - phoenix.platform.connection
  - phoenix.platform.stage
  - phoenix.platform.attributes
attributes:
  check_mode:
    support: full
    details: Plans from the statistics and returns what would be vacuumed, reindexed and terminated.
  diff_mode:
    support: none
author:
  - Phoenix Platform maintainers (@phoenix-platform)
"""

EXAMPLES = r"""
- name: Weekly maintenance of BETA
  phoenix.platform.phoenix_maintenance:
    reindex: [Artifact]
    terminate_idle_minutes: 30

- name: Bloat report of PROD (no allow_prod needed)
  phoenix.platform.phoenix_maintenance:
    vacuum: false
  register: prod_bloat
"""

RETURN = r"""
report:
  description: Per table, C(rows), C(dead_rows), C(dead_ratio), C(size_bytes), C(index_bytes), C(last_vacuum) and
    C(last_analyze) (ISO times or null), after the run. The sizes of a table someone holds or awaits exclusively
    (a migration) are null, as reading them would wait for it.
  returned: always
  type: dict
vacuum:
  description: Tables vacuumed (or that would be, in check mode).
  returned: always
  type: list
  elements: str
reindex:
  description: Tables reindexed (or that would be).
  returned: always
  type: list
  elements: str
terminate:
  description: Sessions found idle in a transaction for too long, with C(pid), C(user), C(application) and
    C(idle_minutes).
  returned: always
  type: list
  elements: dict
terminated:
  description: Process ids of the sessions terminated.
  returned: always
  type: list
  elements: int
dropped_indexes:
  description: Invalid indexes that a REINDEX stopped half-way left (this run's or an earlier one's), dropped, as
    quoted schema-qualified names.
  returned: always
  type: list
  elements: str
skipped:
  description: Tables left for the next run, their lock not had within O(lock_timeout), with C(table), C(action)
    (V(vacuum) or V(reindex)) and C(held_by) (who held a lock on the table then, as words).
  returned: always
  type: list
  elements: dict
"""

from ansible_collections.phoenix.platform.plugins.module_utils._core.argspec import ALLOW_PROD_OPTIONS, LOCK_OPTIONS
from ansible_collections.phoenix.platform.plugins.module_utils._core.module import PhoenixModule
from ansible_collections.phoenix.platform.plugins.module_utils._maintenance.routine import MaintenanceRequest, maintain


def run(module: PhoenixModule) -> dict:
    params = module.params
    request = MaintenanceRequest(stage=module.stage, actor=module.actor, vacuum=params["vacuum"],
                                 dead_ratio=params["dead_ratio"], reindex=params["reindex"],
                                 terminate_idle_minutes=params["terminate_idle_minutes"], allow_prod=params["allow_prod"],
                                 lock_timeout=params["lock_timeout"])
    with module.fenced_connection() as conn:
        return maintain(conn, request, module.check_mode)


def main() -> None:
    module = PhoenixModule(
        argument_spec={
            "vacuum": {"type": "bool", "default": True},
            "dead_ratio": {"type": "float", "default": 0.1},
            "reindex": {"type": "list", "elements": "str", "default": []},
            "terminate_idle_minutes": {"type": "int"},
            **ALLOW_PROD_OPTIONS,
            **LOCK_OPTIONS,
        },
    )
    module.run(run)


if __name__ == "__main__":
    main()
