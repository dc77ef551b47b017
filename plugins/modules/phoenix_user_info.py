#!/usr/bin/python
# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: phoenix_user_info
short_description: List application users, never their password hashes
version_added: 0.1.0
description:
  - Lists the rows of the reference schema's C("User") table, production users first, then by world and email.
options:
  role:
    description: Only users with this role.
    type: str
    choices: [user, admin]
  world:
    description: Only users of this world; V(none) lists production users (no world).
    type: str
  email:
    description: Email address or shell-style pattern (C(*@example.com)), case-insensitive.
    type: str
  id:
    description: Only the user with this id.
    type: str
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
- name: Admins of the production data
  phoenix.platform.phoenix_user_info:
    role: admin
    world: none
  register: admins
"""

RETURN = r"""
users:
  description: Matching users (C(id), C(email), C(name), C(role), C(world), C(createdAt), C(has_password)).
  returned: success
  type: list
  elements: dict
  sample: [{"email": "ada@example.com", "role": "admin", "world": null, "has_password": true}]
"""

from ansible_collections.phoenix.platform.plugins.module_utils._core.argspec import LOCK_OPTIONS
from ansible_collections.phoenix.platform.plugins.module_utils._core.module import PhoenixModule
from ansible_collections.phoenix.platform.plugins.module_utils._users.accounts import ROLES, list_users


def run(module: PhoenixModule) -> dict:
    params = module.params
    with module.fenced_connection(writes=False) as conn:
        users = list_users(conn, params["role"], params["world"], params["email"], params["id"],
                           module.connection_target().describe())
    return {"changed": False, "users": users}


def main() -> None:
    module = PhoenixModule(
        argument_spec={
            "role": {"type": "str", "choices": list(ROLES)},
            "world": {"type": "str"},
            "email": {"type": "str"},
            "id": {"type": "str"},
            **LOCK_OPTIONS,
        },
    )
    module.run(run)


if __name__ == "__main__":
    main()
