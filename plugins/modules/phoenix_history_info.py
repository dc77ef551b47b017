#!/usr/bin/python
# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: phoenix_history_info
short_description: What an environment's records say about its past - health over time, last deploy, last drill
version_added: 0.2.0
description:
  - Reads the health checks recorded in C(phoenix.health_history) (by M(phoenix.platform.phoenix_health) with
    O(phoenix.platform.phoenix_health#module:record=true)), the newest C(deploy.*) event of the audit log, and the
    last restore drill from its metrics file (C(phoenix_<stage>_restore_drill.prom)), for status pages and reports.
  - The restore drill never writes to the environment's database, so its metrics file is where its outcome is kept.
options:
  history_days:
    description: How many days of recorded health checks to return (E(PHOENIX_METRICS_RETENTION)).
    type: int
    default: 30
  max_points:
    description: At most this many health points, evenly thinned (the newest is always kept).
    type: int
    default: 240
  metrics_dir:
    description: The metrics directory of the scheduled jobs (E(PHOENIX_METRICS_DIR)); without it, no C(last_drill).
    type: path
extends_documentation_fragment:
  - phoenix.platform.connection
  - phoenix.platform.stage
  - phoenix.platform.lock
  - phoenix.platform.attributes
  - phoenix.platform.attributes.INFO
author:
  - Phoenix Platform maintainers (@phoenix-platform)
"""

EXAMPLES = r"""
- name: History of BETA for its status page
  phoenix.platform.phoenix_history_info:
    history_days: "{{ phoenix_metrics_retention }}"
    metrics_dir: "{{ phoenix_metrics_dir }}"
  register: beta_history
"""

RETURN = r"""
history:
  description: Recorded health checks, oldest first, with C(at) (UTC, ISO 8601), C(epoch), C(status),
    C(response_ms), C(worlds_total) and C(worlds_active).
  returned: success
  type: list
  elements: dict
  sample: [{"at": "2026-11-23T08:00:00Z", "epoch": 1795420800.0, "status": "healthy", "response_ms": 3.2,
            "worlds_total": 4, "worlds_active": 4}]
last_deploy:
  description: The newest C(deploy.*) audit event (C(at), C(operation), C(actor), C(details)), or null.
  returned: success
  type: dict
last_drill:
  description: The last restore drill (C(at), C(succeeded), C(last_success_at), C(duration_seconds)), or null when
    none ran or O(metrics_dir) is not set.
  returned: success
  type: dict
"""

from pathlib import Path

from ansible.module_utils.basic import env_fallback

from ansible_collections.phoenix.platform.plugins.module_utils._core.argspec import LOCK_OPTIONS
from ansible_collections.phoenix.platform.plugins.module_utils._core.audit import last_event
from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._core.module import PhoenixModule
from ansible_collections.phoenix.platform.plugins.module_utils._health.history import health_history
from ansible_collections.phoenix.platform.plugins.module_utils._metrics.textfile import last_run


def run(module: PhoenixModule) -> dict:
    params = module.params
    for name in ("history_days", "max_points"):
        if params[name] < 1:
            raise PhoenixError("%s must be at least 1, got %d" % (name, params[name]))
    with module.fenced_connection(writes=False) as conn:
        history = health_history(conn, params["history_days"], params["max_points"])
        deploy = last_event(conn, "deploy.")
    # The drill never writes to the environment's database: its metrics file is its record.
    drill = last_run(Path(params["metrics_dir"]), module.stage, "restore_drill") if params["metrics_dir"] else None
    return {"changed": False, "history": history, "last_deploy": deploy, "last_drill": drill}


def main() -> None:
    module = PhoenixModule(
        argument_spec={
            "history_days": {"type": "int", "default": 30, "fallback": (env_fallback, ["PHOENIX_METRICS_RETENTION"])},
            "max_points": {"type": "int", "default": 240},
            "metrics_dir": {"type": "path", "fallback": (env_fallback, ["PHOENIX_METRICS_DIR"])},
            **LOCK_OPTIONS,
        },
    )
    module.run(run)


if __name__ == "__main__":
    main()
