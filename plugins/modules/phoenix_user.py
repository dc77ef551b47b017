#!/usr/bin/python
# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: phoenix_user
short_description: An application user or admin present or absent, with a bcrypt password
version_added: 0.1.0
description:
  - Manages one row of the reference schema's C("User") table, identified by O(email) (compared
    case-insensitively) within O(world) (no world = a production user).
  - Passwords are stored as bcrypt hashes the application's bcrypt accepts. Neither the password nor its hash
    appears in the result, the diff or the audit log.
  - Allowed in every stage (it is administration); users inside a world are test data and follow the PROD guard.
options:
  email:
    description: The user's email address (at most 64 characters).
    type: str
    required: true
  name:
    description: Display name.
    type: str
  role:
    description: C(user) or C(admin) (the C(type) column). New users default to C(user).
    type: str
    choices: [user, admin]
  password:
    description: Plain-text password, stored as a bcrypt hash.
    type: str
  update_password:
    description:
      - V(always) sets the password when it does not match the stored hash (an unchanged password reports no change).
      - V(on_create) only sets it for a new user.
    type: str
    choices: [always, on_create]
    default: always
  world:
    description: The world the user belongs to; omit for a production user.
    type: str
  state:
    description: Whether the user exists.
    type: str
    choices: [present, absent]
    default: present
  cascade:
    description: With O(state=absent), also delete the rows the user owns (chats, artifacts ...) in FK order.
    type: bool
    default: false
  create:
    description: With V(false), only change an existing user and fail when there is none (for example set-admin).
    type: bool
    default: true
  allow_prod:
    description: Allow changing users inside worlds in PROD.
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
    details: Reports what would change; writes nothing.
  diff_mode:
    support: full
    details: Shows email, name, role, world and whether a password is set; never the password or its hash.
requirements:
  - bcrypt
author:
  - Phoenix Platform maintainers (@phoenix-platform)
"""

EXAMPLES = r"""
- name: An admin in BETA
  phoenix.platform.phoenix_user:
    email: ada@example.com
    name: Ada Lovelace
    role: admin
    password: "{{ vault_ada_password }}"
    update_password: on_create

- name: Make an existing user admin, failing when there is none
  phoenix.platform.phoenix_user:
    email: grace@example.com
    role: admin
    create: false

- name: Remove a test user and everything it owns
  phoenix.platform.phoenix_user:
    email: tester@example.com
    world: UC_TESTING
    state: absent
    cascade: true
"""

RETURN = r"""
user:
  description: The user after the run (null when absent); never the password or its hash.
  returned: success
  type: dict
  sample: {"id": "3f0c...", "email": "ada@example.com", "name": "Ada Lovelace", "role": "admin", "world": null,
           "createdAt": "2026-11-22T12:00:00+00:00", "has_password": true}
rows_removed:
  description: Rows deleted per table with O(state=absent) (the user and, with O(cascade), what it owned).
  returned: success
  type: dict
  sample: {"User": 1, "Chat": 3, "Message_v2": 12}
owned_rows:
  description: Rows per table the user owns, when O(state=absent) without O(cascade) refused.
  returned: failure
  type: dict
"""

import importlib.util

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.phoenix.platform.plugins.module_utils._core.argspec import ALLOW_PROD_OPTIONS, LOCK_OPTIONS
from ansible_collections.phoenix.platform.plugins.module_utils._core.module import PhoenixModule
from ansible_collections.phoenix.platform.plugins.module_utils._users.accounts import PASSWORD_UPDATES, ROLES, UserRequest, ensure_user

# _users imports bcrypt where it hashes; its absence is reported up front.
HAS_BCRYPT = importlib.util.find_spec("bcrypt") is not None


def run(module: PhoenixModule) -> dict:
    params = module.params
    request = UserRequest(
        email=params["email"], state=params["state"], stage=module.stage, actor=module.actor, name=params["name"],
        role=params["role"], password=params["password"], update_password=params["update_password"],
        world=params["world"], cascade=params["cascade"], create=params["create"], allow_prod=params["allow_prod"],
        lock_timeout=params["lock_timeout"], where=module.connection_target().describe(),
    )
    with module.fenced_connection() as conn:
        result = ensure_user(conn, request, module.check_mode)
    return result


def main() -> None:
    module = PhoenixModule(
        argument_spec={
            "email": {"type": "str", "required": True},
            "name": {"type": "str"},
            "role": {"type": "str", "choices": list(ROLES)},
            "password": {"type": "str", "no_log": True},
            "update_password": {"type": "str", "choices": list(PASSWORD_UPDATES), "default": "always", "no_log": False},
            "world": {"type": "str"},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "cascade": {"type": "bool", "default": False},
            "create": {"type": "bool", "default": True},
            **ALLOW_PROD_OPTIONS,
            **LOCK_OPTIONS,
        },
    )
    if not HAS_BCRYPT:
        module.fail_json(msg=missing_required_lib("bcrypt"))
    module.run(run)


if __name__ == "__main__":
    main()
