#!/usr/bin/python
# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: phoenix_world
short_description: One test world present or absent, with metadata, a template clone and generated seed data
version_added: 0.1.0
description:
  - A world is an isolated data set inside the application database. Tables with a C(world_id) column, and the
    tables that hang off them by foreign key, are discovered from the catalog, so any schema following that
    convention works.
  - V(present) creates or updates the C("WorldMeta") row, copies a template's rows (O(from_template)) and
    generates seed data (O(seed)). Copies re-key UUID keys deterministically, so repeating a run changes nothing.
  - V(absent) deletes the world's rows in every member table (children first) and its metadata, in one transaction.
  - Every change is one transaction under an advisory lock for the world, recorded in the audit log.
options:
  id:
    description: World id, an upper-case letter then up to 63 upper-case letters, digits or underscores.
    type: str
    required: true
  state:
    description: Whether the world exists.
    type: str
    choices: [present, absent]
    default: present
  name:
    description: Display name (defaults to O(id) for a new world).
    type: str
  description:
    description: Free text.
    type: str
  category:
    description: Category used for filtering and metrics.
    type: str
  tags:
    description: Tags.
    type: list
    elements: str
  settings:
    description: Free-form settings (stored as jsonb).
    type: dict
  dependencies:
    description: Worlds this one needs; they must exist, and cannot be removed while listed here unless O(force).
    type: list
    elements: str
  is_template:
    description: Templates are never expired nor cleaned up.
    type: bool
  is_active:
    description: Active flag.
    type: bool
  auto_cleanup:
    description: Delete the world once expired (otherwise it is only marked inactive).
    type: bool
  cleanup_after_hours:
    description: Hours after creation at which the world expires. New worlds default to E(PHOENIX_WORLD_DEFAULT_TTL), else 24.
    type: int
  isolation_level:
    description: Isolation level recorded for the world.
    type: str
    choices: [FULL, PARTIAL, NONE]
  version:
    description: Version of the world's content.
    type: str
  from_template:
    description: Fill the world with a re-keyed copy of this world's rows (server-side C(INSERT ... SELECT)).
    type: str
  seed:
    description:
      - Generate plausible, deterministic data for the reference application schema.
      - Keys C(users) (default 5), C(artifacts) (12), C(chats) (3), C(messages_per_chat) (4).
    type: dict
  allow_prod:
    description: Allow changing worlds in PROD.
    type: bool
    default: false
  force:
    description: Delete the world even when other worlds list it in their dependencies.
    type: bool
    default: false
  max_worlds:
    description: Refuse to create a world beyond this many. Falls back to E(PHOENIX_WORLD_MAX_PER_ENV).
    type: int
    default: 50
extends_documentation_fragment:
  - phoenix.platform.connection
  - phoenix.platform.stage
  - phoenix.platform.lock
  - phoenix.platform.transforms
  - phoenix.platform.attributes
attributes:
  check_mode:
    support: full
    details: Reports the metadata and the rows per table that would be added or removed; writes nothing. A removal
      deletes the rows and rolls them back, so it fails where the run would (a trigger that keeps a row, a row
      outside the world that refers to one of its own).
  diff_mode:
    support: full
author:
  - Phoenix Platform maintainers (@phoenix-platform)
"""

EXAMPLES = r"""
- name: A template world with generated data
  phoenix.platform.phoenix_world:
    id: GENERAL_TEMPLATE
    name: General template
    category: general
    is_template: true
    seed: {users: 5, artifacts: 12, chats: 3}

- name: A test world cloned from it
  phoenix.platform.phoenix_world:
    id: UC_TESTING
    from_template: GENERAL_TEMPLATE
    cleanup_after_hours: 48
    tags: [ci]

- name: Remove a world and all its rows
  phoenix.platform.phoenix_world:
    id: UC_TESTING
    state: absent
"""

RETURN = r"""
world:
  description: The world's metadata (C("WorldMeta") columns plus C(expiresAt)); null when absent.
  returned: success
  type: dict
  sample: {"id": "UC_TESTING", "name": "UC_TESTING", "environment": "BETA", "isTemplate": false, "expiresAt": "2026-11-24T12:00:00+00:00"}
rows:
  description: Rows of the world per table after the run (predicted in check mode).
  returned: success
  type: dict
  sample: {"User": 5, "Artifact": 12, "A_Text": 6}
rows_added:
  description: Rows per table added by this run (or that would be, in check mode).
  returned: success
  type: dict
rows_removed:
  description: Rows per table removed by this run (or that would be, in check mode).
  returned: success
  type: dict
"""

import os

from ansible.module_utils.basic import env_fallback

from ansible_collections.phoenix.platform.plugins.module_utils._core.argspec import (
    ALLOW_PROD_OPTIONS,
    LOCK_OPTIONS,
    TRANSFORM_OPTIONS,
)
from ansible_collections.phoenix.platform.plugins.module_utils._core.module import PhoenixModule
from ansible_collections.phoenix.platform.plugins.module_utils._core.world_meta import ISOLATION_LEVELS, META_COLUMNS
from ansible_collections.phoenix.platform.plugins.module_utils._worlds.ensure import WorldRequest, ensure_world


def _default_ttl(module: PhoenixModule) -> int | None:
    value = os.environ.get("PHOENIX_WORLD_DEFAULT_TTL")
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        module.fail_json(msg="PHOENIX_WORLD_DEFAULT_TTL must be a whole number of hours, got %r" % value)
    return int(value)


def run(module: PhoenixModule) -> dict:
    params = module.params
    request = WorldRequest(
        world_id=params["id"], state=params["state"], stage=module.stage, actor=module.actor,
        meta={option: params[option] for option in META_COLUMNS},
        from_template=params["from_template"], seed=params["seed"], allow_prod=params["allow_prod"],
        force=params["force"], max_worlds=params["max_worlds"], lock_timeout=params["lock_timeout"],
        where=module.connection_target().describe(),
        default_ttl_hours=_default_ttl(module), column_transforms=params["column_transforms"],
    )
    with module.fenced_connection() as conn:
        result = ensure_world(conn, request, module.check_mode)
    for warning in request.warnings:
        module.warn(warning)
    return result


def main() -> None:
    module = PhoenixModule(
        argument_spec={
            "id": {"type": "str", "required": True},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "name": {"type": "str"},
            "description": {"type": "str"},
            "category": {"type": "str"},
            "tags": {"type": "list", "elements": "str"},
            "settings": {"type": "dict"},
            "dependencies": {"type": "list", "elements": "str"},
            "is_template": {"type": "bool"},
            "is_active": {"type": "bool"},
            "auto_cleanup": {"type": "bool"},
            "cleanup_after_hours": {"type": "int"},
            "isolation_level": {"type": "str", "choices": list(ISOLATION_LEVELS)},
            "version": {"type": "str"},
            "from_template": {"type": "str"},
            "seed": {"type": "dict"},
            **ALLOW_PROD_OPTIONS,
            "force": {"type": "bool", "default": False},
            "max_worlds": {"type": "int", "default": 50, "fallback": (env_fallback, ["PHOENIX_WORLD_MAX_PER_ENV"])},
            **LOCK_OPTIONS,
            **TRANSFORM_OPTIONS,
        },
    )
    module.run(run)


if __name__ == "__main__":
    main()
