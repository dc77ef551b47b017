#!/usr/bin/python
# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: phoenix_health
short_description: Health of a Phoenix environment's database
version_added: 0.1.0
description:
  - Checks the database (connect and round-trip time), the schema (all migrations applied), the stage fence,
    the worlds (total, active, templates, expired, against O(max_worlds)), the backups (age of the newest
    backup under O(backup_dir)), the connections (use against C(max_connections), sessions idle in
    transaction for more than 10 minutes) and the replication slots (the database's logical ones, and the server's
    physical ones, as the disk they fill is this database's too).
  - A slot keeps the WAL its consumer has not read. One that holds more than the server's C(max_wal_size) (a
    change data capture pipeline stopped, or a standby gone, say) makes the environment V(degraded), and one that
    lost WAL its consumer still needed (C(max_slot_wal_keep_size)) V(unhealthy).
  - On a standby, the replication check also looks at its feed. A standby that receives no WAL from its primary
    (no WAL receiver streaming, while C(primary_conninfo) names a primary), or whose replay is paused, makes the
    environment V(degraded), as its rows, and the backups taken from it, fall behind the primary's. One set to apply
    them late (C(recovery_min_apply_delay), as a standby kept to undo mistakes is) stays V(healthy), by design, with
    a warning naming the delay.
  - The result has the shape of the Phoenix health API, C({status, timestamp, environment, checks}).
  - An unreachable database is a result (status V(unhealthy) with the reason); whether the task fails is
    decided by O(fail_on).
