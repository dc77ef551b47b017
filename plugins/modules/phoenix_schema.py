#!/usr/bin/python
# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: phoenix_schema
short_description: Apply Phoenix migrations and register the stage fence
version_added: 0.1.0
description:
  - Applies the pending migrations shipped with the collection, in version order, under an advisory lock
    and in one transaction, so a killed run leaves the database at the old or the new version.
  - Creates Phoenix's own tables in schema C(phoenix) (migrations, stage fence, audit log, health history),
    the C("WorldMeta") table and, with O(app_schema=reference), the reference application tables.
  - The first run registers O(stage) in the database. A later run that declares another stage fails before
    writing anything, naming both stages.
options:
  state:
    description: Only V(present) (all wanted migrations applied) is supported.
    type: str
    choices: [present]
    default: present
  target_version:
    description: Apply migrations up to this version only. Downgrades are refused.
    type: int
  app_schema:
    description:
      - V(reference) also creates the reference application tables (C("User"), C("Chat"), C("Artifact") …).
      - V(none) is for an application that owns its tables; only schema C(phoenix) and, unless the application
        has one, C("WorldMeta") are created.
      - An application's own C("WorldMeta") (found through the search path) is adopted, never altered. It must
        have every column Phoenix reads and writes (id, name, description, environment, category, isActive,
        isTemplate, autoCleanup, cleanupAfterHours, isolationLevel, tags, dependencies, settings, version,
        usageCount, lastUsedAt, createdBy, createdAt, updatedAt); a table that lacks some fails with their names.
        World modules then write it as its types demand (jsonb or text[] lists, a uuid C(createdBy) left
        NULL, NOT NULL columns without a default filled with empty values).
    type: str
    choices: [reference, none]
    default: reference
extends_documentation_fragment:
  - phoenix.platform.connection
  - phoenix.platform.stage
  - phoenix.platform.lock
  - phoenix.platform.attributes
attributes:
  check_mode:
    support: full
    details: Lists the pending migrations and writes nothing.
  diff_mode:
    support: full
author:
  - Phoenix Platform maintainers (@phoenix-platform)
"""

EXAMPLES = r"""
- name: Bring the BETA database up to date
  phoenix.platform.phoenix_schema:
    db_url: "{{ phoenix_db_url }}"
    stage: BETA

- name: Only Phoenix's own tables, for an application that owns its schema
  phoenix.platform.phoenix_schema:
    login_host: db.internal
    login_user: phoenix
    login_password: "{{ vault_phoenix_db_password }}"
    login_db: app
    stage: PROD
    app_schema: none
"""

RETURN = r"""
version:
  description: Schema version of the database after the run (before it, in check mode).
  returned: success
  type: int
  sample: 3
applied:
  description: Migrations applied by this run.
  returned: success
  type: list
  elements: dict
  sample: [{"version": 3, "name": "reference_app", "component": "reference"}]
pending:
  description: Migrations not applied after the run; in check mode, those the run would apply.
  returned: success
  type: list
  elements: dict
  sample: []
world_meta:
  description:
    - Who owns the C("WorldMeta") table (after the run; before it, in check mode).
    - C(phoenix) when this collection created it, C(application) when the application already had one and it
      was adopted, null when there is none yet.
  returned: success
  type: str
  sample: application
stage:
  description: The stage registered in the database.
  returned: success
  type: str
  sample: BETA
registered_stage:
  description: The stage the database is registered as, when the stage fence refused the run.
  returned: failure
  type: str
  sample: PROD
"""

from ansible_collections.phoenix.platform.plugins.module_utils._core.argspec import LOCK_OPTIONS
from ansible_collections.phoenix.platform.plugins.module_utils._core.module import PhoenixModule
from ansible_collections.phoenix.platform.plugins.module_utils._schema.ensure import SchemaRequest, ensure_schema
from ansible_collections.phoenix.platform.plugins.module_utils._schema.migrations import APP_SCHEMAS


def run(module: PhoenixModule) -> dict:
    request = SchemaRequest(
        stage=module.stage,
        app_schema=module.params["app_schema"],
        target_version=module.params["target_version"],
        actor=module.actor,
        lock_timeout=module.params["lock_timeout"],
        where=module.connection_target().describe(),
    )
    with module.connect() as conn:  # ensure_schema checks the stage fence itself, under the schema lock
        return ensure_schema(conn, request, module.check_mode)


def main() -> None:
    module = PhoenixModule(
        argument_spec={
            "state": {"type": "str", "choices": ["present"], "default": "present"},
            "target_version": {"type": "int"},
            "app_schema": {"type": "str", "choices": list(APP_SCHEMAS), "default": "reference"},
            **LOCK_OPTIONS,
        },
    )
    module.run(run)


if __name__ == "__main__":
    main()
