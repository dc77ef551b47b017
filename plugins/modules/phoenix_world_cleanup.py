#!/usr/bin/python
# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: phoenix_world_cleanup
short_description: Delete or deactivate expired worlds
version_added: 0.1.0
description:
  - A world expires C(cleanupAfterHours) after its creation (or after O(max_age_hours)). Templates never expire.
  - Expired worlds with C(autoCleanup) are deleted with all their rows; the others are marked inactive.
    An expired world that a remaining world lists in its dependencies is deactivated instead, with a warning.
  - Set-based (one statement per table for all expired worlds) and one transaction.
options:
  max_age_hours:
    description: Treat worlds older than this as expired, whatever their own C(cleanupAfterHours).
    type: int
  allow_prod:
    description: Allow deleting worlds in PROD.
    type: bool
    default: false
extends_documentation_fragment:
  - phoenix.platform.connection
  - phoenix.platform.stage
  - phoenix.platform.lock
  - phoenix.platform.attributes
attributes:
  check_mode:
    support: full
    details: Lists what would be removed and deactivated, and the rows per table that would be deleted. It deletes
      them and rolls them back, so it fails where the run would (a trigger that keeps a row, a row outside the
      worlds that refers to one of theirs).
  diff_mode:
    support: full
    details: Shows the worlds the cleanup touches, active or inactive before, and after (removed worlds are absent).
author:
  - Phoenix Platform maintainers (@phoenix-platform)
"""

EXAMPLES = r"""
- name: Clean up expired worlds
  phoenix.platform.phoenix_world_cleanup:
  register: cleanup

- name: Everything older than a week goes, whatever its TTL
  phoenix.platform.phoenix_world_cleanup:
    max_age_hours: 168
"""

RETURN = r"""
removed:
  description: Worlds deleted with their rows.
  returned: success
  type: list
  elements: str
  sample: [UC_TESTING_OLD]
deactivated:
  description: Expired worlds marked inactive.
  returned: success
  type: list
  elements: str
rows_deleted:
  description: Rows deleted per table.
  returned: success
  type: dict
  sample: {"Artifact": 12, "User": 5}
"""

from ansible_collections.phoenix.platform.plugins.module_utils._core.argspec import ALLOW_PROD_OPTIONS, LOCK_OPTIONS
from ansible_collections.phoenix.platform.plugins.module_utils._core.module import PhoenixModule
from ansible_collections.phoenix.platform.plugins.module_utils._worlds.cleanup import cleanup


def run(module: PhoenixModule) -> dict:
    with module.fenced_connection() as conn:
        return cleanup(conn, module.stage, module.actor, module.params["max_age_hours"], module.params["allow_prod"],
                       module.params["lock_timeout"], module.check_mode, module.connection_target().describe())


def main() -> None:
    module = PhoenixModule(
        argument_spec={
            "max_age_hours": {"type": "int"},
            **ALLOW_PROD_OPTIONS,
            **LOCK_OPTIONS,
        },
    )
    module.run(run)


if __name__ == "__main__":
    main()