options:
  detail:
    description: Also return RV(metrics) (worlds by environment and category, rows and size per table).
    type: bool
    default: false
  fail_on:
    description: Fail the task when the status is this bad or worse; V(never) only reports.
    type: str
    choices: [unhealthy, degraded, never]
    default: unhealthy
  backup_dir:
    description:
      - Backup root; backups of this stage are the directories C(<backup_dir>/<STAGE>/*/) holding a C(manifest.json).
      - Falls back to the environment variable E(PHOENIX_BACKUP_DIR). Without it the backup check is V(unknown).
    type: path
  backup_max_age_hours:
    description: The backup check is V(degraded) when the newest backup is older than this.
    type: float
    default: 26
  max_worlds:
    description: The world check is V(degraded) above this many worlds. Falls back to E(PHOENIX_WORLD_MAX_PER_ENV).
    type: int
    default: 50
  record:
    description:
      - Store the result in C(phoenix.health_history) (reports C(changed)).
      - On a standby, which takes no writes, the result is reported and not stored, with a warning.
    type: bool
    default: false
  lock_timeout:
    description:
      - Seconds each check waits at most for a table it reads that someone holds so that no one may read it (a
        migration's C(ALTER TABLE), a C(VACUUM FULL), a transaction left prepared). The check is then V(unhealthy),
        naming the table and who holds it, since the application cannot read it either.
      - V(0) waits without end.
    type: int
    default: 10
  history_retention_days:
    description:
      - With O(record=true), delete the stored results older than this many days (E(PHOENIX_METRICS_RETENTION);
        inventory C(phoenix_metrics_retention)). Unset, history is kept.
    type: int
extends_documentation_fragment:
  - phoenix.platform.connection
  - phoenix.platform.stage
  - phoenix.platform.attributes
attributes:
  check_mode:
    support: full
    details: Read-only; with O(record=true) nothing is stored in check mode.
  diff_mode:
    support: none
author:
  - Phoenix Platform maintainers (@phoenix-platform)
"""

EXAMPLES = r"""
- name: Health of BETA, failing the play when it is unhealthy
  phoenix.platform.phoenix_health:
    db_url: "{{ phoenix_db_url }}"
    stage: BETA
    backup_dir: /var/backups/phoenix

- name: Report only, with metrics
  phoenix.platform.phoenix_health:
    stage: PROD
    detail: true
    fail_on: never
  register: prod_health
"""

RETURN = r"""
history_pruned:
  description: How many stored results older than O(history_retention_days) were deleted.
  returned: when a result was recorded and O(history_retention_days) is set
  type: int
status:
  description: Worst status among the checks (checks whose status is C(unknown) do not count).
  returned: always
  type: str
  sample: healthy
timestamp:
  description: When the checks ran, ISO 8601 UTC.
  returned: always
  type: str
  sample: "2026-11-22T12:00:00+00:00"
environment:
  description: The declared stage.
  returned: always
  type: str
  sample: BETA
checks:
  description:
    - One entry per check, each with C(status) and, when not healthy, C(message).
    - C(database) has C(responseTime) (ms, one round trip), C(connectTime) (ms), C(serverVersion) and C(standby) (true
      on a server in recovery, which takes no writes).
    - C(schema) has C(version), C(latest), C(pending); C(stage) has C(declared) and C(registered).
    - C(worlds) has C(total), C(active), C(templates), C(expired), C(max).
    - C(connections) has C(active), C(max), C(idleInTransaction); C(backups) has C(latestAgeHours) and C(maxAgeHours).
    - C(replication) has C(slots) and C(inactive) (the database's logical replication slots and the server's
      physical ones, and those no consumer reads now) and C(retainedBytes) (the most WAL one of them holds). On a
      standby it also has C(receiving) (its WAL receiver streams from the primary), C(replayPaused),
      C(replayBacklogBytes) (WAL received and not replayed yet) and C(applyDelaySeconds) (its
      C(recovery_min_apply_delay), 0 for none).
  returned: always
  type: dict
  sample: {"database": {"status": "healthy", "responseTime": 0.4}, "worlds": {"status": "healthy", "total": 3, "active": 2}}
metrics:
  description:
    - C(database) (C(responseTime), C(sizeBytes)), C(worlds) (C(byEnvironment), C(byCategory)) and C(tables)
      (per table C(rows) and C(sizeBytes); C(rowsEstimated) when the table is too large to count exactly).
  returned: when O(detail=true) and the database is reachable
  type: dict
  sample: {"tables": {"Artifact": {"rows": 156, "sizeBytes": 65536}}}
"""

from pathlib import Path

from ansible.module_utils.basic import env_fallback

from ansible_collections.phoenix.platform.plugins.module_utils._backups.store import list_backups
from ansible_collections.phoenix.platform.plugins.module_utils._core.module import PhoenixModule
from ansible_collections.phoenix.platform.plugins.module_utils._health.checks import (
    FAIL_ON,
    HealthRequest,
    collect,
    problems,
    should_fail,
)
from ansible_collections.phoenix.platform.plugins.module_utils._schema.migrations import LATEST_VERSION, pending


def run(module: PhoenixModule) -> dict:
    params = module.params
    request = HealthRequest(
        stage=module.stage,
        detail=params["detail"],
        backup_dir=params["backup_dir"],
        backup_max_age_hours=params["backup_max_age_hours"],
        max_worlds=params["max_worlds"],
        record=params["record"],
        check_mode=module.check_mode,
        backup_times=[b.created_at for b in list_backups(Path(params["backup_dir"]), module.stage)]
        if params["backup_dir"] else [],
        latest_version=LATEST_VERSION,
        pending_migrations=pending,
        history_retention_days=params["history_retention_days"],
        lock_timeout=params["lock_timeout"],
    )
    report, recorded = collect(module.connect, request)
    if should_fail(report["status"], params["fail_on"]):
        module.fail_json(
            msg="%s is %s (%s): %s" % (module.stage, report["status"], module.connection_target().describe(),
                                       "; ".join(problems(report["checks"]))),
            **report,
        )
    return dict(report, changed=recorded)


def main() -> None:
    module = PhoenixModule(
        argument_spec={
            "detail": {"type": "bool", "default": False},
            "fail_on": {"type": "str", "choices": list(FAIL_ON), "default": "unhealthy"},
            "backup_dir": {"type": "path", "fallback": (env_fallback, ["PHOENIX_BACKUP_DIR"])},
            "backup_max_age_hours": {"type": "float", "default": 26},
            "max_worlds": {"type": "int", "default": 50, "fallback": (env_fallback, ["PHOENIX_WORLD_MAX_PER_ENV"])},
            "record": {"type": "bool", "default": False},
            "history_retention_days": {"type": "int"},
            "lock_timeout": {"type": "int", "default": 10},
        },
    )
    module.run(run)


if __name__ == "__main__":
    main()
