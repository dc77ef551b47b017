#!/usr/bin/python
# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: phoenix_world_info
short_description: List worlds with their row counts, optionally rendered as json, yaml, csv or markdown
version_added: 0.1.0
description:
  - Lists the worlds of an environment with their metadata, C(expiresAt), whether they are expired, and their
    rows per member table (counted set-based, one query per table).
options:
  id:
    description: World id or shell-style pattern (C(UC_*)).
    type: str
  category:
    description: Only worlds of this category.
    type: str
  active:
    description: Only active (V(true)) or inactive (V(false)) worlds.
    type: bool
  template:
    description: Only templates (V(true)) or non-templates (V(false)).
    type: bool
  tags:
    description: Only worlds carrying all these tags.
    type: list
    elements: str
  expired:
    description: Only expired (V(true)) or unexpired (V(false)) worlds.
    type: bool
  format:
    description: Also return the list rendered in this format as RV(rendered).
    type: str
    choices: [json, yaml, csv, markdown]
  detail:
    description:
      - Also return RV(catalog) - how worlds are found in this database and how a copy under another world id
        treats each member table - to check a new schema before the first copy.
    type: bool
    default: false
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
- name: Expired test worlds
  phoenix.platform.phoenix_world_info:
    id: "UC_*"
    expired: true
  register: expired_worlds

- name: A markdown report of all templates
  phoenix.platform.phoenix_world_info:
    template: true
    format: markdown
  register: report

- name: Which tables hold worlds, and how copies re-key them
  phoenix.platform.phoenix_world_info:
    id: NONE_OF_THEM
    detail: true
  register: discovery
"""

RETURN = r"""
worlds:
  description: Matching worlds, ordered by id; C("WorldMeta") columns plus C(expiresAt), C(expired) and C(rows).
  returned: success
  type: list
  elements: dict
  sample: [{"id": "UC_TESTING", "category": "testing", "expired": false, "rows": {"User": 5, "Artifact": 12}}]
rendered:
  description: The list rendered in O(format).
  returned: when O(format) is given
  type: str
catalog:
  description:
    - C(world_meta), the world registry the search path finds, and per member table (parents first) C(table),
      C(member_by) (C(world_id), or the foreign key to the table whose world its rows share), C(primary_key),
      C(identified_by), C(partitioned), C(identity_always), C(deferrable_foreign_keys), C(copies) (per column that
      a copy changes, how) and C(copy_problem) (why a copy would be refused, or null).
  returned: when O(detail=true)
  type: dict
  sample:
    world_meta: WorldMeta
    tables:
      - table: store.rental
        member_by: foreign key rental_customer_id_fkey to store.customer
        primary_key: [rental_id]
        identified_by: primary key
        partitioned: false
        identity_always: [rental_id]
        deferrable_foreign_keys: []
        copies:
          rental_id: a new value from store.rental_rental_id_seq, recorded in phoenix.key_map
          customer_id: the new key of the store.customer row it references (phoenix.key_map)
        copy_problem: null
"""

from ansible_collections.phoenix.platform.plugins.module_utils._core.argspec import LOCK_OPTIONS
from ansible_collections.phoenix.platform.plugins.module_utils._core.module import PhoenixModule
from ansible_collections.phoenix.platform.plugins.module_utils._worlds.listing import describe_tables, list_worlds
from ansible_collections.phoenix.platform.plugins.module_utils._worlds.query import WorldFilter
from ansible_collections.phoenix.platform.plugins.module_utils._worlds.report import FORMATS, render


def run(module: PhoenixModule) -> dict:
    params = module.params
    world_filter = WorldFilter(id=params["id"], category=params["category"], active=params["active"],
                               template=params["template"], tags=params["tags"], expired=params["expired"])
    with module.fenced_connection(writes=False) as conn:
        worlds = list_worlds(conn, world_filter, module.connection_target().describe())
        result = {"changed": False, "worlds": worlds}
        if params["detail"]:
            result["catalog"] = describe_tables(conn)
    if params["format"]:
        result["rendered"] = render(worlds, params["format"])
    return result


def main() -> None:
    module = PhoenixModule(
        argument_spec={
            "id": {"type": "str"},
            "category": {"type": "str"},
            "active": {"type": "bool"},
            "template": {"type": "bool"},
            "tags": {"type": "list", "elements": "str"},
            "expired": {"type": "bool"},
            "format": {"type": "str", "choices": list(FORMATS)},
            "detail": {"type": "bool", "default": False},
            **LOCK_OPTIONS,
        },
    )
    module.run(run)


if __name__ == "__main__":
    main()
