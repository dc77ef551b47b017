#!/usr/bin/python
# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: phoenix_audit
short_description: Record an event in the Phoenix audit log
version_added: 0.1.0
description:
  - Writes one row to C(phoenix.audit_log) (operation, stage, actor, time, details), for events the other modules
    do not record themselves, such as a deploy and its outcome.
  - Every run records an event, so it always reports a change.
options:
  operation:
    description: What happened, for example C(deploy.succeeded).
    type: str
    required: true
  details:
    description: Free-form details (stored as jsonb). Never put secrets here.
    type: dict
    default: {}
extends_documentation_fragment:
  - phoenix.platform.connection
  - phoenix.platform.stage
  - phoenix.platform.lock
  - phoenix.platform.attributes
attributes:
  check_mode:
    support: full
    details: Writes nothing.
  diff_mode:
    support: none
author:
  - Phoenix Platform maintainers (@phoenix-platform)
"""

EXAMPLES = r"""
- name: Record the deploy
  phoenix.platform.phoenix_audit:
    operation: deploy.succeeded
    details: {version: "1.4.2", backup: "{{ pre_deploy.backup.id }}"}
"""

RETURN = r"""
operation:
  description: The operation recorded.
  returned: success
  type: str
"""

from ansible_collections.phoenix.platform.plugins.module_utils._core.argspec import LOCK_OPTIONS
from ansible_collections.phoenix.platform.plugins.module_utils._core.audit import record
from ansible_collections.phoenix.platform.plugins.module_utils._core.bookkeeping import applied_versions
from ansible_collections.phoenix.platform.plugins.module_utils._core.errors import PhoenixError
from ansible_collections.phoenix.platform.plugins.module_utils._core.module import PhoenixModule


def run(module: PhoenixModule) -> dict:
    if not module.params["operation"].strip():
        raise PhoenixError("operation must name what happened, e.g. deploy.succeeded")
    with module.fenced_connection() as conn:
        if not applied_versions(conn):
            raise PhoenixError("%s has no Phoenix schema (no audit log): run phoenix_schema first"
                               % module.connection_target().describe())
        if not module.check_mode:
            with conn.transaction():
                record(conn, module.params["operation"], module.stage, module.actor, module.params["details"])
    return {"changed": True, "operation": module.params["operation"]}


def main() -> None:
    module = PhoenixModule(
        argument_spec={
            "operation": {"type": "str", "required": True},
            "details": {"type": "dict", "default": {}},
            **LOCK_OPTIONS,
        },
    )
    module.run(run)


if __name__ == "__main__":
    main()
