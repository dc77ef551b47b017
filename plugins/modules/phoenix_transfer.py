#!/usr/bin/python
# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: phoenix_transfer
short_description: Move worlds and entity groups between two environment databases, plan first
version_added: 0.1.0
description:
  - Copies the rows of the selected worlds (and, with O(production_data), production rows) from the O(source)
    database into the target database (the usual connection options), in one target transaction.
  - Always computes a plan first - per table the rows to insert, update, leave unchanged and delete - by staging the
    source rows on the target with binary COPY and comparing keys and contents there. Check mode returns that plan
    and writes nothing; a real run executes exactly it, rewriting no unchanged row, so a second run changes nothing.
  - Renaming (O(rename), O(suffix)) re-keys UUID keys deterministically. Leaving PROD, personal data is masked in the
    source query (a default profile for the reference schema, adjustable with O(mask)).
  - A schema difference between source and target fails before anything is written, listing the differences.
  - A transfer moves rows, not large objects. Rows that point at large objects of the source (a column of type
    C(oid), or of a domain over it such as the C(lo) extension's) would point at another large object of the target
    under the same OID, or at none, so such a transfer fails before anything is written, naming the columns. Leave
    those tables out (O(include)), or send the column as NULL (O(mask)).
options:
  source:
    description: The source database.
    type: dict
    required: true
    suboptions:
      db_url:
        description: libpq URI or conninfo string of the source. Mutually exclusive with the C(login_*) suboptions.
        type: str
        aliases: [conninfo]
      login_host:
        description: Source host or socket directory.
        type: str
      login_port:
        description: Source port.
        type: int
      login_user:
        description: Source user.
        type: str
      login_password:
        description: Source password.
        type: str
      login_db:
        description: Source database.
        type: str
      ssl_mode:
        description: libpq C(sslmode) for the source.
        type: str
        choices: [disable, allow, prefer, require, verify-ca, verify-full]
      ca_cert:
        description: CA certificate for the source.
        type: path
      connect_timeout:
        description: Seconds to wait for the source connection.
        type: int
        default: 10
      stage:
        description: The source's stage; checked against the source's stage fence.
        type: str
        required: true
        choices: [LOCAL, BETA, PROD]
  worlds:
    description:
      - World ids to transfer (default every non-template world of the source).
      - A world the source does not have fails the run before anything is written.
    type: list
    elements: str
  include:
    description:
      - Entity groups (of O(groups)) to transfer; rows they reference through foreign keys come along.
      - Default - the whole world, every member table (discovered from the catalog) and the world's C("WorldMeta")
        row. Member tables a selection leaves out are listed in RV(left_out) and a warning, never dropped silently.
    type: list
    elements: str
  groups:
    description:
      - The data model's entity groups, C(group -> [table, ...]), that O(include) names.
      - The default fits the reference schema (C(worlds), C(users), C(artifacts), C(chats)); give your schema's own
        (the playbooks pass the inventory's C(phoenix_entity_groups)).
    type: dict
  production_data:
    description: Also transfer rows without a world (production data).
    type: bool
    default: false
  rename:
    description: "Copy worlds under other ids: a mapping of source world id to target world id."
    type: dict
    default: {}
  suffix:
    description: Copy every world under its id plus this suffix (for example C(_BETA)).
    type: str
  conflict:
    description: Rows whose key exists in the target with other contents are V(update)d, V(skip)ped, or V(fail) the run.
    type: str
    choices: [update, skip, fail]
    default: update
  key_conflict:
    description:
      - What to do when an incoming row's key exists in the target under another owner (another world, or
        production data). Identity is key and owner, so such a row is never updated.
      - V(fail) refuses before anything is written, naming table, key and owner.
      - V(rekey) gives the incoming rows of every transferred world new UUID keys (as a rename does), so they never
        meet rows of other owners; a repeated transfer gives the same keys. Other key types still fail.
    type: str
    choices: [fail, rekey]
    default: fail
  delete_missing:
    description: Delete rows of the target worlds that the source no longer has (the target mirrors the source).
    type: bool
    default: false
  mask:
    description:
      - Per column C(Table.column) a transformer - C(null), C(hash_email), C(fake_name), C(keep) or C({constant. value}).
      - Leaving PROD, these are applied over the default profile (C(User.email), C(User.name), C(User.password),
        C(A_Person.email), C(A_Person.fullName), C(A_Person.photoUrl)).
    type: dict
  allow_unmasked:
    description: Allow personal data to leave PROD unmasked.
    type: bool
    default: false
  allow_prod:
    description: Allow a transfer into PROD.
    type: bool
    default: false
extends_documentation_fragment:
  - phoenix.platform.connection
  - phoenix.platform.stage
  - phoenix.platform.lock
  - phoenix.platform.maintained
  - phoenix.platform.transforms
  - phoenix.platform.attributes
attributes:
  check_mode:
    support: full
    details: Returns the plan; the staging happens in a transaction that is rolled back.
  diff_mode:
    support: full
    details: >-
      Shows up to five keys per table of the rows that would be updated and deleted (before) and inserted and
      updated (after), with C(+N more) when there are more.
author:
  - Phoenix Platform maintainers (@phoenix-platform)
"""

EXAMPLES = r"""
- name: Copy UC_TESTING from LOCAL to BETA as UC_TESTING_BETA
  phoenix.platform.phoenix_transfer:
    db_url: "{{ beta_db_url }}"
    stage: BETA
    source:
      db_url: "{{ local_db_url }}"
      stage: LOCAL
    worlds: [UC_TESTING]
    suffix: _BETA

- name: Production data down to LOCAL, masked
  phoenix.platform.phoenix_transfer:
    stage: LOCAL
    source: {db_url: "{{ prod_db_url }}", stage: PROD}
    worlds: []
    production_data: true
"""

RETURN = r"""
plan:
  description: Per table C(insert), C(update), C(unchanged) and C(delete) - what the run did, or would do in check mode.
  returned: success
  type: dict
  sample: {"Artifact": {"insert": 12, "update": 0, "unchanged": 0, "delete": 0}}
worlds:
  description: Source world id -> target world id.
  returned: success
  type: dict
masked:
  description: Columns masked on the way.
  returned: success
  type: list
  elements: str
rewritten_by_target:
  description:
    - Per table, columns the target changed again right after this run updated them (its triggers), which are not
      listed in O(maintained_columns). A later run would update them again; a warning says so.
  returned: success
  type: dict
  sample: {"store.customer": ["last_update"]}
left_out:
  description: Member tables of the world that O(include) left out (empty when the whole world moves).
  returned: success
  type: list
  elements: str
  sample: ["A_Site", "A_Link"]
duration:
  description: Seconds the transfer took.
  returned: success
  type: float
rows_per_second:
  description: Rows inserted, updated or deleted per second.
  returned: success
  type: float
"""

from ansible_collections.phoenix.platform.plugins.module_utils._core.argspec import (
    ALLOW_PROD_OPTIONS,
    LOCK_OPTIONS,
    MAINTAINED_OPTIONS,
    TRANSFORM_OPTIONS,
    database_suboptions,
)
from ansible_collections.phoenix.platform.plugins.module_utils._core.connection import ConnectionTarget, connect
from ansible_collections.phoenix.platform.plugins.module_utils._core.module import PhoenixModule
from ansible_collections.phoenix.platform.plugins.module_utils._core.stage import (
    check_stage_fence,
    registered_stage,
    require_prod_allowed,
)
from ansible_collections.phoenix.platform.plugins.module_utils._transfer.engine import Transfer
from ansible_collections.phoenix.platform.plugins.module_utils._transfer.plan import (
    CONFLICTS,
    DEFAULT_GROUPS,
    KEY_CONFLICTS,
    TransferRequest,
)


def run(module: PhoenixModule) -> dict:
    params = module.params
    source_target = ConnectionTarget(params["source"], environ={}, application_name="phoenix.platform.transfer-source")
    module.other_targets.append(source_target)
    request = TransferRequest(
        source_stage=params["source"]["stage"], target_stage=module.stage, actor=module.actor, worlds=params["worlds"],
        include=params["include"], groups=params["groups"] or DEFAULT_GROUPS, production_data=params["production_data"],
        rename=params["rename"], suffix=params["suffix"], conflict=params["conflict"],
        key_conflict=params["key_conflict"], maintained_columns=params["maintained_columns"],
        column_transforms=params["column_transforms"],
        delete_missing=params["delete_missing"], mask=params["mask"], allow_unmasked=params["allow_unmasked"],
        allow_prod=params["allow_prod"], lock_timeout=params["lock_timeout"], diff=module._diff,
        where=module.connection_target().describe(),
    )
    require_prod_allowed(request.target_stage, request.allow_prod, "a transfer into PROD")  # before connecting
    with connect(source_target, params["lock_timeout"]) as source, module.connect() as target:
        check_stage_fence(request.source_stage, registered_stage(source), "the source " + source_target.describe())
        module.check_fence(target)
        source.rollback()
        target.rollback()
        result = Transfer(source, target, request).run(module.check_mode)
    for label, columns in sorted(result["rewritten_by_target"].items()):
        module.warn("the target rewrote %s right after updating them (a trigger?); a later run will update them "
                    "again. List them in maintained_columns so transfers converge"
                    % ", ".join("%s.%s" % (label, c) for c in columns))
    if result["left_out"]:
        module.warn("include=%s leaves out these tables of the world, which were not transferred: %s"
                    % (",".join(request.include), ", ".join(result["left_out"])))
    return result


def main() -> None:
    module = PhoenixModule(
        argument_spec={
            "source": dict(database_suboptions(), required=True),
            "worlds": {"type": "list", "elements": "str"},
            "include": {"type": "list", "elements": "str"},
            "groups": {"type": "dict"},
            "production_data": {"type": "bool", "default": False},
            "rename": {"type": "dict", "default": {}},
            "suffix": {"type": "str"},
            "conflict": {"type": "str", "choices": list(CONFLICTS), "default": "update"},
            "key_conflict": {"type": "str", "choices": list(KEY_CONFLICTS), "default": "fail"},
            "delete_missing": {"type": "bool", "default": False},
            **MAINTAINED_OPTIONS,
            "mask": {"type": "dict"},
            "allow_unmasked": {"type": "bool", "default": False},
            **ALLOW_PROD_OPTIONS,
            **LOCK_OPTIONS,
            **TRANSFORM_OPTIONS,
        },
        mutually_exclusive=[("rename", "suffix")],
    )
    module.run(run)


if __name__ == "__main__":
    main()
